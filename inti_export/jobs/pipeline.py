"""The whole chain in one call: export, calibrate, engine, parity, bench, and one summary.

Each step is a function of the `_Run` it reads and extends (the artifacts made so far) and
returns `(detail, artifact)`; `run_pipeline` records each as a `Step` with its `vocab.Status` and
reason (docs/reports.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inti_export.errors import IntiExportError, RuntimeUnavailableError
from inti_export.vocab import Status

logger = logging.getLogger(__name__)

PIPELINE_SCHEMA = "inti-export/pipeline/1"


@dataclass
class Step:
    """One step: `ok`; `skipped` (the machine lacks what it needs, or the user gave its artifact);
    `failed` (the chain stops). `reason` says why when not ok; `detail` what the step did or found."""

    name: str
    status: Status
    seconds: float
    detail: str = ""
    artifact: str | None = None
    reason: str = ""


@dataclass
class PipelineSummary:
    preset: str
    precision: str
    outdir: str
    steps: list[Step] = field(default_factory=list)
    passed: bool = False
    schema: str = PIPELINE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for s in d["steps"]:
            s["status"] = Status(s["status"]).value
        return d


@dataclass
class PipelineOptions:
    """What the user chose; `check_pipeline_options` validates it (and fills in the preset) before the first step."""

    preset: str | None = None  # None: the preset `onnx` was exported from, else inti-b16
    precision: str = "fp32"
    videos: Path | None = None
    checkpoint: Path | None = None
    clip_checkpoint: Path | None = None
    runtime: str = "auto"
    bench_iters: int = 5
    bench_batches: tuple[int, ...] = (1,)
    compare_naive: bool = False
    clips: int = 4
    onnx: Path | None = None  # an ONNX of `preset` from `inti-export onnx`: copied in instead of exporting


@dataclass
class _Run:
    """The artifacts made so far in `outdir`."""

    opts: PipelineOptions
    outdir: Path
    on_step: Callable[[str], None] | None
    onnx: Path | None = None  # the ONNX the engine, parity and bench use (converted when precision != fp32)
    engine: Path | None = None


def _export(run: _Run) -> tuple[str, str]:
    from inti_export.exporter import export_preset
    from inti_export.jobs.inputs import verification_clips

    o = run.opts
    path = run.outdir / "model.onnx"
    clips, names = verification_clips(o.preset, o.videos)
    sub = (lambda text: run.on_step(f"export: {text}")) if run.on_step else None
    res = export_preset(path, preset=o.preset, checkpoint=o.checkpoint, clip_checkpoint=o.clip_checkpoint,
                        clips=clips, clip_names=names, on_step=sub)
    run.onnx = path
    v = res.verification
    detail = f"{res.manifest['inti_nodes']} TokenInterpolate nodes; ORT vs PyTorch rel err {v.rel_err:.1e}, cosine {v.cosine:.7f}"
    return detail, str(path)


def _copy_onnx(run: _Run) -> tuple[str, str]:
    """The given ONNX (and its manifest, if any) copied into `outdir`, so the folder stands alone."""
    import shutil

    from inti_export.fileio import atomic_output

    given, path = run.opts.onnx, run.outdir / "model.onnx"
    for src, dst in ((given, path), (given.with_name(given.name + ".json"), path.with_name(path.name + ".json"))):
        if not src.is_file() or (dst.exists() and src.samefile(dst)):
            continue
        with atomic_output(dst) as tmp:
            shutil.copyfile(src, tmp)
    run.onnx = path
    return f"given: --onnx {run.opts.onnx}, copied in as {path.name} (not exported)", str(path)


def _calibrate(run: _Run) -> tuple[str, str]:
    from inti_export.calibration.precision import convert_precision

    precision = run.opts.precision
    out = run.outdir / f"model.{precision}.onnx"
    convert_precision(run.onnx, precision, out, calib_data=run.opts.videos)
    run.onnx = out
    return f"{precision} ONNX", str(out)


def _engine(run: _Run) -> tuple[str, str]:
    from inti_export.runtime.trt import BuildConfig, build_engine, load_trt_module

    load_trt_module(run.opts.runtime)  # RuntimeUnavailableError: the step is skipped
    path = run.outdir / f"model.{run.opts.precision}.engine"
    m = build_engine(run.onnx, path, BuildConfig(runtime=run.opts.runtime))
    run.engine = path
    return f"{m.runtime} {m.runtime_version}, {m.engine_size / 2**20:.1f} MiB, built in {m.build_time_s:.1f} s", str(path)


def _parity(run: _Run) -> tuple[str, str]:
    from inti_export.checks.parity import run_parity
    from inti_export.fileio import write_json
    from inti_export.jobs.inputs import clips_for, model_for

    o = run.opts
    model = model_for(o.preset, None, o.checkpoint, o.clip_checkpoint)
    video, names = clips_for(model.cfg, o.videos, None, o.clips)
    # the engine is checked here as far as a machine without a GPU can (file, hashes, provenance) and
    # run where a GPU is; the summary says which runners were skipped
    rep = run_parity(model, video, names, onnx_path=run.onnx, engine_path=run.engine, tolerance=o.precision,
                     allow_skip=True)
    path = run.outdir / "parity.json"
    write_json(path, rep.to_dict())
    lines = [f"{c.runner}: cosine {c.cosine_min:.6f}, rel err {c.rel_to_scale:.1e}, {'pass' if c.passed else 'FAIL'}"
             for c in rep.comparisons]
    lines += [f"{k} skipped: {v}" for k, v in rep.skipped.items()]
    if not rep.passed:
        where = f"; first divergence: {rep.divergence.first}" if rep.divergence and rep.divergence.first else ""
        raise IntiExportError("parity failed: " + "; ".join(lines) + where)
    return "; ".join(lines), str(path)


def _bench(run: _Run) -> tuple[str, str]:
    from inti_export.fileio import write_json
    from inti_export.jobs.bench import run_bench

    o = run.opts
    runners = ("torch", "ort") + (("trt",) if run.engine is not None else ())
    rep = run_bench(o.preset, runners=runners, batches=o.bench_batches, iters=o.bench_iters, warmup=1,
                    onnx_path=run.onnx, engine_path=run.engine, compare_naive=o.compare_naive, checkpoint=o.checkpoint)
    path = run.outdir / "bench.json"
    write_json(path, rep.to_dict())
    parts = [f"{r.preset} {r.runner} b{r.batch}: p50 {r.p50_ms:.0f} ms" for r in rep.rows]
    parts += [f"{s.runner} InTI/naive latency {s.latency_ratio:.3f} vs FLOPs {s.flop_ratio:.3f}" for s in rep.speedups]
    parts += [f"{k} not measured: {v}" for k, v in rep.why_not_measured().items()]
    return "; ".join(parts), str(path)


def check_pipeline_options(outdir: Path, opts: PipelineOptions) -> PipelineOptions:
    """Every option checked before the first (slow) step, one line naming the bad value; returns
    `opts` with the preset filled in."""
    import dataclasses

    from inti_export.fileio import check_output_dir
    from inti_export.jobs.inputs import check_input_files, check_inputs_exist, check_weights, model_for
    from inti_export.models.config import get_config
    from inti_export.vocab import META_PRECISION, META_PRESET, Precision, TrtRuntime, values

    check_output_dir(outdir, "output")
    meta = {}
    if opts.onnx is not None:
        from inti_export.jobs.inputs import onnx_metadata

        meta = onnx_metadata(opts.onnx, what="--onnx")
    opts = dataclasses.replace(opts, preset=opts.preset or meta.get(META_PRESET) or "inti-b16")
    get_config(opts.preset)
    if opts.precision not in values(Precision):
        raise IntiExportError(f"precision {opts.precision!r}: choose {', '.join(values(Precision))}")
    if opts.runtime not in values(TrtRuntime):
        raise IntiExportError(f"runtime {opts.runtime!r}: choose {', '.join(values(TrtRuntime))}")
    if opts.bench_iters < 1 or opts.clips < 1 or any(b < 1 for b in opts.bench_batches):
        raise IntiExportError(
            f"iters={opts.bench_iters}, clips={opts.clips}, batches={list(opts.bench_batches)}: each must be >= 1"
        )
    check_inputs_exist(videos=opts.videos)
    check_input_files(checkpoint=opts.checkpoint, clip_checkpoint=opts.clip_checkpoint)
    if opts.onnx is not None:
        made_from = meta.get(META_PRESET)
        if made_from is None:
            raise IntiExportError(f"--onnx {opts.onnx} has no {META_PRESET} metadata: export it with `inti-export onnx`")
        if made_from != opts.preset:
            raise IntiExportError(
                f"--onnx {opts.onnx} was exported from preset {made_from!r}, not {opts.preset!r}:"
                f" pass --preset {made_from} or export {opts.preset} with `inti-export onnx`"
            )
        given = meta.get(META_PRECISION, Precision.fp32.value)
        if given != Precision.fp32.value:
            raise IntiExportError(
                f"--onnx {opts.onnx} is {given} ({META_PRECISION}): give the FP32 export; the pipeline converts"
                f" it to --precision {opts.precision} itself"
            )
        # its manifest's weights against the model the parity step builds (no model without a manifest)
        check_weights(opts.onnx, lambda: model_for(opts.preset, None, opts.checkpoint, opts.clip_checkpoint),
                      opts.checkpoint)
    return opts


def run_pipeline(
    outdir: Path, opts: PipelineOptions | None = None, *, on_step: Callable[[str], None] | None = None, **kwargs: Any
) -> PipelineSummary:
    """Run every step for `opts` (or `PipelineOptions(**kwargs)`); each writes its artifact into `outdir`."""
    from inti_export.fileio import write_json

    outdir = Path(outdir)
    opts = check_pipeline_options(outdir, opts or PipelineOptions(**kwargs))
    outdir.mkdir(parents=True, exist_ok=True)
    run = _Run(opts, outdir, on_step)
    summary = PipelineSummary(opts.preset, opts.precision, str(outdir))
    steps = [("export", _copy_onnx if opts.onnx is not None else _export)]
    if opts.precision != "fp32":
        steps.append(("calibrate", _calibrate))
    steps += [("engine", _engine), ("parity", _parity), ("bench", _bench)]
    summary.passed = True
    for name, fn in steps:
        if on_step:
            on_step(name)
        t0 = time.perf_counter()
        try:
            detail, artifact = fn(run)
        except RuntimeUnavailableError as e:
            summary.steps.append(Step(name, Status.skipped, time.perf_counter() - t0, reason=str(e)))
            continue
        except IntiExportError as e:
            summary.steps.append(Step(name, Status.failed, time.perf_counter() - t0, reason=str(e)))
            summary.passed = False
            break
        if fn is _copy_onnx:  # the user gave the step's artifact: nothing was made
            step = Step(name, Status.skipped, time.perf_counter() - t0, detail, artifact, reason="the artifact was given")
        else:
            step = Step(name, Status.ok, time.perf_counter() - t0, detail, artifact)
        summary.steps.append(step)
    write_json(outdir / "summary.json", summary.to_dict())
    return summary
