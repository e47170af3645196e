"""Clip sampling and source expansion (no decoding)."""

from __future__ import annotations

import pytest

from inti_export.corpus import Sampling, expand_sources
from inti_export.errors import IntiExportError, VideoError
from inti_export.video.decode import sample_indices


def test_segments_are_calibrations_clips_with_their_times():
    segs = Sampling(clips_per_video=3).segments(90, 8, fps=30.0)
    assert [s.indices for s in segs] == [tuple(sample_indices(90, 8, c, 3)) for c in range(3)]
    assert [(s.start_s, s.end_s) for s in segs] == [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0)]


def test_sliding_windows():
    segs = Sampling(stride=5).segments(20, 8, fps=10.0)
    assert [s.indices[0] for s in segs] == [0, 5, 10] and segs[-1].indices == tuple(range(10, 18))
    assert (segs[1].start_s, segs[1].end_s) == (0.5, 1.3)


def test_too_short_and_bad_settings():
    with pytest.raises(VideoError, match="too short"):
        Sampling(stride=1).segments(7, 8, fps=25.0)
    with pytest.raises(VideoError, match="too short"):
        Sampling(clips_per_video=2).segments(15, 8, fps=25.0)
    with pytest.raises(IntiExportError, match="choose one"):
        Sampling(clips_per_video=2, stride=4)
    with pytest.raises(IntiExportError, match="positive"):
        Sampling(stride=0)


def test_sources_folders_globs_lists(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/x.mp4", "a/y.MKV", "a/notes.md", "z.avi"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "list.txt").write_text("# videos\nz.avi\n\na/x.mp4\n")
    assert [p.name for p in expand_sources([tmp_path / "a"])] == ["x.mp4", "y.MKV"]
    assert [p.name for p in expand_sources([str(tmp_path / "*.avi"), tmp_path / "a"])] == ["z.avi", "x.mp4", "y.MKV"]
    assert [p.name for p in expand_sources([tmp_path / "list.txt", tmp_path / "z.avi"])] == ["z.avi", "x.mp4"]
    with pytest.raises(VideoError, match="matches no video"):
        expand_sources([tmp_path / "missing*.mp4"])
