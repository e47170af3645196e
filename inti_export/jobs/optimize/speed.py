"""The speed of one candidate: its batch sizes timed as `bench` times runners (runtime/timing.py).

    measure_speed(runner, clips, batches=None, ...) -> ([LatencyRow per batch], why the sweep stopped)
"""

from __future__ import annotations

import numpy as np

from inti_export.errors import one_line
from inti_export.runtime.timing import LatencyRow, time_runs
from inti_export.vocab import INPUT_NAME

SWEEP_GAIN = 0.05  # the batch sweep stops when doubling gains less throughput than this
SWEEP_MAX_BATCH = 64


def _feed(clips: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    return {INPUT_NAME: np.ascontiguousarray(clips[np.arange(batch) % len(clips)])}  # (B, T, 3, H, W), real clips


def measure_speed(
    runner, clips: np.ndarray, batches: tuple[int, ...] | None, iters: int, warmup: int,
    max_latency_ms: float | None = None, max_batch: int = SWEEP_MAX_BATCH,
) -> tuple[list[LatencyRow], str]:
    """(rows, why the sweep stopped). A fixed `batches` list is timed as `bench` times runners:
    warm-up, then rounds alternating between the batch sizes. Without it: batch 1, 2, 4, ... until
    throughput grows by less than SWEEP_GAIN, p50 passes `max_latency_ms`, a batch fails (memory),
    or `max_batch`.
    """
    if batches:
        times = time_runs([(runner, _feed(clips, b)) for b in batches], iters, warmup)
        return [LatencyRow.from_times(t, b, warmup) for t, b in zip(times, batches, strict=True)], ""
    rows: list[LatencyRow] = []
    batch = 1
    while True:
        try:
            (t,) = time_runs([(runner, _feed(clips, batch))], iters, warmup)
        except Exception as e:  # each runtime has its own out-of-memory error
            if batch == 1:
                raise
            return rows, f"batch {batch} failed ({one_line(e, 160)}): memory or profile limit"
        row = LatencyRow.from_times(t, batch, warmup)
        rows.append(row)
        if max_latency_ms is not None and row.p50_ms > max_latency_ms:
            return rows, f"batch {batch}: p50 {row.p50_ms:.1f} ms passed the latency budget {max_latency_ms} ms"
        if len(rows) > 1 and row.throughput_clips_s < rows[-2].throughput_clips_s * (1 + SWEEP_GAIN):
            return rows, f"batch {batch}: throughput gain under {SWEEP_GAIN:.0%} over batch {rows[-2].batch}"
        if batch * 2 > max_batch:
            return rows, f"batch {batch}: the largest batch ({max_batch}) reached"
        batch *= 2
