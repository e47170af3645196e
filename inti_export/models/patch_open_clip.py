"""Everything that touches open_clip's internals, in one place (pinned: open_clip_torch==3.3.0).

We build open_clip's `VisionTransformer` and (1) swap each block's `nn.MultiheadAttention` for
`Attention`, which keeps the same parameters and state-dict keys but can compute attention as
plain matmul/softmax (for ONNX export and FLOP counting) or with SDPA; (2) call the tower's own
`_embeds` and `_pool` around our block loop. `check_host` verifies the structure we rely on.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from inti_export.errors import HostModelError
from inti_export.models import compute_mode

OPEN_CLIP_VERSION = "3.3.0"


class Attention(nn.Module):
    """Self-attention with `nn.MultiheadAttention`'s parameters and state-dict keys."""

    def __init__(self, mha: nn.MultiheadAttention):
        super().__init__()
        if not mha.batch_first or not mha._qkv_same_embed_dim:
            raise HostModelError(
                "expected a batch-first nn.MultiheadAttention with packed q/k/v weights: install"
                f" open_clip_torch=={OPEN_CLIP_VERSION}"
            )
        self.num_heads = mha.num_heads
        self.in_proj_weight = mha.in_proj_weight  # (3D, D)
        self.in_proj_bias = mha.in_proj_bias  # (3D,)
        self.out_proj = nn.Linear(mha.embed_dim, mha.embed_dim, device=mha.in_proj_weight.device)
        self.out_proj.weight, self.out_proj.bias = mha.out_proj.weight, mha.out_proj.bias

    def forward(self, query, key=None, value=None, need_weights=False, attn_mask=None):
        if attn_mask is not None or (key is not None and key is not query):
            raise NotImplementedError("only unmasked self-attention is supported")
        m, n, d = query.shape  # (M, N, D)
        hd = d // self.num_heads
        qkv = F.linear(query, self.in_proj_weight, self.in_proj_bias)  # (M, N, 3D)
        q, k, v = qkv.reshape(m, n, 3, self.num_heads, hd).permute(2, 0, 3, 1, 4)  # (M, H, N, hd)
        if compute_mode.current().fused_attention:
            o = F.scaled_dot_product_attention(q, k, v)  # (M, H, N, hd)
        else:
            attn = (q * hd**-0.5) @ k.transpose(-2, -1)  # (M, H, N, N)
            o = attn.softmax(dim=-1) @ v  # (M, H, N, hd)
        o = o.transpose(1, 2).reshape(m, n, d)  # (M, N, D)
        return self.out_proj(o), None


def build_vision_tower(vision_cfg: dict, embed_dim: int, quick_gelu: bool) -> nn.Module:
    """open_clip's CLIP vision tower with our attention in every block."""
    from open_clip.model import _build_vision_tower

    visual = _build_vision_tower(embed_dim, dict(vision_cfg), quick_gelu=quick_gelu)
    check_host(visual)
    for block in visual.transformer.resblocks:
        block.attn = Attention(block.attn)
    return visual


def check_host(visual: nn.Module) -> None:
    """Fail loudly if open_clip's tower does not look like the one this module was written for."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    problems = []
    if not isinstance(visual, VisionTransformer):
        problems.append(f"vision tower is {type(visual).__name__}, not VisionTransformer")
    else:
        for name in ("_embeds", "_pool", "proj", "transformer", "ln_post"):
            if not hasattr(visual, name):
                problems.append(f"VisionTransformer has no {name}")
        if getattr(visual, "attn_pool", None) is not None:
            problems.append("attentional pooling is not supported")
        blocks = getattr(getattr(visual, "transformer", None), "resblocks", [])
        for i, blk in enumerate(blocks):
            if not isinstance(blk, ResidualAttentionBlock) or not isinstance(blk.attn, nn.MultiheadAttention):
                problems.append(f"resblocks[{i}] is not a ResidualAttentionBlock with nn.MultiheadAttention")
                break
    if problems:
        raise HostModelError(
            f"open_clip_torch=={OPEN_CLIP_VERSION} is required; the installed tower differs: " + "; ".join(problems)
        )


def embed_frames(visual: nn.Module, frames: torch.Tensor) -> torch.Tensor:
    """(M, 3, H, W) -> (M, N, D): patch embedding, class token, positions, ln_pre."""
    return visual._embeds(frames)


def pool_frames(visual: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(M, N, D) -> (M, E): ln_post, class-token pooling, visual projection."""
    pooled, _ = visual._pool(x)  # (M, D)
    return pooled @ visual.proj if visual.proj is not None else pooled
