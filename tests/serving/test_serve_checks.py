"""Issue 24's serving rows that are refused before any server runs: one line, exit 1, nothing written.

The stub check (row 4) needs the tritonserver of the serving setup and skips without it; the rest need
only the package (row 11: a port in TIME_WAIT is free; 12: timeouts; 15: read-only outputs; 16: ranges;
17: labels; 19: --log a folder; 20: stale work folders; 22: a folder given for a file).
"""

from __future__ import annotations

import os
import socket

import pytest
from helpers import assert_one_line_error, run_readonly
from serving_helpers import server_processes, serving_setup_missing
from typer.testing import CliRunner

from inti_export.cli import app


def _refused(argv: list, expect: str) -> str:
    """The CLI in-process must exit 1 with exactly one `error: ...` line containing `expect`."""
    return assert_one_line_error(CliRunner().invoke(app, [str(a) for a in argv]), expect)


# -- row 11: a port whose last connections are in TIME_WAIT is free --------------------------------
def test_port_in_time_wait_is_not_in_use():
    from inti_export.serving.server import check_port

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server side closes first: its end, on `port`, goes to TIME_WAIT
    client.close()
    listener.close()
    with socket.socket() as plain, pytest.raises(OSError):  # what the old check did: bind without SO_REUSEADDR
        plain.bind(("127.0.0.1", port))
    check_port(port, "http")  # a restart right after Ctrl-C starts


# -- rows 12, 19, 15: serve's options are checked before the server starts --------------------------
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_serve_timeout_must_be_positive(tmp_path, value):
    line = _refused(["serve", tmp_path, "--timeout", value], "must be a positive number of seconds")
    assert value.lstrip("-") in line and "--timeout" in line


def test_serve_log_that_is_a_directory_is_refused(tmp_path):
    _refused(["serve", tmp_path, "--log", tmp_path], f"--log {tmp_path} is a directory")


def test_serve_log_in_a_read_only_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    assert_one_line_error(run_readonly(ro, ["serve", tmp_path, "--log", ro / "server.log"]), "is not writable")
    assert list(ro.iterdir()) == []


# -- rows 15, 16, 17, 22: triton-repo ----------------------------------------------------------------
@pytest.mark.parametrize("option", [["--max-batch", "99999999999"], ["--max-batch", "0"], ["--instances", "2147483648"]])
def test_triton_repo_ranges_are_checked_first(tmp_path, tiny_onnx, option):
    line = _refused(["triton-repo", tiny_onnx.onnx_path, "-o", tmp_path / "r", *option], option[1])
    assert "2147483647" in line
    assert not (tmp_path / "r").exists()


def test_triton_repo_labels_not_utf8_is_one_line(tmp_path, tiny_onnx):
    labels = tmp_path / "labels.txt"
    labels.write_bytes(b"cat\n\xff\xfedog\n")
    line = _refused(["triton-repo", tiny_onnx.onnx_path, "-o", tmp_path / "r", "--labels", labels], "cannot read labels")
    assert str(labels) in line and "UTF-8" in line
    assert not (tmp_path / "r").exists()


def test_labels_with_a_bom_read_as_utf8(tmp_path):
    from inti_export.serving.options import read_labels

    path = tmp_path / "labels.txt"
    path.write_bytes("\ufeffcat\ndog\n".encode())
    assert read_labels(path) == ["cat", "dog"]


@pytest.mark.parametrize("which", ["artifact", "labels"])
def test_triton_repo_directory_for_a_file_says_so(tmp_path, tiny_onnx, which):
    folder = tmp_path / "folder"
    folder.mkdir()
    argv = {"artifact": ["triton-repo", folder, "-o", tmp_path / "r"],
            "labels": ["triton-repo", tiny_onnx.onnx_path, "-o", tmp_path / "r", "--labels", folder]}[which]
    _refused(argv, f"{folder} is a directory")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["inside", "is"])
def test_triton_repo_read_only_output_is_refused_before_work(tmp_path, tiny_onnx, where):
    ro = tmp_path / "ro"
    ro.mkdir()
    out = ro / "repo" if where == "inside" else ro
    assert_one_line_error(run_readonly(ro, ["triton-repo", tiny_onnx.onnx_path, "-o", out]), "is not writable")
    assert list(ro.iterdir()) == []


def test_infer_directory_for_a_video_is_refused_before_asking_the_server(tmp_path):
    # port 9 (discard) has no server here: the path is checked before any connection is tried
    _refused(["infer", tmp_path, "--url", "http://127.0.0.1:9"], f"video {tmp_path} is a directory")


# -- row 20: the work folder a kill -9 left is removed by the next start -----------------------------
def test_stale_work_folders_of_dead_processes_are_removed(tmp_path):
    import subprocess

    from inti_export.serving.process import WORKDIR_PREFIX, remove_stale_workdirs

    gone = subprocess.Popen(["true"])  # a pid that has exited
    gone.wait()
    stale = tmp_path / f"{WORKDIR_PREFIX}{gone.pid}-abc_123"
    live = tmp_path / f"{WORKDIR_PREFIX}{os.getpid()}-def_456"
    other = tmp_path / f"{WORKDIR_PREFIX}notapid"
    for d in (stale, live, other):
        (d / "backends").mkdir(parents=True)
    assert remove_stale_workdirs(tmp_path) == [stale]
    assert not stale.exists() and live.is_dir() and other.is_dir()


# -- row 4: the stub's imports are checked before tritonserver starts --------------------------------
def test_incompatible_package_in_the_stub_folder_is_named_with_its_fix(tmp_path, tiny_repo, monkeypatch):
    missing = serving_setup_missing()
    if missing:
        pytest.skip(missing)
    from inti_export.serving.stub import stub_site

    real = stub_site()
    if real is None:
        pytest.skip("this Python has NumPy 1: the stub uses no folder of its own")
    stub = tmp_path / "stub-site"
    stub.mkdir()
    for entry in real.iterdir():  # the real folder's NumPy 1, and a broken ml_dtypes as 0.7.0 breaks under it
        if entry.name.startswith("numpy"):
            (stub / entry.name).symlink_to(entry)
    (stub / "ml_dtypes").mkdir()
    (stub / "ml_dtypes" / "__init__.py").write_text(
        'raise SystemError("<built-in function __import__> returned a result with an exception set")\n'
    )
    monkeypatch.setenv("INTI_TRITON_STUB_SITE", str(stub))
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(tiny_repo, repo)
    line = _refused(["serve", repo, "--timeout", "60"], "the Triton stub cannot import ml_dtypes from the stub folder")
    assert f"--target {stub} 'ml_dtypes<0.6'" in line and "SystemError" in line
    assert server_processes(str(repo)) == []
