"""Every command refuses bad input with one line on stderr, no traceback, and no file left behind.

One table of cases over every command; each runs in a fresh folder that holds its inputs, and the
folder must look the same afterwards. Then SIGINT and SIGTERM, sent mid-write to `onnx` and
mid-build to `trt`, must exit non-zero and leave the output folder as it was.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers import assert_one_line_error, cli_env
from onnx import TensorProto, helper
from typer.testing import CliRunner

from inti_export.cli import app


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_onnx):
    """Files the cases refer to by name: good, foreign, broken and hostile inputs; no engine, so the cases
    that use these run without TensorRT."""
    d = tmp_path_factory.mktemp("cli-inputs")
    shutil.copy(tiny_onnx.onnx_path, d / "tiny.onnx")
    shutil.copy(tiny_onnx.manifest_path, d / "tiny.onnx.json")
    (d / "notonnx.onnx").write_text("this is not an ONNX file\n")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    foreign = helper.make_model(helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y]))
    onnx.save(foreign, d / "foreign.onnx")
    other = onnx.load(d / "tiny.onnx")
    helper.set_model_props(other, {**{p.key: p.value for p in other.metadata_props}, "inti.note": "another export"})
    onnx.save(other, d / "other.onnx")  # same graph, different bytes: not the ONNX the engine was built from

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, d / "evil.pt")
    (d / "a-file").write_text("not a folder\n")
    (d / "outdir").mkdir()
    return d


@pytest.fixture(scope="module")
def engine_inputs(tmp_path_factory, inputs, tiny_engine):
    """`inputs` plus the session's test-tiny engine and three broken copies of it; skips without a
    TensorRT module (tensorrt or tensorrt_rtx) to build the engine."""
    if tiny_engine is None:
        pytest.skip("no TensorRT module (tensorrt or tensorrt_rtx) to build the engine these cases use")
    d = tmp_path_factory.mktemp("cli-engine-inputs")
    shutil.copytree(inputs, d, dirs_exist_ok=True)
    engine, manifest = tiny_engine
    shutil.copy(engine, d / "tiny.engine")
    shutil.copy(manifest, d / "tiny.engine.json")
    (d / "random.engine").write_bytes(np.random.default_rng(0).bytes(4096))
    shutil.copy(manifest, d / "random.engine.json")  # a manifest whose hash the bytes do not match
    bad = (d / "tiny.engine.json").read_text().replace('"profiles": [', '"profiles": "oops", "_was": [', 1)
    shutil.copy(engine, d / "oops.engine")
    (d / "oops.engine.json").write_text(bad)
    return d


LONG = "x" * 252 + ".onnx"  # 257 bytes: over what a Linux file name may be

# (id, argv with {in} for the inputs folder, substring the one stderr line must contain)
CASES = [
    ("parity-not-onnx", ["parity", "--onnx", "{in}/notonnx.onnx"], "not a readable ONNX"),
    ("parity-foreign", ["parity", "--onnx", "{in}/foreign.onnx", "--preset", "test-tiny"], "--allow-foreign"),
    ("parity-foreign-allowed", ["parity", "--onnx", "{in}/foreign.onnx", "--preset", "test-tiny", "--allow-foreign"],
     "has inputs ['x']"),
    ("parity-report-missing-folder", ["parity", "--onnx", "{in}/tiny.onnx", "--report", "{in}/nope/r.json"],
     "does not exist"),
    ("parity-random-negative", ["parity", "--onnx", "{in}/tiny.onnx", "--random", "-2"], "'--random'"),
    ("parity-bad-tolerance", ["parity", "--onnx", "{in}/tiny.onnx", "--tolerance", "int4"], "'int4'"),
    ("parity-nothing", ["parity"], "nothing to compare"),
    ("parity-engine-missing", ["parity", "--onnx", "{in}/tiny.onnx", "--engine", "{in}/none.engine", "--allow-skip"],
     "none.engine"),
    ("parity-engine-random-bytes", ["parity", "--onnx", "{in}/tiny.onnx", "--engine", "{in}/random.engine",
                                    "--allow-skip"], "does not match its manifest"),
    ("parity-engine-other-onnx", ["parity", "--onnx", "{in}/other.onnx", "--engine", "{in}/tiny.engine",
                                  "--allow-skip"], "another ONNX"),
    ("parity-engine-bad-manifest", ["parity", "--onnx", "{in}/tiny.onnx", "--engine", "{in}/oops.engine",
                                    "--allow-skip"], "profiles"),
    ("inspect-bad-manifest", ["inspect", "{in}/oops.engine"], "profiles"),
    ("inspect-missing", ["inspect", "{in}/none.engine"], "none.engine"),
    ("trt-output-is-input", ["trt", "{in}/tiny.onnx", "-o", "{in}/tiny.onnx"], "is also an input"),
    ("trt-output-folder", ["trt", "{in}/tiny.onnx", "-o", "{in}/outdir"], "is a directory"),
    ("trt-output-missing-folder", ["trt", "{in}/tiny.onnx", "-o", "{in}/nope/m.engine"], "does not exist"),
    ("trt-foreign", ["trt", "{in}/foreign.onnx", "-o", "{in}/f.engine"], "--allow-foreign"),
    ("trt-not-onnx", ["trt", "{in}/notonnx.onnx", "-o", "{in}/n.engine"], "not a readable ONNX"),
    ("trt-bad-batch", ["trt", "{in}/tiny.onnx", "-o", "{in}/b.engine", "--batch", "4:2:1"], "4:2:1"),
    ("trt-two-precisions", ["trt", "{in}/tiny.onnx", "-o", "{in}/p.engine", "--fp16", "--int8"], "choose one precision"),
    ("calibrate-output-folder", ["calibrate", "{in}/tiny.onnx", "--precision", "fp16", "-o", "{in}/outdir"],
     "directory"),
    ("calibrate-output-is-input", ["calibrate", "{in}/tiny.onnx", "--precision", "fp16", "-o", "{in}/tiny.onnx"],
     "input"),
    ("calibrate-foreign", ["calibrate", "{in}/foreign.onnx", "--precision", "fp16", "-o", "{in}/f16.onnx"],
     "--allow-foreign"),
    ("calibrate-bad-precision", ["calibrate", "{in}/tiny.onnx", "--precision", "int4", "-o", "{in}/x.onnx"], "'int4'"),
    ("bench-bad-precision", ["bench", "--preset", "test-tiny", "--precision", "int4"], "'int4'"),
    ("bench-trt-without-engine", ["bench", "--preset", "test-tiny", "--runners", "trt"], "needs --engine"),
    ("bench-unknown-runner", ["bench", "--preset", "test-tiny", "--runners", "tensorflow"], "tensorflow"),
    ("bench-batch-zero", ["bench", "--preset", "test-tiny", "--batch", "0"], "batch"),
    ("bench-plot-missing-folder", ["bench", "--preset", "test-tiny", "--plot", "{in}/nope/p.png"], "does not exist"),
    ("bench-unknown-preset", ["bench", "--preset", "nope"], "unknown preset 'nope'"),
    ("pipeline-output-is-file", ["pipeline", "--preset", "test-tiny", "-o", "{in}/a-file"], "is a file"),
    ("pipeline-bad-precision", ["pipeline", "--preset", "test-tiny", "--precision", "int4", "-o", "{in}/p"], "'int4'"),
    ("onnx-unknown-preset", ["onnx", "--preset", "nope", "-o", "{in}/m.onnx"], "unknown preset 'nope'"),
    ("onnx-missing-folder", ["onnx", "--preset", "test-tiny", "-o", "{in}/nope/m.onnx"], "does not exist"),
    ("onnx-output-folder", ["onnx", "--preset", "test-tiny", "-o", "{in}/outdir"], "is a directory"),
    ("onnx-name-too-long", ["onnx", "--preset", "test-tiny", "-o", "{in}/" + LONG], "shorten it"),
    ("onnx-checkpoint-with-code", ["onnx", "--preset", "test-tiny", "--checkpoint", "{in}/evil.pt", "--no-verify",
                                   "-o", "{in}/e.onnx"], "contains code"),
    ("onnx-checkpoint-missing", ["onnx", "--preset", "test-tiny", "--checkpoint", "{in}/none.pt", "-o", "{in}/c.onnx"],
     "none.pt"),
    ("onnx-low-opset", ["onnx", "--preset", "test-tiny", "--opset", "12", "-o", "{in}/o.onnx"], "'--opset'"),
    ("flops-unknown-preset", ["flops", "--preset", "nope"], "unknown preset 'nope'"),
    ("unknown-command", ["nope"], "No such command 'nope'"),
]


ENGINE_FILES = ("{in}/tiny.engine", "{in}/random.engine", "{in}/oops.engine")  # need `engine_inputs`


def _listing(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize(
    ("argv", "expect"),
    [pytest.param(*c[1:], marks=[pytest.mark.trt] if set(c[1]) & set(ENGINE_FILES) else []) for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_is_one_line_and_leaves_nothing(request, argv, expect):
    folder = request.getfixturevalue("engine_inputs" if set(argv) & set(ENGINE_FILES) else "inputs")
    before = _listing(folder)
    res = CliRunner().invoke(app, [a.replace("{in}", str(folder)) for a in argv])
    assert_one_line_error(res, expect, code=None)
    assert _listing(folder) == before


def test_help_shows_no_bool_placeholder():
    for command in ("trt", "parity", "onnx", "bench", "pipeline", "calibrate"):
        res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
        assert res.exit_code == 0 and "<bool>" not in res.stdout, command


def _spawn(argv: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "inti_export.cli", "-v", *argv], env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        if proc.poll() is not None:
            pytest.fail(f"finished before the signal could be sent: rc {proc.returncode}\n{proc.stderr.read()}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("timed out waiting for the command to reach the point to interrupt")
        time.sleep(0.02)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_write_to_onnx_leaves_folder_as_it_was(tmp_path, sig):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("already here\n")
    before = _listing(out)
    proc = _spawn(["onnx", "--preset", "test-tiny", "-o", str(out / "m.onnx")])
    _wait_for(lambda: any(p.name.endswith(".tmp") for p in out.iterdir()), proc)  # the export is writing
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err and "interrupted" in err
    assert _listing(out) == before


@pytest.mark.slow
@pytest.mark.trt
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_mid_build_to_trt_leaves_folder_as_it_was(tmp_path, tiny_onnx, tiny_engine, sig):
    if tiny_engine is None:
        pytest.skip("no TensorRT module (tensorrt or tensorrt_rtx) to build with")
    out = tmp_path / "out"
    out.mkdir()
    before = _listing(out)
    proc = _spawn(["trt", str(tiny_onnx.onnx_path), "-o", str(out / "m.engine")])
    lines: list[str] = []

    def building() -> bool:  # the builder has started: TensorRT is past parsing
        line = proc.stderr.readline()
        lines.append(line)
        return "building" in line

    _wait_for(building, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    err = "".join(lines) + err
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert _listing(out) == before


def test_signal_handlers_are_put_back_after_a_command():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert CliRunner().invoke(app, ["flops", "--preset", "test-tiny"]).exit_code == 0
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
