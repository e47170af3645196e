"""`inti::token_interpolate`: the weight-predict-and-blend step as a PyTorch custom op.

The exporter maps this op to one ONNX node `inti.TokenInterpolate` (see `exporter/functions.py`).
CPU (and any device but CUDA) runs the reference; CUDA runs the fused Triton kernel
(`plugins/triton_kernel.py`), imported lazily so that this module imports without triton.
"""

from __future__ import annotations

import torch

from inti_export.errors import RuntimeUnavailableError
from inti_export.plugins.reference import token_interpolate_reference

OP_NAME = "inti::token_interpolate"


@torch.library.custom_op(OP_NAME, mutates_args=())
def token_interpolate(
    h: torch.Tensor,
    a: torch.Tensor,
    b: torch.Tensor,
    w1: torch.Tensor,
    b1: torch.Tensor,
    w2: torch.Tensor,
    b2: torch.Tensor,
) -> torch.Tensor:
    """(..., 4D'), (..., D), (..., D), weights -> (..., D); the reference, except on CUDA (below)."""
    return token_interpolate_reference(h, a, b, w1, b1, w2, b2).contiguous()  # as on CUDA and in the fake


@token_interpolate.register_fake
def _(h, a, b, w1, b1, w2, b2):
    return torch.empty_like(a, memory_format=torch.contiguous_format)


@token_interpolate.register_kernel("cuda")
def token_interpolate_cuda(h, a, b, w1, b1, w2, b2):
    """CUDA: the fused Triton kernel (triton is imported on the first CUDA call, not here).

    The kernel reads contiguous rows of one activation dtype: `a` and `b` are usually strided views of
    the frame pairs and are made contiguous (one copy each, as the unfused ops read them anyway), and
    `h` is cast to `a`'s dtype (under autocast h comes out of a Linear in fp16 while a, b stay fp32).
    Dtypes the kernel does not take (float64) run the reference, as on the CPU.
    """
    tensors = (h, a, b, w1, b1, w2, b2)
    if any(t.dtype not in (torch.float32, torch.float16, torch.bfloat16) for t in tensors) or b.dtype != a.dtype:
        return token_interpolate_reference(*tensors).contiguous()
    try:
        from inti_export.plugins.triton_kernel import token_interpolate_triton
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"inti::token_interpolate on CUDA runs a Triton kernel, and triton does not import ({e}); "
            "install triton, or run the model with the blend custom op switched off"
        ) from e
    h = h.to(a.dtype)
    return token_interpolate_triton(*(t.contiguous() for t in (h, a, b, w1, b1, w2, b2)))
