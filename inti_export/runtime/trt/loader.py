"""Importing `tensorrt` or `tensorrt_rtx` (one API, two modules) and routing TensorRT's log to `logging`.

    load_trt_module("auto") -> the `tensorrt` or `tensorrt_rtx` module (auto prefers full TensorRT)
    trt_logger(trt, "warning") -> the one ILogger of that module, which also keeps the last errors

TensorRT modules are imported inside functions only: the package imports without them.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from inti_export.errors import EngineError, RuntimeUnavailableError, one_line
from inti_export.vocab import TrtRuntime, Verbosity

log = logging.getLogger(__name__)
TRT_LOG_NAME = "inti_export.runtime.trt.tensorrt"  # TensorRT's own messages go to this logger
_trt_log = logging.getLogger(TRT_LOG_NAME)

# runtime -> (module, pip extra)
RUNTIMES = {
    TrtRuntime.tensorrt.value: ("tensorrt", "trt"),
    TrtRuntime.tensorrt_rtx.value: ("tensorrt_rtx", "trt-rtx"),
}
NO_GPU = "no CUDA GPU: TensorRT engines run only on a GPU"


def load_trt_module(runtime: str = TrtRuntime.auto.value):
    """`tensorrt` or `tensorrt_rtx`; "auto" prefers full TensorRT. RuntimeUnavailableError says what to install."""
    runtime = getattr(runtime, "value", runtime)
    if runtime == TrtRuntime.auto.value:
        reasons = []
        for module_name, _ in RUNTIMES.values():
            module, reason = _try_import(module_name)
            if module is not None:
                return module
            reasons.append(reason)
        raise RuntimeUnavailableError(
            "no TensorRT module importable (" + "; ".join(reasons) + "): install one with"
            " pip install 'inti-export[trt]' (full TensorRT) or pip install 'inti-export[trt-rtx]' (TensorRT-RTX)"
        )
    if runtime not in RUNTIMES:
        raise EngineError(f"unknown runtime {runtime!r}: choose auto, {', '.join(RUNTIMES)}")
    module_name, extra = RUNTIMES[runtime]
    module, reason = _try_import(module_name)
    if module is None:
        raise RuntimeUnavailableError(
            f"runtime {runtime} is not available ({reason}): pip install 'inti-export[{extra}]'"
        )
    return module


def pick_runtime(gpu: str | None) -> tuple[str | None, str]:
    """The TensorRT runtime that both builds and runs engines here, by the GPU's compute capability
    ("SM90", or None without a GPU): (runtime, "") or (None, why).

    No GPU: TensorRT-RTX, which builds without one (full TensorRT needs a GPU to build). A GPU:
    TensorRT-RTX where it supports that capability, else full TensorRT (RTX refuses SM90, the H100/H200).
    """
    from inti_export.runtime.trt.config import rtx_targets

    reasons = []
    rtx, why = _try_import(RUNTIMES[TrtRuntime.tensorrt_rtx.value][0])
    if rtx is not None:
        if gpu is None or gpu in rtx_targets(rtx):
            return TrtRuntime.tensorrt_rtx.value, ""
        reasons.append(f"{runtime_label(rtx)} does not run on this GPU ({gpu}; it supports {', '.join(rtx_targets(rtx))})")
    else:
        reasons.append(why)
    full, why = _try_import(RUNTIMES[TrtRuntime.tensorrt.value][0])
    if full is not None and gpu is not None:
        return TrtRuntime.tensorrt.value, ""
    reasons.append(why if full is None else "full TensorRT builds engines only on a CUDA GPU, and there is none")
    return None, "; ".join(reasons)


def _try_import(module_name: str):
    try:
        return importlib.import_module(module_name), ""
    except (ImportError, OSError) as e:  # OSError: a wheel whose shared libraries do not load
        log.debug("import %s failed: %s", module_name, e)
        return None, f"import {module_name}: {one_line(e)}"


def runtime_name(trt) -> str:
    """"tensorrt-rtx" for the TensorRT-RTX module, "tensorrt" otherwise."""
    if trt.__name__.split(".")[0] == "tensorrt_rtx":
        return TrtRuntime.tensorrt_rtx.value
    return TrtRuntime.tensorrt.value


def runtime_label(trt) -> str:
    """"tensorrt-rtx 1.7.1.116", for messages."""
    return f"{runtime_name(trt)} {trt.__version__}"


# -- the ILogger ----------------------------------------------------------------------------------
_LOGGERS: dict[str, Any] = {}
_SEVERITY_LEVELS = {
    "INTERNAL_ERROR": logging.ERROR,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": logging.DEBUG,
}
VERBOSITY_LEVELS = {
    Verbosity.error.value: logging.ERROR,
    Verbosity.warning.value: logging.WARNING,
    Verbosity.info.value: logging.INFO,
    Verbosity.verbose.value: logging.DEBUG,
}
# every inlined call of an ONNX function reuses the body's node names; harmless
_INLINED_NAME_CLASH = "already exists, the output tensors of this new instance will not be queryable"
# a build we cancelled (build.py) is reported by the caller, not as a TensorRT error
_BUILD_CANCELED = "Build canceled by user"


def trt_logger(trt, verbosity: str = Verbosity.warning.value):
    """One ILogger per module (TensorRT keeps the first logger globally) that routes to `logging`.

    It also keeps the error messages since the last call, for the text of an EngineError. TensorRT
    calls it from its own threads and swallows what it raises, so it never raises.
    """
    logger = _LOGGERS.get(trt.__name__)
    if logger is None:

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.level = logging.WARNING
                self.errors: list[str] = []

            def log(self, severity, msg):
                try:
                    level = _SEVERITY_LEVELS.get(getattr(severity, "name", ""), logging.ERROR)
                    if _INLINED_NAME_CLASH in msg:
                        level = logging.DEBUG
                    elif _BUILD_CANCELED in msg:
                        level = logging.INFO
                    if level >= logging.ERROR:
                        self.errors.append(one_line(msg))
                    if level >= self.level:
                        _trt_log.log(level, "%s", msg)
                except KeyboardInterrupt as e:
                    # a SIGINT/SIGTERM handler ran inside this callback (TensorRT called it from the main
                    # thread, e.g. while parsing): TensorRT would swallow it, so keep it for the caller
                    _DEFERRED.append(e)

        logger = _LOGGERS[trt.__name__] = _Logger()
    logger.level = VERBOSITY_LEVELS[getattr(verbosity, "value", verbosity)]
    logger.errors.clear()
    return logger


_DEFERRED: list[BaseException] = []  # interrupts caught inside TensorRT callbacks, re-raised by the caller


def raise_deferred_interrupt() -> None:
    """Re-raise an interrupt that arrived while TensorRT ran one of our callbacks in this thread."""
    if _DEFERRED:
        e = _DEFERRED.pop()
        _DEFERRED.clear()
        raise e


def logged_errors(logger) -> str:
    """The last few TensorRT errors, joined on one line."""
    return " | ".join(logger.errors[-3:]) or "no error message (raise verbosity to see the build log)"


def create(factory, logger, what: str, trt):
    """`factory(logger)` (a Builder or Runtime), or a one-line EngineError with TensorRT's reason."""
    try:
        obj = factory(logger)
    except Exception as e:  # noqa: BLE001 - pybind raises TypeError/RuntimeError when creation fails
        obj, cause = None, e
    else:
        cause = None
    if obj is None:
        hint = "; full TensorRT needs a CUDA GPU to build" if runtime_name(trt) == TrtRuntime.tensorrt.value else ""
        reason = logged_errors(logger) if logger.errors else one_line(cause)
        raise EngineError(f"{what}: {reason}{hint}") from cause
    return obj
