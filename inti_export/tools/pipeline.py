"""The whole chain in one call: export, calibrate, engine, parity, bench, and one summary."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inti_export.errors import IntiExportError, RuntimeUnavailableError

logger = logging.getLogger(__name__)

PIPELINE_SCHEMA = "inti-export/pipeline/1"


@dataclass
class Step:
    name: str
    status: str  # "ok", "failed", "skipped"
    seconds: float
    detail: str = ""
    artifact: str | None = None


@dataclass
class PipelineSummary:
    preset: str
    precision: str
    outdir: str
    steps: list[Step] = field(default_factory=list)
    passed: bool = False
    schema: str = PIPELINE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_pipeline(
    outdir: Path,
    *,
    preset: str = "inti-b16",
    precision: str = "fp32",
    videos: Path | None = None,
    checkpoint: Path | None = None,
    clip_checkpoint: Path | None = None,
    runtime: str = "auto",
    bench_iters: int = 5,
    bench_batches: tuple[int, ...] = (1,),
    compare_naive: bool = False,
    clips: int = 4,
    on_step=None,
) -> PipelineSummary:
    """Run every step for `preset`; each writes its artefact into `outdir`. Returns the summary."""
    from inti_export.tools.bench import run_bench
    from inti_export.tools.parity import run_parity
    from inti_export.fileio import write_json
    from inti_export.tools.workflows import clips_for, export_preset, model_for

    outdir.mkdir(parents=True, exist_ok=True)
    summary = PipelineSummary(preset, precision, str(outdir))

    def step(name, fn):
        t0 = time.perf_counter()
        if on_step:
            on_step(name)
        try:
            detail, artifact = fn()
            summary.steps.append(Step(name, "ok", time.perf_counter() - t0, detail, artifact))
        except RuntimeUnavailableError as e:
            summary.steps.append(Step(name, "skipped", time.perf_counter() - t0, str(e)))
        except IntiExportError as e:
            summary.steps.append(Step(name, "failed", time.perf_counter() - t0, str(e)))
            raise

    onnx_path = outdir / "model.onnx"
    state: dict[str, Any] = {"onnx": onnx_path}

    def export():
        sub = (lambda text: on_step(f"export: {text}")) if on_step else None
        res = export_preset(
            onnx_path, preset=preset, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, videos=videos, on_step=sub
        )
        v = res.verification
        return f"{res.manifest['inti_nodes']} TokenInterpolate nodes; ORT vs PyTorch rel err {v.rel_err:.1e}, cosine {v.cosine:.7f}", str(onnx_path)

    def calibrate():
        from inti_export.calibration.precision import convert_precision

        out = outdir / f"model.{precision}.onnx"
        convert_precision(onnx_path, precision, out, calib_data=videos)
        state["onnx"] = out
        return f"{precision} ONNX", str(out)

    def engine():
        from inti_export.runtime.trt import BuildConfig, build_engine, load_trt_module

        load_trt_module(runtime)  # RuntimeUnavailableError -> skipped
        path = outdir / f"model.{precision}.engine"
        m = build_engine(state["onnx"], path, BuildConfig(runtime=runtime))
        state["engine"] = path
        return f"{m.runtime} {m.runtime_version}, {m.engine_size / 2**20:.1f} MiB, built in {m.build_time_s:.1f} s", str(path)

    def parity():
        model = model_for(preset, None, checkpoint, clip_checkpoint)
        video, names = clips_for(model.cfg, videos, None, clips)
        rep = run_parity(model, video, names, onnx_path=state["onnx"], engine_path=state.get("engine"), tolerance=precision,
                         allow_skip=True)  # the engine is checked where a GPU is; the summary says so
        path = outdir / "parity.json"
        write_json(path, rep.to_dict())
        lines = [f"{c.runner}: cosine {c.cosine_min:.6f}, rel err {c.rel_to_scale:.1e}, {'pass' if c.passed else 'FAIL'}" for c in rep.comparisons]
        lines += [f"{k} skipped: {v}" for k, v in rep.skipped.items()]
        if not rep.passed:
            where = f"; first divergence: {rep.divergence.first}" if rep.divergence and rep.divergence.first else ""
            raise IntiExportError("parity failed: " + "; ".join(lines) + where)
        return "; ".join(lines), str(path)

    def bench():
        runners = ("torch", "ort") + (("trt",) if "engine" in state else ())
        rep = run_bench(preset, runners=runners, batches=bench_batches, iters=bench_iters, warmup=1,
                        onnx_path=state["onnx"], engine_path=state.get("engine"), compare_naive=compare_naive, checkpoint=checkpoint)
        path = outdir / "bench.json"
        write_json(path, rep.to_dict())
        parts = [f"{r.preset} {r.runner} b{r.batch}: p50 {r.p50_ms:.0f} ms" for r in rep.rows]
        parts += [f"{s.runner} InTI/naive latency {s.latency_ratio:.3f} vs FLOPs {s.flop_ratio:.3f}" for s in rep.speedups]
        parts += [f"{k} skipped: {v}" for k, v in rep.skipped.items()]
        return "; ".join(parts), str(path)

    try:
        step("export", export)
        if precision != "fp32":
            step("calibrate", calibrate)
        step("engine", engine)
        step("parity", parity)
        step("bench", bench)
        summary.passed = True
    except IntiExportError:
        summary.passed = False
    write_json(outdir / "summary.json", summary.to_dict())
    return summary
