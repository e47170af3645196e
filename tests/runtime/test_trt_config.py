"""Build options, manifests, engine-artifact checks and runner conversions that need no TensorRT and no GPU."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from inti_export.errors import EngineError, RuntimeUnavailableError
from inti_export.runtime.manifest import EngineManifest, load_manifest, manifest_path
from inti_export.runtime.trt import (
    BuildConfig,
    build_engine,
    load_trt_module,
    parse_batch_profile,
    verify_engine_artifact,
)
from inti_export.runtime.trt import check as trt_check
from inti_export.runtime.trt import config as trt_config
from inti_export.runtime.trt import network as trt_network
from inti_export.runtime.trt import plugins as trt_plugins
from inti_export.runtime.trt import runner as trt_runner


@pytest.mark.parametrize(
    "text, expected", [("1:4:8", (1, 4, 8)), ("2", (2, 2, 2)), (" 1:1:1 ", (1, 1, 1)), ("1:8:8", (1, 8, 8))]
)
def test_parse_batch_profile(text, expected):
    assert parse_batch_profile(text) == expected


def test_default_profile_is_tuned_for_the_served_batch():
    """opt = max: Triton's dynamic batcher sends max/2 and max (docs/serving.md), not batch 1 (issue 28 item 7)."""
    lo, opt, hi = trt_config.DEFAULT_BATCH
    assert (lo, opt, hi) == (1, 8, 8) and BuildConfig().batch is None  # None: DEFAULT_BATCH at build time


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
    fields = {
        "engine_file": "m.engine", "engine_sha256": "0" * 64, "engine_size": 1, "runtime": "tensorrt-rtx",
        "runtime_version": "1.7.1.116", "precision": "fp32",
        "profiles": [{"input": "video", "min": [1, 4], "opt": [2, 4], "max": [4, 4]}],
        "inputs": [], "outputs": [], "onnx_file": "m.onnx", "onnx_sha256": "1" * 64, "onnx_metadata": {},
        "compute_capabilities": ["SM86"], "compute_capabilities_source": "requested", "build_time_s": 0.1,
    }
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


# -- engine artifacts, checked without TensorRT or a GPU --------------------------------------------
def _artifact(tmp_path, engine_bytes=b"engine bytes " * 64, onnx_bytes=b"onnx bytes", **overrides):
    """An engine file, its manifest (hashes right unless overridden) and the ONNX it names."""
    onnx_path = tmp_path / "m.onnx"
    onnx_path.write_bytes(onnx_bytes)
    engine = tmp_path / "m.engine"
    engine.write_bytes(engine_bytes)
    m = _manifest(engine_sha256=hashlib.sha256(engine_bytes).hexdigest(), engine_size=len(engine_bytes),
                  onnx_file=str(onnx_path), onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest())
    data = {**m.to_dict(), **overrides}
    manifest_path(engine).write_text(json.dumps(data))
    return engine, onnx_path


def test_verify_engine_artifact(tmp_path):
    engine, onnx_path = _artifact(tmp_path)
    assert verify_engine_artifact(engine).engine_size == engine.stat().st_size
    assert verify_engine_artifact(engine, onnx_path).onnx_file == str(onnx_path)
    other = tmp_path / "other.onnx"
    other.write_bytes(b"another model")
    with pytest.raises(EngineError, match=r"built from another ONNX \(.*m\.onnx.*other\.onnx.*\): rebuild it"):
        verify_engine_artifact(engine, other)
    with pytest.raises(EngineError, match="ONNX file not found"):
        verify_engine_artifact(engine, tmp_path / "missing.onnx")
    engine.write_bytes(b"random bytes of the same size?")
    with pytest.raises(EngineError, match="does not match its manifest"):
        verify_engine_artifact(engine)
    with pytest.raises(EngineError, match="engine file not found"):
        verify_engine_artifact(tmp_path / "nothing.engine")
    (tmp_path / "bare.engine").write_bytes(b"x")
    with pytest.raises(EngineError, match="no manifest beside"):
        verify_engine_artifact(tmp_path / "bare.engine")


@pytest.mark.parametrize(
    "overrides, word",
    [
        ({"profiles": "oops"}, "profiles"),
        ({"profiles": [{"input": "video", "min": 1, "opt": 2, "max": 4}]}, "profiles"),  # scalars, not shapes
        ({"profiles": [{"input": "video", "min": [1, 4], "opt": [2], "max": [4, 4]}]}, "profiles"),  # ranks differ
        ({"profiles": ["video"]}, "profiles"),
        ({"inputs": [{"name": "video", "dtype": "float32", "shape": "B"}]}, "inputs"),
        ({"engine_size": "12"}, "engine_size"),
        ({"engine_size": True}, "engine_size"),
        ({"plugins": [{"name": "TokenInterpolate"}]}, "plugins"),
        ({"onnx_metadata": {"inti.frames": 8}}, "onnx_metadata"),
        ({"compute_capabilities": "SM86"}, "compute_capabilities"),
        ({"format": "1"}, "format"),
        ({"format": None}, "format"),
    ],
)
def test_malformed_manifest_is_one_line_engine_error(tmp_path, overrides, word):
    engine, _ = _artifact(tmp_path, **overrides)
    with pytest.raises(EngineError, match=word) as e:
        verify_engine_artifact(engine)
    assert "\n" not in str(e.value) and "rebuild" in str(e.value)


def test_profile_batch_skips_scalar_inputs(tmp_path):
    """A scalar input has no batch axis: the batch comes from the first input that has one."""
    scalar = {"input": "scale", "min": [], "opt": [], "max": []}
    video = {"input": "video", "min": [1, 4], "opt": [2, 4], "max": [6, 4]}
    m = _manifest(profiles=[scalar, video])
    assert m.profile_batch == (1, 2, 6)
    assert m.input_batch_range("video") == (1, 6) and m.input_batch_range("scale") is None
    assert _manifest(profiles=[scalar]).profile_batch == (1, 1, 1)
    engine, _ = _artifact(tmp_path, profiles=[scalar, video])
    assert verify_engine_artifact(engine).profile_batch == (1, 2, 6)


def test_build_refuses_outputs_that_are_inputs(tmp_path, toy_onnx):
    """Before any work (no TensorRT needed): the engine or its manifest would overwrite an input."""
    import shutil

    onnx_path = tmp_path / "m.onnx"
    shutil.copy(toy_onnx, onnx_path)
    as_json = tmp_path / "m.json"  # an ONNX whose name is the manifest of engine `m`
    shutil.copy(toy_onnx, as_json)
    before = sorted(tmp_path.iterdir())
    cases = [
        (onnx_path, onnx_path, "also an input"),
        (onnx_path, tmp_path / "m.onnx.json", "is the manifest of the input"),  # the exporter's manifest of the ONNX
        (as_json, tmp_path / "m", "engine manifest .* is also an input"),
        (onnx_path, tmp_path, "is a directory"),
        (onnx_path, tmp_path / "missing" / "m.engine", "does not exist"),
    ]
    for source, engine, match in cases:
        with pytest.raises(EngineError, match=match) as e:
            build_engine(source, engine, BuildConfig(runtime="tensorrt-rtx"))
        assert "\n" not in str(e.value)
    with pytest.raises(EngineError, match="also an input"):
        build_engine(onnx_path, tmp_path / "m.engine", BuildConfig(timing_cache=tmp_path / "m.engine"))
    assert sorted(tmp_path.iterdir()) == before and (tmp_path / "m.onnx").read_bytes() == toy_onnx.read_bytes()


# -- the runner's host/device conversions (issue 18, item 5), on CPU tensors -------------------------
@pytest.mark.parametrize("trt_dtype", sorted(trt_runner.HOST_DTYPES))
def test_binding_dtypes_round_trip(trt_dtype):
    import onnx  # noqa: F401 - registers ml_dtypes' bfloat16 with NumPy, as in a parity run

    host = trt_runner.host_dtype(trt_dtype)
    assert host.kind in "fiub" and host.name != "bfloat16"  # torch.from_numpy takes every host dtype
    arr = (np.arange(6).reshape(2, 3) % 2).astype(host)
    t = trt_runner.to_device(arr, trt_dtype, "cpu")
    assert t.dtype == trt_runner.torch_dtype(trt_dtype) and t.is_contiguous()
    back = trt_runner.to_host(t)
    assert back.dtype == host and np.array_equal(back, arr)  # 0 and 1 are exact in every type


def test_binding_dtypes_bf16_and_fp8():
    assert trt_runner.torch_dtype("BF16") == torch.bfloat16
    assert trt_runner.torch_dtype("FP8") == torch.float8_e4m3fn
    x = np.array([0.1, 1.5, -3.0], np.float32)
    assert np.array_equal(trt_runner.to_host(trt_runner.to_device(x, "BF16", "cpu")),
                          torch.tensor(x).bfloat16().float().numpy())
    with pytest.raises(EngineError, match="INT4"):
        trt_runner.host_dtype("INT4")


def test_runner_options_checked_first():
    with pytest.raises(EngineError, match="'fast'"):
        trt_runner.TrtRunner("m.engine", jit="fast")
    with pytest.raises(EngineError, match="-1"):
        trt_runner.TrtRunner("m.engine", device=-1)
    r = trt_runner.TrtRunner("dir/m.engine")
    assert r.runtime_cache_path == trt_runner.runtime_cache_path("dir/m.engine") == (
        Path("dir/m.engine.rtxcache"))
    assert trt_runner.TrtRunner("m.engine", runtime_cache=None).runtime_cache_path is None


def test_plugins_needing_registration():
    entry = {"name": "TokenInterpolate", "namespace": "inti", "version": "1", "sha256": "0" * 64}
    assert trt_plugins.plugins_needing_registration([{**entry, "aot": True}]) == []
    assert trt_plugins.plugins_needing_registration([{**entry, "aot": False}]) == [{**entry, "aot": False}]
    assert trt_plugins.plugins_needing_registration([entry]) == [entry]  # older manifests: the safe side
