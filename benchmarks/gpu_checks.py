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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # the sibling modules below, however this file is loaded
# cuda_events_ms and pct are imported here for bench_blend_kernel, which takes them from this module
from gpu_common import cuda_events_ms, pct, torch_dtype, torch_module, write_json  # noqa: F401
from gpu_model_checks import check_layers, check_parity, check_parity_f64, check_stream

SKIP = 77
KERNEL_DTYPES = ("fp32", "fp16", "bf16")


def check_env(out: Path) -> int:
    torch = torch_module()
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
        write_json(out / "env.json", info)
        return SKIP
    props = torch.cuda.get_device_properties(0)
    info.update(gpu=props.name, capability=f"SM{props.major}{props.minor}", memory_gib=round(props.total_memory / 2**30, 1),
                multiprocessors=props.multi_processor_count, devices=torch.cuda.device_count())
    write_json(out / "env.json", info)
    print(json.dumps(info))
    return 0


def check_kernel(out: Path) -> int:
    """The Triton kernel and the op's CUDA path against the reference: every dtype, odd and even token
    counts, batch 1 and 7, at ViT-B widths (D = D' = 768, so 4D' = 3072)."""
    torch = torch_module()
    from inti_export.plugins import torch_op  # noqa: F401 - registers torch.ops.inti.token_interpolate
    from inti_export.plugins.reference import token_interpolate_reference
    from inti_export.plugins.triton_kernel import AOT_CONFIGS, token_interpolate_triton

    # Fractions of the output's scale max|y_ref| (tests/plugins/conftest.py explains each).
    tolerance = {"fp32": 1e-5, "fp16": 2e-3, "bf16": 2e-2}
    rows, failed = [], 0
    for name in KERNEL_DTYPES:
        dtype = torch_dtype(name)
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
    write_json(out / "kernel.json", {"cases": rows, "failed": failed})
    return 1 if failed else 0


def check_aot_entry(out: Path) -> int:
    """The AOT kernel's PTX entry for this GPU: 11 arguments TensorRT passes, then Triton's two hidden
    scratch pointers (`compile_aot`'s docstring); shared memory within a plain launch's 48 KiB."""
    import re

    torch = torch_module()
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
    write_json(out / "aot_entry.json", {"kernels": rows, "failed": failed})
    return 1 if failed else 0


def check_blend(out: Path) -> int:
    """The kernel's time against a device copy of the same bytes and against the unfused PyTorch ops.
    Goals: >= 80% of copy bandwidth, >= 1.5x the unfused ops (recorded, not failed)."""
    from bench_blend_kernel import bench_one

    runs = []
    for name in ("fp16", "bf16", "fp32"):
        for batch in (1, 8):
            r = bench_one(batch, torch_dtype(name), 768, 768, warmup=10, iters=50)
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
    write_json(out / "blend.json", {"runs": runs})
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
    write_json(out / "ort_cuda.json", report.to_dict())
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
    write_json(out / "trt_rtx.json", result)
    return 0


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
        torch = torch_module()
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
