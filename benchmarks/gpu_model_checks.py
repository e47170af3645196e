"""gpu_checks.py's model checks: the stream split, parity on CUDA, where the time goes, FP32 against float64.

Each takes (out, preset, device): `device="cpu"` runs it on a tiny preset, so the suite's own test
(tests/benchmarks/test_gpu_checks.py) keeps the GPU script from rotting between GPU sessions.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from gpu_common import cuda_events_ms, pct, torch_dtype, torch_module, write_json


def check_stream(out: Path, preset: str = "inti-b16", device: str = "cuda", stride: int = 4, windows: int = 24) -> int:
    """The stream split: stem once per frame + head once per window against the whole window, on CUDA.
    Exact within the precision's parity tolerance (checks/compare.py); per-window time at `stride` new
    frames against recomputing the window."""
    torch = torch_module()
    precisions = ("fp32",) if device == "cpu" else ("fp32", "fp16")
    results = [_stream_one(preset, name, device, stride, windows) for name in precisions]
    for row in results:
        print(f"{'ok  ' if row['passed'] else 'FAIL'} {preset} {row['precision']}: streamed vs whole window max err / scale "
              f"{row['max_err_over_scale']:.2e} (tolerance {row['tolerance']:.0e}), cosine min {row['cosine_min']:.6f}; "
              f"per window at stride {stride}: {row['window_ms_p50']:.2f} ms against {row['full_ms_p50']:.2f} ms "
              f"recomputed ({row['speedup']:.2f}x)")
    failed = sum(not r["passed"] for r in results)
    if device == "cuda":
        torch.cuda.empty_cache()
    write_json(out / "stream.json", {"results": results, "failed": failed})
    return 1 if failed else 0


def _stream_one(preset: str, name: str, device: str, stride: int, windows: int) -> dict:
    torch = torch_module()
    from inti_export.checks.compare import TOLERANCES
    from inti_export.models import create_model

    model = create_model(preset).eval().to(device, torch_dtype(name))
    c = model.cfg
    g = torch.Generator(device=device).manual_seed(0)
    total = c.frames + stride * (windows - 1)
    frames = torch.randn(total, 3, c.image_size, c.image_size, generator=g, device=device).to(torch_dtype(name))  # (F, 3, H, W)
    worst, cos_min = 0.0, 1.0
    with torch.inference_mode():
        stems = torch.cat([model.forward_stem(frames[i:i + stride]) for i in range(0, total, stride)])  # (F, N, D)
        for w in range(windows):
            s = w * stride
            streamed = model.forward_head(stems[s:s + c.frames][None]).float()  # (1, E)
            full = model(frames[s:s + c.frames][None]).float()  # (1, E)
            worst = max(worst, (streamed - full).abs().max().item() / full.abs().max().item())
            cos_min = min(cos_min, torch.nn.functional.cosine_similarity(streamed, full).item())
        ring = stems[:c.frames].clone()  # (T, N, D)

        def step():  # one window's work at stride: stems of the new frames, roll the ring, the head
            new = model.forward_stem(frames[:stride])  # (stride, N, D)
            ring.copy_(torch.cat([ring[stride:], new]))
            return model.forward_head(ring[None])

        step_ms = cuda_events_ms(step, 5, 30, device)
        full_ms = cuda_events_ms(lambda: model(frames[None, :c.frames]), 5, 30, device)
    tol = TOLERANCES[name]
    row = {"precision": name, "preset": preset, "stride": stride, "windows": windows, "max_err_over_scale": worst,
           "cosine_min": cos_min, "tolerance": tol.rel_err, "passed": worst <= tol.rel_err and cos_min >= tol.cosine,
           "stem_blocks": model.stem_blocks, "window_ms_p50": statistics.median(step_ms), "window_ms_p99": pct(step_ms, 0.99),
           "full_ms_p50": statistics.median(full_ms), "full_ms_p99": pct(full_ms, 0.99)}
    row["speedup"] = row["full_ms_p50"] / row["window_ms_p50"]
    return row


def check_parity(out: Path, preset: str = "inti-b16", device: str = "cuda") -> int:
    """The CUDA runners against the CPU FP32 reference on the shipped clips, gated like `parity`."""
    from inti_export.checks.compare import TOLERANCES, compare_arrays
    from inti_export.models import create_model
    from inti_export.runtime.torch_runner import TorchRunner
    from inti_export.video.clipset import load_clips
    from inti_export.video.discover import shipped_videos_dir
    from inti_export.video.preprocess import preprocess_for
    from inti_export.vocab import INPUT_NAME

    model = create_model(preset)
    clips = load_clips(shipped_videos_dir(), preprocess_for(model.cfg), clips_per_video=2)
    feed = {INPUT_NAME: clips.clips}
    start = time.perf_counter()
    with TorchRunner(model, device="cpu") as ref_runner:
        ref = ref_runner.infer(feed)[model.output_name]
    cpu_s = time.perf_counter() - start
    videos = {n.split("#")[0] for n in clips.names}
    print(f"reference: torch-cpu fp32 on {len(ref)} clips of {len(videos)} shipped videos ({cpu_s:.1f} s)")
    rows, failed = [], 0
    for precision, kernel in (("fp32", False), ("fp32", True), ("fp16", False), ("fp16", True), ("bf16", True)):
        if device == "cpu" and precision != "fp32":
            continue
        runner = TorchRunner(create_model(preset), device=device, precision=precision, blend_kernel=kernel)
        with runner:
            got = runner.infer(feed)[model.output_name]
        cmp = compare_arrays(got, ref, TOLERANCES[precision], output=model.output_name, runner=runner.name,
                             reference="torch-cpu", logits=model.head is not None)
        failed += not cmp.passed
        rows.append(cmp.__dict__)
        print(f"{'ok  ' if cmp.passed else 'FAIL'} {runner.name}: max err / scale {cmp.rel_to_scale:.2e}, cosine min "
              f"{cmp.cosine_min:.6f}, nearest-neighbour agreement {cmp.top1_agreement:.2f}"
              + (f" ({'; '.join(cmp.failures)})" if cmp.failures else ""))
    write_json(out / "parity.json", {"preset": preset, "clips": len(ref), "comparisons": rows, "failed": failed})
    return 1 if failed else 0


def check_layers(out: Path, preset: str = "inti-b16", device: str = "cuda", batch: int = 8) -> int:
    """Where the time goes: each block, each InTI layer, and the InTI layer's context and blend parts,
    timed alone on its real input (captured by a forward pre-hook), with the FLOPs of each."""
    torch = torch_module()
    from torch.utils.flop_counter import FlopCounterMode

    from inti_export.models import create_model

    rows = []
    for name in ("fp16", "fp32") if device == "cuda" else ("fp32",):
        model = create_model(preset).eval().to(device, torch_dtype(name))
        c = model.cfg
        seen = {}
        parts = {f"block{i}": blk for i, blk in enumerate(model.visual.transformer.resblocks)}
        parts.update({f"inti{k}": layer for k, layer in model.inti.items()})
        hooks = [m.register_forward_pre_hook(lambda mod, args, key=key, seen=seen: seen.setdefault(key, args[0].clone()))
                 for key, m in parts.items()]
        video = torch.randn(batch, c.frames, 3, c.image_size, c.image_size, device=device).to(torch_dtype(name))
        with torch.inference_mode():
            model(video)
            for h in hooks:
                h.remove()
            for key, module in parts.items():
                x = seen[key]
                calls = {key: lambda module=module, x=x: module(x)}
                if key.startswith("inti"):
                    xt = x.reshape(-1, module.frames_in, *x.shape[1:])  # (B, T, N, D)
                    pairs = xt.reshape(xt.shape[0], -1, 2, *xt.shape[2:])
                    hctx = module.context(xt)
                    calls[key + ".context"] = lambda module=module, xt=xt: module.context(xt)
                    calls[key + ".blend"] = lambda m=module, h=hctx, p=pairs: m.blend(h, p[:, :, 0], p[:, :, 1])
                for label, fn in calls.items():
                    with FlopCounterMode(display=False) as counter:
                        fn()
                    ms = cuda_events_ms(fn, 3, 20, device)
                    rows.append({"precision": name, "batch": batch, "part": label, "input": list(x.shape),
                                 "ms_p50": statistics.median(ms), "gflops": counter.get_total_flops() / 1e9})
        del model
    for name in sorted({r["precision"] for r in rows}):
        sel = [r for r in rows if r["precision"] == name]
        blocks = sum(r["ms_p50"] for r in sel if r["part"].startswith("block"))
        inti = sum(r["ms_p50"] for r in sel if r["part"].startswith("inti") and "." not in r["part"])
        print(f"{preset} {name} batch {batch}: blocks {blocks:.2f} ms, InTI layers {inti:.2f} ms")
        for r in sel:
            rate = r["gflops"] / r["ms_p50"] if r["ms_p50"] else 0.0
            print(f"  {r['part']:14s} {r['input']!s:22s} {r['ms_p50']:8.3f} ms {r['gflops']:9.1f} GFLOP {rate:7.1f} TFLOP/s")
    write_json(out / "layers.json", {"preset": preset, "rows": rows})
    return 0


def check_parity_f64(out: Path, preset: str = "inti-b16", device: str = "cuda") -> int:
    """How far FP32 is from exact: CPU FP32 and CUDA FP32 against a float64 CPU run on shipped clips.
    Says whether a CUDA-vs-CPU difference over the fp32 tolerance is the GPU's or FP32's own."""
    import numpy as np

    torch = torch_module()
    from inti_export.models import create_model
    from inti_export.video.clipset import load_clips
    from inti_export.video.discover import shipped_videos_dir
    from inti_export.video.preprocess import preprocess_for

    model = create_model(preset).eval()
    video = torch.from_numpy(load_clips(shipped_videos_dir(), preprocess_for(model.cfg), clips_per_video=1).clips)
    with torch.inference_mode():
        exact = model.double()(video.double()).numpy()
        outs = {"cpu-fp32": model.float()(video).numpy()}
        if device == "cuda":
            outs["cuda-fp32"] = model.to("cuda")(video.to("cuda")).cpu().numpy()
            from inti_export.runtime.torch_runner import exact_fp32

            with exact_fp32():
                outs["cuda-fp32-no-tf32"] = model(video.to("cuda")).cpu().numpy()
            torch.backends.cuda.matmul.allow_tf32 = True
            outs["cuda-tf32"] = model(video.to("cuda")).cpu().numpy()
            torch.backends.cuda.matmul.allow_tf32 = False
    scale = float(np.abs(exact).max())
    rows = {k: float(np.abs(v - exact).max() / scale) for k, v in outs.items()}
    if "cuda-fp32" in outs:
        rows["cuda-fp32 vs cpu-fp32"] = float(np.abs(outs["cuda-fp32"] - outs["cpu-fp32"]).max() / scale)
    for k, v in rows.items():
        print(f"{k:22s} max err / scale against float64: {v:.2e}" if " vs " not in k else f"{k:22s} max err / scale {v:.2e}")
    write_json(out / "parity_f64.json", {"preset": preset, "clips": len(video), "max_err_over_scale": rows})
    return 0
