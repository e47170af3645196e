"""`bench --stream`: cached stem + head against the whole window per stride, with the FLOP prediction (test-tiny)."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import IntiExportError
from inti_export.jobs.stream_bench import check_strides, run_stream_bench
from inti_export.models.flops import count_split_flops


def test_split_flops_add_up():
    """S = T frames of stem + one head is the whole clip: the prediction at S = T is 1."""
    f = count_split_flops("test-tiny")
    assert f["stem"] > 0 and f["head"] > 0
    assert 8 * f["stem"] + f["head"] == pytest.approx(f["full"], rel=1e-6)


def test_torch_rows_and_predictions():
    report = run_stream_bench(preset="test-tiny", runners=("torch",), strides=(1, 8), windows=1, warmup=0)
    (run,) = report.runs
    assert run.runner == "torch-cpu" and [r.stride for r in run.strides] == [1, 8]
    flops = report.gflops
    for r in run.strides:
        assert r.windows_timed == 1 and r.cached_ms > 0 and r.full_ms > 0
        assert r.predicted == pytest.approx((r.stride * flops["stem"] + flops["head"]) / flops["full"], abs=1e-3)
    assert run.strides[-1].predicted == pytest.approx(1.0, abs=1e-3)
    assert run.latency_at_stride_T.predicted == run.strides[0].predicted


def test_cli_report_and_plot(tmp_path):
    report, plot = tmp_path / "stream.json", tmp_path / "stream.png"
    res = CliRunner().invoke(app, ["bench", "--stream", "--preset", "test-tiny", "--runners", "torch", "--stride", "2,4",
                                   "--iters", "1", "--warmup", "0", "--report", str(report), "--plot", str(plot)])
    assert res.exit_code == 0, res.output
    assert "FLOPs predict" in res.stdout and "latency after a window's last frame" in res.stdout
    data = json.loads(report.read_text())
    assert data["schema"] == "inti-export/bench-stream/1" and [r["stride"] for r in data["runs"][0]["strides"]] == [2, 4]
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args, fragment", [
    (["--stride", "0"], "each stride must be 1..8"),
    (["--stride", "9"], "each stride must be 1..8"),
    (["--stride", "x"], "expected comma-separated integers"),
    (["--runners", "ov"], "a stream benchmark runs torch and ort"),
    (["--batch", "4"], "drop --engine, --compare-naive and --batch"),
])
def test_cli_bad_input(args, fragment):
    res = CliRunner().invoke(app, ["bench", "--stream", "--preset", "test-tiny", "--iters", "1", *args])
    assert_one_line_error(res, fragment)


def test_check_strides():
    assert check_strides([4, 1, 4], 8) == (4, 1)
    with pytest.raises(IntiExportError, match="1..8"):
        check_strides([], 8)
