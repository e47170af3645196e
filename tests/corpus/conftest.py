"""A small synthetic corpus (benchmarks/make_corpus.py) and one local embedding run, per session."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_make_corpus():
    spec = importlib.util.spec_from_file_location("make_corpus", REPO / "benchmarks" / "make_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """18 short videos: 15 good (4 codecs, 5 sizes), 2 corrupt (random bytes, a cut mp4), 1 too short."""
    out = tmp_path_factory.mktemp("corpus")
    load_make_corpus().make_corpus(out, videos=18, seconds=1.5)
    return out, {r["file"]: r["kind"] for r in json.loads((out / "manifest.json").read_text())}


@pytest.fixture(scope="session")
def tiny_job_factory(tiny_onnx, small_corpus):
    from inti_export.corpus import ModelSource, Sampling, make_job

    def make(output: Path, **options):
        options = {"batch": 4, "decode_workers": 1, "part_rows": 4, **options}
        model = ModelSource(artifact=Path(tiny_onnx.onnx_path), threads=1)
        return make_job([small_corpus[0]], model, output, Sampling(clips_per_video=2), **options)

    return make


@pytest.fixture(scope="session")
def local_run(tmp_path_factory, tiny_job_factory):
    """The small corpus embedded once by the local engine: (job, report)."""
    from inti_export.corpus import embed_local

    job = tiny_job_factory(tmp_path_factory.mktemp("embed") / "out")
    return job, embed_local(job)
