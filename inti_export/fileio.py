"""File helpers shared by every step: content hashes and all-or-nothing writes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    """Write `path + ".tmp"`, then rename it over `path`; remove the temporary file on failure."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, data: Any, sort_keys: bool = False) -> None:
    """JSON (indented, trailing newline), written atomically."""
    write_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")
