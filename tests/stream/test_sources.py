"""`stream` sources for real on loopback: MPEG-TS over HTTP (with a reconnect), RTSP with the reader in listen
mode, a pipe on stdin, a corrupt MPEG-TS; and how SOURCE and --av-option map to av.open (docs/stream.md)."""

from __future__ import annotations

import json
import socket

import pytest
from helpers import assert_one_line_error
from stream_sources import free_port, http_server, remux_to_ts, rtsp_sender
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import VideoError
from inti_export.video.sources import parse_av_options, parse_source


def _invoke(*args, **kwargs):
    res = CliRunner().invoke(app, ["stream", *map(str, args)], **kwargs)
    return res, res.stderr.strip().splitlines()


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def ts_folder(tmp_path_factory):
    """clip.ts (2 s, 50 frames of H.264 at 25 fps) and bad.ts (the same with damaged TS packets mid-stream)."""
    folder = tmp_path_factory.mktemp("ts")
    remux_to_ts(folder / "clip.ts")
    remux_to_ts(folder / "bad.ts", corrupt=True)
    return folder


def test_source_mapping():
    """SOURCE and --av-option/--format -> what av.open gets (V4L2 is mapped, not opened: no device here)."""
    assert parse_source("-").kind == "pipe" and parse_source("-", "mpegts").fmt == "mpegts"
    dev = parse_source("/dev/video0", av_options={"video_size": "640x480", "input_format": "mjpeg"})
    assert (dev.kind, dev.fmt, dev.live) == ("device", "v4l2", True)
    assert dev.options == {"video_size": "640x480", "input_format": "mjpeg"}
    assert parse_source("rtsp://cam/1").options == {"rtsp_transport": "tcp"}
    assert parse_source("rtsp://cam/1", av_options={"rtsp_transport": "udp"}).options == {"rtsp_transport": "udp"}
    assert parse_source("udp://127.0.0.1:5000", av_options={"format": "mpegts"}).fmt == "mpegts"
    assert parse_source("lavfi:testsrc2").fmt == "lavfi"
    assert parse_av_options(["probesize=32", "fflags=nobuffer", "x=a=b"]) == {"probesize": "32", "fflags": "nobuffer", "x": "a=b"}
    with pytest.raises(VideoError, match="is not KEY=VALUE"):
        parse_av_options(["rtsp_transport"])


def test_http_ts_ends_cleanly_then_reconnects(tiny_stream, ts_folder, tmp_path):
    """MPEG-TS over local HTTP: the sender's end is a clean end (exit 0, summary); with --reconnect the source is
    re-opened, a reconnect line written, the ring restarted (no window spans it), and a failed retry ends the run."""
    server, base = http_server(ts_folder, serves=3)  # one run, then one with a reconnect
    try:
        out, rep = tmp_path / "r.jsonl", tmp_path / "s.json"
        res, err = _invoke(f"{base}/clip.ts", "--artifact", tiny_stream[0], "--stride", 4, "--drop", "none",
                           "-o", out, "--report", rep)
        assert res.exit_code == 0, res.output
        summary = json.loads(rep.read_text())
        assert summary["end"] == "source ended after 50 frames (end of stream)" and err[0].startswith(summary["end"])
        assert summary["windows"] == 11 == len(_lines(out)) and summary["reconnects"] == 0

        res, err = _invoke(f"{base}/clip.ts", "--artifact", tiny_stream[0], "--stride", 4, "--drop", "none",
                           "--reconnect", 1, "-o", out, "--report", rep)
        assert res.exit_code == 0, res.output
        summary, rows = json.loads(rep.read_text()), _lines(out)
        events = [r for r in rows if r.get("event") == "reconnect"]
        assert len(events) == 1 and events[0]["next_frame"] == 50 and events[0]["reason"] == "end of stream"
        windows = [r for r in rows if "window" in r]
        assert summary["reconnects"] == 1 and summary["frames_decoded"] == 100 and summary["windows"] == 22 == len(windows)
        assert all(w["last_frame"] < 50 or w["first_frame"] >= 50 for w in windows)  # never across the reconnect
        assert "1 reconnect attempt failed" in summary["end"] and "404" in summary["end"]
    finally:
        server.shutdown()


def test_rtsp_listen(tiny_stream, tmp_path):
    """RTSP on loopback: the reader listens (rtsp_flags=listen), a PyAV sender in its own process pushes 40 frames."""
    port = free_port(socket.SOCK_STREAM)
    url = f"rtsp://127.0.0.1:{port}/live"
    sender = rtsp_sender(url, 40)
    rep = tmp_path / "s.json"
    res, _ = _invoke(url, "--av-option", "rtsp_flags=listen", "--artifact", tiny_stream[0], "--stride", 4,
                     "--timeout", 20, "-o", tmp_path / "r.jsonl", "--report", rep)
    sender.join(timeout=30)
    assert res.exit_code == 0, res.output
    summary = json.loads(rep.read_text())
    assert summary["end"].startswith("source ended after") and summary["frames_decoded"] >= 35
    assert summary["windows"] >= 3 and summary["drop"] == "latest" and summary["source_fps"] == 25


def test_pipe_and_corrupt_packets(tiny_stream, ts_folder, tmp_path):
    """`-` reads standard input (--format mpegts); damaged TS packets mid-stream are skipped and counted, the run goes on."""
    rep = tmp_path / "s.json"
    res, _ = _invoke("-", "--format", "mpegts", "--artifact", tiny_stream[0], "--stride", 8, "--drop", "none",
                     "--report", rep, input=(ts_folder / "clip.ts").read_bytes())
    assert res.exit_code == 0, res.output
    summary = json.loads(rep.read_text())
    assert summary["frames_decoded"] == 50 and summary["windows"] == 6 and summary["corrupt_packets"] == 0
    assert len([json.loads(line) for line in res.stdout.splitlines()]) == 6
    res, err = _invoke(ts_folder / "bad.ts", "--artifact", tiny_stream[0], "--stride", 8, "--report", rep)
    assert res.exit_code == 0, res.output
    summary = json.loads(rep.read_text())
    assert summary["corrupt_packets"] >= 1 and 30 <= summary["frames_decoded"] < 50 and summary["windows"] >= 3
    assert "corrupt packets" in err[1]
    assert summary["end"] == f"source ended after {summary['frames_decoded']} frames (end of stream)"


def test_bad_source_options(tiny_stream, tmp_path):
    res, _ = _invoke("lavfi:testsrc2", "--artifact", tiny_stream[0], "--av-option", "rtsp_transport")
    assert_one_line_error(res, "--av-option 'rtsp_transport' is not KEY=VALUE")
    res, _ = _invoke("/dev/video97", "--artifact", tiny_stream[0], "--timeout", 2)
    assert_one_line_error(res, "cannot open /dev/video97")
