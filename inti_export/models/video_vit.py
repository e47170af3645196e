"""The video model: a CLIP ViT run on frames as a batch, with InTI layers between blocks."""

from __future__ import annotations

import torch
import torch.nn as nn

from inti_export.errors import InputShapeError
from inti_export.models.config import ModelConfig
from inti_export.models.inti_layer import InTILayer
from inti_export.models.patch_open_clip import build_vision_tower, embed_frames, pool_frames


class InTIVideoModel(nn.Module):
    """video (B, T, 3, H, W) -> embedding (B, E), or logits (B, num_classes) with a head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = build_vision_tower(cfg.vision_cfg, cfg.embed_dim, cfg.quick_gelu)
        frames = cfg.frames_per_stage()
        self.inti = nn.ModuleDict(
            {
                str(idx): InTILayer(
                    cfg.width,
                    frames[k],
                    cfg.grid,
                    cfg.context_dim,
                    global_pool_ceil=cfg.global_pool_ceil,
                    temporal_pos_std=cfg.temporal_pos_std,
                )
                for k, idx in enumerate(cfg.insert_before)
            }
        )
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes else None

    @property
    def output_name(self) -> str:
        return "logits" if self.head is not None else "embedding"

    def check_input(self, video: torch.Tensor) -> None:
        """Raise InputShapeError naming the bad dimension."""
        c = self.cfg
        want = (c.frames, 3, c.image_size, c.image_size)
        if video.dim() != 5:
            raise InputShapeError(
                f"video has shape {tuple(video.shape)}; expected 5 dims (B, T, 3, H, W) = (B, {', '.join(map(str, want))})"
            )
        t, ch, hgt, wid = (int(s) for s in video.shape[1:])
        if t != c.frames:
            raise InputShapeError(
                f"video has {t} frames; preset {c.name} was built for {c.frames} (create_model(..., frames={t}) to change it)"
            )
        if ch != 3:
            raise InputShapeError(f"video has {ch} channels; expected 3 (RGB) in dim 2 of (B, T, 3, H, W)")
        if (hgt, wid) != (c.image_size, c.image_size):
            raise InputShapeError(
                f"video frames are {hgt}x{wid}; preset {c.name} takes {c.image_size}x{c.image_size}"
            )

    @property
    def stem_blocks(self) -> int:
        """Blocks before the first InTI layer: they see one frame at a time (docs/model.md, "Streams")."""
        c = self.cfg
        return c.insert_before[0] if c.insert_before else len(self.visual.transformer.resblocks)

    def forward_stem(self, frames: torch.Tensor) -> torch.Tensor:  # (F, 3, H, W) -> (F, N, D)
        """Each frame alone through the patch embedding and the blocks before the first InTI layer."""
        x = embed_frames(self.visual, frames)  # (F, N, D)
        for block in self.visual.transformer.resblocks[: self.stem_blocks]:
            x = block(x)  # (F, N, D): attention within a frame only
        return x

    def forward_head(self, stems: torch.Tensor) -> torch.Tensor:  # (B, T, N, D) -> (B, E) or (B, classes)
        """The rest of the model on a window of T stem outputs (`forward_stem`, one per frame, in order)."""
        c = self.cfg
        if stems.dim() != 4 or stems.shape[1] != c.frames:
            raise InputShapeError(f"stems have shape {tuple(stems.shape)}; expected (B, {c.frames}, N, D)")
        x = stems.reshape(-1, *stems.shape[2:])  # (B*T, N, D)
        blocks = self.visual.transformer.resblocks
        for i in range(self.stem_blocks, len(blocks)):
            key = str(i)
            if key in self.inti:
                x = self.inti[key](x)  # (B*T_in, N, D) -> (B*T_in/2, N, D)
            x = blocks[i](x)  # (B*T_stage, N, D)
        per_frame = pool_frames(self.visual, x)  # (B*T_out, E)
        emb = per_frame.reshape(-1, c.output_frames, per_frame.shape[-1]).mean(dim=1)  # (B, E)
        return self.head(emb) if self.head is not None else emb

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, T, 3, H, W) -> (B, E) or (B, classes)
        """The whole clip: `forward_stem` on every frame, then `forward_head` on the window."""
        self.check_input(video)
        c = self.cfg
        stems = self.forward_stem(video.reshape(-1, 3, c.image_size, c.image_size))  # (B*T, N, D)
        return self.forward_head(stems.reshape(video.shape[0], c.frames, *stems.shape[1:]))
