"""The same job on Ray Data: read -> map_batches(decode) -> map_batches(actor) -> write_parquet.

    paths (a dataset) -> decode, CPU tasks -> embed, actor pool -> Parquet (Ray) -> parts (committed)

The actors run the whole model on each clip: overlapping windows do not share stems (corpus.split),
as in the local engine. A local Ray instance is started unless `address` names a cluster; nothing
else changes. On a cluster, every node must see the videos and the output folder at the same paths
(a shared file system) and have inti-export installed. Rows for a video that fails to decode travel as error rows
and end in `errors.jsonl`. Ray writes into a staging folder; the driver then rewrites its files as
parts in the local schema and commits them through a journal (`output.commit_parts`), so a run
adds all its rows or none, and a re-run skips the videos it committed.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import time
import urllib.parse
from pathlib import Path

import numpy as np

from inti_export.corpus.job import EmbedJob, EmbedReport, Prepared, make_report, prepared
from inti_export.corpus.model import ModelSource
from inti_export.corpus.names import is_utf8, shown
from inti_export.corpus.output import commit_parts, make_table, new_run_id
from inti_export.corpus.sampling import Sampling
from inti_export.errors import IntiExportError, RuntimeUnavailableError, VideoError, one_line
from inti_export.video.preprocess import Preprocess
from inti_export.vocab import INPUT_NAME

logger = logging.getLogger(__name__)

_PROBE_S = 5.0  # how long an --address may take to accept a TCP connection


def _rows(pre: Preprocess, videos=(), clips=(), starts=(), ends=(), errors=(), pixels=None) -> dict[str, np.ndarray]:
    n = len(videos)
    if pixels is None:  # error rows carry a zero clip: a batch's columns have one shape
        pixels = np.zeros((n, pre.frames, 3, pre.image_size, pre.image_size), np.float32)
    return {
        "video": np.asarray(videos, dtype=object), "clip": np.asarray(clips, np.int32),
        "start_s": np.asarray(starts, np.float64), "end_s": np.asarray(ends, np.float64),
        "error": np.asarray(errors, dtype=object), "pixels": pixels,  # (n, T, 3, H, W)
    }


def decode_batch(batch: dict[str, np.ndarray], pre: Preprocess, sampling: Sampling, chunk: int):
    """A Ray task: yield rows of clips for each video path in `batch`, or one error row for a bad video."""
    import torch

    torch.set_num_threads(1)
    from inti_export.corpus.decode import decode_clips

    for name, raw in zip(batch["video"], batch["path"], strict=True):  # `shown` name, the path's bytes
        name, path = str(name), os.fsdecode(raw)
        try:
            for segments, clips in decode_clips(path, pre, sampling, chunk):
                k = len(segments)
                yield _rows(pre, [name] * k, [s.clip for s in segments], [s.start_s for s in segments],
                            [s.end_s for s in segments], [""] * k, clips)
        except VideoError as e:
            yield _rows(pre, [name], [-1], [0.0], [0.0], [shown(one_line(e))])
        except Exception as e:  # noqa: BLE001 - whatever a damaged file makes PyAV or PIL raise is that video's error
            yield _rows(pre, [name], [-1], [0.0], [0.0], [shown(f"{type(e).__name__}: {one_line(e)}")])


def _decode_task_args() -> dict:
    """One CPU per decode task. Given as a function, so Ray keeps decoding in tasks of its own rather
    than fusing it into the inference actors (operator fusion skips ops with a remote-args function)."""
    return {"num_cpus": 1}


class Embedder:
    """A Ray actor: one runner, batches of clips in, embeddings out (error rows pass with zeros)."""

    def __init__(self, model: ModelSource, pre: Preprocess) -> None:
        self.runner = model.make_runner()
        self.runner.activate()
        probe = np.zeros((1, pre.frames, 3, pre.image_size, pre.image_size), np.float32)
        self.dim = next(iter(self.runner.infer({INPUT_NAME: probe}).values())).reshape(1, -1).shape[1]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = np.asarray([e == "" for e in batch["error"]], dtype=bool)
        emb = np.zeros((len(ok), self.dim), np.float32)  # (n, D)
        if ok.any():
            out = self.runner.infer({INPUT_NAME: np.ascontiguousarray(batch["pixels"][ok], dtype=np.float32)})
            emb[ok] = next(iter(out.values())).reshape(int(ok.sum()), -1)
        return {k: v for k, v in batch.items() if k != "pixels"} | {"embedding": emb}


def check_address(address: str) -> None:
    """Refuse, within `_PROBE_S` seconds, an `--address` that is not HOST:PORT or where nothing listens.

    `auto` and `local` are Ray's own words and pass; HOST:PORT and ray://HOST:PORT get one TCP connect.
    """
    if address in ("auto", "local"):
        return
    try:
        where = urllib.parse.urlsplit("//" + address.removeprefix("ray://"))
        host, port = where.hostname, where.port
    except ValueError:  # a port that is not a number in 0-65535
        host = port = None
    if not host or not port or " " in host or where.path or where.query or where.fragment:
        raise IntiExportError(
            f"cannot reach Ray cluster at {address!r}, which is not HOST:PORT (or ray://HOST:PORT, auto):"
            " check --address"
        )
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            pass
    except OSError as e:  # refused, unreachable, timed out, unknown host
        raise IntiExportError(f"cannot reach Ray cluster at {address} ({one_line(e)}): check --address") from e


def _init_ray(address: str | None) -> bool:
    """Connect to `address`, or start a local instance; True when this call started or connected."""
    try:
        import ray
    except ImportError as e:
        raise RuntimeUnavailableError("--ray needs Ray Data: pip install 'inti-export[ray]'") from e
    if ray.is_initialized():
        return False
    if not address:
        ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False)
        return True
    try:
        ray.init(address=address, include_dashboard=False)
    except (ConnectionError, TimeoutError, ValueError, RuntimeError) as e:
        raise IntiExportError(f"cannot reach Ray cluster at {address} ({one_line(e)}): check --address") from e
    return True


def _stage_to_parts(staging: Path, run_id: str, sha256: str) -> tuple[list[Path], dict[str, str], int]:
    """Ray's files as parts in the local schema (in `staging`); errors by video; clips embedded.

    A video with an error row loses all its rows (a truncation found after some clips left)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = sorted(staging.glob("*.parquet"))
    errors: dict[str, str] = {}
    for f in files:
        t = pq.read_table(f, columns=["video", "error"])
        bad = t.filter(pc.not_equal(t["error"], ""))
        errors.update(zip(bad["video"].to_pylist(), bad["error"].to_pylist(), strict=True))
    parts, clips = [], 0
    for f in files:
        t = pq.read_table(f)
        keep = np.asarray([v not in errors for v in t["video"].to_pylist()], dtype=bool)
        t = t.filter(keep)
        if t.num_rows == 0:
            continue
        emb = np.stack([np.asarray(e, np.float32) for e in t["embedding"].to_numpy(zero_copy_only=False)])
        table = make_table(t["video"].to_pylist(), t["clip"].to_numpy(), t["start_s"].to_numpy(),
                           t["end_s"].to_numpy(), emb, sha256)
        path = staging / f"part-{run_id}-{len(parts):05d}.parquet"
        pq.write_table(table, path)
        parts.append(path)
        clips += table.num_rows
    return parts, errors, clips


def embed_ray(job: EmbedJob, address: str | None = None, actors: int = 1) -> EmbedReport:
    """Embed `job` with Ray Data: `actors` CPU inference actors, or one per GPU for GPU runners.

    A cluster at `address` is reached before the output folder is created, so a bad address leaves nothing.
    """
    if actors < 1:
        raise IntiExportError(f"--actors={actors} must be at least 1")
    if job.model.is_pair:  # Ray's actors run the whole model on each clip (docs/corpus.md, "Ray Data")
        raise IntiExportError(
            f"--ray runs the whole model on each clip, and {shown(job.model.artifact)} is a stem/head pair: pass"
            " the model.onnx of `inti-export onnx` (without --stream), or run without --ray"
        )
    if not is_utf8(job.output):
        raise IntiExportError(
            f"-o {shown(job.output)} is not a UTF-8 name, which Ray's Parquet writer needs: rename it, or run"
            " without --ray"
        )
    started = False
    if address:
        check_address(address)
        started = _init_ray(address)
    try:
        with prepared(job) as prep:
            return _run(job, prep, actors)
    finally:
        if started:
            import ray

            ray.shutdown()


def _run(job: EmbedJob, prep: Prepared, actors: int) -> EmbedReport:
    start = time.perf_counter()
    counts = {"embedded": 0, "clips": 0}
    parts: list[str] = []
    errors_now: dict[str, str] = {}
    if prep.pending:
        started = _init_ray(None)  # a local instance, unless embed_ray connected to a cluster already
        import ray

        run_id = new_run_id()
        staging = job.output / f".ray-{run_id}"
        try:
            pool = {"concurrency": actors, "num_cpus": 1}
            if job.model.gpu:
                gpus = int(ray.cluster_resources().get("GPU", 0))
                if gpus < 1:
                    raise RuntimeUnavailableError(f"--runner {job.model.kind} needs a GPU and the Ray cluster has none")
                pool = {"concurrency": gpus, "num_gpus": 1}
            items = [{"video": shown(p), "path": os.fsencode(p)} for p in prep.pending]  # a name, and its bytes
            ds = ray.data.from_items(items, override_num_blocks=min(len(items), 1000))
            ds = ds.map_batches(decode_batch, batch_size=1, ray_remote_args_fn=_decode_task_args,
                                fn_kwargs={"pre": prep.pre, "sampling": job.sampling, "chunk": job.batch})
            ds = ds.map_batches(Embedder, batch_size=job.batch,
                                fn_constructor_kwargs={"model": job.model, "pre": prep.pre}, **pool)
            ds.write_parquet(str(staging))
            staged, errors_now, counts["clips"] = _stage_to_parts(staging, run_id, prep.sha256)
            committed = commit_parts(job.output, run_id, staged)
            parts = [str(p) for p in committed]
        finally:
            if not (job.output / f".commit-{run_id}.json").exists():  # else recover_commits needs the files
                shutil.rmtree(staging, ignore_errors=True)
            if started:
                ray.shutdown()
        for video, reason in errors_now.items():
            prep.errors.failed(video, reason)
        for video in {shown(p) for p in prep.pending} - set(errors_now):
            prep.errors.succeeded(video)
        prep.errors.save()
        counts["embedded"] = len(prep.pending) - len(errors_now)
    return make_report(job, prep, "ray", parts, errors_now, counts, start)
