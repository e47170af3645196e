"""`inti::token_interpolate`: the weight-predict-and-blend step as a PyTorch custom op.

The exporter maps this op to one ONNX node `inti.TokenInterpolate` (see `exporter/functions.py`).
CPU runs the reference; CUDA runs the Triton kernel when one is registered (`plugins/triton_kernel.py`).
"""

from __future__ import annotations

import torch

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
    """(..., 4D'), (..., D), (..., D), weights -> (..., D); reference on every device by default."""
    return token_interpolate_reference(h, a, b, w1, b1, w2, b2)


@token_interpolate.register_fake
def _(h, a, b, w1, b1, w2, b2):
    return torch.empty_like(a)
