"""Per-window compute of a stream with the cached stem against full recomputation, ORT CPU FP32 (docs/stream.md).

    nice python benchmarks/bench_stream.py [--preset inti-b16] [--strides 1,2,4,8] [--windows 6] [--rounds 3]
        [--threads N] [--work DIR] [--json results.json]

A thin wrapper over `inti_export.jobs.stream_bench` (what `inti-export bench --stream` runs): the preset
is exported once into --work (model.onnx and the stream pair, reused when present), then for each
stride S the cached stem (S stems, one call each, + the head) and the whole model on the same T frames
alternate window by window in one run; --rounds repeats the alternation, medians over every timed
window. Reported per stride beside the FLOP prediction (S x stem + head) / full, and the latency at
S = T: one stem + the head against the whole model.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path


def main() -> None:
    from inti_export.jobs.stream_bench import run_stream_bench

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
    args.work.mkdir(parents=True, exist_ok=True)
    report = run_stream_bench(preset=args.preset, runners=("ort",), strides=[int(x) for x in args.strides.split(",")],
                              windows=args.windows, rounds=args.rounds, threads=args.threads, work=args.work)
    run = report.runs[0]
    print(f"{'S':>3} {'cached ms':>10} {'full ms':>9} {'ratio':>6} {'FLOPs':>6}")
    for r in run.strides:
        print(f"{r.stride:>3} {r.cached_ms:>10.1f} {r.full_ms:>9.1f} {r.ratio:>6.3f} {r.predicted:>6.3f}")
    lat = run.latency_at_stride_T
    print(f"latency after the last frame: stem + head {lat.stem_plus_head_ms:.1f} ms, full {lat.full_ms:.1f} ms,"
          f" ratio {lat.ratio:.3f} (FLOPs predict {lat.predicted:.3f})")
    if args.json:
        args.json.write_text(json.dumps(asdict(report), indent=2) + "\n")


if __name__ == "__main__":
    main()
