"""The TensorRT plugin `inti::TokenInterpolate`: availability, manifest info, ONNX marking, and engines
built and run with full TensorRT (skipped without it or without a GPU). The AOT compile and the QDP
definitions are in test_trt_plugin_aot.py."""

from __future__ import annotations

import math
import re
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper
from packaging.requirements import Requirement
from packaging.version import Version

from inti_export.errors import RuntimeUnavailableError
from inti_export.plugins import trt_plugin as tp
from inti_export.plugins.reference import token_interpolate_reference

INPUT_NAMES = ["h", "a", "b", "w1", "b1", "w2", "b2"]
ROOT = Path(__file__).resolve().parents[2]


# ---- availability ---------------------------------------------------------------------------------


def test_tensorrt_rtx_is_reported_unsupported():
    assert tp.plugin_available("tensorrt_rtx") == (False, "TensorRT-RTX does not support user plugins")


def test_tensorrt_rtx_module_is_reported_unsupported():
    trt_rtx = pytest.importorskip("tensorrt_rtx")
    ok, reason = tp.plugin_available(trt_rtx)
    assert not ok and reason == tp.RTX_REASON
    with pytest.raises(RuntimeUnavailableError, match="TensorRT-RTX does not support user plugins"):
        tp.register_plugin(trt_rtx)


def test_missing_tensorrt_is_reported():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        assert tp.plugin_available() == (False, "tensorrt not installed")
        with pytest.raises(RuntimeUnavailableError, match="tensorrt not installed"):
            tp.register_plugin()
    else:
        pytest.skip("tensorrt is installed here")


def test_unknown_module_is_an_error():
    with pytest.raises(RuntimeUnavailableError, match="'onnxruntime'"):
        tp.plugin_available("onnxruntime")


def _pinned_tensorrt_minimum() -> tuple[int, ...]:
    """(major, minor) of the `tensorrt>=` requirement in pyproject.toml's `trt` extra."""
    tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    requirements = [Requirement(r) for r in pyproject["project"]["optional-dependencies"]["trt"]]
    (spec,) = [s for r in requirements if r.name == "tensorrt" for s in r.specifier if s.operator == ">="]
    return Version(spec.version).release[:2]


def test_tensorrt_pin_is_the_plugins_minimum():
    """`tensorrt.plugin.aot_impl` arrived in TensorRT 10.9 (issue 28 item 8): pin and refusal say so."""
    assert tp.MIN_TENSORRT_VERSION == (10, 9)
    assert _pinned_tensorrt_minimum() == tp.MIN_TENSORRT_VERSION


def _fake_tensorrt_install(monkeypatch, version: str, aot_impl: bool) -> None:
    """A `tensorrt` of `version` in sys.modules whose `tensorrt.plugin` has aot_impl or not."""
    trt, trtp = ModuleType("tensorrt"), ModuleType("tensorrt.plugin")
    trt.__spec__, trtp.__spec__ = ModuleSpec("tensorrt", None), ModuleSpec("tensorrt.plugin", None)
    trt.__version__, trt.plugin = version, trtp
    if aot_impl:
        trtp.aot_impl = lambda plugin_id: None
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)


@pytest.mark.parametrize("aot_impl", [False, True], ids=["without-aot-impl", "with-aot-impl"])
def test_tensorrt_older_than_the_pin_is_refused(monkeypatch, aot_impl):
    _fake_tensorrt_install(monkeypatch, "10.8.0.43", aot_impl)
    ok, reason = tp.plugin_available()
    pinned = ".".join(map(str, _pinned_tensorrt_minimum()))
    assert not ok and reason.startswith("tensorrt 10.8.0.43 ") and reason.endswith(f"(needs TensorRT >= {pinned})")


def test_tensorrt_at_the_pin_is_accepted(monkeypatch):
    pytest.importorskip("triton")
    _fake_tensorrt_install(monkeypatch, "10.9.0.34", aot_impl=True)
    assert tp.plugin_available() == (True, "tensorrt 10.9.0.34")


# ---- manifest info and ONNX marking ---------------------------------------------------------------


def test_plugin_info_hashes_plugin_and_kernel_sources():
    info = tp.plugin_info()
    assert (info.name, info.namespace, info.version) == ("TokenInterpolate", "inti", "1")
    assert re.fullmatch(r"[0-9a-f]{64}", info.sha256)
    assert info == tp.plugin_info()  # deterministic
    assert set(info.to_dict()) == {"name", "namespace", "version", "sha256", "files"}
    assert info.files == (
        "inti_export/plugins/trt_plugin.py", "inti_export/plugins/triton_kernel.py", "inti_export/plugins/triton_aot.py"
    )


def _token_interpolate_model(dtype=np.float32, d=32, d_ctx=16, seed=0, decoy_function=True) -> onnx.ModelProto:
    """One `inti.TokenInterpolate` node on dynamic-batch inputs (batch, 5, .), weights as initializers.

    With `decoy_function`, the model also carries a local function for the node that returns `a`
    unchanged, so a build that inlines the function instead of using the plugin shows in the numbers.
    """
    g = np.random.default_rng(seed)
    k = 4 * d_ctx
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    weights = {
        "w1": g.standard_normal((d, k)) / math.sqrt(k),
        "b1": 0.1 * g.standard_normal(d),
        "w2": 2.0 * g.standard_normal((2, d)) / math.sqrt(d),
        "b2": 0.1 * g.standard_normal(2),
    }
    node = helper.make_node("TokenInterpolate", INPUT_NAMES, ["y"], domain="inti", name="token_interpolate_0")
    graph = helper.make_graph(
        [node],
        "token_interpolate",
        [helper.make_tensor_value_info(n, elem, ["batch", 5, w]) for n, w in (("h", k), ("a", d), ("b", d))],
        [helper.make_tensor_value_info("y", elem, ["batch", 5, d])],
        initializer=[numpy_helper.from_array(v.astype(dtype), n) for n, v in weights.items()],
    )
    functions = []
    if decoy_function:
        functions.append(
            helper.make_function(
                "inti", "TokenInterpolate", INPUT_NAMES, ["y"],
                [helper.make_node("Identity", ["a"], ["y"])],
                opset_imports=[helper.make_opsetid("", 17)],
            )
        )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("inti", 1)],
        functions=functions,
    )
    model.ir_version = 8
    return model


def test_mark_plugin_nodes_adds_namespace_and_aot():
    model = _token_interpolate_model()
    assert tp.mark_plugin_nodes(model) == 1
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"plugin_namespace": b"inti", "aot": 1}
    assert tp.mark_plugin_nodes(model, aot=False) == 1  # replaces, does not duplicate
    attrs = {a.name: helper.get_attribute_value(a) for a in model.graph.node[0].attribute}
    assert attrs == {"plugin_namespace": b"inti", "aot": 0}


# ---- full TensorRT, on a GPU ----------------------------------------------------------------------


def _require_trt():
    ok, reason = tp.plugin_available()
    if not ok:
        pytest.skip(reason)
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    import tensorrt

    return tensorrt


def _build_and_run(trt, model: onnx.ModelProto, feeds: dict, max_batch: int = 8):
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(model.SerializeToString()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    plugin_layers = [network.get_layer(i) for i in range(network.num_layers)
                     if network.get_layer(i).type == trt.LayerType.PLUGIN_V3]
    assert len(plugin_layers) == 1, "the node was not imported as the plugin"

    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    for name, t in feeds.items():
        rest = tuple(t.shape[1:])
        profile.set_shape(name, (1, *rest), tuple(t.shape), (max_batch, *rest))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    assert serialized is not None, "engine build failed"
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)

    context = engine.create_execution_context()
    for name, t in feeds.items():
        context.set_input_shape(name, tuple(t.shape))
        context.set_tensor_address(name, t.data_ptr())
    y = torch.empty_like(feeds["a"])
    context.set_tensor_address("y", y.data_ptr())
    stream = torch.cuda.current_stream()
    assert context.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    return y


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("aot", [True, False], ids=["aot", "python-impl"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["fp32", "fp16"])
def test_engine_with_plugin_matches_reference(check_close, aot, dtype):
    trt = _require_trt()
    info = tp.register_plugin(trt)
    assert info == tp.plugin_info()
    model = _token_interpolate_model(dtype)
    assert tp.mark_plugin_nodes(model, aot=aot) == 1

    torch_dtype = {np.float32: torch.float32, np.float16: torch.float16}[dtype]
    g = torch.Generator().manual_seed(1)
    feeds = {
        "h": torch.randn(3, 5, 64, generator=g),
        "a": torch.randn(3, 5, 32, generator=g),
        "b": torch.randn(3, 5, 32, generator=g),
    }
    feeds = {n: t.to("cuda", torch_dtype) for n, t in feeds.items()}
    y = _build_and_run(trt, model, feeds)

    weights = [torch.from_numpy(numpy_helper.to_array(w).copy()).to("cuda") for w in model.graph.initializer]
    ref = token_interpolate_reference(feeds["h"], feeds["a"], feeds["b"], *weights)
    check_close(y, ref, torch_dtype)


@pytest.mark.trt
@pytest.mark.gpu
def test_build_engine_with_plugin_matches_the_model(tiny_onnx, tiny_model, tiny_clips, tmp_path):
    """The path users take (`inti-export trt --plugin`): build_engine with plugin=True, then TrtRunner,
    against the PyTorch model on real clips (issue 28: the raw-API test above never ran build_engine)."""
    _require_trt()
    from inti_export.runtime.trt import BuildConfig, TrtRunner, build_engine

    engine = tmp_path / "plugin.engine"
    manifest = build_engine(tiny_onnx.onnx_path, engine, BuildConfig(runtime="tensorrt", plugin=True, batch=(1, 2, 4)))
    assert [p["aot"] for p in manifest.plugins] == [True]
    video = tiny_clips.clips[:4]
    with torch.no_grad():
        want = tiny_model(torch.from_numpy(video)).numpy()
    with TrtRunner(engine) as runner:
        got = runner.infer({"video": video})["embedding"]
    np.testing.assert_allclose(got, want, atol=1e-4 * np.abs(want).max(), rtol=0)
