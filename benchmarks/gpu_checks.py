"""The checks and measurements only a CUDA GPU can give, one subcommand each (run by gpu_suite.sh).

    python benchmarks/gpu_checks.py CHECK --out DIR   (CHECK: see CHECKS below)

Each writes DIR/<name>.json and prints one line per case. Exit status: 0 every check passed, 1 a
check failed (the line says which), 77 skipped (no CUDA GPU, or a package the check needs is missing:
the reason is printed), which gpu_suite.sh reports as SKIP. Goals (a speed target) are recorded as
`goal_met` in the JSON and printed as GOAL MET / GOAL MISSED; a missed goal is a finding, not a failure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

SKIP = 77
KERNEL_DTYPES = ("fp32", "fp16", "bf16")


def _torch():
    import torch

    return torch


def _dtype(name: str):
    torch = _torch()
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def cuda_events_ms(fn, warmup: int, iters: int, device: str = "cuda") -> list[float]:
    """Milliseconds of each call, timed alone between two CUDA events after `warmup` calls (a wall
    clock on the CPU, where the suite's own test runs these checks on a tiny preset)."""
    torch = _torch()
    for _ in range(warmup):
        fn()
    if device == "cpu":
        times = []
        for _ in range(iters):
            start = time.perf_counter()
            fn()
            times.append((time.perf_counter() - start) * 1e3)
        return times
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, max(0, round(q * (len(values) - 1))))]


def check_env(out: Path) -> int:
    torch = _torch()
    import numpy
    import triton

    info = {"torch": torch.__version__, "triton": triton.__version__, "numpy": numpy.__version__,
            "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    try:
        import open_clip

        info["open_clip"] = open_clip.__version__
    except ImportError as e:
        info["open_clip"] = f"missing ({e})"
    if not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA GPU")
        _write(out / "env.json", info)
        return SKIP
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=props.name, capability=f"SM{props.major}{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                multiprocessors=props.multi_processor_count, devices=torch.cuda.device_count())
    _write(out / "env.json", info)
    print(json.dumps(info))
    return 0


def check_kernel(out: Path) -> int:
    """The Triton kernel and the op's CUDA path against the reference: every dtype, odd and even token
    counts, batch 1 and 7, at ViT-B widths (D = D' = 768, so 4D' = 3072)."""
    torch = _torch()
    from inti_export.plugins import torch_op  # noqa: F401 - registers torch.ops.inti.token_interpolate
    from inti_export.plugins.reference import token_interpolate_reference
    from inti_export.plugins.triton_kernel import AOT_CONFIGS, token_interpolate_triton

    # Fractions of the output's scale max|y_ref| (tests/plugins/conftest.py explains each).
    tolerance = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 2e-2}
    rows, failed = [], 0
    for name in KERNEL_DTYPES:
        dtype = _dtype(name)
        for batch in (1, 7):
            for tokens in (197, 196):
                g = torch.Generator(device="cuda").manual_seed(batch * 1000 + tokens)
                lead, d, k = (batch * 8, tokens), 768, 4 * 768

                def rnd(*shape, scale=1.0, g=g, dtype=dtype):
                    return (scale * torch.randn(*shape, generator=g, device="cuda")).to(dtype)

                pairs = rnd(*lead, 2, d)  # (B*8, N, 2, D): a and b as the strided views the model passes
                h, a, b = rnd(*lead, k), pairs[..., 0, :], pairs[..., 1, :]
                weights = (rnd(d, k, scale=k**-0.5), rnd(d, scale=0.1), rnd(2, d, scale=2 * d**-0.5), rnd(2, scale=0.1))
                ref = token_interpolate_reference(h, a, b, *weights)
                scale = ref.float().abs().max().item()
                routes = {
                    "triton-autotuned": lambda h=h, a=a, b=b, w=weights: token_interpolate_triton(
                        h, a.contiguous(), b.contiguous(), *w),
                    "triton-aot-config": lambda h=h, a=a, b=b, w=weights, dtype=dtype: token_interpolate_triton(
                        h, a.contiguous(), b.contiguous(), *w, config=AOT_CONFIGS[dtype]),
                    "op-cuda": lambda h=h, a=a, b=b, w=weights: torch.ops.inti.token_interpolate(h, a, b, *w),
                }
                if name == "fp32":  # fp32 tokens with an fp16 context, as autocast produces
                    routes["op-cuda-fp16-context"] = lambda h=h, a=a, b=b, w=weights: torch.ops.inti.token_interpolate(
                        h.half(), a, b, *w)
                for route, fn in routes.items():
                    fp16_context = route == "op-cuda-fp16-context"
                    ref_route = token_interpolate_reference(h.half(), a, b, *weights) if fp16_context else ref
                    y = fn()
                    err = (y.float() - ref_route.float()).abs().max().item() / scale
                    ok = y.dtype == ref.dtype and y.shape == ref.shape and err <= tolerance[name]
                    failed += not ok
                    rows.append({"dtype": name, "batch": batch, "tokens": tokens, "route": route,
                                 "max_err_over_scale": err, "tolerance": tolerance[name], "passed": ok})
                    print(f"{'ok  ' if ok else 'FAIL'} {route:18s} {name} batch {batch} tokens {tokens}: "
                          f"max err / scale {err:.2e} (tolerance {tolerance[name]:.0e})")
    _write(out / "kernel.json", {"cases": rows, "failed": failed})
    return 1 if failed else 0


def check_aot_entry(out: Path) -> int:
    """The AOT kernel's PTX entry for this GPU: 11 arguments TensorRT passes, then Triton's two hidden
    scratch pointers (`compile_aot`'s docstring); shared memory within a plain launch's 48 KiB."""
    import re

    torch = _torch()
    from inti_export.plugins import triton_aot as aot

    expected = 13
    rows, failed = [], 0
    for act, weight in [(torch.float32, None), (torch.float16, None), (torch.bfloat16, None), (torch.float16, torch.float32)]:
        for aligned in (False, True):
            k = aot.compile_aot(act, weight, ptx_version=aot.driver_ptx_version(), aligned=aligned)
            params = re.search(r"\.entry\s+\w+\s*\((.*?)\)", k.ptx, re.S).group(1).count(".param")
            ok = params == expected and k.shared_mem <= aot.MAX_STATIC_SHARED_BYTES
            failed += not ok
            rows.append({"target": k.target, "act": str(act), "weight": str(weight or act), "aligned": aligned,
                         "entry_params": params, "shared_bytes": k.shared_mem, "stages": k.num_stages, "passed": ok})
            print(f"{'ok  ' if ok else 'FAIL'} {k.target} act={act} weight={weight or act} aligned={aligned}: "
                  f"{params} entry params (expected {expected}), shared {k.shared_mem} B, {k.num_stages} stages")
    _write(out / "aot_entry.json", {"kernels": rows, "failed": failed})
    return 1 if failed else 0


def check_blend(out: Path) -> int:
    """The kernel's time against a device copy of the same bytes and against the unfused PyTorch ops.
    Goals: >= 80% of copy bandwidth, >= 1.5x the unfused ops (recorded, not failed)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_blend_kernel import bench_one

    runs = []
    for name in ("fp16", "bf16", "fp32"):
        for batch in (1, 8):
            r = bench_one(batch, _dtype(name), 768, 768, warmup=10, iters=50)
            v = r["variants"]
            r.update(dtype=name, copy_fraction=v["copy"]["median_ms"] / v["triton"]["median_ms"],
                     speedup_vs_unfused=v["torch_unfused"]["median_ms"] / v["triton"]["median_ms"])
            r["goal_met"] = {"copy_fraction>=0.8": r["copy_fraction"] >= 0.8, "vs_unfused>=1.5": r["speedup_vs_unfused"] >= 1.5}
            runs.append(r)
            met = {k: "MET" if v else "MISSED" for k, v in r["goal_met"].items()}
            print(f"{name} batch {batch}: triton {v['triton']['median_ms']:.3f} ms, copy {v['copy']['median_ms']:.3f} ms "
                  f"({r['copy_fraction']:.2f} of copy bandwidth: GOAL {met['copy_fraction>=0.8']}),"
                  f" unfused {v['torch_unfused']['median_ms']:.3f} ms ({r['speedup_vs_unfused']:.2f}x: GOAL "
                  f"{met['vs_unfused>=1.5']}), {v['triton']['TFLOPs']:.0f} TFLOP/s")
    _write(out / "blend.json", {"runs": runs})
    return 0


def check_stream(out: Path, preset: str = "inti-b16", device: str = "cuda", stride: int = 4, windows: int = 24) -> int:
    """The stream split: stem once per frame + head once per window against the whole window, on CUDA.
    Exact within the precision's parity tolerance (checks/compare.py); per-window time at `stride` new
    frames against recomputing the window."""
    torch = _torch()
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
    _write(out / "stream.json", {"results": results, "failed": failed})
    return 1 if failed else 0


def _stream_one(preset: str, name: str, device: str, stride: int, windows: int) -> dict:
    torch = _torch()
    from inti_export.checks.compare import TOLERANCES
    from inti_export.models import create_model

    model = create_model(preset).eval().to(device, _dtype(name))
    c = model.cfg
    g = torch.Generator(device=device).manual_seed(0)
    total = c.frames + stride * (windows - 1)
    frames = torch.randn(total, 3, c.image_size, c.image_size, generator=g, device=device).to(_dtype(name))  # (F, 3, H, W)
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
    _write(out / "parity.json", {"preset": preset, "clips": len(ref), "comparisons": rows, "failed": failed})
    return 1 if failed else 0


def check_layers(out: Path, preset: str = "inti-b16", device: str = "cuda", batch: int = 8) -> int:
    """Where the time goes: each block, each InTI layer, and the InTI layer's context and blend parts,
    timed alone on its real input (captured by a forward pre-hook), with the FLOPs of each."""
    torch = _torch()
    from torch.utils.flop_counter import FlopCounterMode

    from inti_export.models import create_model

    rows = []
    for name in ("fp16", "fp32") if device == "cuda" else ("fp32",):
        model = create_model(preset).eval().to(device, _dtype(name))
        c = model.cfg
        seen = {}
        parts = {f"block{i}": blk for i, blk in enumerate(model.visual.transformer.resblocks)}
        parts.update({f"inti{k}": layer for k, layer in model.inti.items()})
        hooks = [m.register_forward_pre_hook(lambda mod, args, key=key, seen=seen: seen.setdefault(key, args[0].clone()))
                 for key, m in parts.items()]
        video = torch.randn(batch, c.frames, 3, c.image_size, c.image_size, device=device).to(_dtype(name))
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
    _write(out / "layers.json", {"preset": preset, "rows": rows})
    return 0


def check_parity_f64(out: Path, preset: str = "inti-b16", device: str = "cuda") -> int:
    """How far FP32 is from exact: CPU FP32 and CUDA FP32 against a float64 CPU run on shipped clips.
    Says whether a CUDA-vs-CPU difference over the fp32 tolerance is the GPU's or FP32's own."""
    import numpy as np

    torch = _torch()
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
    _write(out / "parity_f64.json", {"preset": preset, "clips": len(video), "max_err_over_scale": rows})
    return 0


def check_ort_cuda(out: Path) -> int:
    """ONNX Runtime's CUDA provider: InTI against naive, batch 1 and 8 (bench's own loop)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        print(f"SKIP: onnxruntime does not import ({e})")
        return SKIP
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"SKIP: onnxruntime {ort.__version__} has no CUDAExecutionProvider ({ort.get_available_providers()}):"
              " install onnxruntime-gpu alone (docs/precision.md)")
        return SKIP
    from inti_export.jobs.bench import run_bench

    report = run_bench("inti-b16", runners=("ort-cuda",), batches=(1, 8), iters=30, warmup=5, compare_naive=True)
    _write(out / "ort_cuda.json", report.to_dict())
    for r in report.rows:
        print(f"{r.preset} {r.runner} batch {r.batch}: p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms")
    return 1 if report.not_measured else 0


def check_trt_rtx(out: Path) -> int:
    """TensorRT-RTX's own answer on this GPU: build a tiny engine for it and run it, or its refusal."""
    import tempfile

    try:
        import tensorrt_rtx  # noqa: F401
    except ImportError as e:
        print(f"SKIP: tensorrt_rtx does not import ({e})")
        return SKIP
    import numpy as np

    from inti_export.errors import IntiExportError
    from inti_export.exporter import export_onnx
    from inti_export.models import create_model
    from inti_export.runtime.trt import BuildConfig, TrtRunner, build_engine

    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path, engine = Path(tmp) / "t.onnx", Path(tmp) / "t.engine"
        export_onnx(create_model("test-tiny"), onnx_path, verify=False)
        try:
            build_engine(onnx_path, engine, BuildConfig(runtime="tensorrt-rtx", batch=(1, 2, 4)))
            with TrtRunner(engine) as runner:
                y = runner.infer({"video": np.zeros((2, 8, 3, 32, 32), np.float32)})
            result = {"ran": True, "output_shape": list(next(iter(y.values())).shape)}
        except (IntiExportError, RuntimeError) as e:
            result = {"ran": False, "answer": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    _write(out / "trt_rtx.json", result)
    return 0


def _write(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


CHECKS = {"env": check_env, "kernel": check_kernel, "aot-entry": check_aot_entry, "blend": check_blend,
          "stream": check_stream, "parity": check_parity, "ort-cuda": check_ort_cuda, "trt-rtx": check_trt_rtx,
          "layers": check_layers, "parity-f64": check_parity_f64}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("check", choices=sorted(CHECKS))
    parser.add_argument("--out", type=Path, default=Path("gpu-results"))
    parser.add_argument("--preset", default="inti-b16", help="stream and parity: the preset")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="stream and parity: cpu runs them on a tiny preset to test this script")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        torch = _torch()
    except ImportError as e:
        print(f"SKIP: {e}")
        return SKIP
    if args.device == "cpu" and args.check in ("stream", "parity", "layers", "parity-f64"):
        return CHECKS[args.check](args.out, args.preset, "cpu")
    if args.check != "env" and not torch.cuda.is_available():
        print("SKIP: torch sees no CUDA GPU")
        return SKIP
    if args.check in ("stream", "parity", "layers", "parity-f64"):
        return CHECKS[args.check](args.out, args.preset)
    return CHECKS[args.check](args.out)


if __name__ == "__main__":
    raise SystemExit(main())
