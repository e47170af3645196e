"""Issue 18: engines that name a device, GPUs TensorRT-RTX does not run on, plugin engines, and
TensorRT-RTX's runtime cache."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from trt_marks import NEEDS_TRT, RUNTIME, copy_engine, cuda, needs_gpu, needs_rtx

from inti_export.errors import EngineError, RuntimeUnavailableError
from inti_export.runtime.manifest import manifest_path
from inti_export.runtime.trt import TrtRunner, check_engine, load_trt_module
from inti_export.runtime.trt.config import gpu_compute_capability
from inti_export.runtime.trt.loader import pick_runtime
from inti_export.runtime.trt.runner import runtime_cache_path

pytestmark = NEEDS_TRT


# -- issue 18: engines that name a device, GPUs TensorRT-RTX does not run on, plugin engines --------
def _fake_gpus(monkeypatch, *capabilities):
    """torch sees CUDA devices of these compute capabilities ((9, 0), (8, 6), ...); nothing else is faked."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(capabilities))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=0: capabilities[device])


def test_runtime_follows_the_gpus_compute_capability(monkeypatch):
    """TensorRT-RTX without a GPU or on one it supports; full TensorRT on one it does not (SM90)."""
    import sys
    import types

    rtx_present = importlib.util.find_spec("tensorrt_rtx") is not None
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # full TensorRT: not importable
    if rtx_present:
        assert pick_runtime(None) == ("tensorrt-rtx", "")
        _fake_gpus(monkeypatch, (8, 6))
        assert pick_runtime(gpu_compute_capability()) == ("tensorrt-rtx", "")
    _fake_gpus(monkeypatch, (9, 0))  # an H100 or H200
    runtime, why = pick_runtime(gpu_compute_capability())
    assert runtime is None and "import tensorrt" in why
    if rtx_present:
        assert "does not run on this GPU (SM90" in why
    monkeypatch.setitem(sys.modules, "tensorrt", types.ModuleType("tensorrt"))  # full TensorRT installed
    assert pick_runtime(gpu_compute_capability()) == ("tensorrt", "")
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)  # only full TensorRT, and no GPU
    runtime, why = pick_runtime(None)
    assert runtime is None and "only on a CUDA GPU" in why


@needs_rtx
def test_check_engine_reads_the_named_device(engines, tmp_path, monkeypatch):
    src, _ = engines["fp32"]
    path = copy_engine(src, tmp_path)
    data = json.loads(manifest_path(path).read_text())
    manifest_path(path).write_text(json.dumps({**data, "compute_capabilities": ["SM86"],
                                               "compute_capabilities_source": "requested"}))
    _fake_gpus(monkeypatch, (9, 0), (8, 6))  # an H100 as device 0, an RTX 3090 as device 1
    assert check_engine(path, device=1).compute_capabilities == ["SM86"]
    with pytest.raises(EngineError, match=r"does not run on CUDA device 0 \(SM90\).*full TensorRT") as e:
        check_engine(path)
    assert "\n" not in str(e.value)
    with pytest.raises(RuntimeUnavailableError, match="CUDA device 2 is not present"):
        check_engine(path, device=2)
    for device, match in ((0, "SM90"), (2, "not present")):  # the runner checks its own device first
        with pytest.raises((EngineError, RuntimeUnavailableError), match=match):
            TrtRunner(path, device=device).activate()
    _fake_gpus(monkeypatch, (8, 9))
    with pytest.raises(EngineError, match=r"targets \['SM86'\], not this GPU \(SM89\)"):
        check_engine(path)
    (tmp_path / "default").mkdir()
    default = copy_engine(src, tmp_path / "default")
    assert check_engine(default).compute_capabilities_source == "default"  # SM89 is in the portable set


@needs_rtx
def test_aot_plugin_engines_need_no_registration(engines, tmp_path):
    """An AOT plugin engine holds its kernel: checking it registers nothing (TensorRT-RTX would refuse)."""
    from inti_export.plugins.trt_plugin import plugin_info

    path = copy_engine(engines["fp32"][0], tmp_path)
    data = json.loads(manifest_path(path).read_text())
    entry = {**plugin_info().to_dict(), "aot": True}
    manifest_path(path).write_text(json.dumps({**data, "plugins": [entry]}))
    if not cuda():
        assert check_engine(path).plugins == [entry]
    manifest_path(path).write_text(json.dumps({**data, "plugins": [{**entry, "aot": False}]}))
    with pytest.raises(EngineError, match="TensorRT-RTX does not support user plugins"):
        check_engine(path)  # a Python-impl plugin engine must register, and cannot here


@needs_rtx
def test_plugin_parse_drops_the_function_and_sets_no_override(toy_model_factory, tmp_path):
    """With plugin=True the function is removed (no parser can inline it) and no override flag is set."""
    from inti_export.plugins import trt_plugin
    from inti_export.runtime.trt import parse as trt_parse
    from inti_export.runtime.trt.loader import trt_logger

    trt = load_trt_module(RUNTIME)
    model = toy_model_factory("fp32")
    assert [f.name for f in model.functions] == ["TokenInterpolate"]
    logger = trt_logger(trt)
    network = trt.Builder(logger).create_network(trt_parse.network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    with pytest.raises(EngineError, match="TokenInterpolate") as e:
        trt_parse.parse(trt, parser, tmp_path / "m.onnx", model, trt_plugin, logger)
    assert "could not parse" in str(e.value)  # no function to fall back on, no plugin in TensorRT-RTX
    assert list(model.functions) == []
    attrs = {a.name for a in model.graph.node[7].attribute}
    assert model.graph.node[7].op_type == "TokenInterpolate" and {"plugin_namespace", "aot"} <= attrs
    assert not parser.get_flag(trt.OnnxParserFlag.ENABLE_PLUGIN_OVERRIDE)


@pytest.mark.gpu
@needs_gpu
@needs_rtx
def test_rtx_runtime_cache_saved_and_reloaded(engines):
    """TensorRT-RTX compiles kernels on first use; the runner keeps them in `model.engine.rtxcache`."""
    from inti_export.runtime.trt.check import check_gpu_supported
    from inti_export.runtime.trt.config import gpu_compute_capability

    trt = load_trt_module(RUNTIME)
    try:
        check_gpu_supported(trt, gpu_compute_capability())
    except EngineError as e:
        pytest.skip(str(e))
    path, _ = engines["fp32"]
    cache = runtime_cache_path(path)
    cache.unlink(missing_ok=True)
    video = np.zeros((2, 4, 3, 8, 8), np.float32)
    with TrtRunner(path) as runner:
        first = runner.infer({"video": video})["embedding"]
        assert not runner.runtime_cache_loaded
    assert cache.is_file() and cache.stat().st_size > 0
    with TrtRunner(path) as runner:
        assert runner.runtime_cache_loaded
        np.testing.assert_array_equal(runner.infer({"video": video})["embedding"], first)
