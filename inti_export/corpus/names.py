"""Paths as text: a file name need not be UTF-8, a Parquet string, a JSON line or a terminal must be.

Python keeps a name's undecodable bytes as lone surrogates (`os.fsdecode`, PEP 383), which every
UTF-8 encoder refuses. `shown` writes those bytes as `\\xNN` instead (docs/corpus.md, "What comes out").
"""

from __future__ import annotations

import os


def shown(path: str | os.PathLike) -> str:
    """`path` (or any text holding one) as valid UTF-8: undecodable bytes of a name written as `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_utf8(path: str | os.PathLike) -> bool:
    """Whether `path` is valid UTF-8 (libraries that take a path as text can open it)."""
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
