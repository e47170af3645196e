"""ONNX Runtime against OpenVINO on this CPU, FP32 and INT8, InTI against naive (docs/benchmarks.md, issue 27).

    nice python benchmarks/bench_ov.py [--work DIR] [--presets inti-b16,naive-b16] [--batch 1,4] [--iters 10]
        [--json benchmarks/results/ov-vs-ort.json]

Each preset is exported once (FP32) and calibrated once to INT8 (`inti-export calibrate --precision int8`,
16 clips of the shipped videos, the final projection kept in FP32 because OpenVINO mis-computes it
quantized: docs/openvino.md). Then, per batch size, every (preset, runtime, precision) runner is timed
in one interleaved loop (`time_runs`: each round calls every runner once, so load falls on all alike),
ORT as executed (its fused INT8 kernels) and OpenVINO at f32 inference precision. Cosine against the
FP32 ONNX Runtime output of the same preset on the same random clips is recorded beside each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np


def export_and_calibrate(preset: str, work: Path) -> dict[str, Path]:
    """FP32 and INT8 ONNX of `preset` in `work` (kept between runs)."""
    import onnx

    work.mkdir(parents=True, exist_ok=True)
    fp32, int8 = work / f"{preset}.onnx", work / f"{preset}.int8.onnx"
    cli = [sys.executable, "-m", "inti_export.cli"]
    if not fp32.exists():
        subprocess.run([*cli, "onnx", "--preset", preset, "-o", str(fp32)], check=True)
    if not int8.exists():
        model = onnx.load(str(fp32), load_external_data=False)
        proj = next(n.name for n in model.graph.node if n.op_type == "MatMul" and "visual.proj" in n.input)
        subprocess.run([*cli, "calibrate", str(fp32), "--precision", "int8", "--clips", "16", "--keep-fp32", proj,
                        "-o", str(int8)], check=True)
    return {"fp32": fp32, "int8": int8}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("bench-ov-work"))
    parser.add_argument("--presets", default="inti-b16,naive-b16")
    parser.add_argument("--batch", default="1,4")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    import onnxruntime
    import openvino

    from inti_export.metrics import cosine_per_sample
    from inti_export.models.config import get_config
    from inti_export.models.flops import count_flops
    from inti_export.runtime.cpu import cpuinfo_text, flags_from
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.ov_runner import OvRunner
    from inti_export.runtime.timing import time_runs

    args.work.mkdir(parents=True, exist_ok=True)
    presets = args.presets.split(",")
    files = {p: export_and_calibrate(p, args.work) for p in presets}
    rows = []
    for batch in (int(b) for b in args.batch.split(",")):
        runs, keys = [], []
        for preset in presets:
            cfg = get_config(preset)
            video = np.random.default_rng(0).standard_normal((batch, cfg.frames, 3, cfg.image_size, cfg.image_size),
                                                              dtype=np.float32)
            for precision, path in files[preset].items():
                for runtime, runner in (("ort", OrtRunner(path, threads=args.threads, mode="as-executed")),
                                        ("ov", OvRunner(path, threads=args.threads))):
                    runs.append((runner.__enter__(), {"video": video}))
                    keys.append((preset, runtime, precision, count_flops(cfg).gflops))
        outputs = [r.infer(feed) for r, feed in runs]
        times = time_runs(runs, args.iters, args.warmup)
        ref = {k[0]: next(iter(o.values())) for k, o in zip(keys, outputs, strict=True) if k[1:3] == ("ort", "fp32")}
        for (preset, runtime, precision, gflops), out, t in zip(keys, outputs, times, strict=True):
            p50 = float(np.median(t)) * 1e3
            rows.append({"preset": preset, "runtime": runtime, "precision": precision, "batch": batch,
                         "p50_ms": p50, "p90_ms": float(np.percentile(t, 90)) * 1e3, "clips_s": batch / p50 * 1e3,
                         "gflops_per_clip": gflops,
                         "cosine_min_vs_ort_fp32": float(cosine_per_sample(next(iter(out.values())), ref[preset]).min())})
            print(f"{preset:10s} {runtime:3s} {precision} batch {batch}: p50 {p50:8.1f} ms, "
                  f"{rows[-1]['clips_s']:.3f} clips/s, cosine {rows[-1]['cosine_min_vs_ort_fp32']:.5f}", flush=True)
        for r, _ in runs:
            r.__exit__(None, None, None)
    report = {"machine": {"cpu": next((line.split(":", 1)[1].strip() for line in cpuinfo_text().splitlines()
                                       if line.startswith("model name")), platform.processor()),
                          "cores": os.cpu_count(), "vnni": bool(flags_from(cpuinfo_text()) & {"avx512_vnni", "avx_vnni"}),
                          "avx512_bf16": "avx512_bf16" in flags_from(cpuinfo_text())},
              "versions": {"onnxruntime": onnxruntime.__version__, "openvino": openvino.__version__},
              "threads": args.threads, "iters": args.iters, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
