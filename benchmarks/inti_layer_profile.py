"""Where an InTI layer spends its time: context network (steps 1-4) vs weight-predict-and-blend (5-6).

    python benchmarks/inti_layer_profile.py [--preset inti-b16] [--iters 10]

Measures, in PyTorch on this machine's device, the first InTI layer of the preset on one clip:
the four-level context `h`, the fused step (head + softmax + blend) that `inti.TokenInterpolate`
covers, and the bytes each moves; this is what decided the ONNX node's extent (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from inti_export.models import create_model
from inti_export.plugins.reference import token_interpolate_reference


def timeit(fn, iters: int) -> float:
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="inti-b16")
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    model = create_model(args.preset)
    key = next(iter(model.inti))
    layer = model.inti[key]
    cfg = model.cfg
    t, n, d = layer.frames_in, cfg.num_tokens, cfg.width
    x = torch.randn(t, n, d)  # (B*T, N, D) with B = 1
    with torch.no_grad():
        xv = x.reshape(1, t, n, d)
        pairs = xv.reshape(1, t // 2, 2, n, d)
        a, b = pairs[:, :, 0].contiguous(), pairs[:, :, 1].contiguous()
        h = layer.context(xv)
        w = (layer.head_fc1.weight, layer.head_fc1.bias, layer.head_fc2.weight, layer.head_fc2.bias)
        whole = timeit(lambda: layer(x), args.iters)
        ctx = timeit(lambda: layer.context(xv), args.iters)
        blend = timeit(lambda: token_interpolate_reference(h, a, b, *w), args.iters)
        block = timeit(lambda: model.visual.transformer.resblocks[int(key)](x), args.iters)
    m = h.shape[0] * h.shape[1] * h.shape[2]
    out = {
        "preset": args.preset, "layer": f"before block {key}", "tokens_out": m, "D": d, "Dc": layer.context_dim,
        "layer_ms": whole, "context_ms": ctx, "blend_ms": blend, "next_block_ms": block,
        "blend_gflops": m * (4 * layer.context_dim * d + 2 * d) / 1e9,
        "blend_bytes_in_mib": (h.numel() + a.numel() + b.numel()) * 4 / 2**20,
        "unfused_intermediate_mib": m * (d + 2 + 2) * 4 / 2**20,
        "device": "cuda" if torch.cuda.is_available() else "cpu", "threads": torch.get_num_threads(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
