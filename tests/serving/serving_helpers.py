"""Helpers shared by the serving tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_env() -> dict[str, str]:
    """The environment for CLI subprocesses: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def server_processes(marker: str) -> list[str]:
    """tritonserver / stub processes whose command line mentions `marker` (a test's repository path)."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "tritonserver" in line or "triton_python_backend_stub" in line]


REQUIRE_ENV = "INTI_REQUIRE_SERVING"  # set by .ci/run: a missing serving setup fails instead of skipping


def serving_setup_missing() -> str | None:
    """Why a real server cannot start here (tritonclient, tritonserver, stub NumPy), or None."""
    from inti_export.errors import IntiExportError

    try:
        import tritonclient.http  # noqa: F401

        from inti_export.serving.server import libpython, stub_site, tritonserver_home

        tritonserver_home()
        libpython()
        stub_site()
    except (ImportError, IntiExportError) as e:
        if os.environ.get(REQUIRE_ENV):
            raise
        return f"serving setup missing ({e}); .ci/run installs it (docs/serving.md)"
    return None


@contextlib.contextmanager
def running_server(repo: Path, ready_timeout: float):
    """A real tritonserver over `repo` on free ports; stopped (whole process group) on exit, leaving no process."""
    from inti_export.serving.server import TritonServer

    server = TritonServer(repo, ready_timeout=ready_timeout)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert server_processes(str(repo)) == []
