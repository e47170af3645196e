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


@pytest.fixture(scope="session")
def tiny_pair(tmp_path_factory) -> Path:
    """test-tiny's stem/head pair, written by `inti-export onnx --preset test-tiny --stream -o DIR`."""
    from typer.testing import CliRunner

    from inti_export.cli import app

    directory = tmp_path_factory.mktemp("pair") / "tiny-stream"
    res = CliRunner().invoke(app, ["onnx", "--preset", "test-tiny", "--stream", "-o", str(directory)])
    assert res.exit_code == 0, res.output
    return directory


@pytest.fixture(scope="session")
def one_good_video(small_corpus) -> Path:
    """The first good video of the small corpus (1.5 s, 18 to 45 frames)."""
    corpus, kinds = small_corpus
    return corpus / sorted(f for f, k in kinds.items() if k == "ok")[0]


@pytest.fixture(scope="session")
def make_best():
    """write_best below, for the tests."""
    return write_best


def write_best(folder: Path, onnx: Path, runner: str = "ort", batch: int | None = 2, settings: dict | None = None,
               artifact: str | None = "candidates/ort-fp32/model.onnx", copy: bool = True) -> Path:
    """A best/ folder as `inti-export optimize` writes it (jobs/optimize/outputs.write_best), by hand."""
    import shutil

    folder.mkdir(parents=True)
    candidate = {"id": f"{runner}-fp32", "runner": runner, "precision": "fp32", "status": "ok", "artifact": artifact}
    if settings is not None:
        candidate["settings"] = settings
    files = []
    if artifact and copy:
        shutil.copy(onnx, folder / Path(artifact).name)
        files.append(Path(artifact).name)
    choice = {"candidate": candidate["id"], "runner": runner, "precision": "fp32", "batch": batch}
    (folder / "candidate.json").write_text(json.dumps({"choice": choice, "candidate": candidate, "files": files,
                                                       "model": {"preset": "test-tiny"}}))
    (folder / "command.txt").write_text("inti-export onnx --preset test-tiny\n")
    return folder
