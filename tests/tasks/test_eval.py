"""The motion task and the shipped checkpoint: accuracy against labels, from a fresh clone."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.checks.evaluate import evaluate, gate_failures
from inti_export.cli import app
from inti_export.errors import VideoError
from inti_export.metrics import topk_accuracy
from inti_export.tasks.motion import CLASSES, make_split, read_labels
from inti_export.video.labels import labelled_clips


def _shipped(name: str):
    return resources.files("inti_export.models").joinpath("checkpoints", name)


@pytest.fixture(scope="session")
def record():
    """What benchmarks/eval_task.py measured for the shipped checkpoint (docs/benchmarks.md)."""
    return json.loads(_shipped("task-inti.json").read_text())


@pytest.fixture(scope="session")
def checkpoint():
    return str(_shipped("task-inti.safetensors"))


@pytest.fixture(scope="session")
def held_out_split(tmp_path_factory, record):
    """The test split regenerated from its seed, as a fresh clone would."""
    folder = tmp_path_factory.mktemp("task-test")
    make_split(folder, "test", record["test_count"])
    return folder


@pytest.fixture(scope="session")
def trained(checkpoint):
    from inti_export.models import create_model

    return create_model("task-inti", checkpoint=checkpoint)


@pytest.fixture(scope="session")
def held_out_clips(trained, held_out_split):
    return labelled_clips(trained.cfg, held_out_split, held_out_split / "labels.csv")


def test_shipped_checkpoint_reaches_recorded_accuracy(trained, held_out_clips, held_out_split, record):
    clips, labels, _ = held_out_clips
    report = evaluate(trained, clips, labels, videos=held_out_split)
    (torch_acc,) = report.results
    assert abs(100 * torch_acc.top1 - 100 * record["top1"]) <= 1.0
    assert torch_acc.top1 > 1 / len(CLASSES) + 0.2  # well above chance
    assert torch_acc.top5 >= torch_acc.top1
    assert gate_failures(report, expect_top1=100 * record["top1"], max_drop=1.0) == []


def test_model_needs_motion(trained, held_out_clips):
    """A video made of its first frame repeated does not move: the model calls it still, whatever its label."""
    import torch

    clips, _, _ = held_out_clips
    still = torch.from_numpy(clips[:64, :1]).expand(-1, clips.shape[1], -1, -1, -1).contiguous()
    with torch.no_grad():
        pred = trained(still).argmax(-1).numpy()
    assert (pred == CLASSES.index("still")).mean() > 0.9


def test_perturbed_checkpoint_loses_accuracy_and_the_gate_says_so(tmp_path, task_bad_checkpoint, held_out_split, record):
    """The gate the shipped checkpoint passes (test above) fails on a perturbed copy, and says why."""
    bad = task_bad_checkpoint
    expect = f"{100 * record['top1']:.2f}"
    args = ["eval", "--preset", "task-inti", "--videos", str(held_out_split), "--expect-top1", expect, "--max-drop", "1"]
    res = CliRunner().invoke(app, [*args, "--checkpoint", str(bad), "--report", str(tmp_path / "bad.json")])
    assert res.exit_code == 1
    assert "eval: FAILED" in res.output and "below the expected" in res.output
    data = json.loads((tmp_path / "bad.json").read_text())
    assert data["results"][0]["top1"] < record["top1"] - 0.05
    (status,) = data["runner_status"]
    assert (status["runner"], status["status"]) == ("torch-cpu", "failed") and "below the expected" in status["reason"]
    assert data["gate"]["passed"] is False and data["gate"]["failures"] == [status["reason"]]


@pytest.mark.slow
def test_onnx_accuracy_matches_pytorch(trained, held_out_clips, task_onnx):
    clips, labels, _ = held_out_clips
    report = evaluate(trained, clips, labels, onnx_path=task_onnx)
    assert [r.runner for r in report.results] == ["torch-cpu", "ort-cpu"]
    assert abs(report.drop_points("ort-cpu")) <= 1.0
    assert [(r.runner, r.status, r.reason) for r in report.runner_status] == [("torch-cpu", "ok", ""), ("ort-cpu", "ok", "")]


@pytest.mark.slow
def test_int8_loses_at_most_one_point(tmp_path, trained, held_out_clips, task_onnx):
    """ORT quantize_static (QDQ, max calibration on 32 train-split clips) on the trained model."""
    from inti_export.calibration.precision import convert_precision
    from inti_export.video.clipset import load_clips
    from inti_export.video.preprocess import preprocess_for

    clips, labels, _ = held_out_clips
    (tmp_path / "calib").mkdir()
    make_split(tmp_path / "calib", "train", 32)
    calib = load_clips(tmp_path / "calib", preprocess_for(trained.cfg)).clips
    int8 = convert_precision(task_onnx, "int8", tmp_path / "int8.onnx", calib_data=calib, backend="ort")
    report = evaluate(trained, clips, labels, onnx_path=int8)
    assert report.drop_points("ort-cpu") <= 1.0
    assert report.results[1].top1 > 0.9


def test_split_is_deterministic(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    make_split(a, "val", 3)
    make_split(b, "val", 3)
    assert (a / "labels.csv").read_text() == (b / "labels.csv").read_text()
    assert read_labels(a / "labels.csv") == {"val_00000.mp4": 0, "val_00001.mp4": 1, "val_00002.mp4": 2}


def test_topk_accuracy():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.5], [0.2, 0.3, 0.1]], dtype=np.float32)
    labels = np.array([1, 2, 2])
    assert topk_accuracy(logits, labels, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(logits, labels, 2) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("video,label\nx.mp4,north\n", "neither an integer"),
        ("name,cls\nx.mp4,1\n", "needs columns"),
        ("video,label\n", "no rows"),
    ],
)
def test_bad_labels_file_is_one_line(tmp_path, text, match):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(VideoError, match=match):
        read_labels(path)


def test_cli_names_missing_labelled_video(tmp_path):
    (tmp_path / "labels.csv").write_text("video,label\nnope.mp4,1\n")
    make_split(tmp_path, "val", 1)  # writes val_00000.mp4 and replaces labels.csv
    (tmp_path / "labels.csv").write_text("video,label\nnope.mp4,1\n")
    res = CliRunner().invoke(app, ["eval", "--preset", "task-inti", "--videos", str(tmp_path)])
    assert_one_line_error(res, "nope.mp4", quiet=True)


def test_cli_refuses_a_preset_without_classes(tmp_path):
    make_split(tmp_path, "val", 1)
    res = CliRunner().invoke(app, ["eval", "--preset", "test-tiny", "--videos", str(tmp_path)])
    assert_one_line_error(res, "no classifier head", quiet=True)


def test_gate_sets_each_runner_status():
    """The eval gate in the library (checks/evaluate.py): per-runner status and reason, `not run` for a skip."""
    from inti_export.checks.accuracy import LabelAccuracy, runner_status
    from inti_export.checks.evaluate import EvalReport, apply_gate

    results = [LabelAccuracy("torch-cpu", 0.9, 1.0, 9, 10), LabelAccuracy("ort-cpu", 0.7, 1.0, 7, 10, 20.0)]
    report = EvalReport("p", "v", "l", 10, results, skipped={"trt": "no TensorRT module"},
                        runner_status=runner_status(["torch-cpu", "ort-cpu"], {"trt": "no TensorRT module"}, {}))
    assert gate_failures(report, 90.0, 1.0, allow_skip=True) == ["ort-cpu loses 20.00 points of top-1 (> 1)"]
    failures = apply_gate(report, 90.0, 1.0)
    assert failures[-1].startswith("runner(s) ['trt'] could not run") and report.gate["passed"] is False
    assert [(r.runner, r.status) for r in report.runner_status] == [
        ("torch-cpu", "ok"), ("ort-cpu", "failed"), ("trt", "not run")]
    assert report.runner_status[0].reason == "" and report.runner_status[2].reason == "no TensorRT module"
    assert report.to_dict()["drop_points"] == {"ort-cpu": 20.0}
