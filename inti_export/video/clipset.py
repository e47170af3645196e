"""Sets of clips `(K, T, 3, H, W)` from many videos, their on-disk cache, and ready clips from an .npz."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export.errors import CalibrationError, VideoError
from inti_export.fileio import atomic_output
from inti_export.video.decode import count_frames, load_video
from inti_export.video.discover import resolve_files
from inti_export.video.preprocess import Preprocess
from inti_export.vocab import INPUT_NAME

logger = logging.getLogger(__name__)


@dataclass
class ClipSet:
    """Clips `(K, T, 3, H, W)` float32, their names ("bikes.mp4#0"), and the files skipped with why."""

    clips: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def load_clips(
    directory_or_files: str | os.PathLike | Iterable[str | os.PathLike],
    pre: Preprocess,
    clips_per_video: int = 1,
    max_clips: int | None = None,
    progress: bool = False,
) -> ClipSet:
    """Clips from every video in order; unreadable or too-short videos are skipped with a warning (an error
    naming each when none loads)."""
    if clips_per_video < 1:
        raise VideoError(f"clips_per_video={clips_per_video} must be at least 1")
    if max_clips is not None and max_clips < 1:
        raise VideoError(f"max_clips={max_clips} must be at least 1 (or None for all)")
    files = resolve_files(directory_or_files)
    clips: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("decoding videos", total=len(files))
        bar.start()
    try:
        for path in files:
            if max_clips is not None and len(clips) >= max_clips:
                break
            want = clips_per_video if max_clips is None else min(clips_per_video, max_clips - len(clips))
            try:
                got = load_video(path, pre, range(want), clips_per_video)
            except VideoError as e:
                skipped.append((path.name, str(e)))
            else:
                clips.extend(got)
                names.extend(f"{path.name}#{c}" for c in range(want))
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()

    if not clips:
        detail = "; ".join(f"{name}: {reason}" for name, reason in skipped)
        raise VideoError(f"no clips could be loaded from {len(files)} video(s): {detail}")
    for name, reason in skipped:  # only beside clips that did load: otherwise the error above says it once
        logger.warning("skipping video %s: %s", name, reason)
    return ClipSet(np.stack(clips), names, skipped)  # (K, T, 3, H, W)


def default_cache_dir() -> Path:
    """`$INTI_EXPORT_CACHE/clips` when set, else `~/.cache/inti-export/clips`."""
    root = os.environ.get("INTI_EXPORT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "inti-export"
    return base / "clips"


def _cache_key(files: list[Path], pre: Preprocess, clips_per_video: int, max_clips: int | None) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            h.update(b"<unreadable>")  # load_clips will skip it and say why
        h.update(b"\0")
    h.update(f"{pre.key()}|cpv={clips_per_video}|max={max_clips}".encode())
    return h.hexdigest()


def load_clips_cached(
    directory_or_files: str | os.PathLike | Iterable[str | os.PathLike],
    pre: Preprocess,
    clips_per_video: int = 1,
    max_clips: int | None = None,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> ClipSet:
    """`load_clips`, stored as .npz keyed by the files' bytes and the settings."""
    files = resolve_files(directory_or_files)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_dir / f"{_cache_key(files, pre, clips_per_video, max_clips)}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                skipped = [(str(n), str(r)) for n, r in data["skipped"].reshape(-1, 2)]
                result = ClipSet(data["video"], [str(n) for n in data["names"]], skipped)
            logger.debug("clip cache hit: %s", cache_file)
            return result
        except (OSError, ValueError, KeyError) as e:
            logger.warning("ignoring unreadable clip cache %s: %s", cache_file, e)

    result = load_clips(files, pre, clips_per_video, max_clips, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(cache_file) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            video=result.clips,
            names=np.array(result.names, dtype=str),
            skipped=np.array(result.skipped, dtype=str).reshape(-1, 2),
        )
    logger.debug("clip cache stored: %s", cache_file)
    return result


def load_npz(path: str | os.PathLike, input_name: str = INPUT_NAME) -> np.ndarray:
    """Ready clips `(K, T, 3, H, W)` float32 from an .npz: key `input_name`, or its only array."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist; pass an .npz of clips")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CalibrationError(f"cannot read calibration file {path}: {e}; pass a valid .npz") from e
    if isinstance(data, np.ndarray):
        raise CalibrationError(f"{path} is a single .npy array, not an .npz; save it with np.savez")
    with data:
        keys = list(data.files)
        if input_name in keys:
            key = input_name
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise CalibrationError(
                f"{path} has arrays {keys} but no {input_name!r}; name the input array {input_name!r}"
            )
        try:
            array = data[key]
        except (OSError, ValueError, EOFError) as e:
            raise CalibrationError(f"cannot read array {key!r} from {path}: {e}; pass a valid .npz") from e

    if array.ndim != 5 or array.shape[2] != 3 or 0 in array.shape:
        raise CalibrationError(
            f"calibration array in {path} has shape {array.shape}; expected (K, T, 3, H, W) with no zero dims"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise CalibrationError(
            f"calibration array in {path} has dtype {array.dtype}; expected float32 preprocessed clips"
        )
    array = array.astype(np.float32, copy=False)  # (K, T, 3, H, W)
    if not np.isfinite(array).all():
        raise CalibrationError(f"calibration array in {path} (shape {array.shape}) holds NaN or inf values")
    return array


def clip_capacity(path: str | os.PathLike, pre: Preprocess) -> int:
    """How many non-overlapping clips of `pre.frames` frames `path` holds (from its frame count)."""
    return count_frames(Path(path)) // pre.frames
