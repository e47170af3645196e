"""The speed of one candidate: its batch sizes timed as `bench` times runners (runtime/timing.py).

    measure_speed(runners, clips, batches=None, ...) -> ([LatencyRow per batch], why the sweep stopped)
    infer_sessions(runners, clips, chunk)              -> outputs (K, ...), N runners at once on disjoint clips

One runner: clips/s = batch / p50, as `bench`. N runners (sessions): they run at once in threads, each
on its own clips, and clips/s is counted: N x iters x batch / the wall time of the timed calls.
"""

from __future__ import annotations

import dataclasses
import threading
import time

import numpy as np

from inti_export.errors import one_line
from inti_export.runtime.base import infer_clips
from inti_export.runtime.timing import LatencyRow, time_runs
from inti_export.vocab import INPUT_NAME

SWEEP_GAIN = 0.05  # the batch sweep stops when doubling gains less throughput than this
SWEEP_MAX_BATCH = 64


def _feed(clips: np.ndarray, batch: int) -> dict[str, np.ndarray]:
    return {INPUT_NAME: np.ascontiguousarray(clips[np.arange(batch) % len(clips)])}  # (B, T, 3, H, W), real clips


def _threads(work, n: int) -> None:
    """Run work(i) for i < n in n threads; re-raise the first error."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def infer_sessions(runners: list, clips: np.ndarray, chunk: int, dtype: type = np.float64) -> np.ndarray:
    """`infer_clips` with N active runners at once, runner i on clips i, i+N, ...; outputs in clip order."""
    if len(runners) == 1:
        return infer_clips(runners[0], clips, chunk, dtype=dtype)
    n = min(len(runners), len(clips))
    parts: list = [None] * n
    _threads(lambda i: parts.__setitem__(i, infer_clips(runners[i], clips[i::n], chunk, dtype=dtype)), n)
    out = np.empty((len(clips), *parts[0].shape[1:]), dtype=dtype)
    for i, part in enumerate(parts):
        out[i::n] = part
    return out


def time_sessions(runners: list, clips: np.ndarray, batch: int, iters: int, warmup: int) -> LatencyRow:
    """N runners at once in threads, each on its own clips: per-call latencies, and clips/s counted over
    the wall time from the moment all finished warming up to the last call's end."""
    n = len(runners)
    feeds = [_feed(clips[i::n] if len(clips) >= n else clips, batch) for i in range(n)]
    times: list[list[float]] = [[] for _ in range(n)]
    start: list[float] = []
    barrier = threading.Barrier(n, action=lambda: start.append(time.perf_counter()))

    def work(i: int) -> None:
        try:
            for _ in range(warmup):
                runners[i].infer(feeds[i])
            barrier.wait()
        except threading.BrokenBarrierError:
            return  # another session failed: its error is raised
        except BaseException:
            barrier.abort()  # nobody waits for this session
            raise
        for _ in range(iters):
            runners[i].infer(feeds[i])
            times[i].append(runners[i].last_inference_time)

    _threads(work, n)
    wall = time.perf_counter() - start[0]
    row = LatencyRow.from_times(np.concatenate([np.asarray(t) for t in times]), batch, warmup)
    return dataclasses.replace(row, throughput_clips_s=n * iters * batch / wall)


def measure_speed(
    runners, clips: np.ndarray, batches: tuple[int, ...] | None, iters: int, warmup: int,
    max_latency_ms: float | None = None, max_batch: int = SWEEP_MAX_BATCH,
) -> tuple[list[LatencyRow], str]:
    """(rows, why the sweep stopped). A fixed `batches` list is timed as `bench` times runners:
    warm-up, then rounds alternating between the batch sizes. Without it: batch 1, 2, 4, ... until
    throughput grows by less than SWEEP_GAIN, p50 passes `max_latency_ms`, a batch fails (memory),
    or `max_batch`. `runners`: one runner, or a list of N sessions timed at once (`time_sessions`).
    """
    runners = list(runners) if isinstance(runners, (list, tuple)) else [runners]
    if batches and len(runners) == 1:
        times = time_runs([(runners[0], _feed(clips, b)) for b in batches], iters, warmup)
        return [LatencyRow.from_times(t, b, warmup) for t, b in zip(times, batches, strict=True)], ""
    if batches:
        return [time_sessions(runners, clips, b, iters, warmup) for b in batches], ""
    rows: list[LatencyRow] = []
    batch = 1
    while True:
        try:
            if len(runners) == 1:
                (t,) = time_runs([(runners[0], _feed(clips, batch))], iters, warmup)
                row = LatencyRow.from_times(t, batch, warmup)
            else:
                row = time_sessions(runners, clips, batch, iters, warmup)
        except Exception as e:  # each runtime has its own out-of-memory error
            if batch == 1:
                raise
            return rows, f"batch {batch} failed ({one_line(e, 160)}): memory or profile limit"
        rows.append(row)
        if max_latency_ms is not None and row.p50_ms > max_latency_ms:
            return rows, f"batch {batch}: p50 {row.p50_ms:.1f} ms passed the latency budget {max_latency_ms} ms"
        if len(rows) > 1 and row.throughput_clips_s < rows[-2].throughput_clips_s * (1 + SWEEP_GAIN):
            return rows, f"batch {batch}: throughput gain under {SWEEP_GAIN:.0%} over batch {rows[-2].batch}"
        if batch * 2 > max_batch:
            return rows, f"batch {batch}: the largest batch ({max_batch}) reached"
        batch *= 2
