"""ONNX -> TensorRT engine + manifest: parsing, optimisation profile, targets, timing cache, building.

    build_engine(onnx, engine, BuildConfig(), progress=None, cancel=None) -> EngineManifest

Networks are strongly typed: precision comes from the graph (casts, Q/DQ), never from builder flags,
and is read from the ONNX's `inti.precision` metadata. The `inti.TokenInterpolate` node is inlined
from its model-local ONNX function unless `plugin=True` (full TensorRT only).

The build runs in a worker thread with a progress monitor installed, because TensorRT's Python
wrappers swallow whatever a logger or monitor callback raises, KeyboardInterrupt included: the only
way to stop a build is `step_complete` returning False. The builder thread starts with SIGINT and
SIGTERM blocked, so both reach the calling thread, which waits in short waits; there the signal
(a `KeyboardInterrupt`; the CLI raises `errors.Interrupted` for SIGTERM) sets the cancel event; the
calling thread waits for the builder to give up, writes nothing and re-raises. Another thread can cancel through
the same `cancel` event (EngineError). A TensorRT without IProgressMonitor (before 10.0) cannot be
cancelled: the build runs to its end, and then nothing is written either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from inti_export.errors import EngineError, IntiExportError, defer_interrupts, one_line
from inti_export.fileio import atomic_output, check_output_path, sha256_file, write_atomic
from inti_export.runtime.manifest import EngineManifest, manifest_path
from inti_export.runtime.trt.config import (
    DEFAULT_BATCH,
    RTX_DEFAULT_COMPUTE_CAPABILITIES,
    BuildConfig,
    BuildProgress,
    gpu_compute_capability,
    rtx_targets,
)
from inti_export.runtime.trt.loader import (
    create,
    load_trt_module,
    logged_errors,
    raise_deferred_interrupt,
    runtime_label,
    runtime_name,
    trt_logger,
)
from inti_export.runtime.trt.network import function_nodes, network_layers, network_summary, tensor_info
from inti_export.runtime.trt.plugins import register_plugins
from inti_export.vocab import META_PRECISION, META_VERSION, OP_DOMAIN, OP_TYPE, Precision, TrtRuntime, values

log = logging.getLogger(__name__)
PRECISIONS = values(Precision)
_JOIN_S = 0.1  # how often the waiting thread wakes up to take a signal
_SIGNALS = {signal.SIGINT, signal.SIGTERM}


# -- ONNX -------------------------------------------------------------------------------------------
def read_onnx(onnx_path: str | os.PathLike):
    """The ModelProto (external weights not loaded); one-line EngineError if it cannot be read."""
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise EngineError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as e:
        raise EngineError(f"cannot read ONNX {path} ({one_line(e)}): export it again") from e


def onnx_precision(metadata: dict[str, str], source: str = "ONNX") -> str:
    """The `inti.precision` of raw ONNX metadata ("fp32" when absent); EngineError for an unknown one."""
    precision = metadata.get(META_PRECISION, Precision.fp32.value)
    if precision not in PRECISIONS:
        raise EngineError(f"{source} has {META_PRECISION}={precision!r}; expected one of {', '.join(PRECISIONS)}")
    return precision


def check_engine_paths(onnx_path: Path, engine_path: Path, timing_cache=None) -> None:
    """Refuse, before any work, an engine or manifest path that would overwrite an input."""
    inputs = [onnx_path, manifest_path(onnx_path), timing_cache]  # the exporter writes `model.onnx.json`
    try:
        check_output_path(engine_path, "engine", inputs=inputs)
        check_output_path(manifest_path(engine_path), "engine manifest", inputs=inputs)
    except EngineError:
        raise
    except IntiExportError as e:
        raise EngineError(str(e)) from e


# -- build ------------------------------------------------------------------------------------------
def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    config: BuildConfig | None = None,
    progress: BuildProgress | None = None,
    cancel: threading.Event | None = None,
) -> EngineManifest:
    """Parse `onnx_path` into a strongly typed network, build, write `engine_path` and its manifest.

    `cancel`, when set by another thread, stops the build (EngineError); a KeyboardInterrupt in this
    thread does the same and is re-raised. Either way nothing is written.
    """
    config = config or BuildConfig()
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    check_engine_paths(onnx_path, engine_path, config.timing_cache)
    model = read_onnx(onnx_path)
    metadata = {p.key: p.value for p in model.metadata_props}
    if META_VERSION not in metadata and not config.allow_foreign:
        raise EngineError(
            f"{onnx_path} has no {META_VERSION} metadata, so inti-export did not write it:"
            " export it with `inti-export onnx`, or pass --allow-foreign (allow_foreign=True)"
        )
    precision = onnx_precision(metadata, str(onnx_path))
    trt = load_trt_module(config.runtime)
    label = runtime_label(trt)
    plugins, plugin_module = register_plugins(trt, aot=True) if config.plugin else ([], None)
    logger = trt_logger(trt, config.verbosity)
    log.info("building %s from %s with %s (%s)", engine_path, onnx_path, label, precision)

    start = time.perf_counter()
    with defer_interrupts():  # TensorRT calls the logger from this thread while it creates and parses
        builder, network = _parsed_network(trt, logger, label, onnx_path, model, plugin_module)
    raise_deferred_interrupt()  # one that landed in the logger callback itself
    layers = network_layers(network)
    summary = network_summary(layers, model)
    if plugins and len(summary["plugin_layers"]) < len(function_nodes(model)):
        raise EngineError(
            f"{label} did not import every {OP_TYPE} node as the registered plugin"
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

    raise_deferred_interrupt()
    serialized = _build_cancellable(trt, builder, network, bconfig, progress, cancel, engine_path)
    if serialized is None:
        raise EngineError(f"{label} could not build an engine from {onnx_path}: {logged_errors(logger)}")
    build_time = time.perf_counter() - start
    _save_timing_cache(bconfig, cache_info)

    with atomic_output(engine_path) as tmp:
        tmp.write_bytes(serialized)
        manifest = EngineManifest(
            engine_file=engine_path.name,
            engine_sha256=hashlib.sha256(serialized).hexdigest(),
            engine_size=tmp.stat().st_size,
            runtime=runtime_name(trt),
            runtime_version=trt.__version__,
            precision=precision,
            profiles=profiles,
            inputs=[tensor_info(network.get_input(i)) for i in range(network.num_inputs)],
            outputs=[tensor_info(network.get_output(i)) for i in range(network.num_outputs)],
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
                "foreign_onnx": META_VERSION not in metadata,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
            network_summary=summary,
            network_layers=layers,
        )
        manifest.save(engine_path)  # the manifest lands just before the engine it describes
    log.info("wrote %s (%.1f MiB) in %.1f s", engine_path, manifest.engine_size / 2**20, build_time)
    return manifest


def _parsed_network(trt, logger, label: str, onnx_path: Path, model, plugin_module):
    builder = create(trt.Builder, logger, f"could not create a {label} builder", trt)
    network = builder.create_network(_network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    _parse(trt, parser, onnx_path, model, plugin_module, logger)
    return builder, network


def _build_cancellable(trt, builder, network, bconfig, progress, cancel, engine_path: Path):
    """`build_serialized_network` in a worker thread; see the module docstring for why and how it stops."""
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


def _network_flags(trt) -> int:
    # TensorRT 11 drops weak typing; where the flag still exists, ask for it explicitly.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def prepare_plugin_model(model, plugin_module, aot: bool = True) -> int:
    """Mark the `inti.TokenInterpolate` nodes for the plugin and drop their model-local function.

    `plugin_namespace` on the node selects our plugin (`aot`: its compiled kernel, as the manifest
    records); without the function, no parser (however it orders plugins and functions) can inline
    it instead. Returns how many nodes were marked.
    """
    marked = plugin_module.mark_plugin_nodes(model, aot=aot)
    kept = [f for f in model.functions if not (f.domain == OP_DOMAIN and f.name == OP_TYPE)]
    del model.functions[:]
    model.functions.extend(kept)
    return marked


def _parse(trt, parser, onnx_path: Path, model, plugin_module, logger) -> None:
    if plugin_module is not None:
        prepare_plugin_model(model, plugin_module)
        ok = parser.parse(model.SerializeToString(), str(onnx_path))
    else:
        ok = parser.parse_from_file(str(onnx_path))
    if ok:
        return
    lines = [_parser_error_line(parser.get_error(i)) for i in range(parser.num_errors)] or [logged_errors(logger)]
    raise EngineError(
        f"{runtime_label(trt)} could not parse {onnx_path} ({len(lines)} errors):\n  " + "\n  ".join(lines)
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
    return f"{where} [{code}]: {one_line(get('desc'))}"


# -- profile, targets, timing cache -----------------------------------------------------------------
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
        dims = [[b, *shape[1:]] for b in (lo, opt, hi)] if shape else [[], [], []]
        profile.set_shape(tensor.name, *dims)
        records.append({"input": tensor.name, "min": dims[0], "opt": dims[1], "max": dims[2]})
    if dynamic:
        bconfig.add_optimization_profile(profile)
    return records


def _set_compute_capabilities(trt, bconfig, requested: tuple[str, ...]) -> tuple[list[str], str]:
    if runtime_name(trt) == TrtRuntime.tensorrt.value:
        if requested:
            raise EngineError(
                f"compute capabilities {list(requested)} apply to TensorRT-RTX only: full TensorRT builds for"
                " the GPU it runs on"
            )
        gpu = gpu_compute_capability()
        return ([gpu] if gpu else []), "build-gpu"
    if not requested:
        return list(RTX_DEFAULT_COMPUTE_CAPABILITIES), "default"
    known = ["CURRENT", *rtx_targets(trt)]
    unknown = [c for c in requested if c not in known]
    if unknown:
        raise EngineError(f"{runtime_label(trt)} cannot target {unknown}: choose from {known}")
    if "CURRENT" in requested and len(requested) > 1:
        raise EngineError("compute capability 'current' cannot be combined with others")
    bconfig.num_compute_capabilities = len(requested)
    for i, name in enumerate(requested):
        if not bconfig.set_compute_capability(getattr(trt.ComputeCapability, name), i):
            raise EngineError(f"{runtime_label(trt)} refused compute capability {name}")
    if requested == ("CURRENT",):
        gpu = gpu_compute_capability()
        if gpu is None:
            raise EngineError("compute capability 'current' needs a CUDA GPU here: name a target such as SM86")
        return [gpu], "requested"
    return list(requested), "requested"


def _load_timing_cache(trt, bconfig, path) -> dict[str, Any]:
    if path is None:
        return {"path": None, "used": False}
    if runtime_name(trt) == TrtRuntime.tensorrt_rtx.value:
        # TensorRT-RTX >= 1.2 makes timing-cache calls no-ops (and warns that they are deprecated).
        log.warning("TensorRT-RTX ignores timing caches: %s is not used", path)
        return {"path": str(path), "used": False}
    path = Path(path)
    data = path.read_bytes() if path.is_file() else b""
    cache = bconfig.create_timing_cache(data)
    if not bconfig.set_timing_cache(cache, ignore_mismatch=False):
        raise EngineError(f"timing cache {path} does not fit {runtime_label(trt)} on this GPU: delete it")
    return {"path": str(path), "used": True, "loaded_bytes": len(data), "cache": cache}


def _save_timing_cache(bconfig, info: dict[str, Any]) -> None:
    if not info.get("used"):
        return
    cache = bconfig.get_timing_cache()
    if cache is not None:
        Path(info["path"]).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(info["path"], cache.serialize())
