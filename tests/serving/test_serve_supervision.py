"""`inti-export serve` against a real tritonserver dying, being killed, interrupted or timing out (issue 24).

Row 3: a JSON request whose declared shape Triton's HTTP front end allocates before any check aborts
the server (std::bad_alloc, signal 6). The shape here asks for about 2**60 bytes, more than any
address space, so the allocation fails at once whatever the kernel's overcommit policy: the test
cannot take the machine's memory. `serve` restarts the server (--restarts) and exits 1 naming the
death and the kept log when it dies once more (row 5). Row 20: `kill -9` of serve leaves no server.
Row 22: SIGTERM exits 143. Row 12: a start-up that times out keeps its log.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from serving_helpers import child_env, server_processes, serving_setup_missing

_MISSING = serving_setup_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

from inti_export.serving.process import WORKDIR_PREFIX, group_shm_regions, remove_stale_workdirs  # noqa: E402
from inti_export.serving.server import ServerError, TritonServer, free_port  # noqa: E402

HUGE = [10**13, 8, 3, 32, 32]  # 2.5e17 FP32 elements, about 2**60 bytes: no allocator can grant it


def _repo(tmp_path: Path, tiny_repo: Path) -> Path:
    repo = tmp_path / "repo"  # its own copy: its processes are told apart from the session server's
    shutil.copytree(tiny_repo, repo)
    return repo


def _serve(repo: Path, err: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    http_port = free_port()
    ports = ["--http-port", str(http_port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    cmd = [sys.executable, "-m", "inti_export.cli", "serve", str(repo), *ports, "--timeout", "240", *extra]
    with open(err, "w") as f:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=f, env=child_env())
    return proc, http_port


def _status(port: int, method: str, path: str, body: bytes | None = None, timeout: float = 30) -> int | None:
    """The HTTP status, or None when the connection fails or is dropped (a server that died under it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        return conn.getresponse().status
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()


def _wait_ready(proc: subprocess.Popen, port: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _status(port, "GET", "/v2/health/ready", timeout=2) == 200:
            return
        time.sleep(0.5)
    raise AssertionError(f"serve was not ready within {timeout} s (exit {proc.poll()})")


def _tritonserver_pid(repo: Path) -> int:
    found = [line for line in server_processes(str(repo)) if "bin/tritonserver" in line]
    assert len(found) == 1, found
    return int(found[0].split()[0])


def _end(proc: subprocess.Popen, repo: Path) -> None:
    """Stop what a test left: serve, then any server process of its repository, each by its own pid."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for line in server_processes(str(repo)):
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass


def _infer_clip(port: int) -> int | None:
    body = {"inputs": [{"name": "video", "shape": [1, 8, 3, 32, 32], "datatype": "FP32", "data": [0.0] * 24576}]}
    return _status(port, "POST", "/v2/models/test-tiny/infer", json.dumps(body).encode(), timeout=120)


def test_server_killed_by_a_huge_declared_shape_is_restarted_then_serve_exits_1(tmp_path, tiny_repo):
    repo, err, log = _repo(tmp_path, tiny_repo), tmp_path / "serve.err", tmp_path / "server.log"
    proc, port = _serve(repo, err, "--restarts", "1", "--log", str(log))
    try:
        _wait_ready(proc, port)
        regions = group_shm_regions(_tritonserver_pid(repo))
        huge = {"inputs": [{"name": "video", "shape": HUGE, "datatype": "FP32", "data": [1]}]}
        code = _status(port, "POST", "/v2/models/test-tiny/infer", json.dumps(huge).encode())
        if code is None:  # the server died (tritonserver 2.59): serve restarts it on the same port
            deadline = time.monotonic() + 60
            while "restarting it (1 of 1)" not in err.read_text() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert "tritonserver died (signal 6)" in err.read_text(), err.read_text()
            _wait_ready(proc, port)
            assert regions and not any(r.exists() for r in regions)  # the dead stubs' shared memory is removed
        else:  # a Triton that checks the shape first answers 400
            assert 400 <= code < 500, code
        assert _infer_clip(port) == 200  # served again
        while proc.poll() is None:  # each death now uses up the restarts; then serve gives up
            try:
                os.kill(_tritonserver_pid(repo), signal.SIGABRT)
            except (AssertionError, ProcessLookupError):
                pass  # between a death and its restart
            time.sleep(2)
            if proc.poll() is None and "restarting" in err.read_text():
                _wait_ready(proc, port)
        lines = [line for line in err.read_text().splitlines() if line.startswith("error:")]
        assert proc.returncode == 1 and len(lines) == 1, err.read_text()
        assert lines[0].startswith("error: tritonserver died (signal 6") and lines[0].endswith(f"; log: {log}")
        assert "Signal (6) received" in log.read_text()  # the log is kept, with both deaths in it
    finally:
        _end(proc, repo)
    assert server_processes(str(repo)) == []


def test_kill_9_of_serve_takes_the_server_with_it(tmp_path, tiny_repo):
    repo, err = _repo(tmp_path, tiny_repo), tmp_path / "serve.err"
    proc, port = _serve(repo, err, "--log", str(tmp_path / "server.log"))  # not a temporary log kill -9 would leave
    try:
        _wait_ready(proc, port)
        workdirs = list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{WORKDIR_PREFIX}{proc.pid}-*"))
        proc.kill()  # SIGKILL: serve runs no clean-up at all
        proc.wait()
        deadline = time.monotonic() + 60
        while server_processes(str(repo)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert server_processes(str(repo)) == []
        assert workdirs and all(d.is_dir() for d in workdirs)  # left behind, as any kill -9 leaves files
        removed = remove_stale_workdirs()  # what the next start does first
        assert set(workdirs) <= set(removed) and not any(d.exists() for d in workdirs)
    finally:
        _end(proc, repo)


def test_sigterm_while_starting_exits_143_and_leaves_nothing(tmp_path, tiny_repo):
    repo, err = _repo(tmp_path, tiny_repo), tmp_path / "serve.err"
    proc, _ = _serve(repo, err)
    try:
        deadline = time.monotonic() + 120
        while not server_processes(str(repo)) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server_processes(str(repo)), err.read_text()  # tritonserver is starting
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, err.read_text()
        assert "stopped" in err.read_text()
    finally:
        _end(proc, repo)
    assert server_processes(str(repo)) == []


def test_start_up_that_times_out_keeps_its_log(tmp_path, tiny_repo):
    repo = _repo(tmp_path, tiny_repo)
    with pytest.raises(ServerError, match=r"not ready after 1 s.*--timeout; log: ") as e:
        TritonServer(repo, ready_timeout=1).start()
    log = Path(str(e.value).rpartition("; log: ")[2])
    try:
        assert "\n" not in str(e.value) and log.is_file()
    finally:
        log.unlink(missing_ok=True)
    assert server_processes(str(repo)) == []
