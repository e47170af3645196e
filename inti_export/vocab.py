"""The words every layer shares, importable without torch: names, metadata keys and option enums.

The CLI uses these enums directly as option types, so the command line and the library accept
the same values. The `inti.*` metadata is described in docs/reports.md.
"""

from __future__ import annotations

import enum
import json
import os
import platform
from typing import Any

# -- the model's I/O ------------------------------------------------------------------------------
INPUT_NAME = "video"  # (B, T, 3, H, W) float32, CLIP-normalised

# -- the custom ONNX op (exporter/functions.py) and its TensorRT plugin (plugins/trt_plugin.py) ----
OP_DOMAIN = "inti"
OP_TYPE = "TokenInterpolate"
OP_VERSION = 1

# -- ONNX metadata keys written by the exporter and the precision converters ----------------------
META_PREFIX = "inti."
META_VERSION = "inti.version"
META_PRESET = "inti.preset"
META_FRAMES = "inti.frames"
META_IMAGE_SIZE = "inti.image_size"
META_MEAN = "inti.mean"
META_STD = "inti.std"
META_INSERT_BEFORE = "inti.insert_before"
META_INPUTS = "inti.inputs"
META_OUTPUTS = "inti.outputs"
META_OPSET = "inti.opset"
META_INTI_OP = "inti.inti_op"
META_PRECISION = "inti.precision"
META_CONFIG = "inti.config"
META_CALIBRATION = "inti.calibration"
META_BOUNDARIES = "inti.boundaries"
# A split stream export (exporter/stream_export.py writes it, runtime/stream.py reads it; docs/stream.md).
STEM_FILE, HEAD_FILE, PAIR_MANIFEST = "stem.onnx", "head.onnx", "stream.json"
STEM_INPUT, STEM_OUTPUT, HEAD_INPUT = "frames", "stem", "stems"
META_PART = "inti.stream.part"  # "stem" or "head"
META_CUT = "inti.stream.cut_before_block"  # 0-based block index where the head starts
META_STEM_SHA = "inti.stream.stem_sha256"  # in head.onnx: the sha256 of the stem it was exported with


def read_metadata(onnx_path: str | os.PathLike) -> dict[str, Any]:
    """Our `inti.*` metadata of an ONNX file, JSON values decoded; {} if it has none.

    Raises whatever onnx raises for a file that is not ONNX; callers turn that into their error.
    """
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return decode_metadata({p.key: p.value for p in model.metadata_props})


def decode_metadata(props: dict[str, str]) -> dict[str, Any]:
    """The `inti.*` entries of raw metadata_props, JSON values decoded."""
    out: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith(META_PREFIX):
            try:
                out[key] = json.loads(value)
            except (json.JSONDecodeError, TypeError):
                out[key] = value
    return out


# -- option values --------------------------------------------------------------------------------
class Precision(str, enum.Enum):
    """Numeric precision of an ONNX graph or an engine."""

    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"
    int8 = "int8"
    fp8 = "fp8"


class InTIOp(str, enum.Enum):
    """How an InTI layer appears in the ONNX: one custom node with its function, or plain ops."""

    function = "function"
    decomposed = "decomposed"


class CalibrationBackend(str, enum.Enum):
    """The tool that casts or quantises an ONNX."""

    auto = "auto"
    ort = "ort"
    modelopt = "modelopt"


class CalibrationMethod(str, enum.Enum):
    """How activation ranges are chosen from calibration clips."""

    max = "max"
    entropy = "entropy"
    percentile = "percentile"


class Int8Type(str, enum.Enum):
    """INT8 activations or weights: signed (QInt8) or unsigned (QUInt8) (docs/precision.md, "INT8 variants")."""

    s8 = "s8"
    u8 = "u8"


class Int8Variants(str, enum.Enum):
    """`optimize --int8-variants`: the set picked from the CPU's flags, or every one ORT supports (docs/optimize.md)."""

    auto = "auto"
    all = "all"


class TrtRuntime(str, enum.Enum):
    """Which TensorRT module builds or runs an engine; auto prefers full TensorRT."""

    auto = "auto"
    tensorrt = "tensorrt"
    tensorrt_rtx = "tensorrt-rtx"


class RunnerKind(str, enum.Enum):
    """The runners parity and bench can use (runtime/)."""

    torch = "torch"
    torch_compile = "torch-compile"
    torch_kernel = "torch-kernel"
    ort = "ort"
    ort_cuda = "ort-cuda"
    ov = "ov"  # OpenVINO on the CPU (runtime/ov_runner.py)
    trt = "trt"


class DropPolicy(str, enum.Enum):
    """`stream`: what to do when inference is slower than the source (docs/stream.md)."""

    latest = "latest"  # keep the newest frames, skip windows when behind
    none = "none"  # back-pressure: nothing dropped


class StreamRunner(str, enum.Enum):
    """`stream`: the runners of a stem/head pair (ONNX Runtime on the exported pair, PyTorch on a preset)."""

    ort = "ort"
    torch = "torch"
    trt = "trt"  # stem.engine + head.engine built by `inti-export trt` from the pair


class SettingSource(str, enum.Enum):
    """`embed`: where a setting came from (the report's `batch_source`, `sources`; docs/corpus.md)."""

    flag = "flag"  # given on the command line
    best = "best"  # read from an optimize OUT/best/candidate.json
    machine = "machine"  # chosen from this machine (cores, GPU runner)
    default = "default"  # the option's fixed default


class Device(str, enum.Enum):
    """Where the PyTorch runners run."""

    cpu = "cpu"
    cuda = "cuda"


class TorchPrecision(str, enum.Enum):
    """What the PyTorch runners cast to (ONNX and engines carry their precision in the graph)."""

    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


class ServingBackend(str, enum.Enum):
    """Which Triton backend serves the model (serving/)."""

    python = "python"
    onnxruntime = "onnxruntime"
    tensorrt = "tensorrt"


class InstanceKind(str, enum.Enum):
    """Where Triton places a model's instances."""

    cpu = "cpu"
    gpu = "gpu"


class Status(str, enum.Enum):
    """The one status word of every report row: bench, parity, eval, optimize, pipeline (docs/reports.md)."""

    ok = "ok"  # made, run, measured, passed
    failed = "failed"  # it ran and failed (a gate, an error); the row says why
    skipped = "skipped"  # not attempted: this machine lacks what it needs, or the user supplied it; why given
    not_run = "not run"  # made, but this machine cannot run it (e.g. an engine without its GPU); why given


class Objective(str, enum.Enum):
    """`optimize`: maximise clips/s (under --max-latency-ms when given) or minimise p50 latency."""

    throughput = "throughput"
    latency = "latency"


class Verbosity(str, enum.Enum):
    """TensorRT log messages to show."""

    error = "error"
    warning = "warning"
    info = "info"
    verbose = "verbose"


def values(kind: type[enum.Enum]) -> tuple[str, ...]:
    """The string values of an option enum, in declaration order."""
    return tuple(m.value for m in kind)


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape an export or a measurement (imported on call)."""
    import onnx
    import onnxruntime
    import onnxscript
    import open_clip
    import torch

    import inti_export

    return {
        "inti_export": inti_export.__version__,
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
        "open_clip": open_clip.__version__,
        "python": platform.python_version(),
    }
