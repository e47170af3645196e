"""The Runner interface: Torch and ONNX Runtime runners, feed checks, lifecycle."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from inti_export.errors import InputShapeError, IntiExportError, RuntimeUnavailableError
from inti_export.runtime.ort_runner import OrtRunner
from inti_export.runtime.torch_runner import TorchRunner


def test_torch_and_ort_agree(tiny_model, tiny_onnx, tiny_clips):
    feed = {"video": tiny_clips.clips}
    with TorchRunner(tiny_model) as t, OrtRunner(tiny_onnx.onnx_path, threads=1) as o:
        a, b = t.infer(feed)["embedding"], o.infer(feed)["embedding"]
        assert t.last_inference_time > 0 and o.last_inference_time > 0
        assert [s.shape for s in o.input_specs()] == [(None, 8, 3, 32, 32)]
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_torch_runner_casts_to_every_torch_precision(tiny_model):
    """The PyTorch runner's dtypes are vocab.TorchPrecision's values, the list bench and optimize offer."""
    from inti_export.runtime import torch_runner
    from inti_export.vocab import TorchPrecision, values

    assert tuple(torch_runner._DTYPES) == values(TorchPrecision)
    with pytest.raises(IntiExportError, match="supports fp32, fp16, bf16"):
        TorchRunner(tiny_model, precision="int8")


@pytest.mark.parametrize(
    "video, match",
    [
        (np.zeros((1, 4, 3, 32, 32), np.float32), r"shape \(1, 4, 3, 32, 32\), expected \('B', 8, 3, 32, 32\)"),
        (np.zeros((1, 8, 3, 32, 32), np.float64), "dtype float64"),
        (np.zeros((8, 3, 32, 32), np.float32), "shape"),
    ],
)
def test_bad_feed_is_one_error_for_every_runner(tiny_model, tiny_onnx, video, match):
    for runner in (TorchRunner(tiny_model), OrtRunner(tiny_onnx.onnx_path)):
        with runner, pytest.raises(InputShapeError, match=match):
            runner.infer({"video": video})
    with OrtRunner(tiny_onnx.onnx_path) as r, pytest.raises(InputShapeError, match="unexpected"):
        r.infer({"video": video, "extra": video})


def test_inactive_runner_and_unavailable_devices(tiny_model, tiny_onnx):
    import torch

    with pytest.raises(IntiExportError, match="not active"):
        OrtRunner(tiny_onnx.onnx_path).infer({"video": np.zeros((1, 8, 3, 32, 32), np.float32)})
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeUnavailableError, match="no CUDA GPU"):
            TorchRunner(tiny_model, device="cuda")
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(RuntimeUnavailableError, match=r"inti-export\[gpu\]"):
            OrtRunner(tiny_onnx.onnx_path, device="cuda").activate()


@pytest.mark.slow
def test_torch_compile_runner_matches_eager(tiny_model, tiny_clips):
    """torch.compile (inductor, CPU) on test-tiny: about a minute of compilation on 2 cores."""
    feed = {"video": tiny_clips.clips[:2]}
    with TorchRunner(tiny_model) as eager, TorchRunner(tiny_model, compile=True) as compiled:
        assert compiled.name == "torch-cpu-compile"
        np.testing.assert_allclose(compiled.infer(feed)["embedding"], eager.infer(feed)["embedding"], atol=1e-5)


def test_torch_runner_with_blend_op_routes_through_the_op(tiny_model, tiny_clips):
    """blend_kernel=True sends each InTI blend through torch.ops.inti.token_interpolate.

    On the CPU that op is the reference itself, so comparing numbers here would compare the reference
    with itself: the numbers are compared where the Triton kernel runs (the GPU test below).
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    class CountOps(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append(str(func))
            return func(*args, **(kwargs or {}))

    feed = {"video": tiny_clips.clips[:2]}
    calls = {}
    for blend_kernel in (False, True):
        with TorchRunner(tiny_model, blend_kernel=blend_kernel) as runner, CountOps() as seen:
            runner.infer(feed)
        calls[runner.name] = seen.ops.count("inti.token_interpolate.default")
    assert calls == {"torch-cpu": 0, "torch-cpu-kernel": len(tiny_model.cfg.insert_before)}


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_torch_runner_blend_kernel_matches_on_cuda(tiny_model, tiny_clips):
    """The Triton kernel route against the plain PyTorch ops, both on the GPU."""
    import copy

    model = copy.deepcopy(tiny_model)  # the runners move it to the GPU; the session's model stays on the CPU
    feed = {"video": tiny_clips.clips[:2]}
    with TorchRunner(model, device="cuda") as plain, TorchRunner(model, device="cuda", blend_kernel=True) as op:
        assert op.name == "torch-cuda-kernel"
        np.testing.assert_allclose(op.infer(feed)["embedding"], plain.infer(feed)["embedding"], atol=1e-5)


# -- ONNX Runtime's CUDA provider: the CPU and GPU wheels are exclusive (issue 28, item 2) -------------
def _installed(monkeypatch, names):
    """importlib.metadata as if exactly `names` of the two ORT distributions were installed."""
    from importlib import metadata

    real = metadata.version

    def version(name):
        if name in ("onnxruntime", "onnxruntime-gpu"):
            if name not in names:
                raise metadata.PackageNotFoundError(name)
            return "1.32.0"
        return real(name)

    monkeypatch.setattr(metadata, "version", version)


def test_cuda_missing_with_both_ort_wheels_says_which_to_remove(tiny_onnx, monkeypatch):
    import onnxruntime as ort

    _installed(monkeypatch, {"onnxruntime", "onnxruntime-gpu"})
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RuntimeUnavailableError) as e:
        OrtRunner(tiny_onnx.onnx_path, device="cuda").activate()
    message = str(e.value)
    assert "\n" not in message and "both onnxruntime and onnxruntime-gpu are installed" in message
    assert "`pip uninstall -y onnxruntime`" in message and "--no-deps onnxruntime-gpu" in message
    assert "inti-export[gpu]" not in message  # the extra would install the GPU wheel beside the CPU one again


def test_cuda_missing_with_the_cpu_wheel_alone(tiny_onnx, monkeypatch):
    import onnxruntime as ort

    _installed(monkeypatch, {"onnxruntime"})
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(RuntimeUnavailableError, match=r"`pip uninstall -y onnxruntime` then `pip install 'inti-export\[gpu\]'`"):
        OrtRunner(tiny_onnx.onnx_path, device="cuda").activate()


class _FakeSession:
    """onnxruntime.InferenceSession's shape: records the providers asked for, reports those it used."""

    asked: ClassVar[list] = []
    fall_back = False

    def __init__(self, path, opts, providers):
        _FakeSession.asked.append(providers)
        used = [p[0] if isinstance(p, tuple) else p for p in providers]
        self.used = ["CPUExecutionProvider"] if _FakeSession.fall_back else used

    def get_providers(self):
        return self.used


def test_ort_cuda_device_index_and_cpu_fallback(tiny_onnx, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", _FakeSession)
    monkeypatch.setattr(_FakeSession, "asked", [])
    OrtRunner(tiny_onnx.onnx_path, device="cuda:1", mode="as-executed").activate()
    assert _FakeSession.asked == [[("CUDAExecutionProvider", {"device_id": 1})]]
    with pytest.raises(IntiExportError, match="cpu, cuda and cuda:N"):
        OrtRunner(tiny_onnx.onnx_path, device="gpu")
    # ORT falls back to the CPU when the CUDA provider fails to load: said, not silently run on the CPU
    _installed(monkeypatch, {"onnxruntime-gpu"})
    monkeypatch.setattr(_FakeSession, "fall_back", True)
    with pytest.raises(RuntimeUnavailableError, match="could not start CUDAExecutionProvider.*check its CUDA version"):
        OrtRunner(tiny_onnx.onnx_path, device="cuda", mode="as-executed").activate()
