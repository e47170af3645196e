"""ONNX Runtime runner: CPU or CUDA execution provider, and how a Q/DQ graph is evaluated.

A graph with QuantizeLinear/DequantizeLinear nodes (INT8/FP8 from `calibrate`) can be run two ways:

- as quantized (the default for such graphs): ONNX Runtime keeps every Q/DQ node as written
  (session option `session.disable_quant_qdq=1`) and computes between them in float. The result
  depends only on the quantization, not on the CPU: it is the accuracy TensorRT executes.
- as executed: ONNX Runtime's full graph optimisations fuse Q/DQ into its integer kernels
  (QLinearConv, QLinearMatMul, ...), as an ORT CPU deployment runs them. On x86 without VNNI the
  u8s8 path of those kernels can saturate, so the figure depends on the host (docs/precision.md).
"""

from __future__ import annotations

import enum
import os
import platform
from pathlib import Path

import numpy as np

from inti_export.errors import IntiExportError, RuntimeUnavailableError, one_line
from inti_export.runtime.base import Runner, TensorSpec
from inti_export.runtime.cpu import cpuinfo_text, flags_from

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}
_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")
# ORT's switch that keeps Q/DQ nodes unfused (onnxruntime_session_options_config_keys.h)
DISABLE_QDQ_FUSION = "session.disable_quant_qdq"
# x86 flags of an int8 dot product without the 16-bit intermediate of AVX2's VPMADDUBSW
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
# The CPU and GPU wheels both install the `onnxruntime` package: with both, the CUDA provider is
# missing (docs/precision.md, "ONNX Runtime on a GPU"); the `cpu` and `gpu` extras hold one each.
ORT_CPU, ORT_GPU = "onnxruntime", "onnxruntime-gpu"


class OrtMode(str, enum.Enum):
    """How ONNX Runtime evaluates a graph; `auto` is as-quantized for Q/DQ graphs, else as-executed."""

    auto = "auto"
    as_quantized = "as-quantized"
    as_executed = "as-executed"


MODE_LABELS = {
    OrtMode.as_quantized: "as quantized: Q/DQ kept as written (session.disable_quant_qdq=1), what TensorRT executes",
    OrtMode.as_executed: "as executed: ONNX Runtime's full graph optimisations",
}


def has_qdq(onnx_path: str | os.PathLike) -> bool:
    """Whether the graph (or a function it calls) holds QuantizeLinear/DequantizeLinear nodes."""
    import onnx

    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as e:
        raise IntiExportError(f"cannot read ONNX model {onnx_path}: {one_line(e)}; pass an ONNX file") from e
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    return any(n.op_type in QDQ_OPS for n in nodes)


def resolve_mode(onnx_path: str | os.PathLike, mode: OrtMode | str = OrtMode.auto) -> OrtMode:
    """`mode` with `auto` resolved: as-quantized for a Q/DQ graph, as-executed otherwise."""
    mode = parse_mode(mode)
    if mode is OrtMode.auto:
        return OrtMode.as_quantized if has_qdq(onnx_path) else OrtMode.as_executed
    return mode


def parse_mode(mode: OrtMode | str) -> OrtMode:
    """`mode` as an OrtMode, or a one-line error naming the choices."""
    try:
        return OrtMode(mode)
    except ValueError as e:
        choices = ", ".join(m.value for m in OrtMode)
        raise IntiExportError(f"unknown ONNX Runtime mode {mode!r}: choose one of {choices}") from e


def session_options(mode: OrtMode | str, threads: int | None = None):
    """`onnxruntime.SessionOptions` for a resolved `mode` (full optimisations; Q/DQ unfused when as-quantized)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if OrtMode(mode) is OrtMode.as_quantized:
        opts.add_session_config_entry(DISABLE_QDQ_FUSION, "1")
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    return opts


def cpu_int8_support() -> dict[str, object]:
    """This CPU's int8 dot-product support (see `int8_support_from`)."""
    return int8_support_from(cpuinfo_text(), platform.machine())


def int8_support_from(cpuinfo: str, machine: str) -> dict[str, object]:
    """Int8 dot-product support from the text of /proc/cpuinfo and the machine name.

    `vnni`: True/False on x86 with readable flags, None where it cannot be told (other systems).
    `saturation_risk`: x86 without VNNI, where ORT's u8s8 kernels (AVX2 VPMADDUBSW) can saturate.
    """
    flags = flags_from(cpuinfo)
    machine = machine.lower()
    known = machine in ("x86_64", "amd64", "i686", "i386") and bool(flags)
    vnni = sorted(flags & set(VNNI_FLAGS))
    return {
        "machine": machine,
        "vnni": bool(vnni) if known else None,
        "vnni_flags": vnni,
        "avx2": "avx2" in flags if known else None,
        "saturation_risk": known and not vnni,
    }


def ort_distributions() -> list[str]:
    """Which of the `onnxruntime` and `onnxruntime-gpu` distributions are installed."""
    from importlib import metadata

    found = []
    for name in (ORT_CPU, ORT_GPU):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def cuda_provider_advice() -> str:
    """How to get ONNX Runtime's CUDA provider, given which ORT wheels are installed (one line)."""
    found = ort_distributions()
    if ORT_CPU in found and ORT_GPU in found:
        return (
            f"both {ORT_CPU} and {ORT_GPU} are installed and the CPU wheel hides CUDA: `pip uninstall -y {ORT_CPU}`"
            f" then `pip install --force-reinstall --no-deps {ORT_GPU}` (docs/precision.md)"
        )
    if ORT_GPU in found:
        return f"{ORT_GPU} is installed but its CUDA provider did not load: check its CUDA version (docs/precision.md)"
    remove = f"`pip uninstall -y {ORT_CPU}` then " if ORT_CPU in found else ""
    return f"install the GPU build alone: {remove}`pip install 'inti-export[gpu]'` (docs/precision.md)"


def parse_device(device: str) -> tuple[str, int]:
    """"cpu" -> ("cpu", 0); "cuda" / "cuda:N" -> ("cuda", N); a one-line error otherwise."""
    kind, _, index = str(device).partition(":")
    if kind in _PROVIDERS and (not index or (kind == "cuda" and index.isdigit())):
        return kind, int(index or 0)
    raise IntiExportError(f"device={device!r}: OrtRunner supports cpu, cuda and cuda:N")


class OrtRunner(Runner):
    """Runs an ONNX file with ONNX Runtime on `device` ("cpu", "cuda" or "cuda:N").

    `mode` (see the module doc): `auto` evaluates a Q/DQ graph as quantized and any other graph
    with ONNX Runtime's full optimisations; `mode_label` says which, for reports.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        name: str | None = None,
        mode: OrtMode | str = OrtMode.auto,
    ):
        super().__init__()
        self._kind, self._device_id = parse_device(device)
        self.onnx_path, self.device, self.threads = Path(onnx_path), device, threads
        self.name = name or f"ort-{device}"
        self._requested = parse_mode(mode)
        self._mode: OrtMode | None = None if self._requested is OrtMode.auto else self._requested
        self._sess = None

    @property
    def mode(self) -> OrtMode:
        """The resolved mode (reads the graph once when `auto`)."""
        if self._mode is None:
            self._mode = resolve_mode(self.onnx_path, self._requested)
        return self._mode

    @property
    def mode_label(self) -> str:
        """A short human description of how this runner evaluates the graph."""
        return MODE_LABELS[self.mode]

    def activate_impl(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise RuntimeUnavailableError(
                f"ONNX Runtime is not importable ({one_line(e)}): pip install 'inti-export[cpu]' or 'inti-export[gpu]'"
            ) from e

        provider = _PROVIDERS[self._kind]
        available = ort.get_available_providers()
        if provider not in available:
            advice = cuda_provider_advice() if self._kind == "cuda" else f"reinstall {ORT_CPU}"
            raise RuntimeUnavailableError(f"ONNX Runtime has no {provider} here (available: {available}); {advice}")
        opts = session_options(self.mode, self.threads)
        options = {"device_id": self._device_id} if self._kind == "cuda" else {}
        self._sess = ort.InferenceSession(str(self.onnx_path), opts, providers=[(provider, options)])
        if provider not in self._sess.get_providers():  # ORT falls back to the CPU when CUDA fails to load
            used = self._sess.get_providers()
            self._sess = None
            raise RuntimeUnavailableError(f"ONNX Runtime could not start {provider} (it used {used}); {cuda_provider_advice()}")

    def deactivate_impl(self) -> None:
        self._sess = None

    def input_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(i.name, np.dtype(_ORT_TYPES.get(i.type, np.float32)),
                       tuple(d if isinstance(d, int) else None for d in i.shape))
            for i in self._sess.get_inputs()
        ]

    def output_names(self) -> list[str]:
        return [o.name for o in self._sess.get_outputs()]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.output_names()
        return dict(zip(names, self._sess.run(names, feed), strict=True))
