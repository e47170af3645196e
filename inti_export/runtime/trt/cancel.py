"""`build_serialized_network` in a worker thread that a signal, or another thread, can cancel.

    build_serialized(trt, builder, network, bconfig, progress, cancel, engine_path) -> serialized engine

TensorRT's Python wrappers swallow whatever a logger or monitor callback raises, KeyboardInterrupt
included: the only way to stop a build is a progress monitor's `step_complete` returning False. The
builder thread starts with SIGINT and SIGTERM blocked, so both reach the calling thread, which waits
in short waits; there the signal (a `KeyboardInterrupt`; the CLI raises `errors.Interrupted` for
SIGTERM) sets the cancel event; the calling thread waits for the builder to give up and re-raises.
Another thread can cancel through the same `cancel` event (EngineError). A TensorRT without
IProgressMonitor (before 10.0) cannot be cancelled: the build runs to its end.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Any

from inti_export.errors import EngineError, one_line
from inti_export.runtime.trt.config import BuildProgress
from inti_export.runtime.trt.loader import runtime_label

log = logging.getLogger(__name__)
_JOIN_S = 0.1  # how often the waiting thread wakes up to take a signal
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def build_serialized(trt, builder, network, bconfig, progress, cancel, engine_path: Path):
    """The serialized engine, or None where TensorRT could not build one; see the module docstring for how it stops."""
    cancel = cancel if cancel is not None else threading.Event()
    if hasattr(trt, "IProgressMonitor"):
        monitor = _progress_monitor(trt, progress, cancel)  # kept alive until the build returns
        bconfig.progress_monitor = monitor
    else:
        log.debug("%s has no IProgressMonitor: this build cannot be cancelled", runtime_label(trt))
    result: dict[str, Any] = {}
    done = threading.Event()

    def work() -> None:
        try:
            result["serialized"] = builder.build_serialized_network(network, bconfig)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread, which raises it
            result["error"] = e
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"trt-build-{engine_path.name}", daemon=True)
    interrupt: BaseException | None = None
    try:
        _start_shielded(worker)
    except KeyboardInterrupt as e:  # arrived as the (unshielded) start returned: the builder runs
        interrupt = e
        cancel.set()
    # Wait on an Event, not Thread.join: a KeyboardInterrupt inside join can mark a running thread as
    # stopped (CPython 3.11's _wait_for_tstate_lock), and the builder must have returned before we go on.
    while not done.is_set():
        try:
            done.wait(_JOIN_S)
        except KeyboardInterrupt as e:  # SIGINT, or the CLI's Interrupted for SIGTERM
            if interrupt is None:
                log.info("interrupted: cancelling the build of %s", engine_path)
                interrupt = e
            cancel.set()
    if interrupt is not None:
        raise interrupt
    if "error" in result:
        raise EngineError(f"{runtime_label(trt)} build failed: {one_line(result['error'])}") from result["error"]
    if cancel.is_set():
        raise EngineError(f"build of {engine_path} was cancelled: nothing was written")
    return result["serialized"]


def _start_shielded(worker: threading.Thread) -> None:
    """Start `worker` with SIGINT and SIGTERM blocked in it, and so in the threads TensorRT starts from it.

    A new thread inherits its creator's signal mask: blocked there, the signals always go to the
    waiting main thread (at once, not after TensorRT's next callback), and cannot interrupt
    `Thread.start` half-way. Elsewhere (Windows, a thread other than the main one) a plain start.
    """
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        worker.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    try:
        worker.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _progress_monitor(trt, progress: BuildProgress | None, cancel: threading.Event):
    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            if progress is not None:
                _call_quietly(progress.phase_start, phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            if progress is not None:
                _call_quietly(progress.step_complete, phase_name, step)
            return not cancel.is_set()  # False cancels the build

        def phase_finish(self, phase_name):
            if progress is not None:
                _call_quietly(progress.phase_finish, phase_name)

    return _Monitor()


def _call_quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:
        log.debug("progress callback failed", exc_info=True)
