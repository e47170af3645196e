"""Fixtures for the runtime tests: a tiny InTI-style ONNX, in FP32 and FP16, built in a second.

A hand-built graph around one `inti.TokenInterpolate` node, whose model-local function is the
exporter's own (`exporter.functions.function_proto`). It builds in TensorRT-RTX in well under a
second, so the build and check tests need no export; the real `test-tiny` export (`tiny_onnx`,
tests/conftest.py) is built where the exporter's graph itself is under test.

    video (B, 4, 3, 8, 8) float32
      -> Reshape (B, 4, 192) -> MatMul (B, 4, 16) = tokens
      -> a = tokens[:, 0::2], b = tokens[:, 1::2]            (B, 2, 16) each
      -> h = Concat(a, b, a - b, a * b)                       (B, 2, 64)
      -> inti.TokenInterpolate(h, a, b, w1, b1, w2, b2)      (B, 2, 16), a model-local function
      -> ReduceMean over tokens -> embedding (B, 16) float32
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from inti_export.exporter.functions import function_proto
from inti_export.vocab import OP_DOMAIN, OP_TYPE, OP_VERSION

OPSET = 18  # the exporter's function is written in opset 18
D = 16  # token width
T = 4  # frames


def make_test_model(precision: str = "fp32", metadata: bool = True, seed: int = 0) -> onnx.ModelProto:
    """The tiny graph above; `precision="fp16"` keeps FP32 I/O and runs everything between in FP16."""
    rng = np.random.default_rng(seed)
    wdtype = np.float16 if precision == "fp16" else np.float32
    inits = {
        "w0": rng.standard_normal((192, D)) * 0.1,
        "w1": rng.standard_normal((D, 4 * D)) * 0.1,
        "b1": rng.standard_normal((D,)) * 0.1,
        "w2": rng.standard_normal((2, D)) * 0.1,
        "b2": rng.standard_normal((2,)) * 0.1,
    }
    initializers = [numpy_helper.from_array(v.astype(wdtype), k) for k, v in inits.items()]
    initializers += [
        numpy_helper.from_array(np.array([0, T, 192], np.int64), "shape0"),
        numpy_helper.from_array(np.array([0], np.int64), "start0"),
        numpy_helper.from_array(np.array([1], np.int64), "start1"),
        numpy_helper.from_array(np.array([T], np.int64), "endT"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], np.int64), "step2"),
        numpy_helper.from_array(np.array([1], np.int64), "tokens_axis"),
    ]
    n = helper.make_node
    nodes = []
    x = "video"
    if precision == "fp16":
        nodes.append(n("Cast", ["video"], ["video16"], to=TensorProto.FLOAT16, name="cast_in"))
        x = "video16"
    nodes += [
        n("Reshape", [x, "shape0"], ["flat"], name="flatten"),  # (B, T, 192)
        n("MatMul", ["flat", "w0"], ["tokens"], name="patch_embed"),  # (B, T, D)
        n("Slice", ["tokens", "start0", "endT", "axis1", "step2"], ["a"], name="take_a"),  # (B, T/2, D)
        n("Slice", ["tokens", "start1", "endT", "axis1", "step2"], ["b"], name="take_b"),
        n("Sub", ["a", "b"], ["amb"], name="diff"),
        n("Mul", ["a", "b"], ["atb"], name="prod"),
        n("Concat", ["a", "b", "amb", "atb"], ["h"], axis=-1, name="context"),  # (B, T/2, 4D)
        n(OP_TYPE, ["h", "a", "b", "w1", "b1", "w2", "b2"], ["y"], domain=OP_DOMAIN, name="inti_step_0"),
        n("ReduceMean", ["y", "tokens_axis"], ["pooled"], keepdims=0, name="pool"),  # (B, D)
    ]
    if precision == "fp16":
        nodes.append(n("Cast", ["pooled"], ["embedding"], to=TensorProto.FLOAT, name="cast_out"))
    else:
        nodes[-1].output[0] = "embedding"
    graph = helper.make_graph(
        nodes,
        "inti_test_tiny",
        [helper.make_tensor_value_info("video", TensorProto.FLOAT, ["batch", T, 3, 8, 8])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", D])],
        initializer=initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(OP_DOMAIN, OP_VERSION)],
        functions=[function_proto()],
        producer_name="inti-export-tests",
    )
    model.ir_version = 8
    if metadata:
        props = {
            "inti.version": "0.1.0",
            "inti.preset": "test-onnx-fixture",
            "inti.frames": str(T),
            "inti.image_size": "8",
            "inti.mean": json.dumps([0.5, 0.5, 0.5]),
            "inti.std": json.dumps([0.5, 0.5, 0.5]),
            "inti.insert_before": json.dumps([1]),
            "inti.inputs": json.dumps([{"name": "video", "shape": ["B", T, 3, 8, 8], "layout": "BTCHW"}]),
            "inti.outputs": json.dumps([{"name": "embedding", "shape": ["B", D], "layout": "BE"}]),
            "inti.opset": str(OPSET),
        }
        if precision != "fp32":
            props["inti.precision"] = precision
        helper.set_model_props(model, props)
    onnx.checker.check_model(model, full_check=True)
    return model


def _write_test_onnx(path: Path, precision: str = "fp32", metadata: bool = True) -> Path:
    onnx.save(make_test_model(precision, metadata), str(path))
    return path


@pytest.fixture(scope="session")
def toy_model_factory():
    """make_test_model(precision, metadata, seed) -> onnx.ModelProto, for tests that edit the graph."""
    return make_test_model


@pytest.fixture(scope="session")
def onnx_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture(scope="session")
def toy_onnx(onnx_dir) -> Path:
    """The FP32 test ONNX with our metadata (input `video` (B, 4, 3, 8, 8), output `embedding` (B, 16))."""
    return _write_test_onnx(onnx_dir / "tiny_fp32.onnx", "fp32")


@pytest.fixture(scope="session")
def toy_onnx_fp16(onnx_dir) -> Path:
    """The same graph cast to FP16 inside (FP32 I/O), `inti.precision` = fp16."""
    return _write_test_onnx(onnx_dir / "tiny_fp16.onnx", "fp16")


@pytest.fixture(scope="session")
def foreign_onnx(onnx_dir) -> Path:
    """The FP32 graph without any `inti.*` metadata."""
    return _write_test_onnx(onnx_dir / "foreign.onnx", "fp32", metadata=False)


@pytest.fixture(scope="session")
def engines(tmp_path_factory, toy_onnx, toy_onnx_fp16):
    """{"fp32"|"fp16": (engine path, EngineManifest)}, built once with the 1:2:4 profile of trt_marks.BATCH."""
    from trt_marks import BATCH, RUNTIME

    from inti_export.runtime.trt import BuildConfig, build_engine

    out = tmp_path_factory.mktemp("engines")
    config = BuildConfig(runtime=RUNTIME, batch=BATCH)
    built = {}
    for precision, onnx_path in (("fp32", toy_onnx), ("fp16", toy_onnx_fp16)):
        path = out / f"tiny_{precision}.engine"
        built[precision] = (path, build_engine(onnx_path, path, config))
    return built
