"""FP16/INT8 (onnxruntime) and BF16/FP8/INT8 (ModelOpt) conversions of test-tiny, on real frames.

Thresholds are for test-tiny with random weights; the measured values (onnxruntime 1.32,
nvidia-modelopt 0.47) are in the comments. inti-b16 figures: docs/precision.md.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from typer.testing import CliRunner

from inti_export.calibration.precision import (
    KEEP_FP32_OPS,
    calibrate,
    convert_precision,
    load_calibration_data,
)
from inti_export.calibration.report import precision_report, random_head, to_markdown, write_report
from inti_export.cli import app
from inti_export.errors import CalibrationError
from inti_export.exporter.onnx_export import read_metadata

HAVE_MODELOPT = importlib.util.find_spec("modelopt") is not None
needs_modelopt = pytest.mark.skipif(
    not HAVE_MODELOPT, reason="nvidia-modelopt not installed (pip install 'inti-export[quant]'): ModelOpt path unverified here"
)

FP16_COSINE_MIN = 0.9999  # measured 0.9999998 (min over clips)
INT8_COSINE_MIN = 0.999  # measured 0.99994 (ORT, max calibration, 4 clips)
FP8_COSINE_MIN = 0.999  # measured 0.9998 (ModelOpt)


@pytest.fixture(scope="module")
def fp32(tiny_onnx):
    return tiny_onnx.onnx_path


@pytest.fixture(scope="module")
def clips(tiny_clips):
    return tiny_clips.clips  # (4, 8, 3, 32, 32), one clip of each shipped mp4


@pytest.fixture(scope="module")
def npz(tmp_path_factory, clips):
    path = tmp_path_factory.mktemp("calib") / "clips.npz"
    np.savez(path, video=clips)
    return path


def run_ort(path, clips):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"video": clips[i : i + 1]})[0] for i in range(len(clips))])


def min_cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def op_counts(path):
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def assert_common(path, precision):
    meta = read_metadata(path)
    assert meta["inti.precision"] == precision
    assert meta["inti.preset"] == "test-tiny" and meta["inti.frames"] == 8  # our metadata kept
    model = onnx.load(str(path))
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.FLOAT]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [onnx.TensorProto.FLOAT]
    raw = {p.key: p.value for p in model.metadata_props}
    assert raw["inti.precision"] == precision  # a plain string: runtime/trt.py reads it raw
    return meta


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture(scope="module")
def fp16_ort(tmp_path_factory, fp32):
    return convert_precision(fp32, "fp16", tmp_path_factory.mktemp("fp16") / "m.fp16.onnx")


@pytest.fixture(scope="module")
def int8_ort(tmp_path_factory, fp32, shipped_videos):
    return convert_precision(fp32, "int8", tmp_path_factory.mktemp("int8") / "m.int8.onnx", shipped_videos, clips=4)


def test_fp16_end_to_end(fp32, fp16_ort, clips):
    meta = assert_common(fp16_ort, "fp16")
    assert meta["inti.calibration"]["tool"]["name"].startswith("onnxruntime.transformers.float16")
    assert set(KEEP_FP32_OPS) <= set(meta["inti.calibration"]["kept_fp32_ops"])
    model = onnx.load(str(fp16_ort))
    counts = op_counts(fp16_ort)
    assert counts["Cast"] > 0
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    # the FP32 islands: every LayerNormalization still computes in float32
    dtypes = {t.name: t.data_type for t in model.graph.initializer}
    ln = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert ln and all(dtypes.get(n.input[1], onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT for n in ln)
    # the InTI node survives (its type-generic function runs in FP16)
    assert counts["TokenInterpolate"] == 2 and [f.name for f in model.functions] == ["TokenInterpolate"]
    assert min_cosine(run_ort(fp16_ort, clips), run_ort(fp32, clips)) >= FP16_COSINE_MIN
    assert fp16_ort.stat().st_size < 0.7 * fp32.stat().st_size


def test_int8_end_to_end_from_videos(fp32, int8_ort, clips):
    meta = assert_common(int8_ort, "int8")
    info = meta["inti.calibration"]
    assert info["method"] == "max" and info["clips"] == 4 and info["tool"]["name"].endswith("quantize_static")
    assert info["clip_names"][0] == "bigbuckbunny.mp4#0"  # deterministic order: files by name
    assert info["quantized_op_types"] == ["Conv", "MatMul", "Gemm"]
    counts = op_counts(int8_ort)
    assert counts["QuantizeLinear"] > 0 and counts["DequantizeLinear"] > counts["QuantizeLinear"]
    model = onnx.load(str(int8_ort))
    weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert weights  # per-channel S8 weights
    # the InTI node stays whole and unquantized: nothing but float tensors feed it
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    inti = [n for n in model.graph.node if n.op_type == "TokenInterpolate"]
    assert len(inti) == 2 and all(producers.get(i) != "DequantizeLinear" for n in inti for i in n.input)
    assert min_cosine(run_ort(int8_ort, clips), run_ort(fp32, clips)) >= INT8_COSINE_MIN


def test_int8_from_npz_keep_fp32_and_methods(tmp_path, fp32, npz, clips):
    out = tmp_path / "m.onnx"
    convert_precision(fp32, "int8", out, npz, method="percentile", keep_fp32=["Conv"])
    info = read_metadata(out)["inti.calibration"]
    assert info["source"] == str(npz) and info["clips"] == 4 and info["method"] == "percentile"
    assert info["quantized_op_types"] == ["MatMul", "Gemm"] and info["kept_fp32_ops"] == ["Conv"]
    model = onnx.load(str(out))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(producers.get(n.input[0]) != "DequantizeLinear" for n in convs)
    assert min_cosine(run_ort(out, clips), run_ort(fp32, clips)) >= INT8_COSINE_MIN


def test_calibration_data_is_deterministic(fp32, shipped_videos):
    a = load_calibration_data(shipped_videos, fp32, clips=6)
    b = load_calibration_data(shipped_videos, fp32, clips=6)
    assert a.names == b.names and np.array_equal(a.clips, b.clips)
    assert a.clips.shape == (6, 8, 3, 32, 32)
    # round robin over the videos by name: 2, 2, 1, 1 clips, each from equal segments of its video
    assert a.names == ["bigbuckbunny.mp4#0", "bigbuckbunny.mp4#1", "bikes.mp4#0", "bikes.mp4#1",
                       "carphone_distorted.mp4#0", "carphone_pristine.mp4#0"]


def test_report(tmp_path, fp32, fp16_ort, int8_ort, clips):
    report = precision_report(fp32, {"fp16": fp16_ort, "int8": int8_ort}, clips, runs=2)
    rows = report["precisions"]
    assert list(rows) == ["fp32", "fp16", "int8"]
    assert rows["fp16"]["cosine_min"] >= FP16_COSINE_MIN and rows["int8"]["cosine_min"] >= INT8_COSINE_MIN
    assert rows["fp16"]["top1_agreement"] == 1.0 and 0.0 <= rows["int8"]["top5_agreement"] <= 1.0
    assert rows["int8"]["size_mib"] < rows["fp32"]["size_mib"] and rows["int8"]["latency_ms_median"] > 0
    assert report["head"].startswith("random linear head 32x400")
    assert np.array_equal(random_head(32, 400, 0), random_head(32, 400, 0))
    md = write_report(report, tmp_path / "r.md").read_text()
    assert "| int8 |" in md and md == to_markdown(report)
    assert json.loads(write_report(report, tmp_path / "r.json").read_text())["clips"] == 4
    with pytest.raises(CalibrationError, match=r"\.md or \.json"):
        write_report(report, tmp_path / "r.txt")


def test_fp16_emulation_matches_ort_fp16(tmp_path, fp32, fp16_ort, clips):
    # the rewrite behind BF16's accuracy figures, checked where ORT can run the real thing: FP16
    from inti_export.calibration.report import _cosine, _emulate, _run

    emulated = _emulate(fp16_ort, tmp_path / "em.onnx", onnx.TensorProto.FLOAT16)
    ref, real, emu = (_run(p, clips, 0)[0] for p in (fp32, fp16_ort, emulated))
    real_err, emu_err = 1 - _cosine(real, ref).mean(), 1 - _cosine(emu, ref).mean()
    assert 0 < emu_err < 4 * real_err and real_err < 4 * emu_err  # measured 1.4e-7 vs 1.9e-7


def test_report_not_runnable(tmp_path, fp32, clips):
    broken = tmp_path / "bf16-like.onnx"
    model = onnx.load(str(fp32))
    model.graph.node[3].op_type = "NoSuchOp"  # ORT CPU cannot create a session, like BF16 Conv
    onnx.save(model, str(broken))
    row = precision_report(fp32, {"bf16": broken}, clips[:1], runs=1)["precisions"]["bf16"]
    assert row["runnable"] is False and row["note"].startswith("not runnable on ORT CPU")
    assert "not runnable on ORT CPU" in to_markdown(precision_report(fp32, {"bf16": broken}, clips[:1], runs=1))


# --- errors: one line, the bad value, nothing written -------------------------------------------


def expect_error(out_dir, match, **kwargs):
    before = leftovers(out_dir)
    with pytest.raises(CalibrationError, match=match) as info:
        convert_precision(**kwargs)
    assert "\n" not in str(info.value)
    assert leftovers(out_dir) == before  # no output, no temporary folder
    return info.value


def test_error_empty_video_dir(tmp_path, fp32):
    empty = tmp_path / "videos"
    empty.mkdir()
    expect_error(tmp_path, "no video files", onnx_path=fp32, precision="int8", out_path=tmp_path / "o.onnx",
                 calib_data=empty)


def test_error_missing_and_unreadable_videos(tmp_path, fp32):
    expect_error(tmp_path, "does not exist", onnx_path=fp32, precision="int8", out_path=tmp_path / "o.onnx",
                 calib_data=tmp_path / "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.mp4").write_bytes(b"not a video")
    (bad / "b.mp4").write_bytes(b"\x00" * 64)
    expect_error(tmp_path, "no clips could be loaded from 2 video", onnx_path=fp32, precision="int8",
                 out_path=tmp_path / "o.onnx", calib_data=bad, clips=2)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: a permission error cannot be made")
def test_error_unreadable_dir(tmp_path, fp32, shipped_videos):
    locked = tmp_path / "locked"
    shutil.copytree(shipped_videos, locked)
    locked.chmod(0)
    try:
        expect_error(tmp_path, "not readable", onnx_path=fp32, precision="int8", out_path=tmp_path / "o.onnx",
                     calib_data=locked)
    finally:
        locked.chmod(0o755)


def test_error_too_few_clips(tmp_path, fp32, npz, shipped_videos):
    err = expect_error(tmp_path, "asked for 5 calibration clips", onnx_path=fp32, precision="int8",
                       out_path=tmp_path / "o.onnx", calib_data=npz, clips=5)
    assert "only 4" in str(err)
    err = expect_error(tmp_path, "asked for 500 calibration clips", onnx_path=fp32, precision="int8",
                       out_path=tmp_path / "o.onnx", calib_data=shipped_videos, clips=500)
    assert "gives only 77 clips of 8 frames (bigbuckbunny.mp4 16, bikes.mp4 31" in str(err)


def test_error_wrong_shape(tmp_path, fp32):
    bad = tmp_path / "bad.npz"
    np.savez(bad, video=np.zeros((2, 4, 3, 32, 32), np.float32))  # 4 frames, the model takes 8
    expect_error(tmp_path, r"shape \(2, 4, 3, 32, 32\).*\(K, 8, 3, 32, 32\)", onnx_path=fp32, precision="int8",
                 out_path=tmp_path / "o.onnx", calib_data=bad)


def test_error_bad_choices(tmp_path, fp32, npz, fp16_ort):
    out = tmp_path / "o.onnx"
    expect_error(tmp_path, "unknown precision 'int4'", onnx_path=fp32, precision="int4", out_path=out)
    expect_error(tmp_path, "unknown backend 'trt'", onnx_path=fp32, precision="fp16", out_path=out, backend="trt")
    expect_error(tmp_path, "unknown calibration method 'mse'", onnx_path=fp32, precision="int8", out_path=out,
                 calib_data=npz, method="mse")
    expect_error(tmp_path, "'NoSuchOp' is neither an op type nor a node name", onnx_path=fp32, precision="fp16",
                 out_path=out, keep_fp32=["NoSuchOp"])
    expect_error(tmp_path, "already fp16", onnx_path=fp16_ort, precision="int8", out_path=out, calib_data=npz)
    expect_error(tmp_path, "leaves no op type to quantize", onnx_path=fp32, precision="int8", out_path=out,
                 calib_data=npz, keep_fp32=["Conv,MatMul,Gemm"])


@pytest.mark.parametrize("precision", ["fp8", "bf16"])
def test_error_precision_needs_modelopt(tmp_path, fp32, npz, precision):
    # the ORT backend cannot write FP8 or BF16: a one-line error whether or not ModelOpt is installed
    expect_error(tmp_path, f"precision {precision} needs the modelopt backend.*inti-export\\[quant\\]",
                 onnx_path=fp32, precision=precision, out_path=tmp_path / "o.onnx", calib_data=npz, backend="ort")
    if not HAVE_MODELOPT:
        expect_error(tmp_path, "nvidia-modelopt, which is not installed: pip install 'inti-export\\[quant\\]'",
                     onnx_path=fp32, precision=precision, out_path=tmp_path / "o.onnx", calib_data=npz)


def test_tool_failure_leaves_nothing(tmp_path, fp32, npz):
    # 'percentile' exists for ORT only; through ModelOpt it is refused before any work
    if HAVE_MODELOPT:
        expect_error(tmp_path, "not offered by the modelopt backend", onnx_path=fp32, precision="int8",
                     out_path=tmp_path / "o.onnx", calib_data=npz, method="percentile", backend="modelopt")
    # a model the quantizer cannot handle: the tool's error becomes one line, nothing is written
    broken = tmp_path / "broken.onnx"
    model = onnx.load(str(fp32))
    model.graph.node[3].op_type = "NoSuchOp"
    onnx.save(model, str(broken))
    expect_error(tmp_path, "onnxruntime quantize_static failed on", onnx_path=broken, precision="int8",
                 out_path=tmp_path / "o.onnx", calib_data=npz)


# --- CLI ----------------------------------------------------------------------------------------


def test_cli_calibrate(tmp_path, fp32, npz):
    out, report = tmp_path / "m.int8.onnx", tmp_path / "r.json"
    result = CliRunner().invoke(
        app, ["calibrate", str(fp32), "--precision", "int8", "--data", str(npz), "--clips", "2",
              "--keep-fp32", "Gemm", "--report", str(report), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "int8 by onnxruntime.quantization.quantize_static" in result.output
    assert read_metadata(out)["inti.calibration"]["clips"] == 2
    assert json.loads(report.read_text())["precisions"]["int8"]["cosine_min"] >= INT8_COSINE_MIN


def test_cli_errors(tmp_path, fp32, npz):
    runner = CliRunner()
    result = runner.invoke(app, ["calibrate", str(fp32), "-p", "int8", "--data", str(npz), "--clips", "9",
                                 "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: asked for 9 calibration clips but {npz} holds only 4; pass --clips 4 or more data"
    ]
    result = runner.invoke(app, ["calibrate", str(fp32), "-p", "int3", "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 2 and "int3" in result.output  # typer rejects it before any work
    result = runner.invoke(app, ["calibrate", str(fp32), "-p", "fp8", "--backend", "ort", "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 1 and "needs the modelopt backend" in result.output
    result = runner.invoke(app, ["calibrate", str(fp32), "-p", "int8", "--videos", str(tmp_path), "--data", str(npz)])
    assert result.exit_code == 1 and "not both" in result.output
    assert leftovers(tmp_path) == []


def test_calibrate_default_output_name(tmp_path, fp32):
    src = tmp_path / "tiny.onnx"
    shutil.copyfile(fp32, src)
    result = calibrate(src, "fp16")
    assert result.onnx_path == tmp_path / "tiny.fp16.onnx" and result.metadata["inti.precision"] == "fp16"


# --- ModelOpt (the optional `quant` extra) ------------------------------------------------------


@needs_modelopt
@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_modelopt_quantize(tmp_path, monkeypatch, fp32, npz, clips, precision):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # ORT's shape inference, called by ModelOpt, dumps files into the cwd
    out = convert_precision(fp32, precision, tmp_path / "m.onnx", npz, backend="modelopt")
    assert leftovers(cwd) == []
    meta = assert_common(out, precision)
    assert meta["inti.calibration"]["tool"]["name"] == "modelopt.onnx.quantization.quantize"
    counts = op_counts(out)
    assert counts["QuantizeLinear"] > 0 and counts["TokenInterpolate"] == 2
    assert min_cosine(run_ort(out, clips), run_ort(fp32, clips)) >= (INT8_COSINE_MIN if precision == "int8" else FP8_COSINE_MIN)
    assert leftovers(tmp_path) == ["cwd", "m.onnx"]


@needs_modelopt
def test_modelopt_leaves_ort_quantization_as_it_was(tmp_path, fp32, npz):
    from onnxruntime.quantization.calibrate import CalibraterBase, MinMaxCalibrater

    before = (MinMaxCalibrater.collect_data, CalibraterBase.select_tensors_to_calibrate)
    convert_precision(fp32, "int8", tmp_path / "m.onnx", npz, backend="modelopt")
    assert (MinMaxCalibrater.collect_data, CalibraterBase.select_tensors_to_calibrate) == before
    convert_precision(fp32, "int8", tmp_path / "o.onnx", npz, backend="ort", keep_fp32=["Conv"])


@needs_modelopt
def test_modelopt_autocast(tmp_path, fp32, clips):
    fp16 = convert_precision(fp32, "fp16", tmp_path / "m.fp16.onnx", backend="modelopt")
    assert_common(fp16, "fp16")
    assert min_cosine(run_ort(fp16, clips), run_ort(fp32, clips)) >= FP16_COSINE_MIN
    bf16 = convert_precision(fp32, "bf16", tmp_path / "m.bf16.onnx")  # auto -> ModelOpt
    meta = assert_common(bf16, "bf16")
    assert meta["inti.calibration"]["backend"] == "modelopt"
    model = onnx.load(str(bf16))
    assert any(t.data_type == onnx.TensorProto.BFLOAT16 for t in model.graph.initializer)
    assert op_counts(bf16)["TokenInterpolate"] == 0  # AutoCast needs the InTI function inlined
    row = precision_report(fp32, {"bf16": bf16}, clips, runs=1)["precisions"]["bf16"]
    assert row["runnable"] is False  # no BF16 Conv kernel in ORT CPU
    assert row["emulated"]["cosine_min"] >= 0.9999  # measured 0.99999 (BF16 rounding emulated in FP32)


# --- TensorRT-RTX accepts what we write (it builds without a GPU) --------------------------------


def _rtx_missing() -> str | None:
    from inti_export.errors import RuntimeUnavailableError
    from inti_export.runtime.trt import load_trt_module

    try:
        load_trt_module("tensorrt-rtx")
    except RuntimeUnavailableError as e:
        return str(e)
    return None


@pytest.mark.trt
@pytest.mark.skipif(_rtx_missing() is not None, reason=f"TensorRT-RTX not importable: {_rtx_missing()}")
@pytest.mark.parametrize("variant", ["fp16_ort", "int8_ort"])
def test_tensorrt_rtx_builds(request, tmp_path, variant):
    # ORT's default INT32 bias DequantizeLinear made this parse fail; QuantizeBias=False fixed it
    from inti_export.runtime.trt import BuildConfig, build_engine

    onnx_path = request.getfixturevalue(variant)
    manifest = build_engine(onnx_path, tmp_path / "m.engine", BuildConfig(runtime="tensorrt-rtx"))
    assert manifest.precision == variant.split("_")[0]
