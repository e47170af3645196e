"""FLOP accounting per clip, multiply-adds counted once (fvcore's and the paper's convention).

The model is built on the meta device and traced under `torch.utils.flop_counter.FlopCounterMode`
in counting mode (attention as plain matmuls, which the counter sees; the MHA fast path and fused
SDPA kernels would hide them), so ViT-L on 16 frames takes seconds and no real memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from inti_export.models import compute_mode
from inti_export.models.config import ModelConfig, get_config
from inti_export.models.factory import create_model


@dataclass
class FlopReport:
    preset: str
    frames: int
    image_size: int
    insert_before: list[int]
    frames_per_stage: list[int]
    gflops: float  # multiply-adds counted once, per clip
    inti_gflops: float  # the InTI layers' own share
    params: int
    params_inti: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _counted(fn, x: torch.Tensor) -> FlopCounterMode:
    """The counter after `fn(x)` ran in counting mode (x on the meta device)."""
    counter = FlopCounterMode(display=False, depth=None)
    with compute_mode.counting_mode(), counter, torch.no_grad():
        fn(x)
    return counter


def count_flops(preset: str | ModelConfig, **overrides: Any) -> FlopReport:
    """GFLOPs (MACs) of one clip through preset `preset`, counted on meta tensors."""
    cfg = preset if isinstance(preset, ModelConfig) else get_config(preset, **overrides)
    model = create_model(cfg, device="meta")
    video = torch.empty(1, cfg.frames, 3, cfg.image_size, cfg.image_size, device="meta")
    counter = _counted(model, video)
    by_module = counter.get_flop_counts()
    total = counter.get_total_flops() / 2  # FlopCounterMode counts 2 per multiply-add
    inti = sum(
        sum(ops.values()) for name, ops in by_module.items() if name.count(".") == 2 and ".inti." in name
    ) / 2
    params = sum(p.numel() for p in model.parameters())
    params_inti = sum(p.numel() for p in model.inti.parameters())
    return FlopReport(
        preset=cfg.name,
        frames=cfg.frames,
        image_size=cfg.image_size,
        insert_before=list(cfg.insert_before),
        frames_per_stage=cfg.frames_per_stage(),
        gflops=total / 1e9,
        inti_gflops=inti / 1e9,
        params=params,
        params_inti=params_inti,
    )


def count_split_flops(preset: str | ModelConfig) -> dict[str, float]:
    """GFLOPs (MACs) of one frame's stem, one window's head and one whole clip (docs/stream.md, "The split")."""
    cfg = preset if isinstance(preset, ModelConfig) else get_config(preset)
    model = create_model(cfg, device="meta")
    c = model.cfg
    tokens = 1 + c.grid**2

    def gflops(fn, *shape: int) -> float:
        return _counted(fn, torch.empty(*shape, device="meta")).get_total_flops() / 2 / 1e9

    return {"stem": gflops(model.forward_stem, 1, 3, c.image_size, c.image_size),
            "head": gflops(model.forward_head, 1, c.frames, tokens, c.width),
            "full": gflops(model, 1, c.frames, 3, c.image_size, c.image_size)}
