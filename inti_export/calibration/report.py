"""Precision report: each converted ONNX against the FP32 one, on the same real clips, in ORT CPU.

    precision_report(fp32_onnx, {"fp16": path, "int8": path}, clips) -> dict (JSON-ready)
    write_report(report, "report.md" | "report.json")

Per precision: embedding cosine vs FP32 (mean and min over clips), top-1/top-5 agreement of a
fixed-seed random 400-class linear head applied to the embeddings, ORT CPU latency (median of
`runs` timed batch-1 runs after one warm-up) and file size. A model ONNX Runtime's CPU provider
cannot run (BF16 has no CPU kernels) is reported as not runnable, with ORT's reason; for BF16 the
accuracy is then measured on an FP32 emulation of it (`emulate_bf16`).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import CalibrationError
from inti_export.vocab import INPUT_NAME

NOT_RUNNABLE = "not runnable on ORT CPU"


def random_head(dim: int, num_classes: int = 400, seed: int = 0) -> np.ndarray:
    """The fixed linear head `(dim, num_classes)` float64: N(0, 1/dim) from numpy's PCG64 with `seed`.

    Applied to L2-normalised embeddings, like a zero-shot head of class text embeddings.
    """
    return np.random.default_rng(seed).standard_normal((dim, num_classes)) / np.sqrt(dim)


def _session(path: str | os.PathLike):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    # NCHWc rewriting crashes ORT on some FP16 graphs (docs/precision.md); off for every model alike.
    return ort.InferenceSession(
        str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"]
    )


def _run(path, clips: np.ndarray, runs: int) -> tuple[np.ndarray, list[float]]:
    """Outputs for every clip (batch 1) and `runs` timed batch-1 runs after one warm-up, in ms."""
    sess = _session(path)
    outputs = np.concatenate([sess.run(None, {INPUT_NAME: clips[i : i + 1]})[0] for i in range(len(clips))])
    x = clips[:1]
    if runs:
        sess.run(None, {INPUT_NAME: x})  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sess.run(None, {INPUT_NAME: x})
        times.append((time.perf_counter() - start) * 1e3)
    return outputs.astype(np.float64), times


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-30)


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def _logits(outputs: np.ndarray, head: np.ndarray | None) -> np.ndarray:
    if head is None:  # the model ends in its own classifier
        return outputs
    return (outputs / (np.linalg.norm(outputs, axis=1, keepdims=True) + 1e-30)) @ head


def precision_report(
    fp32_onnx: str | os.PathLike,
    variants: dict[str, str | os.PathLike],
    clips: np.ndarray,
    num_classes: int = 400,
    seed: int = 0,
    runs: int = 5,
    clip_names: list[str] | None = None,
) -> dict[str, Any]:
    """Compare each variant with the FP32 model on `clips` (K, T, 3, H, W); see the module doc.

    Top-1 agreement: share of clips whose top-1 class is the FP32 model's. Top-5 agreement: mean
    overlap |top5(variant) & top5(fp32)| / 5. When the model outputs `logits` (it has its own
    classifier) those are used instead of the random head.
    """
    from inti_export.vocab import read_metadata

    clips = np.ascontiguousarray(clips, dtype=np.float32)
    if clips.ndim != 5 or len(clips) == 0:
        raise CalibrationError(f"report clips have shape {clips.shape}; expected (K, T, 3, H, W) with K >= 1")
    if runs < 1:
        raise CalibrationError(f"runs={runs} must be at least 1")
    meta = read_metadata(fp32_onnx)
    ref, ref_times = _run(fp32_onnx, clips, runs)
    is_logits = any(o.get("name") == "logits" for o in meta.get("inti.outputs", []))
    head = None if is_logits else random_head(ref.shape[1], num_classes, seed)
    ref_logits = _logits(ref, head)
    ref_top5 = _topk(ref_logits, 5)

    def entry(path, precision) -> dict[str, Any]:
        return {"precision": precision, "path": str(path), "size_mib": round(Path(path).stat().st_size / 2**20, 2)}

    def compare(out: np.ndarray) -> dict[str, float]:
        cos = _cosine(out, ref)
        top5 = _topk(_logits(out, head), 5)
        overlap = [len(set(a) & set(b)) / 5 for a, b in zip(top5, ref_top5)]
        return {
            "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()),
            "top1_agreement": float(np.mean(top5[:, 0] == ref_top5[:, 0])),
            "top5_agreement": float(np.mean(overlap)),
        }

    rows = {"fp32": {**entry(fp32_onnx, "fp32"), "runnable": True, "cosine_mean": 1.0, "cosine_min": 1.0,
                     "top1_agreement": 1.0, "top5_agreement": 1.0, **_latency(ref_times)}}
    for precision, path in variants.items():
        row = entry(path, precision)
        try:
            out, times = _run(path, clips, runs)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types (NOT_IMPLEMENTED, ...)
            row.update(runnable=False, note=f"{NOT_RUNNABLE}: {str(e).strip().splitlines()[0][:200]}")
            if _is_bf16(path):
                row["emulated"] = _emulated_bf16(path, clips, compare)
            rows[precision] = row
            continue
        row.update(runnable=True, **compare(out), **_latency(times))
        rows[precision] = row
    return {
        "model": str(fp32_onnx),
        "preset": meta.get("inti.preset"),
        "clips": len(clips),
        "clip_names": clip_names or [],
        "head": "model logits" if is_logits else f"random linear head {ref.shape[1]}x{num_classes}, numpy default_rng({seed})",
        "latency": f"ORT CPU, batch 1, median of {runs} runs after 1 warm-up",
        "machine": _machine(),
        "precisions": rows,
    }


def emulate_bf16(bf16_onnx: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """An FP32 graph that rounds like the BF16 one, for measuring BF16 accuracy where ORT CPU has no
    BF16 kernels: BF16 weights widened exactly to FP32, every op that outputs BF16 computes in FP32
    (FP32 accumulation, as TensorRT's BF16 kernels) and its output is rounded to BF16 and back
    (Cast to bfloat16, Cast to float). Accuracy only: its latency says nothing about BF16.
    The same rewrite of an FP16 model reproduces ORT's own FP16 run (tests/calibration).
    """
    from onnx import TensorProto

    return _emulate(bf16_onnx, out_path, TensorProto.BFLOAT16)


def _emulate(src: str | os.PathLike, out_path: str | os.PathLike, low: int) -> Path:
    import onnx
    import onnx.inliner
    from onnx import TensorProto, helper, numpy_helper

    bf16, fp32 = low, TensorProto.FLOAT
    model = onnx.load(str(src))
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    del model.graph.value_info[:]  # converters leave stale entries; infer every type afresh
    model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.output, *graph.input]}

    def widen(t: TensorProto) -> TensorProto:
        return numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name)

    for i, t in enumerate(graph.initializer):
        if t.data_type == bf16:
            graph.initializer[i].CopyFrom(widen(t))
    nodes = []
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR and attr.t.data_type == bf16:
                attr.t.CopyFrom(widen(attr.t))
        nodes.append(node)
        rounds_to_bf16 = (node.op_type == "Cast" and helper.get_attribute_value(
            next(a for a in node.attribute if a.name == "to")) == bf16)
        for k, name in enumerate(node.output):
            if not name or not (rounds_to_bf16 or types.get(name) == bf16):
                continue
            inner = f"{name}__fp32"
            node.output[k] = inner
            if rounds_to_bf16:  # the Cast itself rounds; widen its result again
                nodes.append(helper.make_node("Cast", [inner], [name], to=fp32))
            else:
                nodes.append(helper.make_node("Cast", [inner], [f"{name}__bf16"], to=bf16))
                nodes.append(helper.make_node("Cast", [f"{name}__bf16"], [name], to=fp32))
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]
    for v in [*graph.input, *graph.output]:
        if v.type.tensor_type.elem_type == bf16:
            v.type.tensor_type.elem_type = fp32
    out_path = Path(out_path)
    onnx.save(model, str(out_path))
    return out_path


def _is_bf16(path) -> bool:
    from inti_export.vocab import read_metadata

    try:
        return read_metadata(path).get("inti.precision") == "bf16"
    except Exception:  # noqa: BLE001 - an unreadable file is simply not a BF16 model we can emulate
        return False


def _emulated_bf16(path, clips: np.ndarray, compare) -> dict[str, Any]:
    """Accuracy of a BF16 model through `emulate_bf16`, or why it could not be measured."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="inti-bf16-emulated-") as tmp:
        try:
            emulated = emulate_bf16(path, Path(tmp) / "emulated.onnx")
            out, _ = _run(emulated, clips, runs=0)
        except Exception as e:  # noqa: BLE001 - report, never crash the whole report
            return {"note": f"BF16 emulation failed: {str(e).strip().splitlines()[0][:200]}"}
    return {"how": "FP32 compute, BF16 rounding of every BF16 tensor (emulate_bf16)", **compare(out)}


def _latency(times: list[float]) -> dict[str, float]:
    return {"latency_ms_median": round(statistics.median(times), 2), "latency_ms_min": round(min(times), 2)}


def _machine() -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table, one row per precision."""
    lines = [
        f"Precision report for `{report['model']}` ({report.get('preset')}), {report['clips']} clips; "
        f"head: {report['head']}; latency: {report['latency']}."
        + (f" Clips from {report['clip_source']}." if report.get("clip_source") else ""),
        "",
        "| precision | cosine mean | cosine min | top-1 agree | top-5 agree | ORT CPU ms (median) | size MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in report["precisions"].items():
        if not r.get("runnable"):
            em = r.get("emulated", {})
            if "cosine_mean" in em:
                lines.append(
                    f"| {name} (emulated in FP32, {NOT_RUNNABLE}) | {em['cosine_mean']:.6f} | {em['cosine_min']:.6f} | "
                    f"{em['top1_agreement']:.3f} | {em['top5_agreement']:.3f} | n/a | {r['size_mib']} |"
                )
            else:
                lines.append(f"| {name} | {r['note']} | | | | | {r['size_mib']} |")
            continue
        lines.append(
            f"| {name} | {r['cosine_mean']:.6f} | {r['cosine_min']:.6f} | {r['top1_agreement']:.3f} | "
            f"{r['top5_agreement']:.3f} | {r['latency_ms_median']:.1f} | {r['size_mib']} |"
        )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the report as markdown (`.md`) or JSON (`.json`), atomically."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".md", ".json"):
        raise CalibrationError(f"report path {path} must end in .md or .json")
    if not path.parent.is_dir():
        raise CalibrationError(f"report directory {path.parent} does not exist")
    text = to_markdown(report) if suffix == ".md" else json.dumps(report, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
