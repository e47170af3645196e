"""Per-window compute of a stream with the cached stem against full recomputation, ORT CPU FP32 (docs/stream.md).

    nice python benchmarks/bench_stream.py [--preset inti-b16] [--strides 1,2,4,8] [--windows 6] [--rounds 3]
        [--threads N] [--work DIR] [--json results.json]

The preset is exported twice into --work (once; reused when present): model.onnx (the whole model, one
clip per call) and the stream pair stem.onnx + head.onnx (`inti-export onnx --stream`). For each stride S,
`--windows` consecutive windows of a seeded random frame sequence are computed both ways, alternating
window by window inside one run so drift in the machine's speed hits both alike:

    cached  S new frames through stem.onnx (one call each, as a live stream runs them), then head.onnx
            on the ring of the last T stems
    full    model.onnx on the same T frames

The first window of each mode is a warm-up (not timed). Reported per stride: median ms per window of
each, their ratio, and the FLOP prediction (S x stem + head) / full, counted with FlopCounterMode as
models/flops.py does; and the latency at S = T: one stem (the window's last frame) + the head, against
full. --rounds repeats the whole alternation; medians over all timed windows.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_stream")


def split_flops(preset: str) -> dict[str, float]:
    """GFLOPs (MACs) of one frame's stem, one window's head and one whole clip, on meta tensors."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from inti_export.models import compute_mode, create_model

    model = create_model(preset, device="meta")
    c = model.cfg

    def count(fn, x) -> float:
        counter = FlopCounterMode(display=False, depth=None)
        with compute_mode.counting_mode(), counter, torch.no_grad():
            fn(x)
        return counter.get_total_flops() / 2 / 1e9

    n = 1 + c.grid**2
    return {
        "stem": count(model.forward_stem, torch.empty(1, 3, c.image_size, c.image_size, device="meta")),
        "head": count(model.forward_head, torch.empty(1, c.frames, n, c.width, device="meta")),
        "full": count(model, torch.empty(1, c.frames, 3, c.image_size, c.image_size, device="meta")),
    }


def export(preset: str, work: Path) -> tuple[Path, Path]:
    """model.onnx and the stream folder for `preset` in `work` (exported once, no verification)."""
    from inti_export.exporter import export_onnx
    from inti_export.exporter.stream_export import export_stream
    from inti_export.models import create_model

    work.mkdir(parents=True, exist_ok=True)
    full, pair = work / f"{preset}.onnx", work / f"{preset}-stream"
    model = None
    if not full.is_file():
        model = create_model(preset)
        log.info("exporting %s", full)
        export_onnx(model, full, verify=False)
    if not (pair / "stream.json").is_file():
        model = model or create_model(preset)
        log.info("exporting %s", pair)
        export_stream(model, pair, verify=False)
    return full, pair


def measure(preset: str, strides: list[int], windows: int, rounds: int, threads: int | None, work: Path) -> dict:
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.stream import OrtStemHead
    from inti_export.vocab import INPUT_NAME

    full_path, pair_path = export(preset, work)
    pair = OrtStemHead(pair_path, threads=threads)
    full = OrtRunner(full_path, threads=threads)
    full.activate()
    t, s = pair.frames, pair.image_size
    flops = split_flops(preset)
    rng = np.random.default_rng(0)
    results = {"preset": preset, "threads": threads, "frames": t, "gflops": flops, "strides": []}
    for stride in strides:
        frames = rng.standard_normal((t + stride * windows, 3, s, s), dtype=np.float32)
        cached_ms, full_ms, stem_ms, head_ms = [], [], [], []
        for _ in range(rounds):
            ring = [pair.stem(frames[i][None])[0] for i in range(t - stride)]  # (N, D) each: the warm ring
            for w in range(windows + 1):
                end = t + w * stride
                start = time.perf_counter()
                new = [pair.stem(frames[i][None])[0] for i in range(end - stride, end)]  # S stems, one call each
                mid = time.perf_counter()
                ring = (ring + new)[-t:]
                pair.head(np.stack(ring)[None])  # (1, T, N, D)
                done = time.perf_counter()
                full.infer({INPUT_NAME: np.ascontiguousarray(frames[end - t:end])[None]})
                full_done = time.perf_counter()
                if w:  # window 0 warms up both
                    cached_ms.append((done - start) * 1e3)
                    stem_ms.append((mid - start) * 1e3 / stride)
                    head_ms.append((done - mid) * 1e3)
                    full_ms.append((full_done - done) * 1e3)
        c, f = statistics.median(cached_ms), statistics.median(full_ms)
        predicted = (stride * flops["stem"] + flops["head"]) / flops["full"]
        row = {"stride": stride, "cached_ms": round(c, 2), "full_ms": round(f, 2), "ratio": round(c / f, 3),
               "predicted": round(predicted, 3), "stem_ms_per_frame": round(statistics.median(stem_ms), 2),
               "head_ms": round(statistics.median(head_ms), 2), "windows_timed": len(cached_ms)}
        results["strides"].append(row)
        log.info("S=%d: cached %.1f ms, full %.1f ms, ratio %.3f (FLOPs predict %.3f)", stride, c, f, c / f, predicted)
    stem1, head1 = (statistics.median([r["stem_ms_per_frame"] for r in results["strides"]]),
                    statistics.median([r["head_ms"] for r in results["strides"]]))
    full1 = statistics.median([r["full_ms"] for r in results["strides"]])
    results["latency_at_stride_T"] = {
        "stem_plus_head_ms": round(stem1 + head1, 2), "full_ms": round(full1, 2), "ratio": round((stem1 + head1) / full1, 3),
        "predicted": round((flops["stem"] + flops["head"]) / flops["full"], 3),
    }
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="inti-b16")
    ap.add_argument("--strides", default="1,2,4,8", help="comma-separated strides, each 1..T")
    ap.add_argument("--windows", type=int, default=6, help="timed windows per stride and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: all cores)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_stream"), help="where the exports are kept")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    strides = [int(x) for x in args.strides.split(",")]
    results = measure(args.preset, strides, args.windows, args.rounds, args.threads, args.work)
    print(f"{'S':>3} {'cached ms':>10} {'full ms':>9} {'ratio':>6} {'FLOPs':>6}")
    for r in results["strides"]:
        print(f"{r['stride']:>3} {r['cached_ms']:>10.1f} {r['full_ms']:>9.1f} {r['ratio']:>6.3f} {r['predicted']:>6.3f}")
    lat = results["latency_at_stride_T"]
    print(f"latency after the last frame: stem + head {lat['stem_plus_head_ms']:.1f} ms, full {lat['full_ms']:.1f} ms,"
          f" ratio {lat['ratio']:.3f} (FLOPs predict {lat['predicted']:.3f})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
