"""One Runner interface for PyTorch, ONNX Runtime and TensorRT (after Polygraphy's BaseRunner).

A runner is a context manager: `activate()` loads the model, `deactivate()` frees it. `infer`
takes and returns NumPy arrays by name; the base class checks the feed against the declared
inputs, so every backend rejects a bad feed with the same one-line error.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass

import numpy as np

from inti_export.errors import InputShapeError, IntiExportError


def infer_clips(runner: Runner, clips: np.ndarray, batch: int, output: str | None = None,
                dtype: type = np.float32) -> np.ndarray:
    """Run `clips` (K, T, 3, H, W) through an active runner `batch` at a time -> one output (K, ...).

    `output` names the output (default: the first); a runner without it is a one-line error.
    """
    from inti_export.errors import ParityError
    from inti_export.vocab import INPUT_NAME

    outs = []
    for i in range(0, len(clips), batch):
        res = runner.infer({INPUT_NAME: np.ascontiguousarray(clips[i : i + batch], dtype=np.float32)})
        if output is not None and output not in res:
            raise ParityError(f"{runner.name} returned outputs {sorted(res)}, not {output!r}: the artifact is not this model")
        outs.append(np.asarray(res[output] if output is not None else next(iter(res.values())), dtype=dtype))
    return np.concatenate(outs)


@dataclass(frozen=True)
class TensorSpec:
    """A named input or output; `None` in `shape` marks a dynamic axis (the batch)."""

    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]


class Runner(abc.ABC):
    """Base class of every backend runner."""

    name: str = "runner"

    def __init__(self) -> None:
        self._active = False
        self.last_inference_time: float | None = None  # seconds, device-synchronised
        self._device_time: float | None = None  # set by GPU runners from CUDA events in infer_impl

    # -- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self._active:
            self.activate_impl()
            self._active = True

    def deactivate(self) -> None:
        if self._active:
            self.deactivate_impl()
            self._active = False

    @property
    def is_active(self) -> bool:
        return self._active

    # -- what subclasses provide ----------------------------------------------------------------
    @abc.abstractmethod
    def activate_impl(self) -> None: ...

    def deactivate_impl(self) -> None:  # noqa: B027 - optional
        pass

    @abc.abstractmethod
    def input_specs(self) -> list[TensorSpec]: ...

    @abc.abstractmethod
    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; return host arrays. Must synchronise the device before returning."""

    def synchronize(self) -> None:  # noqa: B027 - CPU runners have nothing to wait for
        """Wait for the device; GPU runners override."""

    # -- what callers use -----------------------------------------------------------------------
    def infer(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check `feed` against `input_specs()`, run, and record `last_inference_time`."""
        if not self._active:
            raise IntiExportError(f"runner {self.name!r} is not active: use it as a context manager")
        self.check_feed(feed)
        self._device_time = None
        start = time.perf_counter()
        out = self.infer_impl(feed)
        wall = time.perf_counter() - start
        self.last_inference_time = self._device_time if self._device_time is not None else wall
        return out

    def check_feed(self, feed: dict[str, np.ndarray]) -> None:
        specs = {s.name: s for s in self.input_specs()}
        missing = sorted(set(specs) - set(feed))
        extra = sorted(set(feed) - set(specs))
        if missing or extra:
            raise InputShapeError(
                f"{self.name}: feed has inputs {sorted(feed)}, expected {sorted(specs)}"
                f" (missing {missing}, unexpected {extra})"
            )
        for name, spec in specs.items():
            arr = feed[name]
            if arr.ndim != len(spec.shape) or any(
                want is not None and want != got for want, got in zip(spec.shape, arr.shape, strict=True)
            ):
                shape = tuple("B" if d is None else d for d in spec.shape)
                raise InputShapeError(
                    f"{self.name}: input {name!r} has shape {tuple(arr.shape)}, expected {shape}"
                )
            if np.dtype(arr.dtype) != np.dtype(spec.dtype):
                raise InputShapeError(
                    f"{self.name}: input {name!r} has dtype {arr.dtype}, expected {np.dtype(spec.dtype)}"
                )
