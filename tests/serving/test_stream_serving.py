"""The served stream (issue 26): `triton-repo --stream`, the stateful `StreamModel`, and `RemoteStreamSession`
against a real tritonserver; every window compared with the local `StreamSession` on the same frames."""

from __future__ import annotations

import json
import os
import shutil
import threading

import numpy as np
import onnx
import pytest
from serving_helpers import REQUIRE_ENV, running_server, serving_setup_missing

from inti_export.runtime.stream import OrtStemHead, StreamSession
from inti_export.serving import RepoConfig, RepositoryError, check_repository, write_triton_repo
from inti_export.serving.config import read_config
from inti_export.video.live import Frame

try:
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2 as pb
except ImportError as e:
    if os.environ.get(REQUIRE_ENV):
        raise
    pytest.skip(f"tritonclient (the serve extra) is not installed: {e}", allow_module_level=True)

COSINE_MIN = 0.99999


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """test-tiny's split pair, by the CLI: `inti-export onnx --preset test-tiny --stream -o DIR`."""
    from typer.testing import CliRunner

    from inti_export.cli import app

    directory = tmp_path_factory.mktemp("stream") / "pair"
    res = CliRunner().invoke(app, ["onnx", "--preset", "test-tiny", "--stream", "--no-verify", "-o", str(directory)])
    assert res.exit_code == 0, res.output
    return directory


@pytest.fixture(scope="module")
def frames(tiny_clips):
    """Two different runs of real consecutive frames (3, 32, 32): the shipped clips in two orders."""
    f = tiny_clips.clips  # (K, T, 3, H, W)
    a = np.ascontiguousarray(f.reshape(-1, *f.shape[2:]))
    b = np.ascontiguousarray(f[::-1].reshape(-1, *f.shape[2:]))
    return a, b


@pytest.fixture(scope="module")
def stream_repo(pair, tmp_path_factory):
    repo = tmp_path_factory.mktemp("triton-stream") / "repo"
    write_triton_repo(pair, repo, RepoConfig(stream=True, stride=3))
    return repo


def _local(pair, frames, stride, indices=None):
    """The local session's windows on `frames` (with their indices): the reference."""
    session = StreamSession(OrtStemHead(pair), stride)
    indices = range(len(frames)) if indices is None else indices
    return list(session.run(Frame(int(i), f) for i, f in zip(indices, frames, strict=True)))


def _cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _same(remote, local):
    assert len(remote) == len(local) > 0
    for r, w in zip(remote, local, strict=True):
        assert (r.window, r.first_frame, r.last_frame) == (w.window, w.first_frame, w.last_frame)
        assert _cosine(r.output, w.output) >= COSINE_MIN


def test_stream_repo_layout(stream_repo, pair):
    assert check_repository(stream_repo) == ["inti_stream", "inti_stream_head", "inti_stream_stem"]
    cfg = read_config(stream_repo / "inti_stream" / "config.pbtxt")
    seq = cfg.sequence_batching
    assert cfg.backend == "python" and seq.max_sequence_idle_microseconds == 60_000_000
    assert [(c.name, c.control[0].kind, list(c.control[0].int32_false_true)) for c in seq.control_input] == [
        ("START", seq.Control.CONTROL_SEQUENCE_START, [0, 1]), ("END", seq.Control.CONTROL_SEQUENCE_END, [0, 1])]
    assert seq.oldest.max_candidate_sequences == 16 and not cfg.HasField("dynamic_batching")
    assert {i.name: (i.data_type, list(i.dims), i.optional) for i in cfg.input} == {
        "frame": (pb.TYPE_FP32, [3, 32, 32], False), "index": (pb.TYPE_INT64, [1], False),
        "stride": (pb.TYPE_INT32, [1], True)}
    assert [o.name for o in cfg.output] == ["window", "first_frame", "last_frame", "timing_ms", "embedding"]
    params = {k: v.string_value for k, v in cfg.parameters.items()}
    assert (params["stride"], params["frames"], params["image_size"], params["preset"]) == ("3", "8", "32", "test-tiny")
    for f in ("stem.onnx", "head.onnx", "stream.json"):
        assert (stream_repo / "inti_stream" / "1" / f).read_bytes() == (pair / f).read_bytes()
    stem = read_config(stream_repo / "inti_stream_stem" / "config.pbtxt")
    head = read_config(stream_repo / "inti_stream_head" / "config.pbtxt")
    assert [i.name for i in stem.input] == ["frames"] and list(stem.output[0].dims) == list(head.input[0].dims)[1:]
    assert head.input[0].dims[0] == 8 and head.output[0].name == "embedding"


def test_stream_repo_refusals(pair, tmp_path):
    with pytest.raises(RepositoryError, match="stride 9 is outside 1..8"):
        write_triton_repo(pair, tmp_path / "r", RepoConfig(stream=True, stride=9))
    with pytest.raises(RepositoryError, match="holding a stream pair: pass --stream"):
        write_triton_repo(pair, tmp_path / "r", RepoConfig())
    other = tmp_path / "other"
    shutil.copytree(pair, other)
    stem = onnx.load(str(other / "stem.onnx"))
    stem.doc_string = "edited"  # a valid ONNX, but not the stem the head was exported with
    onnx.save(stem, str(other / "stem.onnx"))
    with pytest.raises(RepositoryError, match="different models"):
        write_triton_repo(other, tmp_path / "r", RepoConfig(stream=True))
    assert not (tmp_path / "r" / "inti_stream").exists()


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _model(stream_repo, clock=None):
    """StreamModel initialised as Triton would (args of the repository's config), outside the server."""
    from inti_export.serving.stream_backend import StreamModel

    cfg = read_config(stream_repo / "inti_stream" / "config.pbtxt")
    model = StreamModel()
    model.initialize({"model_config": json_format.MessageToJson(cfg, preserving_proto_field_name=True),
                      "model_repository": str(stream_repo / "inti_stream"), "model_version": "1"})
    if clock is not None:
        model.clock = clock
    return model


def _feed(model, key, frames, start_index=0, start=True, stride=0):
    """Frames one request each; the rows that carry a window, as (window, first, last, output)."""
    out = []
    for i, f in enumerate(frames):
        row = model.step(key, f[None], np.array([start_index + i]), start and i == 0, False, stride)
        if row["window"][0, 0] >= 0:
            out.append((int(row["window"][0, 0]), int(row["first_frame"][0, 0]), int(row["last_frame"][0, 0]),
                        row["embedding"][0]))
    return out


def test_stream_model_outside_the_server(stream_repo, pair, frames):
    from inti_export.serving.stream_backend import SequenceError

    a, b = frames
    clock = _Clock()
    model = _model(stream_repo, clock)
    got = {1: [], 2: []}
    for i in range(len(a)):  # interleaved, one frame each in turn
        got[1] += _feed(model, 1, a[i:i + 1], i, start=i == 0)
        got[2] += _feed(model, 2, b[i:i + 1], i, start=i == 0, stride=2)
    for key, fr, stride in ((1, a, 3), (2, b, 2)):
        local = _local(pair, fr, stride)
        assert [(w, f, la) for w, f, la, _ in got[key]] == [(w.window, w.first_frame, w.last_frame) for w in local]
        assert min(_cosine(o, w.output) for (*_, o), w in zip(got[key], local, strict=True)) >= COSINE_MIN
    # END (with no frame) drops the state; a request without START then has none; START begins afresh
    row = model.step(1, np.zeros((1, 3, 32, 32), np.float32), np.array([-1]), False, True)
    assert row["window"][0, 0] == -1 and not row["embedding"].any() and 1 not in model.sequences
    with pytest.raises(SequenceError, match="sequence 1 has no state"):
        model.step(1, a[:1], np.array([40]), False, False)
    assert [w for w, *_ in _feed(model, 1, b[:8], 0)] == [0]
    # idle past the limit: evicted by the next request of any sequence
    clock.now += 61
    _feed(model, 3, a[:1])
    assert set(model.sequences) == {3} and model.evicted == 2
    # more sequences than max_sequences: the least recently seen goes
    model.max_sequences = 2
    for key in (4, 5):
        clock.now += 1
        _feed(model, key, a[:1])
    assert set(model.sequences) == {4, 5}


_MISSING = serving_setup_missing()


@pytest.mark.skipif(_MISSING is not None, reason=_MISSING or "")
def test_two_clients_at_once_get_their_own_rings(stream_repo, pair, frames, shipped_videos, tmp_path):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException

    from inti_export.errors import IntiExportError
    from inti_export.serving.client import ClientError
    from inti_export.serving.stream_client import RemoteStreamSession

    a, b = frames
    with running_server(stream_repo, ready_timeout=240) as server:
        url = server.endpoints.http
        sessions = [RemoteStreamSession(url, stride=None), RemoteStreamSession(url, stride=2)]
        assert (sessions[0].frames, sessions[0].image_size, sessions[0].stride) == (8, 32, 3)
        with pytest.raises(IntiExportError, match="stride 9 is outside 1..8"):
            RemoteStreamSession(url, stride=9)
        with pytest.raises(ClientError, match="'inti_stream_stem' .* is not a stream model"):
            RemoteStreamSession(url, model="inti_stream_stem")
        turn = threading.Barrier(2)
        results: dict[int, list] = {0: [], 1: []}
        errors = []

        def stream(k, fr):
            try:
                for i, f in enumerate(fr):
                    turn.wait(timeout=60)  # both clients send frame i, then both frame i + 1: interleaved
                    if (w := sessions[k].push(Frame(i, f))) is not None:
                        results[k].append(w)
                sessions[k].close()
            except Exception as e:  # noqa: BLE001 - reported by the test below
                errors.append(e)
                turn.abort()

        threads = [threading.Thread(target=stream, args=(k, fr)) for k, fr in enumerate((a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not errors, errors
        _same(results[0], _local(pair, a, 3))
        _same(results[1], _local(pair, b, 2))
        assert all(w.latency_ms > 0 and w.head_ms > 0 for w in results[0])

        # a gap restarts the sequence on the client, as the local session restarts its ring
        idx = [*range(10), *range(14, 30)]
        gapped = RemoteStreamSession(url, stride=4)
        remote = list(gapped.run(Frame(i, f) for i, f in zip(idx, a[: len(idx)], strict=True)))
        gapped.close()
        _same(remote, _local(pair, a[: len(idx)], 4, idx))
        assert gapped.dropped == 4 and [(g.after_frame, g.next_frame) for g in gapped.gaps] == [(9, 14)]

        # a reconnect (`Frame.restart`) restarts the sequence too, as it restarts the local ring
        def reconnected():
            return [Frame(i, f, restart={"event": "reconnect"} if i == 12 else None) for i, f in enumerate(a[:26])]

        resumed = RemoteStreamSession(url, stride=4)
        remote = list(resumed.run(reconnected()))
        resumed.close()
        local = StreamSession(OrtStemHead(pair), 4)
        _same(remote, list(local.run(reconnected())))
        assert resumed.restarts == local.restarts == 1 and remote[-1].first_frame >= 12

        # END evicts: the same sequence ID started again begins with an empty ring
        client = http.InferenceServerClient(url.removeprefix("http://"))

        def send(fr, index, start=False, end=False):
            feeds = [http.InferInput("frame", [1, 3, 32, 32], "FP32"), http.InferInput("index", [1, 1], "INT64")]
            feeds[0].set_data_from_numpy(fr[None])
            feeds[1].set_data_from_numpy(np.array([[index]], np.int64))
            res = client.infer("inti_stream", feeds, sequence_id=77, sequence_start=start, sequence_end=end)
            return int(res.as_numpy("window")[0, 0]), res.as_numpy("embedding")[0]

        assert [send(f, i, start=i == 0)[0] for i, f in enumerate(a[:8])][-1] == 0
        assert send(a[8], 8, end=True)[0] == -1  # stride 3: frame 8 completes no window; the sequence ends
        with pytest.raises(InferenceServerException):
            send(a[9], 9)  # no START after END: Triton refuses it
        windows = [send(f, i, start=i == 0) for i, f in enumerate(b[:8])]
        assert [w for w, _ in windows] == [-1] * 7 + [0]  # warm-up again: the old ring is gone
        assert _cosine(windows[-1][1], _local(pair, b[:8], 3)[0].output) >= COSINE_MIN
        send(b[8], -1, end=True)
        client.close()

        # the command: `stream FILE --url` answers what `stream FILE --artifact PAIR` answers locally
        _cli_over_the_server(url, pair, shipped_videos / "bikes.mp4", tmp_path)


def _cli_over_the_server(url, pair, video, tmp_path):
    from typer.testing import CliRunner

    from inti_export.cli import app

    lines = {}
    for how, model in (("served", ["--url", url]), ("local", ["--artifact", str(pair)])):
        out = tmp_path / f"{how}.jsonl"
        res = CliRunner().invoke(app, ["stream", str(video), *model, "--stride", "3", "--duration", "1", "-o", str(out)])
        assert res.exit_code == 0, res.output
        lines[how] = [row for row in map(json.loads, out.read_text().splitlines()) if "window" in row]
    assert len(lines["served"]) == len(lines["local"]) >= 5
    for r, w in zip(lines["served"], lines["local"], strict=True):
        assert (r["window"], r["first_frame"], r["last_frame"]) == (w["window"], w["first_frame"], w["last_frame"])
        assert _cosine(np.array(r["embedding"]), np.array(w["embedding"])) >= COSINE_MIN


def test_cli_triton_repo_stream(pair, tmp_path):
    from typer.testing import CliRunner

    from inti_export.cli import app

    res = CliRunner().invoke(app, ["triton-repo", str(pair), "--stream", "--stride", "2", "--max-sequences", "4",
                                   "-o", str(tmp_path / "repo"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert [m["name"] for m in report["models"]] == ["inti_stream", "inti_stream_stem", "inti_stream_head"]
    cfg = read_config(tmp_path / "repo" / "inti_stream" / "config.pbtxt")
    assert cfg.parameters["stride"].string_value == "2" and cfg.sequence_batching.oldest.max_candidate_sequences == 4


@pytest.mark.parametrize(("extra", "message"), [
    (["--stride", "0"], "stride 0 must be at least 1"),
    (["--sequence-idle-s", "nan"], "sequence idle limit nan s"),
    (["--kind", "gpu"], "python backend on CPU"),
    (["--video"], "drop --video"),
])
def test_cli_triton_repo_stream_refusals(pair, tmp_path, extra, message):
    from helpers import assert_one_line_error
    from typer.testing import CliRunner

    from inti_export.cli import app

    res = CliRunner().invoke(app, ["triton-repo", str(pair), "--stream", *extra, "-o", str(tmp_path / "repo")])
    assert_one_line_error(res, message)
    assert not (tmp_path / "repo").exists()
