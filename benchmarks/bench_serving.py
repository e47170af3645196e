"""perf_analyzer against a real tritonserver serving inti-b16 and naive-b16, with and without dynamic batching.

For each preset: export (or take) the ONNX, write a `--backend python` repository (ONNX Runtime
inside the Python backend, max_batch 4), start tritonserver on free ports and run perf_analyzer
(tritonclient 2.41.0's binary) at concurrency 1, 2, 4 over HTTP; then the in-process OrtRunner's
best-batch throughput on the same machine and thread count. Writes a JSON report and a PNG plot;
results go to docs/benchmarks.md. perf_analyzer needs libb64 (`apt-get install libb64-0d`) and
libcudart.so.12 on LD_LIBRARY_PATH (pip's nvidia-cuda-runtime-cu12; no GPU is used).

    python benchmarks/bench_serving.py --workdir /tmp/bench-serving --report serving.json --plot serving.png
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PRESETS = ("inti-b16", "naive-b16")


def perf_analyzer(model: str, url: str, concurrency: int, out_csv: Path, requests: int) -> dict:
    exe = shutil.which("perf_analyzer")
    if exe is None:
        sys.exit("perf_analyzer not found: pip install 'tritonclient[http,grpc]==2.41.0'")
    cmd = [
        exe, "-m", model, "-u", url, "-i", "http", "--concurrency-range", f"{concurrency}:{concurrency}",
        "--measurement-mode", "count_windows", "--measurement-request-count", str(requests),
        "--stability-percentage", "50", "--max-trials", "3", "-f", str(out_csv),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if run.returncode != 0 and "stable measurement" in run.stdout and requests < 48:
        # Windows of a few multi-second requests can miss the 50% band at higher concurrency: retry
        # with windows twice as long (the count used is recorded in the row).
        return perf_analyzer(model, url, concurrency, out_csv, 2 * requests)
    if run.returncode != 0 or not out_csv.is_file():
        raise RuntimeError(f"perf_analyzer failed ({run.returncode}): {run.stdout[-800:]} {run.stderr[-800:]}")
    with open(out_csv) as f:
        row = next(csv.DictReader(f))
    return {
        "concurrency": concurrency,
        "throughput_clips_s": float(row["Inferences/Second"]),
        "p50_ms": float(row["p50 latency"]) / 1000,
        "p99_ms": float(row["p99 latency"]) / 1000,
        "requests_per_window": requests,
    }


def in_process_best(onnx: Path, threads: int, batches=(1, 2, 4), iters: int = 2) -> dict:
    """The OrtRunner's throughput per batch (median of `iters` after one warmup); the best of them."""
    from inti_export.runtime.ort_runner import OrtRunner

    rows = []
    with OrtRunner(onnx, threads=threads) as runner:
        (spec,) = runner.input_specs()
        for b in batches:
            x = np.random.default_rng(0).standard_normal((b, *spec.shape[1:]), dtype=np.float32)
            runner.infer({spec.name: x})
            times = []
            for _ in range(iters):
                start = time.perf_counter()
                runner.infer({spec.name: x})
                times.append(time.perf_counter() - start)
            rows.append({"batch": b, "throughput_clips_s": b / float(np.median(times))})
    return {"rows": rows, "best": max(rows, key=lambda r: r["throughput_clips_s"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--concurrency", default="1,2,4")
    ap.add_argument("--max-batch", type=int, default=4)
    ap.add_argument("--requests", type=int, default=3, help="perf_analyzer requests per measurement window")
    ap.add_argument("--report", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()

    from inti_export.models.flops import count_flops
    from inti_export.serving import RepoConfig, write_triton_repo
    from inti_export.serving.server import TritonServer

    threads = os.cpu_count() or 1
    args.workdir.mkdir(parents=True, exist_ok=True)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    load = os.getloadavg()
    report = {
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": threads, "loadavg_at_start": load},
        "versions": {"python": platform.python_version()},
        "threads": threads,
        "max_batch": args.max_batch,
        "models": {},
    }
    for preset in PRESETS:
        onnx = args.workdir / f"{preset}.onnx"
        if not onnx.is_file():
            subprocess.run([sys.executable, "-c", "from inti_export.cli import app; app()", "onnx", "-p", preset,
                            "-o", str(onnx)], check=True)
        entry = {"gflops_per_clip": count_flops(preset).gflops, "served": {}}
        for dynamic in (False, True):
            key = "dynamic" if dynamic else "no-dynamic"
            repo = args.workdir / f"repo-{preset}-{key}"
            shutil.rmtree(repo, ignore_errors=True)
            write_triton_repo(onnx, repo, RepoConfig(name=preset, max_batch=args.max_batch, dynamic_batching=dynamic))
            with TritonServer(repo, ready_timeout=900) as server:
                url = server.endpoints.http.removeprefix("http://")
                rows = []
                for c in concurrency:
                    row = perf_analyzer(preset, url, c, args.workdir / f"{preset}-{key}-c{c}.csv", max(args.requests, 2 * c))
                    print(preset, key, row, flush=True)
                    rows.append(row)
            entry["served"][key] = rows
        entry["in_process"] = in_process_best(onnx, threads)
        print(preset, "in-process", entry["in_process"], flush=True)
        report["models"][preset] = entry
    report["machine"]["loadavg_at_end"] = os.getloadavg()

    for entry in report["models"].values():
        best_served = max(r["throughput_clips_s"] for rows in entry["served"].values() for r in rows)
        entry["best_served_clips_s"] = best_served
        entry["served_over_in_process"] = best_served / entry["in_process"]["best"]["throughput_clips_s"]
    inti, naive = report["models"]["inti-b16"], report["models"]["naive-b16"]
    report["inti_over_naive_throughput"] = inti["best_served_clips_s"] / naive["best_served_clips_s"]
    report["naive_over_inti_flops"] = naive["gflops_per_clip"] / inti["gflops_per_clip"]
    args.report.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "models"}, indent=1))
    if args.plot:
        plot(report, args.plot)


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 4))
    for preset, entry in report["models"].items():
        for key, rows in entry["served"].items():
            c = [r["concurrency"] for r in rows]
            style = "-" if key == "dynamic" else "--"
            ax_t.plot(c, [r["throughput_clips_s"] for r in rows], style, marker="o", label=f"{preset} {key}")
            ax_l.plot(c, [r["p50_ms"] for r in rows], style, marker="o", label=f"{preset} {key} p50")
            ax_l.plot(c, [r["p99_ms"] for r in rows], style, marker="x", alpha=0.5, label=f"{preset} {key} p99")
        ax_t.axhline(entry["in_process"]["best"]["throughput_clips_s"], color="gray", lw=0.8, ls=":")
    ax_t.set(xlabel="concurrency", ylabel="clips/s", title="served throughput (dotted: in-process best batch)")
    ax_l.set(xlabel="concurrency", ylabel="ms", title="latency")
    ax_t.legend(fontsize=7)
    ax_l.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
