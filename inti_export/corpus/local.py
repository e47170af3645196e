"""The local engine: decoding processes feed a bounded queue, the main process runs batched inference.

    tasks (bounded) -> W decode workers (forked from a fork server) -> results (bounded) -> batches of B clips -> runner
                                                                         -> whole videos -> Parquet part

Decoding and inference overlap because they run in different processes; the queues are bounded,
so memory stays at about (2W tasks, 2W + 2 chunks of B clips) whatever the corpus size. A worker
that dies (a decoder crash) costs only the video it held, which goes to the errors file.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export.corpus.job import EmbedJob, EmbedProgress, EmbedReport, Prepared, make_report, prepared
from inti_export.corpus.names import shown
from inti_export.corpus.output import make_table, new_run_id, write_part
from inti_export.corpus.sampling import Sampling
from inti_export.corpus.split import make_embedder
from inti_export.errors import IntiExportError, VideoError, one_line
from inti_export.video.preprocess import Preprocess

logger = logging.getLogger(__name__)

_POLL_S = 0.5
# Decode workers run at a lower priority than inference, so that where cores are contended the
# scheduler favours ONNX Runtime's threads. It does not remove the contention: with no spare core a
# decoder still stalls ORT's parallel operators (docs/benchmarks.md, "Embedding a corpus").
DECODE_NICE = 10


# -- decode workers (separate processes) ----------------------------------------------------------
def _parent_alive() -> bool:
    parent = mp.parent_process()  # the process that started us (not the fork server)
    return parent is None or parent.is_alive()


def _put(results, item) -> bool:
    """Put with a timeout loop, giving up when the parent has gone (a killed run leaves no orphans)."""
    while True:
        try:
            results.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            if not _parent_alive():
                results.cancel_join_thread()  # nobody reads the pipe: exit without flushing into it
                return False


def decode_worker(tasks, results, pre: Preprocess, sampling: Sampling, chunk: int) -> None:
    """Take (video id, path) tasks until None; send ("clips", id, [(clip, start_s, end_s, indices)], (k,T,3,H,W)),
    then ("done", id, clips) or ("error", id, reason)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; Ctrl-C reaches the whole group
    with contextlib.suppress(OSError):
        os.nice(DECODE_NICE)
    import torch

    torch.set_num_threads(1)  # the transform's tensor ops; cores belong to decoding and inference
    from inti_export.corpus.decode import decode_clips

    while True:
        try:
            task = tasks.get(timeout=_POLL_S)
        except queue.Empty:
            if not _parent_alive():
                results.cancel_join_thread()
                return
            continue
        if task is None:
            return
        vid, path = task
        if not _put(results, ("start", os.getpid(), vid)):
            return
        sent = 0
        try:
            for segments, clips in decode_clips(path, pre, sampling, chunk):
                meta = [(s.clip, s.start_s, s.end_s, s.indices) for s in segments]
                if not _put(results, ("clips", vid, meta, clips)):
                    return
                sent += len(segments)
            message = ("done", vid, sent)
        except VideoError as e:
            message = ("error", vid, shown(one_line(e)))
        except Exception as e:  # noqa: BLE001 - whatever a damaged file makes PyAV or PIL raise is that video's error
            message = ("error", vid, shown(f"{type(e).__name__}: {one_line(e)}"))
        if not _put(results, message):
            return


# -- the main process ---------------------------------------------------------------------------
@dataclass
class _Video:
    path: str
    rows: list = field(default_factory=list)  # [(clip, start_s, end_s, embedding (D,))]
    expected: int | None = None


class _Pool:
    """W spawned decode workers, restarted when one dies, with the video it held reported."""

    def __init__(self, job: EmbedJob, pre: Preprocess) -> None:
        # A fork server (a fresh single-threaded process, never this one with its torch and ORT
        # threads) imports the decoding stack once; every worker, in this run and later runs of
        # this process, is forked from it ready to decode.
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["inti_export.corpus.decode", "open_clip.transform", "torch"])
        self.ctx, self.job, self.pre = ctx, job, pre
        self.tasks = ctx.Queue(maxsize=2 * job.decode_workers)
        self.results = ctx.Queue(maxsize=2 * job.decode_workers + 2)
        self.procs: list = []
        self.holding: dict[int, int] = {}  # worker pid -> video id it is decoding
        for _ in range(job.decode_workers):
            self._spawn()

    def _spawn(self) -> None:
        p = self.ctx.Process(
            target=decode_worker, daemon=True,
            args=(self.tasks, self.results, self.pre, self.job.sampling, self.job.batch),
        )
        p.start()
        self.procs.append(p)

    def reap(self, waiting: bool) -> list[tuple[int, str]]:
        """(video id, reason) for each worker that died holding a video; replacements are started."""
        lost = []
        for p in list(self.procs):
            if p.is_alive() or p.exitcode == 0:
                continue
            self.procs.remove(p)
            vid = self.holding.pop(p.pid, None)
            if vid is None:  # died between videos: not a video's fault (cannot start, killed)
                raise IntiExportError(
                    f"a decode worker exited with code {p.exitcode} outside any video; run with -v to see why"
                )
            lost.append((vid, f"the decoding process died (exit code {p.exitcode}) on this video"))
            logger.warning("decode worker %d died (exit code %s); starting another", p.pid, p.exitcode)
            self._spawn()
        if waiting and not any(p.is_alive() for p in self.procs):
            raise IntiExportError("every decode worker has exited with videos left to decode; run with -v to see why")
        return lost

    def close(self) -> None:
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join(timeout=5)
        for q in (self.tasks, self.results):
            q.cancel_join_thread()
            q.close()


def embed_local(
    job: EmbedJob,
    on_progress: Callable[[EmbedProgress], None] | None = None,
    on_part: Callable[[Path], None] | None = None,
) -> EmbedReport:
    """Embed every video of `job` not yet embedded with its artifact; see the module docstring."""
    with prepared(job) as prep:
        return _run(job, prep, on_progress, on_part)


def _run(
    job: EmbedJob,
    prep: Prepared,
    on_progress: Callable[[EmbedProgress], None] | None,
    on_part: Callable[[Path], None] | None,
) -> EmbedReport:
    start = time.perf_counter()
    run_id = new_run_id()
    pending = prep.pending
    videos = {vid: _Video(shown(p)) for vid, p in enumerate(pending)}  # as the Parquet column names them
    failed: set[int] = set()
    # (video id, clip, start_s, end_s, feed): the clip (T, 3, H, W), or its stems (T, N, D) with the split
    buffer: list[tuple[int, int, float, float, np.ndarray]] = []
    part_rows: list[tuple[str, int, float, float, np.ndarray]] = []
    parts: list[str] = []
    errors_now: dict[str, str] = {}
    counts = {"submitted": 0, "received": 0, "finished": 0, "clips": 0, "embedded": 0}
    last_report = 0.0

    def progress(force: bool = False) -> None:
        nonlocal last_report
        now = time.perf_counter()
        if on_progress and (force or now - last_report > 0.2):
            last_report = now
            on_progress(EmbedProgress(counts["finished"], len(pending), counts["clips"], len(errors_now), now - start))

    def flush() -> None:
        if not part_rows:
            return
        v, c, s, e, emb = zip(*part_rows, strict=True)
        path = write_part(job.output, run_id, len(parts), make_table(list(v), c, s, e, np.stack(emb), prep.sha256))
        parts.append(shown(path))
        part_rows.clear()
        prep.errors.save()
        logger.info("wrote %s", shown(path))
        if on_part:
            on_part(path)

    def fail(vid: int, reason: str) -> None:
        if vid in failed or vid not in videos:
            return
        failed.add(vid)
        path = videos.pop(vid).path
        errors_now[path] = reason
        prep.errors.failed(path, reason)
        counts["finished"] += 1
        logger.info("skipping video %s: %s", path, reason)

    def finish_if_complete(vid: int) -> None:
        video = videos.get(vid)
        if video is None or video.expected is None or len(video.rows) < video.expected:
            return
        del videos[vid]
        prep.errors.succeeded(video.path)
        part_rows.extend((video.path, *row) for row in sorted(video.rows, key=lambda r: r[0]))
        counts["finished"] += 1
        counts["embedded"] += 1
        if len(part_rows) >= job.part_rows:
            flush()

    def infer(n: int) -> None:
        take, buffer[:] = buffer[:n], buffer[n:]
        emb = embedder.infer([t[4] for t in take])  # (B, D)
        for (vid, clip, s, e, _), row in zip(take, emb, strict=True):
            if vid in failed:
                continue
            videos[vid].rows.append((clip, s, e, row))
            counts["clips"] += 1
        for vid in {t[0] for t in take}:
            finish_if_complete(vid)

    if not pending:
        return make_report(job, prep, "local", parts, errors_now, counts, start, split=job.split_wanted)
    embedder = make_embedder(job.model, job.split)
    pool = None
    try:
        with embedder:
            pool = _Pool(job, prep.pre)
            sentinels = 0
            while counts["finished"] < len(pending):
                in_flight = 2 * job.decode_workers
                while counts["submitted"] < len(pending) and counts["submitted"] - counts["received"] < in_flight:
                    try:
                        pool.tasks.put_nowait((counts["submitted"], str(pending[counts["submitted"]])))
                    except queue.Full:
                        break
                    counts["submitted"] += 1
                while counts["submitted"] == len(pending) and sentinels < job.decode_workers:
                    try:
                        pool.tasks.put_nowait(None)
                    except queue.Full:
                        break
                    sentinels += 1
                try:
                    msg = pool.results.get(timeout=_POLL_S)
                except queue.Empty:
                    for vid, reason in pool.reap(waiting=counts["received"] < len(pending)):
                        counts["received"] += 1
                        embedder.forget(vid)
                        fail(vid, reason)
                    if counts["received"] == len(pending) and buffer:
                        infer(min(len(buffer), job.batch))
                    progress()
                    continue
                kind = msg[0]
                if kind == "start":
                    pool.holding[msg[1]] = msg[2]
                elif kind == "clips":
                    _, vid, meta, clips = msg
                    feeds = embedder.prepare(vid, [m[3] for m in meta], clips)
                    buffer.extend((vid, c, s, e, f) for (c, s, e, _), f in zip(meta, feeds, strict=True))
                elif kind == "done":
                    counts["received"] += 1
                    videos[msg[1]].expected = msg[2]
                    if msg[2] == 0:
                        fail(msg[1], "no clips: the video is shorter than one clip")
                    finish_if_complete(msg[1])
                else:  # "error"
                    counts["received"] += 1
                    fail(msg[1], msg[2])
                if kind in ("done", "error"):
                    embedder.forget(msg[1])
                    pool.holding = {pid: v for pid, v in pool.holding.items() if v != msg[1]}
                while len(buffer) >= job.batch or (buffer and counts["received"] == len(pending)):
                    infer(min(len(buffer), job.batch))
                progress()
            flush()
    finally:
        if pool is not None:
            pool.close()
        prep.errors.save()
    progress(force=True)
    return make_report(job, prep, "local", parts, errors_now, counts, start, split=embedder.split)

