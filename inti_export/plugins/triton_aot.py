"""Ahead-of-time compilation of the Triton kernel to PTX, for the TensorRT AOT plugin (`trt_plugin.py`).

    compile_aot(act_dtype, weight_dtype, target=GPUTarget(...)) -> CompiledKernel (PTX, entry, launch sizes)
    driver_ptx_version()                                        -> the PTX ISA the CUDA driver loads

Runs without a GPU given a target: the kernel (`triton_kernel.py`) is compiled, never launched.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import triton

from inti_export.errors import InputShapeError, RuntimeUnavailableError
from inti_export.plugins.triton_kernel import (
    AOT_CONFIGS,
    SUPPORTED_DTYPES,
    TRITON_DTYPE_NAMES,
    KernelConfig,
    _token_interpolate_kernel,
    interpreter_enabled,
)

logger = logging.getLogger(__name__)

MAX_STATIC_SHARED_BYTES = 48 * 1024  # a plain launch's static shared memory: what TensorRT is known to allow
# Arguments that `aligned=True` declares divisible by 16: the eight pointers (16-byte aligned: TensorRT
# allocates tensors at 256-byte boundaries) and the widths D and K (multiples of 16 elements, so every
# row of h, a, b, y and w1 starts 16-byte aligned too). M stays unhinted: it is the dynamic batch.
_ALIGNED_ARGS = ("H", "A", "B", "W1", "B1", "W2", "B2", "D", "K", "Y")


@dataclass(frozen=True)
class CompiledKernel:
    """PTX plus what a launcher needs: entry name, threads per block, shared memory, block_m."""

    name: str
    ptx: str
    num_warps: int
    shared_mem: int
    block_m: int
    target: str
    num_stages: int = 0
    aligned: bool = False


def compile_aot(
    act_dtype: torch.dtype,
    weight_dtype: torch.dtype | None = None,
    *,
    target=None,
    config: KernelConfig | None = None,
    ptx_version: int | None = None,
    aligned: bool = False,
) -> CompiledKernel:
    """Compile the kernel to PTX for one dtype combination, without launching it.

    `act_dtype` is the dtype of h, a, b and y; `weight_dtype` that of w1, b1, w2, b2 (default: the same).
    `target` is a `triton.backends.compiler.GPUTarget` (default: the current GPU), so this also runs
    on a machine without a GPU given e.g. `GPUTarget("cuda", 90, 32)`. `ptx_version` caps the PTX ISA
    (see `driver_ptx_version`). `aligned=True` specialises for D and 4D' multiples of 16 and 16-byte
    aligned buffers (`_ALIGNED_ARGS`): Triton then emits vector loads and asynchronous copies.

    The PTX entry takes (H, A, B, W1, B1, W2, B2, M, D, K, Y) and then Triton's two hidden scratch
    pointers, which a TensorRT AOT launch fills with null; so a compile that needs scratch memory or
    more than one CTA per program is refused. Over 48 KiB of shared memory, the software pipeline is
    shortened (fewer `num_stages`) until it fits, and refused if even one stage does not.
    """
    from triton.compiler import ASTSource

    weight_dtype = act_dtype if weight_dtype is None else weight_dtype
    for name, dt in (("act_dtype", act_dtype), ("weight_dtype", weight_dtype)):
        if dt not in SUPPORTED_DTYPES:
            raise InputShapeError(f"compile_aot: {name}={dt} is not one of float32, float16, bfloat16")
    config = AOT_CONFIGS[act_dtype] if config is None else config
    act, wt = TRITON_DTYPE_NAMES[act_dtype], TRITON_DTYPE_NAMES[weight_dtype]
    signature = {
        "H": f"*{act}", "A": f"*{act}", "B": f"*{act}",
        "W1": f"*{wt}", "B1": f"*{wt}", "W2": f"*{wt}", "B2": f"*{wt}",
        "M": "i32", "D": "i32", "K": "i32",
        "Y": f"*{act}",
    }
    constexprs = config.constexprs(act_dtype)
    signature.update(dict.fromkeys(constexprs, "constexpr"))
    if interpreter_enabled():
        raise RuntimeUnavailableError("compile_aot: triton was imported with TRITON_INTERPRET=1; unset it to compile")
    arg_names = _token_interpolate_kernel.arg_names
    attrs = {(arg_names.index(n),): [["tt.divisibility", 16]] for n in _ALIGNED_ARGS} if aligned else None
    if target is None:
        target = triton.runtime.driver.active.get_current_target()
    options = {"num_warps": config.num_warps}
    if ptx_version is not None:  # only ever lower the ISA: the bundled ptxas cannot assemble a newer one
        from triton.backends.nvidia.compiler import get_ptxas, ptx_get_version

        options["ptx_version"] = min(ptx_version, ptx_get_version(get_ptxas(target.arch).version))
    for stages in range(config.num_stages, 0, -1):
        src = ASTSource(fn=_token_interpolate_kernel, signature=signature, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(src, target=target, options={**options, "num_stages": stages})
        md = compiled.metadata
        if md.shared <= MAX_STATIC_SHARED_BYTES:
            break
        logger.info("compile_aot: %s at %d stages needs %d bytes of shared memory for %s; trying %d",
                    md.name, stages, md.shared, target.arch, stages - 1)
    scratch = (getattr(md, "global_scratch_size", 0), getattr(md, "profile_scratch_size", 0))
    if any(scratch):
        raise RuntimeUnavailableError(
            f"compile_aot: kernel {md.name} needs scratch memory (global, profile) = {scratch}, "
            "which a TensorRT AOT launch cannot provide"
        )
    if md.shared > MAX_STATIC_SHARED_BYTES:
        raise RuntimeUnavailableError(
            f"compile_aot: kernel {md.name} uses {md.shared} bytes of shared memory even at 1 stage, over the "
            f"{MAX_STATIC_SHARED_BYTES} a TensorRT AOT launch is known to allow; choose smaller blocks"
        )
    if getattr(md, "num_ctas", 1) != 1:
        raise RuntimeUnavailableError(
            f"compile_aot: kernel {md.name} needs num_ctas={md.num_ctas}; TensorRT launches 1"
        )
    return CompiledKernel(
        name=md.name,
        ptx=compiled.asm["ptx"],
        num_warps=md.num_warps,
        shared_mem=md.shared,
        block_m=config.block_m,
        target=f"{target.backend}:{target.arch}",
        num_stages=stages,
        aligned=aligned,
    )


def driver_ptx_version() -> int | None:
    """Highest PTX ISA the installed CUDA driver loads (Triton's encoding, e.g. 90), or None if unknown.

    Triton emits the ISA of the ptxas it bundles, which can be newer than the driver that will run a
    TensorRT engine; compiling with `ptx_version=driver_ptx_version()` keeps the engine loadable.
    """
    import ctypes

    try:
        from triton.backends.nvidia.compiler import ptx_get_version

        lib = ctypes.CDLL("libcuda.so.1")
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) != 0 or version.value <= 0:
            return None
        return int(ptx_get_version(f"{version.value // 1000}.{(version.value % 1000) // 10}"))
    except (OSError, ImportError, AttributeError, RuntimeError) as e:
        logger.debug("could not read the CUDA driver version: %s", e)
        return None
