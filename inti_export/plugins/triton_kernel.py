"""One Triton kernel for the weight-predict-and-blend step (spec steps 5-6), in a single pass.

Per block of `BLOCK_M` tokens (rows of the flattened `(M, .)` tensors):

    for each chunk of BLOCK_N hidden units (of D):
        acc    = h_tile @ w1_chunk.T          # over K = 4D' in BLOCK_K steps, fp32 accumulate
        hidden = GELU_erf(acc + b1_chunk)     # stays in registers, never written to memory
        logits += hidden @ w2_chunk.T         # 2 columns: a row-sum of elementwise products
    w_a, w_b = softmax(logits + b2)           # two logits: w_a = sigmoid(l_a - l_b)
    y = w_a * a + w_b * b                     # in chunks of BLOCK_N over D, stored in the input dtype

The kernel's runtime arguments are ordered (input pointers, int32 scalars, output pointer) so that
the TensorRT AOT plugin (`plugins/trt_plugin.py`) can launch the same compiled PTX: TensorRT passes
exactly that order. Inputs must be contiguous; the launcher checks it.

On a CPU, Triton's interpreter runs the kernel (the tests do): `TRITON_INTERPRET=1` must be in the
environment before triton is first imported, since `triton.jit` picks compiler or interpreter when it
wraps a function, Triton's own `tl.sum`/`tl.erf` helpers included.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from inti_export.errors import InputShapeError, RuntimeUnavailableError

logger = logging.getLogger(__name__)

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
TRITON_DTYPE_NAMES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


@triton.jit
def _token_interpolate_kernel(
    H,  # (M, K) fused context h, K = 4D'
    A,  # (M, D) first token of each pair
    B,  # (M, D) second token of each pair
    W1,  # (D, K) head layer 1, nn.Linear layout
    B1,  # (D,)
    W2,  # (2, D) head layer 2
    B2,  # (2,)
    M,  # int32: number of tokens
    D,  # int32: model width
    K,  # int32: context width 4D'
    Y,  # (M, D) output, dtype of A
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    DOT_PRECISION: tl.constexpr,  # "ieee" for fp32 inputs (matches PyTorch's fp32 matmul), else "tf32"
    UPCAST_DOT: tl.constexpr,  # multiply in fp32: only for bf16 in the interpreter, whose bf16 dot is wrong
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_M + tl.arange(0, BLOCK_M)  # (BLOCK_M,)
    row_mask = rows < M
    rows64 = rows.to(tl.int64)  # M * K can pass 2**31 for large batches

    logit_a = tl.zeros([BLOCK_M], dtype=tl.float32)
    logit_b = tl.zeros([BLOCK_M], dtype=tl.float32)
    for n0 in range(0, D, BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)  # (BLOCK_N,) hidden units
        col_mask = cols < D
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            k_mask = ks < K
            h = tl.load(
                H + rows64[:, None] * K + ks[None, :],
                mask=row_mask[:, None] & k_mask[None, :],
                other=0.0,
            )  # (BLOCK_M, BLOCK_K)
            w = tl.load(
                W1 + cols[None, :] * K + ks[:, None],
                mask=k_mask[:, None] & col_mask[None, :],
                other=0.0,
            )  # (BLOCK_K, BLOCK_N) = w1_chunk.T
            if UPCAST_DOT:
                acc = tl.dot(h.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee")
            else:
                acc = tl.dot(h, w.to(h.dtype), acc, input_precision=DOT_PRECISION)
        bias1 = tl.load(B1 + cols, mask=col_mask, other=0.0).to(tl.float32)
        hidden = acc + bias1[None, :]
        hidden = 0.5 * hidden * (1.0 + tl.erf(hidden * 0.7071067811865476))  # exact GELU
        # Masked hidden units are GELU(0) = 0 and meet zero weights, so they add nothing.
        w2a = tl.load(W2 + cols, mask=col_mask, other=0.0).to(tl.float32)
        w2b = tl.load(W2 + D + cols, mask=col_mask, other=0.0).to(tl.float32)
        logit_a += tl.sum(hidden * w2a[None, :], axis=1)
        logit_b += tl.sum(hidden * w2b[None, :], axis=1)

    logit_a += tl.load(B2).to(tl.float32)
    logit_b += tl.load(B2 + 1).to(tl.float32)
    # softmax over two logits, written as two sigmoids (no overflow: exp(+inf) gives weight 0)
    w_a = 1.0 / (1.0 + tl.exp(logit_b - logit_a))  # (BLOCK_M,)
    w_b = 1.0 / (1.0 + tl.exp(logit_a - logit_b))

    for d0 in range(0, D, BLOCK_N):
        cols = d0 + tl.arange(0, BLOCK_N)
        mask = row_mask[:, None] & (cols < D)[None, :]
        offs = rows64[:, None] * D + cols[None, :]
        a = tl.load(A + offs, mask=mask, other=0.0).to(tl.float32)
        b = tl.load(B + offs, mask=mask, other=0.0).to(tl.float32)
        y = w_a[:, None] * a + w_b[:, None] * b
        tl.store(Y + offs, y.to(Y.dtype.element_ty), mask=mask)


@dataclass(frozen=True)
class KernelConfig:
    """One launch configuration: block sizes (constexprs) and compiler options."""

    block_m: int
    block_n: int
    block_k: int
    num_warps: int = 4
    num_stages: int = 3

    def constexprs(self, dtype: torch.dtype, *, interpret: bool = False) -> dict:
        return {
            "BLOCK_M": self.block_m,
            "BLOCK_N": self.block_n,
            "BLOCK_K": self.block_k,
            **dot_constexprs(dtype, interpret=interpret),
        }


# GPU autotuning candidates: kept short (each is timed once per (M, D, K, dtype)).
AUTOTUNE_CONFIGS = (
    KernelConfig(64, 64, 64, num_warps=4, num_stages=3),
    KernelConfig(128, 64, 64, num_warps=8, num_stages=3),
    KernelConfig(64, 128, 64, num_warps=8, num_stages=3),
    KernelConfig(32, 64, 64, num_warps=4, num_stages=4),
    KernelConfig(128, 128, 32, num_warps=8, num_stages=3),
)
# The interpreter runs blocks in numpy: small blocks keep it fast; tl.dot needs every dim >= 16.
INTERPRETER_CONFIG = KernelConfig(16, 16, 16, num_warps=1, num_stages=1)


def dot_constexprs(dtype: torch.dtype, *, interpret: bool = False) -> dict:
    """How tl.dot multiplies for inputs of `dtype`.

    fp32 inputs use IEEE fp32 products (TF32 would miss the 1e-5 parity target); fp16/bf16 use the
    tensor cores with fp32 accumulation. Triton 3.8's interpreter multiplies bf16 tiles as raw integer
    bits, so there bf16 tiles are widened to fp32 first (exact: a bf16 product fits in fp32).
    """
    return {
        "DOT_PRECISION": "ieee" if dtype == torch.float32 else "tf32",
        "UPCAST_DOT": bool(interpret and dtype == torch.bfloat16),
    }


def interpreter_enabled() -> bool:
    """Whether the kernel runs in Triton's interpreter (TRITON_INTERPRET=1 when triton was imported)."""
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(_token_interpolate_kernel, InterpretedFunction)


_AUTOTUNED = []


def autotuned_kernel():
    """The kernel behind `triton.autotune` over `AUTOTUNE_CONFIGS`, keyed on (M, D, K) and dtypes."""
    if not _AUTOTUNED:
        configs = [
            triton.Config(
                {"BLOCK_M": c.block_m, "BLOCK_N": c.block_n, "BLOCK_K": c.block_k},
                num_warps=c.num_warps,
                num_stages=c.num_stages,
            )
            for c in AUTOTUNE_CONFIGS
        ]
        _AUTOTUNED.append(triton.autotune(configs=configs, key=["M", "D", "K"])(_token_interpolate_kernel))
    return _AUTOTUNED[0]


def _check_inputs(h, a, b, w1, b1, w2, b2, out):
    named = {"h": h, "a": a, "b": b, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise InputShapeError(f"token_interpolate: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dtype not in SUPPORTED_DTYPES:
            raise InputShapeError(
                f"token_interpolate: {name} has dtype {t.dtype}; supported: float32, float16, bfloat16"
            )
        if not t.is_contiguous():
            raise InputShapeError(
                f"token_interpolate: {name} with shape {tuple(t.shape)} and strides {t.stride()} "
                "is not contiguous; call .contiguous() first"
            )
        if t.device != a.device:
            raise InputShapeError(f"token_interpolate: {name} is on {t.device} but a is on {a.device}")
    if a.dim() < 1 or a.shape != b.shape:
        raise InputShapeError(
            f"token_interpolate: a and b must have one shape (..., D); got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    if h.dim() != a.dim() or h.shape[:-1] != a.shape[:-1]:
        raise InputShapeError(
            f"token_interpolate: h {tuple(h.shape)} must be (..., 4D') with the leading dims of a {tuple(a.shape)}"
        )
    if h.dtype != a.dtype or b.dtype != a.dtype:
        raise InputShapeError(
            f"token_interpolate: h, a, b must share one dtype; got {h.dtype}, {a.dtype}, {b.dtype}"
        )
    d, k = a.shape[-1], h.shape[-1]
    expected = {"w1": (d, k), "b1": (d,), "w2": (2, d), "b2": (2,)}
    for name, shape in expected.items():
        if tuple(named[name].shape) != shape:
            raise InputShapeError(
                f"token_interpolate: {name} has shape {tuple(named[name].shape)}, expected {shape} "
                f"for D={d}, 4D'={k}"
            )
    if out is not None and (out.shape != a.shape or out.dtype != a.dtype or not out.is_contiguous()
                            or out.device != a.device):
        raise InputShapeError(
            f"token_interpolate: out must be a contiguous {a.dtype} tensor of shape {tuple(a.shape)} "
            f"on {a.device}; got {out.dtype} {tuple(out.shape)} on {out.device}"
        )


def token_interpolate_triton(h, a, b, w1, b1, w2, b2, *, out=None, config: KernelConfig | None = None):
    """y = w_a * a + w_b * b with the weights predicted from h, by the fused Triton kernel.

    h (..., 4D'), a and b (..., D), contiguous, one dtype among float32/float16/bfloat16; weights as in
    `token_interpolate_reference`, any of those dtypes (w1 is converted to h's dtype for the matmul).
    Returns y (..., D) in a's dtype, or writes it into `out`. `config` pins the block sizes (else the
    autotuner picks on a GPU, and `INTERPRETER_CONFIG` is used under TRITON_INTERPRET=1).
    """
    _check_inputs(h, a, b, w1, b1, w2, b2, out)
    d, k = a.shape[-1], h.shape[-1]
    m = a.numel() // d if d else 0
    y = torch.empty_like(a) if out is None else out
    if m == 0 or d == 0:
        return y
    interpret = interpreter_enabled()
    if a.device.type != "cuda" and not interpret:
        raise RuntimeUnavailableError(
            f"token_interpolate_triton needs CUDA tensors, got {a.device}; "
            "set TRITON_INTERPRET=1 before importing triton to run its interpreter on the CPU"
        )
    if m >= 2**31:
        raise InputShapeError(f"token_interpolate: {m} tokens exceed the kernel's int32 limit")
    if k == 0:  # no context: the head sees only its biases; not a case a model produces
        raise InputShapeError("token_interpolate: h has an empty last dimension (4D' = 0)")

    if interpret and config is None:
        config = INTERPRETER_CONFIG
    args = (h, a, b, w1, b1, w2, b2, m, d, k, y)
    with torch.cuda.device(a.device) if a.device.type == "cuda" else contextlib.nullcontext():
        if config is None:
            grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]),)  # noqa: E731
            autotuned_kernel()[grid](*args, **dot_constexprs(h.dtype, interpret=interpret))
        else:
            grid = (triton.cdiv(m, config.block_m),)
            _token_interpolate_kernel[grid](
                *args,
                **config.constexprs(h.dtype, interpret=interpret),
                num_warps=config.num_warps,
                num_stages=config.num_stages,
            )
    return y


# ---- ahead-of-time compilation (for the TensorRT AOT plugin) --------------------------------------

# The configuration baked into TensorRT engines: one per activation dtype, chosen to stay under the
# 48 KiB of static shared memory a plain launch may use (TensorRT launches with the shared size we
# report). Where a target needs more for a dtype pair (fp16/bf16 activations with fp32 weights take
# 57,360 bytes at 3 stages on sm_100/103/110, exactly 49,152 on sm_90), `compile_aot` pipelines fewer
# stages until the kernel fits.
AOT_CONFIGS = {
    torch.float32: KernelConfig(32, 64, 32, num_warps=4, num_stages=3),
    torch.float16: KernelConfig(64, 64, 64, num_warps=4, num_stages=3),
    torch.bfloat16: KernelConfig(64, 64, 64, num_warps=4, num_stages=3),
}
MAX_STATIC_SHARED_BYTES = 48 * 1024
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
