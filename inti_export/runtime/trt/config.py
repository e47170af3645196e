"""How to build an engine (BuildConfig), batch profiles, and the GPUs an engine can target.

    parse_batch_profile("1:4:8")   -> (1, 4, 8)
    BuildConfig(runtime="tensorrt-rtx", batch=(1, 4, 8), compute_capabilities=("8.6",))
    gpu_compute_capability(device) -> "SM86" for that CUDA device, None without a GPU

Precision is not a build option: it comes from the ONNX graph (strongly typed networks).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from inti_export.errors import EngineError, RuntimeUnavailableError
from inti_export.vocab import TrtRuntime, Verbosity, values

# opt = max: TensorRT tunes its kernels for the opt batch, and served engines run the batches Triton's
# dynamic batcher assembles, which prefers max/2 and max (docs/serving.md); pass --batch 1:1:8 for batch-1 latency.
DEFAULT_BATCH = (1, 8, 8)
# TensorRT-RTX builds portable engines for these when no target is set (docs: "CPU-Only AOT and
# TensorRT-RTX Engines": 8.0, 8.6, 8.9, 12.0 and later; Turing only when asked for).
RTX_DEFAULT_COMPUTE_CAPABILITIES = ("SM80", "SM86", "SM89", "SM120")
_RUNTIMES = values(TrtRuntime)
_VERBOSITIES = values(Verbosity)


def parse_batch_profile(text: str) -> tuple[int, int, int]:
    """"MIN:OPT:MAX" (or one number for a fixed batch) -> (min, opt, max)."""
    parts = str(text).strip().split(":")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1:
        numbers *= 3
    if len(numbers) != 3:
        raise EngineError(f"batch profile {text!r} is not MIN:OPT:MAX (e.g. 1:4:8) or one number")
    return check_batch(tuple(numbers), repr(text))


def check_batch(batch, label: str) -> tuple[int, int, int]:
    """(min, opt, max) as ints with 1 <= min <= opt <= max, or a one-line EngineError naming `label`."""
    if len(batch) != 3 or not all(isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in batch):
        raise EngineError(f"batch profile {label} must be three integers (min, opt, max)")
    lo, opt, hi = (int(b) for b in batch)
    if not 1 <= lo <= opt <= hi:
        raise EngineError(f"batch profile {label} needs 1 <= min <= opt <= max")
    return lo, opt, hi


@dataclass
class BuildConfig:
    """How to build an engine. Precision is not here: it comes from the ONNX graph."""

    runtime: str = TrtRuntime.auto.value  # "auto", "tensorrt" or "tensorrt-rtx"
    batch: tuple[int, int, int] | None = None  # (min, opt, max) over axis 0; None: DEFAULT_BATCH
    workspace_gib: float | None = None  # None: the runtime's default (the device memory)
    timing_cache: str | os.PathLike | None = None  # loaded and saved by full TensorRT; RTX ignores it
    plugin: bool = False  # use the TokenInterpolate plugin instead of inlining the function
    compute_capabilities: tuple[str, ...] = ()  # TensorRT-RTX targets ("SM86", "8.9", "current"); () default
    optimization_level: int | None = None  # builder optimization level 0-5; None: the runtime's default
    verbosity: str = Verbosity.warning.value  # TensorRT messages passed to logging: error, warning, info, verbose
    allow_foreign: bool = False  # build an ONNX that lacks our `inti.*` metadata

    def __post_init__(self) -> None:
        self.runtime = getattr(self.runtime, "value", self.runtime)
        self.verbosity = getattr(self.verbosity, "value", self.verbosity)
        if self.runtime not in _RUNTIMES:
            raise EngineError(f"unknown runtime {self.runtime!r}: choose {', '.join(_RUNTIMES)}")
        if self.batch is not None:
            self.batch = check_batch(tuple(self.batch), repr(self.batch))
        if self.verbosity not in _VERBOSITIES:
            raise EngineError(f"unknown verbosity {self.verbosity!r}: choose {', '.join(_VERBOSITIES)}")
        if self.workspace_gib is not None and not self.workspace_gib > 0:
            raise EngineError(f"workspace {self.workspace_gib!r} GiB must be positive")
        if self.optimization_level is not None and self.optimization_level not in range(6):
            raise EngineError(f"builder optimization level {self.optimization_level!r} must be 0-5")
        self.compute_capabilities = tuple(cc_name(c) for c in self.compute_capabilities)


def cc_name(text: str) -> str:
    """"sm_86", "SM86", "8.6", "86" -> "SM86"; "current" -> "CURRENT"."""
    t = str(text).strip().upper().replace("_", "").replace(".", "")
    if t == "CURRENT":
        return t
    t = t.removeprefix("SM")
    if not t.isdigit() or len(t) < 2:
        raise EngineError(f"compute capability {text!r} is not like SM86, 8.6 or current")
    return f"SM{int(t)}"


def rtx_targets(trt) -> list[str]:
    """The compute capabilities this TensorRT-RTX module can build for ("SM75", "SM86", ...)."""
    return [n for n in trt.ComputeCapability.__members__ if n.startswith("SM")]


def gpu_compute_capability(device: int = 0) -> str | None:
    """"SM90" for CUDA device `device`, None without a GPU; RuntimeUnavailableError for a device not present."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    if not isinstance(device, int) or not 0 <= device < count:
        raise RuntimeUnavailableError(f"CUDA device {device!r} is not present: this machine has devices 0..{count - 1}")
    major, minor = torch.cuda.get_device_capability(device)
    return f"SM{major}{minor}"


class BuildProgress(Protocol):
    """Receives TensorRT's build phases (an IProgressMonitor, minus TensorRT). Called from builder threads."""

    def phase_start(self, name: str, parent: str | None, steps: int) -> None: ...

    def step_complete(self, name: str, step: int) -> None: ...

    def phase_finish(self, name: str) -> None: ...
