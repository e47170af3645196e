"""Issue 24, the probe's `embed` defects: each bad input is one clear line, nothing lost or mixed."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.corpus import ModelSource, Sampling, embed_local, make_job, read_rows
from inti_export.errors import IntiExportError

REPO = Path(__file__).resolve().parents[2]
# the side files' names docs/corpus.md gives: names pyarrow's dataset discovery skips
ERRORS_FILE, MANIFEST_FILE, LOCK_FILE = "_errors.jsonl", "_embed.json", ".embed.lock"
BAD = os.fsdecode(b"\xff")  # a byte that is not UTF-8, as Python names it in a path (a lone surrogate)


@pytest.fixture(scope="module")
def one_video(small_corpus, tmp_path_factory) -> Path:
    """A folder holding one good video of the small corpus."""
    corpus, kinds = small_corpus
    folder = tmp_path_factory.mktemp("one")
    name = sorted(f for f, k in kinds.items() if k == "ok")[0]
    shutil.copy(corpus / name, folder / name)
    return folder


def _embed(*args: str):
    return CliRunner().invoke(app, ["embed", *args, "--decode-workers", "1", "--threads", "1"])


def _error_line(res) -> str:
    return assert_one_line_error(res, quiet=True)


def test_report_path_that_is_an_input_is_refused(tmp_path, one_video, tiny_onnx):
    """#1: --report onto the artifact, its manifest, a video, or into OUT: refused before any work."""
    artifact = tmp_path / "m.onnx"
    shutil.copy(tiny_onnx.onnx_path, artifact)
    shutil.copy(tiny_onnx.manifest_path, tmp_path / "m.onnx.json")
    video = next(one_video.iterdir())
    before = {p: p.read_bytes() for p in (artifact, tmp_path / "m.onnx.json", video)}
    out = tmp_path / "e"
    for report in (artifact, tmp_path / "m.onnx.json", video, out / "r.json"):
        line = _error_line(_embed(str(one_video), "--artifact", str(artifact), "-o", str(out), "--report", str(report)))
        assert "--report" in line and ("elsewhere" in line or "another path" in line), line
    assert {p: p.read_bytes() for p in before} == before
    assert not out.exists()


def test_a_second_run_on_a_folder_in_use_is_refused(tmp_path, tiny_job_factory):
    """#6: while a run holds OUT, another run on OUT is refused naming the holder's pid."""
    job = tiny_job_factory(tmp_path / "out")
    refused = []

    def second_run(part):
        if not refused:
            with pytest.raises(IntiExportError, match=f"is in use by pid {os.getpid()}") as e:
                embed_local(job)
            refused.append(str(e.value))

    report = embed_local(job, on_part=second_run)
    assert refused and report.embedded == 15
    assert not (job.output / LOCK_FILE).exists()  # released
    rows = read_rows(job.output).to_pydict()
    keys = list(zip(rows["video"], rows["clip"], strict=True))
    assert len(keys) == len(set(keys)) == report.clips  # no row twice


def test_a_lock_held_by_another_process_names_it_and_a_dead_ones_is_taken_over(tmp_path, one_video, tiny_onnx):
    """#6 from the CLI: the pid of a live holder is named; its lock, left behind by SIGKILL, is taken over."""
    out = tmp_path / "same"
    out.mkdir()
    holder = ("import sys, time; from pathlib import Path; from inti_export.corpus.lock import output_lock\n"
              "with output_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"held"
        args = (str(one_video), "--artifact", str(tiny_onnx.onnx_path), "-o", str(out))
        line = _error_line(_embed(*args))
        assert f"{out} is in use by pid {proc.pid}" in line, line
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert (out / LOCK_FILE).read_text().strip() == str(proc.pid)  # a stale lock of a dead pid
    res = _embed(*args)
    assert res.exit_code == 0 and "1 videos embedded" in res.output, res.output
    assert not (out / LOCK_FILE).exists()


def test_non_utf8_names_are_embedded_with_escaped_names(tmp_path, one_video, tiny_onnx):
    """#7: a video, a list entry and -o with a non-UTF-8 byte: embedded, the name `\\xff`-escaped, resumable."""
    corpus = tmp_path / f"c{BAD}"
    corpus.mkdir()
    good = next(one_video.iterdir())
    shutil.copy(good, corpus / f"v{BAD}.mp4")
    shutil.copy(good, corpus / "plain.mp4")
    (tmp_path / "list.txt").write_bytes(os.fsencode(corpus / f"v{BAD}.mp4") + b"\n")
    out = tmp_path / f"e{BAD}"
    report = tmp_path / "r.json"
    args = (str(corpus), str(tmp_path / "list.txt"), "--artifact", str(tiny_onnx.onnx_path), "-o", str(out))
    res = _embed(*args, "--report", str(report))
    assert res.exit_code == 0 and "2 videos embedded" in res.output and "0 failed" in res.output, res.output
    videos = sorted(read_rows(out)["video"].to_pylist())
    assert videos == sorted([str(corpus.resolve() / "plain.mp4").replace(BAD, "\\xff"),
                             str(corpus.resolve() / f"v{BAD}.mp4").replace(BAD, "\\xff")])
    assert json.loads(report.read_text())["embedded"] == 2
    res = _embed(*args)
    assert res.exit_code == 0 and "2 already done" in res.output, res.output


def test_non_utf8_artifact_is_one_line(tmp_path, one_video, tiny_onnx):
    """#7: ONNX Runtime cannot open a non-UTF-8 path: refused in one line, nothing created."""
    artifact = tmp_path / f"m{BAD}.onnx"
    shutil.copy(tiny_onnx.onnx_path, artifact)
    line = _error_line(_embed(str(one_video), "--artifact", str(artifact), "-o", str(tmp_path / "e")))
    assert "m\\xff.onnx is not a UTF-8 name" in line and "rename it" in line
    assert not (tmp_path / "e").exists()


def test_another_model_into_the_same_folder_is_refused(tmp_path, tiny_job_factory, tiny_onnx):
    """#9: a folder embedded with a.onnx refuses b.onnx (a different file, so other embeddings)."""
    import onnx

    job = tiny_job_factory(tmp_path / "e", part_rows=100)
    first = embed_local(job)
    other = onnx.load(tiny_onnx.onnx_path)
    other.doc_string = "another model"
    onnx.save(other, tmp_path / "b.onnx")
    second = make_job(job.videos, ModelSource(artifact=tmp_path / "b.onnx", threads=1), job.output,
                      job.sampling, batch=4, decode_workers=1)
    with pytest.raises(IntiExportError, match="another model"):
        embed_local(second)
    assert read_rows(job.output).num_rows == first.clips  # untouched
    # a folder from before issue 24 (manifest without the hash, old names) is checked by its parts
    manifest = json.loads((job.output / MANIFEST_FILE).read_text())
    del manifest["artifact_sha256"]
    (job.output / "embed.json").write_text(json.dumps(manifest))
    (job.output / MANIFEST_FILE).unlink()
    with pytest.raises(IntiExportError, match="another model"):
        embed_local(second)
    assert "artifact_sha256" not in json.loads((job.output / MANIFEST_FILE).read_text())  # not adopted


def test_the_documented_read_works(local_run):
    """#10: docs/corpus.md's `pyarrow.parquet.read_table(OUT)`, literally, on a folder with errors."""
    import pyarrow.parquet

    job, report = local_run
    assert "pyarrow.parquet.read_table(OUT)" in (REPO / "docs" / "corpus.md").read_text()
    table = pyarrow.parquet.read_table(job.output)
    assert table.num_rows == report.clips
    assert table.column_names == ["video", "clip", "start_s", "end_s", "embedding", "artifact_sha256"]
    assert (job.output / ERRORS_FILE).stat().st_size > 0 and (job.output / MANIFEST_FILE).is_file()  # skipped


def test_a_folder_with_the_old_side_file_names_resumes(tmp_path, local_run):
    """#10: `embed.json` / `errors.jsonl` of an older run are renamed, and the run resumes from them."""
    import pyarrow.parquet

    job, report = local_run
    out = tmp_path / "old"
    shutil.copytree(job.output, out)
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    del manifest["artifact_sha256"]
    (out / "embed.json").write_text(json.dumps(manifest))
    (out / MANIFEST_FILE).unlink()
    (out / ERRORS_FILE).rename(out / "errors.jsonl")
    again = embed_local(make_job(job.videos, job.model, out, job.sampling, batch=4, decode_workers=1))
    assert again.skipped == report.embedded and again.embedded == 0 and again.failed == report.failed
    assert not (out / "embed.json").exists() and not (out / "errors.jsonl").exists()
    assert pyarrow.parquet.read_table(out).num_rows == report.clips


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["closed", "not an address", "127.0.0.1:99999", "http://127.0.0.1:1/x"])
def test_an_unreachable_ray_address_is_one_line_and_creates_nothing(tmp_path, one_video, tiny_onnx, address):
    """#18: only loopback is contacted (a closed port); a malformed address is refused without contact."""
    if address == "closed":
        address = f"127.0.0.1:{_closed_port()}"
        want = f"cannot reach Ray cluster at {address} ("
    else:
        want = f"cannot reach Ray cluster at {address!r}, which is not HOST:PORT"
    out = tmp_path / "e"
    start = time.monotonic()
    line = _error_line(_embed(str(one_video), "--artifact", str(tiny_onnx.onnx_path), "-o", str(out),
                              "--address", address))
    assert want in line and line.endswith("check --address"), line
    assert time.monotonic() - start < 60 and not out.exists()


def test_the_address_probe_is_bounded(monkeypatch):
    """#18: an unroutable address costs one connect of at most `_PROBE_S` seconds (no traffic sent here)."""
    from inti_export.corpus import ray_engine

    seen = {}

    def connect(where, timeout=None):
        seen.update(where=where, timeout=timeout)
        raise TimeoutError("timed out")

    monkeypatch.setattr(ray_engine.socket, "create_connection", connect)
    with pytest.raises(IntiExportError, match=r"cannot reach Ray cluster at 10.255.255.1:6379 \(timed out\)"):
        ray_engine.check_address("10.255.255.1:6379")
    assert seen == {"where": ("10.255.255.1", 6379), "timeout": ray_engine._PROBE_S} and ray_engine._PROBE_S <= 10


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--decode-workers", "0", "--decode-workers=0 must be a positive integer"),
    ("--threads", "-1", "--threads=-1 must be a positive integer"),
    ("--threads", "0", "--threads=0 must be a positive integer"),
])
def test_worker_and_thread_counts_are_range_checked(tmp_path, one_video, tiny_onnx, option, value, message):
    """#21: counts below 1 are refused (0 decode workers used to mean "the default")."""
    args = ["embed", str(one_video), "--artifact", str(tiny_onnx.onnx_path), "-o", str(tmp_path / "e")]
    args += ["--decode-workers", "1", "--threads", "1"]
    args[args.index(option) + 1] = value
    line = _error_line(CliRunner().invoke(app, args))
    assert message in line
    assert not (tmp_path / "e").exists()


def test_a_directory_as_artifact_is_named_as_one(tmp_path, one_video):
    """#22: `--artifact DIR` says "is a directory", not "does not exist"."""
    line = _error_line(_embed(str(one_video), "--artifact", str(tmp_path), "-o", str(tmp_path / "e")))
    assert f"--artifact {tmp_path} is a directory" in line


def test_the_library_checks_the_counts_too(tmp_path, one_video):
    """#21: the library refuses what the CLI refuses (the CLI only parses)."""
    with pytest.raises(IntiExportError, match="--threads"):
        ModelSource(preset="test-tiny", threads=-1)
    with pytest.raises(IntiExportError, match="--decode-workers"):
        make_job([one_video], ModelSource(preset="test-tiny"), tmp_path / "e", Sampling(clips_per_video=1),
                 decode_workers=0)


def test_ray_refuses_a_non_utf8_output_in_one_line(tmp_path, one_video, tiny_onnx):
    """#7 with --ray: Ray's Parquet writer takes text paths, so a non-UTF-8 -o is one line, nothing created."""
    out = tmp_path / f"e{BAD}"
    line = _error_line(_embed(str(one_video), "--artifact", str(tiny_onnx.onnx_path), "-o", str(out), "--ray"))
    assert "e\\xff is not a UTF-8 name" in line and "without --ray" in line
    assert not out.exists()


@pytest.mark.slow  # Ray starts a local instance: about a minute on a busy 2-core machine
def test_ray_embeds_a_non_utf8_video_name(tmp_path, one_video, tiny_onnx):
    """#7 with --ray: the video travels as its bytes and is stored under its escaped name."""
    pytest.importorskip("ray", reason="install the ray extra: pip install 'inti-export[ray]'")
    import ray

    from inti_export.corpus import embed_ray

    corpus = tmp_path / "c"
    corpus.mkdir()
    shutil.copy(next(one_video.iterdir()), corpus / f"v{BAD}.mp4")
    job = make_job([corpus], ModelSource(artifact=Path(tiny_onnx.onnx_path), threads=1), tmp_path / "e",
                   Sampling(clips_per_video=1), batch=4, decode_workers=1)
    try:
        ray.init(num_cpus=2, include_dashboard=False)
        report = embed_ray(job)
    finally:
        ray.shutdown()
    assert (report.embedded, report.failed) == (1, 0), report.errors
    assert read_rows(job.output)["video"].to_pylist() == [str(corpus.resolve() / "v\\xff.mp4")]
