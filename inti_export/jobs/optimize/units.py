"""The units of an optimize search, each made once through the single command's function and cached:

    export_unit       the FP32 ONNX (`export_preset`, as `inti-export onnx`; or the user's --onnx)
    reference_unit    PyTorch FP32 outputs on the held-out clips
    precision_onnx    each precision's (and INT8 variant's) ONNX (`convert_precision`, as `inti-export calibrate`)
    engine_unit       a TensorRT engine (`build_engine`, as `inti-export trt`)
    as_quantized_unit an INT8 ONNX's accuracy as quantised (ORT as-quantized), once per variant
    make_candidate    one runner x precision x variant x settings: artifact, accuracy (gate.py), speed (speed.py)

Each unit's key covers its inputs and settings (cache.py); docs/optimize.md describes the method.
"""

from __future__ import annotations

import copy
import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, RuntimeUnavailableError, one_line
from inti_export.fileio import atomic_output
from inti_export.jobs.optimize.cache import Cache, array_sha256, content_key
from inti_export.jobs.optimize.clips import ClipSplit
from inti_export.jobs.optimize.gate import accuracy
from inti_export.jobs.optimize.options import OptimizeOptions
from inti_export.jobs.optimize.report import Accuracy, Candidate
from inti_export.jobs.optimize.speed import SWEEP_MAX_BATCH, infer_sessions, measure_speed
from inti_export.jobs.optimize.variants import Int8Variant, settings_label
from inti_export.runtime.base import infer_clips
from inti_export.runtime.timing import machine_info
from inti_export.vocab import RunnerKind, Status, TorchPrecision, package_versions, values

TORCH_KINDS = (RunnerKind.torch.value, RunnerKind.torch_compile.value, RunnerKind.torch_kernel.value)
ORT_MODE = "as-executed"  # ORT runners are timed as deployed; accuracy is what that same runner computes


def environment(threads: int) -> dict[str, Any]:
    """Versions, machine (CPU/GPU), threads and ORT providers: part of every candidate's key."""
    import onnxruntime

    return {"versions": package_versions(), "machine": machine_info(), "threads": threads,
            "ort_providers": onnxruntime.get_available_providers()}


def command_line(opts: OptimizeOptions, out: Path, runners: tuple[str, ...], precisions: tuple[str, ...],
                 variant: str | None = None, sessions: int | None = None) -> str:
    """The `inti-export optimize` line that remakes exactly these candidates (same keys) in `out`; with
    `variant` and `sessions`, exactly that INT8 variant at that session count."""
    args = ["inti-export", "optimize"]
    args += ["--preset", opts.preset] if opts.preset else ["--onnx", str(opts.onnx)]
    for flag, value in (("--checkpoint", opts.checkpoint), ("--videos", opts.videos), ("--threads", opts.threads),
                        ("--labels", opts.labels)):
        if value is not None:
            args += [flag, str(value)]
    args += ["--runners", ",".join(runners), "--precisions", ",".join(precisions)]
    if opts.batches:
        args += ["--batch", ",".join(map(str, opts.batches))]
    elif opts.max_latency_ms is not None:
        args += ["--max-latency-ms", str(opts.max_latency_ms)]
    args += ["--iters", str(opts.iters), "--warmup", str(opts.warmup)]
    args += ["--max-top1-drop", str(opts.max_top1_drop)] if opts.labels is not None else ["--clips", str(opts.clips)]
    args += ["--calib-clips", str(opts.calib_clips)]
    args += ["--run-emulated"] if opts.run_emulated else []
    args += ["--int8-variants", variant] if variant else []
    args += ["--sessions", str(sessions)] if sessions else []
    args += ["-o", str(out)]
    return shlex.join(args)


@dataclass
class Search:
    """One search: what the user chose, the model and clips, and the artifacts made so far."""

    opts: OptimizeOptions
    out: Path
    cache: Cache
    model: Any  # the PyTorch FP32 model (the reference); torch candidates run deep copies
    split: ClipSplit
    source: dict[str, Any]
    env: dict[str, Any]
    env_key: str
    head: np.ndarray | None
    head_text: str
    notes: list[str] = field(default_factory=list)  # for the report
    ref: np.ndarray | None = None
    ref_rel: str | None = None
    fp32_onnx: Path | None = None
    fp32_key: str = ""
    onnx: dict[str, tuple[Path, str]] = field(default_factory=dict)  # precision or variant -> (path, unit key)
    as_quantized: dict[str, Any] = field(default_factory=dict)  # INT8 variant -> Accuracy as quantised (or None)


def export_unit(search: Search) -> None:
    """The FP32 ONNX: the user's --onnx, or `export_preset` into artifacts/onnx-fp32-<hash>/."""
    from inti_export.exporter import ExportSpec, export_preset

    o = search.opts
    if o.onnx is not None:
        search.fp32_onnx, search.fp32_key = Path(o.onnx), search.source["onnx_sha256"]
        return
    spec = ExportSpec()
    parts = {"unit": "export", "source": search.source, "spec": asdict(spec), "versions": search.env["versions"]}

    def make(folder: Path) -> dict[str, Any]:
        path = folder / "model.onnx"
        res = export_preset(path, preset=o.preset, checkpoint=o.checkpoint, spec=spec,
                            clips=search.split.heldout[:2], clip_names=search.split.heldout_names[:2])
        v = res.verification
        return {"files": [path, res.manifest_path], "artifact": search.cache.rel(path),
                "verification": asdict(v) if v else None}

    rec = search.cache.unit("artifacts", "onnx-fp32", parts, make)
    search.fp32_onnx, search.fp32_key = search.cache.path(rec["artifact"]), rec["key"]


def reference_unit(search: Search) -> None:
    """PyTorch FP32 outputs on the held-out clips, computed once."""
    from inti_export.runtime.torch_runner import TorchRunner

    parts = {"unit": "reference", "source": search.source, "heldout": array_sha256(search.split.heldout),
             "versions": search.env["versions"]}

    def make(folder: Path) -> dict[str, Any]:
        with TorchRunner(copy.deepcopy(search.model)) as runner:
            ref = infer_clips(runner, search.split.heldout, 1, dtype=np.float64)  # (K, E) or (K, classes)
        path = folder / "reference.npy"
        with atomic_output(path) as tmp, open(tmp, "wb") as f:
            np.save(f, ref)
        return {"files": [path], "artifact": search.cache.rel(path), "shape": list(ref.shape)}

    rec = search.cache.unit("artifacts", "reference", parts, make)
    search.ref_rel = rec["artifact"]
    search.ref = np.load(search.cache.path(rec["artifact"]), allow_pickle=False)


def precision_onnx(search: Search, precision: str, variant: Int8Variant | None = None) -> tuple[Path, str]:
    """The ONNX at `precision`: the FP32 one, or `convert_precision` of it (calibration clips only); INT8
    as `variant` (default: what `calibrate -p int8` writes)."""
    from inti_export.calibration.precision import convert_precision

    if precision == "fp32":
        return search.fp32_onnx, search.fp32_key
    if precision == "int8":
        variant = variant or Int8Variant()
    name = variant.name if variant else precision
    if name not in search.onnx:
        quantised = precision in ("int8", "fp8")
        parts = {"unit": "convert", "fp32": search.fp32_key, "precision": precision, "backend": "auto",
                 "method": variant.method if variant else "max", "variant": asdict(variant) if variant else None,
                 "calibration": array_sha256(search.split.calibration) if quantised else None,
                 "versions": search.env["versions"]}
        kwargs = variant.convert_kwargs() if variant else {}

        def make(folder: Path) -> dict[str, Any]:
            path = folder / f"model.{precision}.onnx"
            convert_precision(search.fp32_onnx, precision, path, calib_data=search.split.calibration if quantised else None,
                              **kwargs)
            return {"files": [path, search.fp32_onnx], "artifact": search.cache.rel(path),
                    "calibration_clips": search.split.calibration_names if quantised else []}

        rec = search.cache.unit("artifacts", f"onnx-{name}", parts, make)
        search.onnx[name] = (search.cache.path(rec["artifact"]), rec["key"])
    return search.onnx[name]


def as_quantized_unit(search: Search, variant: Int8Variant) -> Accuracy | None:
    """The INT8 variant's accuracy as quantised on the held-out clips: ONNX Runtime with its Q/DQ kept as
    written (OrtMode.as_quantized), the quantisation's own arithmetic, the same on every CPU; None (and a
    note) when it cannot be computed."""
    from inti_export.runtime.ort_runner import OrtMode, OrtRunner

    if variant.name in search.as_quantized:
        return search.as_quantized[variant.name]
    onnx_path, art_key = precision_onnx(search, "int8", variant)
    parts = {"unit": "as-quantized", "artifact": art_key, "reference": search.ref_rel,
             "heldout": array_sha256(search.split.heldout), "env": search.env_key}

    def make(folder: Path) -> dict[str, Any]:
        with OrtRunner(onnx_path, threads=search.env["threads"], mode=OrtMode.as_quantized) as runner:
            out = infer_clips(runner, search.split.heldout, 1, dtype=np.float64)  # (K, E) or (K, classes)
        acc = accuracy(out, search.ref, search.head, search.head_text, f"{runner.name} ({runner.mode_label})")
        return {"files": [search.cache.path(search.ref_rel), onnx_path], "accuracy": asdict(acc)}

    try:
        rec = search.cache.unit("accuracy", f"as-quantized-{variant.name}", parts, make)
        acc = Accuracy(**rec["accuracy"])
    except Exception as e:  # noqa: BLE001 - ORT raises its own types; the candidates still run
        search.notes.append(f"{variant.name}: accuracy as quantised not computed: {type(e).__name__}: {one_line(e)}")
        acc = None
    search.as_quantized[variant.name] = acc
    return acc


def engine_unit(search: Search, precision: str) -> tuple[Path, str]:
    """A TensorRT engine of the precision's ONNX (`build_engine`), batch profile covering the search."""
    from inti_export.runtime.trt import BuildConfig, build_engine, load_trt_module

    src, src_key = precision_onnx(search, precision)
    trt = load_trt_module("auto")  # RuntimeUnavailableError: no TensorRT module here
    top = max(search.opts.batches) if search.opts.batches else SWEEP_MAX_BATCH
    config = BuildConfig(batch=(1, min(top, max(1, top // 2)) if top > 1 else 1, top))
    parts = {"unit": "engine", "onnx": src_key, "config": asdict(config), "trt": trt.__version__,
             "machine": search.env["machine"]}

    def make(folder: Path) -> dict[str, Any]:
        path = folder / f"model.{precision}.engine"
        m = build_engine(src, path, config)
        return {"files": [path, path.with_name(path.name + ".json"), src], "artifact": search.cache.rel(path),
                "runtime": f"{m.runtime} {m.runtime_version}", "profile": list(m.profile_batch)}

    rec = search.cache.unit("artifacts", f"engine-{precision}", parts, make)
    return search.cache.path(rec["artifact"]), rec["key"]


def _unsupported(runner: str, precision: str) -> str | None:
    """Why no runner of this kind takes `precision` (PyTorch casts to its own precisions only)."""
    if runner in TORCH_KINDS and precision not in values(TorchPrecision):
        return f"the PyTorch runner casts to {', '.join(values(TorchPrecision))} only; {precision} is an ONNX/engine precision"
    return None


def _emulated(opts: OptimizeOptions, runner: str, precision: str) -> str | None:
    """Why a PyTorch half-precision candidate is not run on this CPU (it would emulate the arithmetic)."""
    from inti_export.runtime.torch_runner import emulated_on_cpu

    if runner not in TORCH_KINDS or opts.run_emulated:
        return None
    why = emulated_on_cpu(precision)
    return f"{why}; it could not be the fastest (--run-emulated runs it anyway)" if why else None


def candidate_parts(runner_kind: str, precision: str, variant: str | None, settings: dict[str, Any], art_key: str,
                    search: Search) -> dict[str, Any]:
    """The inputs and settings a candidate's cache key covers (cache.py)."""
    o = search.opts
    return {"unit": "candidate", "runner": runner_kind, "precision": precision, "variant": variant,
            "settings": settings, "artifact": art_key, "reference": search.ref_rel,
            "heldout": array_sha256(search.split.heldout), "batches": o.batches,
            "labels": None if search.split.labels is None else array_sha256(search.split.labels),
            "iters": o.iters, "warmup": o.warmup, "env": search.env_key,
            "ort_mode": ORT_MODE if runner_kind.startswith("ort") else None,
            "max_latency_ms": o.max_latency_ms if not o.batches else None,
            "runner_config": _ov_config(settings) if runner_kind == "ov" else None}


def _ov_config(settings: dict[str, Any]) -> dict[str, str]:
    """The properties OpenVINO compiles with for these settings: a change in how the runner maps settings to
    properties (e.g. CPU pinning, docs/openvino.md) makes a new candidate, not a stale cached one."""
    from inti_export.runtime.ov_runner import OvRunner

    return OvRunner("model.onnx", threads=settings["threads"], hint=settings["ov_hint"] or "latency",
                    streams=settings["ov_streams"]).config()


def _runners(search: Search, runner_kind: str, precision: str, onnx_path, engine_path, settings: dict[str, Any]) -> list:
    """The candidate's runners, one per session, set up as `settings` says (not yet active)."""
    from inti_export.runtime.factory import make_runner

    out = []
    for _ in range(settings["sessions"]):
        if runner_kind == "ov":
            from inti_export.runtime.ov_runner import OvRunner

            out.append(OvRunner(onnx_path, threads=settings["threads"], hint=settings["ov_hint"] or "latency",
                                streams=settings["ov_streams"]))
            continue
        model = copy.deepcopy(search.model) if runner_kind in TORCH_KINDS else None
        out.append(make_runner(runner_kind, model, onnx_path, engine_path, "cpu", settings["threads"],
                               precision if runner_kind in TORCH_KINDS else "fp32",
                               ort_mode=ORT_MODE if runner_kind.startswith("ort") else None))
    return out


def make_candidate(search: Search, runner_kind: str, precision: str, variant: Int8Variant | None = None,
                   settings: dict[str, Any] | None = None) -> Candidate:
    """Make (or take from the cache) one candidate: its artifact, accuracy and speed, run by `settings`
    (threads per session, sessions run at once, OpenVINO's hint and streams)."""
    o = search.opts
    settings = settings or {"threads": search.env["threads"], "sessions": 1, "ov_hint": None, "ov_streams": None}
    vname = variant.name if variant else None
    n = settings["sessions"]
    base_id = f"{runner_kind}-{vname or precision}" + (f"-s{n}" if n > 1 else "")
    label = f"{runner_kind} {vname or precision} {settings_label(settings)}"
    command = command_line(o, search.out, (runner_kind,), (precision,), vname,
                           n if runner_kind in ("ort", "ov") else None)
    meta = {"variant": vname, "settings": settings, "label": label, "command": command}
    why = _unsupported(runner_kind, precision)
    if why:
        return Candidate(base_id, runner_kind, precision, Status.skipped.value, why, **meta)
    why = _emulated(o, runner_kind, precision)
    if why:
        return Candidate(base_id, runner_kind, precision, Status.not_run.value, why, **meta)
    onnx_path = engine_path = None
    try:
        if runner_kind.startswith("ort") or runner_kind == "ov":  # ONNX Runtime and OpenVINO run the ONNX
            onnx_path, art_key = precision_onnx(search, precision, variant)
        elif runner_kind == "trt":
            engine_path, art_key = engine_unit(search, precision)
        else:
            art_key = content_key(search.source)
    except RuntimeUnavailableError as e:  # no module to make it with here (e.g. no TensorRT)
        return Candidate(base_id, runner_kind, precision, Status.skipped.value, one_line(e), **meta)
    except IntiExportError as e:
        return Candidate(base_id, runner_kind, precision, Status.failed.value, one_line(e), **meta)
    artifact = onnx_path or engine_path
    ort_mode = ORT_MODE if runner_kind.startswith("ort") else None
    parts = candidate_parts(runner_kind, precision, vname, settings, art_key, search)

    def make(folder: Path) -> dict[str, Any]:
        files = [search.cache.path(search.ref_rel)] + ([artifact] if artifact else [])
        body: dict[str, Any] = {"files": files, "runner": runner_kind, "precision": precision, **meta,
                                "artifact": search.cache.rel(artifact) if artifact else None,
                                "artifact_sha256": search.cache.sha256(artifact) if artifact else None,
                                "environment": search.env}
        runners = []
        try:
            runners = _runners(search, runner_kind, precision, onnx_path, engine_path, settings)
            for r in runners:
                r.activate()
        except Exception as e:  # noqa: BLE001 - a runtime that cannot load here: reported, never chosen
            for r in runners:
                r.deactivate()
            return {**body, "status": Status.not_run.value, "reason": one_line(e)}
        try:
            runner = runners[0]
            how = runner.name + (f" ({runner.mode_label})" if ort_mode else "") + f", {settings_label(settings)}"
            chunk = max(o.batches) if o.batches else 1
            out = infer_sessions(runners, search.split.heldout, chunk)  # (K, E) or (K, classes)
            acc = accuracy(out, search.ref, search.head, search.head_text, how, search.split.labels)
            rows, stop = measure_speed(runners, search.split.heldout, o.batches, o.iters, o.warmup, o.max_latency_ms)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 - ORT and torch raise their own types; record and go on
            return {**body, "status": Status.failed.value, "reason": f"{type(e).__name__}: {one_line(e)}"}
        finally:
            for r in runners:
                r.deactivate()
        note = ""
        if ort_mode and precision in ("int8", "fp8"):
            note = ("accuracy as ONNX Runtime executes it (fused integer kernels), the runner that is timed; on x86"
                    " without VNNI this can differ from the quantised model's own arithmetic (docs/precision.md)")
        return {**body, "status": Status.ok.value, "accuracy": asdict(acc), "speed": [asdict(r) for r in rows],
                "sweep_stop": stop, "note": note}

    try:
        rec = search.cache.unit("candidates", base_id, parts, make)
    except (IntiExportError, ImportError) as e:
        return Candidate(base_id, runner_kind, precision, Status.failed.value, one_line(e), **meta)
    c = Candidate.from_dict({**rec, "id": Path(rec["folder"]).name, "cached": rec["cached"],
                             "seconds": 0.0 if rec["cached"] else rec["seconds"]})
    if variant is not None and c.status == Status.ok.value:
        c.accuracy_as_quantized = as_quantized_unit(search, variant)
    return c
