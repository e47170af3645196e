"""Build options, manifests, engine-artifact checks and runner conversions that need no TensorRT and no GPU."""

from __future__ import annotations

import importlib.util
import json
import sys
import types

import pytest

from inti_export.errors import EngineError, RuntimeUnavailableError
from inti_export.runtime.manifest import EngineManifest, load_manifest, manifest_path
from inti_export.runtime.trt import (
    BuildConfig,
    load_trt_module,
    parse_batch_profile,
)
from inti_export.runtime.trt import check as trt_check
from inti_export.runtime.trt import config as trt_config
from inti_export.runtime.trt import network as trt_network
from inti_export.runtime.trt import plugins as trt_plugins


@pytest.mark.parametrize(
    "text, expected", [("1:4:8", (1, 4, 8)), ("2", (2, 2, 2)), (" 1:1:1 ", (1, 1, 1)), ("1:8:8", (1, 8, 8))]
)
def test_parse_batch_profile(text, expected):
    assert parse_batch_profile(text) == expected


@pytest.mark.parametrize("text", ["", "1:x:8", "1:4", "1:2:3:4", "0:1:2", "4:2:8", "1:9:8", "-1", "a"])
def test_parse_batch_profile_rejects(text):
    with pytest.raises(EngineError) as e:
        parse_batch_profile(text)
    assert repr(text) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"runtime": "onnxruntime"}, "onnxruntime"),
        ({"batch": (4, 2, 8)}, "min <= opt <= max"),
        ({"verbosity": "loud"}, "loud"),
        ({"workspace_gib": 0}, "workspace"),
        ({"optimization_level": 9}, "9"),
        ({"compute_capabilities": ("ampere",)}, "ampere"),
    ],
)
def test_build_config_rejects(kwargs, word):
    with pytest.raises(EngineError, match=word):
        BuildConfig(**kwargs)


def test_compute_capability_names():
    cfg = BuildConfig(compute_capabilities=("sm_86", "8.9", "SM120", "current"))
    assert cfg.compute_capabilities == ("SM86", "SM89", "SM120", "CURRENT")


def test_missing_runtime_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError
    with pytest.raises(RuntimeUnavailableError, match=r"inti-export\[trt\]"):
        load_trt_module("tensorrt")
    monkeypatch.setitem(sys.modules, "tensorrt_rtx", None)
    with pytest.raises(RuntimeUnavailableError, match=r"\[trt-rtx\]"):
        load_trt_module("auto")
    with pytest.raises(EngineError, match="tensorflow"):
        load_trt_module("tensorflow")


def test_plugin_refused_on_rtx_and_guarded():
    rtx = types.SimpleNamespace(__name__="tensorrt_rtx", __version__="1.7")
    with pytest.raises(EngineError, match="TensorRT-RTX does not support user plugins; build with --no-plugin"):
        trt_plugins.register_plugins(rtx)
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("full TensorRT is installed: the plugin registers for real (tested with a GPU)")
    full = types.SimpleNamespace(__name__="tensorrt", __version__="10.13")
    # Without the plugin module: EngineError; with it but without tensorrt: RuntimeUnavailableError.
    with pytest.raises((EngineError, RuntimeUnavailableError), match="plugin"):
        trt_plugins.register_plugins(full)


def test_layer_metadata_parsing():
    parse = trt_network.parse_layer_metadata
    assert parse("[ONNX Layer: node_of_w1t | inti_step_0 (TokenInterpolate)]") == (
        "node_of_w1t",
        [{"node": "inti_step_0", "function": "TokenInterpolate"}],
    )
    assert parse("[ONNX Layer: patch_embed]") == ("patch_embed", [])
    assert parse("") == (None, [])


def _manifest(**overrides) -> EngineManifest:
    fields = dict(
        engine_file="m.engine", engine_sha256="0" * 64, engine_size=1, runtime="tensorrt-rtx",
        runtime_version="1.7.1.116", precision="fp32",
        profiles=[{"input": "video", "min": [1, 4], "opt": [2, 4], "max": [4, 4]}],
        inputs=[], outputs=[], onnx_file="m.onnx", onnx_sha256="1" * 64, onnx_metadata={},
        compute_capabilities=["SM86"], compute_capabilities_source="requested", build_time_s=0.1,
    )
    return EngineManifest(**{**fields, **overrides})


def test_manifest_round_trip_and_errors(tmp_path):
    engine = tmp_path / "m.engine"
    with pytest.raises(EngineError, match="no manifest"):
        load_manifest(engine)
    m = _manifest()
    assert m.save(engine) == manifest_path(engine) == tmp_path / "m.engine.json"
    assert load_manifest(engine) == m and m.profile_batch == (1, 2, 4)
    assert not list(tmp_path.glob("*.tmp"))
    manifest_path(engine).write_text("{not json")
    with pytest.raises(EngineError, match="not readable JSON"):
        load_manifest(engine)
    manifest_path(engine).write_text(json.dumps({"engine_file": "m.engine"}))
    with pytest.raises(EngineError, match="lacks fields"):
        load_manifest(engine)
    manifest_path(engine).write_text(json.dumps({**m.to_dict(), "format": 99}))
    with pytest.raises(EngineError, match="upgrade inti-export"):
        load_manifest(engine)


def test_gpu_target_rules():
    default = _manifest(compute_capabilities=list(trt_config.RTX_DEFAULT_COMPUTE_CAPABILITIES),
                        compute_capabilities_source="default")
    targeted = trt_check.gpu_targeted
    assert targeted("SM80", default) and targeted("SM86", default) and targeted("SM120", default)
    assert targeted("SM121", default)  # "12.0 and later"
    # Hopper and datacenter Blackwell are not in TensorRT-RTX's portable set (issue 18, item 8)
    assert not targeted("SM90", default) and not targeted("SM100", default)
    assert not targeted("SM75", default)  # Turing only when asked for
    assert targeted("SM86", _manifest())
    assert not targeted("SM89", _manifest())
