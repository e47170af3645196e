"""What a build sets on TensorRT's builder config: the batch profile, the GPU targets, the timing cache.

    add_profile(builder, network, bconfig, batch)       -> the profile records for the manifest
    set_compute_capabilities(trt, bconfig, requested)    -> (targets, where they came from)
    load_timing_cache(trt, bconfig, path) / save_timing_cache(bconfig, info)
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inti_export.errors import EngineError
from inti_export.fileio import write_atomic
from inti_export.runtime.trt.config import (
    DEFAULT_BATCH,
    RTX_DEFAULT_COMPUTE_CAPABILITIES,
    gpu_compute_capability,
    rtx_targets,
)
from inti_export.runtime.trt.loader import runtime_label, runtime_name
from inti_export.vocab import TrtRuntime

log = logging.getLogger(__name__)


def add_profile(builder, network, bconfig, batch) -> list[dict]:
    """One optimisation profile: `batch` (min, opt, max) on a dynamic axis 0, the static shape elsewhere."""
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


def set_compute_capabilities(trt, bconfig, requested: tuple[str, ...]) -> tuple[list[str], str]:
    """The GPUs the engine targets and their source ("build-gpu", "default" or "requested")."""
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


def load_timing_cache(trt, bconfig, path) -> dict[str, Any]:
    """Give the builder the timing cache at `path` (empty if absent); what the manifest records of it."""
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


def save_timing_cache(bconfig, info: dict[str, Any]) -> None:
    """Write back the timing cache `load_timing_cache` gave the builder, now with this build's timings."""
    if not info.get("used"):
        return
    cache = bconfig.get_timing_cache()
    if cache is not None:
        Path(info["path"]).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(info["path"], cache.serialize())
