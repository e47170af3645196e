"""SOURCES... to a list of video files: files, folders (recursive), globs, or text files of paths."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path

from inti_export.corpus.names import shown
from inti_export.errors import VideoError
from inti_export.video.discover import VIDEO_EXTENSIONS

LIST_SUFFIXES = (".txt", ".lst")  # a file with one of these suffixes holds one video path per line


def _is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS


def _folder(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if _is_video(p))


def _list_file(path: Path) -> list[Path]:
    """Paths in a text file, one a line; blank lines and `#` comments skipped; relative to the file.

    Lines are file names as bytes (`os.fsdecode`), so a name that is not UTF-8 is listed as it is on disk.
    """
    try:
        lines = [os.fsdecode(line) for line in path.read_bytes().splitlines()]
    except OSError as e:
        raise VideoError(f"cannot read the list of videos {shown(path)}: {e}; pass a text file of paths") from e
    out = []
    for number, line in enumerate(lines, 1):
        if "\0" in line:
            raise VideoError(f"{shown(path)} line {number} holds a NUL byte: pass a text file of paths")
        line = line.strip()
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            out.append(p if p.is_absolute() else path.parent / p)
    return out


def expand_sources(sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Absolute video paths, in the order given (folders sorted), each once.

    A named file is taken as a video whatever its suffix (a bad one lands in the errors file), except
    `.txt`/`.lst` lists; folders contribute their video files (by suffix) recursively; anything else
    is tried as a glob. A source that matches nothing is an error, so a typo does not go unnoticed.
    """
    seen: dict[Path, None] = {}
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            found = _folder(path)
        elif path.is_file():
            found = _list_file(path) if path.suffix.lower() in LIST_SUFFIXES else [path]
        else:
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            found = [m for m in matches if _is_video(m)] + [v for m in matches if m.is_dir() for v in _folder(m)]
        if not found:
            raise VideoError(
                f"source {shown(source)} matches no video ({', '.join(VIDEO_EXTENSIONS)}):"
                " pass files, folders, globs or a .txt list"
            )
        for p in found:
            seen.setdefault(p.resolve(), None)
    if not seen:
        raise VideoError("no sources given: pass video files, folders, globs or a .txt list of paths")
    return list(seen)
