"""FP16/INT8 (onnxruntime) and BF16/FP8/INT8 (ModelOpt) conversions of test-tiny, on real frames.

Thresholds are for test-tiny with random weights; the measured values (onnxruntime 1.32,
nvidia-modelopt 0.47) are in the comments. inti-b16 figures: docs/precision.md. Q/DQ models are
scored as quantized (ONNX Runtime keeps Q/DQ as written), so the verdicts hold on every CPU;
ONNX Runtime CPU's fused execution, which saturates on x86 without VNNI, is tested separately.
TensorRT-RTX builds of every precision: tests/runtime/test_trt_precisions.py.
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
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.calibration.backends import KEEP_FP32_OPS
from inti_export.calibration.calibrate import calibrate
from inti_export.calibration.data import load_calibration_data
from inti_export.calibration.precision import convert_precision
from inti_export.calibration.report import precision_report, random_head, to_markdown, write_report
from inti_export.cli import app
from inti_export.errors import CalibrationError, IntiExportError
from inti_export.metrics import cosine_per_sample
from inti_export.runtime.ort_runner import OrtMode, OrtRunner, cpu_int8_support, session_options
from inti_export.vocab import read_metadata

HAVE_MODELOPT = importlib.util.find_spec("modelopt") is not None
needs_modelopt = pytest.mark.skipif(
    not HAVE_MODELOPT,
    reason="nvidia-modelopt not installed (pip install 'inti-export[quant]'): ModelOpt path unverified here",
)
NO_VNNI = cpu_int8_support()["saturation_risk"]

FP16_COSINE_MIN = 0.9999  # measured 0.9999998 (min over clips)
INT8_COSINE_MIN = 0.999  # measured 0.99994 as quantized (ORT, max calibration, 4 clips)
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


@pytest.fixture(scope="module")
def fp32_out(fp32, clips):
    return run_ort(fp32, clips)


def run_ort(path, clips, mode=OrtMode.auto):
    """Embeddings (K, D) from ONNX Runtime CPU; `auto` scores a Q/DQ model as quantized."""
    with OrtRunner(path, mode=mode) as runner:
        return np.concatenate([runner.infer({"video": clips[i : i + 1]})["embedding"] for i in range(len(clips))])


def min_cosine(a, b):
    return float(cosine_per_sample(a, b).min())


def share(tmp_path_factory, path, precision, backend):
    """Leave a converted test-tiny where tests/runtime/test_trt_precisions.py looks before converting its own."""
    shared = tmp_path_factory.getbasetemp() / "tiny-precisions" / f"test-tiny.{precision}.{backend}.onnx"
    if not shared.exists():
        shared.parent.mkdir(exist_ok=True)
        shutil.copyfile(path, shared)


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


@pytest.fixture(scope="module")
def int8_reduce_range(tmp_path_factory, fp32, npz):
    return convert_precision(fp32, "int8", tmp_path_factory.mktemp("int8rr") / "m.int8.onnx", npz, reduce_range=True)


def test_fp16_end_to_end(fp32, fp16_ort, clips, fp32_out):
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
    assert min_cosine(run_ort(fp16_ort, clips), fp32_out) >= FP16_COSINE_MIN
    assert fp16_ort.stat().st_size < 0.7 * fp32.stat().st_size


def test_int8_end_to_end_from_videos(fp32, int8_ort, clips, fp32_out):
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
    assert min_cosine(run_ort(int8_ort, clips), fp32_out) >= INT8_COSINE_MIN


def test_int8_parity_gate_scores_as_quantized(int8_ort, tiny_model, tiny_clips):
    """The gate's INT8 verdict is the model as quantised, so it holds on CPUs without VNNI too."""
    from inti_export.checks.parity import run_parity
    from inti_export.runtime.ort_runner import MODE_LABELS, OrtMode

    report = run_parity(tiny_model, tiny_clips.clips, tiny_clips.names, onnx_path=int8_ort, tolerance="int8")
    assert report.notes == {"ort-cpu": MODE_LABELS[OrtMode.as_quantized]}
    (c,) = report.comparisons
    assert report.passed and c.cosine_min >= INT8_COSINE_MIN


def test_int8_from_npz_keep_fp32_and_methods(tmp_path, fp32, npz, clips, fp32_out):
    out = tmp_path / "m.onnx"
    convert_precision(fp32, "int8", out, npz, method="percentile", keep_fp32=["Conv"])
    info = read_metadata(out)["inti.calibration"]
    assert info["source"] == str(npz) and info["clips"] == 4 and info["method"] == "percentile"
    assert info["quantized_op_types"] == ["MatMul", "Gemm"] and info["kept_fp32_ops"] == ["Conv"]
    model = onnx.load(str(out))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert convs and all(producers.get(n.input[0]) != "DequantizeLinear" for n in convs)
    assert min_cosine(run_ort(out, clips), fp32_out) >= INT8_COSINE_MIN


def test_as_quantized_keeps_qdq_as_written(tmp_path, int8_ort):
    # the session behind every INT8/FP8 verdict: no Q/DQ fused into ORT's integer kernels
    def optimized_ops(mode):
        opts = session_options(mode)
        opts.optimized_model_filepath = str(tmp_path / f"{mode.value}.onnx")
        ort.InferenceSession(str(int8_ort), opts, providers=["CPUExecutionProvider"])
        return Counter(n.op_type for n in onnx.load(opts.optimized_model_filepath).graph.node)

    fused = ("QLinearConv", "QLinearMatMul", "QGemm", "MatMulIntegerToFloat", "ConvInteger", "MatMulInteger")
    kept = optimized_ops(OrtMode.as_quantized)
    assert kept["QuantizeLinear"] > 0 and kept["DequantizeLinear"] > 0
    assert not [op for op in kept if op in fused or op.startswith("QLinear")], kept
    executed = optimized_ops(OrtMode.as_executed)  # what an ORT CPU deployment runs
    assert executed["QLinearMatMul"] > 0 and executed["QLinearConv"] > 0
    with OrtRunner(int8_ort) as runner:
        assert runner.mode is OrtMode.as_quantized and runner.mode_label.startswith("as quantized")
    with OrtRunner(int8_ort, mode="as-executed") as runner:
        assert runner.mode_label.startswith("as executed")
    with pytest.raises(IntiExportError, match="unknown ONNX Runtime mode 'fast'"):
        OrtRunner(int8_ort, mode="fast")


def test_reduce_range_is_accurate_as_ort_cpu_executes_it(int8_reduce_range, clips, fp32_out):
    # the fix offered on x86 without VNNI: 7-bit weights keep ORT's u8s8 kernels from saturating
    # (as executed on AVX2 without VNNI: measured 0.99988; full-range S8 weights: 0.9936)
    info = read_metadata(int8_reduce_range)["inti.calibration"]
    assert info["reduce_range"] is True
    assert min_cosine(run_ort(int8_reduce_range, clips, OrtMode.as_executed), fp32_out) >= INT8_COSINE_MIN
    assert min_cosine(run_ort(int8_reduce_range, clips), fp32_out) >= INT8_COSINE_MIN


def test_int8_type_pairs_and_per_tensor(tmp_path, fp32, npz, clips, fp32_out):
    """`calibrate --activation-type u8 --weight-type u8 --per-tensor` (the variants optimize searches, issue 27):
    asymmetric u8 Q/DQ, one weight scale per tensor, recorded; accurate as quantized and as ORT executes it
    (u8u8 takes no saturating kernel); s8 activations with u8 weights, or the options off ORT INT8, refused."""
    out = tmp_path / "u8u8.onnx"
    result = CliRunner().invoke(app, ["calibrate", str(fp32), "-p", "int8", "--data", str(npz), "--clips", "2",
                                      "--activation-type", "u8", "--weight-type", "u8", "--per-tensor", "-o", str(out)])
    assert result.exit_code == 0, result.output
    info = read_metadata(out)["inti.calibration"]
    assert (info["activation_type"], info["weight_type"], info["per_channel"]) == ("u8", "u8", False)
    model = onnx.load(str(out))
    inits = {t.name: t for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "DequantizeLinear" and len(n.input) > 2]
    assert zero_points and all(z.data_type == onnx.TensorProto.UINT8 for z in zero_points)
    scales = [inits[n.input[1]] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert scales and all(len(s.dims) == 0 for s in scales)  # per tensor: one scale each
    for mode in (OrtMode.auto, OrtMode.as_executed):
        assert min_cosine(run_ort(out, clips, mode), fp32_out) >= INT8_COSINE_MIN
    assert read_metadata(convert_precision(fp32, "int8", tmp_path / "d.onnx", npz, clips=2))["inti.calibration"][
        "per_channel"] is True
    expect_error(tmp_path, "no kernels for s8 activations with u8 weights", onnx_path=fp32, precision="int8",
                 out_path=tmp_path / "o.onnx", calib_data=npz, activation_type="s8", weight_type="u8")
    expect_error(tmp_path, "apply to int8 with the ort backend", onnx_path=fp32, precision="fp16",
                 out_path=tmp_path / "o.onnx", per_channel=False)


def test_int8_support_from_cpuinfo():
    from inti_export.runtime.ort_runner import int8_support_from

    avx2 = "processor : 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert int8_support_from(avx2, "x86_64") == {
        "machine": "x86_64", "vnni": False, "vnni_flags": [], "avx2": True, "saturation_risk": True,
    }
    for flag in ("avx512_vnni", "avx_vnni", "amx_int8"):
        info = int8_support_from(avx2.replace("fma", f"fma {flag}"), "x86_64")
        assert info["vnni"] is True and info["vnni_flags"] == [flag] and not info["saturation_risk"]
    assert int8_support_from("Features : fp asimd asimddp\n", "aarch64")["vnni"] is None
    assert int8_support_from("", "x86_64")["saturation_risk"] is False  # unreadable: no claim either way


def test_calibration_data_is_deterministic(fp32, shipped_videos):
    a = load_calibration_data(shipped_videos, fp32, clips=6)
    b = load_calibration_data(shipped_videos, fp32, clips=6)
    assert a.names == b.names and np.array_equal(a.clips, b.clips)
    assert a.clips.shape == (6, 8, 3, 32, 32)
    # round robin over the videos by name: 2, 2, 1, 1 clips, each from equal segments of its video
    assert a.names == ["bigbuckbunny.mp4#0", "bigbuckbunny.mp4#1", "bikes.mp4#0", "bikes.mp4#1",
                       "carphone_distorted.mp4#0", "carphone_pristine.mp4#0"]


def test_report(tmp_path, fp32, fp16_ort, int8_ort, int8_reduce_range, clips, fp32_out):
    report = precision_report(fp32, {"fp16": fp16_ort, "int8": int8_ort, "int8-rr": int8_reduce_range}, clips, runs=2)
    rows = report["precisions"]
    assert list(rows) == ["fp32", "fp16", "int8", "int8-rr"]
    assert rows["fp16"]["cosine_min"] >= FP16_COSINE_MIN and rows["int8"]["cosine_min"] >= INT8_COSINE_MIN
    assert rows["fp16"]["top1_agreement"] == 1.0 and rows["int8"]["top1_agreement"] == 1.0
    # top-5 agreement recomputed here from the embeddings and the documented head
    head = random_head(32, 400, 0)

    def top5(out):
        return np.argsort(-(out / np.linalg.norm(out, axis=1, keepdims=True)) @ head, axis=1, kind="stable")[:, :5]

    int8_out = run_ort(int8_ort, clips)
    overlap = [len(set(a) & set(b)) / 5 for a, b in zip(top5(int8_out), top5(fp32_out), strict=True)]
    assert rows["int8"]["top5_agreement"] == pytest.approx(np.mean(overlap))
    assert rows["int8"]["top5_agreement"] >= 0.8  # measured 0.95
    assert rows["int8"]["size_mib"] < rows["fp32"]["size_mib"] and rows["int8"]["latency_ms_median"] > 0
    assert report["head"].startswith("random linear head 32x400")
    # Q/DQ scored as quantized; ORT CPU's fused execution beside it, and the VNNI warning where it applies
    assert rows["int8"]["accuracy"].startswith("as quantized") and rows["fp16"]["accuracy"].startswith("as executed")
    assert "as_executed" in rows["int8"] and "as_executed" not in rows["fp16"]
    executed = run_ort(int8_ort, clips, OrtMode.as_executed)
    assert rows["int8"]["as_executed"]["cosine_min"] == pytest.approx(min_cosine(executed, fp32_out), abs=1e-6)
    assert report["machine"]["int8_vnni"] == cpu_int8_support()["vnni"]
    assert [w.split(":")[0] for w in report["warnings"]] == (["int8"] if NO_VNNI else [])  # not for int8-rr
    md = write_report(report, tmp_path / "r.md").read_text()
    assert "| int8 |" in md and md == to_markdown(report) and "Accuracy: Q/DQ models as quantized" in md
    assert ("Warning: int8: this CPU has no VNNI" in md) == NO_VNNI
    assert json.loads(write_report(report, tmp_path / "r.json").read_text())["clips"] == 4
    with pytest.raises(CalibrationError, match=r"\.md or \.json"):
        write_report(report, tmp_path / "r.txt")
    with pytest.raises(IntiExportError, match="does not exist"):
        write_report(report, tmp_path / "missing" / "r.md")


def test_fp16_emulation_matches_ort_fp16(tmp_path, fp32, fp16_ort, clips):
    # the rewrite behind BF16's accuracy figures, checked where ORT can run the real thing: FP16
    from inti_export.calibration.report import emulate_rounding, run_cpu

    emulated = emulate_rounding(fp16_ort, tmp_path / "em.onnx", onnx.TensorProto.FLOAT16)
    ref, real, emu = (run_cpu(p, clips, 0)[0] for p in (fp32, fp16_ort, emulated))
    real_err, emu_err = 1 - cosine_per_sample(real, ref).mean(), 1 - cosine_per_sample(emu, ref).mean()
    assert 0 < emu_err < 4 * real_err and real_err < 4 * emu_err  # measured 1.4e-7 vs 1.9e-7


def test_report_not_runnable(tmp_path, fp32, clips):
    broken = tmp_path / "bf16-like.onnx"
    model = onnx.load(str(fp32))
    model.graph.node[3].op_type = "NoSuchOp"  # ORT CPU cannot create a session, like BF16 Conv
    onnx.save(model, str(broken))
    report = precision_report(fp32, {"bf16": broken}, clips[:1], runs=1)
    row = report["precisions"]["bf16"]
    assert row["runnable"] is False and row["note"].startswith("not runnable on ORT CPU")
    assert "| bf16 | not runnable on ORT CPU" in to_markdown(report)


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


@pytest.fixture(scope="module")
def foreign(tmp_path_factory, fp32):
    """test-tiny without our inti.version metadata, as if another tool had written it."""
    path = tmp_path_factory.mktemp("foreign") / "foreign.onnx"
    model = onnx.load(str(fp32))
    kept = [(p.key, p.value) for p in model.metadata_props if p.key != "inti.version"]
    del model.metadata_props[:]
    for key, value in kept:
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_foreign_onnx_needs_allow_foreign(tmp_path, foreign):
    # the same rule as `trt`: an ONNX inti-export did not write is refused unless asked for
    expect_error(tmp_path, "no inti.version metadata.*--allow-foreign", onnx_path=foreign, precision="fp16",
                 out_path=tmp_path / "o.onnx")
    out = convert_precision(foreign, "fp16", tmp_path / "o.onnx", allow_foreign=True)
    assert read_metadata(out)["inti.precision"] == "fp16" and "inti.version" not in read_metadata(out)


def test_calibrate_refuses_its_model_or_data_as_output_or_report(tmp_path, fp32, npz):
    """calibrate names its model and calibration data as inputs to the output check (the check itself:
    tests/test_fileio.py::test_output_that_is_an_input_is_refused)."""
    src = tmp_path / "m.onnx"
    shutil.copyfile(fp32, src)
    before = src.read_bytes()
    for out, data in ((src, None), (npz, npz)):
        with pytest.raises(IntiExportError, match="is also an input"):
            calibrate(src, "int8", out, data=data)
    with pytest.raises(IntiExportError, match=r"report .*o\.md is also an input"):
        calibrate(src, "fp16", tmp_path / "o.md", report=tmp_path / "o.md")  # the report over the model
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


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
    row = json.loads(report.read_text())["precisions"]["int8"]
    assert row["cosine_min"] >= INT8_COSINE_MIN and row["accuracy"].startswith("as quantized")
    assert "(as quantized: Q/DQ kept as written" in result.output
    assert f"as ONNX Runtime CPU executes it here: cosine min {row['as_executed']['cosine_min']:.6f}" in result.output
    assert ("warning: int8: this CPU has no VNNI" in result.output) == NO_VNNI


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
    result = runner.invoke(app, ["calibrate", str(fp32), "-p", "fp8", "--backend", "ort",
                                 "-o", str(tmp_path / "o.onnx")])
    assert result.exit_code == 1 and "needs the modelopt backend" in result.output
    result = runner.invoke(app, ["calibrate", str(fp32), "-p", "int8", "--videos", str(tmp_path), "--data", str(npz)])
    assert result.exit_code == 1 and "not both" in result.output
    assert leftovers(tmp_path) == []


def test_cli_allow_foreign(tmp_path, foreign):
    runner = CliRunner()
    out = tmp_path / "o.onnx"
    result = runner.invoke(app, ["calibrate", str(foreign), "-p", "fp16", "-o", str(out)])
    assert_one_line_error(result, "no inti.version metadata", "--allow-foreign", quiet=True)
    assert not out.exists()
    result = runner.invoke(app, ["calibrate", str(foreign), "-p", "fp16", "-o", str(out), "--allow-foreign"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out)["inti.precision"] == "fp16"


def test_calibrate_default_output_name(tmp_path, fp32):
    src = tmp_path / "tiny.onnx"
    shutil.copyfile(fp32, src)
    result = calibrate(src, "fp16")
    assert result.onnx_path == tmp_path / "tiny.fp16.onnx" and result.metadata["inti.precision"] == "fp16"


# --- ModelOpt (the optional `quant` extra) ------------------------------------------------------


@needs_modelopt
@pytest.mark.parametrize("precision", ["int8", "fp8"])
def test_modelopt_quantize(tmp_path_factory, tmp_path, monkeypatch, fp32, npz, clips, fp32_out, precision):
    from onnxruntime.quantization.calibrate import CalibraterBase, MinMaxCalibrater

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # ORT's shape inference, called by ModelOpt, dumps files into the cwd
    ort_classes = (MinMaxCalibrater.collect_data, CalibraterBase.select_tensors_to_calibrate)
    out = convert_precision(fp32, precision, tmp_path / "m.onnx", npz, backend="modelopt")
    assert leftovers(cwd) == []
    meta = assert_common(out, precision)
    assert meta["inti.calibration"]["tool"]["name"] == "modelopt.onnx.quantization.quantize"
    counts = op_counts(out)
    assert counts["QuantizeLinear"] > 0 and counts["TokenInterpolate"] == 2
    assert min_cosine(run_ort(out, clips), fp32_out) >= (INT8_COSINE_MIN if precision == "int8" else FP8_COSINE_MIN)
    assert leftovers(tmp_path) == ["cwd", "m.onnx"]
    # ModelOpt patches onnxruntime.quantization for the whole process: put back, so ORT still quantizes
    assert (MinMaxCalibrater.collect_data, CalibraterBase.select_tensors_to_calibrate) == ort_classes
    if precision == "int8":
        convert_precision(fp32, "int8", tmp_path / "o.onnx", npz, backend="ort", keep_fp32=["Conv"])
    share(tmp_path_factory, out, precision, "modelopt")


@needs_modelopt
def test_modelopt_autocast(tmp_path_factory, tmp_path, fp32, clips, fp32_out):
    fp16 = convert_precision(fp32, "fp16", tmp_path / "m.fp16.onnx", backend="modelopt")
    assert_common(fp16, "fp16")
    assert min_cosine(run_ort(fp16, clips), fp32_out) >= FP16_COSINE_MIN
    bf16 = convert_precision(fp32, "bf16", tmp_path / "m.bf16.onnx")  # auto -> ModelOpt
    meta = assert_common(bf16, "bf16")
    assert meta["inti.calibration"]["backend"] == "modelopt"
    model = onnx.load(str(bf16))
    assert any(t.data_type == onnx.TensorProto.BFLOAT16 for t in model.graph.initializer)
    assert op_counts(bf16)["TokenInterpolate"] == 0  # AutoCast needs the InTI function inlined
    row = precision_report(fp32, {"bf16": bf16}, clips, runs=1)["precisions"]["bf16"]
    assert row["runnable"] is False  # no BF16 Conv kernel in ORT CPU
    assert row["emulated"]["cosine_min"] >= 0.9999  # measured 0.99999 (BF16 rounding emulated in FP32)
    share(tmp_path_factory, bf16, "bf16", "modelopt")
