"""`inti-export embed`: parity with the clip path, errors, resume, Ray, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.corpus import ModelSource, Sampling, embed_local, make_job, read_rows
from inti_export.corpus.output import ERRORS_FILE
from inti_export.errors import IntiExportError
from inti_export.fileio import sha256_file
from inti_export.metrics import cosine_per_sample


def _rows(out_dir) -> dict[tuple[str, int], tuple[float, float, np.ndarray]]:
    t = read_rows(out_dir).to_pydict()
    keys = list(zip(t["video"], t["clip"], strict=True))
    assert len(keys) == len(set(keys)), "duplicate rows"
    return {k: (s, e, np.asarray(emb, np.float32))
            for k, s, e, emb in zip(keys, t["start_s"], t["end_s"], t["embedding"], strict=True)}


def _errors(out_dir) -> dict[str, str]:
    lines = (Path(out_dir) / ERRORS_FILE).read_text().splitlines()
    return {Path(r["video"]).name: r["reason"] for r in map(json.loads, lines)}


def test_shipped_clips_match_the_parity_path(tmp_path, tiny_model, tiny_onnx, shipped_videos):
    """Every clip embedded by `embed` (ORT) equals PyTorch on the clip calibration loads for that segment."""
    import torch

    from inti_export.video.clipset import load_clips
    from inti_export.video.discover import find_videos
    from inti_export.video.preprocess import preprocess_for

    job = make_job([shipped_videos], ModelSource(artifact=Path(tiny_onnx.onnx_path)), tmp_path / "out",
                   Sampling(clips_per_video=3), batch=4, decode_workers=1)
    report = embed_local(job)
    assert report.failed == 0 and report.embedded == 4 and report.clips == 12
    assert report.artifact_sha256 == sha256_file(tiny_onnx.onnx_path)
    rows = _rows(job.output)
    files = find_videos(shipped_videos)
    ref = load_clips(files, preprocess_for(tiny_model.cfg), clips_per_video=3)  # (12, T, 3, H, W)
    with torch.no_grad():
        want = tiny_model(torch.from_numpy(ref.clips)).numpy()  # (12, D)
    got = np.stack([rows[(str(f.resolve()), c)][2] for f in files for c in range(3)])
    assert cosine_per_sample(got, want).min() > 0.99999
    bikes = [rows[(str((shipped_videos / "bikes.mp4").resolve()), c)][:2] for c in range(3)]  # 250 frames, 25 fps
    assert np.allclose(bikes, [(0, 10 / 3), (10 / 3, 20 / 3), (20 / 3, 10)])


def test_bad_videos_go_to_the_errors_file(local_run, small_corpus, tiny_onnx):
    job, report = local_run
    _, kinds = small_corpus
    bad = {f for f, k in kinds.items() if k != "ok"}
    errors = _errors(job.output)
    assert set(errors) == bad and report.failed == len(bad) == 3
    assert all("too short" in errors[f] for f in bad if kinds[f] == "short")
    rows = _rows(job.output)
    good = {f for f, k in kinds.items() if k == "ok"}
    assert {Path(v).name for v, _ in rows} == good and len(rows) == 2 * len(good) == report.clips
    dims = {r[2].shape for r in rows.values()}
    assert dims == {(32,)} and all(0 <= s < e for s, e, _ in rows.values())
    assert set(read_rows(job.output)["artifact_sha256"].to_pylist()) == {sha256_file(tiny_onnx.onnx_path)}


def test_an_interrupted_run_resumes_with_only_the_rest(tmp_path, local_run, tiny_job_factory):
    _, full = local_run
    job = tiny_job_factory(tmp_path / "out")

    def stop(part):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embed_local(job, on_part=stop)
    first = _rows(job.output)
    assert 0 < len(first) < full.clips and len(list(job.output.glob("part-*"))) == 1
    assert not list(job.output.glob(".*tmp"))  # no half-written part
    done = {v for v, _ in first}
    again = embed_local(job)
    assert again.skipped == len(done) and again.embedded == full.embedded - len(done)
    rows = _rows(job.output)  # raises on duplicates
    want = _rows(local_run[0].output)
    assert rows.keys() == want.keys()
    for k, (s, e, emb) in rows.items():
        assert (s, e) == want[k][:2] and np.allclose(emb, want[k][2], atol=1e-6)
    assert embed_local(job).embedded == 0  # a third run finds nothing left but the bad videos


def test_folder_made_with_other_sampling_is_refused(local_run, tiny_onnx):
    job, _ = local_run
    other = make_job([job.videos[0]], job.model, job.output, Sampling(stride=4))
    with pytest.raises(IntiExportError, match="other settings"):
        embed_local(other)


@pytest.mark.slow  # Ray starts a local instance: about a minute on a busy 2-core machine
def test_ray_gives_the_same_rows_as_local(tmp_path, local_run, tiny_job_factory):
    pytest.importorskip("ray", reason="install the ray extra: pip install 'inti-export[ray]'")
    import ray

    from inti_export.corpus import embed_ray

    job = tiny_job_factory(tmp_path / "out")
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        report = embed_ray(job)
    finally:
        ray.shutdown()
    local_job, local = local_run
    assert (report.embedded, report.failed, report.clips) == (local.embedded, local.failed, local.clips)
    assert _errors(job.output) == _errors(local_job.output)
    rows, want = _rows(job.output), _rows(local_job.output)
    assert rows.keys() == want.keys()
    for k, (s, e, emb) in rows.items():
        assert (s, e) == want[k][:2] and np.allclose(emb, want[k][2], atol=1e-6)


def test_cli_exit_codes_and_resume(tmp_path, small_corpus, tiny_onnx):
    corpus, _ = small_corpus
    out = tmp_path / "out"
    base = ["embed", str(corpus), "--artifact", str(tiny_onnx.onnx_path), "-o", str(out), "--decode-workers", "1"]
    res = CliRunner().invoke(app, [*base, "--strict", "--report", str(tmp_path / "r.json")])
    assert res.exit_code == 1, res.output  # three bad videos
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["embedded"] == 15 and report["failed"] == 3 and report["clips"] == 15
    res = CliRunner().invoke(app, base)
    assert res.exit_code == 0 and "15 already done" in res.output, res.output
    only_bad = [str(corpus / "v0007.mp4"), str(corpus / "v0013.avi")]
    res = CliRunner().invoke(app, ["embed", *only_bad, "--artifact", str(tiny_onnx.onnx_path), "-o",
                                   str(tmp_path / "none"), "--decode-workers", "1"])
    assert res.exit_code == 1 and "no video could be embedded" in res.output
    res = CliRunner().invoke(app, ["embed", str(corpus), "-o", str(tmp_path / "x"), "--preset", "test-tiny",
                                   "--runner", "ort"])
    assert res.exit_code == 1 and "needs an artifact" in res.output


@pytest.mark.slow  # a fresh CLI process: imports and the fork server's start-up, about a minute on a busy box
def test_a_killed_cli_run_resumes(tmp_path, small_corpus, tiny_onnx):
    """SIGKILL the CLI once its first part exists; a re-run embeds only the rest, no row twice."""
    import os
    import signal
    import subprocess
    import sys
    import time

    corpus, kinds = small_corpus
    out = tmp_path / "out"
    repo = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)}
    cmd = [sys.executable, "-c", "from inti_export.cli import app; app()", "embed", str(corpus), "--artifact",
           str(tiny_onnx.onnx_path), "-o", str(out), "--stride", "1", "--batch", "2", "--part-rows", "1",
           "--decode-workers", "1", "--threads", "1"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not list(out.glob("part-*.parquet")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    first = _rows(out)
    good = sum(k == "ok" for k in kinds.values())
    done = {v for v, _ in first}
    assert 0 < len(done) < good, "the run finished before it could be killed"
    model = ModelSource(artifact=Path(tiny_onnx.onnx_path), threads=1)
    job = make_job([corpus], model, out, Sampling(stride=1), batch=2, decode_workers=1)
    report = embed_local(job)
    assert report.skipped == len(done) and report.embedded == good - len(done)
    rows = _rows(out)  # raises on duplicates
    assert {Path(v).name for v, _ in rows} == {f for f, k in kinds.items() if k == "ok"}
    assert all(first[k][2].tobytes() == rows[k][2].tobytes() for k in first)
