"""Per-window compute of a stream with the cached stem against full recomputation (docs/stream.md, "Speed").

    run_stream_bench(preset="inti-b16", runners=("ort",), strides=(1, 2, 4, 8)) -> StreamBenchReport

For each runner and stride S, windows of a seeded frame sequence are computed both ways, alternating
window by window in one run, so drift in the machine's speed falls on both alike:

    cached  S new frames through the stem (one call each, as a live stream runs them), then the head
            on the ring of the last T stems
    full    the whole model on the same T frames

Beside each measured ratio is the FLOP prediction (S x stem + head) / full (`models.flops.count_split_flops`, counted as
models/flops.py counts), and the latency at S = T: one stem (the window's last frame) + the head
against the whole model. The runners: `torch` (the model's `forward_stem`/`forward_head`) and `ort`
(the ONNX pair of `inti-export onnx --stream` against the whole-model ONNX).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError
from inti_export.fileio import atomic_output
from inti_export.runtime.timing import machine_info
from inti_export.vocab import INPUT_NAME, META_CONFIG, META_FRAMES, META_IMAGE_SIZE, META_PART, META_PRECISION, package_versions

logger = logging.getLogger(__name__)

STREAM_BENCH_SCHEMA = "inti-export/bench-stream/1"
STREAM_RUNNERS = ("torch", "ort")


@dataclass
class StrideRow:
    """One stride: medians per window over the timed windows (ms), their ratio and the FLOP prediction."""

    stride: int
    cached_ms: float  # S stems (one call each) + the head
    full_ms: float  # the whole model on the same T frames
    ratio: float  # cached / full
    predicted: float  # (S x stem + head) / full, in GFLOPs
    stem_ms_per_frame: float
    head_ms: float
    windows_timed: int


@dataclass
class LatencyAtT:
    """After a window's last frame: its stem + the head, against the whole model (medians over the strides)."""

    stem_plus_head_ms: float
    full_ms: float
    ratio: float
    predicted: float  # (stem + head) / full


@dataclass
class StreamRun:
    runner: str  # e.g. ort-cpu, torch-cpu
    strides: list[StrideRow]
    latency_at_stride_T: LatencyAtT


@dataclass
class StreamBenchReport:
    preset: str
    source: str  # the pair folder, or "preset"
    frames: int  # T
    threads: int
    gflops: dict[str, float]  # stem (one frame), head (one window), full (one clip)
    runs: list[StreamRun]
    not_measured: dict[str, str] = field(default_factory=dict)  # runner -> why
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    schema: str = STREAM_BENCH_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_strides(strides: Sequence[int], frames: int) -> tuple[int, ...]:
    """Each stride in 1..T, at least one; one line naming the bad value."""
    bad = [s for s in strides if not 1 <= s <= frames]
    if not strides or bad:
        raise IntiExportError(f"--stride {','.join(map(str, strides)) or '(none)'}: each stride must be 1..{frames}"
                              f" (T = {frames} frames per window)")
    return tuple(dict.fromkeys(int(s) for s in strides))


def time_stream(pair, full: Callable[[np.ndarray], Any], strides: Sequence[int], flops: dict[str, float], *,
                windows: int, warmup: int = 1, rounds: int = 1, seed: int = 0) -> StreamRun:
    """`pair` (a runtime.stream.StemHead) against `full` ((1, T, 3, H, W) -> output), window by window."""
    t, s = pair.frames, pair.image_size
    rng = np.random.default_rng(seed)
    rows = []
    for stride in strides:
        frames = rng.standard_normal((t + stride * (warmup + windows), 3, s, s), dtype=np.float32)
        cached_ms, full_ms, stem_ms, head_ms = [], [], [], []
        for _ in range(rounds):
            ring = [pair.stem(frames[i][None])[0] for i in range(t - stride)]  # (N, D) each: the warm ring
            for w in range(warmup + windows):
                end = t + w * stride
                start = time.perf_counter()
                new = [pair.stem(frames[i][None])[0] for i in range(end - stride, end)]  # S stems, one call each
                mid = time.perf_counter()
                ring = (ring + new)[-t:]
                pair.head(np.stack(ring)[None])  # (1, T, N, D)
                done = time.perf_counter()
                full(np.ascontiguousarray(frames[end - t:end])[None])  # (1, T, 3, H, W)
                full_done = time.perf_counter()
                if w >= warmup:
                    cached_ms.append((done - start) * 1e3)
                    stem_ms.append((mid - start) * 1e3 / stride)
                    head_ms.append((done - mid) * 1e3)
                    full_ms.append((full_done - done) * 1e3)
        c, f = statistics.median(cached_ms), statistics.median(full_ms)
        predicted = (stride * flops["stem"] + flops["head"]) / flops["full"]
        rows.append(StrideRow(stride, round(c, 3), round(f, 3), round(c / f, 4), round(predicted, 4),
                              round(statistics.median(stem_ms), 3), round(statistics.median(head_ms), 3), len(cached_ms)))
        logger.info("%s S=%d: cached %.2f ms, full %.2f ms, ratio %.3f (FLOPs predict %.3f)",
                    pair.name, stride, c, f, c / f, predicted)
    stem1 = statistics.median(r.stem_ms_per_frame for r in rows)
    head1 = statistics.median(r.head_ms for r in rows)
    full1 = statistics.median(r.full_ms for r in rows)
    latency = LatencyAtT(round(stem1 + head1, 3), round(full1, 3), round((stem1 + head1) / full1, 4),
                         round((flops["stem"] + flops["head"]) / flops["full"], 4))
    return StreamRun(pair.name, rows, latency)


def run_stream_bench(
    *,
    preset: str | None = None,
    pair_dir: str | Path | None = None,
    full_onnx: str | Path | None = None,
    runners: Sequence[str] = STREAM_RUNNERS,
    strides: Sequence[int] = (1, 2, 4, 8),
    windows: int = 6,
    warmup: int = 1,
    rounds: int = 1,
    threads: int | None = None,
    checkpoint: Path | None = None,
    work: str | Path | None = None,
) -> StreamBenchReport:
    """Cached stem + head against the whole model, per runner and stride (module docstring).

    `pair_dir`: the ONNX pair to time with `ort`; the whole model is `full_onnx`, else exported from
    the pair's config (weights do not change the timing; a converted pair needs `full_onnx` at its
    precision). `preset`: both exported from it. `work` keeps the exports (reused when present).
    """
    import torch

    from inti_export.models import create_model
    from inti_export.models.config import config_from_dict, get_config
    from inti_export.runtime.stream import TorchStemHead, load_stream_artifact

    bad = [r for r in runners if r not in STREAM_RUNNERS]
    if bad or not runners:
        raise IntiExportError(f"--runners {','.join(runners)}: a stream benchmark runs {' and '.join(STREAM_RUNNERS)}")
    if windows < 1 or warmup < 0 or rounds < 1:
        raise IntiExportError(f"windows={windows}, warmup={warmup}, rounds={rounds}: need >= 1, >= 0, >= 1")
    if (preset is None) == (pair_dir is None):
        raise IntiExportError("a stream benchmark times a pair folder (--onnx DIR) or a --preset: give one")
    artifact = None
    if pair_dir is not None:
        artifact = load_stream_artifact(pair_dir)
        if META_CONFIG not in artifact.meta:
            raise IntiExportError(f"{artifact.head_path} has no {META_CONFIG} metadata; re-export the pair")
        cfg = config_from_dict(artifact.meta[META_CONFIG])
        precision = artifact.meta.get(META_PRECISION, "fp32")
        if "ort" in runners and precision != "fp32" and full_onnx is None:
            raise IntiExportError(f"the pair in {pair_dir} is {precision}: pass --full-onnx with the whole model"
                                  f" at {precision} to compare like with like")
    else:
        cfg = get_config(preset)
    strides = check_strides(strides, cfg.frames)
    if full_onnx is not None:
        _check_full_onnx(Path(full_onnx), cfg)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    from inti_export.models.flops import count_split_flops

    flops = count_split_flops(cfg)
    model = create_model(cfg, checkpoint=checkpoint)
    runs: list[StreamRun] = []
    missed: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        folder = Path(work) if work is not None else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inti-sbench-")))
        for kind in runners:
            if kind == "torch":
                pair = TorchStemHead(model)
                runs.append(time_stream(pair, _torch_full(model), strides, flops, windows=windows, warmup=warmup, rounds=rounds))
                continue
            try:
                pair, full = _ort_pair(model, artifact, full_onnx, folder, threads, stack)
            except ImportError as e:
                missed[kind] = str(e)
                continue
            runs.append(time_stream(pair, full, strides, flops, windows=windows, warmup=warmup, rounds=rounds))
    return StreamBenchReport(cfg.name, str(pair_dir) if pair_dir is not None else "preset", cfg.frames, threads,
                             dict(flops), runs, missed, machine_info(), package_versions())


def _check_full_onnx(path: Path, cfg) -> None:
    from inti_export.jobs.inputs import onnx_metadata

    meta = onnx_metadata(path, what="--full-onnx")
    if meta.get(META_PART):
        raise IntiExportError(f"--full-onnx {path} is the {meta[META_PART]} of a stream pair: pass the whole model's"
                              " ONNX (`inti-export onnx`)")
    got = (meta.get(META_FRAMES), meta.get(META_IMAGE_SIZE))
    if got != (cfg.frames, cfg.image_size):
        raise IntiExportError(f"--full-onnx {path} takes {got[0]} frames of {got[1]} px; the pair takes"
                              f" {cfg.frames} of {cfg.image_size}: pass the whole model of the same preset")


def _torch_full(model) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    from inti_export.runtime.torch_runner import exact_fp32

    def run(video: np.ndarray) -> np.ndarray:  # (1, T, 3, H, W) -> (1, out)
        with torch.inference_mode(), exact_fp32():
            return model(torch.from_numpy(video)).numpy()

    return run


def _ort_pair(model, artifact, full_onnx, folder: Path, threads: int, stack: contextlib.ExitStack):
    """(OrtStemHead, whole-model callable): the given files, else exported into `folder` once."""
    from inti_export.exporter import export_onnx
    from inti_export.exporter.stream_export import export_stream
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.stream import OrtStemHead
    from inti_export.vocab import PAIR_MANIFEST

    name = model.cfg.name
    if artifact is None:
        pair_dir = folder / f"{name}-stream"
        if not (pair_dir / PAIR_MANIFEST).is_file():
            logger.info("exporting the stream pair of %s to %s", name, pair_dir)
            export_stream(model, pair_dir, verify=False)
        artifact = pair_dir
    if full_onnx is None:
        full_onnx = folder / f"{name}.onnx"
        if not full_onnx.is_file():
            logger.info("exporting the whole model %s to %s", name, full_onnx)
            export_onnx(model, full_onnx, verify=False)
    pair = OrtStemHead(artifact, threads=threads)
    full = stack.enter_context(OrtRunner(full_onnx, threads=threads, name="ort-full"))
    return pair, lambda video: full.infer({INPUT_NAME: video})


def plot_stream_bench(report: StreamBenchReport, path: Path) -> None:
    """Measured cached/full ratio per stride, one line per runner, beside the FLOP prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for run in report.runs:
        xs = [r.stride for r in run.strides]
        ax.plot(xs, [r.ratio for r in run.strides], "o-", label=f"{run.runner} measured")
    if report.runs:
        xs = [r.stride for r in report.runs[0].strides]
        ax.plot(xs, [r.predicted for r in report.runs[0].strides], "k--", label="FLOP prediction")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xlabel("stride S (new frames per window)")
    ax.set_ylabel("per-window compute, cached stem / full")
    ax.set_title(f"inti-export bench --stream: {report.preset}, T = {report.frames}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
