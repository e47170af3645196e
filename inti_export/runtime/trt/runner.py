"""`TrtRunner`: runs an engine built by `build_engine` on one CUDA device (the Runner interface).

Bindings by name, a dynamic batch checked per input against the engine's profile, host arrays in
and out (BF16 and FP8 bindings take and give float32 on the host, converted on the device), and
CUDA events around the engine's execution alone. With TensorRT-RTX, kernels are compiled just in
time on the GPU: the runner keeps a runtime cache file beside the engine (`model.engine.rtxcache`),
loads it, and saves it on close, and specialises kernels eagerly (the first call per shape compiles,
so a benchmark's warm-up covers compilation and later timings never change as kernels land).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export.errors import EngineError, InputShapeError, RuntimeUnavailableError, one_line
from inti_export.fileio import write_atomic
from inti_export.runtime.base import Runner, TensorSpec
from inti_export.runtime.manifest import EngineManifest
from inti_export.runtime.trt.check import check_engine_and_load, deserialize
from inti_export.runtime.trt.config import gpu_compute_capability
from inti_export.runtime.trt.loader import NO_GPU, load_trt_module, runtime_name
from inti_export.runtime.trt.network import enum_name
from inti_export.vocab import TrtRuntime

log = logging.getLogger(__name__)

RUNTIME_CACHE_SUFFIX = ".rtxcache"
JIT_STRATEGIES = ("lazy", "eager", "none")  # TensorRT-RTX DynamicShapesKernelSpecializationStrategy
# TensorRT DataType name -> host NumPy dtype; BF16 and FP8 travel as float32 (torch.from_numpy takes
# neither ml_dtypes' bfloat16 nor any FP8) and are converted on the device
HOST_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "float32",
    "FP8": "float32",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}
# TensorRT DataType name -> torch dtype of the device buffer (FP8 is E4M3 in TensorRT)
TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "FP8": "float8_e4m3fn",
    "INT8": "int8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "UINT8": "uint8",
}


def host_dtype(trt_dtype: str) -> np.dtype:
    """The NumPy dtype a binding of TensorRT type `trt_dtype` ("HALF") takes and gives on the host."""
    if trt_dtype not in HOST_DTYPES:
        raise EngineError(f"engine binding type {trt_dtype} is not supported: choose one of {', '.join(HOST_DTYPES)}")
    return np.dtype(HOST_DTYPES[trt_dtype])


def torch_dtype(trt_dtype: str):
    """The torch dtype of a device buffer for TensorRT type `trt_dtype`."""
    import torch

    if trt_dtype not in TORCH_DTYPES:
        raise EngineError(f"engine binding type {trt_dtype} is not supported: choose one of {', '.join(TORCH_DTYPES)}")
    return getattr(torch, TORCH_DTYPES[trt_dtype])


def to_device(arr: np.ndarray, trt_dtype: str, device):
    """A host array as a contiguous device tensor of the binding's type (converted on the device)."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(arr)).to(device)
    return t.to(torch_dtype(trt_dtype)).contiguous()


def to_host(buf) -> np.ndarray:
    """A device buffer as a host array of `host_dtype` (BF16 and FP8 widened to float32 on the device)."""
    import torch

    if buf.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        buf = buf.float()
    return buf.cpu().numpy()


def runtime_cache_path(engine_path: str | os.PathLike) -> Path:
    """`model.engine` -> `model.engine.rtxcache`, TensorRT-RTX's compiled kernels for this engine."""
    p = Path(engine_path)
    return p.with_name(p.name + RUNTIME_CACHE_SUFFIX)


@dataclass
class _IO:
    name: str
    trt_dtype: str
    shape: tuple[int, ...]
    buffers: list = field(default_factory=list)


class TrtRunner(Runner):
    """Runs an engine built by `build_engine` on CUDA device `device`: bindings by name, dynamic batch.

    `last_inference_time` is the engine's execution alone, between two CUDA events on its stream
    (host-to-device and device-to-host copies excluded): `infer_impl` sets the base's `_device_time`.
    TensorRT-RTX only: `runtime_cache` (True: beside the engine; a path; None: none) and `jit`
    (TensorRT-RTX's kernel specialisation for dynamic shapes: lazy, eager or none).
    """

    name = "trt"

    def __init__(
        self,
        engine_path: str | os.PathLike,
        runtime: str | None = None,
        device: int = 0,
        runtime_cache: bool | str | os.PathLike | None = True,
        jit: str = "eager",
    ) -> None:
        super().__init__()
        if jit not in JIT_STRATEGIES:
            raise EngineError(f"unknown TensorRT-RTX JIT strategy {jit!r}: choose {', '.join(JIT_STRATEGIES)}")
        if isinstance(device, bool) or not isinstance(device, int) or device < 0:
            raise EngineError(f"CUDA device {device!r} must be a device index (0, 1, ...)")
        self.engine_path = Path(engine_path)
        self.runtime = runtime  # None: the one in the manifest
        self.device = device
        self.jit = jit
        if runtime_cache is True:
            self.runtime_cache_path: Path | None = runtime_cache_path(self.engine_path)
        else:
            self.runtime_cache_path = Path(runtime_cache) if runtime_cache else None
        self.runtime_cache_loaded = False
        self.manifest: EngineManifest | None = None

    def activate_impl(self) -> None:
        try:
            import torch
        except ImportError as e:  # pragma: no cover - torch is a dependency
            raise RuntimeUnavailableError(f"TrtRunner needs torch for device buffers: {e}") from e
        if not torch.cuda.is_available():
            raise RuntimeUnavailableError(NO_GPU)
        gpu_compute_capability(self.device)  # RuntimeUnavailableError for a device that is not there
        trt = load_trt_module(self.runtime) if self.runtime else None
        self.manifest, trt = check_engine_and_load(self.engine_path, trt, device=self.device)
        self._torch = torch
        self._dev = torch.device("cuda", self.device)
        try:
            self._load(trt)
        except BaseException:
            self._release()  # a half-loaded engine is destroyed on its device too, not whenever it is collected
            raise

    def _load(self, trt) -> None:
        torch = self._torch
        with torch.cuda.device(self._dev):  # engine, context and buffers all on this device
            self._stream = torch.cuda.Stream(self._dev)
            self._events = (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
            self._engine, self._trt_runtime = deserialize(trt, self.engine_path)
            self._context = self._create_context(trt)
        if self._context is None:
            raise EngineError(f"could not create an execution context for {self.engine_path} (out of GPU memory?)")
        self._inputs, self._outputs = [], []
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            io = _IO(name, enum_name(self._engine.get_tensor_dtype(name)), tuple(self._engine.get_tensor_shape(name)))
            host_dtype(io.trt_dtype)  # refuse a binding type we cannot feed, naming it
            is_input = self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self._inputs if is_input else self._outputs).append(io)

    def _create_context(self, trt):
        self._runtime_config = self._runtime_cache = None
        if runtime_name(trt) != TrtRuntime.tensorrt_rtx.value:
            return self._engine.create_execution_context()
        config = self._engine.create_runtime_config()
        strategy = trt.DynamicShapesKernelSpecializationStrategy
        config.dynamic_shapes_kernel_specialization_strategy = getattr(strategy, self.jit.upper())
        if self.runtime_cache_path is not None:
            cache = config.create_runtime_cache()
            if self.runtime_cache_path.is_file():
                self.runtime_cache_loaded = bool(cache.deserialize(self.runtime_cache_path.read_bytes()))
                if not self.runtime_cache_loaded:
                    log.warning("runtime cache %s does not fit this GPU, driver or TensorRT-RTX: it will be replaced",
                                self.runtime_cache_path)
            if not config.set_runtime_cache(cache):
                raise EngineError(f"TensorRT-RTX refused the runtime cache {self.runtime_cache_path}")
            self._runtime_cache = cache
        self._runtime_config = config
        return self._engine.create_execution_context(config)

    def deactivate_impl(self) -> None:
        self.synchronize()
        if self._runtime_cache is not None and self.runtime_cache_path is not None:
            try:
                write_atomic(self.runtime_cache_path, bytes(self._runtime_cache.serialize()))
            except OSError as e:
                log.warning("could not save the runtime cache %s: %s", self.runtime_cache_path, one_line(e))
        self._release()

    def _release(self) -> None:
        """Destroy the TensorRT objects, dependents first, with the runner's device current.

        TensorRT objects belong to the device they were made on; Triton's tensorrt backend likewise sets
        the instance's device before destroying its contexts and engines.
        """
        with self._torch.cuda.device(self._dev):
            for attr in ("_context", "_runtime_cache", "_runtime_config", "_engine", "_trt_runtime"):
                setattr(self, attr, None)  # the last reference: destroyed here, on this device

    def input_specs(self) -> list[TensorSpec]:
        return [TensorSpec(io.name, host_dtype(io.trt_dtype), tuple(None if d < 0 else d for d in io.shape))
                for io in self._inputs]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        keep = []
        with torch.cuda.device(self._dev), torch.cuda.stream(self._stream):
            for io in self._inputs:
                arr = feed[io.name]
                batch = self.manifest.input_batch_range(io.name)
                if batch is not None and arr.ndim and not batch[0] <= arr.shape[0] <= batch[1]:
                    raise InputShapeError(
                        f"trt: batch {arr.shape[0]} of input {io.name!r} is outside the engine's profile"
                        f" {batch[0]}..{batch[1]}: rebuild with --batch"
                    )
                t = to_device(arr, io.trt_dtype, self._dev)
                if not self._context.set_input_shape(io.name, tuple(arr.shape)):
                    raise InputShapeError(f"trt: engine refused shape {tuple(arr.shape)} for input {io.name!r}")
                self._set_address(io.name, t)
                keep.append(t)
            outputs = {}
            for io in self._outputs:
                shape = tuple(self._context.get_tensor_shape(io.name))
                buf = torch.empty(shape, dtype=torch_dtype(io.trt_dtype), device=self._dev)
                self._set_address(io.name, buf)
                outputs[io.name] = buf
            start, end = self._events
            start.record(self._stream)
            ok = self._context.execute_async_v3(self._stream.cuda_stream)
            end.record(self._stream)
        if not ok:
            raise EngineError(f"{self.engine_path}: execute_async_v3 failed (see the TensorRT log)")
        end.synchronize()
        self._device_time = start.elapsed_time(end) / 1000.0
        return {name: to_host(buf) for name, buf in outputs.items()}

    def _set_address(self, name: str, tensor) -> None:
        if not self._context.set_tensor_address(name, tensor.data_ptr()):
            raise EngineError(
                f"trt: engine refused the address of {name!r} ({tensor.dtype}, {tuple(tensor.shape)}) on"
                f" {self._dev}: see the TensorRT log"
            )

    def synchronize(self) -> None:
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.synchronize()
