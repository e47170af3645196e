"""The optimize cache: each unit of work in a folder named by a content hash of its inputs and settings.

    OUT/<sub>/<name>-<key[:12]>/record.json      written last: key, parts, files {path: sha256}, seal

A folder counts as finished only when its record carries the folder's key, the sha256 of every file
the unit made or read (and those files still hash the same) and a seal (the sha256 of the record's
own content); any other folder is removed and remade (docs/optimize.md, "The cache").
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.fileio import sha256_file, write_json

logger = logging.getLogger(__name__)

RECORD = "record.json"
RECORD_FORMAT = 1


def content_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of `parts` (inputs' hashes and settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


class Cache:
    """Units of work under OUT, each in `<sub>/<name>-<key[:12]>/` with `record.json` written last."""

    def __init__(self, out: Path, on_event: Callable[[str, str, str], None] | None = None):
        self.out = out
        self.on_event = on_event or (lambda *a: None)
        self._hashes: dict[tuple[str, int, int], str] = {}

    def sha256(self, path: Path) -> str:
        """sha256 of `path`, remembered per (path, mtime, size) within this run."""
        st = path.stat()
        k = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if k not in self._hashes:
            self._hashes[k] = sha256_file(path)
        return self._hashes[k]

    def rel(self, path: Path) -> str:
        path = Path(path).resolve()
        try:
            return str(path.relative_to(self.out.resolve()))
        except ValueError:  # an input outside OUT (--onnx): recorded by absolute path
            return str(path)

    def path(self, rel: str) -> Path:
        return Path(rel) if os.path.isabs(rel) else self.out / rel

    def finished(self, folder: Path, key: str) -> dict[str, Any] | None:
        """The record of `folder` if it is complete and every file it names still has its hash."""
        try:
            rec = json.loads((folder / RECORD).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(rec, dict) or rec.get("key") != key or rec.get("format") != RECORD_FORMAT:
            return None
        if rec.get("record_sha256") != content_key({k: v for k, v in rec.items() if k != "record_sha256"}):
            logger.warning("%s: %s was edited or damaged; remaking", folder.name, RECORD)
            return None
        for rel, sha in rec.get("files", {}).items():
            p = self.path(rel)
            if not p.is_file() or self.sha256(p) != sha:
                logger.warning("%s: %s is missing or its hash changed; remaking", folder.name, rel)
                return None
        return rec

    def unit(self, sub: str, name: str, parts: dict[str, Any], make: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
        """The finished record of this unit, made now by `make(folder)` unless a finished one exists.

        `make` returns the record's body; its `files` entry lists the paths (made or read) whose
        hashes the record keeps. The record is written last, so an interrupted unit has none.
        """
        key = content_key(parts)
        folder = self.out / sub / f"{name}-{key[:12]}"
        rec = self.finished(folder, key)
        label = f"{sub}/{folder.name}"
        if rec is not None:
            self.on_event(sub, label, "cached")
            return {**rec, "folder": str(folder), "cached": True}
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        self.on_event(sub, label, "making")
        start = time.perf_counter()
        body = make(folder)
        files = {self.rel(p): self.sha256(Path(p)) for p in body.pop("files", [])}
        rec = {"format": RECORD_FORMAT, "key": key, "parts": parts, **body, "files": files,
               "seconds": round(time.perf_counter() - start, 3), "made": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        rec = json.loads(json.dumps(rec, default=str))  # what the file will hold, so the seal matches on reading
        rec["record_sha256"] = content_key(rec)
        write_json(folder / RECORD, rec)
        self.on_event(sub, label, "made")
        return {**rec, "folder": str(folder), "cached": False}


def array_sha256(a: np.ndarray) -> str:
    """sha256 of an array's bytes and shape (clips, labels): part of the keys of the units that read it."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes() + str(a.shape).encode()).hexdigest()
