"""Camera pan: a textured scene with a shape is still, or pans horizontally, vertically or diagonally.

Every frame on its own is a sharp view of a random wrapping scene, so a single frame cannot tell
the class: only how the frames differ can. The pan goes either way along its axis, so the class
does not depend on the order of frames (docs/task.md explains the choice). Videos are encoded as
real H.264 mp4 with PyAV, so evaluation runs the same decode path as parity
(`inti_export.video`). Everything derives from a seed.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inti_export.errors import VideoError
from inti_export.fileio import atomic_output, check_output_dir, check_output_path
from inti_export.video import labels as video_labels

# The camera pans over a wrapping scene: still, horizontally, vertically or diagonally (either way).
CLASSES = ("still", "horizontal", "vertical", "diagonal")
PANS = np.array([(0, 0), (0, 1), (1, 0), (1, 1)], dtype=np.float64)  # (dy, dx) unit step per class
SPLIT_SEEDS = {"train": 1000, "val": 2000, "test": 3000}  # per-split seeds; video i uses (seed, i)
LABELS_FILE = "labels.csv"
MAX_VIDEOS = 100_000  # per split: about 0.5 GB at the default spec; more is a typo, not a task
VIDEO_BYTES = 16 * 1024  # an upper bound of one default-spec mp4 (about 5 KB), for the free-space check


@dataclass(frozen=True)
class MotionSpec:
    """The task's fixed settings: frame count and size of each video, speed and shape size in pixels."""

    frames: int = 16
    size: int = 32
    speed: int = 3  # pixels per video frame along each panned axis
    shape: int = 11  # side of the square / diameter of the disc in the scene
    fps: int = 8


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random colour texture (H, W, 3) in [0, 255]: upsampled 8x8 noise plus pixel noise."""
    coarse = rng.uniform(40, 200, size=(8, 8, 3))
    idx = np.linspace(0, 7, size)
    lo = np.floor(idx).astype(int).clip(0, 6)
    frac = (idx - lo)[:, None]
    rows = coarse[lo] * (1 - frac[:, :, None]) + coarse[lo + 1] * frac[:, :, None]  # (size, 4, 3)
    smooth = rows[:, lo] * (1 - frac[None, :, :]) + rows[:, lo + 1] * frac[None, :, :]  # (size, size, 3)
    return np.clip(smooth + rng.normal(0, 18, size=(size, size, 3)), 0, 255)


def render(label: int, rng: np.random.Generator, spec: MotionSpec = MotionSpec()) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of one video of class `label`."""
    s = spec.size
    scene = _texture(rng, s)
    colour = rng.uniform(0, 255, size=3)
    colour[rng.integers(3)] = rng.choice([0.0, 255.0])  # one saturated channel: contrast with the texture
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    cx, cy = rng.uniform(0, s, size=2)
    ddx, ddy = (xx - cx + s / 2) % s - s / 2, (yy - cy + s / 2) % s - s / 2  # wrapped offsets
    half = spec.shape / 2
    disc = bool(rng.integers(2))
    mask = (ddx**2 + ddy**2 <= half**2) if disc else (np.abs(ddx) <= half) & (np.abs(ddy) <= half)
    scene = np.where(mask[:, :, None], colour, scene)  # (H, W, 3) the whole scene, wrapping at the edges
    step = PANS[label] * spec.speed * rng.choice([-1, 1], size=2)  # (dy, dx) pixels per frame, either way
    frames = [np.roll(scene, np.round(step * t).astype(int), axis=(0, 1)) for t in range(spec.frames)]
    return np.stack(frames).astype(np.uint8)  # (T, H, W, 3)


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = 8) -> None:
    """Encode frames (T, H, W, 3) uint8 as H.264 mp4 (yuv420p, near-lossless crf) with PyAV."""
    import av

    with atomic_output(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "medium", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_split(
    directory: str | os.PathLike, split: str, count: int, spec: MotionSpec = MotionSpec()
) -> Path:
    """Write `count` videos of `split` ("train", "val", "test") and `labels.csv` into `directory`.

    Classes are balanced (video i has class i mod len(CLASSES)); video i of a split is rendered from the seed
    (SPLIT_SEEDS[split], i), so the same call always writes the same frames. Returns the labels file.
    """
    if split not in SPLIT_SEEDS:
        raise VideoError(f"unknown split {split!r}; use one of {sorted(SPLIT_SEEDS)}")
    if not 1 <= count <= MAX_VIDEOS:
        raise VideoError(f"count={count}: a split has 1 to {MAX_VIDEOS} videos")
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise VideoError(f"{directory} is a file; give a directory to write the videos into")
    if not directory.is_dir():
        raise VideoError(f"{directory} is not an existing directory; create it first")
    check_output_dir(directory, "task folder", error=VideoError)  # writable, before any video
    labels = check_output_path(directory / LABELS_FILE, "labels")
    free = shutil.disk_usage(directory).free
    if count * VIDEO_BYTES > free:
        raise VideoError(f"count={count} needs up to {count * VIDEO_BYTES / 2**20:.0f} MiB; {directory} has"
                         f" {free / 2**20:.0f} MiB free: lower --count or free space")
    rows = []
    for i in range(count):
        label = i % len(CLASSES)
        rng = np.random.default_rng([SPLIT_SEEDS[split], i])
        name = f"{split}_{i:05d}.mp4"
        write_mp4(directory / name, render(label, rng, spec), spec.fps)
        rows.append((name, label))
    with atomic_output(labels) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["video", "label"])
        writer.writerows(rows)
    return labels


def read_labels(path: str | os.PathLike) -> dict[str, int]:
    """`video_labels.read_labels` with this task's class names allowed as labels."""
    return video_labels.read_labels(path, CLASSES)
