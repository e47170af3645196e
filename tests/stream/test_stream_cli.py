"""`inti-export stream` on real live sources (lavfi, UDP MPEG-TS on loopback), a file, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import assert_one_line_error
from stream_sources import free_port, udp_sender
from typer.testing import CliRunner

from inti_export.cli import app

LAVFI = "lavfi:testsrc2=size=64x64:rate=25,realtime"


def _invoke(*args):
    res = CliRunner().invoke(app, ["stream", *map(str, args)])
    return res, res.stderr.strip().splitlines()


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lavfi_realtime(tiny_stream, tmp_path):
    out, rep = tmp_path / "r.jsonl", tmp_path / "s.json"
    res, err = _invoke(LAVFI, "--artifact", tiny_stream[0], "--stride", 4, "--duration", 1, "-o", out, "--report", rep)
    assert res.exit_code == 0, res.output
    rows, summary = _lines(out), json.loads(rep.read_text())
    assert [r["first_frame"] for r in rows] == list(range(0, 4 * len(rows), 4)) and len(rows) >= 3
    assert all(r["last_frame"] - r["first_frame"] == 7 and len(r["embedding"]) == 32 for r in rows)
    assert rows[1]["last_pts"] == pytest.approx(0.44)  # frame 11 at 25 fps
    assert summary["windows"] == len(rows) and summary["drop"] == "latest" and summary["source_fps"] == 25
    assert summary["end"].startswith("--duration 1 s reached") and summary["latency_ms"]["p99"] > 0
    assert "windows/s" in err[0] and "latency p50" in err[0]


def test_udp_sender_stops_mid_stream(tiny_stream, tmp_path):
    """A paced PyAV sender on loopback; when it stops, the stream ends cleanly after the read timeout."""
    port = free_port()
    sender = udp_sender(port, frames=30)
    out, rep = tmp_path / "r.jsonl", tmp_path / "s.json"
    res, err = _invoke(f"udp://127.0.0.1:{port}", "--artifact", tiny_stream[0], "--stride", 8, "--timeout", 1,
                       "-o", out, "--report", rep)
    sender.join()
    assert res.exit_code == 0, res.output
    summary = json.loads(rep.read_text())
    assert summary["end"].startswith("source ended after") and "(no data for 1 s)" in summary["end"]
    assert summary["frames_decoded"] >= 20 and summary["windows"] >= 2
    windows = [r for r in _lines(out) if "window" in r]
    assert all(r["last_frame"] - r["first_frame"] == 7 for r in windows) and len(windows) == summary["windows"]
    assert err[0].startswith("source ended after")


def test_file_back_pressure(tiny_stream, shipped_videos, tmp_path):
    """A file reads whole by default (--drop none): every frame in order, no drops, no gaps."""
    out, rep = tmp_path / "r.jsonl", tmp_path / "s.json"
    res, _ = _invoke(shipped_videos / "bikes.mp4", "--artifact", tiny_stream[0], "--stride", 2, "--duration", 1,
                     "--max-queue", 1, "-o", out, "--report", rep)
    assert res.exit_code == 0, res.output
    summary, rows = json.loads(rep.read_text()), _lines(out)
    assert summary["drop"] == "none" and summary["dropped"] == 0 and summary["gaps"] == 0
    assert summary["frames_processed"] == summary["frames_sampled"] >= 20
    assert [r["first_frame"] for r in rows] == list(range(0, summary["frames_processed"] - 7, 2))
    res, _ = _invoke(shipped_videos / "bikes.mp4", "--artifact", tiny_stream[0], "--realtime", "--duration", 0.5,
                     "-o", out, "--report", rep)
    summary = json.loads(rep.read_text())
    assert res.exit_code == 0 and summary["drop"] == "latest" and summary["wall_s"] >= 0.4  # paced at the file's fps


def test_unreachable_and_bad_sources(tiny_stream, tmp_path):
    port = free_port(kind=1)  # SOCK_STREAM: nothing listens there once closed
    start = time.perf_counter()
    res, err = _invoke(f"http://127.0.0.1:{port}/live.ts", "--artifact", tiny_stream[0], "--timeout", 2, "-o", tmp_path / "r")
    assert_one_line_error(res, "cannot open http://127.0.0.1")
    assert time.perf_counter() - start < 30 and not list(tmp_path.iterdir())
    res, err = _invoke("lavfi:sine=frequency=1000:duration=1", "--artifact", tiny_stream[0])
    assert res.exit_code == 1 and err == [
        "error: lavfi:sine=frequency=1000:duration=1 has no video stream; pass a source with video"]
    res, err = _invoke(tmp_path / "missing.mp4", "--artifact", tiny_stream[0])
    assert_one_line_error(res, "is not a file, a URL")
    for stride in (0, 9):
        res, err = _invoke(LAVFI, "--artifact", tiny_stream[0], "--stride", stride)
        assert res.exit_code == 1 and err == [
            f"error: stride {stride} is outside 1..8 (T = 8 frames per window); pick a stride in that range"]
    res, err = _invoke(LAVFI, "--preset", "test-tiny", "--runner", "ort")
    assert_one_line_error(res, "needs --artifact")


def test_ctrl_c_writes_the_summary(tiny_stream, tmp_path):
    """SIGINT mid-stream: exit 130, the summary written, the results file whole (every line complete)."""
    out, rep = tmp_path / "r.jsonl", tmp_path / "s.json"
    cmd = [sys.executable, "-m", "inti_export.cli", "stream", LAVFI, "--artifact", str(tiny_stream[0]), "--stride", "8",
           "-o", str(out), "--report", str(rep)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.time() + 60
    while time.time() < deadline and not any(p.stat().st_size for p in tmp_path.glob(".r.jsonl.*.tmp")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    summary = json.loads(rep.read_text())
    assert summary["interrupted"] == 2 and summary["end"].startswith("interrupted after")
    rows = _lines(out)
    assert len(rows) >= 1 and summary["windows"] == len(rows)
    assert stderr.startswith("interrupted after") and "Traceback" not in stderr


def test_outputs_that_are_inputs_are_refused(tiny_stream, shipped_videos, tmp_path):
    """The probe's data loss (issue 24): `-o` or `--report` on the source video or inside the artifact."""
    import hashlib
    import shutil

    video = tmp_path / "v.mp4"
    shutil.copy(sorted(shipped_videos.glob("*.mp4"))[0], video)
    digest = hashlib.sha256(video.read_bytes()).hexdigest()
    for option, target in (("-o", video), ("--report", video), ("-o", tiny_stream[0] / "r.jsonl")):
        res, _ = _invoke(video, "--artifact", tiny_stream[0], option, target)
        line = assert_one_line_error(res)
        assert "is also an input" in line or "inside" in line, line
    assert hashlib.sha256(video.read_bytes()).hexdigest() == digest
