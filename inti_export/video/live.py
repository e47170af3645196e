"""Live and file sources for `stream`: PyAV decoding in its own thread into a bounded queue (docs/stream.md).

SOURCE is a video file, an `http(s)://`, `rtsp://`, `udp://`, `tcp://` (or other FFmpeg protocol) URL, or
a lavfi graph (`lavfi:testsrc2=size=64x64:rate=25`, or the bare graph when no such file exists). The
decoder thread keeps every `sample_every`-th frame, numbers it among sampled frames and queues its RGB
image; the consumer preprocesses it (open_clip's eval transform, `video.preprocess.Preprocess`). When the
queue is full, `drop="latest"` discards the oldest queued frame (the decoder never blocks: a live source),
`drop="none"` waits (back-pressure: a file is read whole). A dropped frame leaves a gap in the indices,
which `runtime.stream.StreamSession` never spans.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export.errors import IntiExportError, VideoError, one_line
from inti_export.video.decode import open_video
from inti_export.video.preprocess import Preprocess
from inti_export.vocab import DropPolicy, values

logger = logging.getLogger(__name__)

DROP_POLICIES = values(DropPolicy)
LAVFI_PREFIX = "lavfi:"
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Source:
    """Where frames come from: `kind` file, url or lavfi; `live` when the source sets the pace."""

    text: str
    kind: str
    url: str  # what av.open gets

    @property
    def live(self) -> bool:
        return self.kind != "file"


def parse_source(text: str) -> Source:
    """SOURCE as given on the command line -> Source, or a one-line VideoError."""
    if text.startswith(LAVFI_PREFIX):
        return Source(text, "lavfi", text[len(LAVFI_PREFIX):])
    if "://" in text:
        return Source(text, "url", text)
    path = Path(text).expanduser()
    if path.is_file():
        return Source(text, "file", str(path))
    if "=" in text and "/" not in text:  # a filter graph such as testsrc2=size=64x64:rate=25
        return Source(text, "lavfi", text)
    raise VideoError(f"source {text!r} is not a file, a URL (scheme://...) or a lavfi graph (lavfi:GRAPH); check the path")


def open_container(source: Source, timeout_s: float = DEFAULT_TIMEOUT_S):
    """The opened PyAV container (first video stream checked); one-line VideoError within about `timeout_s`."""
    return open_video(source.url, fmt="lavfi" if source.kind == "lavfi" else None,
                      timeout_s=timeout_s if source.kind == "url" else None, label=source.text)


@dataclass
class Frame:
    """A sampled frame: its index among sampled frames, pts (s), arrival (perf_counter s), data (3, H, W)."""

    index: int
    data: np.ndarray
    pts: float | None = None
    arrival: float = field(default_factory=time.perf_counter)


@dataclass
class ReaderStats:
    decoded: int = 0  # frames decoded from the source
    sampled: int = 0  # frames kept by sample_every (queued or dropped)
    dropped: int = 0  # sampled frames discarded because the queue was full (drop="latest")
    corrupt: int = 0  # packets that failed to decode, skipped
    end: str = ""  # why reading stopped
    source_fps: float | None = None


_END = object()


class FrameReader:
    """Decodes `source` in a thread; `frames()` yields preprocessed `Frame`s until the source ends or `stop()`."""

    def __init__(self, source: Source, pre: Preprocess, *, sample_every: int = 1, max_queue: int = 8,
                 drop: str = "none", realtime: bool = False, duration_s: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        if drop not in DROP_POLICIES:
            raise IntiExportError(f"drop policy {drop!r} is unknown; use one of {', '.join(DROP_POLICIES)}")
        if sample_every < 1:
            raise IntiExportError(f"sample_every {sample_every} must be at least 1")
        if max_queue < 1:
            raise IntiExportError(f"max_queue {max_queue} must be at least 1")
        self.source, self.pre, self.sample_every, self.drop = source, pre, sample_every, drop
        self.realtime, self.duration_s, self.timeout_s = realtime, duration_s, timeout_s
        self.stats = ReaderStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._closed = False  # close() gave up waiting: the thread may leave without its end marker
        self._error: BaseException | None = None
        self._container = open_container(source, timeout_s)  # fails here, before any output
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        self.stats.source_fps = float(rate) if rate else None
        self._transform = pre.transform()  # open_clip's eval transform (imports open_clip: before any frame)
        self._thread = threading.Thread(target=self._run, name="inti-stream-decoder", daemon=True)

    def stop(self) -> None:
        self._stop.set()

    def _put(self, item) -> None:
        if self.drop == "latest":  # never block: make room by discarding the oldest queued frame
            while not self._stop.is_set():
                try:
                    self._queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                        self.stats.dropped += 1
                    except queue.Empty:
                        pass
        else:
            while not self._stop.is_set():
                try:
                    self._queue.put(item, timeout=0.1)
                    return
                except queue.Full:
                    continue

    def _packets(self, container, stream):
        import av

        try:
            yield from container.demux(stream)
        except av.ExitError:  # the read timeout: nothing arrived for timeout_s
            self.stats.end = f"no data for {self.timeout_s:g} s"
        except av.EOFError:
            pass

    def _run(self) -> None:
        import av

        container, start, first_pts = self._container, None, None
        stream = container.streams.video[0]
        try:
            for packet in self._packets(container, stream):
                if self._stop.is_set():
                    break
                try:
                    frames = packet.decode()
                except (av.InvalidDataError, av.error.UndefinedError) as e:  # a corrupt packet: skip it, count it
                    self.stats.corrupt += 1
                    logger.debug("corrupt packet skipped: %s", e)
                    continue
                for frame in frames:
                    self.stats.decoded += 1
                    pts = float(frame.time) if frame.time is not None else None
                    if pts is not None and first_pts is None:
                        first_pts, start = pts, time.perf_counter()
                    if self.duration_s is not None and pts is not None and pts - first_pts >= self.duration_s:
                        self.stats.end = f"--duration {self.duration_s:g} s reached"
                        self._stop.set()
                        break
                    if (self.stats.decoded - 1) % self.sample_every:
                        continue
                    if self.realtime and pts is not None:  # a file at its own pace, as if live
                        time.sleep(max(0.0, start + (pts - first_pts) - time.perf_counter()))
                    index = self.stats.sampled
                    self.stats.sampled += 1
                    self._put((index, pts, time.perf_counter(), frame.to_image()))
        except av.FFmpegError as e:
            self.stats.end = f"source error: {one_line(e)}"
        except Exception as e:  # noqa: BLE001 - surfaced to the consumer, never lost in the thread
            self._error = e
        finally:
            container.close()
            self.stats.end = self.stats.end or ("stopped" if self._stop.is_set() else "end of stream")
            self._put_end()

    def _put_end(self) -> None:
        """The end marker waits for room (it never drops the last frames); `close` drains the queue meanwhile."""
        while not self._closed:
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                continue

    def frames(self) -> Iterator[Frame]:
        """Preprocessed frames (3, H, W) float32, in order, with their sampled index, pts and arrival time."""
        transform = self._transform
        if not self._thread.is_alive() and not self._thread.ident:
            self._thread.start()
        while True:
            item = self._queue.get()
            if item is _END:
                break
            index, pts, arrival, image = item
            yield Frame(index, transform(image).numpy(), pts, arrival)
        if self._error is not None:
            raise VideoError(f"decoding {self.source.text} failed: {one_line(self._error)}") from self._error

    def close(self, wait_s: float = 2.0) -> None:
        """Stop the decoder and wait for it at most `wait_s` (a read blocked on a silent URL is left to its daemon thread)."""
        self._stop.set()
        if self._thread.ident:
            deadline = time.perf_counter() + wait_s
            while self._thread.is_alive() and time.perf_counter() < deadline:
                try:  # unblock a decoder waiting on a full queue
                    self._queue.get_nowait()
                except queue.Empty:
                    pass
                self._thread.join(timeout=0.05)
            self._closed = True
        else:
            self._container.close()
