"""What benchmarks/gpu_checks.py and its check modules share: CUDA-event timing, percentiles, dtypes, JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path


def torch_module():
    """torch, imported on use (main reports a missing torch as a skip)."""
    import torch

    return torch


def torch_dtype(name: str):
    """"fp32" | "fp16" | "bf16" -> the torch dtype."""
    torch = torch_module()
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def cuda_events_ms(fn, warmup: int, iters: int, device: str = "cuda") -> list[float]:
    """Milliseconds of each call, timed alone between two CUDA events after `warmup` calls (a wall
    clock on the CPU, where the suite's own test runs these checks on a tiny preset)."""
    torch = torch_module()
    for _ in range(warmup):
        fn()
    if device == "cpu":
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return times
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def pct(values: list[float], q: float) -> float:
    """The `q` quantile of `values` (nearest rank)."""
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
