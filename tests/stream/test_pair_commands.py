"""The stream pair folder (`onnx --stream`) through parity, calibrate, trt, inspect and bench (issue 26)."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.fileio import sha256_file
from inti_export.runtime.stream import load_stream_artifact
from inti_export.runtime.trt.config import gpu_compute_capability
from inti_export.runtime.trt.loader import pick_runtime
from inti_export.vocab import read_metadata

RUNTIME, NO_TRT = pick_runtime(gpu_compute_capability())


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def int8_pair(tiny_stream, tmp_path_factory):
    out = tmp_path_factory.mktemp("pair") / "int8"
    res = _run("calibrate", tiny_stream[0], "-p", "int8", "-o", out, "--clips", 2)
    assert res.exit_code == 0, res.output
    return out


def test_parity_of_the_pair(tiny_stream, tmp_path):
    report = tmp_path / "parity.json"
    res = _run("parity", "--onnx", tiny_stream[0], "--clips", 2, "--report", report)
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    (c,) = data["comparisons"]
    assert c["runner"] == "ort-stem+head" and c["passed"] and c["cosine_min"] >= 0.99999 and c["max_abs_err"] < 1e-5


def test_parity_refuses_a_mixed_pair(tiny_stream, int8_pair, tmp_path):
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_stream[0], mixed)
    shutil.copy(int8_pair / "stem.onnx", mixed / "stem.onnx")  # the INT8 stem beside the FP32 head
    assert_one_line_error(_run("parity", "--onnx", mixed), "come from different models")
    assert_one_line_error(_run("inspect", mixed), "come from different models")


def test_int8_pair_is_linked_and_close(int8_pair, tmp_path):
    artifact = load_stream_artifact(int8_pair)  # the head names the converted stem
    stem_meta = read_metadata(int8_pair / "stem.onnx")
    assert artifact.meta["inti.precision"] == stem_meta["inti.precision"] == "int8"
    assert artifact.meta["inti.stream.stem_sha256"] == sha256_file(int8_pair / "stem.onnx")
    assert artifact.meta["inti.calibration"]["clips"] == 2 and stem_meta["inti.calibration"]["part"] == "stem"
    pair = json.loads((int8_pair / "stream.json").read_text())
    assert pair["precision"] == "int8" and pair["head"]["sha256"] == sha256_file(int8_pair / "head.onnx")
    head_manifest = json.loads((int8_pair / "head.onnx.json").read_text())
    assert head_manifest["partner_sha256"] == sha256_file(int8_pair / "stem.onnx")
    res = _run("parity", "--onnx", int8_pair, "--clips", 2, "--tolerance", "int8")
    assert res.exit_code == 0, res.output


def test_fp16_pair(tiny_stream, tmp_path):
    from inti_export.calibration.stream_pair import convert_pair

    result = convert_pair(tiny_stream[0], "fp16", tmp_path / "fp16")
    assert load_stream_artifact(result.directory).meta["inti.precision"] == "fp16"


@pytest.mark.parametrize("args, fragment", [
    ([], "needs --output NEW_FOLDER"),
    (["-o", "{tmp}/x", "--report", "{tmp}/r.md"], "drop the other options"),
    (["-o", "{pair}"], "is the pair folder itself"),
    (["-o", "{tmp}/x", "-p", "fp8"], "converts to fp16, bf16 or int8"),
])
def test_calibrate_pair_bad_input(tiny_stream, tmp_path, args, fragment):
    args = [a.format(tmp=tmp_path, pair=tiny_stream[0]) for a in args]
    precision = [] if "-p" in args else ["-p", "int8"]
    assert_one_line_error(_run("calibrate", tiny_stream[0], *precision, *args), fragment)
    assert not (tmp_path / "x").exists()


def test_inspect_pair(tiny_stream):
    res = _run("inspect", tiny_stream[0])
    assert res.exit_code == 0, res.output
    assert "cut before block 1" in res.stdout and "partner check: ok" in res.stdout
    info = json.loads(_run("inspect", tiny_stream[0], "--json").stdout)
    assert info["parts"]["head"]["stem_sha256"] == info["parts"]["stem"]["sha256"]


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="full TensorRT is installed here")
def test_trt_pair_without_tensorrt(tiny_stream, tmp_path):
    res = _run("trt", tiny_stream[0], "-o", tmp_path / "engines", "--runtime", "tensorrt")
    assert_one_line_error(res, "runtime tensorrt is not available")
    assert not (tmp_path / "engines").exists()


@pytest.mark.trt
@pytest.mark.skipif(RUNTIME is None, reason=NO_TRT)
def test_trt_builds_both_engines(tiny_stream, tmp_path):
    from inti_export.jobs.stream_engine import load_engine_pair

    out = tmp_path / "engines"
    res = _run("trt", tiny_stream[0], "-o", out, "--batch", "1:1:2")
    assert res.exit_code == 0, res.output
    stem, head = load_engine_pair(out)
    assert stem.profiles[0]["input"] == "frames" and stem.profiles[0]["max"][0] == 16  # T x the head's max
    assert head.profiles[0]["input"] == "stems" and head.profiles[0]["max"][:2] == [2, 8]
    engines = json.loads((out / "stream.json").read_text())["engines"]
    assert engines["head"]["stem_onnx_sha256"] == engines["stem"]["onnx_sha256"] == sha256_file(tiny_stream[0] / "stem.onnx")
    assert engines["stem"]["partner_sha256"] == sha256_file(out / "head.engine")
    assert "engine pair check: ok" in _run("inspect", out).stdout
    fp16 = tmp_path / "fp16"
    res = _run("trt", tiny_stream[0], "-o", fp16, "--fp16", "--batch", "1:1:2")
    assert res.exit_code == 0, res.output
    assert load_stream_artifact(fp16).meta["inti.precision"] == "fp16" and (fp16 / "head.engine").is_file()
    for name in ("head.engine", "head.engine.json"):  # an FP16 head engine beside the FP32 stem engine
        shutil.copy(fp16 / name, out / name)
    assert_one_line_error(_run("inspect", out), "rebuild both")


def test_bench_stream_of_the_pair(tiny_stream, tmp_path):
    report = tmp_path / "bench.json"
    res = _run("bench", "--onnx", tiny_stream[0], "--runners", "ort", "--stride", "1,8", "--iters", 1, "--warmup", 0,
               "--report", report)
    assert res.exit_code == 0, res.output
    data = json.loads(report.read_text())
    assert data["source"] == str(tiny_stream[0]) and data["runs"][0]["runner"] == "ort-cpu"
    assert [r["stride"] for r in data["runs"][0]["strides"]] == [1, 8]
    res = _run("bench", "--onnx", tiny_stream[0], "--runners", "ort", "--full-onnx", tiny_stream[0] / "head.onnx")
    assert_one_line_error(res, "--full-onnx")
