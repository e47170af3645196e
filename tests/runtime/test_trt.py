"""Real TensorRT builds from the test ONNX (TensorRT-RTX builds without a GPU; full TensorRT needs one).

No mocks: without a TensorRT module these tests are skipped with that reason. Tests that run an
engine are marked `gpu` and skipped where torch sees no CUDA device (or none TensorRT-RTX runs on).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import signal
import threading
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from inti_export.errors import EngineError, Interrupted, IntiExportError, RuntimeUnavailableError
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
    verify_engine_artifact,
)
from inti_export.runtime.trt.config import gpu_compute_capability
from inti_export.runtime.trt.loader import pick_runtime
from inti_export.runtime.trt.runner import runtime_cache_path


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


RUNTIME, SKIP_REASON = pick_runtime(gpu_compute_capability())
pytestmark = [pytest.mark.trt, pytest.mark.skipif(RUNTIME is None, reason=SKIP_REASON)]
needs_rtx = pytest.mark.skipif(RUNTIME != "tensorrt-rtx", reason="checks TensorRT-RTX behaviour")
needs_gpu = pytest.mark.skipif(not _cuda(), reason="no CUDA GPU: TensorRT engines run only on a GPU")
BATCH = (1, 2, 4)


@pytest.fixture(scope="session")
def engines(tmp_path_factory, test_onnx, test_onnx_fp16):
    """FP32 and FP16 engines built once, with a 1:2:4 batch profile."""
    out = tmp_path_factory.mktemp("engines")
    config = BuildConfig(runtime=RUNTIME, batch=BATCH)
    built = {}
    for precision, onnx_path in (("fp32", test_onnx), ("fp16", test_onnx_fp16)):
        path = out / f"tiny_{precision}.engine"
        built[precision] = (path, build_engine(onnx_path, path, config))
    return built


def _copy_engine(src, dst_dir):
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copy(manifest_path(src), manifest_path(dst))
    return dst


# -- building ---------------------------------------------------------------------------------
def test_fp32_engine_and_manifest(engines, test_onnx):
    path, manifest = engines["fp32"]
    trt = load_trt_module(RUNTIME)
    assert path.is_file() and manifest_path(path).is_file()
    assert not list(path.parent.glob("*.tmp"))
    assert manifest == load_manifest(path)
    assert manifest.runtime == RUNTIME == runtime_name(trt) and manifest.runtime_version == trt.__version__
    assert manifest.precision == "fp32"
    assert manifest.engine_sha256 == sha256_file(path) and manifest.engine_size == path.stat().st_size > 0
    assert manifest.onnx_sha256 == sha256_file(test_onnx)
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
def test_rtx_compute_capabilities(engines, test_onnx, tmp_path):
    _, manifest = engines["fp32"]
    assert manifest.compute_capabilities_source == "default"
    assert manifest.compute_capabilities == ["SM80", "SM86", "SM89", "SM120"]
    m = build_engine(test_onnx, tmp_path / "sm86.engine", BuildConfig(runtime=RUNTIME, compute_capabilities=("8.6",)))
    assert (m.compute_capabilities, m.compute_capabilities_source) == (["SM86"], "requested")
    # Turing has no FP32 GEMM in TensorRT-RTX: the builder refuses, and says so in one line.
    with pytest.raises(EngineError, match="SM75") as e:
        build_engine(test_onnx, tmp_path / "sm75.engine", BuildConfig(runtime=RUNTIME, compute_capabilities=("SM75",)))
    assert "\n" not in str(e.value)
    assert not (tmp_path / "sm75.engine").exists() and not list(tmp_path.glob("*.tmp"))
    with pytest.raises(EngineError, match="SM90"):  # Hopper is not a TensorRT-RTX target
        build_engine(test_onnx, tmp_path / "x.engine", BuildConfig(runtime=RUNTIME, compute_capabilities=("SM90",)))


@needs_rtx
def test_rtx_ignores_timing_cache(test_onnx, tmp_path, caplog):
    cache = tmp_path / "timing.cache"
    m = build_engine(test_onnx, tmp_path / "t.engine", BuildConfig(runtime=RUNTIME, timing_cache=cache))
    assert m.build["timing_cache"] == {"path": str(cache), "used": False}
    assert not cache.exists() and "ignores timing caches" in caplog.text


@needs_rtx
def test_rtx_refuses_plugin(test_onnx, tmp_path):
    with pytest.raises(EngineError, match="TensorRT-RTX does not support user plugins; build with --no-plugin"):
        build_engine(test_onnx, tmp_path / "p.engine", BuildConfig(runtime=RUNTIME, plugin=True))


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


def test_parser_errors_one_per_line(tmp_path, test_model_factory):
    import onnx
    from onnx import helper

    model = test_model_factory("fp32")
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


def test_precision_metadata_checked(tmp_path, test_model_factory):
    import onnx
    from onnx import helper

    model = test_model_factory("fp32")
    helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, "inti.precision": "fp12"})
    onnx.save(model, tmp_path / "fp12.onnx")
    with pytest.raises(EngineError, match="fp12"):
        build_engine(tmp_path / "fp12.onnx", tmp_path / "fp12.engine", BuildConfig(runtime=RUNTIME))


def test_convert_and_build(test_onnx, test_onnx_fp16, foreign_onnx, tmp_path):
    m = convert_and_build(test_onnx_fp16, tmp_path / "a.engine", BuildConfig(runtime=RUNTIME), "fp16")
    assert m.precision == "fp16"  # already FP16: built directly
    with pytest.raises(EngineError, match="unknown precision"):
        convert_and_build(test_onnx, tmp_path / "b.engine", BuildConfig(runtime=RUNTIME), "fp4")
    with pytest.raises(IntiExportError, match="has no inti.version metadata"):  # the conversion keeps trt's rule
        convert_and_build(foreign_onnx, tmp_path / "c.engine", BuildConfig(runtime=RUNTIME), "fp16")
    assert not (tmp_path / "c.engine").exists() and not (tmp_path / "c.fp16.onnx").exists()


# -- checking ---------------------------------------------------------------------------------
def test_check_engine_accepts_fresh_build(engines):
    path, manifest = engines["fp32"]
    if _cuda():
        pytest.skip("on a GPU the target check applies; see test_trt_runner")
    assert check_engine(path) == manifest
    assert check_engine(path, load_trt_module(RUNTIME)) == manifest


def test_check_engine_refuses(engines, tmp_path):
    src, _ = engines["fp32"]
    with pytest.raises(EngineError, match="engine file not found"):
        check_engine(tmp_path / "nothing.engine")

    corrupt = _copy_engine(src, tmp_path)
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
    mismatch = _copy_engine(src, other)
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
    if _cuda():
        with pytest.raises(EngineError, match="not this GPU"):
            check_engine(mismatch)


def test_inspect_engine(engines):
    path, manifest = engines["fp16"]
    info = inspect_engine(path)
    assert info["precision"] == "fp16" and info["engine_sha256"] == manifest.engine_sha256
    assert info["network_layers"] == manifest.network_layers
    if not _cuda():
        assert info["engine_layers"] is None and "no CUDA GPU" in info["engine_layers_note"]
        return
    try:  # on a GPU: the inspector's layers where the engine loads, else exactly the reason it does not
        check_engine(path)
    except EngineError as e:
        assert info["engine_layers"] is None and info["engine_layers_note"] == str(e)
    else:
        assert isinstance(info["engine_layers"], dict) and info["engine_layers"]["Layers"], info["engine_layers"]


def test_runner_without_gpu(engines):
    if _cuda():
        pytest.skip("a GPU is present")
    with pytest.raises(RuntimeUnavailableError, match="no CUDA GPU: TensorRT engines run only on a GPU"), \
            TrtRunner(engines["fp32"][0]):
        pass


@pytest.mark.gpu
@needs_gpu
@pytest.mark.parametrize("precision, atol", [("fp32", 1e-4), ("fp16", 2e-2)])
def test_trt_runner_matches_onnxruntime(engines, test_onnx, precision, atol):
    import onnxruntime as ort

    path, _ = engines[precision]
    session = ort.InferenceSession(str(test_onnx), providers=["CPUExecutionProvider"])
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


def test_cli_trt_and_inspect(cli, test_onnx, test_onnx_fp16, tmp_path):
    engine = tmp_path / "cli.engine"
    r = cli("trt", test_onnx, "-o", engine, "--runtime", RUNTIME, "--batch", "1:2:3")
    assert r.exit_code == 0, r.output
    assert engine.is_file() and load_manifest(engine).profile_batch == (1, 2, 3)
    assert "built" in r.output

    r = cli("inspect", engine)
    assert r.exit_code == 0, r.output
    assert "TokenInterpolate" in r.output and RUNTIME in r.output
    r = cli("inspect", engine, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["profiles"][0]["max"][0] == 3

    r = cli("trt", test_onnx_fp16, "--fp16", "-o", tmp_path / "h.engine", "--runtime", RUNTIME)
    assert r.exit_code == 0, r.output
    assert load_manifest(tmp_path / "h.engine").precision == "fp16"


def test_cli_errors(cli, test_onnx, foreign_onnx, tmp_path):
    def fails(*args, match):
        r = cli(*args)
        assert r.exit_code == 1, r.output
        lines = [line for line in r.output.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and match in lines[0], r.output
        assert not list(tmp_path.glob("*.tmp"))

    out = tmp_path / "x.engine"
    fails("trt", test_onnx, "-o", out, "--batch", "8:4:1", match="'8:4:1'")
    fails("trt", test_onnx, "-o", out, "--batch", "one", match="'one'")
    fails("trt", test_onnx, "-o", out, "--fp16", "--int8", match="choose one precision")
    fails("trt", foreign_onnx, "-o", out, "--runtime", RUNTIME, match="--allow-foreign")
    if importlib.util.find_spec("inti_export.calibration.precision") is None:
        fails("trt", test_onnx, "-o", out, "--runtime", RUNTIME, "--int8", match="calibration module")
    if RUNTIME == "tensorrt-rtx":
        fails("trt", test_onnx, "-o", out, "--runtime", RUNTIME, "--plugin", match="--no-plugin")
    assert not out.exists()

    bad = tmp_path / "bad.engine"
    bad.write_bytes(b"junk")
    fails("inspect", bad, match="no manifest")
    r = cli("trt", foreign_onnx, "-o", out, "--runtime", RUNTIME, "--allow-foreign")
    assert r.exit_code == 0, r.output


# -- artifacts, paths and cancellation (issue 11) ---------------------------------------------------
def test_verify_engine_artifact_names_the_onnx(engines, test_onnx, test_onnx_fp16):
    path, manifest = engines["fp32"]
    assert verify_engine_artifact(path, test_onnx) == manifest
    with pytest.raises(EngineError, match="built from another ONNX") as e:
        verify_engine_artifact(path, test_onnx_fp16)
    assert "\n" not in str(e.value) and str(test_onnx_fp16) in str(e.value)


class _Phases:
    """A BuildProgress that records TensorRT's phases and calls `on_first_step` once, from a builder thread."""

    def __init__(self, on_first_step=None):
        self.events, self.on_first_step = [], on_first_step

    def phase_start(self, name, parent, steps):
        self.events.append(("start", name))

    def step_complete(self, name, step):
        self.events.append(("step", name))
        if self.on_first_step is not None:
            first, self.on_first_step = self.on_first_step, None
            first()

    def phase_finish(self, name):
        self.events.append(("finish", name))


def _no_build_threads() -> bool:
    """The builder thread has returned (it may still be unwinding for a moment)."""
    for t in [t for t in threading.enumerate() if t.name.startswith("trt-build-")]:
        t.join(10)
    return not [t for t in threading.enumerate() if t.name.startswith("trt-build-")]


@pytest.mark.parametrize("progress", [False, True], ids=["no-progress", "progress"])
def test_build_cancelled_by_event(test_onnx, tmp_path, progress):
    """Another thread sets the event: the builder stops at its next step and nothing is written."""
    full = _Phases()
    build_engine(test_onnx, tmp_path / "full.engine", BuildConfig(runtime=RUNTIME), progress=full)
    full_steps = sum(kind == "step" for kind, _ in full.events)
    for path in (tmp_path / "full.engine", manifest_path(tmp_path / "full.engine")):
        path.unlink()

    cancel = threading.Event()
    phases = _Phases(on_first_step=cancel.set)
    canceller = None
    if not progress:  # no progress object: the monitor is installed anyway; cancel from a timer thread
        phases = None
        canceller = threading.Timer(0.0, cancel.set)
        canceller.start()
        canceller.join()
    engine = tmp_path / "c.engine"
    with pytest.raises(EngineError, match="cancelled: nothing was written") as e:
        build_engine(test_onnx, engine, BuildConfig(runtime=RUNTIME), progress=phases, cancel=cancel)
    assert "\n" not in str(e.value)
    if phases is not None:
        steps = sum(kind == "step" for kind, _ in phases.events)
        assert steps == 1 < full_steps  # stopped at the first step of hundreds
    assert list(tmp_path.iterdir()) == [] and _no_build_threads()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_build_interrupted_by_a_signal(test_onnx, tmp_path, signum):
    """A signal during the build reaches the waiting main thread, cancels the build, writes nothing.

    As in the CLI, SIGTERM raises errors.Interrupted (a KeyboardInterrupt); SIGINT gets Python's own handler.
    """
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals are delivered to the main thread only")

    def raise_interrupted(num, frame):
        raise Interrupted(num)

    previous = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),  # KeyboardInterrupt
                signal.SIGTERM: signal.signal(signal.SIGTERM, raise_interrupted)}
    (tmp_path / "kept.txt").write_text("the folder as it was")
    before = sorted(tmp_path.iterdir())
    main = threading.main_thread().ident
    cancel = threading.Event()

    def interrupt_and_wait():
        # from a builder thread: signal the waiting main thread, and hold this step until it has set the
        # cancel event (the main thread's reaction takes a GIL switch, in which TensorRT runs on)
        signal.pthread_kill(main, signum)
        assert cancel.wait(10), "the main thread did not cancel"

    phases = _Phases(on_first_step=interrupt_and_wait)
    start = time.perf_counter()
    try:
        with pytest.raises(KeyboardInterrupt) as e:
            build_engine(test_onnx, tmp_path / "s.engine", BuildConfig(runtime=RUNTIME), progress=phases,
                         cancel=cancel)
    finally:
        for num, handler in previous.items():
            signal.signal(num, handler)
    assert isinstance(e.value, Interrupted) == (signum == signal.SIGTERM)
    assert cancel.is_set() and sum(kind == "step" for kind, _ in phases.events) == 1  # stopped at that step
    assert time.perf_counter() - start < 30
    assert sorted(tmp_path.iterdir()) == before and _no_build_threads()


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
    path = _copy_engine(src, tmp_path)
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
    default = _copy_engine(src, tmp_path / "default")
    assert check_engine(default).compute_capabilities_source == "default"  # SM89 is in the portable set


@needs_rtx
def test_aot_plugin_engines_need_no_registration(engines, tmp_path):
    """An AOT plugin engine holds its kernel: checking it registers nothing (TensorRT-RTX would refuse)."""
    from inti_export.plugins.trt_plugin import plugin_info

    path = _copy_engine(engines["fp32"][0], tmp_path)
    data = json.loads(manifest_path(path).read_text())
    entry = {**plugin_info().to_dict(), "aot": True}
    manifest_path(path).write_text(json.dumps({**data, "plugins": [entry]}))
    if not _cuda():
        assert check_engine(path).plugins == [entry]
    manifest_path(path).write_text(json.dumps({**data, "plugins": [{**entry, "aot": False}]}))
    with pytest.raises(EngineError, match="TensorRT-RTX does not support user plugins"):
        check_engine(path)  # a Python-impl plugin engine must register, and cannot here


@needs_rtx
def test_plugin_parse_drops_the_function_and_sets_no_override(test_model_factory, tmp_path):
    """With plugin=True the function is removed (no parser can inline it) and no override flag is set."""
    from inti_export.plugins import trt_plugin
    from inti_export.runtime.trt import parse as trt_parse
    from inti_export.runtime.trt.loader import trt_logger

    trt = load_trt_module(RUNTIME)
    model = test_model_factory("fp32")
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
