"""A synthetic video corpus written with PyAV, for `inti-export embed` tests and benchmarks (docs/corpus.md).

    python benchmarks/make_corpus.py OUT [--videos 200] [--seconds 2] [--seed 0]

Each video is a moving pattern (a drifting gradient, travelling stripes and a bouncing square) in
one of several sizes, frame rates and codecs (H.264 .mp4, MPEG-4 Part 2 .avi, VP9 .webm, MJPEG
.mkv). Two videos in 20 are deliberately corrupt (random bytes; an .mp4 cut in half, so its index
is missing) and one in 20 is too short for an 8-frame clip (4 frames). `manifest.json`
lists every file with what it is, so tests and benchmarks know which ones must fail.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

SIZES = ((64, 48), (96, 96), (160, 120), (176, 144), (320, 240))
RATES = (12, 15, 24, 25, 30)
# (suffix, codec, pixel format)
CODECS = ((".mp4", "libx264", "yuv420p"), (".avi", "mpeg4", "yuv420p"), (".webm", "libvpx-vp9", "yuv420p"),
          (".mkv", "mjpeg", "yuvj420p"))
SHORT_FRAMES = 4


def pattern(t: int, width: int, height: int, phase: float) -> np.ndarray:
    """Frame `t` of a moving pattern, (height, width, 3) uint8."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 127 * np.sin((x + 3 * t) / (7 + 5 * phase))
    g = 255 * ((x + y + 4 * t) % width) / width
    b = 127 + 127 * np.cos((y - 2 * t) / (5 + 3 * phase))
    frame = np.stack([r, g, b], axis=-1)
    size = max(4, min(width, height) // 4)
    cx = int(abs((t * 3 + phase * 50) % (2 * (width - size)) - (width - size)))
    cy = int(abs((t * 2 + phase * 30) % (2 * (height - size)) - (height - size)))
    frame[cy : cy + size, cx : cx + size] = (255 * phase, 40, 255 * (1 - phase))
    return frame.clip(0, 255).astype(np.uint8)


def write_video(
    path: Path, frames: int, size: tuple[int, int], rate: int, codec: str, pix_fmt: str, phase: float
) -> None:
    import av

    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for t in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(t, width, height, phase), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_corpus(out: Path, videos: int = 200, seconds: float = 2.0, seed: int = 0) -> list[dict]:
    """Write the corpus into `out` (created); return the manifest rows {file, kind, ...}."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(videos):
        suffix, codec, pix_fmt = CODECS[i % len(CODECS)]
        size, rate = SIZES[(i // 2) % len(SIZES)], RATES[(i // 3) % len(RATES)]
        kind = "corrupt" if i % 20 in (7, 17) else "short" if i % 20 == 13 else "ok"
        frames = SHORT_FRAMES if kind == "short" else max(SHORT_FRAMES, round(seconds * rate))
        path = out / f"v{i:04d}{suffix}"
        if kind == "corrupt" and i % 20 == 7:
            path = path.with_suffix(".mp4")
            path.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
            how = "random bytes"
        else:
            if kind == "corrupt":
                path = path.with_suffix(".mp4")
                codec, pix_fmt = "libx264", "yuv420p"
            write_video(path, frames, size, rate, codec, pix_fmt, float(rng.random()))
            how = ""
            if kind == "corrupt":
                data = path.read_bytes()
                path.write_bytes(data[: len(data) // 2])
                how = "mp4 cut in half"
        rows.append({"file": path.name, "kind": kind, "how": how, "frames": frames, "size": list(size),
                     "rate": rate, "codec": codec})
    (out / "manifest.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rows = make_corpus(args.out, args.videos, args.seconds, args.seed)
    kinds = {k: sum(r["kind"] == k for r in rows) for k in ("ok", "short", "corrupt")}
    print(f"wrote {len(rows)} videos to {args.out}: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
