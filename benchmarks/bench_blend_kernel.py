"""Time the fused weight-predict-and-blend kernel on a CUDA GPU, at ViT-B shapes.

For each batch B: M = B * 8 * 197 tokens (the 8 frame pairs of a 16-frame clip, 197 tokens each),
D = 768, D' = 768 (h is (M, 3072)). Variants, each warmed up, then timed one launch at a time
between CUDA events (median, p10, p90 of --iters):

  triton          the fused Triton kernel, autotuned (tuning happens during warm-up)
  triton_aot      the same kernel with the fixed configuration TensorRT engines bake in
  torch_unfused   the same maths as separate PyTorch ops in the input dtype (what eager fp16 runs)
  reference       token_interpolate_reference (the unfused ops in fp32, cast back)
  copy            a device-to-device copy moving as many bytes as the kernel must (h, a, b read, y written)

Effective bandwidth = (bytes of h + a + b + y + weights) / time, for every variant, so the ratio to
`copy` says how far a variant is from the memory-bound floor; TFLOP/s counts the two matmuls. With
D' = D the step does ~440 flop per byte in fp16, above an H100's ~300 flop/byte ridge, so expect
it to be compute-bound rather than at copy speed. Prints one JSON document.

    python benchmarks/bench_blend_kernel.py --batch 1 8 32 --dtype fp16
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def time_cuda(fn, warmup: int, iters: int) -> dict:
    """Milliseconds per call (gpu_checks.cuda_events_ms: each call alone between two CUDA events)."""
    from gpu_checks import cuda_events_ms, pct

    times = cuda_events_ms(fn, warmup, iters)
    return {"median_ms": statistics.median(times), "p10_ms": pct(times, 0.1), "p90_ms": pct(times, 0.9)}


def torch_unfused(h, a, b, w1, b1, w2, b2):
    w = torch.softmax(F.linear(F.gelu(F.linear(h, w1, b1)), w2, b2), dim=-1)  # (M, 2)
    return w[:, 0:1] * a + w[:, 1:2] * b


def bench_one(batch: int, dtype: torch.dtype, d: int, d_ctx: int, warmup: int, iters: int) -> dict:
    from inti_export.plugins import triton_kernel as tk
    from inti_export.plugins.reference import token_interpolate_reference

    m, k = batch * 8 * 197, 4 * d_ctx
    g = torch.Generator(device="cuda").manual_seed(0)
    dev = {"device": "cuda", "dtype": dtype}
    h = torch.randn(m, k, generator=g, **dev)
    a = torch.randn(m, d, generator=g, **dev)
    b = torch.randn(m, d, generator=g, **dev)
    w1 = torch.randn(d, k, generator=g, **dev) / k**0.5
    b1 = 0.1 * torch.randn(d, generator=g, **dev)
    w2 = 2.0 * torch.randn(2, d, generator=g, **dev) / d**0.5
    b2 = 0.1 * torch.randn(2, generator=g, **dev)
    args = (h, a, b, w1, b1, w2, b2)
    out = torch.empty_like(a)

    itemsize = h.element_size()
    moved = (h.numel() + a.numel() + b.numel() + out.numel() + w1.numel() + b1.numel() + w2.numel() + b2.numel())
    moved_bytes = moved * itemsize
    flops = 2 * m * k * d + 2 * m * d * 2 + 3 * m * d  # two matmuls, blend
    src = torch.empty(moved_bytes // 2, dtype=torch.uint8, device="cuda")  # read n + write n = moved bytes
    dst = torch.empty_like(src)

    variants = {
        "triton": lambda: tk.token_interpolate_triton(*args, out=out),
        "triton_aot": lambda: tk.token_interpolate_triton(*args, out=out, config=tk.AOT_CONFIGS[dtype]),
        "torch_unfused": lambda: torch_unfused(*args),
        "reference": lambda: token_interpolate_reference(*args),
        "copy": lambda: dst.copy_(src),
    }
    ref = token_interpolate_reference(*args).float()
    scale = ref.abs().max().item()
    results = {}
    for name, fn in variants.items():
        r = time_cuda(fn, warmup, iters)
        seconds = r["median_ms"] / 1e3
        r["effective_GBps"] = moved_bytes / seconds / 1e9
        if name != "copy":
            r["TFLOPs"] = flops / seconds / 1e12
        results[name] = r
        if name in ("triton", "triton_aot", "torch_unfused"):
            y = fn().float()
            r["max_abs_err_over_scale"] = (y - ref).abs().max().item() / scale
    copy_ms, ref_ms = results["copy"]["median_ms"], results["reference"]["median_ms"]
    for r in results.values():
        r["time_vs_copy"] = r["median_ms"] / copy_ms
        r["speedup_vs_reference"] = ref_ms / r["median_ms"]
    return {"batch": batch, "tokens": m, "D": d, "D_ctx": d_ctx, "bytes_moved": moved_bytes, "flops": flops,
            "variants": results}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32], help="clips per batch (B)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="fp16")
    parser.add_argument("--dim", type=int, default=768, help="D")
    parser.add_argument("--context-dim", type=int, default=768, help="D' (h has 4D' channels)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.stderr.write("bench_blend_kernel: needs a CUDA GPU (torch.cuda.is_available() is False); nothing timed\n")
        return 2
    import triton

    report = {
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "dtype": args.dtype,
        "warmup": args.warmup,
        "iters": args.iters,
        "runs": [
            bench_one(b, DTYPES[args.dtype], args.dim, args.context_dim, args.warmup, args.iters)
            for b in args.batch
        ],
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
