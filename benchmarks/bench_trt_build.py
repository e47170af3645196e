"""Time TensorRT engine builds from ONNX files and print one JSON report (results go to docs/benchmarks.md).

    python benchmarks/bench_trt_build.py model.onnx [more.onnx ...] [--runtime auto] [--batch 1:1:8]
        [--repeat 3] [--out-dir DIR] [--compute-capability SM86]

Each ONNX is built `--repeat` times (the first build is also the warm-up: TensorRT-RTX and full
TensorRT cache little across processes, so every build is reported); the engine's precision is the
one its graph carries (`inti.precision`), FP32 for a plain export. Reported per model: the median,
min and max build time (parse + build, from the manifest), engine size, layer count and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from inti_export.runtime.trt import BuildConfig, build_engine, load_trt_module, parse_batch_profile
from inti_export.vocab import OP_TYPE


def bench(onnx_path: Path, config: BuildConfig, repeat: int, out_dir: Path, keep: bool) -> dict:
    engine = out_dir / f"{onnx_path.stem}.engine"
    times, walls, manifest = [], [], None
    for _ in range(repeat):
        start = time.perf_counter()
        manifest = build_engine(onnx_path, engine, config)
        walls.append(time.perf_counter() - start)
        times.append(manifest.build_time_s)
    inlined = manifest.network_summary.get("functions", {}).get(OP_TYPE, {})
    return {
        "onnx": str(onnx_path),
        "onnx_mib": round(onnx_path.stat().st_size / 2**20, 2),
        "preset": manifest.onnx_metadata.get("inti.preset"),
        "precision": manifest.precision,
        "engine": str(engine) if keep else None,
        "engine_mib": round(manifest.engine_size / 2**20, 2),
        "build_s_median": round(statistics.median(times), 3),
        "build_s_min": round(min(times), 3),
        "build_s_max": round(max(times), 3),
        "wall_s_median": round(statistics.median(walls), 3),  # + reading the ONNX, hashing, writing
        "repeat": repeat,
        "network_layers": manifest.network_summary.get("num_layers"),
        "inlined_inti_steps": len(inlined.get("calls", [])),
        "batch_profile": list(manifest.profile_batch),
        "compute_capabilities": manifest.compute_capabilities,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("onnx", nargs="+", type=Path)
    ap.add_argument("--runtime", default="auto", choices=["auto", "tensorrt", "tensorrt-rtx"])
    ap.add_argument("--batch", default="1:1:8", help="MIN:OPT:MAX over the batch axis")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--compute-capability", action="append", default=[], help="TensorRT-RTX target")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the engines here (default: a temp dir)")
    args = ap.parse_args(argv)

    trt = load_trt_module(args.runtime)
    config = BuildConfig(
        runtime=args.runtime, batch=parse_batch_profile(args.batch), compute_capabilities=tuple(args.compute_capability)
    )
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = args.out_dir or Path(tmp)
        out_dir.mkdir(parents=True, exist_ok=True)
        results = [bench(p, config, max(args.repeat, 1), out_dir, keep=args.out_dir is not None) for p in args.onnx]
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "runtime": {"module": trt.__name__, "version": trt.__version__},
        "results": results,
    }
    json.dump(report, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
