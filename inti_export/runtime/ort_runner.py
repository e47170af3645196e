"""ONNX Runtime runner: CPU or CUDA execution provider."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from inti_export.errors import RuntimeUnavailableError
from inti_export.runtime.base import Runner, TensorSpec

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class OrtRunner(Runner):
    """Runs an ONNX file with ONNX Runtime on `device` ("cpu" or "cuda")."""

    def __init__(self, onnx_path: str | Path, device: str = "cpu", threads: int | None = None, name: str | None = None):
        super().__init__()
        if device not in _PROVIDERS:
            raise ValueError(f"device={device!r}: OrtRunner supports {sorted(_PROVIDERS)}")
        self.onnx_path, self.device, self.threads = Path(onnx_path), device, threads
        self.name = name or f"ort-{device}"
        self._sess = None

    def activate_impl(self) -> None:
        import onnxruntime as ort

        provider = _PROVIDERS[self.device]
        if provider not in ort.get_available_providers():
            raise RuntimeUnavailableError(
                f"ONNX Runtime has no {provider} here (available: {ort.get_available_providers()}); "
                "install the GPU build with `pip install 'inti-export[gpu]'`"
            )
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        self._sess = ort.InferenceSession(str(self.onnx_path), opts, providers=[provider])

    def deactivate_impl(self) -> None:
        self._sess = None

    def input_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)), tuple(d if isinstance(d, int) else None for d in i.shape))
            for i in self._sess.get_inputs()
        ]

    def output_names(self) -> list[str]:
        return [o.name for o in self._sess.get_outputs()]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names()
        return dict(zip(names, self._sess.run(names, feed)))


def default_threads() -> int:
    return os.cpu_count() or 1
