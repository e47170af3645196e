"""Run `inti-export optimize` timed, with the machine's load before and after, and print the
markdown table for docs/benchmarks.md.

    python benchmarks/bench_optimize.py -o out -- --preset inti-b16 --runners torch,ort \
        --precisions fp32,fp16,int8 --batch 1,2
    python benchmarks/bench_optimize.py --table out/report.json      # the table of a finished run
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def table(report_path: Path) -> str:
    from inti_export.jobs.optimize import load_report

    r = load_report(report_path)
    lines = ["| candidate | status | cosine min | top-1 | top-5 | gate | batch | p50 ms | p90 ms | clips/s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c in r.candidates:
        star = " **(choice)**" if c.id == r.choice.candidate else ""
        a = c.accuracy
        acc = [f"{a.cosine_min:.6f}", f"{a.top1_agreement:.3f}", f"{a.top5_agreement:.3f}"] if a else ["", "", ""]
        gate = "" if c.gate is None else ("pass" if c.gate.passed else "FAIL: " + "; ".join(c.gate.failures))
        status = c.status if c.status == "ok" else f"{c.status}: {c.reason}"
        rows = c.speed or [None]
        for i, s in enumerate(rows):
            head = [f"{c.runner} {c.precision}{star}", status, *acc, gate] if i == 0 else [""] * 6
            tail = [str(s.batch), f"{s.p50_ms:.0f}", f"{s.p90_ms:.0f}", f"{s.throughput_clips_s:.3f}"] if s else [""] * 4
            lines.append("| " + " | ".join(head + tail) + " |")
    lines.append("")
    lines.append(f"Choice: {r.choice.candidate}: {r.choice.reason}. Wall {r.wall_s:.0f} s (report).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", type=Path, help="optimize output folder")
    ap.add_argument("--table", type=Path, help="only print the table of this report.json")
    ap.add_argument("args", nargs="*", help="inti-export optimize options (after --)")
    ns = ap.parse_args()
    if ns.table:
        print(table(ns.table))
        return
    if ns.output is None:
        ap.error("-o OUT is required to run")
    load = os.getloadavg()
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "inti_export.cli", "optimize", *ns.args, "-o", str(ns.output)]
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - start
    after = os.getloadavg()
    print(f"command: {' '.join(cmd)}\nexit {rc}; wall {wall:.0f} s; load average before {load}, after {after}")
    if rc == 0:
        print(table(ns.output / "report.json"))
    sys.exit(rc)


if __name__ == "__main__":
    main()
