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


def count_flops(preset: str | ModelConfig, **overrides: Any) -> FlopReport:
    """GFLOPs (MACs) of one clip through preset `preset`, counted on meta tensors."""
    cfg = preset if isinstance(preset, ModelConfig) else get_config(preset, **overrides)
    model = create_model(cfg, device="meta")
    video = torch.empty(1, cfg.frames, 3, cfg.image_size, cfg.image_size, device="meta")
    counter = FlopCounterMode(display=False, depth=None)
    with compute_mode.counting_mode(), counter, torch.no_grad():
        model(video)
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
