"""File helpers shared by every step: content hashes and all-or-nothing writes.

Every output goes through `atomic_output`: the data is written to a temporary file of its own in
the target folder (unique per writer, so two runs never share one), renamed over the target only
when complete, and removed on any failure, KeyboardInterrupt included. The CLI turns SIGTERM into
KeyboardInterrupt (`inti_export.tools._cli`), so a terminated run leaves nothing behind either.
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
) -> Path:
    """`path` as a Path, or a one-line IntiExportError before any work starts.

    Refused: an existing directory, a missing parent folder (unless `create_parent`), a parent that
    is not a folder, a name longer than the file system allows, and any path that is one of `inputs`.
    """
    p = Path(path)
    if len(p.name.encode()) > _NAME_MAX:
        size = len(p.name.encode())
        raise error(f"{what} name {p.name[:40]}... is {size} bytes, over {_NAME_MAX}: shorten it")
    if p.is_dir():
        raise error(f"{what} {p} is a directory: give a file path")
    for other in inputs:
        if other is not None and _same_file(p, Path(other)):
            raise error(f"{what} {p} is also an input ({other}): write to another path")
    parent = p.parent
    if not parent.exists():
        if not create_parent:
            raise error(f"{what} folder {parent} does not exist: create it first")
    elif not parent.is_dir():
        raise error(f"{what} folder {parent} is not a directory")
    elif not os.access(parent, os.W_OK):
        raise error(f"{what} folder {parent} is not writable")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


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
