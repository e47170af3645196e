"""Loading weights from local files, safely: a checkpoint is data, not code."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from inti_export.errors import CheckpointError, one_line

logger = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a checkpoint load matched, missed and ignored."""

    path: str
    loaded: int
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.path}: loaded {self.loaded} tensors, {len(self.missing)} missing, "
            f"{len(self.unexpected)} unexpected"
        )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file or a weights-only torch checkpoint (nested 'state_dict' unwrapped)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(str(path), device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # weights_only refused a global: the pickle would run code to load (PyTorch's own advice to
        # re-run with weights_only=False is exactly what must not be done with an untrusted file)
        raise CheckpointError(
            f"checkpoint {str(path)!r} contains code (pickled objects beyond tensors) and is refused: save its"
            " state dict with torch.save(model.state_dict(), path) or as .safetensors"
        ) from e
    except Exception as e:
        first = one_line(e, 200)
        raise CheckpointError(
            f"cannot read checkpoint {str(path)!r} as weights ({first}); it must be a state dict saved with "
            "torch.save or safetensors (code-bearing pickles and TorchScript archives are refused)"
        ) from e
    for key in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise CheckpointError(f"checkpoint {str(path)!r} is not a dict of tensors (a state dict)")
    return {k.removeprefix("module."): v for k, v in sd.items()}


def load_into(module: nn.Module, sd: dict[str, torch.Tensor], path: str | Path) -> LoadReport:
    """Copy matching tensors into `module`; raise on a shape mismatch or when nothing matches."""
    own = module.state_dict()
    matched = [k for k in sd if k in own]
    if not matched:
        raise CheckpointError(
            f"checkpoint {str(path)!r} shares no tensor names with {type(module).__name__} "
            f"(checkpoint keys start {sorted(sd)[:3]}, model keys start {sorted(own)[:3]})"
        )
    for k in matched:
        if tuple(sd[k].shape) != tuple(own[k].shape):
            raise CheckpointError(
                f"checkpoint {str(path)!r} does not fit: {k} has shape {tuple(sd[k].shape)}, "
                f"the model expects {tuple(own[k].shape)} (wrong preset, frames or context_dim?)"
            )
    result = module.load_state_dict({k: sd[k] for k in matched}, strict=False)
    report = LoadReport(str(path), len(matched), sorted(result.missing_keys), sorted(set(sd) - set(own)))
    logger.info(report.summary())
    for k in report.missing:
        logger.debug("missing: %s", k)
    for k in report.unexpected:
        logger.debug("unexpected: %s", k)
    return report


def load_inti_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """A whole InTI model state dict (as saved by `torch.save(model.state_dict(), path)`)."""
    return load_into(model, read_state_dict(path), path)


def load_clip_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """open_clip CLIP weights: the `visual.*` tensors go into the backbone, the rest is ignored."""
    sd = read_state_dict(path)
    visual = {k.removeprefix("visual."): v for k, v in sd.items() if k.startswith("visual.")}
    if not visual:  # a bare vision-tower state dict
        visual = sd
    report = load_into(model.visual, visual, path)
    report.unexpected = sorted(set(report.unexpected) | {k for k in sd if not k.startswith("visual.")} - set(visual))
    return report
