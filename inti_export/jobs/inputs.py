"""Input resolvers shared by the commands: which model, which clips, which ONNX metadata.

Each turns what a user typed (a preset name, a folder of videos, an ONNX path) into what the
library functions take, and refuses bad input with one line before any heavy work.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError, PresetError, one_line
from inti_export.models.config import ModelConfig
from inti_export.vocab import META_CONFIG, META_VERSION, decode_metadata, read_metadata

logger = logging.getLogger(__name__)


def onnx_metadata(onnx_path: str | Path, *, allow_foreign: bool = False, what: str = "ONNX") -> dict[str, Any]:
    """The `inti.*` metadata of `onnx_path`; one line if it is missing, not ONNX, or not ours.

    An ONNX without `inti.version` was not written by inti-export: refused unless `allow_foreign`
    (the same rule as `trt` and `calibrate`).
    """
    path = Path(onnx_path)
    if path.is_dir():
        raise IntiExportError(f"{what} {path} is a directory: give the ONNX file")
    if not path.is_file():
        raise IntiExportError(f"{what} file not found: {path}")
    try:
        meta = read_metadata(path)
    except Exception as e:
        raise IntiExportError(
            f"{path} is not a readable ONNX file ({one_line(e, 160)}): export it with `inti-export onnx`"
        ) from e
    if META_VERSION not in meta and not allow_foreign:
        raise IntiExportError(
            f"{path} has no {META_VERSION} metadata, so inti-export did not write it: export it with"
            " `inti-export onnx`, or pass --allow-foreign"
        )
    return meta


def artifact_metadata(onnx_path: Path | None, engine_path: Path | None, *, allow_foreign: bool = False) -> dict[str, Any]:
    """The `inti.*` metadata of the ONNX (a stream pair folder: its head's, the pair checked), else of the ONNX
    the engine was built from (its manifest, checked)."""
    if onnx_path is not None and Path(onnx_path).is_dir():
        from inti_export.runtime.stream import load_stream_artifact

        return load_stream_artifact(onnx_path).meta
    if onnx_path is not None:
        return onnx_metadata(onnx_path, allow_foreign=allow_foreign, what="--onnx")
    from inti_export.runtime.trt import verify_engine_artifact

    return decode_metadata(verify_engine_artifact(engine_path).onnx_metadata)


def check_inputs_exist(**paths: Path | None) -> None:
    """One line naming the option whose file or folder does not exist (`clip_checkpoint` -> --clip-checkpoint)."""
    for name, path in paths.items():
        if path is not None and not Path(path).exists():
            raise IntiExportError(f"--{name.replace('_', '-')} {path} does not exist")


def check_input_files(**paths: Path | None) -> None:
    """`check_inputs_exist` for options that take a file: a folder given instead is named as one."""
    check_inputs_exist(**paths)
    for name, path in paths.items():
        if path is not None and Path(path).is_dir():
            raise IntiExportError(f"--{name.replace('_', '-')} {path} is a directory: give a file")


def check_weights(onnx_path: Path, make_model: Callable[[], Any], checkpoint: Path | None, what: str = "--onnx") -> None:
    """One line if the ONNX's manifest (`<onnx>.json`, written by `inti-export onnx`) records other weights
    than the model `make_model()` returns: comparing them would only report a divergence. Without a manifest
    that matches the file (its onnx_sha256), nothing is known, nothing is refused and no model is made."""
    import json

    from inti_export.exporter.onnx_export import sha256_state_dict
    from inti_export.fileio import sha256_file

    manifest = Path(onnx_path).with_name(Path(onnx_path).name + ".json")
    try:
        data = json.loads(manifest.read_text())
        recorded, onnx_sha = data["weights_sha256"], data["onnx_sha256"]
    except (OSError, ValueError, TypeError, KeyError):
        return
    if not isinstance(recorded, str) or onnx_sha != sha256_file(onnx_path) or recorded == sha256_state_dict(make_model()):
        return
    given = f"--checkpoint {checkpoint} is not the one it was exported with" if checkpoint is not None else (
        "no --checkpoint was given")
    raise IntiExportError(
        f"{what} {onnx_path} was exported from other weights (its manifest {manifest.name} records weights"
        f" sha256 {recorded[:12]}...; {given}): pass --checkpoint (and --clip-checkpoint) with the weights it was"
        " exported from"
    )


def model_for(
    preset: str | None,
    onnx_path: Path | None = None,
    checkpoint: Path | None = None,
    clip_checkpoint: Path | None = None,
    num_classes: int | None = None,
    meta: dict[str, Any] | None = None,
):
    """The PyTorch model to compare with: `preset`, or the config stored in the ONNX's metadata."""
    from inti_export.models import create_model
    from inti_export.models.config import config_from_dict

    overrides = {} if num_classes is None else {"num_classes": num_classes}
    if preset is not None:
        return create_model(preset, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint, **overrides)
    if meta is None:
        meta = onnx_metadata(onnx_path) if onnx_path is not None else {}
    if META_CONFIG not in meta:
        raise PresetError(f"no --preset given and the ONNX has no {META_CONFIG} metadata: pass --preset NAME")
    cfg = config_from_dict({**meta[META_CONFIG], **overrides})
    return create_model(cfg, checkpoint=checkpoint, clip_checkpoint=clip_checkpoint)


def config_for(preset: str | None, meta: dict[str, Any] | None = None) -> ModelConfig:
    """The config `model_for(preset, meta=meta)` builds, without building the model (for early checks)."""
    from inti_export.models.config import config_from_dict, get_config

    if preset is not None:
        return get_config(preset)
    if not meta or META_CONFIG not in meta:
        raise PresetError(f"no --preset given and the ONNX has no {META_CONFIG} metadata: pass --preset NAME")
    return config_from_dict(meta[META_CONFIG])


def clips_for(
    cfg: ModelConfig, videos: Path | None = None, random_count: int | None = None, count: int = 4, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """(clips (K, T, 3, H, W), names): `random_count` seeded random clips, else real clips from `videos`."""
    from inti_export.video.clipset import load_clips_cached
    from inti_export.video.discover import shipped_videos_dir
    from inti_export.video.preprocess import preprocess_for

    if random_count:
        g = np.random.default_rng(seed)
        shape = (random_count, cfg.frames, 3, cfg.image_size, cfg.image_size)
        return g.standard_normal(shape, dtype=np.float32), [f"random#{i}" for i in range(random_count)]
    clip_set = load_clips_cached(videos or shipped_videos_dir(), preprocess_for(cfg), max_clips=count)
    return clip_set.clips, clip_set.names


def verification_clips(preset: str, videos: Path | None, count: int = 2) -> tuple[np.ndarray, list[str]]:
    """Real clips at `preset`'s frames and size for verifying an export."""
    from inti_export.models.config import get_config

    return clips_for(get_config(preset), videos, count=count)
