"""Domain errors: each says what went wrong, with which value, and what to do."""


class IntiExportError(Exception):
    """Base class for every error inti-export raises on bad input or a failed step."""


class PresetError(IntiExportError, KeyError):
    """An unknown preset name or an invalid preset field."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


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
