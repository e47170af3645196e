"""PyTorch matmul on the CPU in FP32, FP16 and BF16: is half precision native here, or emulated?

The shape is one ViT-B/16 MLP matmul over 4 frames of 197 tokens, (788, 768) @ (768, 3072). The
ratio is why `inti-export optimize` lists PyTorch FP16/BF16 as "not run" on a CPU without native
half arithmetic (inti_export/runtime/torch_runner.py, docs/benchmarks.md).

    python benchmarks/bench_cpu_half.py [--threads 2] [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seconds", type=float, default=3.0, help="time budget per dtype (at least 3 runs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from inti_export.runtime.torch_runner import emulated_on_cpu

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(788, 768, generator=g), torch.randn(768, 3072, generator=g)  # (4*197, D) @ (D, 4D)
    rows = {}
    for name, dt in (("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)):
        x, y = a.to(dt), b.to(dt)
        x @ y  # warm-up
        times, start = [], time.perf_counter()
        while len(times) < 3 or time.perf_counter() - start < args.seconds:
            t = time.perf_counter()
            x @ y
            times.append(time.perf_counter() - t)
        rows[name] = {"median_ms": 1e3 * statistics.median(times), "runs": len(times),
                      "emulated": emulated_on_cpu(name) is not None}
    for name in ("fp16", "bf16"):
        rows[name]["slower_than_fp32"] = rows[name]["median_ms"] / rows["fp32"]["median_ms"]
    print(json.dumps({"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
                      "capability": torch.backends.cpu.get_cpu_capability(), "threads": args.threads,
                      "loadavg": os.getloadavg(), "dtypes": rows}, indent=1))


if __name__ == "__main__":
    main()
