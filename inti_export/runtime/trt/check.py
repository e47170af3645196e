"""Checking an engine before it is trusted, and reporting what it holds.

    verify_engine_artifact(engine, onnx=None) -> EngineManifest: file, manifest, hashes, source ONNX
                                                 (no GPU, no TensorRT: the parity gate runs it first)
    check_engine(engine, device=0)            -> EngineManifest: + runtime and version importable here,
                                                 plugins, and the GPU being one the engine targets
    inspect_engine(engine, device=None)       -> dict: manifest (+ IEngineInspector JSON on a GPU)

Every refusal is a one-line EngineError that says what to do.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from inti_export.errors import EngineError, RuntimeUnavailableError
from inti_export.fileio import sha256_file
from inti_export.runtime.manifest import EngineManifest, load_manifest, manifest_path
from inti_export.runtime.trt.config import RTX_DEFAULT_COMPUTE_CAPABILITIES, gpu_compute_capability, rtx_targets
from inti_export.runtime.trt.loader import (
    NO_GPU,
    create,
    load_trt_module,
    logged_errors,
    runtime_label,
    runtime_name,
    trt_logger,
)
from inti_export.runtime.trt.plugins import plugins_needing_registration, register_plugins
from inti_export.vocab import TrtRuntime


def verify_engine_artifact(
    engine_path: str | os.PathLike, onnx_path: str | os.PathLike | None = None
) -> EngineManifest:
    """The engine's manifest, after checking without a GPU or TensorRT that the engine is the one it describes.

    Checks: the engine file and a well-formed manifest exist, the engine's size and sha256 match the
    manifest, and (given `onnx_path`) the engine was built from that ONNX file (its sha256).
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineError(f"engine file not found: {engine_path}")
    manifest = load_manifest(engine_path)
    size = engine_path.stat().st_size
    if size != manifest.engine_size or sha256_file(engine_path) != manifest.engine_sha256:
        raise EngineError(
            f"engine {engine_path} does not match its manifest {manifest_path(engine_path)} (sha256/size differ):"
            " it is corrupt or from another build; rebuild it with `inti-export trt`"
        )
    if onnx_path is not None:
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise EngineError(f"ONNX file not found: {onnx_path}")
        if sha256_file(onnx_path) != manifest.onnx_sha256:
            raise EngineError(
                f"engine {engine_path} was built from another ONNX ({manifest.onnx_file},"
                f" sha256 {manifest.onnx_sha256[:12]}..., not {onnx_path}): rebuild it"
                f" with `inti-export trt {onnx_path}`"
            )
    return manifest


def check_engine(engine_path: str | os.PathLike, trt_module=None, device: int = 0) -> EngineManifest:
    """Refuse, with a one-line EngineError, an engine that this machine cannot load; else its manifest.

    Checks `verify_engine_artifact`, then that the runtime and its version are the ones importable
    here, that plugins the engine calls back into are registered and unchanged, and that CUDA device
    `device` (if there is a GPU) is one the runtime supports and the engine targets.
    """
    manifest, _ = check_engine_and_load(engine_path, trt_module, device)
    return manifest


def check_engine_and_load(engine_path, trt_module=None, device: int = 0):
    """`check_engine`, also returning the TensorRT module it checked against: (manifest, trt)."""
    engine_path = Path(engine_path)
    manifest = verify_engine_artifact(engine_path)
    trt = trt_module if trt_module is not None else load_trt_module(manifest.runtime)
    here = runtime_label(trt)
    if runtime_name(trt) != manifest.runtime:
        raise EngineError(
            f"engine {engine_path} was built with {manifest.runtime}, not {runtime_name(trt)}: rebuild it"
        )
    if trt.__version__ != manifest.runtime_version:
        raise EngineError(
            f"engine {engine_path} was built with {manifest.runtime} {manifest.runtime_version}, but {here}"
            " is installed: rebuild it, or install that version"
        )
    needed = plugins_needing_registration(manifest.plugins)
    if needed:
        now = {(p["name"], p["namespace"], p["version"]): p["sha256"] for p in register_plugins(trt)[0]}
        for p in needed:
            key = (p["name"], p["namespace"], p["version"])
            name = f"{p['namespace']}::{p['name']}"
            if key not in now:
                raise EngineError(f"engine {engine_path} needs plugin {name} v{key[2]}, not registered")
            if now[key] != p["sha256"]:
                raise EngineError(f"plugin {name} changed since {engine_path} was built: rebuild it")
    gpu = gpu_compute_capability(device)
    if gpu is not None:
        check_gpu_supported(trt, gpu, device)
        if not gpu_targeted(gpu, manifest):
            raise EngineError(
                f"engine {engine_path} targets {manifest.compute_capabilities}, not this GPU ({gpu}): rebuild it"
                + (f" with --compute-capability {gpu}" if manifest.runtime == TrtRuntime.tensorrt_rtx.value
                   else " on this GPU")
            )
    return manifest, trt


def check_gpu_supported(trt, gpu: str, device: int = 0) -> None:
    """TensorRT-RTX runs on a few GPU generations only: say so before TensorRT does, in one line."""
    if runtime_name(trt) != TrtRuntime.tensorrt_rtx.value:
        return
    supported = rtx_targets(trt)
    if gpu not in supported:
        raise EngineError(
            f"{runtime_label(trt)} does not run on CUDA device {device} ({gpu}); it supports"
            f" {', '.join(supported)}: build and run with full TensorRT (--runtime tensorrt) on this GPU"
        )


def gpu_targeted(gpu: str, manifest: EngineManifest) -> bool:
    """Whether an engine with this manifest runs on a GPU of compute capability `gpu` ("SM86")."""
    if manifest.compute_capabilities_source == "default":  # TensorRT-RTX's portable set, SM12x included
        return gpu in RTX_DEFAULT_COMPUTE_CAPABILITIES or gpu.startswith("SM12")
    return gpu in manifest.compute_capabilities


def inspect_engine(engine_path: str | os.PathLike, device: int | None = None) -> dict[str, Any]:
    """The manifest (with the build's network layers), plus TensorRT's IEngineInspector JSON on a GPU.

    The engine is checked, deserialized, inspected and destroyed on CUDA device `device`; None tries
    every visible device and inspects on the first that can load the engine (`engine_layers_device`).
    """
    engine_path = Path(engine_path)
    _refuse_onnx(engine_path)
    info = {"engine_path": str(engine_path), **verify_engine_artifact(engine_path).to_dict()}
    info["engine_layers"] = None
    visible = _visible_devices()
    if not visible:
        info["engine_layers_note"] = f"{NO_GPU} (and deserialize only on one); network_layers come from the build"
        return info
    candidates, refusals = (visible if device is None else [device]), []
    for d in candidates:
        try:
            _, trt = check_engine_and_load(engine_path, device=d)
            text = _engine_information(trt, engine_path, d)
        except (EngineError, RuntimeUnavailableError) as e:
            refusals.append(f"CUDA device {d}: {e}" if len(candidates) > 1 else str(e))
            continue
        try:
            info["engine_layers"] = json.loads(text)
        except json.JSONDecodeError:
            info["engine_layers"] = text
        info["engine_layers_device"] = d
        return info
    info["engine_layers_note"] = "; ".join(refusals)
    return info


def _refuse_onnx(path: Path) -> None:
    """One line if `path` is an ONNX (by name, or by its manifest: an export's has no engine_sha256)."""
    if path.is_dir():
        raise EngineError(f"{path} is a directory: give an engine file built by `inti-export trt`")
    try:
        manifest = json.loads(manifest_path(path).read_text())
    except (OSError, ValueError):
        manifest = None
    export_manifest = isinstance(manifest, dict) and "onnx_sha256" in manifest and "engine_sha256" not in manifest
    if path.suffix.lower() == ".onnx" or export_manifest:
        raise EngineError(f"{path} is an ONNX, not an engine: build one with `inti-export trt {path}` and inspect"
                          " the .engine it writes")


def _visible_devices() -> list[int]:
    """The CUDA devices torch sees (0, 1, ...); none without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return []
    return list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []


def _engine_information(trt, engine_path: Path, device: int) -> str:
    """IEngineInspector's JSON for an engine deserialized, inspected and destroyed on CUDA device `device`."""
    import torch

    with torch.cuda.device(device):  # TensorRT objects live and die on the device they were made on
        engine, runtime = deserialize(trt, engine_path)
        inspector = engine.create_engine_inspector()
        text = inspector.get_engine_information(trt.LayerInformationFormat.JSON)
        del inspector, engine, runtime  # dependents first, while `device` is current
    return text


def deserialize(trt, engine_path: Path):
    """(ICudaEngine, IRuntime) for an engine file, or a one-line EngineError with TensorRT's reason."""
    logger = trt_logger(trt, "warning")
    runtime = create(trt.Runtime, logger, f"could not create a {runtime_label(trt)} runtime", trt)
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise EngineError(f"{runtime_label(trt)} could not deserialize {engine_path}: {logged_errors(logger)}")
    return engine, runtime
