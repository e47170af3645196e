"""bench and pipeline on test-tiny: reports read back, plots written, errors named."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import IntiExportError
from inti_export.tools.bench import BenchReport, run_bench


def test_bench_compare_naive_report_and_plot(tmp_path, tiny_onnx):
    """test-tiny's ONNX is the session's (--onnx); the naive variant's is exported by the bench itself."""
    rep_path, plot_path = tmp_path / "bench.json", tmp_path / "bench.png"
    res = CliRunner().invoke(
        app,
        ["bench", "--preset", "test-tiny", "--onnx", str(tiny_onnx.onnx_path), "--runners", "torch,ort",
         "--batch", "1,2", "--iters", "3", "--warmup", "1", "--compare-naive", "--report", str(rep_path),
         "--plot", str(plot_path)],
    )
    assert res.exit_code == 0, res.output
    report = BenchReport.from_dict(json.loads(rep_path.read_text()))
    assert {(r.preset, r.runner, r.batch) for r in report.rows} == {
        (p, r, b) for p in ("test-tiny", "naive(test-tiny)") for r in ("torch-cpu", "ort-cpu") for b in (1, 2)
    }
    for r in report.rows:
        assert r.iters == 3 and 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms
        assert r.throughput_clips_s == pytest.approx(r.batch / (r.p50_ms / 1e3))
    assert len(report.speedups) == 4
    s = report.speedups[0]
    assert s.flop_ratio == pytest.approx(0.7766, abs=0.01) and s.latency_ratio > 0
    assert plot_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "InTI/naive latency" in res.stdout


def test_bench_errors():
    with pytest.raises(IntiExportError, match="unknown runner"):
        run_bench("test-tiny", runners=("tensorflow",))
    with pytest.raises(IntiExportError, match="no InTI layer"):
        run_bench("naive-b16", runners=("torch",), compare_naive=True)
    res = CliRunner().invoke(app, ["bench", "--preset", "test-tiny", "--batch", "1,x"])
    assert res.exit_code == 1 and "--batch='1,x'" in res.stderr


def test_bench_trt_runner_skipped_without_gpu(tmp_path, tiny_engine):
    import torch

    if torch.cuda.is_available():
        pytest.skip("has a GPU: the skip path is not taken")
    if tiny_engine is None:
        pytest.skip("no TensorRT module to build the engine with")
    report = run_bench("test-tiny", runners=("torch", "trt"), iters=1, warmup=0, engine_path=tiny_engine[0])
    assert "trt" in report.skipped and [r.runner for r in report.rows] == ["torch-cpu"]
    with pytest.raises(IntiExportError, match="needs --engine"):
        run_bench("test-tiny", runners=("trt",))
    with pytest.raises(IntiExportError, match="does not exist"):
        run_bench("test-tiny", runners=("trt",), engine_path=tmp_path / "none.engine")


def test_pipeline_on_test_tiny(tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["pipeline", "--preset", "test-tiny", "--iters", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] and summary["schema"] == "inti-export/pipeline/1"
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["export"]["status"] == "ok" and steps["parity"]["status"] == "ok" and steps["bench"]["status"] == "ok"
    has_trt = any(importlib.util.find_spec(m) for m in ("tensorrt", "tensorrt_rtx"))
    assert steps["engine"]["status"] == ("ok" if has_trt else "skipped")
    assert (out / "model.onnx").exists() and (out / "parity.json").exists() and (out / "bench.json").exists()
    if has_trt:
        assert (out / "model.fp32.engine").exists() and (out / "model.fp32.engine.json").exists()
