"""Domain errors: each says what went wrong, with which value, and what to do."""


class IntiExportError(Exception):
    """Base class for every error inti-export raises on bad input or a failed step."""


class PresetError(IntiExportError, KeyError):
    """An unknown preset name or an invalid preset field."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class HostModelError(IntiExportError, TypeError):
    """The installed open_clip builds a vision tower that differs from the pinned one we patch."""


class InputShapeError(IntiExportError, ValueError):
    """A video tensor whose shape the model cannot take."""


class CheckpointError(IntiExportError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class ExportError(IntiExportError, RuntimeError):
    """The ONNX export or its verification failed."""


class EngineError(IntiExportError, RuntimeError):
    """A TensorRT engine could not be built, loaded or checked."""


class RuntimeUnavailableError(IntiExportError, ImportError):
    """An optional backend (tensorrt, tensorrt_rtx, onnxruntime-gpu, modelopt, a GPU) is missing."""


class CalibrationError(IntiExportError, ValueError):
    """Calibration data is missing, unreadable or too small."""


class VideoError(IntiExportError, ValueError):
    """A video file that cannot be decoded into clips."""


class ParityError(IntiExportError, RuntimeError):
    """A parity comparison failed."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the CLI raises this in the main thread (tools/_cli.py)."""

    def __init__(self, signum: int = 2) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def one_line(value: object, limit: int = 400) -> str:
    """The first line of an exception's message (or any value), whitespace folded, at most `limit` chars.

    An exception with no message gives its type name.
    """
    text = str(value).strip()
    if not text and isinstance(value, BaseException):
        return type(value).__name__
    text = " ".join(text.splitlines()[0].split()) if text else ""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Deferral:
    depth = 0  # > 0: a signal is recorded instead of raised (the main thread is inside native code's callbacks)
    pending: int | None = None


def interrupt_handler(signum, frame) -> None:
    """SIGINT/SIGTERM handler the CLI installs: raise `Interrupted`, or record it while deferred."""
    if _Deferral.depth:
        _Deferral.pending = signum
        return
    raise Interrupted(signum)


class defer_interrupts:
    """Inside the block an interrupt is recorded, then raised when the block ends.

    For main-thread calls into native code that calls back into Python (TensorRT's parser calls the
    logger): an exception raised inside such a callback is swallowed by the native side.
    """

    def __enter__(self) -> None:
        _Deferral.depth += 1

    def __exit__(self, *exc) -> None:
        _Deferral.depth -= 1
        if not _Deferral.depth and _Deferral.pending is not None:
            signum, _Deferral.pending = _Deferral.pending, None
            if exc[0] is None:
                raise Interrupted(signum)
