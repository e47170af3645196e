"""TensorRT engines from our ONNX, over full TensorRT or TensorRT for RTX (one API, two modules).

    load_trt_module("auto")                      -> the `tensorrt` or `tensorrt_rtx` module
    build_engine(onnx, engine, BuildConfig())   -> EngineManifest (engine + `engine.json` written)
    convert_and_build(onnx, engine, cfg, "fp16") -> cast/calibrate first, then build_engine
    check_engine(engine)                         -> EngineManifest, or a one-line EngineError
    inspect_engine(engine)                       -> dict: manifest (+ IEngineInspector JSON on a GPU)
    TrtRunner(engine)                            -> the Runner for parity and bench (GPU only)

Networks are strongly typed: precision comes from the graph (casts, Q/DQ), never from builder flags,
and is read from the ONNX's `inti.precision` metadata. The `inti.TokenInterpolate` node is inlined
from its model-local ONNX function unless `plugin=True` (full TensorRT only).

TensorRT modules are imported inside functions only: the package imports without them.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from inti_export.errors import EngineError, InputShapeError, RuntimeUnavailableError
from inti_export.runtime.base import Runner, TensorSpec
from inti_export.fileio import sha256_file, write_atomic
from inti_export.runtime.manifest import EngineManifest, load_manifest, manifest_path
from inti_export.vocab import OP_DOMAIN, OP_TYPE, Precision, Verbosity, values

log = logging.getLogger(__name__)
TRT_LOG_NAME = "inti_export.runtime.trt.tensorrt"  # TensorRT's own messages go to this logger
_trt_log = logging.getLogger(TRT_LOG_NAME)

# runtime name -> (module, pip extra)
RUNTIMES = {"tensorrt": ("tensorrt", "trt"), "tensorrt-rtx": ("tensorrt_rtx", "trt-rtx")}
PRECISIONS = values(Precision)
VERBOSITIES = values(Verbosity)
DEFAULT_BATCH = (1, 1, 8)
# TensorRT-RTX builds portable engines for these when no target is set (docs: "CPU-Only AOT and
# TensorRT-RTX Engines": 8.0, 8.6, 8.9, 12.0 and later; Turing only when asked for).
RTX_DEFAULT_COMPUTE_CAPABILITIES = ("SM80", "SM86", "SM89", "SM120")
RTX_MIN_DEFAULT_SM = 80
FUNCTION_DOMAIN = OP_DOMAIN
FUNCTION_NAME = OP_TYPE
PLUGIN_MODULE = "inti_export.plugins.trt_plugin"
_PLUGIN_LAYER_TYPES = {"PLUGIN", "PLUGIN_V2", "PLUGIN_V3"}
_NO_GPU = "no CUDA GPU: TensorRT engines run only on a GPU"


# -- modules -----------------------------------------------------------------------------------
def load_trt_module(runtime: str = "auto"):
    """`tensorrt` or `tensorrt_rtx`; "auto" prefers full TensorRT. RuntimeUnavailableError says what to install."""
    if runtime == "auto":
        reasons = []
        for name in RUNTIMES:
            module, reason = _try_import(RUNTIMES[name][0])
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


def _try_import(module_name: str):
    try:
        return importlib.import_module(module_name), ""
    except (ImportError, OSError) as e:  # OSError: a wheel whose shared libraries do not load
        log.debug("import %s failed: %s", module_name, e)
        return None, f"import {module_name}: {_one_line(e)}"


def runtime_name(trt) -> str:
    """"tensorrt-rtx" for the TensorRT-RTX module, "tensorrt" otherwise."""
    return "tensorrt-rtx" if trt.__name__.split(".")[0] == "tensorrt_rtx" else "tensorrt"


def _runtime_label(trt) -> str:
    return f"{runtime_name(trt)} {trt.__version__}"


# -- configuration -----------------------------------------------------------------------------
def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """"MIN:OPT:MAX" (or one number for a fixed batch) -> (min, opt, max)."""
    parts = str(text).strip().split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise EngineError(f"batch profile {text!r} is not MIN:OPT:MAX (e.g. 1:4:8) or one number")
    return _check_batch(tuple(values), repr(text))


def _check_batch(batch, label: str) -> tuple[int, int, int]:
    if len(batch) != 3 or not all(isinstance(b, (int, np.integer)) for b in batch):
        raise EngineError(f"batch profile {label} must be three integers (min, opt, max)")
    lo, opt, hi = (int(b) for b in batch)
    if not 1 <= lo <= opt <= hi:
        raise EngineError(f"batch profile {label} needs 1 <= min <= opt <= max")
    return lo, opt, hi


@dataclass
class BuildConfig:
    """How to build an engine. Precision is not here: it comes from the ONNX graph."""

    runtime: str = "auto"  # "auto", "tensorrt" or "tensorrt-rtx"
    batch: tuple[int, int, int] | None = None  # (min, opt, max) over axis 0; None: DEFAULT_BATCH
    workspace_gib: float | None = None  # None: the runtime's default (the device memory)
    timing_cache: str | os.PathLike | None = None  # loaded and saved by full TensorRT; RTX ignores it
    plugin: bool = False  # use the TokenInterpolate plugin instead of inlining the function
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets ("SM86", "8.9", "current"); () default
    optimization_level: int | None = None  # builder optimization level 0-5; None: the runtime's default
    verbosity: str = "warning"  # TensorRT messages passed to logging: error, warning, info, verbose
    allow_foreign: bool = False  # build an ONNX that lacks our `inti.*` metadata

    def __post_init__(self) -> None:
        if self.runtime != "auto" and self.runtime not in RUNTIMES:
            raise EngineError(f"unknown runtime {self.runtime!r}: choose auto, {', '.join(RUNTIMES)}")
        if self.batch is not None:
            self.batch = _check_batch(tuple(self.batch), repr(self.batch))
        if self.verbosity not in VERBOSITIES:
            raise EngineError(f"unknown verbosity {self.verbosity!r}: choose {', '.join(VERBOSITIES)}")
        if self.workspace_gib is not None and not self.workspace_gib > 0:
            raise EngineError(f"workspace {self.workspace_gib!r} GiB must be positive")
        if self.optimization_level is not None and self.optimization_level not in range(6):
            raise EngineError(f"builder optimization level {self.optimization_level!r} must be 0-5")
        self.compute_capabilities = tuple(_cc_name(c) for c in self.compute_capabilities)


def _cc_name(text: str) -> str:
    """"sm_86", "SM86", "8.6", "86" -> "SM86"; "current" -> "CURRENT"."""
    t = str(text).strip().upper().replace("_", "").replace(".", "")
    if t == "CURRENT":
        return t
    t = t.removeprefix("SM")
    if not t.isdigit() or len(t) < 2:
        raise EngineError(f"compute capability {text!r} is not like SM86, 8.6 or current")
    return f"SM{int(t)}"


class BuildProgress(Protocol):
    """Receives TensorRT's build phases (an IProgressMonitor, minus TensorRT). Called from builder threads."""

    def phase_start(self, name: str, parent: str | None, steps: int) -> None: ...

    def step_complete(self, name: str, step: int) -> None: ...

    def phase_finish(self, name: str) -> None: ...


# -- TensorRT callbacks --------------------------------------------------------------------------
_LOGGERS: dict[str, Any] = {}
_SEVERITY_LEVELS = {
    "INTERNAL_ERROR": logging.ERROR,
    "ERROR": logging.ERROR,
    "WARNING": logging.WARNING,
    "INFO": logging.INFO,
    "VERBOSE": logging.DEBUG,
}
_VERBOSITY_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "verbose": logging.DEBUG,
}


_INLINED_NAME_CLASH = "already exists, the output tensors of this new instance will not be queryable"


def _logger(trt, verbosity: str = "warning"):
    """One ILogger per module (TensorRT keeps the first logger globally) that routes to `logging`.

    It also keeps the error messages since the last call, for the text of an EngineError.
    """
    logger = _LOGGERS.get(trt.__name__)
    if logger is None:

        class _Logger(trt.ILogger):
            def __init__(self):
                trt.ILogger.__init__(self)
                self.level = logging.WARNING
                self.errors: list[str] = []

            def log(self, severity, msg):
                level = _SEVERITY_LEVELS.get(getattr(severity, "name", ""), logging.ERROR)
                if _INLINED_NAME_CLASH in msg:
                    # every inlined call of an ONNX function reuses the body's node names; harmless
                    level = logging.DEBUG
                if level >= logging.ERROR:
                    self.errors.append(_one_line(msg))
                if level >= self.level:
                    _trt_log.log(level, "%s", msg)

        logger = _LOGGERS[trt.__name__] = _Logger()
    logger.level = _VERBOSITY_LEVELS[verbosity]
    logger.errors.clear()
    return logger


def _progress_monitor(trt, progress: BuildProgress):
    class _Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            _call_quietly(progress.phase_start, phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            _call_quietly(progress.step_complete, phase_name, step)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            _call_quietly(progress.phase_finish, phase_name)

    return _Monitor()


def _call_quietly(fn, *args) -> None:
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - an exception must not cross into TensorRT's threads
        log.debug("progress callback failed", exc_info=True)


# -- ONNX -------------------------------------------------------------------------------------
def read_onnx(onnx_path: str | os.PathLike):
    """The ModelProto (external weights not loaded); one-line EngineError if it cannot be read."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise EngineError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 - protobuf raises several types for a corrupt file
        raise EngineError(f"cannot read ONNX {path} ({_one_line(e)}): export it again") from e


def onnx_precision(metadata: dict[str, str], source: str = "ONNX") -> str:
    precision = metadata.get("inti.precision", "fp32")
    if precision not in PRECISIONS:
        raise EngineError(f"{source} has inti.precision={precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision


def _function_nodes(model) -> list:
    return [n for n in model.graph.node if n.op_type == FUNCTION_NAME and n.domain == FUNCTION_DOMAIN]


# -- build ------------------------------------------------------------------------------------
def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    config: BuildConfig | None = None,
    progress: BuildProgress | None = None,
) -> EngineManifest:
    """Parse `onnx_path` into a strongly typed network, build, write `engine_path` and its manifest."""
    config = config or BuildConfig()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    model = read_onnx(onnx_path)
    metadata = {p.key: p.value for p in model.metadata_props}
    if "inti.version" not in metadata and not config.allow_foreign:
        raise EngineError(
            f"{onnx_path} has no inti.version metadata, so inti-export did not write it:"
            " export it with `inti-export onnx`, or pass --allow-foreign (allow_foreign=True)"
        )
    precision = onnx_precision(metadata, str(onnx_path))
    trt = load_trt_module(config.runtime)
    label = _runtime_label(trt)
    plugins, plugin_module = _register_plugins(trt) if config.plugin else ([], None)
    logger = _logger(trt, config.verbosity)
    log.info("building %s from %s with %s (%s)", engine_path, onnx_path, label, precision)

    start = time.perf_counter()
    builder = _create(trt.Builder, logger, f"could not create a {label} builder", trt)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    _parse(trt, parser, onnx_path, model, plugin_module, logger)
    layers = _network_layers(network)
    summary = _network_summary(layers, model)
    if plugins and len(summary["plugin_layers"]) < len(_function_nodes(model)):
        raise EngineError(
            f"{label} inlined the {FUNCTION_NAME} function instead of using the registered plugin"
            " (the parser's plugin-vs-function precedence differs across TensorRT 10.x releases):"
            " build with --no-plugin or use a TensorRT that honours plugin_namespace"
        )

    bconfig = builder.create_builder_config()
    if config.workspace_gib is not None:
        bconfig.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(config.workspace_gib * (1 << 30)))
    if config.optimization_level is not None:
        bconfig.builder_optimization_level = config.optimization_level
    if hasattr(trt, "ProfilingVerbosity"):
        bconfig.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer names for the inspector
    profiles = _add_profile(builder, network, bconfig, config.batch)
    ccs, cc_source = _set_compute_capabilities(trt, bconfig, config.compute_capabilities)
    cache_info = _load_timing_cache(trt, bconfig, config.timing_cache)
    if progress is not None and hasattr(trt, "IProgressMonitor"):
        monitor = _progress_monitor(trt, progress)  # kept alive until the build returns
        bconfig.progress_monitor = monitor

    serialized = builder.build_serialized_network(network, bconfig)
    if serialized is None:
        raise EngineError(f"{label} could not build an engine from {onnx_path}: {_errors(logger)}")
    build_time = time.perf_counter() - start
    _save_timing_cache(bconfig, cache_info)

    engine_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(engine_path, serialized)
    manifest = EngineManifest(
        engine_file=engine_path.name,
        engine_sha256=hashlib.sha256(serialized).hexdigest(),
        engine_size=engine_path.stat().st_size,
        runtime=runtime_name(trt),
        runtime_version=trt.__version__,
        precision=precision,
        profiles=profiles,
        inputs=[_tensor_info(network.get_input(i)) for i in range(network.num_inputs)],
        outputs=[_tensor_info(network.get_output(i)) for i in range(network.num_outputs)],
        onnx_file=str(onnx_path),
        onnx_sha256=sha256_file(onnx_path),
        onnx_metadata=metadata,
        compute_capabilities=ccs,
        compute_capabilities_source=cc_source,
        build_time_s=round(build_time, 3),
        plugins=plugins,
        build={
            "strongly_typed": True,
            "workspace_gib": config.workspace_gib,
            "optimization_level": bconfig.builder_optimization_level,
            "timing_cache": {k: v for k, v in cache_info.items() if k != "cache"},
            "foreign_onnx": "inti.version" not in metadata,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        network_summary=summary,
        network_layers=layers,
    )
    manifest.save(engine_path)
    log.info("wrote %s (%.1f MiB) in %.1f s", engine_path, manifest.engine_size / 2**20, build_time)
    return manifest


def convert_and_build(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    config: BuildConfig | None = None,
    precision: str | None = None,
    calib_data: str | os.PathLike | None = None,
    progress: BuildProgress | None = None,
) -> EngineManifest:
    """`build_engine`, after converting the ONNX to `precision` when it carries another one.

    The converted ONNX is written beside the engine (`model.fp16.onnx` for `model.engine`).
    """
    if precision is None:
        return build_engine(onnx_path, engine_path, config, progress)
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}: choose {', '.join(PRECISIONS)}")
    metadata = {p.key: p.value for p in read_onnx(onnx_path).metadata_props}
    if onnx_precision(metadata, str(onnx_path)) == precision:
        return build_engine(onnx_path, engine_path, config, progress)
    try:
        from inti_export.calibration.precision import convert_precision
    except ImportError as e:
        if e.name != "inti_export.calibration.precision":
            raise
        raise EngineError(
            f"precision {precision} needs the calibration module (inti_export.calibration.precision."
            f"convert_precision), which this install lacks: pass an ONNX already converted to {precision}"
        ) from e
    engine_path = Path(engine_path)
    converted = engine_path.with_name(f"{engine_path.stem}.{precision}.onnx")
    log.info("converting %s to %s -> %s", onnx_path, precision, converted)
    convert_precision(onnx_path, precision, converted, calib_data=calib_data)
    got = {p.key: p.value for p in read_onnx(converted).metadata_props}.get("inti.precision", "fp32")
    if got != precision:
        raise EngineError(f"convert_precision wrote {converted} with inti.precision={got!r}, expected {precision!r}")
    return build_engine(converted, engine_path, config, progress)


def _create(factory, logger, what: str, trt):
    try:
        obj = factory(logger)
    except Exception as e:  # noqa: BLE001 - pybind raises TypeError/RuntimeError when creation fails
        obj, cause = None, e
    else:
        cause = None
    if obj is None:
        hint = "; full TensorRT needs a CUDA GPU to build" if runtime_name(trt) == "tensorrt" else ""
        raise EngineError(f"{what}: {_errors(logger) if logger.errors else _one_line(cause)}{hint}") from cause
    return obj


def _network_flags(trt) -> int:
    # TensorRT 11 drops weak typing; where the flag still exists, ask for it explicitly.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _parse(trt, parser, onnx_path: Path, model, plugin_module, logger) -> None:
    if plugin_module is not None:
        # plugin_namespace on the node (and the override flag where it exists) make the parser pick
        # the plugin over the model-local function; without them it inlines the function.
        plugin_module.mark_plugin_nodes(model)
        flag = getattr(getattr(trt, "OnnxParserFlag", None), "ENABLE_PLUGIN_OVERRIDE", None)
        if flag is not None:
            parser.set_flag(flag)
        ok = parser.parse(model.SerializeToString(), str(onnx_path))
    else:
        ok = parser.parse_from_file(str(onnx_path))
    if ok:
        return
    lines = [_parser_error_line(parser.get_error(i)) for i in range(parser.num_errors)] or [_errors(logger)]
    raise EngineError(
        f"{_runtime_label(trt)} could not parse {onnx_path} ({len(lines)} errors):\n  " + "\n  ".join(lines)
    )


def _parser_error_line(err) -> str:
    def get(name, default=""):
        try:
            return getattr(err, name)()
        except Exception:  # noqa: BLE001 - older bindings lack some accessors
            return default

    where = f"node {get('node', '?')}"
    if get("node_name"):
        where += f" {get('node_name')!r}"
    if get("node_operator"):
        where += f" ({get('node_operator')})"
    stack = get("local_function_stack", [])
    if stack:
        where += f" in function {' > '.join(stack)}"
    code = getattr(get("code"), "name", get("code"))
    return f"{where} [{code}]: {_one_line(get('desc'))}"


def _add_profile(builder, network, bconfig, batch) -> list[dict]:
    profile = builder.create_optimization_profile()
    records, dynamic = [], False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = [int(d) for d in tensor.shape]
        if tensor.is_shape_tensor:
            raise EngineError(f"input {tensor.name!r} is a shape tensor, which inti-export does not build")
        bad = [ax for ax, d in enumerate(shape) if d < 0 and ax != 0]
        if bad:
            raise EngineError(
                f"input {tensor.name!r} has dynamic axes {bad} (shape {shape}); only the batch axis 0 may be"
                " dynamic: export with fixed frames and image size"
            )
        if shape and shape[0] < 0:
            lo, opt, hi = batch or DEFAULT_BATCH
            dynamic = True
        elif batch is not None and shape and tuple(batch) != (shape[0],) * 3:
            raise EngineError(
                f"input {tensor.name!r} has a static batch of {shape[0]}, so batch profile {tuple(batch)}"
                f" cannot apply: export with a dynamic batch, or pass --batch {shape[0]}"
            )
        else:
            lo = opt = hi = shape[0] if shape else 1
        dims = [[b] + shape[1:] for b in (lo, opt, hi)] if shape else [[], [], []]
        profile.set_shape(tensor.name, *dims)
        records.append({"input": tensor.name, "min": dims[0], "opt": dims[1], "max": dims[2]})
    if dynamic:
        bconfig.add_optimization_profile(profile)
    return records


def _set_compute_capabilities(trt, bconfig, requested: tuple[str, ...]) -> tuple[list[str], str]:
    if runtime_name(trt) == "tensorrt":
        if requested:
            raise EngineError(
                f"compute capabilities {list(requested)} apply to TensorRT-RTX only: full TensorRT builds for"
                " the GPU it runs on"
            )
        gpu = _gpu_compute_capability()
        return ([gpu] if gpu else []), "build-gpu"
    if not requested:
        return list(RTX_DEFAULT_COMPUTE_CAPABILITIES), "default"
    known = [n for n in trt.ComputeCapability.__members__ if n != "NONE"]
    unknown = [c for c in requested if c not in known]
    if unknown:
        raise EngineError(f"{_runtime_label(trt)} cannot target {unknown}: choose from {known}")
    if "CURRENT" in requested and len(requested) > 1:
        raise EngineError("compute capability 'current' cannot be combined with others")
    bconfig.num_compute_capabilities = len(requested)
    for i, name in enumerate(requested):
        if not bconfig.set_compute_capability(getattr(trt.ComputeCapability, name), i):
            raise EngineError(f"{_runtime_label(trt)} refused compute capability {name}")
    if requested == ("CURRENT",):
        gpu = _gpu_compute_capability()
        if gpu is None:
            raise EngineError("compute capability 'current' needs a CUDA GPU here: name a target such as SM86")
        return [gpu], "requested"
    return list(requested), "requested"


def _load_timing_cache(trt, bconfig, path) -> dict[str, Any]:
    if path is None:
        return {"path": None, "used": False}
    if runtime_name(trt) == "tensorrt-rtx":
        # TensorRT-RTX >= 1.2 makes timing-cache calls no-ops (and warns that they are deprecated).
        log.warning("TensorRT-RTX ignores timing caches: %s is not used", path)
        return {"path": str(path), "used": False}
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    cache = bconfig.create_timing_cache(data)
    if not bconfig.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineError(f"timing cache {path} does not fit {_runtime_label(trt)} on this GPU: delete it")
    return {"path": str(path), "used": True, "loaded_bytes": len(data), "cache": cache}


def _save_timing_cache(bconfig, info: dict[str, Any]) -> None:
    if not info.get("used"):
        return
    cache = bconfig.get_timing_cache()
    if cache is not None:
        Path(info["path"]).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(info["path"], cache.serialize())


# -- plugins ------------------------------------------------------------------------------------
def _register_plugins(trt) -> tuple[list[dict[str, Any]], Any]:
    """Register `inti::TokenInterpolate` (plugins/trt_plugin.py); ([PluginInfo dict], that module)."""
    if runtime_name(trt) == "tensorrt-rtx":
        raise EngineError("TensorRT-RTX does not support user plugins; build with --no-plugin")
    try:
        module = importlib.import_module(PLUGIN_MODULE)
    except ModuleNotFoundError as e:
        if e.name not in (PLUGIN_MODULE, "inti_export.plugins"):
            raise
        raise EngineError(f"--plugin needs {PLUGIN_MODULE}, which this install lacks: build with --no-plugin") from e
    info = module.register_plugin(trt)  # RuntimeUnavailableError says what is missing (TensorRT >= 10.8, triton)
    return [info.to_dict()], module


# -- network layers ---------------------------------------------------------------------------
_METADATA_RE = re.compile(r"^\[ONNX Layer: (?P<body>.*)\]$")
_FRAME_RE = re.compile(r"^(?P<node>.*) \((?P<function>[^()]*)\)$")


def _parse_layer_metadata(metadata: str) -> tuple[str | None, list[dict[str, str]]]:
    """'[ONNX Layer: n | inti_step_0 (TokenInterpolate)]' -> ('n', [{node: inti_step_0, function: ...}])."""
    m = _METADATA_RE.match(metadata or "")
    if not m:
        return None, []
    node, *frames = m.group("body").split(" | ")
    stack = []
    for frame in frames:
        fm = _FRAME_RE.match(frame)
        stack.append({"node": fm["node"], "function": fm["function"]} if fm else {"node": frame, "function": ""})
    return node, stack


def _network_layers(network) -> list[dict[str, Any]]:
    """Layers as the parser produced them: name, type, ONNX node, function stack, output dtypes."""
    layers = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        node, stack = _parse_layer_metadata(getattr(layer, "metadata", "") or "")
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        layers.append(
            {
                "name": layer.name,
                "type": _enum_name(layer.type),
                "onnx_node": node,
                "functions": stack,
                "output_dtypes": [_enum_name(t.dtype) if t is not None else None for t in outputs],
            }
        )
    return layers


def _network_summary(layers: list[dict[str, Any]], model) -> dict[str, Any]:
    functions: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for frame in layer["functions"]:
            entry = functions.setdefault(frame["function"], {"calls": [], "layers": 0, "output_dtypes": Counter()})
            if frame["node"] not in entry["calls"]:
                entry["calls"].append(frame["node"])
            entry["layers"] += 1
            entry["output_dtypes"].update(d for d in layer["output_dtypes"] if d)
    for entry in functions.values():
        entry["output_dtypes"] = dict(entry["output_dtypes"])
    return {
        "num_layers": len(layers),
        "layer_types": dict(Counter(layer["type"] for layer in layers)),
        "output_dtypes": dict(Counter(d for layer in layers for d in layer["output_dtypes"] if d)),
        "plugin_layers": [layer["name"] for layer in layers if layer["type"] in _PLUGIN_LAYER_TYPES],
        "onnx_function_nodes": [n.name for n in _function_nodes(model)],
        "functions": functions,
    }


def _enum_name(value) -> str:
    return getattr(value, "name", str(value).rsplit(".", 1)[-1])


_NUMPY_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
    "FP8": "float8_e4m3",
}


def _tensor_info(tensor) -> dict[str, Any]:
    dtype = _enum_name(tensor.dtype)
    return {
        "name": tensor.name,
        "dtype": _NUMPY_DTYPES.get(dtype, dtype.lower()),
        "shape": [None if int(d) < 0 else int(d) for d in tensor.shape],
    }


# -- checking and inspecting ------------------------------------------------------------------
def check_engine(engine_path: str | os.PathLike, trt_module=None) -> EngineManifest:
    """Refuse, with a one-line EngineError, an engine that this machine cannot load; else its manifest.

    Checks: the file and its manifest exist, the sha256 matches, the runtime and its version are the
    ones importable here, plugins are registered and unchanged, and the GPU (if any) is a target.
    """
    manifest, _ = _check_engine(engine_path, trt_module)
    return manifest


def _verified_manifest(engine_path: Path) -> EngineManifest:
    if not engine_path.is_file():
        raise EngineError(f"engine file not found: {engine_path}")
    manifest = load_manifest(engine_path)
    size = engine_path.stat().st_size
    if size != manifest.engine_size or sha256_file(engine_path) != manifest.engine_sha256:
        raise EngineError(
            f"engine {engine_path} does not match its manifest {manifest_path(engine_path)} (sha256/size differ):"
            " it is corrupt or from another build; rebuild it with `inti-export trt`"
        )
    return manifest


def _check_engine(engine_path, trt_module=None):
    engine_path = Path(engine_path)
    manifest = _verified_manifest(engine_path)
    trt = trt_module if trt_module is not None else load_trt_module(manifest.runtime)
    here = _runtime_label(trt)
    if runtime_name(trt) != manifest.runtime:
        raise EngineError(f"engine {engine_path} was built with {manifest.runtime}, not {runtime_name(trt)}: rebuild it")
    if trt.__version__ != manifest.runtime_version:
        raise EngineError(
            f"engine {engine_path} was built with {manifest.runtime} {manifest.runtime_version}, but {here}"
            " is installed: rebuild it, or install that version"
        )
    if manifest.plugins:
        now = {(p["name"], p["namespace"], p["version"]): p["sha256"] for p in _register_plugins(trt)[0]}
        for p in manifest.plugins:
            key = (p["name"], p["namespace"], p["version"])
            if key not in now:
                raise EngineError(f"engine {engine_path} needs plugin {'::'.join(key[1::-1])} v{key[2]}, not registered")
            if now[key] != p["sha256"]:
                raise EngineError(f"plugin {p['namespace']}::{p['name']} changed since {engine_path} was built: rebuild it")
    gpu = _gpu_compute_capability()
    if gpu is not None and not _gpu_targeted(gpu, manifest):
        raise EngineError(
            f"engine {engine_path} targets {manifest.compute_capabilities}, not this GPU ({gpu}): rebuild it"
            + (f" with --compute-capability {gpu}" if manifest.runtime == "tensorrt-rtx" else " on this GPU")
        )
    return manifest, trt


def _gpu_targeted(gpu: str, manifest: EngineManifest) -> bool:
    if manifest.compute_capabilities_source == "default":
        return int(gpu[2:]) >= RTX_MIN_DEFAULT_SM
    return gpu in manifest.compute_capabilities


def _gpu_compute_capability(device: int = 0) -> str | None:
    """"SM90" for the GPU torch sees, None without one."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    major, minor = torch.cuda.get_device_capability(device)
    return f"SM{major}{minor}"


def inspect_engine(engine_path: str | os.PathLike) -> dict[str, Any]:
    """The manifest (with the build's network layers), plus TensorRT's IEngineInspector JSON on a GPU."""
    engine_path = Path(engine_path)
    info = {"engine_path": str(engine_path), **_verified_manifest(engine_path).to_dict()}
    info["engine_layers"] = None
    if _gpu_compute_capability() is None:
        info["engine_layers_note"] = f"{_NO_GPU} (and deserialize only on one); network_layers come from the build"
        return info
    try:
        manifest, trt = _check_engine(engine_path)
        engine, _ = _deserialize(trt, engine_path)
    except (EngineError, RuntimeUnavailableError) as e:
        info["engine_layers_note"] = str(e)
        return info
    inspector = engine.create_engine_inspector()
    text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
    try:
        info["engine_layers"] = json.loads(text)
    except json.JSONDecodeError:
        info["engine_layers"] = text
    return info


def _deserialize(trt, engine_path: Path):
    logger = _logger(trt, "warning")
    runtime = _create(trt.Runtime, logger, f"could not create a {_runtime_label(trt)} runtime", trt)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineError(f"{_runtime_label(trt)} could not deserialize {engine_path}: {_errors(logger)}")
    return engine, runtime


def _errors(logger) -> str:
    return " | ".join(logger.errors[-3:]) or "no error message (raise verbosity to see the build log)"


def _one_line(value, limit: int = 400) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- runner -----------------------------------------------------------------------------------
_TORCH_DTYPES = {k: v for k, v in _NUMPY_DTYPES.items() if k != "FP8"}  # torch has no e4m3 buffers here


def _host_dtype(trt_dtype: str) -> np.dtype:
    """NumPy dtype of a binding; float32 for the types NumPy lacks (BF16, FP8), converted on the device."""
    try:
        return np.dtype(_NUMPY_DTYPES[trt_dtype])
    except (KeyError, TypeError):
        return np.dtype("float32")


@dataclass
class _IO:
    name: str
    trt_dtype: str
    shape: tuple[int, ...]
    buffers: list = field(default_factory=list)


class TrtRunner(Runner):
    """Runs an engine built by `build_engine` on the GPU: bindings by name, dynamic batch, CUDA events.

    `last_inference_time` is the engine's execution alone, between two CUDA events on its stream
    (host-to-device and device-to-host copies excluded): `infer_impl` sets the base's `_device_time`.
    """

    name = "trt"

    def __init__(self, engine_path: str | os.PathLike, runtime: str | None = None, device: int = 0) -> None:
        super().__init__()
        self.engine_path = Path(engine_path)
        self.runtime = runtime  # None: the one in the manifest
        self.device = device
        self.manifest: EngineManifest | None = None

    def activate_impl(self) -> None:
        try:
            import torch
        except ImportError as e:  # pragma: no cover - torch is a dependency
            raise RuntimeUnavailableError(f"TrtRunner needs torch for device buffers: {e}") from e
        if not torch.cuda.is_available():
            raise RuntimeUnavailableError(_NO_GPU)
        trt = load_trt_module(self.runtime) if self.runtime else None
        self.manifest, trt = _check_engine(self.engine_path, trt)
        self._engine, self._trt_runtime = _deserialize(trt, self.engine_path)
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"could not create an execution context for {self.engine_path} (out of GPU memory?)")
        self._torch = torch
        self._dev = torch.device("cuda", self.device)
        self._stream = torch.cuda.Stream(self._dev)
        self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
        self._inputs, self._outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            io = _IO(name, _enum_name(self._engine.get_tensor_dtype(name)), tuple(self._engine.get_tensor_shape(name)))
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(io)

    def deactivate_impl(self) -> None:
        self.synchronize()
        for attr in ("_context", "_engine", "_trt_runtime"):
            setattr(self, attr, None)

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(io.name, _host_dtype(io.trt_dtype), tuple(None if d < 0 else d for d in io.shape))
                for io in self._inputs]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        lo, _, hi = self.manifest.profile_batch
        keep = []
        with torch.cuda.device(self._dev), torch.cuda.stream(self._stream):
            for io in self._inputs:
                arr = feed[io.name]
                if arr.ndim and not lo <= arr.shape[0] <= hi:
                    raise InputShapeError(
                        f"trt: batch {arr.shape[0]} of input {io.name!r} is outside the engine's profile"
                        f" {lo}..{hi}: rebuild with --batch"
                    )
                t = torch.from_numpy(np.ascontiguousarray(arr)).to(self._dev)
                t = t.to(getattr(torch, _TORCH_DTYPES[io.trt_dtype])).contiguous()
                if not self._context.set_input_shape(io.name, tuple(arr.shape)):
                    raise InputShapeError(f"trt: engine refused shape {tuple(arr.shape)} for input {io.name!r}")
                self._context.set_tensor_address(io.name, t.data_ptr())
                keep.append(t)
            outputs = {}
            for io in self._outputs:
                shape = tuple(self._context.get_tensor_shape(io.name))
                buf = torch.empty(shape, dtype=getattr(torch, _TORCH_DTYPES[io.trt_dtype]), device=self._dev)
                self._context.set_tensor_address(io.name, buf.data_ptr())
                outputs[io.name] = buf
            start, end = self._events
            start.record(self._stream)
            ok = self._context.execute_async_v3(self._stream.cuda_stream)
            end.record(self._stream)
        if not ok:
            raise EngineError(f"{self.engine_path}: execute_async_v3 failed (see the TensorRT log)")
        end.synchronize()
        self._device_time = start.elapsed_time(end) / 1000.0
        return {
            name: (buf.float() if buf.dtype == torch.bfloat16 else buf).cpu().numpy() for name, buf in outputs.items()
        }

    def synchronize(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.synchronize()
