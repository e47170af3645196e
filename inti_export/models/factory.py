"""`create_model`: the one entry point from a preset name to a ready model."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from inti_export.models.config import ModelConfig, get_config
from inti_export.models.video_vit import InTIVideoModel

logger = logging.getLogger(__name__)


def create_model(
    name: str | ModelConfig,
    *,
    checkpoint: str | Path | None = None,
    clip_checkpoint: str | Path | None = None,
    device: str | torch.device | None = None,
    **overrides: Any,
) -> InTIVideoModel:
    """Build preset `name` (fields replaced by `overrides`) with seeded random weights, in eval mode.

    `clip_checkpoint` loads open_clip weights into the backbone; `checkpoint` then loads a whole
    InTI model. Both are read safely (safetensors or `torch.load(weights_only=True)`).
    """
    cfg = name if isinstance(name, ModelConfig) else get_config(name, **overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        if device is not None:
            with torch.device(device):
                model = InTIVideoModel(cfg)
        else:
            model = InTIVideoModel(cfg)
    if clip_checkpoint is not None or checkpoint is not None:
        from inti_export.models.checkpoint import load_clip_checkpoint, load_inti_checkpoint

        if clip_checkpoint is not None:
            load_clip_checkpoint(model, clip_checkpoint)
        if checkpoint is not None:
            load_inti_checkpoint(model, checkpoint)
    return model.eval()
