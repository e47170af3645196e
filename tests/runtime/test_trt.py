"""Real TensorRT builds from the test ONNX (TensorRT-RTX builds without a GPU; full TensorRT needs one):
building, checking, running, and the `trt`/`inspect` commands. Cancelling a build is in
test_trt_cancel.py; engines that name a device, and plugin engines, in test_trt_devices.py.

No mocks: without a TensorRT module these tests are skipped with that reason. Tests that run an
engine are marked `gpu` and skipped where torch sees no CUDA device (or none TensorRT-RTX runs on).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_one_line_error
from trt_marks import BATCH, NEEDS_TRT, RUNTIME, copy_engine, cuda, needs_gpu, needs_rtx
from typer.testing import CliRunner

from inti_export.errors import EngineError, IntiExportError, RuntimeUnavailableError
from inti_export.fileio import sha256_file
from inti_export.jobs.engine import convert_and_build
from inti_export.runtime.manifest import load_manifest, manifest_path
from inti_export.runtime.trt import (
    BuildConfig,
    TrtRunner,
    build_engine,
    check_engine,
    inspect_engine,
    load_trt_module,
    runtime_name,
)

pytestmark = NEEDS_TRT


# -- building ---------------------------------------------------------------------------------
def test_fp32_engine_and_manifest(engines, toy_onnx):
    path, manifest = engines["fp32"]
    trt = load_trt_module(RUNTIME)
    assert path.is_file() and manifest_path(path).is_file()
    assert not list(path.parent.glob("*.tmp"))
    assert manifest == load_manifest(path)
    assert manifest.runtime == RUNTIME == runtime_name(trt) and manifest.runtime_version == trt.__version__
    assert manifest.precision == "fp32"
    assert manifest.engine_sha256 == sha256_file(path) and manifest.engine_size == path.stat().st_size > 0
    assert manifest.onnx_sha256 == sha256_file(toy_onnx)
    assert manifest.onnx_metadata["inti.version"] and manifest.onnx_metadata["inti.frames"] == "4"
    assert manifest.plugins == [] and manifest.build["strongly_typed"] is True
    assert manifest.build_time_s > 0
    assert manifest.inputs == [{"name": "video", "dtype": "float32", "shape": [None, 4, 3, 8, 8]}]
    assert manifest.outputs == [{"name": "embedding", "dtype": "float32", "shape": [None, 16]}]


def test_real_test_tiny_export_builds(tiny_onnx, tiny_engine):
    """The exporter's test-tiny ONNX (two InTI steps) builds and both functions are inlined.

    The build is the session's `tiny_engine` (tests/conftest.py: this module's runtime, a 1:2:4 profile).
    """
    path, manifest_file = tiny_engine
    m = load_manifest(path)
    assert manifest_file == manifest_path(path) and m.engine_sha256 == sha256_file(path)
    assert m.runtime == RUNTIME and m.profile_batch == BATCH
    assert m.onnx_sha256 == sha256_file(tiny_onnx.onnx_path)
    summary = m.network_summary
    assert m.onnx_metadata["inti.preset"] == "test-tiny" and m.precision == "fp32"
    assert summary["plugin_layers"] == [] and len(summary["onnx_function_nodes"]) == 2
    assert summary["functions"]["TokenInterpolate"]["calls"] == summary["onnx_function_nodes"]
    assert set(summary["functions"]["TokenInterpolate"]["output_dtypes"]) == {"FLOAT"}


def test_dynamic_batch_profile_recorded(engines):
    _, manifest = engines["fp32"]
    assert manifest.profiles == [
        {"input": "video", "min": [1, 4, 3, 8, 8], "opt": [2, 4, 3, 8, 8], "max": [4, 4, 3, 8, 8]}
    ]
    assert manifest.profile_batch == BATCH


def test_function_inlined_no_plugin(engines):
    for _, manifest in engines.values():
        summary = manifest.network_summary
        assert summary["plugin_layers"] == []
        assert not any(layer["type"].startswith("PLUGIN") for layer in manifest.network_layers)
        assert summary["onnx_function_nodes"] == ["inti_step_0"]
        fn = summary["functions"]["TokenInterpolate"]
        assert fn["calls"] == ["inti_step_0"] and fn["layers"] >= 10  # MatMul, Erf, Softmax... as layers
        inlined = {layer["type"] for layer in manifest.network_layers if layer["functions"]}
        assert {"MATRIX_MULTIPLY", "SOFTMAX", "UNARY"} <= inlined


def test_precision_in_layer_dtypes(engines):
    fp32 = engines["fp32"][1].network_summary
    fp16 = engines["fp16"][1]
    assert set(fp32["functions"]["TokenInterpolate"]["output_dtypes"]) == {"FLOAT"}
    assert "HALF" not in fp32["output_dtypes"]
    assert fp16.precision == "fp16"
    assert set(fp16.network_summary["functions"]["TokenInterpolate"]["output_dtypes"]) == {"HALF"}
    assert fp16.inputs[0]["dtype"] == fp16.outputs[0]["dtype"] == "float32"  # FP32 I/O kept
    matmuls = [layer for layer in fp16.network_layers if layer["type"] == "MATRIX_MULTIPLY"]
    assert matmuls and all(layer["output_dtypes"] == ["HALF"] for layer in matmuls)


@needs_rtx
def test_rtx_compute_capabilities(engines, toy_onnx, tmp_path):
    _, manifest = engines["fp32"]
    assert manifest.compute_capabilities_source == "default"
    assert manifest.compute_capabilities == ["SM80", "SM86", "SM89", "SM120"]
    m = build_engine(toy_onnx, tmp_path / "sm86.engine", BuildConfig(runtime=RUNTIME, compute_capabilities=("8.6",)))
    assert (m.compute_capabilities, m.compute_capabilities_source) == (["SM86"], "requested")
    # Turing has no FP32 GEMM in TensorRT-RTX: the builder refuses, and says so in one line.
    with pytest.raises(EngineError, match="SM75") as e:
        build_engine(toy_onnx, tmp_path / "sm75.engine", BuildConfig(runtime=RUNTIME, compute_capabilities=("SM75",)))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "sm75.engine").exists() and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(EngineError, match="SM90"):  # Hopper is not a TensorRT-RTX target
        build_engine(toy_onnx, tmp_path / "x.engine", BuildConfig(runtime=RUNTIME, compute_capabilities=("SM90",)))


@needs_rtx
def test_rtx_ignores_timing_cache(toy_onnx, tmp_path, caplog):
    cache = tmp_path / "timing.cache"
    m = build_engine(toy_onnx, tmp_path / "t.engine", BuildConfig(runtime=RUNTIME, timing_cache=cache))
    assert m.build["timing_cache"] == {"path": str(cache), "used": False}
    assert not cache.exists() and "ignores timing caches" in caplog.text


@needs_rtx
def test_rtx_refuses_plugin(toy_onnx, tmp_path):
    with pytest.raises(EngineError, match="TensorRT-RTX does not support user plugins; build with --no-plugin"):
        build_engine(toy_onnx, tmp_path / "p.engine", BuildConfig(runtime=RUNTIME, plugin=True))


def test_corrupt_onnx_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 50)
    engine = tmp_path / "bad.engine"
    with pytest.raises(EngineError, match=r"bad\.onnx") as e:
        build_engine(bad, engine, BuildConfig(runtime=RUNTIME))
    assert "\n" not in str(e.value)
    assert list(tmp_path.iterdir()) == [bad]
    with pytest.raises(EngineError, match="not found"):
        build_engine(tmp_path / "missing.onnx", engine, BuildConfig(runtime=RUNTIME))


def test_parser_errors_one_per_line(tmp_path, toy_model_factory):
    import onnx
    from onnx import helper

    model = toy_model_factory("fp32")
    for node in model.graph.node:
        if node.name == "pool":  # an op no importer or plugin knows
            node.op_type, node.domain = "Mystery", "example"
            del node.attribute[:]
    model.opset_import.append(helper.make_opsetid("example", 1))
    onnx.save(model, tmp_path / "mystery.onnx")
    engine = tmp_path / "mystery.engine"
    with pytest.raises(EngineError) as e:
        build_engine(tmp_path / "mystery.onnx", engine, BuildConfig(runtime=RUNTIME))
    first, *errors = str(e.value).splitlines()
    assert "could not parse" in first and errors and "'pool' (Mystery)" in errors[0]
    assert not engine.exists() and not list(tmp_path.glob("*.tmp"))


def test_foreign_onnx(foreign_onnx, tmp_path):
    engine = tmp_path / "foreign.engine"
    with pytest.raises(EngineError, match=r"inti\.version") as e:
        build_engine(foreign_onnx, engine, BuildConfig(runtime=RUNTIME))
    assert "allow-foreign" in str(e.value) and not engine.exists()
    m = build_engine(foreign_onnx, engine, BuildConfig(runtime=RUNTIME, allow_foreign=True))
    assert m.build["foreign_onnx"] is True and m.precision == "fp32" and m.onnx_metadata == {}


def test_precision_metadata_checked(tmp_path, toy_model_factory):
    import onnx
    from onnx import helper

    model = toy_model_factory("fp32")
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "inti.precision": "fp12"})
    onnx.save(model, tmp_path / "fp12.onnx")
    with pytest.raises(EngineError, match="fp12"):
        build_engine(tmp_path / "fp12.onnx", tmp_path / "fp12.engine", BuildConfig(runtime=RUNTIME))


def test_convert_and_build(toy_onnx, toy_onnx_fp16, foreign_onnx, tmp_path):
    m = convert_and_build(toy_onnx_fp16, tmp_path / "a.engine", BuildConfig(runtime=RUNTIME), "fp16")
    assert m.precision == "fp16"  # already FP16: built directly
    with pytest.raises(EngineError, match="unknown precision"):
        convert_and_build(toy_onnx, tmp_path / "b.engine", BuildConfig(runtime=RUNTIME), "fp4")
    with pytest.raises(IntiExportError, match="has no inti.version metadata"):  # the conversion keeps trt's rule
        convert_and_build(foreign_onnx, tmp_path / "c.engine", BuildConfig(runtime=RUNTIME), "fp16")
    assert not (tmp_path / "c.engine").exists() and not (tmp_path / "c.fp16.onnx").exists()


# -- checking ---------------------------------------------------------------------------------
def test_check_engine_accepts_fresh_build(engines):
    path, manifest = engines["fp32"]
    if cuda():
        pytest.skip("on a GPU the target check applies; see test_trt_runner")
    assert check_engine(path) == manifest
    assert check_engine(path, load_trt_module(RUNTIME)) == manifest


def test_check_engine_refuses(engines, tmp_path):
    src, _ = engines["fp32"]
    with pytest.raises(EngineError, match="engine file not found"):
        check_engine(tmp_path / "nothing.engine")

    corrupt = copy_engine(src, tmp_path)
    data = bytearray(corrupt.read_bytes())
    data[100:116] = b"\xff" * 16
    corrupt.write_bytes(bytes(data))
    with pytest.raises(EngineError, match="does not match its manifest") as e:
        check_engine(corrupt)
    assert "\n" not in str(e.value)

    foreign = tmp_path / "foreign.engine"
    foreign.write_bytes(b"not an engine at all")
    with pytest.raises(EngineError, match="no manifest beside"):
        check_engine(foreign)

    other = tmp_path / "other"
    other.mkdir()
    mismatch = copy_engine(src, other)
    data = json.loads(manifest_path(mismatch).read_text())
    manifest_path(mismatch).write_text(json.dumps({**data, "runtime_version": "0.0.1"}))
    with pytest.raises(EngineError, match=r"built with .* 0\.0\.1"):
        check_engine(mismatch)
    other_runtime = "tensorrt" if RUNTIME == "tensorrt-rtx" else "tensorrt-rtx"
    manifest_path(mismatch).write_text(json.dumps({**data, "runtime": other_runtime}))
    with pytest.raises(EngineError, match="built with"):
        check_engine(mismatch, load_trt_module(RUNTIME))
    manifest_path(mismatch).write_text(json.dumps({**data, "compute_capabilities": ["SM01"],
                                                   "compute_capabilities_source": "requested"}))
    if cuda():
        with pytest.raises(EngineError, match="not this GPU"):
            check_engine(mismatch)


def test_inspect_engine(engines):
    path, manifest = engines["fp16"]
    info = inspect_engine(path)
    assert info["precision"] == "fp16" and info["engine_sha256"] == manifest.engine_sha256
    assert info["network_layers"] == manifest.network_layers
    if not cuda():
        assert info["engine_layers"] is None and "no CUDA GPU" in info["engine_layers_note"]
        return
    try:  # on a GPU: the inspector's layers where the engine loads, else exactly the reason it does not
        check_engine(path)
    except EngineError as e:
        assert info["engine_layers"] is None and info["engine_layers_note"] == str(e)
    else:
        assert isinstance(info["engine_layers"], dict) and info["engine_layers"]["Layers"], info["engine_layers"]


def test_runner_without_gpu(engines):
    if cuda():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeUnavailableError, match="no CUDA GPU: TensorRT engines run only on a GPU"), \
            TrtRunner(engines["fp32"][0]):
        pass


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("fp16", 2e-2)])
def test_trt_runner_matches_onnxruntime(engines, toy_onnx, precision, atol):
    import onnxruntime as ort

    path, _ = engines[precision]
    session = ort.InferenceSession(str(toy_onnx), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    with TrtRunner(path) as runner:
        assert [s.name for s in runner.input_specs()] == ["video"]
        for batch in (1, 3, 4):
            video = rng.standard_normal((batch, 4, 3, 8, 8)).astype(np.float32)
            got = runner.infer({"video": video})["embedding"]
            want = session.run(None, {"video": video})[0]
            assert got.shape == (batch, 16)
            np.testing.assert_allclose(got, want, atol=atol, rtol=atol)
            assert runner.last_inference_time is not None and runner.last_inference_time > 0
        runner.synchronize()
        from inti_export.errors import InputShapeError

        with pytest.raises(InputShapeError, match="profile"):
            runner.infer({"video": np.zeros((5, 4, 3, 8, 8), np.float32)})


# -- CLI --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cli():
    from inti_export.cli import app

    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_cli_trt_and_inspect(cli, toy_onnx, toy_onnx_fp16, tmp_path):
    engine = tmp_path / "cli.engine"
    r = cli("trt", toy_onnx, "-o", engine, "--runtime", RUNTIME, "--batch", "1:2:3")
    assert r.exit_code == 0, r.output
    assert engine.is_file() and load_manifest(engine).profile_batch == (1, 2, 3)
    assert "built" in r.output

    r = cli("inspect", engine)
    assert r.exit_code == 0, r.output
    assert "TokenInterpolate" in r.output and RUNTIME in r.output
    r = cli("inspect", engine, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["profiles"][0]["max"][0] == 3

    r = cli("trt", toy_onnx_fp16, "--fp16", "-o", tmp_path / "h.engine", "--runtime", RUNTIME)
    assert r.exit_code == 0, r.output
    assert load_manifest(tmp_path / "h.engine").precision == "fp16"


def test_cli_errors(cli, toy_onnx, foreign_onnx, tmp_path):
    def fails(*args, match):
        r = cli(*args)
        assert_one_line_error(r, match)
        assert not list(tmp_path.glob("*.tmp"))

    out = tmp_path / "x.engine"
    fails("trt", toy_onnx, "-o", out, "--batch", "8:4:1", match="'8:4:1'")
    fails("trt", toy_onnx, "-o", out, "--batch", "one", match="'one'")
    fails("trt", toy_onnx, "-o", out, "--fp16", "--int8", match="choose one precision")
    fails("trt", foreign_onnx, "-o", out, "--runtime", RUNTIME, match="--allow-foreign")
    if RUNTIME == "tensorrt-rtx":
        fails("trt", toy_onnx, "-o", out, "--runtime", RUNTIME, "--plugin", match="--no-plugin")
    assert not out.exists()

    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"junk")
    fails("inspect", bad, match="no manifest")
    r = cli("trt", foreign_onnx, "-o", out, "--runtime", RUNTIME, "--allow-foreign")
    assert r.exit_code == 0, r.output
