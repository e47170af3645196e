"""Many videos -> embeddings: clip sampling, overlapped decode and inference, Parquet, Ray.

    job = make_job(["videos/"], ModelSource(artifact=Path("model.onnx")), Path("out"), Sampling(clips_per_video=4))
    report = embed_local(job)          # decode workers + batched inference on this machine
    report = embed_ray(job, address)   # the same job on Ray Data (pip install 'inti-export[ray]')

`resolve_settings` merges the flags with an `optimize` OUT/best/ folder and this machine's default batch;
overlapping windows of a splittable model share each frame's stem (corpus.split).

See docs/corpus.md for the output layout, resuming and the measured throughput.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from inti_export.corpus.best import BestChoice, EmbedSettings, machine_batch, read_best, resolve_settings
from inti_export.corpus.job import EmbedJob, EmbedProgress, EmbedReport, default_decode_workers
from inti_export.corpus.model import ModelSource
from inti_export.corpus.output import read_rows
from inti_export.corpus.sampling import Sampling, Segment
from inti_export.corpus.sources import expand_sources

__all__ = [
    "BestChoice", "EmbedJob", "EmbedProgress", "EmbedReport", "EmbedSettings", "ModelSource", "Sampling", "Segment",
    "default_decode_workers", "embed_local", "embed_ray", "expand_sources", "machine_batch", "make_job", "read_best",
    "read_rows", "resolve_settings",
]


def make_job(sources: Iterable[str | os.PathLike], model: ModelSource, output: Path, sampling: Sampling,
             **options) -> EmbedJob:
    """An EmbedJob over the videos `sources` name (see `expand_sources`); options: batch, decode_workers, part_rows,
    split, settings_from, best."""
    return EmbedJob(tuple(expand_sources(sources)), model, Path(output), sampling, **options)


def embed_local(job: EmbedJob, **kwargs) -> EmbedReport:
    from inti_export.corpus.local import embed_local as run

    return run(job, **kwargs)


def embed_ray(job: EmbedJob, address: str | None = None, actors: int = 1) -> EmbedReport:
    from inti_export.corpus.ray_engine import embed_ray as run

    return run(job, address=address, actors=actors)
