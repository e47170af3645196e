"""The optimize report: each candidate's status, accuracy, gate and speed, the choice, and reading
`OUT/report.json` back. Every field is described in docs/reports.md ("Optimize report")."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inti_export.errors import IntiExportError, one_line
from inti_export.runtime.timing import LatencyRow

OPTIMIZE_SCHEMA = "inti-export/optimize/1"


@dataclass
class Accuracy:
    """One candidate against the PyTorch FP32 model on the held-out clips."""

    clips: int
    cosine_min: float
    cosine_mean: float
    rel_err: float  # max |out - ref| / max |ref|
    top1_agreement: float
    top5_agreement: float
    head: str  # the model's own logits, or the fixed seeded head
    computed_by: str  # the runner that computed the outputs (the one that is timed), and how
    label_top1: float | None = None  # accuracy against the labels (with --labels), else None
    label_top5: float | None = None
    label_top1_drop_points: float | None = None  # PyTorch FP32's label top-1 minus this one's, in points


@dataclass
class Gate:
    passed: bool
    rule: str
    failures: list[str] = field(default_factory=list)


@dataclass
class Candidate:
    """One runner x precision (x INT8 variant x runner settings). `status` is a vocab.Status value: ok (made,
    run, measured), not run (made; this machine cannot run it), skipped (not made here: a missing module, or a
    precision the runner does not take), failed (making or running it raised); `reason` says why when not ok."""

    id: str
    runner: str
    precision: str
    status: str
    reason: str = ""
    artifact: str | None = None  # relative to OUT; None for PyTorch runners (the model comes from the preset)
    artifact_sha256: str | None = None
    accuracy: Accuracy | None = None
    speed: list[LatencyRow] = field(default_factory=list)
    sweep_stop: str = ""  # why the batch sweep stopped (empty with a fixed --batch list)
    command: str = ""  # the command that remakes this candidate (same key, so the same folder)
    environment: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # time to make it (0 when it came from the cache)
    cached: bool = False
    note: str = ""
    gate: Gate | None = None  # evaluated on every run from the current options; not cached
    variant: str | None = None  # the INT8 variant (jobs/optimize/variants.py), e.g. int8-u8s8-rr-pc-max; else None
    # how the runner was set up: threads (per session), sessions (run at once), ov_hint, ov_streams (OpenVINO)
    settings: dict[str, Any] = field(default_factory=dict)
    label: str = ""  # what the table and the plot call it: runner, variant (or precision), settings
    # INT8: the same artifact's accuracy as quantised (ORT as-quantized: Q/DQ kept, float between); not cached here
    accuracy_as_quantized: Accuracy | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        d = {k: v for k, v in d.items() if k in {f.name for f in dataclasses.fields(cls)}}
        d["accuracy"] = Accuracy(**d["accuracy"]) if d.get("accuracy") else None
        d["accuracy_as_quantized"] = Accuracy(**d["accuracy_as_quantized"]) if d.get("accuracy_as_quantized") else None
        d["gate"] = Gate(**d["gate"]) if d.get("gate") else None
        d["speed"] = [LatencyRow(**r) for r in d.get("speed", [])]
        return cls(**d)


@dataclass
class Choice:
    candidate: str | None  # the chosen candidate's id; None when nothing passed
    runner: str | None = None
    precision: str | None = None
    batch: int | None = None
    p50_ms: float | None = None
    throughput_clips_s: float | None = None
    reason: str = ""
    excluded: dict[str, str] = field(default_factory=dict)  # candidate id -> why it was not chosen
    variant: str | None = None  # the chosen candidate's INT8 variant
    settings: dict[str, Any] = field(default_factory=dict)  # and its runner settings
    label: str = ""


@dataclass
class OptimizeReport:
    model: dict[str, Any]
    options: dict[str, Any]
    clips: dict[str, Any]
    gate: str
    candidates: list[Candidate]
    choice: Choice
    environment: dict[str, Any]
    wall_s: float
    outputs: dict[str, str | None]
    notes: list[str] = field(default_factory=list)
    int8_variants: dict[str, Any] = field(default_factory=dict)  # requested, names, why (the rule), cpu flags seen
    settings_rule: str = ""  # which runner settings were tried, and why
    schema: str = OPTIMIZE_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def chosen(self) -> Candidate | None:
        """The chosen candidate, or None when nothing passed."""
        return next((c for c in self.candidates if c.id == self.choice.candidate), None)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OptimizeReport:
        if not isinstance(d, dict) or d.get("schema") != OPTIMIZE_SCHEMA:
            got = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise IntiExportError(f"not an optimize report of schema {OPTIMIZE_SCHEMA}: schema={got!r}")
        d = dict(d)
        d["candidates"] = [Candidate.from_dict(c) for c in d["candidates"]]
        d["choice"] = Choice(**d["choice"])
        return cls(**d)


def load_report(path: str | os.PathLike) -> OptimizeReport:
    """Read `OUT/report.json` back; one line if it is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise IntiExportError(f"cannot read optimize report {path}: {one_line(e)}") from e
    return OptimizeReport.from_dict(data)
