"""Presets as data: one JSON per preset in `presets/`, validated into a `ModelConfig`."""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from inti_export.errors import PresetError

# open_clip's OpenAI CLIP normalisation (open_clip.constants), repeated here so that reading a
# preset does not import torch.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelConfig:
    """Everything `create_model` needs; every choice the paper leaves open is a field here (docs/model.md)."""

    name: str
    vision_cfg: dict[str, Any]  # open_clip CLIPVisionCfg fields
    embed_dim: int  # visual projection width E
    frames: int = 16
    insert_before: tuple[int, ...] = ()  # 0-based resblock indices an InTI layer precedes
    context_dim: int | None = None  # D' of the context network; None means D' = D (docs/model.md)
    num_classes: int = 0  # 0: output the pooled embedding; >0: a linear classifier head
    quick_gelu: bool = False  # OpenAI's original CLIP weights use QuickGELU
    global_pool_ceil: bool = True  # global context MaxPool1d(2, ceil_mode) so T_in = 2 still works
    temporal_pos_std: float = 0.02  # init std of the temporal position embedding P
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    backbone: str | None = None  # open_clip model name the vision_cfg came from
    description: str = ""
    seed: int = 0  # random initialisation seed used by create_model

    @property
    def width(self) -> int:
        return int(self.vision_cfg.get("width", 768))

    @property
    def layers(self) -> int:
        return int(self.vision_cfg.get("layers", 12))

    @property
    def image_size(self) -> int:
        return int(self.vision_cfg.get("image_size", 224))

    @property
    def patch_size(self) -> int:
        return int(self.vision_cfg.get("patch_size", 16))

    @property
    def grid(self) -> int:
        return self.image_size // self.patch_size

    @property
    def num_tokens(self) -> int:
        return 1 + self.grid * self.grid

    def frames_per_stage(self) -> list[int]:
        """Frame count seen by each stage: before the first InTI layer, after each one."""
        counts = [self.frames]
        for _ in self.insert_before:
            counts.append(counts[-1] // 2)
        return counts

    @property
    def output_frames(self) -> int:
        return self.frames_per_stage()[-1]

    def validate(self) -> ModelConfig:
        """Raise PresetError naming the bad field; return self."""
        if self.frames < 1:
            raise PresetError(f"frames={self.frames}: must be a positive integer")
        ins = self.insert_before
        if list(ins) != sorted(set(ins)):
            raise PresetError(f"insert_before={list(ins)}: must be strictly increasing block indices")
        for i in ins:
            if not 0 <= i < self.layers:
                raise PresetError(
                    f"insert_before={list(ins)}: index {i} is outside the {self.layers} blocks of {self.name}"
                )
        t = self.frames
        for i in ins:
            if t % 2:
                need = 2 ** len(ins)
                raise PresetError(
                    f"frames={self.frames}: the InTI layer before block {i} would get {t} frames, "
                    f"which it cannot halve; use a multiple of {need}"
                )
            t //= 2
        if self.image_size % self.patch_size:
            raise PresetError(
                f"image_size={self.image_size} is not a multiple of patch_size={self.patch_size}"
            )
        if self.context_dim is not None and self.context_dim < 1:
            raise PresetError(f"context_dim={self.context_dim}: must be positive or null")
        if self.num_classes < 0:
            raise PresetError(f"num_classes={self.num_classes}: must be >= 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["insert_before"] = list(self.insert_before)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}


def _backbone_cfg(name: str) -> tuple[dict[str, Any], int, bool]:
    """(vision_cfg, embed_dim, quick_gelu) of an open_clip architecture, from its model_configs JSON."""
    import open_clip

    cfg = open_clip.get_model_config(name)
    if cfg is None:
        raise PresetError(f"backbone {name!r} is not an open_clip model config; see open_clip.list_models()")
    return dict(cfg["vision_cfg"]), int(cfg["embed_dim"]), bool(cfg.get("quick_gelu", False))


@functools.cache
def _preset_files() -> dict[str, dict[str, Any]]:
    out = {}
    for entry in resources.files("inti_export.models").joinpath("presets").iterdir():
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            out[data["name"]] = data
    return dict(sorted(out.items()))


def list_presets() -> list[str]:
    """Names of the registered presets."""
    return list(_preset_files())


def get_config(name: str, **overrides: Any) -> ModelConfig:
    """The validated config of preset `name`, with fields replaced by `overrides`."""
    presets = _preset_files()
    if name not in presets:
        raise PresetError(f"unknown preset {name!r}; known presets: {', '.join(presets)}")
    data = dict(presets[name])
    bad = sorted(set(overrides) - _FIELDS)
    if bad:
        raise PresetError(f"unknown model option(s) {bad}; valid options: {sorted(_FIELDS)}")
    backbone = data.get("backbone")
    if "vision_cfg" not in data:
        vision_cfg, embed_dim, quick_gelu = _backbone_cfg(backbone)
        data.setdefault("vision_cfg", vision_cfg)
        data.setdefault("embed_dim", embed_dim)
        data.setdefault("quick_gelu", quick_gelu)
    data.update(overrides)
    return config_from_dict(data)


def config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Rebuild a config saved with `ModelConfig.to_dict` (e.g. from ONNX metadata)."""
    data = {k: v for k, v in data.items() if k in _FIELDS}
    data["insert_before"] = tuple(data.get("insert_before", ()))
    for key in ("mean", "std"):
        if key in data:
            data[key] = tuple(data[key])
    return ModelConfig(**data).validate()


__all__ = ["CLIP_MEAN", "CLIP_STD", "ModelConfig", "config_from_dict", "get_config", "list_presets"]
