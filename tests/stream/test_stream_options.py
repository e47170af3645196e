"""`stream --labels/--top-k`, `--plot`, the live status line, `--runner trt` without TensorRT, and `--url`'s exclusions."""

from __future__ import annotations

import io
import json
import socket
import sys

import numpy as np
import pytest
from helpers import assert_one_line_error
from stream_sources import free_port
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.jobs.stream_status import LiveStatus, status_text

LAVFI = "lavfi:testsrc2=size=64x64:rate=25"  # as fast as it decodes; with --drop none every frame is processed


def _invoke(*args):
    res = CliRunner().invoke(app, ["stream", *map(str, args)])
    return res, res.stderr.strip().splitlines()


def test_top_k_labels_and_plot(task_checkpoint, tmp_path):
    """task-inti (4 classes): each window's 2 best classes by name, scores in order; the latency plot written."""
    classes = tmp_path / "classes.txt"
    classes.write_text("left\nright\nup\n\ndown\n")  # blank lines ignored
    out, plot = tmp_path / "r.jsonl", tmp_path / "latency.png"
    res, err = _invoke(LAVFI, "--preset", "task-inti", "--checkpoint", task_checkpoint, "--stride", 4, "--drop", "none",
                       "--duration", 1, "--top-k", 2, "--labels", classes, "-o", out, "--plot", plot)
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 5 and all("embedding" not in r for r in rows)
    for r in rows:
        assert len(r["top_k"]) == 2
        assert {t["label"] for t in r["top_k"]} <= {"left", "right", "up", "down"}
        assert r["top_k"][0]["score"] >= r["top_k"][1]["score"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob(".*.tmp"))
    assert "windows/s" in err[0]  # the summary; no status line in captured output

    res, _ = _invoke(LAVFI, "--preset", "task-inti", "--top-k", 1, "--drop", "none", "--duration", 0.5)
    assert res.exit_code == 0 and all(isinstance(json.loads(x)["top_k"][0]["label"], int) for x in res.stdout.splitlines())


def test_labels_refused(task_checkpoint, tmp_path):
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    res, _ = _invoke(LAVFI, "--preset", "task-inti", "--checkpoint", task_checkpoint, "--top-k", 2, "--labels", three)
    assert_one_line_error(res, "three.txt has 3 labels but preset task-inti has 4 classes")
    res, _ = _invoke(LAVFI, "--preset", "test-tiny", "--top-k", 1)
    assert_one_line_error(res, "preset test-tiny outputs an embedding (no class head)")
    res, _ = _invoke(LAVFI, "--preset", "task-inti", "--labels", three)
    assert_one_line_error(res, "--labels names the classes of --top-k K")
    res, _ = _invoke(LAVFI, "--preset", "task-inti", "--top-k", 1, "--labels", tmp_path / "missing.txt")
    assert_one_line_error(res, "missing.txt does not exist")


def test_status_line_only_on_a_terminal():
    assert LiveStatus.for_terminal(io.StringIO()) is None  # captured output never gets it
    from rich.console import Console

    screen = io.StringIO()
    status = LiveStatus(Console(file=screen, force_terminal=True, width=120))
    status.update(3, 20, 1, 1, 12.5)
    status.close()
    text = status_text(10, 40, 2, 1, 2.0, [10.0, 20.0, 30.0])
    assert text == "10 windows (5.00/s) from 40 frames, latency p50 20.0 ms p99 29.8 ms, dropped 2, gaps 1"


def test_trt_runner_without_tensorrt(tiny_stream, monkeypatch):
    """No TensorRT module: one line naming the pip extras, before anything else is tried."""
    for name in ("tensorrt", "tensorrt_rtx"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as when not installed
    res, _ = _invoke(LAVFI, "--artifact", tiny_stream[0], "--runner", "trt")
    assert_one_line_error(res, "no TensorRT module importable", "pip install 'inti-export[trt]'")


def test_url_excludes_a_local_model(tiny_stream):
    res, _ = _invoke(LAVFI, "--url", "http://127.0.0.1:9", "--artifact", tiny_stream[0])
    assert_one_line_error(res, "--url runs the served model")
    res, _ = _invoke(LAVFI, "--url", "http://127.0.0.1:9", "--runner", "ort")
    assert_one_line_error(res, "--runner ort picks a local runner")
    res, _ = _invoke(LAVFI, "--preset", "test-tiny", "--runner", "trt")
    assert_one_line_error(res, "needs --artifact")
    free = free_port(socket.SOCK_STREAM)  # nothing listens there
    res, _ = _invoke(LAVFI, "--url", f"http://127.0.0.1:{free}", "--timeout", 2)
    assert_one_line_error(res, "cannot reach the server")


@pytest.mark.parametrize("option", ["--reconnect", "--top-k"])
def test_negative_counts(option):
    res, _ = _invoke(LAVFI, "--preset", "test-tiny", option, -1)
    assert res.exit_code == 2  # typer's own range check (min=0)


def test_trt_runner_on_built_engines(tiny_stream, tmp_path):
    """The pair's engines built by `inti-export trt DIR` (TensorRT-RTX builds without a GPU): on a GPU the stream
    runs on them and matches ONNX Runtime; without one, one line says so. A missing engine says how to build it."""
    import shutil

    from inti_export.runtime.trt.loader import pick_runtime

    runtime, why = pick_runtime(None)
    if runtime is None:
        pytest.skip(f"no TensorRT runtime that builds here: {why}")
    pair = tmp_path / "pair"
    shutil.copytree(tiny_stream[0], pair)
    res = CliRunner().invoke(app, ["trt", str(pair)])
    assert res.exit_code == 0, res.output
    import torch

    args = (LAVFI, "--artifact", pair, "--stride", 4, "--drop", "none", "--duration", 1)
    res, _ = _invoke(*args, "--runner", "trt", "-o", tmp_path / "trt.jsonl")
    if not torch.cuda.is_available():
        assert_one_line_error(res, "no CUDA GPU")
    else:  # pragma: no cover - GPU machines
        assert res.exit_code == 0, res.output
        assert _invoke(*args, "-o", tmp_path / "ort.jsonl")[0].exit_code == 0
        trt_rows, ort_rows = ([json.loads(x) for x in (tmp_path / f).read_text().splitlines()]
                              for f in ("trt.jsonl", "ort.jsonl"))
        assert len(trt_rows) == len(ort_rows) == 5
        for a, b in zip(trt_rows, ort_rows, strict=True):
            assert a["first_frame"] == b["first_frame"]
            x, y = np.array(a["embedding"]), np.array(b["embedding"])
            assert float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) > 0.999  # TF32 allowed in an FP32 engine
    (pair / "head.engine").unlink()
    res, _ = _invoke(LAVFI, "--artifact", pair, "--runner", "trt")
    assert_one_line_error(res, "has no head.engine; build the pair's engines with `inti-export trt")
