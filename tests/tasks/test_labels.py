"""Accuracy against labels in the precision report, the parity gate and optimize (task-inti, 24 test videos)."""

from __future__ import annotations

import json

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.calibration.report import to_markdown
from inti_export.cli import app


def _one_line_error(res, name: str) -> None:
    assert res.exit_code in (1, 2), res.output
    assert_one_line_error(res, name, code=None, quiet=True)


@pytest.fixture
def missing_labels(tmp_path, task_split):
    """A labels file naming a video that is not in its folder (the folder holds real videos)."""
    import shutil

    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(task_split / "test_00000.mp4", folder)
    (folder / "labels.csv").write_text("video,label\ntest_00000.mp4,0\nnope.mp4,1\n")
    return folder / "labels.csv"


# -- the precision report ---------------------------------------------------------------------------
def test_report_adds_accuracy_against_labels(tmp_path, task_onnx, task_split, task_calib_videos):
    out, rep = tmp_path / "m.int8.onnx", tmp_path / "r.json"
    args = ["calibrate", str(task_onnx), "-p", "int8", "--videos", str(task_calib_videos), "--clips", "8",
            "--labels", str(task_split / "labels.csv"), "--report", str(rep), "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "against 24 labels: top-1" in res.output
    report = json.loads(rep.read_text())
    assert report["clips"] == 24 and report["label_count"] == 24 and report["labels"].endswith("labels.csv")
    assert {n.split("#")[0] for n in report["clip_names"]} == {f"test_{i:05d}.mp4" for i in range(24)}
    fp32, int8 = report["precisions"]["fp32"], report["precisions"]["int8"]
    assert fp32["label_top1"] > 0.75 and fp32["label_top5"] == 1.0 and fp32["label_top1_drop_points"] == 0.0
    assert int8["label_top1_drop_points"] == pytest.approx(100 * (fp32["label_top1"] - int8["label_top1"]))
    assert "label_top1" in int8["as_executed"] and "label_top5" in int8["as_executed"]
    md = to_markdown(report)
    assert "top-1 (labels)" in md and f"{100 * fp32['label_top1']:.2f}%" in md


def test_report_labels_refused_before_work(tmp_path, task_onnx, task_split, missing_labels):
    out, rep = tmp_path / "m.fp16.onnx", tmp_path / "r.json"
    base = ["calibrate", str(task_onnx), "-p", "fp16", "--report", str(rep), "-o", str(out)]
    res = CliRunner().invoke(app, [*base, "--labels", str(missing_labels)])
    _one_line_error(res, "nope.mp4")
    assert not out.exists() and not rep.exists()
    # the labelled videos must not also calibrate
    res = CliRunner().invoke(app, ["calibrate", str(task_onnx), "-p", "int8", "--videos", str(task_split),
                                   "--labels", str(task_split / "labels.csv"), "--report", str(rep), "-o", str(out)])
    _one_line_error(res, "would also calibrate")
    assert not out.exists() and not rep.exists()
    res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "missing.onnx"), "-p", "fp16", "--labels",
                                   str(task_split / "labels.csv"), "--report", str(rep)])
    _one_line_error(res, "missing.onnx does not exist")


# -- parity -----------------------------------------------------------------------------------------
def _parity(*args):
    return CliRunner().invoke(app, ["parity", "--preset", "task-inti", *args])


def test_parity_reports_and_gates_accuracy_against_labels(tmp_path, task_checkpoint, task_onnx, task_bad_onnx,
                                                          task_split):
    from inti_export.checks.parity import ParityReport

    labels, rep = task_split / "labels.csv", tmp_path / "parity.json"
    common = ["--checkpoint", str(task_checkpoint), "--labels", str(labels), "--report", str(rep)]
    res = _parity("--onnx", str(task_onnx), *common)
    assert res.exit_code == 0, res.output
    assert "accuracy against 24 labels" in res.stdout
    report = ParityReport.from_dict(json.loads(rep.read_text()))
    assert report.passed and len(report.clips) == 24 and report.max_top1_drop == 1.0
    torch_acc, ort_acc = report.label_accuracy
    assert (torch_acc.runner, ort_acc.runner) == ("torch-cpu", "ort-cpu") and torch_acc.count == 24
    assert torch_acc.top1 > 0.75 and abs(ort_acc.drop_points) <= 1.0 and report.label_failures == []
    # the ONNX of a perturbed checkpoint loses accuracy: the label gate fails and names the runner
    res = _parity("--onnx", str(task_bad_onnx), *common, "--max-top1-drop", "2")
    assert res.exit_code == 1
    (line,) = [x for x in res.stderr.splitlines() if "FAILED" in x]
    assert line.startswith("parity: FAILED: ort-cpu loses") and "points of top-1 against the labels (> 2" in line
    data = json.loads(rep.read_text())
    assert data["passed"] is False and data["label_accuracy"][1]["drop_points"] > 2


def test_parity_labels_refused_before_work(tmp_path, task_onnx, task_split, missing_labels):
    rep = tmp_path / "parity.json"
    res = _parity("--onnx", str(task_onnx), "--labels", str(missing_labels), "--report", str(rep))
    _one_line_error(res, "nope.mp4")
    res = CliRunner().invoke(app, ["parity", "--preset", "test-tiny", "--onnx", str(task_onnx), "--labels",
                                   str(task_split / "labels.csv"), "--report", str(rep)])
    _one_line_error(res, "no classifier head")  # refused before the model or its clips are made
    res = _parity("--onnx", str(task_onnx), "--labels", str(task_split / "labels.csv"), "--random", "2")
    _one_line_error(res, "--random")
    assert not rep.exists()


# -- optimize ---------------------------------------------------------------------------------------
def test_optimize_gates_on_labels(tmp_path, task_checkpoint, task_bad_onnx, task_split, task_calib_videos):
    """The ONNX of a perturbed checkpoint against the shipped one: only the label gate is on (--min-top1 0),
    and it fails the ORT candidate; PyTorch FP32 (the reference itself) passes and is chosen."""
    from inti_export.jobs.optimize import load_report

    out = tmp_path / "opt"
    args = ["optimize", "--onnx", str(task_bad_onnx), "--checkpoint", str(task_checkpoint), "--videos",
            str(task_calib_videos), "--labels", str(task_split / "labels.csv"), "--runners", "torch,ort",
            "--precisions", "fp32", "--batch", "1", "--iters", "1", "--warmup", "0", "--calib-clips", "1",
            "--min-top1", "0", "-o", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    report = load_report(out / "report.json")
    assert report.clips["labels"].endswith("labels.csv") and len(report.clips["heldout"]) == 24
    assert not {n.split("#")[0] for n in report.clips["heldout"]} & {n.split("#")[0] for n in report.clips["calibration"]}
    torch_c, ort_c = (next(c for c in report.candidates if c.runner == r) for r in ("torch", "ort"))
    assert torch_c.accuracy.label_top1 > 0.75 and torch_c.accuracy.label_top1_drop_points == 0 and torch_c.gate.passed
    assert ort_c.accuracy.label_top1_drop_points > 1 and not ort_c.gate.passed
    (why,) = ort_c.gate.failures
    assert why.startswith("loses") and "against the labels (> 1)" in why
    assert report.choice.candidate == torch_c.id and "against the labels" in report.choice.reason
    assert "--labels" in ort_c.command and "against the labels" in report.gate
    assert "labels top-1" in res.output


def test_optimize_labels_refused_before_work(tmp_path, task_onnx, task_split, missing_labels):
    out = tmp_path / "opt"
    base = ["optimize", "--onnx", str(task_onnx), "-o", str(out)]
    _one_line_error(CliRunner().invoke(app, [*base, "--labels", str(missing_labels)]), "nope.mp4")
    res = CliRunner().invoke(app, [*base, "--labels", str(task_split / "labels.csv"), "--videos", str(task_split)])
    _one_line_error(res, "never calibrate")
    assert not out.exists()
