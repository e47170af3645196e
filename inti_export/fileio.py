"""File helpers shared by every step: content hashes and all-or-nothing writes.

Every output goes through `atomic_output`: the data is written to a temporary file of its own in
the target folder (unique per writer, so two runs never share one), renamed over the target only
when complete, and removed on any failure, KeyboardInterrupt included. The CLI turns SIGTERM into
KeyboardInterrupt (`inti_export.cli._common`), so a terminated run leaves nothing behind either.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from inti_export.errors import IntiExportError

_NAME_MAX = 255  # bytes in one path component on Linux file systems
_TMP_PREFIX_KEEP = 40  # characters of the target's name kept in its temporary name


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_output_path(
    path: str | os.PathLike,
    what: str = "output",
    inputs: Iterable[str | os.PathLike | None] = (),
    create_parent: bool = False,
    error: type[IntiExportError] = IntiExportError,
    folders: Iterable[str | os.PathLike | None] = (),
) -> Path:
    """`path` as a Path, or a one-line IntiExportError before any work starts.

    Refused: an existing directory, a missing parent folder (unless `create_parent`), a parent that
    is not a folder or not writable, a name longer than the file system allows, any path that is one
    of `inputs` or an input's manifest (`<input>.json`, docs/reports.md), and any path inside one of
    `folders` (input folders such as `--videos`, whose files a write would replace or join).
    """
    p = Path(path)
    _check_name_lengths(p, what, error)
    if p.is_dir():
        raise error(f"{what} {p} is a directory: give a file path")
    for other in inputs:
        if other is None:
            continue
        if _same_file(p, Path(other)):
            raise error(f"{what} {p} is also an input ({other}): write to another path")
        manifest = Path(other).with_name(Path(other).name + ".json")
        if Path(other).name and _same_file(p, manifest):
            raise error(f"{what} {p} is the manifest of the input {other}: write to another path")
    for folder in folders:
        if folder is not None and Path(folder).is_dir() and _inside(p, Path(folder)):
            raise error(f"{what} {p} is inside the input folder {folder}: write it elsewhere")
    parent = p.parent
    if not parent.exists():
        if not create_parent:
            raise error(f"{what} folder {parent} does not exist: create it first")
    elif not parent.is_dir():
        raise error(f"{what} folder {parent} is not a directory")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise error(f"{what} folder {parent} is not writable")
    return p


def check_output_dir(
    path: str | os.PathLike, what: str = "output", error: type[IntiExportError] = IntiExportError
) -> Path:
    """`path` as a Path if it is a folder that can be written, or one that can be created (with its
    parents); else a one-line IntiExportError before any work starts (a file, an unwritable folder)."""
    p = Path(path)
    _check_name_lengths(p, what, error)
    if p.exists() and not p.is_dir():
        raise error(f"{what} {p} is a file: give a folder (it is created if missing)")
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"{what} {p} cannot be created: {existing} is not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == p else f" (its folder {existing})"
        raise error(f"{what} {p} is not writable{where}: choose another folder")
    return p


def _check_name_lengths(p: Path, what: str, error: type[IntiExportError]) -> None:
    """Each component of `p` fits the file system's name limit (a longer one fails every later call)."""
    for part in p.parts:
        size = len(os.fsencode(part))
        if size > _NAME_MAX:
            raise error(f"{what} name {part[:40]}... is {size} bytes, over {_NAME_MAX}: shorten it")


def _inside(p: Path, folder: Path) -> bool:
    try:
        return p.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):
        return False


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary path beside `path`; rename it over `path` on success, remove it otherwise.

    The temporary name is unique per call (two concurrent writers never collide) and short enough
    for any target name the file system accepts.
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name[:_TMP_PREFIX_KEEP]}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `data` to `path` all at once or not at all (see `atomic_output`)."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def write_json(path: str | os.PathLike, data: Any, sort_keys: bool = False) -> None:
    """JSON (indented, trailing newline), written atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
