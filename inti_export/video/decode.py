"""Decode videos with PyAV: open (files, URLs, lavfi graphs), count frames, sample and load clips.

A clip is float32 `(T, 3, H, W)`, frames sampled at segment centres (`sample_indices`) and preprocessed
by `Preprocess` (open_clip's eval transform), the same path for parity, calibration, embed and eval.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inti_export.errors import VideoError, one_line
from inti_export.video.preprocess import Preprocess

logger = logging.getLogger(__name__)


def sample_indices(num_frames: int, frames: int, clip_index: int = 0, num_clips: int = 1) -> list[int]:
    """Frame indices of one clip: `num_clips` equal segments, `frames` points at sub-segment centres."""
    if num_clips < 1 or not 0 <= clip_index < num_clips:
        raise VideoError(f"clip_index={clip_index} is outside 0..{num_clips - 1}; pick a clip that exists")
    if num_frames < frames * num_clips:
        raise VideoError(
            f"video has {num_frames} frames, fewer than frames={frames} x num_clips={num_clips}; "
            "use fewer frames or clips"
        )
    seg_len = num_frames / num_clips
    start = clip_index * seg_len
    return [min(num_frames - 1, math.floor(start + (i + 0.5) * seg_len / frames)) for i in range(frames)]


def open_video(url: str | os.PathLike, *, fmt: str | None = None, timeout_s: float | None = None, label: str | None = None):
    """The opened PyAV container with its first video stream checked; a one-line VideoError otherwise.

    `fmt` forces a demuxer (`"lavfi"` for filter graphs); `timeout_s` bounds opening and each read of a
    network source; `label` is how errors name the source (default: `url`).
    """
    import av

    label = label or f"video {url}"
    kwargs = {} if fmt is None else {"format": fmt}
    if timeout_s is not None:
        kwargs["timeout"] = (timeout_s, timeout_s)  # (open, read), seconds
    try:
        container = av.open(str(url), **kwargs)
    except av.ExitError as e:
        raise VideoError(f"cannot open {label}: no answer within {timeout_s:g} s; check the address and the sender") from e
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open {label}: {one_line(e)}; check the path or address") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{label} has no video stream; pass a source with video")
    return container


def count_frames(path: Path) -> int:
    """Frames in the first video stream: container metadata, else one decoding pass."""
    import av

    with open_video(path) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        stream.thread_type = "AUTO"
        try:
            return sum(1 for _ in container.decode(stream))
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode video {path}: {e}; the file may be corrupt") from e


def decode_frames(path: Path, wanted: set[int]) -> tuple[dict, int]:
    """PIL images of the wanted frame indices, and how many frames were decoded before stopping."""
    import av

    images = {}
    count = 0
    last = max(wanted)
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if count in wanted:
                    images[count] = frame.to_image()  # RGB PIL, only for sampled frames
                count += 1
                if count > last:
                    break
        except av.FFmpegError as e:
            raise VideoError(
                f"cannot decode video {path} at frame {count}: {e}; the file may be corrupt"
            ) from e
    return images, count


def load_video(path: Path, pre: Preprocess, clip_indices: Sequence[int], num_clips: int) -> list[np.ndarray]:
    """Decode a video once and return the requested clips, each `(T, 3, H, W)` float32."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file {path} does not exist; check the path")
    num_frames = count_frames(path)
    per_clip = [sample_indices(num_frames, pre.frames, c, num_clips) for c in clip_indices]
    wanted = {i for idx in per_clip for i in idx}
    images, decoded = decode_frames(path, wanted)
    if len(images) < len(wanted):  # metadata over-counted or the file is truncated: sample what decodes
        logger.warning(
            "video %s: metadata says %d frames but only %d decode (truncated?); sampling those",
            path.name, num_frames, decoded,
        )
        num_frames = decoded
        per_clip = [sample_indices(num_frames, pre.frames, c, num_clips) for c in clip_indices]
        wanted = {i for idx in per_clip for i in idx}
        images, _ = decode_frames(path, wanted)
        if len(images) < len(wanted):
            raise VideoError(f"{path} decoded inconsistently ({decoded} frames); the file may be corrupt")
    transform = pre.transform()
    tensors = {i: transform(img).numpy() for i, img in images.items()}  # each (3, H, W)
    return [np.stack([tensors[i] for i in idx]).astype(np.float32, copy=False) for idx in per_clip]


def load_clip(
    path: str | os.PathLike, pre: Preprocess, clip_index: int = 0, num_clips: int = 1
) -> np.ndarray:
    """One clip `(T, 3, H, W)` float32 from segment `clip_index` of `num_clips` equal segments."""
    if not 0 <= clip_index < num_clips:
        raise VideoError(f"clip_index={clip_index} is outside 0..{num_clips - 1}; pick a clip that exists")
    return load_video(Path(path), pre, [clip_index], num_clips)[0]
