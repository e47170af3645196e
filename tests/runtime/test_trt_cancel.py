"""Building an engine stops, and writes nothing, when another thread sets the cancel event or a
signal reaches the waiting thread (runtime/trt/cancel.py); an engine names the ONNX it was built from."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from trt_marks import NEEDS_TRT, RUNTIME

from inti_export.errors import EngineError, Interrupted
from inti_export.runtime.manifest import manifest_path
from inti_export.runtime.trt import BuildConfig, build_engine, verify_engine_artifact

pytestmark = NEEDS_TRT


# -- artifacts, paths and cancellation (issue 11) ---------------------------------------------------
def test_verify_engine_artifact_names_the_onnx(engines, toy_onnx, toy_onnx_fp16):
    path, manifest = engines["fp32"]
    assert verify_engine_artifact(path, toy_onnx) == manifest
    with pytest.raises(EngineError, match="built from another ONNX") as e:
        verify_engine_artifact(path, toy_onnx_fp16)
    assert "\n" not in str(e.value) and str(toy_onnx_fp16) in str(e.value)


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
def test_build_cancelled_by_event(toy_onnx, tmp_path, progress):
    """Another thread sets the event: the builder stops at its next step and nothing is written."""
    full = _Phases()
    build_engine(toy_onnx, tmp_path / "full.engine", BuildConfig(runtime=RUNTIME), progress=full)
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
        build_engine(toy_onnx, engine, BuildConfig(runtime=RUNTIME), progress=phases, cancel=cancel)
    assert "\n" not in str(e.value)
    if phases is not None:
        steps = sum(kind == "step" for kind, _ in phases.events)
        assert steps == 1 < full_steps  # stopped at the first step of hundreds
    assert list(tmp_path.iterdir()) == [] and _no_build_threads()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_build_interrupted_by_a_signal(toy_onnx, tmp_path, signum):
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
            build_engine(toy_onnx, tmp_path / "s.engine", BuildConfig(runtime=RUNTIME), progress=phases,
                         cancel=cancel)
    finally:
        for num, handler in previous.items():
            signal.signal(num, handler)
    assert isinstance(e.value, Interrupted) == (signum == signal.SIGTERM)
    assert cancel.is_set() and sum(kind == "step" for kind, _ in phases.events) == 1  # stopped at that step
    assert time.perf_counter() - start < 30
    assert sorted(tmp_path.iterdir()) == before and _no_build_threads()
