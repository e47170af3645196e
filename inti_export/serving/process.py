"""Process plumbing for the server: it dies with its parent, its group is signalled, stale work folders go.

A `kill -9` of `inti-export serve` cannot run any clean-up: the kernel stops tritonserver
(prctl PR_SET_PDEATHSIG), the backend stubs exit when their parent is gone, and the next start
removes the work folder that was left (docs/serving.md, "Stopping").
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from inti_export.errors import IntiExportError

WORKDIR_PREFIX = "inti-triton-"  # <tmp>/inti-triton-<pid>-XXXX: backends/ and the server's cwd
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ServerError(IntiExportError, RuntimeError):
    """The server could not start, a model did not load, a port is taken, or the server died."""


def remove_stale_workdirs(folder: str | os.PathLike | None = None) -> list[Path]:
    """Remove the `inti-triton-<pid>-*` folders whose process is gone (left by a `kill -9`); the removed ones."""
    removed = []
    for d in Path(folder or tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*"):
        m = re.fullmatch(rf"{re.escape(WORKDIR_PREFIX)}(\d+)-\w+", d.name)
        if m and d.is_dir() and not d.is_symlink() and not _alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent() -> Callable[[], None] | None:
    """A Popen `preexec_fn`: the child gets SIGTERM when the thread that started it dies, even by SIGKILL.

    Linux's prctl(PR_SET_PDEATHSIG); None elsewhere. The signal follows the starting *thread*: start the
    server from a thread that lives as long as it should.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def kill_group(pgid: int, sig: int) -> None:
    """Send `sig` to a process group, if it still exists."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


SHM_PREFIX = "triton_python_backend_shm_region_"  # the Python backend's shared memory, one per model instance


def group_shm_regions(pgid: int) -> set[Path]:
    """The Python backend's /dev/shm regions mapped by the live processes of a process group (its stubs).

    A server that aborts leaves them behind; read them before killing the stubs, remove them after.
    """
    regions: set[Path] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rpartition(")")[2].split()[2]) != pgid:  # fields after "(comm)": state, ppid, pgrp
                continue
            maps = (proc / "maps").read_text()
        except (OSError, ValueError, IndexError):
            continue
        for line in maps.splitlines():
            path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
            if Path(path).name.startswith(SHM_PREFIX):
                regions.add(Path(path.removesuffix(" (deleted)")))
    return regions
