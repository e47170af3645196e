"""ONNX -> TensorRT engine + manifest: the build, from parsed network to the files it writes.

    build_engine(onnx, engine, BuildConfig(), progress=None, cancel=None) -> EngineManifest

Networks are strongly typed: precision comes from the graph (casts, Q/DQ), never from builder flags,
and is read from the ONNX's `inti.precision` metadata. The steps live beside this module: parse.py
(ONNX -> network, the plugin marking), builder_config.py (batch profile, GPU targets, timing cache)
and cancel.py (the build in a worker thread that SIGINT, SIGTERM or a `cancel` event stops). A
build that is cancelled or fails writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path

from inti_export.errors import EngineError, IntiExportError, defer_interrupts
from inti_export.fileio import atomic_output, check_output_path, sha256_file
from inti_export.runtime.manifest import EngineManifest, manifest_path
from inti_export.runtime.trt.builder_config import (
    add_profile,
    load_timing_cache,
    save_timing_cache,
    set_compute_capabilities,
)
from inti_export.runtime.trt.cancel import build_serialized
from inti_export.runtime.trt.config import BuildConfig, BuildProgress
from inti_export.runtime.trt.loader import (
    load_trt_module,
    logged_errors,
    raise_deferred_interrupt,
    runtime_label,
    runtime_name,
    trt_logger,
)
from inti_export.runtime.trt.network import function_nodes, network_layers, network_summary, tensor_info
from inti_export.runtime.trt.parse import onnx_precision, parse_network, read_onnx
from inti_export.runtime.trt.plugins import register_plugins
from inti_export.vocab import META_VERSION, OP_TYPE

log = logging.getLogger(__name__)


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
        builder, network = parse_network(trt, logger, label, onnx_path, model, plugin_module)
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
    profiles = add_profile(builder, network, bconfig, config.batch)
    ccs, cc_source = set_compute_capabilities(trt, bconfig, config.compute_capabilities)
    cache_info = load_timing_cache(trt, bconfig, config.timing_cache)

    raise_deferred_interrupt()
    serialized = build_serialized(trt, builder, network, bconfig, progress, cancel, engine_path)
    if serialized is None:
        raise EngineError(f"{label} could not build an engine from {onnx_path}: {logged_errors(logger)}")
    build_time = time.perf_counter() - start
    save_timing_cache(bconfig, cache_info)

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
