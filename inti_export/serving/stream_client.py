"""`RemoteStreamSession`: a `runtime.stream.StreamSession` whose ring lives in a served stream model (docs/serving.md).

Same interface as the local session (`push(frame) -> WindowResult | None`, `run(frames)`, `windows`,
`frames_in`, `dropped`, `gaps`), over tritonclient HTTP with Triton's sequence controls: the first frame
starts a sequence (`sequence_start`), `close()` ends it (`sequence_end`, a request with index -1 and
no frame to compute). A frame whose index does not follow the last one is a gap, handled as the local
session does: the sequence ends and a new one (a new ID) starts, so no window spans the gap.
`latency_ms` is measured here, from the frame's arrival to the answer; `stem_ms`/`head_ms` are the
server's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator

import numpy as np

from inti_export.runtime.stream import Gap, WindowResult, check_frame, check_stride
from inti_export.serving.client import ClientError, TritonClient
from inti_export.serving.stream_backend import FIRST, FRAME, INDEX, LAST, NO_FRAME, STRIDE, TIMING, WINDOW
from inti_export.video.live import Frame


def _new_sequence_id() -> int:
    """A random correlation ID in 1..2**62: unique among the streams a server holds, across clients and processes."""
    return secrets.randbits(62) + 1


class RemoteStreamSession:
    """Frames to a served stateful stream model (`triton-repo --stream`); its windows back."""

    def __init__(self, url: str, model: str = "inti_stream", stride: int | None = None, timeout_s: float = 10.0) -> None:
        if "://" in url and not url.startswith("http://"):
            raise ClientError(f"server URL {url!r}: the stream client speaks HTTP; give http://HOST:PORT")
        self.url, self.timeout_s = url, timeout_s
        self._thread = threading.get_ident()
        self.client = TritonClient(url, timeout=timeout_s)
        self.model = model
        cfg = self.client.config(model)
        params = {k: v.get("string_value", "") for k, v in cfg.get("parameters", {}).items()}
        if "sequence_batching" not in cfg or "frames" not in params:
            raise ClientError(f"model {model!r} on {url} is not a stream model: serve one written by `triton-repo --stream`")
        self.frames, self.image_size = int(params["frames"]), int(params["image_size"])
        self.preset = params.get("preset", "")
        self.name = f"triton:{model}"
        self.stride = check_stride(stride if stride is not None else params["stride"], self.frames)
        self.output_name = next(o["name"] for o in cfg["output"] if o["name"] not in (WINDOW, FIRST, LAST, TIMING))
        self.sequence_id: int | None = None
        self._last_index: int | None = None
        self._pts: dict[int, float | None] = {}
        self._stem_ms = 0.0
        self.windows = 0
        self.frames_in = 0
        self.dropped = 0
        self.gaps: list[Gap] = []
        self.restarts = 0  # sequences restarted at a reconnect (`Frame.restart`), as the local ring restarts

    def _send(self, data: np.ndarray, index: int, start: bool, end: bool) -> dict[str, np.ndarray]:
        if threading.get_ident() != self._thread:  # tritonclient.http's gevent client works only in its own thread
            self.client, self._thread = TritonClient(self.url, timeout=self.timeout_s), threading.get_ident()
        tc = self.client.tc
        feeds = []
        for name, array, dtype in ((FRAME, data[None], "FP32"), (INDEX, np.array([[index]], np.int64), "INT64"),
                                   (STRIDE, np.array([[self.stride]], np.int32), "INT32")):
            feed = tc.InferInput(name, list(array.shape), dtype)
            feed.set_data_from_numpy(np.ascontiguousarray(array), binary_data=True)
            feeds.append(feed)
        res = self.client._call(f"model {self.model!r}", self.client.client.infer, self.model, feeds,
                                sequence_id=self.sequence_id, sequence_start=start, sequence_end=end)
        return {name: res.as_numpy(name)[0] for name in (WINDOW, FIRST, LAST, TIMING, self.output_name)}

    def push(self, frame: Frame) -> WindowResult | None:
        """Send `frame` into this stream's sequence; the window it completes, if any."""
        if gap := check_frame(frame, self.image_size, self._last_index):  # a gap: a new sequence
            self.gaps.append(gap)
            self.dropped += gap.missing
            self.close()
        if getattr(frame, "restart", None) is not None:  # the source was re-opened: never span it either
            self.restarts += 1
            self.close()
        start = self.sequence_id is None
        if start:
            self.sequence_id = _new_sequence_id()
            self._pts.clear()
            self._stem_ms = 0.0
        self._last_index = frame.index
        self.frames_in += 1
        self._pts[frame.index] = frame.pts
        self._pts.pop(frame.index - self.frames, None)
        out = self._send(frame.data, frame.index, start, False)
        if int(out[WINDOW][0]) < 0:
            return None
        done = time.perf_counter()
        first, last = int(out[FIRST][0]), int(out[LAST][0])
        result = WindowResult(self.windows, first, last, self._pts.get(first), self._pts.get(last),
                              np.asarray(out[self.output_name], np.float32), float(out[TIMING][0]),
                              float(out[TIMING][1]), (done - frame.arrival) * 1e3, self.dropped)
        self.windows += 1
        return result

    def run(self, frames: Iterable[Frame]) -> Iterator[WindowResult]:
        """`push` each frame; yield the windows as they complete."""
        for frame in frames:
            if (result := self.push(frame)) is not None:
                yield result

    def close(self) -> None:
        """End the current sequence (the server drops its ring); the next frame starts a new one."""
        if self.sequence_id is None:
            return
        try:
            s = self.image_size
            self._send(np.zeros((3, s, s), np.float32), NO_FRAME, False, True)
        finally:
            self.sequence_id = None

    def __enter__(self) -> RemoteStreamSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
