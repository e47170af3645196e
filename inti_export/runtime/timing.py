"""Timing runners: warm-up, then timed calls between device synchronisations, and their percentiles.

    time_runs([(runner, feed), ...], iters, warmup) -> [seconds per call, one array per runner]
    LatencyRow.from_times(seconds, batch, warmup)   -> p50/p90/p99, mean, min (ms) and clips/s

`bench` (InTI against naive) and `optimize` (one candidate's batch sizes) both time this way and
report this row; each call's time is the runner's `last_inference_time` (device-synchronised, CUDA
events on the GPU; runtime/base.py). The report fields are described in docs/reports.md.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

Row = TypeVar("Row", bound="LatencyRow")


@dataclass
class LatencyRow:
    """Latency of one batch size: per call, after `warmup` untimed calls."""

    batch: int
    iters: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    throughput_clips_s: float  # batch / median latency

    @classmethod
    def from_times(cls: type[Row], times_s: np.ndarray, batch: int, warmup: int, **extra: Any) -> Row:
        """The row of `times_s` (seconds per call); `extra` fills a subclass's own fields."""
        ms = np.asarray(times_s, dtype=np.float64) * 1e3
        p50 = float(np.percentile(ms, 50))
        return cls(batch=batch, iters=len(ms), warmup=warmup, p50_ms=p50, p90_ms=float(np.percentile(ms, 90)),
                   p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), min_ms=float(ms.min()),
                   throughput_clips_s=batch / (p50 / 1e3), **extra)


def time_runs(runs, iters: int, warmup: int) -> list[np.ndarray]:
    """Seconds per call of each active (runner, feed): `warmup` untimed calls each, then `iters`
    rounds that call every one in turn, so load from elsewhere falls on all of them alike."""
    for runner, feed in runs:
        for _ in range(warmup):
            runner.infer(feed)
    times: list[list[float]] = [[] for _ in runs]
    for _ in range(iters):
        for (runner, feed), t in zip(runs, times, strict=True):
            runner.infer(feed)
            t.append(runner.last_inference_time)
    return [np.asarray(t) for t in times]


def machine_info() -> dict[str, Any]:
    """The machine a latency was measured on: platform, CPU (model name, count) and the GPU if any."""
    import torch

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
