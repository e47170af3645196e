"""What a search leaves besides report.json: OUT/best/ (the chosen artifact, candidate.json, command.txt),
the Triton repository of the choice, the candidates as a table, and OUT/pareto.png (docs/optimize.md, "Outputs").
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from inti_export.fileio import atomic_output, write_json
from inti_export.jobs.optimize.choose import best_row, usable_rows
from inti_export.jobs.optimize.report import OptimizeReport
from inti_export.vocab import Status

LABEL_ALL = 6  # up to this many measured candidates, the plot names each one


def artifact_path(out: Path, artifact: str) -> Path:
    """A candidate's `artifact` (relative to OUT, or absolute for an --onnx outside it) as a path."""
    return Path(artifact) if os.path.isabs(artifact) else out / artifact


def write_best(out: Path, report: OptimizeReport) -> Path:
    """OUT/best/: the chosen artifact (and its manifest), `candidate.json`, and `command.txt`."""
    c = report.chosen()
    best = out / "best"
    staging = Path(tempfile.mkdtemp(prefix=".best-", dir=out))
    try:
        files = []
        if c.artifact:
            src = artifact_path(out, c.artifact)
            for p in (src, src.with_name(src.name + ".json")):
                if p.is_file():
                    try:
                        os.link(p, staging / p.name)
                    except OSError:
                        shutil.copy2(p, staging / p.name)
                    files.append(p.name)
        write_json(staging / "candidate.json", {"choice": asdict(report.choice), "candidate": asdict(c),
                                                "files": files, "model": report.model})
        (staging / "command.txt").write_text(c.command + "\n")
        if best.exists():
            shutil.rmtree(best)
        os.replace(staging, best)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return best


def write_triton_repo_of_choice(out: Path, report: OptimizeReport, repo: Path) -> str | None:
    """The choice as a Triton model repository (serving's `write_triton_repo`), batch sizes from the search;
    the note in `report.notes` says what was written, or why nothing was."""
    from inti_export.serving import write_triton_repo
    from inti_export.serving.choice import Choice, repo_config_for_choice

    c = report.chosen()
    if not c.artifact:
        report.notes.append(f"--triton-repo not written: the choice {c.id} runs in PyTorch and has no ONNX or engine;"
                            " restrict --runners to ort or trt to serve the choice with Triton")
        return None
    passing = sorted(r.batch for r in usable_rows(c, report.options.get("max_latency_ms")))
    top = max(passing)
    choice = Choice(artifact_path(out, c.artifact), c.runner, c.precision, report.choice.batch or top,
                    getattr(c, "variant", None), dict(getattr(c, "settings", None) or {}))
    backend = {"trt": "tensorrt", "ov": "python"}.get(c.runner, "onnxruntime")  # OpenVINO runs in the python backend
    config, _ = repo_config_for_choice(choice, max_batch=top, backend=backend)  # the one mapping (serving/choice.py)
    preferred = config.preferred_batch_sizes
    rep = write_triton_repo(choice.artifact, repo, config)
    report.notes.append(f"Triton repository {rep.repository}: max_batch_size {top} (largest batch within the budget),"
                        f" preferred batch sizes {list(preferred)} (the choice's batch and the largest)")
    return rep.repository


def candidate_table(report: OptimizeReport) -> tuple[list[str], list[list[str]]]:
    """(columns, rows): one row per candidate and batch size, the candidate's own cells on its first row;
    the choice marked `* `; `cos min` as the timed runner executes it, `cos quant` as quantised (INT8).
    Plain text: the CLI prints it as a table."""
    labelled = report.clips.get("labels") is not None
    cols = ["candidate", "status", "cos min", "cos quant", "top-1", *(["labels top-1", "drop"] if labelled else []), "gate",
            "batch", "p50 ms", "p90 ms", "clips/s"]
    rows = []
    for c in report.candidates:
        acc = c.accuracy
        status = c.status + (" (cached)" if c.cached else "")
        quant = c.accuracy_as_quantized
        first = [f"{'* ' if c.id == report.choice.candidate else ''}{c.label or f'{c.runner} {c.precision}'}",
                 status if c.status == Status.ok.value else f"{status}: {c.reason[:70]}",
                 f"{acc.cosine_min:.6f}" if acc else "", f"{quant.cosine_min:.6f}" if quant else "",
                 f"{acc.top1_agreement:.3f}" if acc else ""]
        if labelled:
            has = acc is not None and acc.label_top1 is not None
            first += [f"{100 * acc.label_top1:.2f}%" if has else "", f"{acc.label_top1_drop_points:+.2f}" if has else ""]
        first.append("" if c.gate is None else ("pass" if c.gate.passed else "FAIL"))
        if not c.speed:
            rows.append([*first, "", "", "", ""])
        for i, r in enumerate(c.speed):
            rows.append([*(first if i == 0 else [""] * len(first)), str(r.batch), f"{r.p50_ms:.1f}", f"{r.p90_ms:.1f}",
                         f"{r.throughput_clips_s:.3g}"])
    return cols, rows


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both speed (x, higher better) and error (y, lower
    better), sorted by x."""
    idx = [i for i, (x, y) in enumerate(points)
           if not any((x2 >= x and y2 <= y) and (x2 > x or y2 < y) for x2, y2 in points)]
    return sorted(idx, key=lambda i: points[i][0])


def plot_pareto(report: OptimizeReport, path: Path) -> None:
    """Speed (best clips/s within the budget) against accuracy (1 - cosine min), frontier and choice marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floor = 1e-9  # 1 - cosine of the PyTorch FP32 candidate is 0: drawn at the floor of the log axis
    pts, labels, passed, chosen = [], [], [], []
    for c in report.candidates:
        if c.status != Status.ok.value or not c.speed or c.accuracy is None:
            continue
        rows = usable_rows(c, report.options.get("max_latency_ms")) or c.speed
        r = best_row(rows, report.options.get("objective", "throughput"))
        pts.append((r.throughput_clips_s, max(floor, 1 - c.accuracy.cosine_min)))
        labels.append(f"{c.label or f'{c.runner} {c.precision}'} b{r.batch}")
        passed.append(bool(c.gate and c.gate.passed))
        chosen.append(c.id == report.choice.candidate)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if not pts:  # nothing ran and was timed: an empty plot that says so (a log axis needs a point)
        ax.text(0.5, 0.5, "no candidate was measured (report.json says why)", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    # With many points only the frontier and the choice are named (the table names every candidate).
    front = pareto_front(pts)
    named = [i for i in range(len(pts)) if len(pts) <= LABEL_ALL or i in front or chosen[i]]
    # a label is about a seventh of the plot wide: lift it above earlier labels it would overlap
    width = 0.15 * ((max(x for x, _ in pts) - min(x for x, _ in pts)) if pts else 0.0)
    for i, ((x, y), label, ok) in enumerate(zip(pts, labels, passed, strict=True)):
        ax.scatter([x], [y], marker="o" if ok else "x", color="tab:blue" if ok else "tab:red", zorder=3)
        if i not in named:
            continue
        near = sum(1 for j in named if j < i and abs(pts[j][0] - x) <= max(width, 0.03 * max(x, pts[j][0]))
                   and abs(np.log10(pts[j][1] / y)) < 0.3)
        right = width > 0 and x > max(px for px, _ in pts) - width  # near the right edge: label to the left
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(-4 if right else 4, 4 + 9 * near),
                    ha="right" if right else "left", fontsize=7)
    if len(front) > 1:  # the boundary of what is reachable: each point's speed at its error or worse
        ax.step([pts[i][0] for i in front], [pts[i][1] for i in front], where="pre", color="grey", lw=1,
                label="Pareto frontier")
    for (x, y), ch in zip(pts, chosen, strict=True):
        if ch:
            ax.scatter([x], [y], marker="*", s=260, facecolors="none", edgecolors="gold", linewidths=1.6,
                       zorder=4, label="choice")
    ax.scatter([], [], marker="o", color="tab:blue", label="passes the gate")
    ax.scatter([], [], marker="x", color="tab:red", label="fails the gate")
    if pts:
        ax.set_yscale("log")
    ax.set_xlabel("throughput, clips/s (best batch within the budget)")
    ax.set_ylabel(f"1 - cosine min vs PyTorch FP32 (floor {floor:g})")
    ax.set_title(f"inti-export optimize: {report.model.get('preset')}", fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
