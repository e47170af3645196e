"""Issue 26: `embed --stride` shares each frame's stem between overlapping windows, as `stream --drop none` does.

The split is exact (docs/stream.md), so `embed --stride S` with it equals `embed --stride S` without it,
and equals `StreamSession` on the same file, window for window.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.corpus import ModelSource, Sampling, embed_local, make_job, read_rows
from inti_export.corpus.split import SplitModel
from inti_export.metrics import cosine_per_sample

STRIDE = 3  # test-tiny has T = 8: windows overlap by 5 frames


def _embeddings(out: Path) -> np.ndarray:
    """(windows, D) in clip order (one video)."""
    t = read_rows(out).to_pydict()
    order = np.argsort(t["clip"])
    return np.stack([np.asarray(t["embedding"][i], np.float32) for i in order])


def _session(pair, pre, video: Path, stride: int) -> np.ndarray:
    """What `stream VIDEO --drop none --stride S` computes: (windows, D)."""
    from inti_export.runtime.stream import StreamSession
    from inti_export.video.live import FrameReader, parse_source

    reader = FrameReader(parse_source(str(video)), pre, drop="none", max_queue=pair.frames)
    try:
        return np.stack([w.output for w in StreamSession(pair, stride).run(reader.frames())])
    finally:
        reader.close()


def _embed(video: Path, model: ModelSource, out: Path, split: bool):
    job = make_job([video], model, out, Sampling(stride=STRIDE), batch=2, decode_workers=1, split=split)
    return embed_local(job)


def test_torch_split_equals_no_split_and_the_stream_session(tmp_path, one_good_video, tiny_model):
    from inti_export.runtime.stream import TorchStemHead

    model = ModelSource(preset="test-tiny")
    with_split = _embed(one_good_video, model, tmp_path / "split", split=True)
    without = _embed(one_good_video, model, tmp_path / "full", split=False)
    assert (with_split.split, without.split) == (True, False)
    a, b = _embeddings(tmp_path / "split"), _embeddings(tmp_path / "full")
    assert a.shape == b.shape and len(a) == with_split.clips > 3
    assert cosine_per_sample(a, b).min() >= 0.99999
    ref = _session(TorchStemHead(tiny_model), model.preprocess(), one_good_video, STRIDE)
    assert ref.shape == a.shape  # the same windows: the first at frame T - 1, then every S frames
    assert cosine_per_sample(a, ref).min() >= 0.99999


def test_pair_split_equals_the_whole_onnx_and_the_stream_session(tmp_path, one_good_video, tiny_pair, tiny_onnx):
    from inti_export.runtime.stream import OrtStemHead

    base = ["embed", str(one_good_video), "--stride", str(STRIDE), "--decode-workers", "1", "--threads", "1"]
    for name, extra in (("split", []), ("nosplit", ["--no-split"])):
        res = CliRunner().invoke(app, [*base, "--artifact", str(tiny_pair), "-o", str(tmp_path / name),
                                       "--report", str(tmp_path / f"{name}.json"), *extra])
        assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "split.json").read_text())["split"] is True
    assert json.loads((tmp_path / "nosplit.json").read_text())["split"] is False
    whole = ModelSource(artifact=Path(tiny_onnx.onnx_path), threads=1)
    _embed(one_good_video, whole, tmp_path / "whole", split=True)  # a model.onnx cannot split: the whole model
    a, b, w = (_embeddings(tmp_path / n) for n in ("split", "nosplit", "whole"))
    assert a.shape == b.shape == w.shape
    assert cosine_per_sample(a, b).min() >= 0.99999 and cosine_per_sample(a, w).min() >= 0.99999
    pre = ModelSource(artifact=tiny_pair).preprocess()
    ref = _session(OrtStemHead(tiny_pair, threads=1), pre, one_good_video, STRIDE)
    assert ref.shape == a.shape and cosine_per_sample(a, ref).min() >= 0.99999


class _Counting:
    """A real StemHead that counts the frames its stem sees."""

    def __init__(self, pair) -> None:
        self.pair, self.frames_seen = pair, []

    def stem(self, frames):
        self.frames_seen.append(len(frames))
        return self.pair.stem(frames)

    def head(self, stems):
        return self.pair.head(stems)


def test_each_frame_stem_once_and_the_ring_stays_bounded(tiny_model, tiny_frames_32):
    from inti_export.runtime.stream import TorchStemHead

    t, stride = tiny_model.cfg.frames, 2
    pair = _Counting(TorchStemHead(tiny_model))
    split = SplitModel(pair)
    starts = list(range(0, len(tiny_frames_32) - t + 1, stride))
    outs = []
    for k in range(0, len(starts), 3):  # chunks of 3 windows, as the decoder sends them
        chunk = starts[k:k + 3]
        indices = [tuple(range(s, s + t)) for s in chunk]
        clips = np.stack([tiny_frames_32[s:s + t] for s in chunk])  # (k, T, 3, H, W)
        outs.append(split.infer(split.prepare(0, indices, clips)))
        assert len(split.rings[0]) <= t  # what the next windows still need, never the whole video
    assert sum(pair.frames_seen) == len(tiny_frames_32) == split.stem_frames  # every frame once
    import torch

    full = tiny_model(torch.from_numpy(np.stack([tiny_frames_32[s:s + t] for s in starts])))
    assert cosine_per_sample(np.concatenate(outs), full.detach().numpy()).min() >= 0.99999
    split.forget(0)
    assert not split.rings


@pytest.fixture(scope="module")
def tiny_frames_32(tiny_clips):
    """32 real consecutive preprocessed frames, (32, 3, 32, 32)."""
    return np.ascontiguousarray(tiny_clips.clips.reshape(-1, *tiny_clips.clips.shape[2:]))


def test_ray_refuses_a_pair_in_one_line(tmp_path, one_good_video, tiny_pair):
    res = CliRunner().invoke(app, ["embed", str(one_good_video), "--artifact", str(tiny_pair), "-o",
                                   str(tmp_path / "o"), "--ray", "--stride", "2"])
    assert "--ray runs the whole model" in assert_one_line_error(res)
