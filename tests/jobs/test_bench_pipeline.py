"""bench and pipeline on test-tiny: reports read back, plots written, errors named."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import IntiExportError
from inti_export.jobs.bench import BenchReport, run_bench


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
    assert not report.not_measured
    for r in report.rows:
        assert r.iters == 3 and 0 < r.min_ms <= r.p50_ms <= r.p90_ms <= r.p99_ms
        assert (r.status, r.reason) == ("ok", "")
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
    assert [r.runner for r in report.rows] == ["torch-cpu"]
    (miss,) = report.not_measured
    assert (miss.preset, miss.runner, miss.batch, miss.status) == ("test-tiny", "trt", 1, "skipped") and miss.reason
    assert json.loads(json.dumps(report.to_dict()))["not_measured"][0]["status"] == "skipped"
    with pytest.raises(IntiExportError, match="needs --engine"):
        run_bench("test-tiny", runners=("trt",))
    with pytest.raises(IntiExportError, match="does not exist"):
        run_bench("test-tiny", runners=("trt",), engine_path=tmp_path / "none.engine")


def test_bench_a_failing_batch_is_failed_and_larger_ones_skipped(monkeypatch):
    """A runner that raises at batch 2 (out of memory, say): batch 1 measured, 2 failed, 4 not tried."""
    import inti_export.jobs.bench as bench
    from inti_export.errors import EngineError

    real = bench._time_interleaved

    def fail_at_two(kind, variants, batch, *args):
        if batch == 2:
            raise EngineError("out of memory at batch 2")
        return real(kind, variants, batch, *args)

    monkeypatch.setattr(bench, "_time_interleaved", fail_at_two)
    report = run_bench("test-tiny", runners=("torch",), batches=(1, 2, 4), iters=1, warmup=0)
    assert [(r.batch, r.status) for r in report.rows] == [(1, "ok")]
    assert [(m.batch, m.status) for m in report.not_measured] == [(2, "failed"), (4, "skipped")]
    assert report.not_measured[0].reason == "out of memory at batch 2"
    assert report.not_measured[1].reason == "not tried after batch 2 failed"
    assert report.why_not_measured() == {"torch": "out of memory at batch 2"}


def test_pipeline_on_test_tiny(tmp_path, tiny_onnx):
    """The chain after the export, from the session's ONNX (`--onnx`; `inti-export onnx` is tested in
    tests/exporter); the export step itself is run by the failure test below."""
    out = tmp_path / "out"
    # no --preset: the ONNX's own (test-tiny), read from its metadata
    res = CliRunner().invoke(app, ["pipeline", "--onnx", str(tiny_onnx.onnx_path), "--iters", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] and summary["schema"] == "inti-export/pipeline/1" and summary["preset"] == "test-tiny"
    steps = {s["name"]: s for s in summary["steps"]}
    assert list(steps) == ["export", "engine", "parity", "bench"]
    assert steps["parity"]["status"] == "ok" and steps["bench"]["status"] == "ok" and steps["bench"]["reason"] == ""
    # the ONNX was given: the export step is skipped, and says so
    assert steps["export"]["status"] == "skipped" and steps["export"]["reason"] == "the artifact was given"
    assert steps["export"]["detail"].startswith("given: --onnx")
    has_trt = any(importlib.util.find_spec(m) for m in ("tensorrt", "tensorrt_rtx"))
    assert steps["engine"]["status"] == ("ok" if has_trt else "skipped")
    assert all(s["status"] in ("ok", "failed", "skipped", "not run") for s in steps.values())
    # the folder stands alone: the ONNX and its manifest copied in, byte for byte
    assert (out / "model.onnx").read_bytes() == tiny_onnx.onnx_path.read_bytes()
    assert (out / "model.onnx.json").read_bytes() == tiny_onnx.manifest_path.read_bytes()
    assert (out / "parity.json").exists() and (out / "bench.json").exists()
    if has_trt:
        assert (out / "model.fp32.engine").exists() and (out / "model.fp32.engine.json").exists()
        engine_meta = json.loads((out / "model.fp32.engine.json").read_text())
        assert str(out / "model.onnx") in json.dumps(engine_meta)  # built from the copy in the folder


def test_pipeline_export_failure_stops_the_chain(tmp_path):
    """A failing export step (a corrupt checkpoint) is recorded, later steps do not run, exit code 1."""
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02garbage")
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["pipeline", "--preset", "test-tiny", "--checkpoint", str(corrupt), "-o", str(out)])
    assert res.exit_code == 1
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["passed"] and [s["name"] for s in summary["steps"]] == ["export"]
    assert summary["steps"][0]["status"] == "failed" and "corrupt.pt" in summary["steps"][0]["reason"]
    assert not (out / "model.onnx").exists()


def test_pipeline_onnx_of_another_preset_refused(tmp_path, tiny_onnx):
    import onnx

    m = onnx.load(str(tiny_onnx.onnx_path))
    next(p for p in m.metadata_props if p.key == "inti.preset").value = '"inti-b16"'
    other = tmp_path / "other.onnx"
    onnx.save(m, str(other))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["pipeline", "--preset", "test-tiny", "--onnx", str(other), "-o", str(out)])
    assert res.exit_code == 1 and "from preset 'inti-b16', not 'test-tiny'" in res.stderr
    assert not out.exists()
    next(p for p in m.metadata_props if p.key == "inti.preset").value = '"test-tiny"'
    m.metadata_props.add(key="inti.precision", value='"fp16"')
    onnx.save(m, str(other))
    res = CliRunner().invoke(app, ["pipeline", "--preset", "test-tiny", "--onnx", str(other), "-o", str(out)])
    assert res.exit_code == 1 and "is fp16 (inti.precision): give the FP32 export" in res.stderr
    res = CliRunner().invoke(app, ["pipeline", "--preset", "test-tiny", "--onnx", str(tmp_path / "no.onnx"), "-o", str(out)])
    assert res.exit_code == 1 and "no.onnx" in res.stderr and not out.exists()
