"""OpenVINO runner: Intel's CPU runtime on our ONNX (FP32 or Q/DQ INT8), docs/openvino.md.

OpenVINO's ONNX frontend refuses the model-local function that holds each `inti.TokenInterpolate`
(a custom domain), so the runner inlines local functions first (`onnx.inliner`) and reads the
inlined copy: the same plain ops ONNX Runtime runs inside the function.

OpenVINO's CPU plugin computes in bf16 by default where the CPU has AVX512_BF16 or AMX, which puts an
FP32 model 3.8e-3 of scale away from ONNX Runtime (test-tiny, measured); the runner asks for f32
unless `inference_precision` says otherwise.

OpenVINO 2026.4 computes a quantized final projection (`pooled @ visual.proj` with Q/DQ on both
inputs) for the first clip of a batch only; `calibrate` keeps that MatMul in FP32, and the runner
refuses an INT8 ONNX that quantizes it.
"""

from __future__ import annotations

import enum
import tempfile
import threading
from pathlib import Path

import numpy as np

from inti_export.errors import IntiExportError, RuntimeUnavailableError, one_line
from inti_export.runtime.base import Runner, TensorSpec
from inti_export.runtime.cpu import available_cores

_OV_TYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64}
# The visual projection's weight (open_clip's `VisionTransformer.proj`), as the exporter names it.
PROJ_WEIGHT = "visual.proj"


def off_this_thread(fn):
    """`fn()` in a short-lived thread; its result, or its exception re-raised here.

    OpenVINO's CPU plugin sets the calling thread's alternate signal stack when it compiles a model and
    puts back the one it saw when the compiled model is destroyed. Two compiled models destroyed in the
    order they were made (N sessions) leave the first one's freed stack installed; the next signal on
    that thread (Ctrl-C: Python's handlers run on the alternate stack) then crashed the process with
    SIGSEGV (found by the suite: an interrupted TensorRT build after optimize's OpenVINO sessions; see
    docs/openvino.md). Compiling and destroying in a thread of their own keeps this thread's stack as is.
    """
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            box["error"] = e

    worker = threading.Thread(target=run, name="inti-ov-compile")
    worker.start()
    worker.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


class OvHint(str, enum.Enum):
    """OpenVINO's PERFORMANCE_HINT: one request as fast as possible, or many in flight."""

    latency = "latency"
    throughput = "throughput"


def openvino_module():
    """`openvino`, or a one-line error saying how to install it."""
    try:
        import openvino
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"OpenVINO is not importable ({one_line(e)}): pip install 'inti-export[openvino]'"
        ) from e
    return openvino


def inline_functions(onnx_path: str | Path, out_dir: str | Path) -> Path:
    """A copy of `onnx_path` with its model-local functions inlined, in `out_dir` (what OpenVINO reads)."""
    import onnx
    import onnx.inliner

    try:
        model = onnx.load(str(onnx_path))
    except Exception as e:
        raise IntiExportError(f"cannot read ONNX model {onnx_path}: {one_line(e)}; pass an ONNX file") from e
    if quantized_projection(model):
        raise IntiExportError(
            f"{onnx_path} quantizes the final projection MatMul, which OpenVINO computes for the first clip of a"
            " batch only (the others come out 0; docs/openvino.md): recalibrate with this version's"
            " `inti-export calibrate`, which keeps it in FP32"
        )
    inlined = onnx.inliner.inline_local_functions(model) if model.functions else model
    path = Path(out_dir) / "inlined.onnx"
    onnx.save(inlined, str(path), save_as_external_data=inlined.ByteSize() > 2**31 - 2**24)
    return path


def quantized_projection(model) -> bool:
    """Whether an INT8 Q/DQ graph feeds the final projection MatMul a dequantized `visual.proj`."""
    dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].startswith(PROJ_WEIGHT + "_")}
    return any(n.op_type == "MatMul" and dq & set(n.input) for n in model.graph.node)


class OvRunner(Runner):
    """Runs an ONNX file with OpenVINO on the CPU.

    `hint`: latency or throughput; `streams`: OpenVINO's NUM_STREAMS (None: the hint decides);
    `threads`: INFERENCE_NUM_THREADS (None: all cores); `inference_precision`: "f32" (default, exact),
    or "bf16"/"f16" to let the CPU plugin compute in half precision where the CPU has it.
    """

    def __init__(
        self,
        onnx_path: str | Path,
        threads: int | None = None,
        hint: OvHint | str = OvHint.latency,
        streams: int | None = None,
        inference_precision: str = "f32",
        name: str | None = None,
    ):
        super().__init__()
        try:
            self.hint = OvHint(getattr(hint, "value", hint))
        except ValueError as e:
            raise IntiExportError(f"OpenVINO hint {hint!r}: choose latency or throughput") from e
        if inference_precision not in ("f32", "bf16", "f16"):
            raise IntiExportError(f"OpenVINO inference precision {inference_precision!r}: choose f32, bf16 or f16")
        for what, value in (("threads", threads), ("streams", streams)):
            if value is not None and value < 1:
                raise IntiExportError(f"OpenVINO {what}={value}: give a positive number")
        self.onnx_path, self.threads, self.streams = Path(onnx_path), threads, streams
        self.inference_precision = inference_precision
        self.name = name or "ov-cpu" + ("" if inference_precision == "f32" else f"-{inference_precision}")
        self._compiled = None
        self._request = None

    def config(self) -> dict[str, str]:
        """The CPU plugin's properties this runner compiles with (recorded by optimize)."""
        cfg = {"PERFORMANCE_HINT": self.hint.value.upper(), "INFERENCE_PRECISION_HINT": self.inference_precision}
        if self.threads:
            cfg["INFERENCE_NUM_THREADS"] = str(self.threads)
            if self.threads < available_cores():
                # Each compiled model pins its threads from the first core: N sessions of cores/N threads
                # then share one core (inti-b16 INT8, 2 sessions x 1 thread on 2 cores: 0.93 clips/s pinned,
                # 1.87 unpinned; docs/openvino.md). The OS spreads them when pinning is off.
                cfg["ENABLE_CPU_PINNING"] = "NO"
        if self.streams:
            cfg["NUM_STREAMS"] = str(self.streams)
        return cfg

    def activate_impl(self) -> None:
        ov = openvino_module()
        if not self.onnx_path.is_file():
            raise IntiExportError(f"ONNX model {self.onnx_path} does not exist")
        core = ov.Core()
        with tempfile.TemporaryDirectory(prefix="inti-ov-") as tmp:
            path = inline_functions(self.onnx_path, tmp)
            try:
                model = core.read_model(str(path))
                self._compiled = off_this_thread(lambda: core.compile_model(model, "CPU", self.config()))
            except RuntimeError as e:
                raise IntiExportError(f"OpenVINO cannot load {self.onnx_path}: {one_line(e)[:300]}") from e
        self._request = self._compiled.create_infer_request()

    def deactivate_impl(self) -> None:
        held = [self._request, self._compiled]
        self._request = self._compiled = None
        off_this_thread(held.clear)  # the last references go, and the compiled model with them, there

    def input_specs(self) -> list[TensorSpec]:
        specs = []
        for port in self._compiled.inputs:
            shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
            dtype = np.dtype(_OV_TYPES.get(port.get_element_type().get_type_name(), np.float32))
            specs.append(TensorSpec(port.get_any_name(), dtype, shape))
        return specs

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = self._request.infer(feed)
        return {port.get_any_name(): np.array(results[port]) for port in self._compiled.outputs}
