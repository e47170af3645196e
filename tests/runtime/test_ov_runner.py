"""OpenVINO runner on the test-tiny export: FP32 matches ONNX Runtime, the local function is inlined,
bf16 is opt-in, bad settings are one line. Skipped without openvino (the `openvino` extra)."""

from __future__ import annotations

import numpy as np
import pytest

from inti_export.checks.compare import TOLERANCES, compare_arrays
from inti_export.errors import IntiExportError

pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'inti-export[openvino]'")

from inti_export.runtime.ort_runner import OrtRunner
from inti_export.runtime.ov_runner import OvRunner, inline_functions


def test_ov_matches_onnxruntime_in_fp32(tiny_onnx, tiny_clips):
    feed = {"video": tiny_clips.clips}
    with OrtRunner(tiny_onnx.onnx_path) as ort, OvRunner(tiny_onnx.onnx_path, threads=1) as ov:
        want, got = ort.infer(feed)["embedding"], ov.infer(feed)["embedding"]
        assert [s.name for s in ov.input_specs()] == ["video"] and ov.input_specs()[0].shape[0] is None
        assert ov.name == "ov-cpu" and ov.config()["INFERENCE_PRECISION_HINT"] == "f32"
        batch3 = ov.infer({"video": tiny_clips.clips[:3]})["embedding"]
    cmp = compare_arrays(got, want, TOLERANCES["fp32"], output="embedding", runner="ov", reference="ort", logits=False)
    assert cmp.passed, cmp.failures
    np.testing.assert_allclose(batch3, got[:3], rtol=0, atol=1e-5 * np.abs(got).max())


def test_the_local_function_is_inlined(tiny_onnx, tmp_path):
    import onnx

    original = onnx.load(str(tiny_onnx.onnx_path))
    assert [f.name for f in original.functions] == ["TokenInterpolate"]
    inlined = onnx.load(str(inline_functions(tiny_onnx.onnx_path, tmp_path)))
    assert not inlined.functions and "TokenInterpolate" not in {n.op_type for n in inlined.graph.node}


def test_half_precision_is_opt_in(tiny_onnx, tiny_clips):
    with OvRunner(tiny_onnx.onnx_path, inference_precision="bf16", hint="throughput", streams=1) as ov:
        assert ov.name == "ov-cpu-bf16"
        assert ov.config() == {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "bf16", "NUM_STREAMS": "1"}
        assert ov.infer({"video": tiny_clips.clips[:1]})["embedding"].shape == (1, 32)


def test_sessions_on_part_of_the_cores_are_not_pinned(tiny_onnx):
    """OpenVINO pins a compiled model's threads from the first core, so N sessions of cores/N threads would
    share one core; a runner on fewer threads than cores turns pinning off (docs/openvino.md)."""
    from inti_export.runtime.cpu import available_cores

    assert "ENABLE_CPU_PINNING" not in OvRunner(tiny_onnx.onnx_path).config()
    assert "ENABLE_CPU_PINNING" not in OvRunner(tiny_onnx.onnx_path, threads=available_cores()).config()
    if available_cores() > 1:
        assert OvRunner(tiny_onnx.onnx_path, threads=1).config()["ENABLE_CPU_PINNING"] == "NO"


def test_two_sessions_leave_ctrl_c_working(tiny_onnx):
    """Two OpenVINO runners made and released in that order, then Ctrl-C on the main thread: a
    KeyboardInterrupt, not SIGSEGV (the CPU plugin's alternate signal stack, `off_this_thread`).
    In a child process, so that the crash it guards against fails this test instead of the suite."""
    import subprocess
    import sys

    script = f"""
import os, signal
from inti_export.runtime.ov_runner import OvRunner
runners = [OvRunner({str(tiny_onnx.onnx_path)!r}, threads=1, hint="throughput", streams=1) for _ in range(2)]
for r in runners:
    r.activate()
for r in runners:
    r.deactivate()
try:
    os.kill(os.getpid(), signal.SIGINT)
except KeyboardInterrupt:
    print("interrupted cleanly")
"""
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "interrupted cleanly" in res.stdout, (res.returncode, res.stderr[-2000:])


@pytest.mark.parametrize("kwargs, match", [
    ({"hint": "fastest"}, "hint 'fastest': choose latency or throughput"),
    ({"inference_precision": "int4"}, "inference precision 'int4'"),
    ({"threads": 0}, "threads=0: give a positive number"),
])
def test_bad_settings_are_one_line(tiny_onnx, kwargs, match):
    with pytest.raises(IntiExportError, match=match):
        OvRunner(tiny_onnx.onnx_path, **kwargs)


def test_not_an_onnx_is_one_line(tmp_path):
    bad = tmp_path / "m.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(IntiExportError, match=r"cannot read ONNX model .*m.onnx"), OvRunner(bad):
        pass


def test_an_int8_onnx_with_a_quantized_projection_is_refused(tiny_onnx, tmp_path):
    """OpenVINO 2026.4 returns zeros for every clip but the first when the projection is quantized."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(tiny_onnx.onnx_path))
    matmul = next(n for n in model.graph.node if n.op_type == "MatMul" and "visual.proj" in n.input)
    inits = [numpy_helper.from_array(np.array(0.01, np.float32), "visual.proj_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "visual.proj_zero_point")]
    proj = next(i for i in model.graph.initializer if i.name == "visual.proj")
    q = numpy_helper.from_array(np.zeros(proj.dims, np.int8), "visual.proj_quantized")
    model.graph.initializer.extend([q, *inits])
    dq = helper.make_node("DequantizeLinear", ["visual.proj_quantized", "visual.proj_scale", "visual.proj_zero_point"],
                          ["visual.proj_DequantizeLinear_Output"])
    model.graph.node.insert(0, dq)
    matmul.input[list(matmul.input).index("visual.proj")] = "visual.proj_DequantizeLinear_Output"
    bad = tmp_path / "int8.onnx"
    onnx.save(model, str(bad))
    with pytest.raises(IntiExportError, match="quantizes the final projection MatMul.*recalibrate"), OvRunner(bad):
        pass


def test_embed_takes_the_ov_runner(tiny_onnx):
    from inti_export.corpus.model import ModelSource

    runner = ModelSource(artifact=tiny_onnx.onnx_path, runner="ov").make_runner()
    assert isinstance(runner, OvRunner) and runner.onnx_path == tiny_onnx.onnx_path
