"""Precision report: each converted ONNX against the FP32 one, on the same real clips, in ORT CPU.

    precision_report(fp32_onnx, {"fp16": path, "int8": path}, clips) -> dict (JSON-ready)
    write_report(report, "report.md" | "report.json")

Per precision: embedding cosine vs FP32 (mean and min over clips), top-1/top-5 agreement of a
fixed-seed random 400-class linear head applied to the embeddings, ORT CPU latency (median of
`runs` timed batch-1 runs after one warm-up) and file size. With class labels for the clips (a model
with its own classifier, docs/task.md), also top-1/top-5 accuracy against the labels and the top-1
points lost against FP32. A model ONNX Runtime's CPU provider
cannot run (BF16 has no CPU kernels) is reported as not runnable, with ORT's reason; for BF16 the
accuracy is then measured on an FP32 emulation of it (`emulate_bf16`).

A Q/DQ model (INT8, FP8) is measured as quantized: ONNX Runtime keeps its Q/DQ nodes as written,
so the accuracy is the quantization's (what TensorRT executes) on every CPU. The same model as
ONNX Runtime CPU executes it (Q/DQ fused into integer kernels) is reported beside it, with its
latency; on x86 without VNNI those kernels can saturate, and the report warns (docs/precision.md).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import CalibrationError, one_line
from inti_export.fileio import check_output_path, write_atomic
from inti_export.metrics import cosine_per_sample, head_logits, topk_accuracy, topk_indices
from inti_export.vocab import INPUT_NAME, META_CALIBRATION, META_OUTPUTS, META_PRECISION, META_PRESET, Precision

logger = logging.getLogger(__name__)

NOT_RUNNABLE = "not runnable on ORT CPU"


def random_head(dim: int, num_classes: int = 400, seed: int = 0) -> np.ndarray:
    """The fixed linear head `(dim, num_classes)` float64: N(0, 1/dim) from numpy's PCG64 with `seed`.

    Applied to L2-normalised embeddings, like a zero-shot head of class text embeddings.
    """
    return np.random.default_rng(seed).standard_normal((dim, num_classes)) / np.sqrt(dim)


def _session(path: str | os.PathLike, mode):
    import onnxruntime as ort

    from inti_export.runtime.ort_runner import session_options

    # NCHWc rewriting crashes ORT on some FP16 graphs (docs/precision.md); off for every model alike.
    return ort.InferenceSession(
        str(path), session_options(mode), providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"]
    )


def run_cpu(path, clips: np.ndarray, runs: int, mode="as-executed") -> tuple[np.ndarray, list[float]]:
    """ORT CPU outputs for every clip (batch 1), float64 (K, ...), and `runs` timed batch-1 runs after
    one warm-up, in ms."""
    sess = _session(path, mode)
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


def precision_report(
    fp32_onnx: str | os.PathLike,
    variants: dict[str, str | os.PathLike],
    clips: np.ndarray,
    num_classes: int = 400,
    seed: int = 0,
    runs: int = 5,
    clip_names: list[str] | None = None,
    labels: np.ndarray | None = None,
) -> dict[str, Any]:
    """Compare each variant with the FP32 model on `clips` (K, T, 3, H, W); see the module doc.

    Top-1 agreement: share of clips whose top-1 class is the FP32 model's. Top-5 agreement: mean
    overlap |top5(variant) & top5(fp32)| / 5. When the model outputs `logits` (it has its own
    classifier) those are used instead of the random head. For a Q/DQ variant the main figures are
    as quantized and `as_executed` holds ONNX Runtime CPU's own (fused) execution of it.
    `labels` (K,) class indices of the clips add `label_top1`, `label_top5` and `label_top1_drop_points`
    (FP32's top-1 minus the variant's, in points) to every row measured.
    """
    from inti_export.runtime.ort_runner import MODE_LABELS, OrtMode, cpu_int8_support, resolve_mode
    from inti_export.vocab import read_metadata

    clips = np.ascontiguousarray(clips, dtype=np.float32)
    if clips.ndim != 5 or len(clips) == 0:
        raise CalibrationError(f"report clips have shape {clips.shape}; expected (K, T, 3, H, W) with K >= 1")
    if runs < 1:
        raise CalibrationError(f"runs={runs} must be at least 1")
    meta = read_metadata(fp32_onnx)
    ref, ref_times = run_cpu(fp32_onnx, clips, runs)
    is_logits = any(o.get("name") == "logits" for o in meta.get(META_OUTPUTS, []))
    if labels is not None:
        labels = np.asarray(labels, dtype=np.int64)
        if not is_logits:
            raise CalibrationError(f"{fp32_onnx} outputs embeddings: accuracy against labels needs a model with its"
                                   " own classifier (a preset with num_classes)")
        if labels.shape != (len(clips),):
            raise CalibrationError(f"{labels.shape[0] if labels.ndim else 0} labels for {len(clips)} clips;"
                                   " they must pair up")
    head = None if is_logits else random_head(ref.shape[1], num_classes, seed)
    ref_top5 = topk_indices(head_logits(ref, head), 5)
    ref_label_top1 = topk_accuracy(ref, labels, 1) if labels is not None else None
    cpu = cpu_int8_support()

    def compare(out: np.ndarray) -> dict[str, float]:
        cos = cosine_per_sample(out, ref)
        top5 = topk_indices(head_logits(out, head), 5)
        overlap = [len(set(a) & set(b)) / 5 for a, b in zip(top5, ref_top5, strict=True)]
        row = {
            "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()),
            "top1_agreement": float(np.mean(top5[:, 0] == ref_top5[:, 0])),
            "top5_agreement": float(np.mean(overlap)),
        }
        if labels is not None:
            top1 = topk_accuracy(out, labels, 1)
            row.update(label_top1=top1, label_top5=topk_accuracy(out, labels, 5),
                       label_top1_drop_points=round(100.0 * (ref_label_top1 - top1), 6))
        return row

    rows = {"fp32": {**_entry(fp32_onnx, "fp32"), "runnable": True, "cosine_mean": 1.0, "cosine_min": 1.0,
                     "top1_agreement": 1.0, "top5_agreement": 1.0, **_latency(ref_times)}}
    if labels is not None:
        rows["fp32"].update(label_top1=ref_label_top1, label_top5=topk_accuracy(ref, labels, 5), label_top1_drop_points=0.0)
    warnings: list[str] = []
    for precision, path in variants.items():
        row = _entry(path, precision)
        rows[precision] = row
        try:
            mode = resolve_mode(path)
            if mode is OrtMode.as_quantized:  # accuracy as quantized, latency as ORT CPU executes it
                out, _ = run_cpu(path, clips, 0, mode)
                executed, times = run_cpu(path, clips, runs, OrtMode.as_executed)
            else:
                out, times = run_cpu(path, clips, runs, mode)
        except Exception as e:  # noqa: BLE001 - ORT raises its own exception types (NOT_IMPLEMENTED, ...)
            row.update(runnable=False, note=f"{NOT_RUNNABLE}: {one_line(e, 200)}")
            if _precision_of(path) == Precision.bf16.value:
                row["emulated"] = _emulated_bf16(path, clips, compare)
            continue
        row.update(runnable=True, accuracy=MODE_LABELS[mode], **compare(out), **_latency(times))
        if mode is OrtMode.as_quantized:
            row["as_executed"] = {"how": MODE_LABELS[OrtMode.as_executed], **compare(executed)}
            warning = _saturation_warning(precision, path, row, cpu)
            if warning:
                logger.warning(warning)
                warnings.append(warning)
    return {
        "model": str(fp32_onnx),
        "preset": meta.get(META_PRESET),
        "clips": len(clips),
        "clip_names": clip_names or [],
        "label_count": None if labels is None else len(labels),
        "head": "model logits" if is_logits
        else f"random linear head {ref.shape[1]}x{num_classes}, numpy default_rng({seed})",
        "latency": f"ORT CPU, batch 1, median of {runs} runs after 1 warm-up",
        "accuracy": f"Q/DQ models {MODE_LABELS[OrtMode.as_quantized]}; ORT CPU's fused execution under as_executed",
        "machine": _machine(cpu),
        "warnings": warnings,
        "precisions": rows,
    }


def _entry(path, precision: str) -> dict[str, Any]:
    return {"precision": precision, "path": str(path), "size_mib": round(Path(path).stat().st_size / 2**20, 2)}


def _saturation_warning(name: str, path, row: dict[str, Any], cpu: dict[str, Any]) -> str | None:
    """The warning for full-range INT8 weights evaluated on an x86 CPU without VNNI, or None."""
    from inti_export.vocab import read_metadata

    meta = read_metadata(path)
    if not cpu["saturation_risk"] or meta.get(META_PRECISION) != Precision.int8.value:
        return None
    calibration = meta.get(META_CALIBRATION, {})
    if calibration.get("reduce_range") or calibration.get("weight_type") == "u8":  # u8u8 never saturates
        return None
    executed = row["as_executed"]["cosine_min"]
    return (
        f"{name}: this CPU has no VNNI, so ONNX Runtime's fused INT8 kernels (u8s8, AVX2) can saturate: "
        f"cosine min {executed:.6f} as ORT CPU executes it here, {row['cosine_min']:.6f} as quantized "
        "(what TensorRT executes). To deploy on ONNX Runtime CPU without VNNI, quantize with --reduce-range "
        "(7-bit weights; docs/precision.md)"
    )


def emulate_bf16(bf16_onnx: str | os.PathLike, out_path: str | os.PathLike) -> Path:
    """An FP32 graph that rounds like the BF16 one, for measuring BF16 accuracy where ORT CPU has no
    BF16 kernels: BF16 weights widened exactly to FP32, every op that outputs BF16 computes in FP32
    (FP32 accumulation, as TensorRT's BF16 kernels) and its output is rounded to BF16 and back
    (Cast to bfloat16, Cast to float). Accuracy only: its latency says nothing about BF16.
    The same rewrite of an FP16 model reproduces ORT's own FP16 run (tests/calibration).
    """
    from onnx import TensorProto

    return emulate_rounding(bf16_onnx, out_path, TensorProto.BFLOAT16)


def emulate_rounding(src: str | os.PathLike, out_path: str | os.PathLike, low: int) -> Path:
    """`src` as an FP32 graph that rounds every tensor of ONNX type `low` (BFLOAT16, FLOAT16) like it."""
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


def _precision_of(path) -> str | None:
    from inti_export.vocab import read_metadata

    try:
        return read_metadata(path).get(META_PRECISION)
    except Exception:  # noqa: BLE001 - an unreadable file has no precision we can act on
        return None


def _emulated_bf16(path, clips: np.ndarray, compare) -> dict[str, Any]:
    """Accuracy of a BF16 model through `emulate_bf16`, or why it could not be measured."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="inti-bf16-emulated-") as tmp:
        try:
            emulated = emulate_bf16(path, Path(tmp) / "emulated.onnx")
            out, _ = run_cpu(emulated, clips, runs=0)
        except Exception as e:  # noqa: BLE001 - report, never crash the whole report
            return {"note": f"BF16 emulation failed: {one_line(e, 200)}"}
    return {"how": "FP32 compute, BF16 rounding of every BF16 tensor (emulate_bf16)", **compare(out)}


def _latency(times: list[float]) -> dict[str, float]:
    return {"latency_ms_median": round(statistics.median(times), 2), "latency_ms_min": round(min(times), 2)}


def _machine(cpu: dict[str, Any]) -> dict[str, Any]:
    import onnxruntime

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "int8_vnni": cpu["vnni"],
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def to_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown table, one row per precision, then how it was measured and warnings.

    With labels, four columns follow: top-1 and top-5 against the labels, the top-1 points lost against
    FP32 (as quantized for Q/DQ models), and top-1 as ONNX Runtime CPU executes a Q/DQ model.
    """
    labelled = report.get("label_count") is not None
    lines = [
        f"Precision report for `{report['model']}` ({report.get('preset')}), {report['clips']} clips; "
        f"head: {report['head']}; latency: {report['latency']}."
        + (f" Clips from {report['clip_source']}." if report.get("clip_source") else "")
        + (f" Labels: {report.get('labels') or 'given'} ({report['label_count']} clips)." if labelled else ""),
        "",
        "| precision | cosine mean | cosine min | top-1 agree | top-5 agree | cosine min as ORT CPU executes "
        "| ORT CPU ms (median) | size MiB |"
        + (" top-1 (labels) | top-5 (labels) | top-1 drop (points) | top-1 (labels) as ORT CPU executes |"
           if labelled else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|---|---|" if labelled else ""),
    ]

    def label_cells(r: dict[str, Any], executed: dict[str, Any] | None) -> str:
        if not labelled:
            return ""
        if "label_top1" not in r:
            return " | | | |"
        ex = f"{100 * executed['label_top1']:.2f}%" if executed and "label_top1" in executed else "same"
        return (f" {100 * r['label_top1']:.2f}% | {100 * r['label_top5']:.2f}% | "
                f"{r['label_top1_drop_points']:+.2f} | {ex} |")

    for name, r in report["precisions"].items():
        if not r.get("runnable"):
            em = r.get("emulated", {})
            if "cosine_mean" in em:
                lines.append(
                    f"| {name} (emulated in FP32, {NOT_RUNNABLE}) | {em['cosine_mean']:.6f} | {em['cosine_min']:.6f} | "
                    f"{em['top1_agreement']:.3f} | {em['top5_agreement']:.3f} | n/a | n/a | {r['size_mib']} |"
                    + label_cells(em, None).replace("| same |", "| n/a |")
                )
            else:
                lines.append(f"| {name} | {r['note']} | | | | | | {r['size_mib']} |" + label_cells(r, None))
            continue
        executed = f"{r['as_executed']['cosine_min']:.6f}" if "as_executed" in r else "same"
        lines.append(
            f"| {name} | {r['cosine_mean']:.6f} | {r['cosine_min']:.6f} | {r['top1_agreement']:.3f} | "
            f"{r['top5_agreement']:.3f} | {executed} | {r['latency_ms_median']:.1f} | {r['size_mib']} |"
            + label_cells(r, r.get("as_executed"))
        )
    if report.get("accuracy"):
        machine = report.get("machine", {})
        vnni = {True: "with", False: "without", None: "VNNI unknown:"}[machine.get("int8_vnni")]
        lines += ["", f"Accuracy: {report['accuracy']}. CPU: {machine.get('cpu')} {vnni} VNNI, "
                  f"onnxruntime {machine.get('onnxruntime')}."]
    lines += [f"\nWarning: {w}" for w in report.get("warnings", [])]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write the report as markdown (`.md`) or JSON (`.json`), atomically."""
    path = Path(path)
    if path.suffix.lower() not in (".md", ".json"):
        raise CalibrationError(f"report path {path} must end in .md or .json")
    check_output_path(path, "report")
    text = to_markdown(report) if path.suffix.lower() == ".md" else json.dumps(report, indent=2) + "\n"
    write_atomic(path, text)
    return path
