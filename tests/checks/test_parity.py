"""The parity gate: passes on a faithful export, fails and names the layer on a perturbed one."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from helpers import assert_one_line_error
from onnx import numpy_helper
from typer.testing import CliRunner

from inti_export.checks.compare import TOLERANCES, compare_arrays
from inti_export.checks.parity import ParityReport, run_parity
from inti_export.cli import app
from inti_export.errors import ParityError


def _perturb(src, dst, name, delta=0.5):
    m = onnx.load(str(src))
    (init,) = [i for i in m.graph.initializer if i.name == name]
    arr = numpy_helper.to_array(init).copy()
    arr.flat[0] += delta
    init.CopyFrom(numpy_helper.from_array(arr, name))
    onnx.save(m, str(dst))


def test_parity_passes_on_real_clips(tiny_model, tiny_onnx, tiny_clips):
    report = run_parity(tiny_model, tiny_clips.clips, tiny_clips.names, onnx_path=tiny_onnx.onnx_path)
    assert report.passed and report.runners == ["torch-cpu", "ort-cpu"]
    (c,) = report.comparisons
    assert c.rel_to_scale < 1e-4 and c.cosine_min > 0.99999 and c.top1_agreement == 1.0
    assert report.divergence is None
    assert report.notes["ort-cpu"].startswith("as executed")
    assert [(r.runner, r.status, r.reason) for r in report.runner_status] == [("torch-cpu", "ok", ""), ("ort-cpu", "ok", "")]


def test_perturbed_weight_fails_and_names_block(tmp_path, tiny_model, tiny_onnx, tiny_clips):
    bad = tmp_path / "bad.onnx"
    _perturb(tiny_onnx.onnx_path, bad, "visual.transformer.resblocks.2.mlp.c_fc.bias")
    report = run_parity(tiny_model, tiny_clips.clips, tiny_clips.names, onnx_path=bad)
    assert not report.passed
    assert report.divergence.first == "block 2 (0-based resblocks[2])"
    names = [c.name for c in report.divergence.checks]
    assert names == ["block.0", "inti.1", "block.1", "block.2", "inti.3", "block.3"]
    assert [c.passed for c in report.divergence.checks] == [True, True, True, False, False, False]
    ref, ort = report.runner_status
    assert ref.status == "ok" and ort.status == "failed" and ort.reason.startswith("embedding: ")


def test_perturbed_inti_weight_names_inti_layer(tmp_path, tiny_model, tiny_onnx, tiny_clips):
    bad = tmp_path / "bad_inti.onnx"
    _perturb(tiny_onnx.onnx_path, bad, "inti.1.head_fc2.bias", delta=3.0)
    report = run_parity(tiny_model, tiny_clips.clips, tiny_clips.names, onnx_path=bad)
    assert not report.passed and report.divergence.first == "InTI layer before block 1"


def test_cli_parity_exit_codes_and_report(tmp_path, tiny_onnx):
    runner = CliRunner()
    rep = tmp_path / "parity.json"
    res = runner.invoke(app, ["parity", "--onnx", str(tiny_onnx.onnx_path), "--report", str(rep)])
    assert res.exit_code == 0, res.output
    report = ParityReport.from_dict(json.loads(rep.read_text()))
    assert report.passed and report.preset == "test-tiny" and len(report.clips) == 4
    bad = tmp_path / "bad.onnx"
    _perturb(tiny_onnx.onnx_path, bad, "visual.transformer.resblocks.2.mlp.c_fc.bias")
    res = runner.invoke(app, ["parity", "--onnx", str(bad), "--random", "3", "--report", str(rep)])
    assert res.exit_code == 1
    assert "first divergence" in res.stdout and "block 2" in res.stdout
    data = json.loads(rep.read_text())
    assert data["passed"] is False and data["divergence"]["first"].startswith("block 2")
    assert [(r["runner"], r["status"]) for r in data["runner_status"]] == [("torch-cpu", "ok"), ("ort-cpu", "failed")]
    assert ParityReport.from_dict(data).runner_status[1].reason == data["runner_status"][1]["reason"]


def test_cli_parity_runs_openvino_beside_ort(tmp_path, tiny_onnx):
    """`parity --runners ort,ov`: OpenVINO on the same ONNX, gated like ONNX Runtime (docs/openvino.md)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    rep = tmp_path / "parity.json"
    res = CliRunner().invoke(app, ["parity", "--onnx", str(tiny_onnx.onnx_path), "--runners", "ort,ov", "--random", "2",
                                   "--report", str(rep)])
    assert res.exit_code == 0, res.output
    data = json.loads(rep.read_text())
    assert data["runners"] == ["torch-cpu", "ort-cpu", "ov-cpu"] and data["passed"]
    assert all(c["rel_to_scale"] < 1e-4 for c in data["comparisons"])
    res = CliRunner().invoke(app, ["parity", "--onnx", str(tiny_onnx.onnx_path), "--runners", "torch,ov"])
    assert_one_line_error(res, "--runners torch", "ort, ort-cuda, ov")


def test_wrong_preset_and_bad_tolerance(tiny_onnx, tiny_clips):
    from inti_export.models import create_model

    other = create_model("test-tiny", frames=4)
    with pytest.raises(ParityError, match="frames=8"):
        run_parity(other, tiny_clips.clips[:, :4], tiny_clips.names, onnx_path=tiny_onnx.onnx_path)
    res = CliRunner().invoke(app, ["parity", "--onnx", str(tiny_onnx.onnx_path), "--tolerance", "fp64"])
    assert res.exit_code == 2 and "'--tolerance': 'fp64' is not one of" in res.stderr  # refused while parsing
    with pytest.raises(ParityError, match="unknown tolerance preset 'fp64'"):
        run_parity(other, tiny_clips.clips[:, :4], tiny_clips.names, onnx_path=tiny_onnx.onnx_path, tolerance="fp64")


def test_report_schema_is_checked():
    with pytest.raises(ParityError, match="schema"):
        ParityReport.from_dict({"schema": "something-else"})


def test_compare_logits_topk():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((6, 400)).astype(np.float32)
    c = compare_arrays(ref.copy(), ref, TOLERANCES["fp32"], output="logits", runner="x", reference="y", logits=True)
    assert c.passed and c.top1_agreement == 1.0 and c.top5_agreement == 1.0
    noisy = ref + rng.standard_normal(ref.shape).astype(np.float32)
    c = compare_arrays(noisy, ref, TOLERANCES["fp32"], output="logits", runner="x", reference="y", logits=True)
    assert not c.passed and c.top1_agreement < 1.0 and len(c.failures) >= 2


def test_requested_runner_that_cannot_run_fails_the_gate(tmp_path, tiny_model, tiny_onnx, tiny_clips, tiny_engine):
    import torch

    from inti_export.errors import EngineError

    if torch.cuda.is_available():
        pytest.skip("has a GPU: the TensorRT runner may run")
    if tiny_engine is None:
        pytest.skip("no TensorRT module to build the engine with")
    engine = tiny_engine[0]
    args = (tiny_model, tiny_clips.clips, tiny_clips.names)
    report = run_parity(*args, onnx_path=tiny_onnx.onnx_path, engine_path=engine)
    assert "trt" in report.skipped and all(c.passed for c in report.comparisons) and not report.passed
    assert {r.runner: r.status for r in report.runner_status}["trt"] == "not run"
    report = run_parity(*args, onnx_path=tiny_onnx.onnx_path, engine_path=engine, allow_skip=True)
    assert report.passed
    res = CliRunner().invoke(app, ["parity", "--onnx", str(tiny_onnx.onnx_path), "--engine", str(engine)])
    assert res.exit_code == 1 and "--allow-skip" in res.stderr
    # what can be checked without a GPU is checked before any skip, --allow-skip or not
    with pytest.raises(EngineError, match="not found"):
        run_parity(*args, onnx_path=tiny_onnx.onnx_path, engine_path=tmp_path / "missing.engine", allow_skip=True)
