"""onnxruntime.quantization, as we call it: static Q/DQ quantization and the fixes it needs.

    ort_quantize_static(src, out, clips, ...)   INT8 Q/DQ (s8s8, u8s8, u8u8), float biases, projection in FP32
    projection_nodes(onnx)                     the MatMul nodes kept FP32 (OpenVINO, docs/openvino.md)
    ort_quantization_restored()                undo ModelOpt's process-wide patches of ORT's quantizer
    working_directory(path)                    keep shape inference's side files out of the cwd

onnxruntime is imported inside functions only. Measurements behind the settings: docs/precision.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inti_export.vocab import INPUT_NAME, CalibrationMethod, Int8Type

# The submodules whose classes ModelOpt patches (modelopt.onnx.quantization.ort_patching).
ORT_QUANT_MODULES = ("calibrate", "base_quantizer", "qdq_quantizer", "onnx_quantizer", "quant_utils", "quantize")
_MISSING = object()


def projection_nodes(onnx_path: Path) -> list[str]:
    """Names of the MatMul nodes that multiply by the visual projection (`visual.proj`)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.op_type == "MatMul" and "visual.proj" in n.input]


def ort_quantize_static(
    src: Path,
    out: Path,
    clips: np.ndarray,
    *,
    method: CalibrationMethod,
    op_types: Sequence[str],
    keep_nodes: Sequence[str] = (),
    reduce_range: bool = False,
    activation_type: Int8Type = Int8Type.s8,
    weight_type: Int8Type = Int8Type.s8,
    per_channel: bool = True,
    input_name: str = INPUT_NAME,
) -> None:
    """INT8 Q/DQ of `src` at `out`, calibrated with `method` on `clips` (K, T, 3, H, W), one at a time.

    `input_name`: the graph input fed (a stream pair's stem takes frames (K, 3, H, W), its head stems).

    Signed (s8) activations/weights are symmetric, unsigned (u8) ones asymmetric; weights per channel
    unless `per_channel` is False. s8 activations with u8 weights are refused by ORT (`check_int8_types`).
    `op_types` get Q/DQ, `keep_nodes` and the final projection stay FP32. `reduce_range`: 7-bit
    weights (ORT CPU on x86 without VNNI, docs/precision.md).
    """
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization import CalibrationMethod as OrtCalibration

    class ClipReader(CalibrationDataReader):
        """One clip per batch, in order."""

        def __init__(self, clips: np.ndarray):
            self.clips, self.next = clips, 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            if self.next >= len(self.clips):
                return None
            self.next += 1
            return {input_name: np.ascontiguousarray(self.clips[self.next - 1 : self.next], dtype=np.float32)}

        def rewind(self) -> None:
            self.next = 0

    calibrate = {CalibrationMethod.max: OrtCalibration.MinMax, CalibrationMethod.entropy: OrtCalibration.Entropy,
                 CalibrationMethod.percentile: OrtCalibration.Percentile}[method]
    qtype = {Int8Type.s8: QuantType.QInt8, Int8Type.u8: QuantType.QUInt8}
    # No quant_pre_process: it inlines the InTI function; the node stays whole and FP32 (docs/precision.md).
    # The final projection stays FP32: OpenVINO computes it quantized for a batch's first clip only
    # (docs/openvino.md), and it is a negligible share of the FLOPs.
    quantize_static(
        str(src),
        str(out),
        ClipReader(clips),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(op_types),
        nodes_to_exclude=[*keep_nodes, *projection_nodes(src)] or None,
        per_channel=per_channel,
        reduce_range=reduce_range,
        activation_type=qtype[Int8Type(activation_type)],
        weight_type=qtype[Int8Type(weight_type)],
        calibrate_method=calibrate,
        # float biases: TensorRT(-RTX) rejects the INT32 bias DequantizeLinear ORT writes otherwise
        extra_options={"ActivationSymmetric": Int8Type(activation_type) is Int8Type.s8,
                       "WeightSymmetric": Int8Type(weight_type) is Int8Type.s8, "QuantizeBias": False},
    )


def check_int8_types(activation_type: Int8Type | str, weight_type: Int8Type | str) -> str | None:
    """Why ORT cannot write this activation/weight pair (s8 activations with u8 weights), or None."""
    if (Int8Type(activation_type), Int8Type(weight_type)) == (Int8Type.s8, Int8Type.u8):
        return "ONNX Runtime has no kernels for s8 activations with u8 weights: use s8s8, u8s8 or u8u8"
    return None


@contextlib.contextmanager
def working_directory(path: Path):
    """Run a tool from `path`: when onnxruntime's symbolic shape inference gives up on our custom
    node (ModelOpt then carries on), it dumps `sym_shape_infer_temp.onnx` and a `<uuid>.data` file
    into the current directory; they land in our temporary folder instead."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextlib.contextmanager
def ort_quantization_restored():
    """Put onnxruntime.quantization back as it was after ModelOpt ran.

    ModelOpt replaces methods of ORT's calibrators and quantizers for the whole process
    (`modelopt.onnx.quantization.ort_patching.patch_ort_modules`); left in place, a later
    `quantize_static` in the same process calibrates differently or fails.
    """
    import importlib
    import inspect

    saved = []
    for name in ORT_QUANT_MODULES:
        module = importlib.import_module(f"onnxruntime.quantization.{name}")
        saved.append((module, dict(vars(module))))
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                saved.append((cls, dict(vars(cls))))
    try:
        yield
    finally:
        for owner, before in saved:
            for key in set(vars(owner)) - set(before):
                delattr(owner, key)
            for key, value in before.items():
                if vars(owner).get(key, _MISSING) is not value:
                    setattr(owner, key, value)
