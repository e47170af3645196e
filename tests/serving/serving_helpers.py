"""Helpers shared by the serving tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def tiny_onnx_path(tiny_onnx) -> Path:
    return Path(getattr(tiny_onnx, "onnx_path", tiny_onnx))


def child_env() -> dict[str, str]:
    """The environment for CLI subprocesses: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def server_processes(marker: str) -> list[str]:
    """tritonserver / stub processes whose command line mentions `marker` (a test's repository path)."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "tritonserver" in line or "triton_python_backend_stub" in line]
