"""What optimize varies besides runner and precision: INT8 variants and runner settings.

    pick_variants("auto", cpuinfo, machine) -> VariantChoice(names, why, cpu)   the INT8 set, and why
    Int8Variant.parse("int8-u8s8-rr-pc-max").convert_kwargs()                 -> convert_precision's options
    runner_settings(runner, objective, threads, sessions)                     -> [Settings dict per candidate]

A variant's name says what it is: `int8-<activation><weight>[-rr]-<pc|pt>-<method>` (u8s8: unsigned
activations, signed weights; rr: reduce_range, 7-bit weights; pc/pt: weight scales per channel or per
tensor; max/entropy/percentile: the activation range calibration). docs/optimize.md, "INT8 variants".
"""

from __future__ import annotations

import itertools
import platform
import re
from dataclasses import dataclass, field
from typing import Any

from inti_export.errors import IntiExportError
from inti_export.vocab import CalibrationMethod, Int8Type, Int8Variants, Objective, values

# The pairs ONNX Runtime quantizes and runs (s8 activations with u8 weights: no kernels).
TYPE_PAIRS = (("s8", "s8"), ("u8", "s8"), ("u8", "u8"))
_NAME = re.compile(r"^int8-(s8|u8)(s8|u8)(-rr)?-(pc|pt)-(max|entropy|percentile)$")


@dataclass(frozen=True)
class Int8Variant:
    """One INT8 conversion of `convert_precision` (ORT backend)."""

    activation: str = "s8"
    weight: str = "s8"
    reduce_range: bool = False
    per_channel: bool = True
    method: str = "max"

    @property
    def name(self) -> str:
        rr = "-rr" if self.reduce_range else ""
        return f"int8-{self.activation}{self.weight}{rr}-{'pc' if self.per_channel else 'pt'}-{self.method}"

    @classmethod
    def parse(cls, name: str) -> Int8Variant:
        m = _NAME.match(name.strip())
        if not m or (m[1], m[2]) not in TYPE_PAIRS:
            raise IntiExportError(
                f"INT8 variant {name!r}: use auto, all, or names int8-<s8s8|u8s8|u8u8>[-rr]-<pc|pt>-<max|entropy|"
                "percentile>, e.g. int8-u8s8-rr-pc-max"
            )
        return cls(m[1], m[2], bool(m[3]), m[4] == "pc", m[5])

    def convert_kwargs(self) -> dict[str, Any]:
        """The options of `convert_precision` (and `inti-export calibrate`) that make this variant."""
        return {"activation_type": Int8Type(self.activation), "weight_type": Int8Type(self.weight),
                "reduce_range": self.reduce_range, "per_channel": self.per_channel,
                "method": CalibrationMethod(self.method)}

    def calibrate_flags(self) -> str:
        """The same as `inti-export calibrate` flags."""
        return (f"--activation-type {self.activation} --weight-type {self.weight}" + (" --reduce-range" if
                self.reduce_range else "") + ("" if self.per_channel else " --per-tensor") + f" --method {self.method}")


DEFAULT_VARIANT = Int8Variant()  # what `calibrate -p int8` writes; TensorRT's symmetric S8 format
# every combination ORT supports: 3 type pairs x reduce_range x per-channel/per-tensor x 3 methods = 36
ALL_VARIANTS = tuple(Int8Variant(a, w, rr, pc, m) for (a, w), rr, pc, m in itertools.product(
    TYPE_PAIRS, (False, True), (True, False), values(CalibrationMethod)))
# With VNNI (VPDPBUSD, 32-bit sums) the fused u8s8 kernels do not saturate: full-range weights are exact enough.
VNNI_SET = (Int8Variant("u8", "s8"), Int8Variant("s8", "s8"))
# Without VNNI, ORT's u8s8 kernels (AVX2 VPMADDUBSW, 16-bit pair sums; s8s8 runs through them too) can
# saturate with full-range weights: 7-bit weights (reduce_range) or u8u8 (another kernel) avoid it.
NO_VNNI_SET = (Int8Variant("s8", "s8", True), Int8Variant("u8", "s8", True), Int8Variant("u8", "u8"))


@dataclass
class VariantChoice:
    """The INT8 variants a search tries, and why (recorded in the report)."""

    requested: str
    names: list[str]
    why: str
    cpu: dict[str, Any] = field(default_factory=dict)


def pick_variants(requested: str, cpuinfo: str | None = None, machine: str | None = None) -> VariantChoice:
    """The variants of `requested` (auto, all, or comma-separated names); `auto` reads the CPU's flags
    (`cpuinfo`: the text of /proc/cpuinfo, read when None) through `int8_support_from`."""
    from inti_export.runtime.cpu import cpuinfo_text
    from inti_export.runtime.ort_runner import int8_support_from

    requested = requested.strip()
    if requested == Int8Variants.all.value:
        return VariantChoice(requested, [v.name for v in ALL_VARIANTS],
                             f"all: every variant ONNX Runtime supports ({len(ALL_VARIANTS)}: s8s8, u8s8, u8u8 x"
                             " reduce_range or not x per-channel or per-tensor x max, entropy, percentile)")
    if requested != Int8Variants.auto.value:
        names = [Int8Variant.parse(n).name for n in requested.split(",") if n.strip()]
        if not names:
            raise IntiExportError(f"--int8-variants {requested!r}: give auto, all, or variant names")
        return VariantChoice(requested, list(dict.fromkeys(names)), "named on the command line")
    cpu = int8_support_from(cpuinfo_text() if cpuinfo is None else cpuinfo, machine or platform.machine())
    if cpu["vnni"]:
        chosen = VNNI_SET
        why = (f"auto: the CPU has VNNI ({', '.join(cpu['vnni_flags'])}): ONNX Runtime's fused INT8 kernels sum in"
               " 32 bits and do not saturate, so the full-range variants are exact enough: u8s8 (its fastest path) and"
               " s8s8 (the TensorRT format), per-channel, max calibration")
    elif cpu["saturation_risk"]:
        chosen = NO_VNNI_SET
        why = ("auto: x86 without VNNI (no avx512_vnni, avx_vnni or amx_int8 among the flags): ONNX Runtime's u8s8"
               " kernels (AVX2 VPMADDUBSW, 16-bit pair sums; s8s8 is run through them) can saturate with full-range"
               " weights, so the variants that avoid it: 7-bit weights (s8s8-rr, u8s8-rr) and u8u8 (no saturating"
               " path), per-channel, max calibration")
    else:
        chosen = (DEFAULT_VARIANT, Int8Variant("s8", "s8", True))
        why = (f"auto: VNNI cannot be told on {cpu['machine']!r} (no x86 flags): the default s8s8 and its"
               " reduce_range twin, per-channel, max calibration")
    return VariantChoice(requested, [v.name for v in chosen], why, cpu)


def check_variants(requested: str) -> None:
    """A one-line error for a bad --int8-variants value (before any work)."""
    if requested.strip() not in values(Int8Variants):
        pick_variants(requested)


def runner_settings(runner: str, objective: str, threads: int, sessions: tuple[int, ...] | None) -> list[dict[str, Any]]:
    """The settings a runner is timed with: N sessions x (threads // N) threads each, for the throughput
    objective (default N in {1, threads}); the latency objective and non-CPU runners take one session with
    every thread. OpenVINO: one session with the latency hint; N > 1 sessions with the throughput hint, one
    stream each."""
    cpu_runner = runner in ("ort", "ov")
    counts = (1,)
    if cpu_runner and objective == Objective.throughput.value:
        counts = tuple(sorted(set(sessions if sessions else (1, threads))))
    out = []
    for n in counts:
        if n > threads:
            continue  # fewer than one thread each
        s: dict[str, Any] = {"threads": threads // n if cpu_runner else threads, "sessions": n,
                             "ov_hint": None, "ov_streams": None}
        if runner == "ov":
            s["ov_hint"], s["ov_streams"] = ("latency", None) if n == 1 else ("throughput", 1)
        out.append(s)
    return out or [{"threads": threads, "sessions": 1, "ov_hint": "latency" if runner == "ov" else None,
                    "ov_streams": None}]


def settings_label(s: dict[str, Any]) -> str:
    """`2x1` (sessions x threads), with OpenVINO's hint: `2x1 throughput`."""
    return f"{s['sessions']}x{s['threads']}" + (f" {s['ov_hint']}" if s.get("ov_hint") else "")
