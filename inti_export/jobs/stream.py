"""The `stream` job: a source through a `StreamSession` to JSON lines and a summary (docs/stream.md).

`run_stream` opens the source (video/live.py), builds the session (jobs/stream_config.py: a local
stem/head pair or the served model), writes one JSON line per window and one per gap or reconnect, and
returns a `StreamSummary`. Ctrl-C ends it like the source ending: the lines so far are kept (the results
file is renamed into place whole) and the summary says so. A terminal gets a live status line, `--plot`
the latency over time (jobs/stream_status.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from inti_export.errors import Interrupted, IntiExportError
from inti_export.jobs.stream_config import StreamConfig, make_session, make_stem_head, read_class_labels

__all__ = ["StreamConfig", "StreamSummary", "make_stem_head", "run_stream", "summary_text"]


@dataclass
class StreamSummary:
    source: str
    runner: str
    preset: str
    frames_per_window: int
    stride: int
    drop: str
    end: str = ""  # "source ended after N frames (...)", "interrupted after N frames", ...
    interrupted: int | None = None  # the signal number when Ctrl-C / SIGTERM ended the run
    frames_decoded: int = 0
    frames_sampled: int = 0
    frames_processed: int = 0
    windows: int = 0
    dropped: int = 0  # sampled frames never processed (queue drops)
    gaps: int = 0
    reconnects: int = 0
    corrupt_packets: int = 0
    source_fps: float | None = None
    wall_s: float = 0.0
    windows_per_s: float = 0.0
    frames_per_s: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    stem_ms_per_frame: float | None = None
    head_ms_per_window: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    a = np.asarray(values)
    return {"p50": round(float(np.percentile(a, 50)), 3), "p99": round(float(np.percentile(a, 99)), 3),
            "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3)}


def _event_line(out: TextIO, row: dict) -> None:
    out.write(json.dumps(row) + "\n")


def run_stream(cfg: StreamConfig, out: TextIO, on_window: Callable[[StreamSummary], None] | None = None,
               plot: Path | None = None, status: bool = True) -> StreamSummary:
    """Stream `cfg.source` through the model; JSON lines to `out`; the summary at the end (and `plot`)."""
    from inti_export.jobs.stream_status import LatencyTrace, LiveStatus, plot_latency
    from inti_export.video.live import FrameReader
    from inti_export.video.sources import parse_av_options, parse_source

    cfg.check()
    source = parse_source(cfg.source, cfg.fmt, parse_av_options(cfg.av_options))
    session, pre = make_session(cfg)
    labels = read_class_labels(cfg.labels, _classes(session), _what(cfg)) if cfg.top_k else None
    t, stride = session.frames, session.stride
    drop = cfg.drop or ("latest" if source.live or cfg.realtime else "none")
    try:
        reader = FrameReader(source, pre, sample_every=cfg.sample_every, max_queue=cfg.max_queue or t, drop=drop,
                             realtime=cfg.realtime, duration_s=cfg.duration_s, timeout_s=cfg.timeout_s,
                             reconnect=cfg.reconnect)
    except BaseException:
        _close(session)
        raise
    named = _stem_head(session) or session  # the local pair, or the served session, names runner and preset
    summary = StreamSummary(cfg.source, named.name, getattr(named, "preset", ""), t, stride, drop,
                            source_fps=reader.stats.source_fps)
    latencies, stem_ms, head_ms, trace = [], 0.0, [], LatencyTrace()
    live = LiveStatus.for_terminal() if status else None
    start = time.perf_counter()
    seen_gaps = 0
    try:
        for frame in reader.frames():
            if frame.restart is not None:
                _event_line(out, {**frame.restart, "dropped": session.dropped})
                trace.mark(time.perf_counter() - start, "reconnect")
            result = session.push(frame)
            for gap in session.gaps[seen_gaps:]:
                _event_line(out, {"event": "gap", "after_frame": gap.after_frame, "next_frame": gap.next_frame,
                                  "missing": gap.missing, "dropped": session.dropped})
                trace.mark(time.perf_counter() - start, "gap")
            seen_gaps = len(session.gaps)
            if result is None:
                if live is not None:
                    live.update(session.windows, session.frames_in, reader.stats.dropped, seen_gaps)
                continue
            if labels is not None and labels and len(labels) != len(result.output):
                raise IntiExportError(f"{cfg.labels} has {len(labels)} labels but the model scores {len(result.output)}"
                                      " classes; give one name a class, in order")
            latencies.append(result.latency_ms)
            stem_ms += result.stem_ms
            head_ms.append(result.head_ms)
            trace.add(time.perf_counter() - start, result.latency_ms)
            out.write(json.dumps(result.to_json(cfg.top_k, labels or None)) + "\n")
            summary.windows = session.windows
            if live is not None:
                live.update(session.windows, session.frames_in, reader.stats.dropped, seen_gaps, result.latency_ms)
            if on_window is not None:
                on_window(summary)
    except KeyboardInterrupt as e:
        summary.interrupted = e.signum if isinstance(e, Interrupted) else 2
    finally:
        if live is not None:
            live.close()
        reader.close()
        _close(session)
    _finish(summary, reader.stats, session, time.perf_counter() - start, latencies, stem_ms, head_ms)
    if plot is not None:
        plot_latency(trace, plot, f"inti-export stream {cfg.source}: {summary.windows} windows, stride {stride},"
                                  f" {summary.dropped} dropped, {summary.runner}")
    return summary


def _stem_head(session):
    """The local session's stem/head pair; None for a served session (its `model` is the served model's name)."""
    from inti_export.runtime.stream import StreamSession

    return session.model if isinstance(session, StreamSession) else None


def _classes(session) -> int:
    classes = getattr(_stem_head(session) or session, "classes", None)
    if classes is None:  # a served model that does not say: a logits output has classes, checked at the first window
        return -1 if getattr(session, "output_name", "") == "logits" else 0
    return classes


def _what(cfg: StreamConfig) -> str:
    return f"preset {cfg.preset}" if cfg.preset else str(cfg.artifact or cfg.url)


def _close(session) -> None:
    """Ends a served sequence, frees TensorRT engines; nothing for a local CPU session."""
    for obj in (session, _stem_head(session)):
        close = getattr(obj, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001 - the run's own result or error matters more
                pass


def _finish(summary: StreamSummary, stats, session, wall_s: float, latencies, stem_ms: float, head_ms) -> None:
    summary.wall_s = round(wall_s, 3)
    summary.frames_decoded, summary.frames_sampled = stats.decoded, stats.sampled
    summary.frames_processed, summary.windows, summary.gaps = session.frames_in, session.windows, len(session.gaps)
    summary.dropped, summary.corrupt_packets, summary.reconnects = stats.dropped, stats.corrupt, stats.reconnects
    summary.windows_per_s = round(session.windows / max(summary.wall_s, 1e-9), 3)
    summary.frames_per_s = round(session.frames_in / max(summary.wall_s, 1e-9), 3)
    summary.latency_ms = _percentiles(latencies)
    total = getattr(session, "stem_ms_total", None)  # a local session times every stem; a served one only
    if total is None:  # the stems of the frames in its windows
        total = stem_ms if latencies else None
    summary.stem_ms_per_frame = round(total / session.frames_in, 3) if session.frames_in and total is not None else None
    summary.head_ms_per_window = round(float(np.mean(head_ms)), 3) if head_ms else None
    if summary.interrupted is not None:
        summary.end = f"interrupted after {stats.decoded} frames"
    elif stats.end.startswith("--duration"):
        summary.end = f"{stats.end} after {stats.decoded} frames"
    else:
        summary.end = f"source ended after {stats.decoded} frames ({stats.end})"


def summary_text(s: StreamSummary) -> str:
    """Two human lines for the terminal."""
    lat = s.latency_ms
    lat_text = f"latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms" if lat else "no window completed"
    return (f"{s.end}: {s.windows} windows of {s.frames_per_window} (stride {s.stride}) from {s.frames_processed} frames,"
            f" {s.windows_per_s:.2f} windows/s, {lat_text}\n"
            f"  dropped {s.dropped} frames (--drop {s.drop}), {s.gaps} gaps, {s.reconnects} reconnects,"
            f" {s.corrupt_packets} corrupt packets,"
            f" runner {s.runner}, {s.wall_s:.1f} s")
