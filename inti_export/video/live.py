"""Decoding a `stream` source in its own thread into a bounded queue (docs/stream.md, "Sources and drops").

The source (`video.sources`: a file, a URL, a lavfi graph, a V4L2 device or `-`) is decoded in a thread
that keeps every `sample_every`-th frame, numbers it among sampled frames and queues its RGB image; the
consumer preprocesses it (open_clip's eval transform, `video.preprocess.Preprocess`). When the queue is
full, `drop="latest"` discards the oldest queued frame (the decoder never blocks: a live source),
`drop="none"` waits (back-pressure: a file is read whole). A dropped frame leaves a gap in the indices,
which `runtime.stream.StreamSession` never spans. A live source that ends or goes silent is re-opened up
to `reconnect` times with back-off (0.5 s, 1 s, 2 s, ... at most 8 s); the first frame after a reconnect
carries the event (`Frame.restart`), and the session restarts its ring there.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from inti_export.errors import IntiExportError, VideoError, one_line
from inti_export.video.preprocess import Preprocess
from inti_export.video.sources import DEFAULT_TIMEOUT_S, LAVFI_PREFIX, Source, open_source, parse_source
from inti_export.vocab import DropPolicy, values

logger = logging.getLogger(__name__)

DROP_POLICIES = values(DropPolicy)
BACKOFF_S = (0.5, 8.0)  # first wait before re-opening, and the most
__all__ = ["DEFAULT_TIMEOUT_S", "LAVFI_PREFIX", "Frame", "FrameReader", "ReaderStats", "Source", "parse_source"]


def backoff_s(attempt: int) -> float:
    """Seconds to wait before re-opening attempt `attempt` (1-based): 0.5, 1, 2, 4, 8, 8, ..."""
    return min(BACKOFF_S[0] * 2 ** (attempt - 1), BACKOFF_S[1])


@dataclass
class Frame:
    """A sampled frame: its index among sampled frames, pts (s), arrival (perf_counter s), data (3, H, W)."""

    index: int
    data: np.ndarray
    pts: float | None = None
    arrival: float = field(default_factory=time.perf_counter)
    restart: dict | None = None  # the reconnect event just before this frame: the ring restarts here


@dataclass
class ReaderStats:
    decoded: int = 0  # frames decoded from the source
    sampled: int = 0  # frames kept by sample_every (queued or dropped)
    dropped: int = 0  # sampled frames discarded because the queue was full (drop="latest")
    corrupt: int = 0  # packets that failed to decode, skipped
    reconnects: int = 0  # times the source was re-opened after a loss
    end: str = ""  # why reading stopped
    source_fps: float | None = None


_END = object()


class FrameReader:
    """Decodes `source` in a thread; `frames()` yields preprocessed `Frame`s until the source ends or `stop()`."""

    def __init__(self, source: Source, pre: Preprocess, *, sample_every: int = 1, max_queue: int = 8,
                 drop: str = "none", realtime: bool = False, duration_s: float | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S, reconnect: int = 0) -> None:
        if drop not in DROP_POLICIES:
            raise IntiExportError(f"drop policy {drop!r} is unknown; use one of {', '.join(DROP_POLICIES)}")
        if sample_every < 1:
            raise IntiExportError(f"sample_every {sample_every} must be at least 1")
        if max_queue < 1:
            raise IntiExportError(f"max_queue {max_queue} must be at least 1")
        if reconnect < 0:
            raise IntiExportError(f"--reconnect {reconnect} must be 0 or more")
        self.source, self.pre, self.sample_every, self.drop = source, pre, sample_every, drop
        self.realtime, self.duration_s, self.timeout_s = realtime, duration_s, timeout_s
        self.reconnect = reconnect if source.live else 0  # a file's end is its end
        self.stats = ReaderStats()
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._stop = threading.Event()
        self._closed = False  # close() gave up waiting: the thread may leave without its end marker
        self._error: BaseException | None = None
        self._events: list[dict] = []  # reconnect events not yet handed to a frame
        self._container = open_source(source, timeout_s)  # fails here, before any output
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
        """Packets until the source ends; sets `stats.end` when it went silent or failed."""
        import av

        try:
            yield from container.demux(stream)
        except av.ExitError:  # the read timeout: nothing arrived for timeout_s
            self.stats.end = f"no data for {self.timeout_s:g} s"
        except av.EOFError:
            pass
        except av.FFmpegError as e:
            self.stats.end = f"source error: {one_line(e)}"

    def _reopen(self) -> dict | None:
        """After a loss: re-open the source up to `reconnect` times with back-off -> the event, or None."""
        lost = self.stats.end or "end of stream"
        for attempt in range(1, self.reconnect + 1):
            wait = backoff_s(attempt)
            if self._stop.wait(wait):
                return None
            try:
                self._container = open_source(self.source, self.timeout_s)
            except VideoError as e:
                self.stats.end = f"{lost}; {attempt} reconnect attempt{'s' if attempt > 1 else ''} failed: {one_line(e)}"
                logger.info("reconnect %d/%d to %s failed: %s", attempt, self.reconnect, self.source.text, e)
                continue
            self.stats.reconnects += 1
            self.stats.end = ""
            return {"event": "reconnect", "reason": lost, "attempt": attempt, "waited_s": wait,
                    "reconnects": self.stats.reconnects}
        if self.reconnect:
            self.stats.end = self.stats.end or lost
        return None

    def _run(self) -> None:
        try:
            offset = 0.0  # source seconds read before the last reconnect
            while True:
                span = self._read(self._container, offset)
                self._container.close()
                if self._stop.is_set() or self.reconnect == 0:
                    break
                offset += span
                event = self._reopen()
                if event is None:
                    break
                event["next_frame"] = self.stats.sampled
                self._events.append(event)  # the first frame from `next_frame` on carries it (drops or not)
        except Exception as e:  # noqa: BLE001 - surfaced to the consumer, never lost in the thread
            self._error = e
        finally:
            self._container.close()
            self.stats.end = self.stats.end or ("stopped" if self._stop.is_set() else "end of stream")
            self._put_end()

    def _read(self, container, offset: float) -> float:
        """Decode one connection; returns the source seconds it covered (for --duration across reconnects)."""
        import av

        stream = container.streams.video[0]
        start, first_pts, span = None, None, 0.0
        for packet in self._packets(container, stream):
            if self._stop.is_set():
                break
            if packet.is_corrupt:  # flagged by the demuxer (an MPEG-TS continuity error, damaged bytes): skip it
                self.stats.corrupt += 1
                continue
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
                if pts is not None:
                    span = max(span, pts - first_pts)
                if self.duration_s is not None and pts is not None and offset + pts - first_pts >= self.duration_s:
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
        return span

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
            restart = None
            if self._events and index >= self._events[0]["next_frame"]:
                restart = self._events.pop(0)
                while self._events and index >= self._events[0]["next_frame"]:  # several reconnects, all dropped
                    restart = self._events.pop(0)
            yield Frame(index, transform(image).numpy(), pts, arrival, restart)
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
