"""StreamSession: every window equals the full model on the same T frames; the ring never spans a gap."""

from __future__ import annotations

import numpy as np
import pytest

from inti_export.errors import InputShapeError, IntiExportError
from inti_export.metrics import cosine_per_sample
from inti_export.runtime.stream import Frame, Gap, StreamSession, TorchStemHead, full_window_reference

COSINE_MIN = 0.99999
ATOL = 1e-5


def _frames(data, indices=None):
    indices = range(len(data)) if indices is None else indices
    return [Frame(i, data[i], pts=i / 25) for i in indices]


def _check_exact(model, frames, results):
    """Each window against the full model on frames[first..last]; returns the max abs error seen."""
    worst = 0.0
    for r in results:
        assert r.last_frame - r.first_frame == model.cfg.frames - 1
        want = full_window_reference(model, frames[r.first_frame:r.last_frame + 1])
        err = float(np.abs(r.output - want).max())
        assert err < ATOL and cosine_per_sample(r.output[None], want[None])[0] >= COSINE_MIN, (r.window, err)
        worst = max(worst, err)
    return worst


@pytest.mark.parametrize("stride", [1, 3, 8])
def test_every_window_offset_is_exact(tiny_model, tiny_frames, stride):
    """Every window offset over 32 real frames, stem per frame + head == the whole model (PyTorch FP32)."""
    t = tiny_model.cfg.frames
    session = StreamSession(TorchStemHead(tiny_model), stride)
    results = list(session.run(_frames(tiny_frames)))
    assert [r.first_frame for r in results] == list(range(0, len(tiny_frames) - t + 1, stride))
    assert [r.window for r in results] == list(range(len(results)))
    _check_exact(tiny_model, tiny_frames, results)
    assert all(r.dropped == 0 and r.latency_ms >= r.head_ms >= 0 for r in results) and not session.gaps


def test_off_by_one_ring_would_fail(tiny_model, tiny_frames):
    """The exactness check can tell neighbouring windows apart: a ring one frame late or early fails it."""
    session = StreamSession(TorchStemHead(tiny_model), 4)
    t = tiny_model.cfg.frames
    for r in session.run(_frames(tiny_frames)):
        for shift in (-1, 1):
            start = r.first_frame + shift
            if 0 <= start <= len(tiny_frames) - t:
                other = full_window_reference(tiny_model, tiny_frames[start:start + t])
                assert np.abs(r.output - other).max() > 100 * ATOL
                assert cosine_per_sample(r.output[None], other[None])[0] < COSINE_MIN


def test_gap_restarts_the_ring(tiny_model, tiny_frames):
    """Frames 10 and 11 missing: no window spans them; the ring warms up again from frame 12."""
    session = StreamSession(TorchStemHead(tiny_model), 2)
    indices = [*range(10), *range(12, 26)]
    results = list(session.run(_frames(tiny_frames, indices)))
    assert [(r.first_frame, r.last_frame) for r in results] == [(0, 7), (2, 9), (12, 19), (14, 21), (16, 23), (18, 25)]
    assert session.gaps == [Gap(9, 12)] and session.gaps[0].missing == 2 and session.dropped == 2
    assert [r.dropped for r in results] == [0, 0, 2, 2, 2, 2]
    _check_exact(tiny_model, tiny_frames, results)


def test_every_stem_is_timed_also_when_no_window_comes(tiny_model, tiny_frames):
    """A stream that is always behind (a gap every few frames) completes no window, yet its stems ran: the
    total counts them (the summary's stem ms per frame), the windows' stem_ms only those since the last."""
    ticks = iter(range(10_000))
    session = StreamSession(TorchStemHead(tiny_model), 2, clock=lambda: next(ticks) * 1e-3)  # 1 ms a call
    indices = [0, 1, 2, 4, 5, 6, 8, 9, 10]
    assert list(session.run(_frames(tiny_frames, indices))) == []
    assert session.frames_in == 9 and session.stem_ms_total == pytest.approx(9.0)


def test_bad_stride_and_frames(tiny_model, tiny_frames):
    pair = TorchStemHead(tiny_model)
    for stride in (0, 9):
        with pytest.raises(IntiExportError, match=rf"stride {stride} is outside 1\.\.8"):
            StreamSession(pair, stride)
    session = StreamSession(pair, 1)
    with pytest.raises(InputShapeError, match=r"expected float32 \(3, 32, 32\)"):
        session.push(Frame(0, tiny_frames[0, :, :16]))
    session.push(Frame(5, tiny_frames[0]))
    with pytest.raises(IntiExportError, match="does not follow 5"):
        session.push(Frame(5, tiny_frames[1]))
