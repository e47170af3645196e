"""`optimize`: every runner x precision made once, checked against PyTorch FP32 on held-out clips,
timed over batch sizes; the fastest candidate that passes the accuracy gate is chosen.

    run_optimize(OUT, OptimizeOptions(preset="inti-b16", runners=("torch", "ort"))) -> OptimizeReport

A loop over the single commands' functions, not a second implementation of them: `export_preset`
(onnx), `convert_precision` (calibrate), `build_engine` (trt), the runners and `time_runs` (runtime/timing.py).
Every unit of work is cached in a folder named by a content hash of its inputs and settings (cache.py):

    OUT/artifacts/<kind>-<hash>/                     the FP32 export, each precision's ONNX, engines,
                                                      the PyTorch FP32 outputs on the held-out clips
    OUT/candidates/<runner>-<precision>-<hash>/      record.json: status, accuracy, speed, command

A folder counts as finished only when its `record.json`, written last, carries the folder's key, the
sha256 of every file the unit made or read (and those files still hash the same) and a seal (the
sha256 of the record's own content); any other folder is removed and remade. The layout and
`OUT/report.json` are described in docs/reports.md, the method and how it compares with Triton Model
Navigator in docs/optimize.md.

One module per job: report (the dataclasses and `load_report`), options (`OptimizeOptions` and its
check), cache, clips (the held-out/calibration split), gate (accuracy and the gate), speed (the batch
sweep), choose, units (the artifacts and candidates), outputs (best/, the Triton repository, the
table, the Pareto plot) and run (the loop). This module re-exports the public API.
"""

from inti_export.jobs.optimize.cache import Cache, content_key
from inti_export.jobs.optimize.choose import choose
from inti_export.jobs.optimize.clips import ClipSplit, split_clips
from inti_export.jobs.optimize.gate import accuracy, check_gate, gate_rule
from inti_export.jobs.optimize.options import OptimizeOptions, check_optimize_options
from inti_export.jobs.optimize.outputs import candidate_table, pareto_front, plot_pareto, write_best
from inti_export.jobs.optimize.report import (
    OPTIMIZE_SCHEMA,
    Accuracy,
    Candidate,
    Choice,
    Gate,
    OptimizeReport,
    load_report,
)
from inti_export.jobs.optimize.run import run_optimize
from inti_export.jobs.optimize.speed import measure_speed
from inti_export.runtime.timing import LatencyRow

__all__ = [
    "OPTIMIZE_SCHEMA", "Accuracy", "Cache", "Candidate", "Choice", "ClipSplit", "Gate", "LatencyRow", "OptimizeOptions",
    "OptimizeReport", "accuracy", "candidate_table", "check_gate", "check_optimize_options", "choose", "content_key",
    "gate_rule", "load_report", "measure_speed", "pareto_front", "plot_pareto", "run_optimize", "split_clips",
    "write_best",
]
