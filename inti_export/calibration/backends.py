"""The one table of converters: which tool writes which precision, and what `auto` picks.

    resolve_backend("int8")              -> (CalibrationBackend.ort, Converter for quantize_static)
    BACKENDS[(Precision.fp8, modelopt)]  -> Converter(label, tool, dist, convert, methods, ...)

Every conversion goes through a maintained tool (onnxruntime's float16 converter and
`quantize_static`, or NVIDIA ModelOpt's AutoCast and ONNX PTQ), one `Converter` each; this module
only chooses their settings. Measurements behind the choices: docs/precision.md. ModelOpt is
imported inside functions only (`pip install 'inti-export[quant]'`). To add a precision or a tool:
write its `convert` function and add its row to `BACKENDS`.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.calibration.data import CalibrationData
from inti_export.calibration.ort_quant import ort_quantization_restored, ort_quantize_static, working_directory
from inti_export.errors import CalibrationError
from inti_export.vocab import INPUT_NAME, CalibrationBackend, CalibrationMethod, Int8Type, Precision, values

# The one block list: ops a ViT keeps in FP32 when cast to FP16/BF16 (overflow or precision loss:
# LayerNorm's variance, Softmax's exp/sum, GELU's erf), also when LayerNorm/GELU arrive decomposed.
KEEP_FP32_OPS = ("LayerNormalization", "Softmax", "Erf", "Gelu", "Pow", "Sqrt", "ReduceMean", "Exp")
# Op types that get Q/DQ for INT8/FP8. ORT with every op type writes INT32-bias DequantizeLinear
# nodes that TensorRT-RTX cannot parse (docs/precision.md).
QUANTIZE_OPS = ("Conv", "MatMul", "Gemm")
QUANTIZED = (Precision.int8, Precision.fp8)  # precisions written as Q/DQ, calibrated on clips
TARGETS = (Precision.fp16, Precision.bf16, Precision.int8, Precision.fp8)  # what convert_precision writes
QUANT_EXTRA = "pip install 'inti-export[quant]'"


@dataclass(frozen=True)
class Settings:
    """What a converter's `convert` needs besides the paths and the clips."""

    precision: Precision
    method: CalibrationMethod
    keep_ops: tuple[str, ...]
    keep_nodes: tuple[str, ...]
    work: Path  # a private temporary folder for the tool's side files
    reduce_range: bool = False  # INT8 weights in 7 bits (ORT CPU without VNNI, docs/precision.md)
    activation_type: Int8Type = Int8Type.s8  # INT8 (ort): signed symmetric or unsigned asymmetric activations
    weight_type: Int8Type = Int8Type.s8
    per_channel: bool = True  # INT8 (ort): weight scales per output channel, else one per tensor


ConvertFn = Callable[[Path, Path, "CalibrationData | None", Settings], None]


@dataclass(frozen=True)
class Converter:
    """One tool that writes one precision: `convert(source, out, data, settings)` writes `out`."""

    label: str  # how messages name the tool
    tool: str  # the function called, recorded in inti.calibration
    dist: str  # the distribution whose version is recorded
    convert: ConvertFn
    methods: tuple[CalibrationMethod, ...] = ()  # range calibration methods it offers (INT8/FP8)
    default: bool = False  # what `auto` picks for this precision
    uses_clips: bool = False  # takes calibration clips when given (casts); quantizers always need them
    requires: str | None = None  # module that must be importable


def cast_block_list(keep_ops: Iterable[str]) -> list[str]:
    """Op types a cast leaves in FP32: KEEP_FP32_OPS and `keep_ops`, in order, once each."""
    return list(dict.fromkeys([*KEEP_FP32_OPS, *keep_ops]))


def quantized_ops(keep_ops: Iterable[str]) -> list[str]:
    """Op types that get Q/DQ: QUANTIZE_OPS less `keep_ops`."""
    keep = set(keep_ops)
    return [t for t in QUANTIZE_OPS if t not in keep]


# -- the converters, one small function each --------------------------------------------------------
def _ort_float16(src: Path, out: Path, data: CalibrationData | None, s: Settings) -> None:
    # onnxruntime's copy of onnxconverter-common's converter: it keeps the inti.TokenInterpolate
    # node (its function is type-generic, so it runs in FP16) and leaves block-listed ops in FP32.
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(
        onnx.load(str(src)), keep_io_types=True, op_block_list=cast_block_list(s.keep_ops),
        node_block_list=list(s.keep_nodes) or None,
    )
    onnx.save(model, str(out))


def _modelopt_autocast(src: Path, out: Path, data: CalibrationData | None, s: Settings) -> None:
    # AutoCast hands custom-domain nodes to TensorRT's plugin registry (it needs `tensorrt` for that),
    # so the InTI function is inlined first: the node becomes the standard ops of its body.
    import onnx
    import onnx.inliner
    from modelopt.onnx.autocast import convert_to_mixed_precision

    inlined = s.work / "inlined.onnx"
    onnx.save(onnx.inliner.inline_local_functions(onnx.load(str(src))), str(inlined))
    calib_npz = None
    if data is not None:
        calib_npz = s.work / "calib.npz"
        np.savez(calib_npz, **{INPUT_NAME: data.clips})
    with working_directory(s.work):
        model = convert_to_mixed_precision(
            str(inlined),
            low_precision_type=s.precision.value,
            op_types_to_exclude=cast_block_list(s.keep_ops),
            nodes_to_exclude=list(s.keep_nodes) or None,
            keep_io_types=True,
            calibration_data=str(calib_npz) if calib_npz else None,
            providers=["cpu"],
        )
    onnx.save(model, str(out))


def _ort_ptq(src: Path, out: Path, data: CalibrationData, s: Settings) -> None:
    ort_quantize_static(src, out, data.clips, method=s.method, op_types=quantized_ops(s.keep_ops),
                        keep_nodes=s.keep_nodes, reduce_range=s.reduce_range, activation_type=s.activation_type,
                        weight_type=s.weight_type, per_channel=s.per_channel)


def _modelopt_quantize(src: Path, out: Path, data: CalibrationData, s: Settings) -> None:
    from modelopt.onnx.quantization import quantize

    copy = s.work / "input.onnx"  # ModelOpt rewrites the file it is given
    shutil.copyfile(src, copy)
    with ort_quantization_restored(), working_directory(s.work):
        quantize(
            str(copy),
            quantize_mode=s.precision.value,
            calibration_data={INPUT_NAME: data.clips},
            calibration_method=s.method.value,
            calibration_eps=["cpu"],
            op_types_to_quantize=quantized_ops(s.keep_ops),
            nodes_to_exclude=[f"^{re.escape(n)}$" for n in s.keep_nodes] or None,
            high_precision_dtype="fp32",
            disable_mha_qdq=True,
            output_path=str(out),
            log_level="WARNING",
        )


_M = CalibrationMethod
_ORT_FLOAT16 = Converter("onnxruntime float16 converter", "onnxruntime.transformers.float16.convert_float_to_float16",
                         "onnxruntime", _ort_float16)
_AUTOCAST = Converter("ModelOpt AutoCast", "modelopt.onnx.autocast.convert_to_mixed_precision", "nvidia-modelopt",
                      _modelopt_autocast, uses_clips=True, requires="modelopt")
_ORT_PTQ = Converter("onnxruntime quantize_static", "onnxruntime.quantization.quantize_static", "onnxruntime",
                     _ort_ptq, methods=(_M.max, _M.entropy, _M.percentile))
_MODELOPT_PTQ = Converter("ModelOpt ONNX PTQ", "modelopt.onnx.quantization.quantize", "nvidia-modelopt",
                          _modelopt_quantize, methods=(_M.max, _M.entropy), requires="modelopt")

# The one table: which tool writes which precision, and what `auto` picks (docs/precision.md).
BACKENDS: dict[tuple[Precision, CalibrationBackend], Converter] = {
    (Precision.fp16, CalibrationBackend.ort): replace(_ORT_FLOAT16, default=True),
    (Precision.fp16, CalibrationBackend.modelopt): _AUTOCAST,
    (Precision.bf16, CalibrationBackend.modelopt): replace(_AUTOCAST, default=True),
    (Precision.int8, CalibrationBackend.ort): replace(_ORT_PTQ, default=True),
    (Precision.int8, CalibrationBackend.modelopt): _MODELOPT_PTQ,
    (Precision.fp8, CalibrationBackend.modelopt): replace(_MODELOPT_PTQ, default=True),
}


def parse_choice(kind: type, value: Any, what: str, allowed: Sequence[str] | None = None):
    """`value` as a member of the str Enum `kind`, or a one-line CalibrationError naming the choices."""
    choices = tuple(allowed) if allowed is not None else values(kind)
    raw = value.value if isinstance(value, kind) else value
    if raw not in choices:
        raise CalibrationError(f"unknown {what} {raw!r}; choose one of {', '.join(choices)}")
    return kind(raw)


def parse_target(precision: Precision | str) -> Precision:
    """`precision` as one of TARGETS (what convert_precision writes), or a one-line CalibrationError."""
    return parse_choice(Precision, precision, "precision", [p.value for p in TARGETS])


def resolve_backend(
    precision: Precision | str, backend: CalibrationBackend | str = CalibrationBackend.auto
) -> tuple[CalibrationBackend, Converter]:
    """The backend that converts `precision` and its table entry; a one-line error for a pair none supports."""
    precision = parse_target(precision)
    backend = parse_choice(CalibrationBackend, backend, "backend")
    if backend is CalibrationBackend.auto:
        backend = next(b for (p, b), entry in BACKENDS.items() if p is precision and entry.default)
    entry = BACKENDS.get((precision, backend))
    if entry is None:
        raise CalibrationError(
            f"precision {precision.value} needs the modelopt backend (NVIDIA ModelOpt), not {backend.value}; "
            f"use --backend modelopt after {QUANT_EXTRA}"
        )
    if entry.requires and importlib.util.find_spec(entry.requires) is None:
        raise CalibrationError(
            f"precision {precision.value} with {entry.label} needs nvidia-modelopt, "
            f"which is not installed: {QUANT_EXTRA}"
        )
    return backend, entry


def split_keep(model, keep_fp32: Iterable[str]) -> tuple[list[str], list[str]]:
    """`keep_fp32` entries -> (op types, node names) of the ONNX `model`; an entry matching neither is an error."""
    op_types = {n.op_type for n in model.graph.node}
    names = {n.name for n in model.graph.node}
    ops, nodes = [], []
    for item in keep_fp32:
        item = item.strip()
        if not item:
            continue
        if item in names:
            nodes.append(item)
        elif item in op_types or item in KEEP_FP32_OPS or item in QUANTIZE_OPS:
            ops.append(item)
        else:
            raise CalibrationError(
                f"--keep-fp32 {item!r} is neither an op type nor a node name of this model; "
                f"op types here: {', '.join(sorted(op_types))}"
            )
    return ops, nodes
