"""Labelled videos (docs/task.md): the `video,label` CSV, checked against a folder and a config's classes,
one clip per labelled video, and the held-out check that keeps them out of calibration."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from inti_export.errors import CalibrationError, IntiExportError, VideoError, one_line
from inti_export.video.clipset import load_clips
from inti_export.video.discover import find_videos, shipped_videos_dir
from inti_export.video.preprocess import preprocess_for


def read_labels(path: str | os.PathLike, names: Sequence[str] = ()) -> dict[str, int]:
    """`video,label` CSV (UTF-8, a byte-order mark allowed; header row; label an integer class index or a
    name in `names`; each video once) -> {video: index}. The one labels reader of every command (docs/task.md)."""
    path = Path(path)
    if path.is_dir():
        raise VideoError(f"labels file {path} is a directory; pass a CSV with header `video,label`")
    if not path.is_file():
        raise VideoError(f"labels file {path} does not exist; pass a CSV with header `video,label`")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            rows = [(reader.line_num, {str(k).strip(): v for k, v in row.items()}) for row in reader]
            header = reader.fieldnames or []
    except UnicodeDecodeError as e:
        raise VideoError(f"cannot read labels file {path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset"
                         f" {e.start}); save it as UTF-8") from e
    except (OSError, csv.Error) as e:
        raise VideoError(f"cannot read labels file {path}: {one_line(e)}; pass a CSV with header `video,label`") from e
    if rows and not {"video", "label"} <= {str(h).strip() for h in header}:
        raise VideoError(f"{path} line 1: needs columns `video` and `label` (header `video,label`), got {header}")
    out: dict[str, int] = {}
    where: dict[str, int] = {}
    for n, row in rows:
        video, label = (row.get("video") or "").strip(), (row.get("label") or "").strip()
        if not video or not label:
            raise VideoError(f"{path} line {n}: needs columns `video` and `label` (header `video,label`), got {row}")
        if video in out:
            raise VideoError(f"{path} line {n}: {video} already labelled {out[video]} on line {where[video]}: keep"
                             " one row per video")
        try:
            out[video] = int(label) if label not in names else list(names).index(label)
        except ValueError:
            raise VideoError(f"{path} line {n}: label {label!r} is neither an integer nor one of {tuple(names)}") from None
        where[video] = n
    if not out:
        raise VideoError(f"labels file {path} has no rows; add `video,label` lines")
    return out


def labelled_videos(
    cfg, videos: str | os.PathLike, labels_path: str | os.PathLike, names: Sequence[str] = ()
) -> dict[Path, int]:
    """{video path: class index} for every row of the `video,label` CSV, checked against the folder
    `videos` and the config's classes; cheap (nothing is decoded), so commands call it before heavy work."""
    if not cfg.num_classes:
        raise IntiExportError(
            f"preset {cfg.name} has no classifier head (num_classes=0): accuracy needs a preset with num_classes"
        )
    labels = read_labels(labels_path, names)
    files = {p.name: p for p in find_videos(videos)}
    missing = sorted(set(labels) - set(files))
    if missing:
        raise VideoError(
            f"{len(missing)} labelled video(s) are not in {videos} (first: {missing[0]}); pass the folder the labels describe"
        )
    bad = sorted({y for y in labels.values() if not 0 <= y < cfg.num_classes})
    if bad:
        raise IntiExportError(
            f"labels {bad} in {labels_path} are outside the {cfg.num_classes} classes of preset {cfg.name}"
        )
    return {files[name]: labels[name] for name in sorted(labels)}


def check_held_out(labelled: dict[Path, int], source: str | os.PathLike | None) -> None:
    """One line if a labelled (held-out) video would also calibrate from `source`: that video itself, or a
    folder holding it (None: the shipped videos). An .npz of ready clips names no videos: nothing to check."""
    if source is not None and Path(source).suffix.lower() == ".npz":
        return
    folder = Path(source) if source is not None else shipped_videos_dir()
    files = {folder.resolve()} if folder.is_file() else (
        {p.resolve() for p in find_videos(folder)} if folder.is_dir() else set())
    both = sorted(p.name for p in labelled if p.resolve() in files)
    if both:
        raise CalibrationError(
            f"labelled video {both[0]} (and {len(both) - 1} more) would also calibrate from {folder}: calibrate on"
            " other videos (--videos), so that held-out clips never calibrate"
        )


def labelled_clips(
    cfg, videos: str | os.PathLike, labels_path: str | os.PathLike, names: Sequence[str] = ()
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(clips (K, T, 3, H, W), labels (K,), names): one clip per labelled video in `videos`, by name."""
    labels = labelled_videos(cfg, videos, labels_path, names)
    clip_set = load_clips(list(labels), preprocess_for(cfg))
    if clip_set.skipped:
        name, why = clip_set.skipped[0]
        raise VideoError(f"{len(clip_set.skipped)} labelled video(s) could not be decoded (first: {name}: {why})")
    by_name = {p.name: y for p, y in labels.items()}
    names = [n.split("#")[0] for n in clip_set.names]
    return clip_set.clips, np.array([by_name[n] for n in names], dtype=np.int64), names
