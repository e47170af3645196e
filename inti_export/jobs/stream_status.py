"""What `stream` shows while it runs and after (docs/stream.md, "Output"): a live status line on a
terminal and the latency-over-time plot.

    status = LiveStatus.for_terminal()   # None unless stderr is a TTY (never in captured output)
    trace = LatencyTrace(); trace.add(t_s, latency_ms); trace.mark(t_s, "gap")
    plot_latency(trace, Path("latency.png"), title)
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export.fileio import atomic_output

REFRESH_PER_S = 4  # the status line is redrawn at most this often
RECENT = 200  # windows the live percentiles are taken over


@dataclass
class LatencyTrace:
    """Latency of each window against its answer time (s since the start), and the events (gaps, reconnects)."""

    times_s: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)

    def add(self, t_s: float, latency_ms: float) -> None:
        self.times_s.append(t_s)
        self.latency_ms.append(latency_ms)

    def mark(self, t_s: float, kind: str) -> None:
        self.events.append((t_s, kind))


class LiveStatus:
    """One rich status line on stderr: windows/s, latency p50/p99 over the last windows, drops, gaps.

    Rendered by rich's `Live` at most `REFRESH_PER_S` times a second, whatever the window rate;
    `transient`: the line goes away when the run ends and the summary takes its place."""

    def __init__(self, console=None) -> None:
        from rich.console import Console
        from rich.live import Live

        self._console = console or Console(stderr=True)
        self._live = Live("", console=self._console, refresh_per_second=REFRESH_PER_S, transient=True)
        self._recent: deque[float] = deque(maxlen=RECENT)
        self._start = time.perf_counter()
        self._live.start()

    @classmethod
    def for_terminal(cls, stream=None) -> LiveStatus | None:
        """A status line when `stream` (default stderr) is a terminal, else None."""
        stream = stream or sys.stderr
        isatty = getattr(stream, "isatty", None)
        return cls() if isatty is not None and isatty() else None

    def update(self, windows: int, frames: int, dropped: int, gaps: int, latency_ms: float | None = None) -> None:
        if latency_ms is not None:
            self._recent.append(latency_ms)
        self._live.update(status_text(windows, frames, dropped, gaps, time.perf_counter() - self._start,
                                      list(self._recent)), refresh=False)

    def close(self) -> None:
        self._live.stop()


def status_text(windows: int, frames: int, dropped: int, gaps: int, elapsed_s: float, recent_ms: list[float]) -> str:
    """The status line's words (also what a test can check without a terminal)."""
    rate = windows / max(elapsed_s, 1e-9)
    lat = (f"latency p50 {np.percentile(recent_ms, 50):.1f} ms p99 {np.percentile(recent_ms, 99):.1f} ms"
           if recent_ms else "warming up")
    return f"{windows} windows ({rate:.2f}/s) from {frames} frames, {lat}, dropped {dropped}, gaps {gaps}"


def plot_latency(trace: LatencyTrace, path: Path, title: str) -> None:
    """Latency over time (a point a window), gaps and reconnects as vertical lines; PNG, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(trace.times_s, trace.latency_ms, ".-", lw=0.8, ms=3, label="window latency")
    colours = {"gap": "tab:orange", "reconnect": "tab:red"}
    for kind in sorted({k for _, k in trace.events}):
        xs = [t for t, k in trace.events if k == kind]
        ax.vlines(xs, 0, 1, transform=ax.get_xaxis_transform(), colors=colours.get(kind, "grey"), lw=0.6,
                  alpha=0.6, label=f"{kind} ({len(xs)})")
    ax.set_xlabel("time since the start (s)")
    ax.set_ylabel("latency (ms): last frame to answer")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
