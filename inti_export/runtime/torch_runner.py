"""PyTorch runner: eager or `torch.compile`, CPU or CUDA, FP32/FP16/BF16."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator

import numpy as np
import torch

from inti_export.errors import IntiExportError, RuntimeUnavailableError
from inti_export.models import compute_mode
from inti_export.runtime.base import Runner, TensorSpec
from inti_export.runtime.cpu import cpuinfo_text, flags_from
from inti_export.vocab import INPUT_NAME, TorchPrecision

_DTYPES = {  # every vocab.TorchPrecision -> its torch dtype (tests/runtime/test_runners.py checks)
    TorchPrecision.fp32.value: torch.float32,
    TorchPrecision.fp16.value: torch.float16,
    TorchPrecision.bf16.value: torch.bfloat16,
}
# CPU flags of native half-precision matrix arithmetic. Without them PyTorch's CPU matmul in that
# dtype is emulated: about 90-100x slower than FP32 on an AVX2 EPYC (docs/benchmarks.md, "PyTorch FP16 on the CPU").
NATIVE_HALF_FLAGS = {"fp16": ("avx512_fp16", "amx_fp16", "asimdhp"), "bf16": ("avx512_bf16", "amx_bf16", "bf16")}


def native_half_from(cpuinfo: str, precision: str) -> bool | None:
    """Whether /proc/cpuinfo's text lists a native `precision` flag; None when it lists no flags at all."""
    flags = flags_from(cpuinfo)
    return bool(flags & set(NATIVE_HALF_FLAGS[precision])) if flags else None


def emulated_on_cpu(precision: str) -> str | None:
    """Why PyTorch `precision` would be emulated on this CPU (a reason to print), or None when native or unknown."""
    if precision not in NATIVE_HALF_FLAGS or native_half_from(cpuinfo_text(), precision) is not False:
        return None
    return (f"this {platform.machine()} CPU has no native {precision.upper()} matrix arithmetic "
            f"({' / '.join(NATIVE_HALF_FLAGS[precision][:2])}): PyTorch emulates it, about 90x slower than FP32")


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """No TF32 inside: PyTorch keeps TF32 off for CUDA matmuls but ON for cuDNN convolutions by default,
    which puts the FP32 model's patch embedding at TF32 precision (1.25e-4 of the output's scale from a
    float64 run on an H200, against 2.5e-7 on the CPU: docs/benchmarks.md, "GPU")."""
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


class TorchRunner(Runner):
    """Runs an `InTIVideoModel`; input `video` (B, T, 3, H, W) float32, output by the model's name."""

    def __init__(
        self, model, device: str = "cpu", compile: bool = False, precision: str = "fp32", blend_kernel: bool = False
    ):
        super().__init__()
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeUnavailableError("no CUDA GPU: the PyTorch CUDA runner needs one")
        if precision not in _DTYPES:
            raise IntiExportError(f"precision={precision!r}: the PyTorch runner supports {', '.join(_DTYPES)}")
        self.model, self.device, self.compile, self.precision = model, torch.device(device), compile, precision
        self.blend_kernel = blend_kernel  # InTI's blend through torch.ops.inti.token_interpolate (Triton on CUDA)
        self.name = (
            f"torch-{self.device.type}{'-compile' if compile else ''}{'-kernel' if blend_kernel else ''}"
            f"{'' if precision == 'fp32' else '-' + precision}"
        )
        self._fn = None

    def activate_impl(self) -> None:
        self.model = self.model.eval().to(self.device, _DTYPES[self.precision])
        self._fn = torch.compile(self.model) if self.compile else self.model

    def deactivate_impl(self) -> None:
        self._fn = None

    def input_specs(self) -> list[TensorSpec]:
        c = self.model.cfg
        return [TensorSpec(INPUT_NAME, np.dtype(np.float32), (None, c.frames, 3, c.image_size, c.image_size))]

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        video = torch.from_numpy(feed[INPUT_NAME]).to(self.device, _DTYPES[self.precision])
        if self.device.type == "cuda":  # time the model alone with CUDA events
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        exact = exact_fp32() if self.precision == "fp32" else contextlib.nullcontext()
        with torch.inference_mode(), compute_mode.scoped(blend_op=self.blend_kernel), exact:
            out = self._fn(video)
        if self.device.type == "cuda":
            end.record()
            end.synchronize()
            self._device_time = start.elapsed_time(end) / 1e3
        return {self.model.output_name: out.float().cpu().numpy()}
