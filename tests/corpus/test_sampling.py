"""Clip sampling and source expansion (no decoding)."""

from __future__ import annotations

import pytest

from inti_export.corpus import Sampling, expand_sources
from inti_export.errors import IntiExportError, VideoError
from inti_export.video.decode import sample_indices


def test_segments_are_calibrations_clips_with_their_times():
    # 90 frames in 3 segments of 30; 8 points at sub-segment centres, 3.75 frames apart:
    # floor(30c + (i + 0.5) * 3.75) for i in 0..7
    segs = Sampling(clips_per_video=3).segments(90, 8, fps=30.0)
    assert [s.indices for s in segs] == [
        (1, 5, 9, 13, 16, 20, 24, 28),
        (31, 35, 39, 43, 46, 50, 54, 58),
        (61, 65, 69, 73, 76, 80, 84, 88),
    ]
    assert [(s.clip, s.start_s, s.end_s) for s in segs] == [(0, 0.0, 1.0), (1, 1.0, 2.0), (2, 2.0, 3.0)]
    # segment c of N is the clip parity and calibration sample (the same function, video/decode.py)
    assert [list(s.indices) for s in segs] == [sample_indices(90, 8, c, 3) for c in range(3)]


def test_segments_of_uneven_length():
    # 100 frames in 3 segments of 33.33; points 4.1667 apart: floor(33.33c + (i + 0.5) * 4.1667)
    segs = Sampling(clips_per_video=3).segments(100, 8, fps=25.0)
    assert [s.indices for s in segs] == [
        (2, 6, 10, 14, 18, 22, 27, 31),
        (35, 39, 43, 47, 52, 56, 60, 64),
        (68, 72, 77, 81, 85, 89, 93, 97),
    ]
    assert segs[1].start_s == pytest.approx(100 / 3 / 25) and segs[2].end_s == pytest.approx(4.0)


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
