"""Issue 24's probe rows that need no GPU: each refused in one line before any work, inputs untouched.

Reports never land on an input (a labelled video, the labels, an input's manifest); a labels CSV is
read one way everywhere (a BOM accepted, a video labelled twice refused); an ONNX exported from other
weights is named as such; read-only outputs, out-of-range numbers and folders given for files are
refused first; optimize writes its report even when nothing can be chosen, and exits 1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import assert_one_line_error, cli_env, run_readonly
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.fileio import sha256_file


def _snapshot(*folders: Path) -> dict[str, str]:
    return {str(p): sha256_file(p) for f in folders for p in sorted(Path(f).rglob("*")) if p.is_file()}


def _refused(argv: list, expect: str, code: int = 1) -> str:
    """Run the CLI in-process: one `error: ...` line containing `expect`, exit `code`."""
    return assert_one_line_error(CliRunner().invoke(app, [str(a) for a in argv]), expect, code=code)


@pytest.fixture(scope="module")
def work(tmp_path_factory, tiny_onnx, task_checkpoint):
    """4 labelled task videos; the session's test-tiny ONNX and task-inti exported with the shipped
    checkpoint, each with its manifest; `out/`, which every refusal must leave empty; `csv/` for labels."""
    from inti_export.exporter import export_preset
    from inti_export.tasks.motion import make_split

    d = tmp_path_factory.mktemp("bad-input")
    for sub in ("videos", "out", "csv"):
        (d / sub).mkdir()
    make_split(d / "videos", "test", 4)
    shutil.copy(tiny_onnx.onnx_path, d / "m.onnx")
    shutil.copy(tiny_onnx.manifest_path, d / "m.onnx.json")
    export_preset(d / "task.onnx", preset="task-inti", checkpoint=task_checkpoint, verify=False)
    return d


# -- row 2: a report never replaces an input ---------------------------------------------------------
@pytest.mark.parametrize("case", ["eval-video", "eval-manifest", "parity-video", "parity-manifest",
                                  "calibrate-manifest", "calibrate-labelled-folder"])
def test_report_on_an_input_is_refused(work, case):
    v, m = work / "videos", work / "m.onnx"
    argv, expect = {
        "eval-video": (["eval", "--videos", v, "--preset", "task-inti", "--report", v / "test_00003.mp4"],
                       "inside the input folder"),
        "eval-manifest": (["eval", "--videos", v, "--onnx", m, "--report", work / "m.onnx.json"], "manifest of the input"),
        "parity-video": (["parity", "--onnx", m, "--videos", v, "--report", v / "test_00001.mp4"],
                         "inside the input folder"),
        "parity-manifest": (["parity", "--onnx", m, "--random", "2", "--report", work / "m.onnx.json"],
                            "manifest of the input"),
        "calibrate-manifest": (["calibrate", m, "-p", "fp16", "-o", work / "out" / "m16.onnx", "--report",
                                work / "m.onnx.json"], "manifest of the input"),
        "calibrate-labelled-folder": (["calibrate", m, "-p", "fp16", "-o", work / "out" / "m16.onnx", "--labels",
                                       v / "labels.csv", "--report", v / "r.json"], "inside the input folder"),
    }[case]
    before = _snapshot(work)
    _refused(argv, expect)
    assert _snapshot(work) == before


# -- rows 13 and 17: one labels reader ----------------------------------------------------------------
def _labels(work: Path, name: str, data: bytes) -> Path:
    path = work / "csv" / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("command", ["eval", "parity", "calibrate", "optimize"])
def test_video_labelled_twice_is_refused_by_every_command(work, command):
    v = work / "videos"
    dup = v / "dup.csv"
    dup.write_bytes(b"video,label\ntest_00000.mp4,0\ntest_00000.mp4,1\n")
    try:
        argv = {
            "eval": ["eval", "--videos", v, "--preset", "task-inti", "--labels", dup],
            "parity": ["parity", "--onnx", work / "m.onnx", "--preset", "task-inti", "--labels", dup],
            "calibrate": ["calibrate", work / "task.onnx", "-p", "fp16", "-o", work / "out" / "d.onnx", "--labels", dup,
                          "--report", work / "out" / "d.json"],
            "optimize": ["optimize", "--preset", "task-inti", "--labels", dup, "-o", work / "out" / "opt-dup"],
        }[command]
        _refused(argv, "line 3: test_00000.mp4 already labelled 0 on line 2")
    finally:
        dup.unlink()
    assert not (work / "out" / "d.onnx").exists() and not (work / "out" / "opt-dup").exists()


def test_labels_with_a_bom_are_read_and_other_encodings_named(work):
    from inti_export.errors import VideoError
    from inti_export.tasks.motion import read_labels

    bom = _labels(work, "bom.csv", b"\xef\xbb\xbfvideo,label\r\ntest_00000.mp4,0\r\ntest_00001.mp4,horizontal\r\n")
    assert read_labels(bom) == {"test_00000.mp4": 0, "test_00001.mp4": 1}
    latin = _labels(work, "latin.csv", "video,label\ntést.mp4,0\n".encode("latin-1"))
    with pytest.raises(VideoError, match=r"cannot read labels file .*latin.csv: not UTF-8 text \(byte 0xe9"):
        read_labels(latin)
    with pytest.raises(VideoError, match="label '²' is neither an integer"):  # isdigit, but not int()
        read_labels(_labels(work, "sup.csv", "video,label\ntest_00000.mp4,²\n".encode()))
    with pytest.raises(VideoError, match="is a directory"):
        read_labels(work / "videos")
    _refused(["eval", "--videos", work / "videos", "--preset", "task-inti", "--labels", latin], "cannot read labels")


def test_eval_accepts_labels_with_a_bom(work, task_checkpoint):
    bom = work / "videos" / "labels-bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + (work / "videos" / "labels.csv").read_bytes())
    try:
        res = CliRunner().invoke(app, ["eval", "--videos", str(work / "videos"), "--preset", "task-inti",
                                       "--checkpoint", str(task_checkpoint), "--labels", str(bom)])
    finally:
        bom.unlink()
    assert res.exit_code == 0 and "eval: passed" in res.stdout, res.output


# -- row 14: an ONNX of other weights ---------------------------------------------------------------
@pytest.mark.parametrize("command", ["parity", "pipeline"])
def test_onnx_of_other_weights_is_named_before_comparing(work, command):
    onnx_path = work / "task.onnx"  # exported with the shipped checkpoint; run here without it
    argv = {"parity": ["parity", "--onnx", onnx_path, "--random", "2"],
            "pipeline": ["pipeline", "--onnx", onnx_path, "-o", work / "out" / "p"]}[command]
    line = _refused(argv, "was exported from other weights")
    assert "no --checkpoint was given" in line and "pass --checkpoint" in line
    assert list((work / "out").iterdir()) == []


def test_onnx_of_the_given_weights_passes_the_check(work, task_checkpoint):
    res = CliRunner().invoke(app, ["parity", "--onnx", str(work / "task.onnx"), "--random", "2", "--checkpoint",
                                   str(task_checkpoint)])
    assert res.exit_code == 0 and "parity: passed" in res.stdout, res.output


# -- row 15: read-only outputs, refused before any work ----------------------------------------------
@pytest.mark.parametrize("command", ["task", "pipeline", "optimize", "optimize-triton-repo"])
def test_readonly_output_is_refused_before_work(tmp_path, command):
    ro = tmp_path / "ro"
    ro.mkdir()
    argv = {"task": ["task", ro, "--count", "2"],
            "pipeline": ["pipeline", "--preset", "test-tiny", "-o", ro / "p"],
            "optimize": ["optimize", "--preset", "test-tiny", "-o", ro / "o"],
            "optimize-triton-repo": ["optimize", "--preset", "test-tiny", "-o", tmp_path / "o", "--triton-repo",
                                     ro / "repo"]}[command]
    assert_one_line_error(run_readonly(ro, argv), "is not writable")
    assert list(ro.iterdir()) == [] and not (tmp_path / "o").exists()


# -- row 8: no choice still writes the report ---------------------------------------------------------
def test_optimize_without_a_choice_writes_the_report_and_exits_1(tmp_path):
    from inti_export.jobs.optimize import Accuracy, LatencyRow, load_report, plot_pareto

    out = tmp_path / "o"
    res = CliRunner().invoke(app, ["optimize", "--preset", "test-tiny", "--runners", "torch", "--precisions", "fp32",
                                   "--batch", "100000000", "--iters", "1", "--warmup", "0", "-o", str(out)])
    assert res.exit_code == 1, res.output
    (line,) = [x for x in res.stderr.splitlines() if x.strip()]
    assert line.startswith("optimize: no choice: ") and "torch-fp32" in line and "MemoryError" in line, line
    report = load_report(out / "report.json")
    assert report.choice.candidate is None and (out / "pareto.png").stat().st_size > 0
    assert json.loads((out / "report.json").read_text())["outputs"]["report"] == str(out / "report.json")
    # one point (the log axis holds a single value) draws too
    c = report.candidates[0]
    c.status, c.reason = "ok", ""
    c.accuracy = Accuracy(4, 1.0, 1.0, 0.0, 1.0, 1.0, "own logits", "torch")
    c.speed = [LatencyRow(1, 1, 0, 5.0, 5.0, 5.0, 5.0, 5.0, 200.0)]
    plot_pareto(report, tmp_path / "one.png")
    assert (tmp_path / "one.png").stat().st_size > 0


# -- rows 21 and 22: ranges, options that need another, folders for files ------------------------------
@pytest.mark.parametrize(("argv", "expect", "code"), [
    (["eval", "--videos", "{w}/videos", "--preset", "task-inti", "--expect-top1", "1e308"], "0<=x<=100", 2),
    (["eval", "--videos", "{w}/videos", "--preset", "task-inti", "--expect-top1", "nan"], "--expect-top1 nan", 1),
    (["task", "{w}/out", "--count", "99999999999999999999"], "a split has 1 to 100000 videos", 1),
    (["parity", "--onnx", "{w}/m.onnx", "--max-top1-drop", "3"], "only with --labels", 1),
    (["optimize", "--preset", "test-tiny", "-o", "{w}/out/o", "--max-top1-drop", "3"], "only with --labels", 1),
    (["pipeline", "--onnx", "{w}/videos", "-o", "{w}/out/p"], "--onnx {w}/videos is a directory", 1),
    (["optimize", "--onnx", "{w}/videos", "-o", "{w}/out/o"], "--onnx {w}/videos is a directory", 1),
    (["eval", "--videos", "{w}/videos", "--preset", "task-inti", "--checkpoint", "{w}/out"], "is a directory", 1),
    (["inspect", "{w}/m.onnx"], "is an ONNX, not an engine", 1),
    (["task", "{w}/m.onnx", "--count", "2"], "m.onnx is a file; give a directory", 1),
    (["parity", "--onnx", "{w}/task.onnx", "--labels", "{w}/videos/labels.csv", "--max-top1-drop", "nan"],
     "--max-top1-drop nan", 1),
], ids=["expect-top1-huge", "expect-top1-nan", "task-count-huge", "parity-drop-without-labels",
        "optimize-drop-without-labels", "pipeline-onnx-dir", "optimize-onnx-dir", "eval-checkpoint-dir",
        "inspect-onnx", "task-dir-is-file", "parity-drop-nan"])
def test_ranges_and_kinds_are_checked_first(work, argv, expect, code):
    before = _snapshot(work)
    _refused([a.replace("{w}", str(work)) for a in argv], expect.replace("{w}", str(work)), code)
    assert _snapshot(work) == before and list((work / "out").iterdir()) == []


def test_only_undecodable_videos_give_one_line_not_a_warning_per_video_first(tmp_path):
    """The probe's one `unclear` case: each bad video was logged as a warning, then named again in the error."""
    (tmp_path / "junk").mkdir()
    for name in ("a.mp4", "b.mp4"):
        (tmp_path / "junk" / name).write_text("not a video\n")
    res = subprocess.run([sys.executable, "-m", "inti_export.cli", "onnx", "-p", "test-tiny", "--videos",
                          str(tmp_path / "junk"), "-o", str(tmp_path / "m.onnx")], env=cli_env(), capture_output=True,
                         text=True, timeout=300)
    assert_one_line_error(res, "no clips could be loaded from 2 video(s): a.mp4", "b.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk"]
