"""TensorRT engines from our ONNX, over full TensorRT or TensorRT for RTX (one API, two modules).

    load_trt_module("auto")                   -> the `tensorrt` or `tensorrt_rtx` module   (loader.py)
    BuildConfig(...), parse_batch_profile(..) -> how to build                                (config.py)
    read_onnx(onnx), onnx_precision(metadata) -> the ModelProto and its precision            (parse.py)
    build_engine(onnx, engine, BuildConfig()) -> EngineManifest (engine + `engine.json`)     (build.py)
    verify_engine_artifact(engine, onnx)      -> EngineManifest, checked without a GPU      (check.py)
    check_engine(engine) / inspect_engine(..) -> loadable here? / what is inside             (check.py)
    TrtRunner(engine)                         -> the Runner for parity and bench (GPU only) (runner.py)

build.py runs the steps of parse.py (ONNX -> network), builder_config.py (batch profile, GPU
targets, timing cache) and cancel.py (the build in a thread a signal can stop); plugins.py registers
the TokenInterpolate plugin; network.py summarises the parsed network. Casting
or quantising an ONNX before a build is orchestration: `inti_export.jobs.engine.convert_and_build`.
TensorRT modules are imported inside functions only: the package imports without them.
"""

from inti_export.runtime.trt.build import build_engine
from inti_export.runtime.trt.check import check_engine, inspect_engine, verify_engine_artifact
from inti_export.runtime.trt.config import DEFAULT_BATCH, BuildConfig, BuildProgress, parse_batch_profile
from inti_export.runtime.trt.loader import TRT_LOG_NAME, load_trt_module, runtime_name
from inti_export.runtime.trt.parse import onnx_precision, read_onnx
from inti_export.runtime.trt.runner import TrtRunner

__all__ = [
    "DEFAULT_BATCH",
    "TRT_LOG_NAME",
    "BuildConfig",
    "BuildProgress",
    "TrtRunner",
    "build_engine",
    "check_engine",
    "inspect_engine",
    "load_trt_module",
    "onnx_precision",
    "parse_batch_profile",
    "read_onnx",
    "runtime_name",
    "verify_engine_artifact",
]
