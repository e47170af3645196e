"""optimize on test-tiny: the gate decides, the cache resumes and distrusts damaged units, the report reads back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import IntiExportError
from inti_export.fileio import sha256_file
from inti_export.jobs.optimize import (
    OPTIMIZE_SCHEMA,
    OptimizeReport,
    candidate_table,
    load_report,
    pareto_front,
    run_optimize,
)

# run_emulated: PyTorch FP16 runs here even on a CPU that emulates it (test-tiny is small enough)
FAST = {"batches": (1, 2), "iters": 2, "warmup": 1, "clips": 3, "calib_clips": 2, "run_emulated": True,
        "sessions": (1,)}  # one session per runner: the multi-session settings are tested in test_optimize_variants.py


class Events:
    """Records (kind, name, what) from run_optimize; can interrupt at a chosen event."""

    def __init__(self, stop_at=None):
        self.seen: list[tuple[str, str, str]] = []
        self.stop_at = stop_at

    def __call__(self, kind, name, what):
        self.seen.append((kind, name, what))
        if self.stop_at and self.stop_at(kind, name, what, self.seen):
            raise KeyboardInterrupt

    def units(self, what):
        return sorted(name for kind, name, w in self.seen if kind in ("artifacts", "candidates") and w == what)


@pytest.fixture(scope="module")
def base(tmp_path_factory, tiny_onnx):
    """One search over torch and ort at fp32 and fp16, from the session's test-tiny ONNX."""
    out = tmp_path_factory.mktemp("optimize") / "out"
    events = Events()
    report = run_optimize(out, onnx=tiny_onnx.onnx_path, runners=("torch", "ort"), precisions=("fp32", "fp16"),
                          on_event=events, **FAST)
    return out, report, events


def _copy(base, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(base[0], out)
    return out


def _rerun(out, tiny_onnx, **extra):
    events = Events()
    opts = dict(onnx=tiny_onnx.onnx_path, runners=("torch", "ort"), precisions=("fp32", "fp16"), **FAST)
    return run_optimize(out, on_event=events, **{**opts, **extra}), events


def _by(report, runner, precision):
    return next(c for c in report.candidates if c.runner == runner and c.precision == precision)


def test_search_report_reads_back(base):
    out, report, _ = base
    assert report.schema == OPTIMIZE_SCHEMA
    back = load_report(out / "report.json")
    assert back.to_dict() == report.to_dict()
    assert {(c.runner, c.precision, c.status) for c in report.candidates} == {
        (r, p, "ok") for r in ("torch", "ort") for p in ("fp32", "fp16")}
    for c in report.candidates:
        assert [r.batch for r in c.speed] == [1, 2] and all(0 < r.min_ms <= r.p50_ms <= r.p99_ms for r in c.speed)
        assert c.reason == ""
        assert c.accuracy.clips == 3 and c.gate.passed, c.gate
        assert c.command.startswith("inti-export optimize --onnx") and f"--runners {c.runner} " in c.command
        assert c.environment["threads"] >= 1 and "onnxruntime" in c.environment["versions"]
    # held-out clips never come from the calibration videos
    held = {n.split("#")[0] for n in report.clips["heldout"]}
    cal = {n.split("#")[0] for n in report.clips["calibration"]}
    assert held and cal and not held & cal
    chosen = next(c for c in report.candidates if c.id == report.choice.candidate)
    best_row = max((r for c in report.candidates for r in c.speed), key=lambda r: r.throughput_clips_s)
    assert report.choice.throughput_clips_s == best_row.throughput_clips_s and chosen.gate.passed
    assert set(report.choice.excluded) == {c.id for c in report.candidates} - {chosen.id}
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the speed rows are the latency row bench reports too (runtime/timing.py), keys unchanged
    row = json.loads((out / "report.json").read_text())["candidates"][0]["speed"][0]
    assert list(row) == ["batch", "iters", "warmup", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms",
                         "throughput_clips_s"]
    cols, rows = candidate_table(report)
    assert len(rows) == 2 * len(report.candidates) and cols[-1] == "clips/s"
    assert sum(r[0].startswith("* ") for r in rows) == 1
    assert (out / "best" / "command.txt").read_text().strip() == chosen.command
    if chosen.artifact:
        assert sha256_file(out / "best" / chosen.artifact.split("/")[-1]) == chosen.artifact_sha256
    with pytest.raises(IntiExportError, match="schema"):
        OptimizeReport.from_dict({**report.to_dict(), "schema": "inti-export/bench/1"})


def _fast_wrong_onnx(path, dim):
    """A graph with the model's I/O that is far faster and far from it: mean colour -> random projection."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((3, dim)).astype(np.float32), "w")
    axes = numpy_helper.from_array(np.array([1, 3, 4], dtype=np.int64), "axes")
    nodes = [helper.make_node("ReduceMean", ["video", "axes"], ["m"], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["embedding"])]
    graph = helper.make_graph(nodes, "wrong", [helper.make_tensor_value_info("video", TensorProto.FLOAT, ["B", 8, 3, 32, 32])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["B", dim])], [w, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))


def test_injected_fast_wrong_candidate_fails_gate_and_is_not_chosen(base, tmp_path, tiny_onnx, tiny_model):
    out = _copy(base, tmp_path)
    # a converter that wrote a wrong (and much faster) FP16 file: injected, and its unit's record re-sealed
    (unit,) = (out / "artifacts").glob("onnx-fp16-*")
    _fast_wrong_onnx(unit / "model.fp16.onnx", tiny_model.cfg.embed_dim)
    from inti_export.jobs.optimize import content_key

    rec = json.loads((unit / "record.json").read_text())
    rec["files"]["artifacts/" + unit.name + "/model.fp16.onnx"] = sha256_file(unit / "model.fp16.onnx")
    rec.pop("record_sha256")
    rec["record_sha256"] = content_key(rec)
    (unit / "record.json").write_text(json.dumps(rec))
    report, events = _rerun(out, tiny_onnx)
    wrong = _by(report, "ort", "fp16")
    assert any(n.startswith("candidates/ort-fp16") for n in events.units("made"))  # its recorded input hash changed
    assert not wrong.gate.passed and wrong.accuracy.cosine_min < 0.9
    fastest = max((r.throughput_clips_s, c.id) for c in report.candidates for r in c.speed)
    assert fastest[1] == wrong.id  # the fastest of all ...
    assert report.choice.candidate != wrong.id  # ... and not chosen
    assert report.choice.excluded[wrong.id].startswith("fails the accuracy gate: cosine min")


def test_interrupted_run_resumes_with_only_the_missing_candidates(tmp_path, tiny_onnx):
    out = tmp_path / "out"
    opts = dict(onnx=tiny_onnx.onnx_path, runners=("torch", "ort"), precisions=("fp32",), **FAST)

    def second_candidate_half_made(kind, name, what, seen):  # killed while the second candidate is being made
        return kind == "candidates" and what == "making" and name.startswith("candidates/ort-fp32")

    first = Events(second_candidate_half_made)
    with pytest.raises(KeyboardInterrupt):
        run_optimize(out, on_event=first, **opts)
    assert first.units("made") == sorted(
        n for n in first.units("made") if n.startswith(("artifacts/reference", "candidates/torch-fp32")))
    (half,) = (out / "candidates").glob("ort-fp32-*")
    assert not (half / "record.json").exists()
    again = Events()
    report = run_optimize(out, on_event=again, **opts)
    assert [n.split("-")[0] for n in again.units("cached")] == ["artifacts/reference", "candidates/torch"]
    assert [n.split("/")[1].rsplit("-", 1)[0] for n in again.units("made")] == ["ort-fp32"]
    assert all(c.status == "ok" for c in report.candidates)
    assert _by(report, "torch", "fp32").cached and not _by(report, "ort", "fp32").cached


def test_corrupted_cache_is_detected_by_hash_and_remade(base, tmp_path, tiny_onnx):
    out = _copy(base, tmp_path)
    (cand,) = (out / "candidates").glob("ort-fp32-*")
    rec = json.loads((cand / "record.json").read_text())
    rec["accuracy"]["cosine_min"] = 0.5  # an edited figure: the seal no longer matches
    (cand / "record.json").write_text(json.dumps(rec))
    (torch_cand,) = (out / "candidates").glob("torch-fp16-*")
    text = (torch_cand / "record.json").read_text()
    (torch_cand / "record.json").write_text(text[: len(text) // 2])  # half-written
    (conv,) = (out / "artifacts").glob("onnx-fp16-*")
    with open(conv / "model.fp16.onnx", "ab") as f:  # a damaged artifact file
        f.write(b"\0")
    report, events = _rerun(out, tiny_onnx)
    made = {n.split("/")[1].rsplit("-", 1)[0] for n in events.units("made")}
    assert {"ort-fp32", "torch-fp16", "onnx-fp16"} <= made
    assert {n.split("/")[1].rsplit("-", 1)[0] for n in events.units("cached")} >= {"torch-fp32", "reference"}
    assert _by(report, "ort", "fp32").accuracy.cosine_min > 0.9999
    assert sha256_file(conv / "model.fp16.onnx") == json.loads((conv / "record.json").read_text())["files"][
        f"artifacts/{conv.name}/model.fp16.onnx"]


def test_max_latency_excludes_slower_candidates(base, tmp_path, tiny_onnx):
    out = _copy(base, tmp_path)
    fastest = {c.id: min(r.p50_ms for r in c.speed) for c in base[1].candidates}
    lo, hi = min(fastest.values()), max(fastest.values())
    assert hi > lo * 1.5, fastest  # torch FP16 on a CPU is far slower than ONNX Runtime FP32
    budget = (lo * hi) ** 0.5
    report, events = _rerun(out, tiny_onnx, max_latency_ms=budget)
    assert not events.units("made")  # a new budget re-decides from the cache
    slow = [cid for cid, p in fastest.items() if p > budget]
    assert slow
    for cid in slow:
        assert "over --max-latency-ms" in report.choice.excluded[cid]
    assert report.choice.candidate not in slow and report.choice.p50_ms <= budget


def test_batch_sweep_doubles_until_gain_stops(tmp_path, tiny_onnx):
    report = run_optimize(tmp_path / "out", onnx=tiny_onnx.onnx_path, runners=("ort",), precisions=("fp32",),
                          iters=2, warmup=1, clips=2, calib_clips=1, sessions=(1,))
    (c,) = report.candidates
    batches = [r.batch for r in c.speed]
    assert batches == [2**i for i in range(len(batches))] and c.sweep_stop
    if len(batches) > 1 and "gain" in c.sweep_stop:
        assert c.speed[-1].throughput_clips_s < c.speed[-2].throughput_clips_s * 1.05


def test_unrunnable_candidates_are_listed_and_never_chosen(tmp_path, tiny_onnx, tiny_engine):
    import torch

    if torch.cuda.is_available():
        pytest.skip("has a GPU: TensorRT runs here, the not-run path is not taken")
    if tiny_engine is None:
        pytest.skip("no TensorRT module to build an engine with")
    report = run_optimize(tmp_path / "out", onnx=tiny_onnx.onnx_path, runners=("trt", "torch"),
                          precisions=("fp32", "int8"), **FAST)
    trt = _by(report, "trt", "fp32")
    assert trt.status == "not run" and "GPU" in trt.reason and (tmp_path / "out" / trt.artifact).is_file()
    assert _by(report, "torch", "int8").status == "skipped"  # no PyTorch runner takes int8
    assert report.choice.candidate == _by(report, "torch", "fp32").id
    assert report.choice.excluded[trt.id].startswith("not run:")


def test_pareto_front():
    pts = [(10.0, 1e-3), (5.0, 1e-6), (4.0, 1e-3), (10.0, 1e-2)]
    assert pareto_front(pts) == [1, 0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "test-tiny", "--runners", "torch,tensorflow"], "--runners='torch,tensorflow'"),
        (["--preset", "test-tiny", "--precisions", "int4"], "--precisions='int4'"),
        (["--runners", "torch"], "give --preset NAME or --onnx MODEL"),
        (["--preset", "test-tiny", "--min-cosine", "2"], "--min-cosine 2.0 must be between 0 and 1"),
        (["--preset", "no-such-preset"], "no-such-preset"),
    ],
)
def test_bad_options_are_one_line_before_any_work(tmp_path, args, message):
    res = CliRunner().invoke(app, ["optimize", "-o", str(tmp_path / "out"), *args])
    assert_one_line_error(res, message)
    assert not (tmp_path / "out").exists()


def test_triton_repo_of_the_choice(base, tmp_path, tiny_onnx):
    out, repo = _copy(base, tmp_path), tmp_path / "repo"
    report, events = _rerun(out, tiny_onnx, runners=("ort",), triton_repo=repo)
    assert not events.units("made") and report.choice.runner == "ort"
    (config,) = repo.glob("*/config.pbtxt")
    text = config.read_text()
    assert "max_batch_size: 2" in text and "preferred_batch_size: 2" in text and "onnxruntime" in text
    assert report.outputs["triton_repo"] == str(repo)
    chosen = next(c for c in report.candidates if c.id == report.choice.candidate)
    (model,) = (repo / config.parent.name / "1").glob("model.onnx")
    assert sha256_file(model) == chosen.artifact_sha256


def test_torch_half_on_an_emulating_cpu_is_listed_not_run(tmp_path, tiny_onnx):
    from inti_export.runtime.torch_runner import emulated_on_cpu, native_half_from

    avx2 = "flags\t\t: fpu sse2 avx avx2 fma\n"
    assert native_half_from(avx2, "fp16") is False and native_half_from(avx2, "bf16") is False
    assert native_half_from(avx2.replace("avx2", "avx2 avx512_fp16"), "fp16") is True
    assert native_half_from("Features\t: fp asimd asimdhp bf16\n", "bf16") is True
    assert native_half_from("", "fp16") is None  # unreadable: no claim either way
    why = emulated_on_cpu("fp16")
    if why is None:
        pytest.skip("this CPU has native FP16 (or unreadable flags): PyTorch FP16 runs natively here")
    opts = {**FAST, "run_emulated": False, "batches": (1,)}
    report = run_optimize(tmp_path / "out", onnx=tiny_onnx.onnx_path, runners=("torch",), precisions=("fp32", "fp16"),
                          **opts)
    half = _by(report, "torch", "fp16")
    assert half.status == "not run" and "emulates" in half.reason and "--run-emulated" in half.reason
    assert not half.speed and report.choice.candidate == _by(report, "torch", "fp32").id
    assert report.choice.excluded[half.id].startswith("not run:")


def test_openvino_candidates_fp32_and_int8(tmp_path, tiny_onnx):
    """`--runners ov` (issue 27): OpenVINO runs the same FP32 and INT8 ONNX as ONNX Runtime, gated alike;
    the INT8 ONNX keeps the final projection in FP32, which OpenVINO needs (docs/openvino.md)."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed: pip install 'inti-export[openvino]'")
    report = run_optimize(tmp_path / "out", onnx=tiny_onnx.onnx_path, runners=("ort", "ov"), precisions=("fp32", "int8"),
                          batches=(1, 2), iters=2, warmup=1, clips=2, calib_clips=2)
    by_id = {f"{c.runner}-{c.precision}": c for c in report.candidates}
    assert {"ov-fp32", "ov-int8", "ort-fp32", "ort-int8"} <= set(by_id)
    for cid in ("ov-fp32", "ov-int8"):
        c = by_id[cid]
        assert c.status == "ok", (cid, c.reason)
        assert c.accuracy.cosine_min > 0.99 and [r.batch for r in c.speed] == [1, 2]
    assert by_id["ov-fp32"].accuracy.cosine_min > 0.99999  # f32 inference precision, not the CPU plugin's bf16
    assert by_id["ov-int8"].artifact == by_id["ort-int8"].artifact  # one INT8 ONNX, two runtimes
