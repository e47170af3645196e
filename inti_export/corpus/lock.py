"""One run per output folder: an advisory lock file that names the process holding it.

`.embed.lock` is locked with `flock`, which the kernel releases when its holder exits however it
exits, so a lock left by a killed run (its pid dead) is simply taken over. The file holds the
holder's pid for the message a second run prints (docs/corpus.md, "One run at a time").
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from inti_export.corpus.names import shown
from inti_export.errors import IntiExportError

LOCK_FILE = ".embed.lock"  # a dot name: pyarrow's dataset discovery skips it


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def output_lock(out_dir: Path) -> Iterator[None]:
    """Hold `out_dir`'s lock for the block, or raise IntiExportError naming the pid that holds it."""
    path = out_dir / LOCK_FILE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IntiExportError(
                f"{shown(out_dir)} is in use by {_holder(path)} (another `inti-export embed`):"
                " wait for it to finish, or pass another -o"
            ) from None
        try:  # the holder before us may have removed the file after we opened it: lock the current one
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)
