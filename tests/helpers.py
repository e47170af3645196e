"""Helpers shared by every test folder (imported by name, `from helpers import ...`: tests/ is not a
package; pytest puts tests/ on sys.path for tests/conftest.py).

    assert_one_line_error(result, "fragment", ...) -> the line: the one-line-error contract, asserted once
    cli_env() -> os.environ with this checkout first on PYTHONPATH, for CLI subprocesses
    run_readonly(folder, argv) -> the CLI in a subprocess with `folder` read-only
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def assert_one_line_error(result, *fragments: str, code: int | None = 1, quiet: bool = False) -> str:
    """Bad input was refused the way every command refuses it: exit `code` (None: any non-zero), no
    traceback, and stderr holding exactly one non-blank line, `error: ...`, that is not an internal error
    (`error: unexpected ...`) and contains every fragment; with `quiet`, nothing on stdout either.
    Returns that line.

    `result` is a typer `CliRunner` result (its stderr), a `subprocess.CompletedProcess` (text mode), or
    the stderr text itself (then no exit code is checked).
    """
    if isinstance(result, str):
        stdout, stderr, rc, output = "", result, None, result
    elif isinstance(result, subprocess.CompletedProcess):
        stdout, stderr, rc, output = result.stdout, result.stderr, result.returncode, f"{result.stdout}{result.stderr}"
    else:  # click.testing.Result
        exc = result.exception
        assert exc is None or isinstance(exc, SystemExit), f"raised {exc!r} instead of exiting\n{result.output}"
        stdout, stderr, rc, output = result.stdout, result.stderr, result.exit_code, result.output
    if rc is not None:
        if code is None:
            assert rc not in (0, None), f"exit code {rc}, expected non-zero\n{output}"
        else:
            assert rc == code, f"exit code {rc}, expected {code}\n{output}"
    assert "Traceback" not in output, output
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), f"not one `error: ...` line on stderr:\n{stderr}"
    line = lines[0]
    assert not (quiet and stdout.strip()), f"stdout is not empty:\n{stdout}"
    assert not line.startswith("error: unexpected "), line
    missing = [f for f in fragments if f not in line]
    assert not missing, f"{missing} not in {line!r}"
    return line


def cli_env() -> dict[str, str]:
    """The environment for CLI subprocesses: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_readonly(folder: Path, argv: list) -> subprocess.CompletedProcess:
    """The CLI (`python -m inti_export.cli argv`) in a subprocess with `folder` read-only: chmod for a
    normal user; for root (whom modes do not stop) a read-only bind mount in a private mount namespace
    (`unshare -m`), else the test skips."""
    cli = [sys.executable, "-m", "inti_export.cli", *map(str, argv)]
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            return subprocess.run(cli, env=cli_env(), capture_output=True, text=True, timeout=300)
        finally:
            folder.chmod(0o755)
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: no way to make a folder read-only")
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" || exit 77; shift; exec "$@"'
    res = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(folder), *cli], env=cli_env(),
                         capture_output=True, text=True, timeout=300)
    if res.returncode == 77:
        pytest.skip(f"cannot bind-mount read-only here: {res.stderr.strip()}")
    return res
