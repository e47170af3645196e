"""TensorRT-RTX builds real engines on CPU from the test-tiny export in every precision we write.

What TensorRT-RTX 1.7 accepts is recorded in docs/benchmarks.md; the engines are not run here
(no GPU), so these tests check the network TensorRT parsed: precision, inlined InTI functions.
FP16 and INT8 (onnxruntime, cheap) go through `convert_and_build`'s own conversion; BF16 and FP8
(ModelOpt, slow) reuse the files tests/calibration/test_precision.py converted in this session when
it ran first, and convert them here otherwise. Each engine is built once.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from inti_export.errors import RuntimeUnavailableError


def _rtx_reason() -> str | None:
    from inti_export.runtime.trt import load_trt_module

    try:
        load_trt_module("tensorrt-rtx")
    except RuntimeUnavailableError as e:
        return str(e)
    return None


HAS_MODELOPT = importlib.util.find_spec("modelopt") is not None
NEEDS_MODELOPT = pytest.mark.skipif(
    not HAS_MODELOPT, reason="NVIDIA ModelOpt not installed (pip install 'inti-export[quant]')"
)

CASES = [
    pytest.param("fp16", "HALF", True, id="fp16"),
    pytest.param("int8", "INT8", True, id="int8"),
    pytest.param("bf16", "BF16", False, id="bf16", marks=NEEDS_MODELOPT),  # ModelOpt AutoCast inlines InTI first
    pytest.param("fp8", "FP8", True, id="fp8", marks=NEEDS_MODELOPT),
]
CONVERTED_HERE = ("fp16", "int8")  # by convert_and_build from the FP32 export


def modelopt_file(tmp_path_factory, fp32, precision, calib):
    """test-tiny in `precision` by ModelOpt: the session's shared copy, converted here if absent."""
    from inti_export.calibration.precision import convert_precision

    path = tmp_path_factory.getbasetemp() / "tiny-precisions" / f"test-tiny.{precision}.modelopt.onnx"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        convert_precision(fp32, precision, path, calib, backend="modelopt")
    return path


@pytest.mark.trt
@pytest.mark.skipif(_rtx_reason() is not None, reason=f"TensorRT-RTX not importable: {_rtx_reason()}")
@pytest.mark.parametrize("precision, trt_dtype, function_kept", CASES)
def test_engine_in_precision(tmp_path_factory, tmp_path, tiny_onnx, tiny_clips, precision, trt_dtype, function_kept):
    from inti_export.jobs.engine import convert_and_build
    from inti_export.runtime.trt import BuildConfig, check_engine

    calib = tmp_path / "calib.npz"
    np.savez(calib, video=tiny_clips.clips)
    engine = tmp_path / f"tiny.{precision}.engine"
    source = tiny_onnx.onnx_path
    if precision not in CONVERTED_HERE:
        source = modelopt_file(tmp_path_factory, tiny_onnx.onnx_path, precision, calib)
    m = convert_and_build(source, engine, BuildConfig(runtime="tensorrt-rtx", batch=(1, 2, 4)), precision=precision,
                          calib_data=calib)
    assert m.precision == precision and m.runtime == "tensorrt-rtx"
    assert m.onnx_metadata["inti.precision"] == precision
    # converted beside the engine when the source was FP32; built as given when already in `precision`
    expected = tmp_path / f"tiny.{precision}.{precision}.onnx" if precision in CONVERTED_HERE else source
    assert m.onnx_file == str(expected) and expected.exists()
    summary = m.network_summary
    assert summary["output_dtypes"].get(trt_dtype, 0) > 0, summary["output_dtypes"]
    assert summary["plugin_layers"] == []
    if function_kept:  # the InTI node reached TensorRT and was inlined from its ONNX function
        assert summary["functions"]["TokenInterpolate"]["calls"] == ["inti_before_block_1", "inti_before_block_3"]
    assert m.outputs[0]["name"] == "embedding" and m.outputs[0]["dtype"] == "float32"  # I/O stay FP32
    assert m.profiles[0]["min"][0] == 1 and m.profiles[0]["max"][0] == 4
    assert check_engine(engine).engine_sha256 == m.engine_sha256  # hash, runtime and version agree
