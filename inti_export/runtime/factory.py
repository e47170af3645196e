"""One function from a runner kind (`vocab.RunnerKind`) to a ready-to-activate Runner."""

from __future__ import annotations

from pathlib import Path

from inti_export.errors import IntiExportError
from inti_export.vocab import RunnerKind, values


def make_runner(
    kind: str, model, onnx_path: Path | None, engine_path: Path | None, device: str, threads: int | None,
    precision: str, ort_mode: str | None = None,
):
    """The runner of `kind`; `ort_mode` (ORT runners) says how a Q/DQ graph is evaluated (runtime/ort_runner.py):
    bench and optimize time "as-executed" (what ONNX Runtime deploys), the parity gate scores "auto"."""
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.torch_runner import TorchRunner

    if kind == "torch":
        return TorchRunner(model, device=device, precision=precision)
    if kind == "torch-compile":
        return TorchRunner(model, device=device, compile=True, precision=precision)
    if kind == "torch-kernel":  # the fused Triton blend kernel on CUDA (the reference on CPU)
        return TorchRunner(model, device=device, precision=precision, blend_kernel=True)
    mode = {} if ort_mode is None else {"mode": ort_mode}
    if kind == "ort":
        return OrtRunner(onnx_path, device="cpu", threads=threads, **mode)
    if kind == "ort-cuda":
        return OrtRunner(onnx_path, device="cuda", **mode)
    if kind == "ov":
        from inti_export.runtime.ov_runner import OvRunner

        if onnx_path is None:
            raise IntiExportError("runner 'ov' needs an ONNX model (--onnx)")
        return OvRunner(onnx_path, threads=threads)
    if kind == "trt":
        if engine_path is None:
            raise IntiExportError("runner 'trt' needs --engine")
        from inti_export.runtime.trt import TrtRunner

        return TrtRunner(engine_path)
    raise IntiExportError(f"unknown runner {kind!r}; use one of {', '.join(values(RunnerKind))}")
