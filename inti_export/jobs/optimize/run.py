"""The optimize loop: the model and clips once, then every runner x precision as a cached unit, the gate
on each, one choice, and the outputs. A loop over the single commands' functions (units.py), not a
second implementation of them (docs/optimize.md).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from inti_export.errors import one_line
from inti_export.fileio import sha256_file, write_json
from inti_export.jobs.optimize.cache import Cache, content_key
from inti_export.jobs.optimize.choose import choose
from inti_export.jobs.optimize.clips import split_clips
from inti_export.jobs.optimize.gate import check_gate, fixed_head
from inti_export.jobs.optimize.options import OptimizeOptions, check_optimize_options
from inti_export.jobs.optimize.outputs import plot_pareto, write_best, write_triton_repo_of_choice
from inti_export.jobs.optimize.report import Candidate, OptimizeReport
from inti_export.jobs.optimize.units import TORCH_KINDS, Search, environment, export_unit, make_candidate, reference_unit
from inti_export.jobs.optimize.variants import DEFAULT_VARIANT, Int8Variant, pick_variants, runner_settings

logger = logging.getLogger(__name__)


def run_optimize(
    out: str | os.PathLike,
    opts: OptimizeOptions | None = None,
    *,
    on_event: Callable[[str, str, str], None] | None = None,
    cpuinfo: str | None = None,
    **kwargs: Any,
) -> OptimizeReport:
    """Search runners x precisions (x batch sizes) for `opts` (or `OptimizeOptions(**kwargs)`) into `out`.

    `on_event(kind, name, what)` is called as units start and finish ("making", "made", "cached";
    kind "candidate" once per candidate with its status; kind "plan" first, name the number of
    candidates), for a progress display. `cpuinfo` (the text of /proc/cpuinfo) overrides the CPU flags
    that `--int8-variants auto` reads.
    """
    import torch

    from inti_export.fileio import check_output_path
    from inti_export.jobs.inputs import check_weights, model_for

    start = time.perf_counter()
    opts = opts or OptimizeOptions(**kwargs)
    out = Path(out)
    check_optimize_options(out, opts)
    out.mkdir(parents=True, exist_ok=True)
    check_output_path(out / "report.json", "report")
    threads = opts.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    event = on_event or (lambda *a: None)

    model = model_for(opts.preset, opts.onnx, opts.checkpoint).eval()
    if opts.onnx is not None:
        check_weights(opts.onnx, lambda: model, opts.checkpoint)
    split = split_clips(model.cfg, opts.videos, opts.clips, opts.calib_clips, opts.labels)
    ckpt = sha256_file(opts.checkpoint) if opts.checkpoint else None
    if opts.onnx is not None:
        source = {"onnx_sha256": sha256_file(opts.onnx), "checkpoint_sha256": ckpt}
    else:
        source = {"preset": model.cfg.to_dict(), "checkpoint_sha256": ckpt}
    env = environment(threads)
    head, head_text = fixed_head(model.cfg)
    search = Search(opts, out, Cache(out, event), model, split, source, env, content_key(env), head, head_text)

    if any(not r.startswith("torch") for r in opts.runners):
        export_unit(search)
    reference_unit(search)
    variants = pick_variants(opts.int8_variants, cpuinfo)
    planned = plan(opts, threads, [Int8Variant.parse(n) for n in variants.names])
    event("plan", str(len(planned)), "")
    candidates = []
    for kind, precision, variant, settings in planned:
        event("candidate", f"{kind}-{variant.name if variant else precision}", "start")
        c = make_candidate(search, kind, precision, variant, settings)
        if c.accuracy is not None:
            c.gate = check_gate(c.accuracy, precision, opts.min_cosine, opts.min_top1,
                                opts.max_top1_drop if opts.labels is not None else None)
        candidates.append(c)
        event("candidate", c.id, c.status if not c.cached else "cached")
    report = _report(search, candidates)
    report.int8_variants = asdict(variants)
    report.settings_rule = SETTINGS_RULE.format(threads=threads, objective=opts.objective)
    report.notes.extend(search.notes)
    if report.choice.candidate is not None:
        report.outputs["best"] = str(write_best(out, report))
        if opts.triton_repo is not None:
            report.outputs["triton_repo"] = write_triton_repo_of_choice(out, report, opts.triton_repo)
    try:  # the plot is a view of the report: never lose the report to it
        plot_pareto(report, out / "pareto.png")
    except Exception as e:  # matplotlib raises many types; the note says which
        logger.debug("pareto.png not drawn", exc_info=True)
        report.notes.append(f"pareto.png not drawn: {type(e).__name__}: {one_line(e)}")
        report.outputs["pareto"] = None
    report.wall_s = round(time.perf_counter() - start, 2)
    data = json.loads(json.dumps(report.to_dict(), default=str))
    write_json(out / "report.json", data)
    return OptimizeReport.from_dict(data)  # what report.json holds


SETTINGS_RULE = ("ort and ov: with --objective throughput, N sessions x ({threads} threads / N) each, run at once on"
                 " disjoint clips with clips/s counted (N from --sessions, default 1 and {threads}); one session with"
                 " every thread for the latency objective (this search: {objective}); OpenVINO: latency hint"
                 " for one session, throughput hint and one stream each for N > 1; other runners: one session")
CPU_RUNNERS = ("ort", "ov")  # the runners whose INT8 variants and settings are searched


def plan(opts: OptimizeOptions, threads: int, variants: list[Int8Variant]) -> list[tuple[str, str, Any, dict]]:
    """(runner, precision, INT8 variant or None, settings) of every candidate, in the order they are made.
    The INT8 variants apply to the CPU runners (ort, ov); other runners take INT8 as `calibrate -p int8`
    writes it (TensorRT's symmetric s8s8); PyTorch takes no INT8 (listed skipped)."""
    out = []
    for kind in opts.runners:
        for precision in opts.precisions:
            vs = variants if kind in CPU_RUNNERS else [DEFAULT_VARIANT]
            for v in vs if precision == "int8" and kind not in TORCH_KINDS else [None]:
                for s in runner_settings(kind, opts.objective, threads, opts.sessions):
                    out.append((kind, precision, v, s))
    return out


def _report(search: Search, candidates: list[Candidate]) -> OptimizeReport:
    """The report of the candidates, with the choice and the gate that applied; outputs not yet written."""
    opts, out, model = search.opts, search.out, search.model
    gate = ("--min-cosine/--min-top1 for every precision" if opts.min_cosine is not None or opts.min_top1 is not None
            else "each precision's tolerance preset (checks/compare.py TOLERANCES)")
    if opts.labels is not None:
        gate += f"; top-1 against the labels at most {opts.max_top1_drop:g} points below PyTorch FP32 (--max-top1-drop)"
    report = OptimizeReport(
        model={"preset": model.cfg.name, "onnx": str(opts.onnx) if opts.onnx else None,
               "checkpoint": str(opts.checkpoint) if opts.checkpoint else None,
               "fp32_onnx": str(search.fp32_onnx) if search.fp32_onnx else None, "output": model.output_name},
        options={k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items()},
        clips=search.split.describe(), gate=gate, candidates=candidates,
        choice=choose(candidates, opts.objective, opts.max_latency_ms), environment=search.env, wall_s=0.0,
        outputs={"report": str(out / "report.json"), "pareto": str(out / "pareto.png"), "best": None,
                 "triton_repo": None},
    )
    if any(c.note for c in candidates):
        report.notes.append("ORT candidates are measured as ONNX Runtime executes them (the runner that is timed)")
    return report
