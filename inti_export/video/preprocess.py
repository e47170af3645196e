"""How a video frame becomes model input: open_clip's eval transform, from a config or an ONNX's metadata.

The one place that turns `inti.*` metadata into a `Preprocess` (docs/architecture.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inti_export.errors import CalibrationError, one_line
from inti_export.vocab import META_FRAMES, META_IMAGE_SIZE, META_MEAN, META_STD

INTERPOLATIONS = ("bicubic", "bilinear")
CACHE_VERSION = 1  # bump when sampling or preprocessing changes, so old cache files miss


@dataclass(frozen=True)
class Preprocess:
    """How a video becomes a clip: T frames, square crop, CLIP normalisation."""

    frames: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if int(self.frames) != self.frames or self.frames < 1:
            raise CalibrationError(f"Preprocess.frames={self.frames!r} must be a positive integer")
        if int(self.image_size) != self.image_size or self.image_size < 1:
            raise CalibrationError(f"Preprocess.image_size={self.image_size!r} must be a positive integer")
        if len(mean) != 3 or len(std) != 3:
            raise CalibrationError(f"Preprocess mean={mean} and std={std} must have 3 values each (RGB)")
        if any(s <= 0 for s in std):
            raise CalibrationError(f"Preprocess std={std} must be positive")
        if self.interpolation not in INTERPOLATIONS:
            raise CalibrationError(
                f"Preprocess.interpolation={self.interpolation!r} is unknown; use one of {INTERPOLATIONS}"
            )

    def key(self) -> str:
        """A stable string naming these settings, for cache keys."""
        mean = ",".join(repr(m) for m in self.mean)
        std = ",".join(repr(s) for s in self.std)
        return f"v{CACHE_VERSION}-t{self.frames}-s{self.image_size}-{self.interpolation}-m{mean}-d{std}"

    def transform(self):
        """open_clip's eval transform: resize shortest side, centre crop, to tensor, normalise."""
        from open_clip.transform import image_transform

        return image_transform(
            self.image_size, is_train=False, mean=self.mean, std=self.std, interpolation=self.interpolation
        )


def preprocess_for(cfg) -> Preprocess:
    """The preprocessing a model config expects (its frames, image size and normalisation)."""
    return Preprocess(frames=cfg.frames, image_size=cfg.image_size, mean=tuple(cfg.mean), std=tuple(cfg.std))


def preprocess_from_metadata(
    meta: dict[str, Any], source: str | os.PathLike, hint: str = "use an ONNX written by `inti-export onnx`"
) -> Preprocess:
    """The `Preprocess` that decoded `inti.*` metadata describes; a one-line error naming `source` (and
    what to do: `hint`) when keys lack."""
    missing = [k for k in (META_FRAMES, META_IMAGE_SIZE, META_MEAN, META_STD) if k not in meta]
    if missing:
        raise CalibrationError(f"{source} lacks metadata {', '.join(missing)}; {hint}")
    return Preprocess(
        frames=int(meta[META_FRAMES]),
        image_size=int(meta[META_IMAGE_SIZE]),
        mean=tuple(meta[META_MEAN]),
        std=tuple(meta[META_STD]),
    )


def model_preprocess(onnx_path: str | os.PathLike) -> Preprocess:
    """The `Preprocess` an exported model expects, from its `inti.*` metadata."""
    from inti_export.vocab import read_metadata

    path = Path(onnx_path)
    if not path.is_file():
        raise CalibrationError(f"model {path} does not exist; pass an ONNX file written by `inti-export onnx`")
    try:
        meta = read_metadata(path)
    except Exception as e:  # protobuf raises DecodeError, onnx raises its own
        raise CalibrationError(f"cannot read ONNX model {path}: {one_line(e)}") from e
    return preprocess_from_metadata(meta, onnx_path)
