"""Accuracy of a trained task checkpoint on the test split: FP32, FP16, INT8 and FP8, as executed on ORT CPU.

    PYTHONPATH=$PWD python3 benchmarks/eval_task.py \
        --checkpoint inti_export/models/checkpoints/task-inti.safetensors \
        --record inti_export/models/checkpoints/task-inti.json --out benchmarks/results/task-precision.json

Regenerates the test split (and a calibration set from the train split's seed) with
`inti_export.tasks.motion`, exports the model to ONNX, converts it with
`inti_export.calibration.precision.convert_precision` for each precision/backend/method and
evaluates every artifact with `inti_export.checks.evaluate`. A conversion that cannot run here is
recorded with its one-line reason. `--record` writes the checkpoint's reference accuracy, which the
tests compare against.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from inti_export.calibration.precision import convert_precision
from inti_export.checks.evaluate import evaluate
from inti_export.errors import IntiExportError, one_line
from inti_export.exporter import export_onnx
from inti_export.models import create_model
from inti_export.tasks.motion import make_split
from inti_export.video.clipset import load_clips
from inti_export.video.labels import labelled_clips
from inti_export.video.preprocess import preprocess_for

CONVERSIONS = [  # (precision, backend, method)
    ("fp16", "ort", None), ("fp16", "modelopt", None),
    ("int8", "ort", "max"), ("int8", "ort", "entropy"), ("int8", "ort", "percentile"),
    ("int8", "modelopt", "max"), ("int8", "modelopt", "entropy"),
    ("fp8", "modelopt", "max"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--preset", default="task-inti")
    ap.add_argument("--test", type=int, default=160)
    ap.add_argument("--calib", type=int, default=64, help="calibration clips (train split seed)")
    ap.add_argument("--record", type=Path, help="write the reference accuracy JSON the tests read")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--only", default="", help="comma list of precision:backend:method to run (default all)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    model = create_model(args.preset, checkpoint=args.checkpoint)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "test").mkdir()
        (tmp / "calib").mkdir()
        make_split(tmp / "test", "test", args.test)
        make_split(tmp / "calib", "train", args.calib)
        clips, labels, _ = labelled_clips(model.cfg, tmp / "test", tmp / "test" / "labels.csv")
        calib = load_clips(tmp / "calib", preprocess_for(model.cfg)).clips  # (K, T, 3, H, W)
        fp32 = export_onnx(model, tmp / "fp32.onnx", clips=clips[:2]).onnx_path
        ref = evaluate(model, clips, labels, onnx_path=fp32)
        torch_acc, ort_acc = ref.results
        rows.append({"artifact": "PyTorch FP32", "top1": torch_acc.top1, "top5": torch_acc.top5})
        rows.append({"artifact": "ONNX FP32 (ORT CPU)", "top1": ort_acc.top1, "top5": ort_acc.top5})
        print(json.dumps(rows[-2:]), flush=True)
        for precision, backend, method in CONVERSIONS:
            tag = f"{precision}:{backend}:{method or '-'}"
            if args.only and tag not in args.only.split(","):
                continue
            out = tmp / f"{precision}-{backend}-{method}.onnx"
            row = {"artifact": tag}
            t0 = time.perf_counter()
            try:
                kw = {"method": method} if method else {}
                convert_precision(fp32, precision, out, calib_data=calib if precision in ("int8", "fp8") else None,
                                  backend=backend, **kw)
                row["convert_seconds"] = round(time.perf_counter() - t0, 1)
                (_, acc) = evaluate(model, clips, labels, onnx_path=out).results
                row.update(top1=acc.top1, top5=acc.top5, drop_points=round(100 * (ort_acc.top1 - acc.top1), 2))
            except (IntiExportError, ImportError) as e:
                row["error"] = one_line(e, 240)
            except Exception as e:  # noqa: BLE001 - ORT cannot run some quantised graphs; record why
                row["error"] = f"{type(e).__name__}: {one_line(e, 240)}"
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {"preset": args.preset, "checkpoint": str(args.checkpoint), "test_count": args.test,
              "calib_clips": args.calib, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.record:
        args.record.write_text(json.dumps({
            "preset": args.preset, "checkpoint": args.checkpoint.name, "test_split": "test", "test_count": args.test,
            "top1": torch_acc.top1, "top5": torch_acc.top5, "onnx_ort_top1": ort_acc.top1,
            "measured_by": "benchmarks/eval_task.py",
        }, indent=1) + "\n")


if __name__ == "__main__":
    main()
