"""One Triton kernel for the weight-predict-and-blend step (spec steps 5-6), in a single pass.

Per block of `BLOCK_M` tokens (rows of the flattened `(M, .)` tensors):

    for each chunk of BLOCK_N hidden units (of D):
        acc    = h_tile @ w1_chunk.T          # over K = 4D' in BLOCK_K steps, fp32 accumulate
        hidden = GELU_erf(acc + b1_chunk)     # stays in registers, never written to memory
        logits += hidden @ w2_chunk.T         # 2 columns: a row-sum of elementwise products
    w_a, w_b = softmax(logits + b2)           # two logits: w_a = sigmoid(l_a - l_b)
    y = w_a * a + w_b * b                     # in chunks of BLOCK_N over D, stored in the input dtype

The kernel's runtime arguments are ordered (input pointers, int32 scalars, output pointer) so that
the TensorRT AOT plugin (`plugins/trt_plugin.py`) can launch the same compiled PTX (`triton_aot.py`
compiles it): TensorRT passes exactly that order. Inputs must be contiguous; the launcher checks it.

On a CPU, Triton's interpreter runs the kernel (the tests do): `TRITON_INTERPRET=1` must be in the
environment before triton is first imported, since `triton.jit` picks compiler or interpreter when it
wraps a function, Triton's own `tl.sum`/`tl.erf` helpers included.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from inti_export.errors import InputShapeError, RuntimeUnavailableError

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
# The configuration baked into TensorRT engines: one per activation dtype, chosen to stay under the
# 48 KiB of static shared memory a plain launch may use (TensorRT launches with the shared size we
# report). Where a target needs more for a dtype pair (fp16/bf16 activations with fp32 weights take
# 57,360 bytes at 3 stages on sm_100/103/110, exactly 49,152 on sm_90), `triton_aot.compile_aot`
# pipelines fewer stages until the kernel fits. The Python `impl` launches the same configuration.
AOT_CONFIGS = {
    torch.float32: KernelConfig(32, 64, 32, num_warps=4, num_stages=3),
    torch.float16: KernelConfig(64, 64, 64, num_warps=4, num_stages=3),
    torch.bfloat16: KernelConfig(64, 64, 64, num_warps=4, num_stages=3),
}


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
