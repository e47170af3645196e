"""optimize's INT8 variants and runner settings (issue 27): the auto rule from the CPU's flags, a failing
variant never chosen, OpenVINO against ONNX Runtime, settings and variants in the cache key, a real search."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import IntiExportError
from inti_export.jobs.optimize import Accuracy, Candidate, LatencyRow, check_gate, choose, run_optimize
from inti_export.jobs.optimize.variants import ALL_VARIANTS, Int8Variant, pick_variants, runner_settings

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
VNNI = AVX2.replace("avx2", "avx2 avx512f avx512_vnni")
QUICK = {"batches": (1,), "iters": 1, "warmup": 0, "clips": 2, "calib_clips": 2}


class Events:
    def __init__(self):
        self.seen = []

    def __call__(self, kind, name, what):
        self.seen.append((kind, name, what))

    def units(self, what, sub="candidates"):
        return sorted(name.split("/")[1].rsplit("-", 1)[0] for kind, name, w in self.seen if kind == sub and w == what)


def test_auto_picks_by_vnni_and_says_why():
    with_vnni = pick_variants("auto", VNNI, "x86_64")
    without = pick_variants("auto", AVX2, "x86_64")
    assert set(with_vnni.names) != set(without.names)
    assert with_vnni.names == ["int8-u8s8-pc-max", "int8-s8s8-pc-max"]  # fused kernels exact enough with VNNI
    assert "avx512_vnni" in with_vnni.why and with_vnni.cpu["vnni"] is True
    # without VNNI: only the variants that avoid u8s8's saturation (7-bit weights, or u8u8)
    assert all("-rr-" in n or n.startswith("int8-u8u8") for n in without.names) and len(without.names) <= 3
    assert "without VNNI" in without.why and without.cpu["saturation_risk"] is True
    unknown = pick_variants("auto", "Features\t: fp asimd\n", "aarch64")
    assert unknown.cpu["vnni"] is None and unknown.names
    every = pick_variants("all")
    assert len(every.names) == len(set(every.names)) == len(ALL_VARIANTS) == 36
    assert {Int8Variant.parse(n).name for n in every.names} == set(every.names)  # names round-trip
    assert pick_variants("int8-u8s8-rr-pc-max, int8-u8u8-pt-entropy").names == ["int8-u8s8-rr-pc-max",
                                                                                 "int8-u8u8-pt-entropy"]
    assert Int8Variant.parse("int8-u8s8-rr-pt-percentile").convert_kwargs()["per_channel"] is False
    for bad in ("int8-s8u8-pc-max", "int8-u8s8-pc-minmax", "fast"):  # s8u8: ORT has no kernels for it
        with pytest.raises(IntiExportError, match="int8-u8s8-rr-pc-max"):
            pick_variants(bad)


def test_settings_by_objective():
    assert [(s["sessions"], s["threads"]) for s in runner_settings("ort", "throughput", 2, None)] == [(1, 2), (2, 1)]
    ov = runner_settings("ov", "throughput", 2, None)
    assert [(s["ov_hint"], s["ov_streams"]) for s in ov] == [("latency", None), ("throughput", 1)]
    assert [s["sessions"] for s in runner_settings("ort", "latency", 2, None)] == [1]  # latency: one session
    assert [s["sessions"] for s in runner_settings("torch", "throughput", 2, None)] == [1]
    assert [s["sessions"] for s in runner_settings("ort", "throughput", 4, (1, 2, 8))] == [1, 2]  # >= 1 thread each


def _candidate(cid, cosine, clips_s, precision="int8"):
    acc = Accuracy(4, cosine, cosine, 1 - cosine, 1.0, 1.0, "head", "ort-cpu (as executed)")
    row = LatencyRow(1, 5, 1, 1e3 / clips_s, 1e3 / clips_s, 1e3 / clips_s, 1e3 / clips_s, 1e3 / clips_s, clips_s)
    c = Candidate(cid, "ort", precision, "ok", accuracy=acc, speed=[row], variant=cid.split("ort-")[1],
                  settings={"threads": 2, "sessions": 1, "ov_hint": None, "ov_streams": None}, label=cid)
    c.gate = check_gate(acc, precision, None, None)
    return c


def test_a_failing_variant_is_never_chosen_even_when_fastest():
    fast_bad = _candidate("ort-int8-u8s8-pc-max", 0.9868, 0.43)  # as executed without VNNI: saturated
    slow_good = _candidate("ort-int8-s8s8-rr-pc-max", 0.9997, 0.39)
    fp32 = _candidate("ort-fp32", 1.0, 0.28, "fp32")
    choice = choose([fast_bad, slow_good, fp32], "throughput", None)
    assert choice.candidate == slow_good.id and choice.variant == "int8-s8s8-rr-pc-max"
    assert choice.settings == slow_good.settings and choice.batch == 1
    assert choice.excluded[fast_bad.id].startswith("fails the accuracy gate: cosine min 0.986800 < 0.99")
    assert choose([fast_bad], "latency", None).candidate is None


def test_a_throughput_tie_goes_to_the_lower_latency():
    """Two sessions of one thread 1 % faster than one session of two is noise: the lower p50 wins."""
    one = _candidate("ort-int8-s8s8-pc-max", 0.9999, 1.85)
    two = _candidate("ort-int8-s8s8-pc-max-s2", 0.9999, 1.87)
    two.speed[0].p50_ms = 2 * one.speed[0].p50_ms  # each of two sessions takes twice as long per clip
    assert choose([two, one], "throughput", None).candidate == one.id
    three = _candidate("ort-int8-u8s8-pc-max-s2", 0.9999, 1.95)  # 5 % faster: a real win
    three.speed[0].p50_ms = 2 * one.speed[0].p50_ms
    assert choose([two, one, three], "throughput", None).candidate == three.id


def test_openvino_outputs_match_ort_within_fp32_tolerance(tiny_onnx, tiny_clips):
    clips = tiny_clips.clips  # (4, 8, 3, 32, 32)
    pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'inti-export[openvino]'")
    from inti_export.checks.compare import get_tolerance
    from inti_export.jobs.optimize.speed import infer_sessions
    from inti_export.metrics import cosine_per_sample
    from inti_export.runtime.ort_runner import OrtRunner
    from inti_export.runtime.ov_runner import OvRunner

    tol = get_tolerance("fp32")
    with OrtRunner(tiny_onnx.onnx_path, threads=2) as ort:
        ref = infer_sessions([ort], clips, 2)  # (4, E)
    runners = [OvRunner(tiny_onnx.onnx_path, threads=1, hint="throughput", streams=1) for _ in range(2)]
    for r in runners:
        r.activate()
    try:
        out = infer_sessions(runners, clips, 1)  # two sessions at once, clips 0, 2 and 1, 3
    finally:
        for r in runners:
            r.deactivate()
    assert cosine_per_sample(out, ref).min() >= tol.cosine
    assert np.abs(out - ref).max() / np.abs(ref).max() <= tol.rel_err


def test_settings_and_variant_change_the_cache_key(tmp_path, tiny_onnx):
    out = tmp_path / "out"
    opts = dict(onnx=tiny_onnx.onnx_path, runners=("ort",), precisions=("fp32", "int8"), **QUICK)
    first = Events()
    run_optimize(out, on_event=first, sessions=(1,), int8_variants="int8-s8s8-pc-max", **opts)
    assert first.units("made") == ["ort-fp32", "ort-int8-s8s8-pc-max"]
    again = Events()
    report = run_optimize(out, on_event=again, sessions=(1, 2), int8_variants="int8-s8s8-pc-max,int8-u8u8-pt-max",
                          **opts)
    assert again.units("cached") == ["ort-fp32", "ort-int8-s8s8-pc-max"]
    assert again.units("made") == ["ort-fp32-s2", "ort-int8-s8s8-pc-max-s2", "ort-int8-u8u8-pt-max",
                                   "ort-int8-u8u8-pt-max-s2"]
    assert again.units("made", "artifacts") == ["onnx-int8-u8u8-pt-max"]  # a new variant: a new conversion
    keys = {json.dumps(c.settings, sort_keys=True) for c in report.candidates}
    assert len(keys) == 2 and {c.settings["sessions"] for c in report.candidates} == {1, 2}


def test_search_over_variants_names_them_everywhere(tmp_path, tiny_onnx):
    """A real search: ORT INT8 over variants covering every dimension (the 36 of `all` take ~30 s on
    test-tiny: a subset keeps it quick), batch 1, one timed run."""
    out = tmp_path / "out"
    names = "int8-s8s8-rr-pt-entropy,int8-u8u8-pc-percentile,int8-u8s8-pc-max"
    res = CliRunner().invoke(app, ["optimize", "--onnx", str(tiny_onnx.onnx_path), "--runners", "ort", "--precisions",
                                   "int8", "--int8-variants", names, "--batch", "1", "--iters", "1", "--warmup", "0",
                                   "--clips", "2", "--calib-clips", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["int8_variants"]["names"] == names.split(",") and report["settings_rule"]
    cands = report["candidates"]
    assert {c["variant"] for c in cands} == set(names.split(",")) and len(cands) == 6  # x {1x2, 2x1}
    for c in cands:
        assert c["status"] == "ok" and c["variant"] in c["id"] and c["variant"] in c["label"]
        assert c["accuracy"]["cosine_min"] > 0.99 and c["accuracy_as_quantized"]["cosine_min"] > 0.99
        assert "as quantized" in c["accuracy_as_quantized"]["computed_by"]
        assert f"--int8-variants {c['variant']} --sessions {c['settings']['sessions']}" in c["command"]
    best = json.loads((out / "best" / "candidate.json").read_text())
    assert best["candidate"]["variant"] in names and best["choice"]["batch"] == 1
    assert set(best["candidate"]["settings"]) == {"threads", "sessions", "ov_hint", "ov_streams"}
    assert best["candidate"]["runner"] == "ort" and best["candidate"]["precision"] == "int8"
    assert best["candidate"]["label"] in res.output  # the table names the choice by its label
    # the command in best/ remakes exactly the choice: every unit cached
    command = (out / "best" / "command.txt").read_text().split()
    again = CliRunner().invoke(app, command[1:])
    assert again.exit_code == 0, again.output
    assert ": cached" in again.output and ": ok" not in again.output.replace("ok (cached)", "")
    assert json.loads((out / "best" / "candidate.json").read_text())["candidate"]["id"] == best["candidate"]["id"]


def test_bad_variant_or_sessions_is_one_line(tmp_path):
    for args, message in ((["--int8-variants", "int8-s8u8-pc-max"], "int8-s8u8-pc-max"),
                          (["--sessions", "0"], "--sessions")):
        res = CliRunner().invoke(app, ["optimize", "--preset", "test-tiny", "-o", str(tmp_path / "out"), *args])
        assert_one_line_error(res, message)
        assert not (tmp_path / "out").exists()
