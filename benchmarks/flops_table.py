"""GFLOPs per clip for every preset (multiply-add counted once) against the paper's Table 1.

    python benchmarks/flops_table.py [--json]
"""

from __future__ import annotations

import json
import sys

from inti_export.models import list_presets
from inti_export.models.flops import count_flops

PAPER = {"naive-b16": 281, "inti-b16-early": 147, "inti-b16": 182, "inti-b16-late": 217,
         "naive-l14": 1297, "inti-l14-early": 650, "inti-l14": 811, "inti-l14-late": 973}


def main() -> None:
    rows = []
    for name in list_presets():
        r = count_flops(name)
        paper = PAPER.get(name)
        rows.append({**r.to_dict(), "paper_gflops": paper,
                     "deviation_pct": None if paper is None else 100 * (r.gflops - paper) / paper})
    if "--json" in sys.argv:
        print(json.dumps(rows, indent=2))
        return
    print("| preset | InTI after blocks | frames per stage | params (M) | InTI params (M) | GFLOPs"
          " | InTI layers' GFLOPs | paper | deviation |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dev = "-" if r["paper_gflops"] is None else f"{r['deviation_pct']:+.2f}%"
        stages = " / ".join(map(str, r["frames_per_stage"]))
        print(f"| {r['preset']} | {', '.join(map(str, r['insert_before'])) or '-'} | {stages} "
              f"| {r['params'] / 1e6:.2f} | {r['params_inti'] / 1e6:.2f} | {r['gflops']:.2f} | {r['inti_gflops']:.2f} "
              f"| {r['paper_gflops'] or '-'} | {dev} |")


if __name__ == "__main__":
    main()
