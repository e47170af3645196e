"""Decode a video's clips in one streaming pass, with video/'s decoding and preprocessing.

Frames come from the same PyAV calls and open_clip eval transform as `video.decode`
(`open_video`, `count_frames`, `Preprocess.transform`, `sample_indices`), so a clip here equals the
clip parity loads for the same segment. Unlike `video.decode.load_clip`, frames are transformed as they
are decoded and dropped once no pending clip needs them, so a long video with thousands of
sliding windows holds only a window's frames in memory, and clips leave in chunks.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from inti_export.corpus.sampling import Sampling, Segment
from inti_export.errors import VideoError
from inti_export.video.decode import count_frames, open_video
from inti_export.video.preprocess import Preprocess


class _Truncated(Exception):
    def __init__(self, decoded: int) -> None:
        super().__init__(decoded)
        self.decoded = decoded


@functools.lru_cache(maxsize=4)
def _transform(pre: Preprocess):
    return pre.transform()


def probe(path: Path) -> tuple[int, float]:
    """(frames, frames per second) of the first video stream."""
    num_frames = count_frames(path)
    with open_video(path) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
    if not rate or float(rate) <= 0:
        raise VideoError(f"{path} has no frame rate; re-mux it with a frame rate")
    return num_frames, float(rate)


def _stream(
    path: Path, pre: Preprocess, segments: list[Segment], chunk: int
) -> Iterator[tuple[list[Segment], np.ndarray]]:
    """Chunks of at most `chunk` clips in segment order; _Truncated if the video ends early."""
    import av

    transform = _transform(pre)
    wanted = {i for s in segments for i in s.indices}
    last = max(wanted)
    pending = deque(segments)
    cache: dict[int, np.ndarray] = {}  # frame index -> (3, H, W)
    ready: list[tuple[Segment, np.ndarray]] = []
    count = 0
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if count in wanted:
                    cache[count] = transform(frame.to_image()).numpy()  # RGB PIL -> (3, H, W)
                count += 1
                while pending and pending[0].indices[-1] < count:
                    seg = pending.popleft()
                    ready.append((seg, np.stack([cache[i] for i in seg.indices])))  # (T, 3, H, W)
                    keep = pending[0].indices[0] if pending else count
                    for i in [i for i in cache if i < keep]:
                        del cache[i]
                    if len(ready) == chunk:
                        yield [s for s, _ in ready], np.stack([c for _, c in ready])
                        ready = []
                if count > last:
                    break
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode video {path} at frame {count}: {e}; the file may be corrupt") from e
    if pending:
        raise _Truncated(count)
    if ready:
        yield [s for s, _ in ready], np.stack([c for _, c in ready])  # (k, T, 3, H, W)


def decode_clips(
    path: str | Path, pre: Preprocess, sampling: Sampling, chunk: int = 8
) -> Iterator[tuple[list[Segment], np.ndarray]]:
    """The clips of one video as chunks of (segments, clips `(k, T, 3, H, W)` float32).

    Like `clips.load_clip`, a video whose metadata over-counts its frames (truncated) is sampled
    again over the frames that decode, provided no chunk of it has left yet; otherwise VideoError.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file {path} does not exist; check the path")
    num_frames, fps = probe(path)
    segments = sampling.segments(num_frames, pre.frames, fps)
    sent = 0
    try:
        for item in _stream(path, pre, segments, chunk):
            sent += 1
            yield item
        return
    except _Truncated as t:
        if sent or t.decoded == 0:
            raise VideoError(
                f"{path} decodes only {t.decoded} of the {num_frames} frames its metadata claims; the file is truncated"
            ) from None
        decoded = t.decoded
    segments = sampling.segments(decoded, pre.frames, fps)
    try:
        yield from _stream(path, pre, segments, chunk)
    except _Truncated as t:
        raise VideoError(
            f"{path} decoded inconsistently ({decoded}, then {t.decoded} frames); the file may be corrupt"
        ) from None
