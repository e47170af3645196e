"""Library functions behind the CLI commands that chain several steps."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from inti_export.exporter import ExportResult, ExportSpec, export_onnx
from inti_export.models import create_model
from inti_export.models.config import ModelConfig

logger = logging.getLogger(__name__)


def export_preset(
    output: Path,
    *,
    preset: str,
    checkpoint: Path | None = None,
    clip_checkpoint: Path | None = None,
    num_classes: int = 0,
    opset: int = 20,
    dynamic_batch: bool = True,
    inti_op: str = "function",
    verify: bool = True,
    videos: Path | None = None,
    on_step=None,
) -> ExportResult:
    """Build `preset` with its weights and export it to `output`, verified on real clips."""
    overrides = {"num_classes": num_classes} if num_classes else {}
    if on_step:
        on_step(f"building {preset}")
    model = create_model(preset, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, **overrides)
    clips, names = clips_for(model.cfg, videos, count=2) if verify else (None, None)
    spec = ExportSpec(opset=opset, dynamic_batch=dynamic_batch, inti_op=inti_op)
    return export_onnx(model, output, spec, verify=verify, clips=clips, clip_names=names, on_step=on_step)


def model_for(
    preset: str | None,
    onnx_path: Path | None = None,
    checkpoint: Path | None = None,
    clip_checkpoint: Path | None = None,
    num_classes: int | None = None,
):
    """The PyTorch model to compare with: `preset`, or the config stored in the ONNX's metadata."""
    from inti_export.errors import PresetError
    from inti_export.vocab import read_metadata
    from inti_export.models.config import config_from_dict

    overrides = {} if num_classes is None else {"num_classes": num_classes}
    if preset is not None:
        return create_model(preset, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, **overrides)
    meta = read_metadata(onnx_path) if onnx_path is not None else {}
    if "inti.config" not in meta:
        raise PresetError("no --preset given and the ONNX has no inti.config metadata: pass --preset NAME")
    cfg = config_from_dict({**meta["inti.config"], **overrides})
    return create_model(cfg, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint)


def clips_for(cfg: ModelConfig, videos: Path | None = None, random: int | None = None, count: int = 4, seed: int = 0):
    """(clips (K, T, 3, H, W), names): `random` seeded random clips, else real clips from `videos`."""
    from inti_export.calibration.clips import load_clips_cached, preprocess_for, shipped_videos_dir

    if random:
        g = np.random.default_rng(seed)
        shape = (random, cfg.frames, 3, cfg.image_size, cfg.image_size)
        return g.standard_normal(shape, dtype=np.float32), [f"random#{i}" for i in range(random)]
    clip_set = load_clips_cached(videos or shipped_videos_dir(), preprocess_for(cfg), max_clips=count)
    return clip_set.clips, clip_set.names
