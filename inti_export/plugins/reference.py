"""Reference implementation of the fused weight-predict-and-blend step (spec steps 5-6).

Every kernel and plugin for `inti.TokenInterpolate` is tested against `token_interpolate_reference`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def token_interpolate_reference(
    h: torch.Tensor,  # (..., 4D') fused context
    a: torch.Tensor,  # (..., D) first token of each pair
    b: torch.Tensor,  # (..., D) second token of each pair
    w1: torch.Tensor,  # (D, 4D') head layer 1, nn.Linear layout (out, in)
    b1: torch.Tensor,  # (D,)
    w2: torch.Tensor,  # (2, D) head layer 2
    b2: torch.Tensor,  # (2,)
) -> torch.Tensor:  # (..., D)
    """y = w_a * a + w_b * b with (w_a, w_b) = softmax(Linear(GELU(Linear(h)))).

    Low-precision inputs are computed in float32 and the result is cast back to `a.dtype`.
    """
    dtype = a.dtype
    h, a, b = h.float(), a.float(), b.float()
    hidden = F.gelu(F.linear(h, w1.float(), b1.float()))  # (..., D), exact (erf) GELU
    logits = F.linear(hidden, w2.float(), b2.float())  # (..., 2)
    w = torch.softmax(logits, dim=-1)  # (..., 2), positive, sums to 1
    y = w[..., 0:1] * a + w[..., 1:2] * b  # (..., D)
    return y.to(dtype)
