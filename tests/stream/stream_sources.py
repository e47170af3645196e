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


def udp_sender(port: int, frames: int, fps: int = 25, delay_s: float = 0.5, size: int = 64) -> threading.Thread:
    """A started thread that sends `frames` MPEG-2 frames as MPEG-TS to udp://127.0.0.1:`port` at `fps`, then stops."""
    import av

    def send() -> None:
        time.sleep(delay_s)  # the reader opens first: UDP keeps nothing for a late listener
        with av.open(f"udp://127.0.0.1:{port}?pkt_size=1316", mode="w", format="mpegts") as out:
            stream = out.add_stream("mpeg2video", rate=fps)
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

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread
