"""The `stream` job: a source through a `StreamSession` to JSON lines and a summary (docs/stream.md).

`run_stream` opens the source (video/live.py), builds the stem/head pair (runtime/stream.py), writes
one JSON line per window and one per gap, and returns a `StreamSummary`. Ctrl-C ends it like the source
ending: the lines so far are kept (the results file is renamed into place whole) and the summary says so.
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


@dataclass(frozen=True)
class StreamConfig:
    """What `stream` runs: the source, the model (artifact folder or preset) and the pacing options."""

    source: str
    artifact: Path | None = None
    preset: str | None = None
    checkpoint: Path | None = None
    runner: str | None = None  # None: ort for an artifact, torch for a preset
    stride: int | None = None  # None: T // 2
    sample_every: int = 1
    realtime: bool = False
    drop: str | None = None  # None: latest for a live source or --realtime, none for a file
    max_queue: int | None = None  # None: T
    duration_s: float | None = None
    timeout_s: float = 10.0
    threads: int | None = None

    def check(self) -> None:
        if (self.artifact is None) == (self.preset is None):
            raise IntiExportError("choose one of --artifact DIR (from `inti-export onnx --stream`) and --preset NAME")
        if self.checkpoint is not None and self.preset is None:
            raise IntiExportError("--checkpoint goes with --preset; an artifact already holds its weights")
        runner = self.runner_kind
        if runner not in ("ort", "torch"):
            raise IntiExportError(f"--runner {runner} is not a stream runner; use ort or torch")
        if self.preset is not None and runner != "torch":
            raise IntiExportError(f"--runner {runner} needs --artifact: export with `inti-export onnx --stream -o DIR`")
        if self.artifact is not None and runner != "ort":
            raise IntiExportError(f"--runner {runner} cannot run the ONNX pair in {self.artifact}; use --runner ort")
        if self.duration_s is not None and self.duration_s <= 0:
            raise IntiExportError(f"--duration {self.duration_s:g} must be positive")
        if self.timeout_s <= 0:
            raise IntiExportError(f"--timeout {self.timeout_s:g} must be positive")

    @property
    def runner_kind(self) -> str:
        return self.runner or ("ort" if self.artifact is not None else "torch")


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


def make_stem_head(cfg: StreamConfig):
    """The stem/head pair of `cfg`: ONNX Runtime on an artifact folder, PyTorch on a preset."""
    from inti_export.runtime.stream import OrtStemHead, TorchStemHead, load_stream_artifact

    if cfg.artifact is not None:
        return OrtStemHead(load_stream_artifact(cfg.artifact), threads=cfg.threads)
    from inti_export.models import create_model

    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    return TorchStemHead(create_model(cfg.preset, checkpoint=cfg.checkpoint))


def run_stream(cfg: StreamConfig, out: TextIO, on_window: Callable[[StreamSummary], None] | None = None) -> StreamSummary:
    """Stream `cfg.source` through the model; JSON lines to `out`; the summary at the end."""
    from inti_export.runtime.stream import StreamSession
    from inti_export.video.live import FrameReader, parse_source
    from inti_export.video.preprocess import preprocess_for, preprocess_from_metadata

    cfg.check()
    source = parse_source(cfg.source)
    model = make_stem_head(cfg)
    t = model.frames
    stride = cfg.stride if cfg.stride is not None else max(1, t // 2)
    session = StreamSession(model, stride)  # a bad stride fails here, before the source opens
    drop = cfg.drop or ("latest" if source.live or cfg.realtime else "none")
    artifact = getattr(model, "artifact", None)  # a split export, else a preset's model
    pre = preprocess_from_metadata(artifact.meta, artifact.head_path) if artifact else preprocess_for(model.model.cfg)
    reader = FrameReader(source, pre, sample_every=cfg.sample_every, max_queue=cfg.max_queue or t, drop=drop,
                         realtime=cfg.realtime, duration_s=cfg.duration_s, timeout_s=cfg.timeout_s)
    summary = StreamSummary(cfg.source, model.name, getattr(model, "preset", ""), t, stride, drop,
                            source_fps=reader.stats.source_fps)
    latencies, stem_ms, head_ms = [], 0.0, []
    start = time.perf_counter()
    seen_gaps = 0
    try:
        for frame in reader.frames():
            result = session.push(frame)
            for gap in session.gaps[seen_gaps:]:
                out.write(json.dumps({"event": "gap", "after_frame": gap.after_frame, "next_frame": gap.next_frame,
                                      "missing": gap.missing, "dropped": session.dropped}) + "\n")
            seen_gaps = len(session.gaps)
            if result is None:
                continue
            latencies.append(result.latency_ms)
            stem_ms += result.stem_ms
            head_ms.append(result.head_ms)
            out.write(json.dumps(result.to_json()) + "\n")
            summary.windows = session.windows
            if on_window is not None:
                on_window(summary)
    except KeyboardInterrupt as e:
        summary.interrupted = e.signum if isinstance(e, Interrupted) else 2
    finally:
        reader.close()
    stats = reader.stats
    summary.wall_s = round(time.perf_counter() - start, 3)
    summary.frames_decoded, summary.frames_sampled = stats.decoded, stats.sampled
    summary.frames_processed, summary.windows, summary.gaps = session.frames_in, session.windows, len(session.gaps)
    summary.dropped, summary.corrupt_packets = stats.dropped, stats.corrupt
    summary.windows_per_s = round(session.windows / max(summary.wall_s, 1e-9), 3)
    summary.frames_per_s = round(session.frames_in / max(summary.wall_s, 1e-9), 3)
    summary.latency_ms = _percentiles(latencies)
    summary.stem_ms_per_frame = round(stem_ms / session.frames_in, 3) if session.frames_in and latencies else None
    summary.head_ms_per_window = round(float(np.mean(head_ms)), 3) if head_ms else None
    if summary.interrupted is not None:
        summary.end = f"interrupted after {stats.decoded} frames"
    elif stats.end.startswith("--duration"):
        summary.end = f"{stats.end} after {stats.decoded} frames"
    else:
        summary.end = f"source ended after {stats.decoded} frames ({stats.end})"
    return summary


def summary_text(s: StreamSummary) -> str:
    """Two human lines for the terminal."""
    lat = s.latency_ms
    lat_text = f"latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms" if lat else "no window completed"
    return (f"{s.end}: {s.windows} windows of {s.frames_per_window} (stride {s.stride}) from {s.frames_processed} frames,"
            f" {s.windows_per_s:.2f} windows/s, {lat_text}\n"
            f"  dropped {s.dropped} frames (--drop {s.drop}), {s.gaps} gaps, {s.corrupt_packets} corrupt packets,"
            f" runner {s.runner}, {s.wall_s:.1f} s")
