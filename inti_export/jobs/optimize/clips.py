"""The held-out and calibration clips of an optimize search: split so that they never share a video.

Accuracy is measured on the held-out clips only, INT8/FP8 calibrated on the others (docs/optimize.md, "Clips").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.errors import IntiExportError
from inti_export.jobs.optimize.cache import array_sha256


@dataclass
class ClipSplit:
    heldout: np.ndarray  # (K, T, 3, H, W)
    heldout_names: list[str]
    calibration: np.ndarray
    calibration_names: list[str]
    rule: str
    source: str
    labels: np.ndarray | None = None  # (K,) class of each held-out clip, with --labels
    labels_path: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "rule": self.rule, "heldout": self.heldout_names,
                "calibration": self.calibration_names,
                "heldout_sha256": array_sha256(self.heldout), "calibration_sha256": array_sha256(self.calibration),
                "labels": self.labels_path,
                "labels_sha256": None if self.labels is None else array_sha256(self.labels)}


def split_clips(cfg, videos: Path | None, heldout: int, calibration: int, labels: Path | None = None) -> ClipSplit:
    """Held-out and calibration clips that never share a video (or, from one video, a segment).

    Two or more videos: sorted by name, the first ceil(n/2) give the calibration clips, the rest the
    held-out ones. One video: even segments calibrate, odd segments are held out. With `labels`, the
    held-out clips are the labelled videos beside the CSV (one clip each, `heldout` unused) and every
    video of `videos` calibrates (`check_optimize_options` refused a labelled one among them).
    """
    from inti_export.video.clipset import load_clips_cached
    from inti_export.video.discover import find_videos, shipped_videos_dir
    from inti_export.video.labels import labelled_clips
    from inti_export.video.preprocess import preprocess_for

    directory = Path(videos) if videos is not None else shipped_videos_dir()
    files = [directory] if directory.is_file() else find_videos(directory)
    pre = preprocess_for(cfg)

    def take(fs: list[Path], n: int, what: str) -> tuple[np.ndarray, list[str]]:
        per = math.ceil(n / len(fs))
        got = load_clips_cached(fs, pre, clips_per_video=per, max_clips=n)
        if len(got.clips) < n:
            raise IntiExportError(
                f"{what}: {n} clips asked, {', '.join(f.name for f in fs)} gave {len(got.clips)}: pass fewer or more videos"
            )
        return got.clips, got.names

    if labels is not None:
        held, y, held_names = labelled_clips(cfg, Path(labels).parent, labels)
        cal, cal_names = take(files, calibration, "calibration clips")
        rule = (f"by labels: the {len(held_names)} labelled videos in {Path(labels).parent} are held out (one clip"
                f" each), the videos of {directory} calibrate")
        return ClipSplit(held, held_names, cal, cal_names, rule, str(directory), y, str(labels))
    if len(files) >= 2:
        k = (len(files) + 1) // 2
        cal, cal_names = take(files[:k], calibration, "calibration clips")
        held, held_names = take(files[k:], heldout, "held-out clips")
        rule = (f"by video file: sorted by name, the first {k} of {len(files)} calibrate"
                f" ({', '.join(f.name for f in files[:k])}), the rest are held out")
    else:
        segments = 2 * max(heldout, calibration)
        got = load_clips_cached(files, pre, clips_per_video=segments)
        if len(got.clips) < segments:
            raise IntiExportError(f"{files[0].name} gave {len(got.clips)} of {segments} clips: pass fewer or more videos")
        cal, cal_names = got.clips[0::2][:calibration], got.names[0::2][:calibration]
        held, held_names = got.clips[1::2][:heldout], got.names[1::2][:heldout]
        rule = f"one video in {segments} segments: even segments calibrate, odd segments are held out"
    return ClipSplit(held, held_names, cal, cal_names, rule, str(directory))
