"""Issue 27: `embed --artifact OUT/best` takes optimize's choice (flags win); --batch's default comes from the machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import assert_one_line_error
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.corpus import machine_batch, resolve_settings
from inti_export.errors import IntiExportError


def test_machine_batch_rule():
    """docs/benchmarks.md: batch 1 is fastest on a small CPU; a GPU runner gets 8."""
    assert [machine_batch(False, cores) for cores in (1, 2, 4, 5, 16)] == [1, 1, 1, 8, 8]
    assert machine_batch(True, 2) == machine_batch(True, 64) == 8


def test_best_settings_and_flags_that_override_them(tmp_path, tiny_onnx, make_best):
    best = make_best(tmp_path / "best", tiny_onnx.onnx_path, batch=2, settings={"threads": 1, "sessions": 2})
    s = resolve_settings(best)
    assert s.model.artifact == best / "model.onnx" and s.model.kind == "ort" and s.model.threads == 1
    assert s.batch == 2 and s.sources == {"runner": "best", "threads": "best", "batch": "best"}
    assert s.best.candidate == "ort-fp32" and s.best.settings["sessions"] == 2
    s = resolve_settings(best, threads=2, batch=3)
    assert (s.model.threads, s.batch) == (2, 3) and s.sources == {"runner": "best", "threads": "flag", "batch": "flag"}
    bare = make_best(tmp_path / "bare", tiny_onnx.onnx_path, batch=None)  # no settings, no batch recorded
    s = resolve_settings(bare)
    assert s.model.threads is None and s.sources["threads"] == "default"
    assert (s.batch, s.sources["batch"]) == (machine_batch(False), "machine")
    ov = make_best(tmp_path / "ov", tiny_onnx.onnx_path, runner="ov", settings={"ov_hint": "throughput", "ov_streams": 2})
    s = resolve_settings(ov)
    assert (s.model.kind, s.model.ov_hint, s.model.ov_streams) == ("ov", "throughput", 2)
    assert resolve_settings(Path(tiny_onnx.onnx_path)).sources == {"threads": "default", "runner": "default",
                                                                    "batch": "machine"}


def test_cli_embeds_with_the_choice_and_reports_where_settings_came_from(tmp_path, one_good_video, tiny_onnx,
                                                                           make_best):
    best = make_best(tmp_path / "opt" / "best", tiny_onnx.onnx_path, batch=2, settings={"threads": 1})
    base = ["embed", str(one_good_video), "--artifact", str(best), "--decode-workers", "1", "--stride", "4"]
    res = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "a"), "--report", str(tmp_path / "a.json")])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "a.json").read_text())
    assert (r["runner"], r["batch"], r["batch_source"], r["split"]) == ("ort", 2, "best", False)
    assert r["settings_from"] == {"runner": "best", "threads": "best", "batch": "best"}
    assert r["best"]["candidate"] == "ort-fp32" and r["clips"] > 0
    res = CliRunner().invoke(app, [*base, "-o", str(tmp_path / "b"), "--report", str(tmp_path / "b.json"),
                                   "--batch", "1", "--threads", "2"])
    assert res.exit_code == 0, res.output
    r = json.loads((tmp_path / "b.json").read_text())
    assert (r["batch"], r["batch_source"]) == (1, "flag") and r["settings_from"]["threads"] == "flag"


@pytest.mark.parametrize("case", ["no candidate.json", "torch choice", "artifact missing", "not json"])
def test_bad_best_folders_are_one_line_errors(tmp_path, one_good_video, tiny_onnx, make_best, case):
    folder = tmp_path / "best"
    if case == "no candidate.json":
        folder.mkdir()
        want = "is a directory with no candidate.json"
    elif case == "torch choice":
        make_best(folder, tiny_onnx.onnx_path, runner="torch", artifact=None)
        want = "runs in PyTorch"
    elif case == "artifact missing":
        make_best(folder, tiny_onnx.onnx_path, copy=False)
        want = "which is not in"
    else:
        make_best(folder, tiny_onnx.onnx_path)
        (folder / "candidate.json").write_text("{not json")
        want = "cannot read"
    res = CliRunner().invoke(app, ["embed", str(one_good_video), "--artifact", str(folder), "-o", str(tmp_path / "o")])
    line = assert_one_line_error(res, want)
    assert str(folder) in line
    assert not (tmp_path / "o").exists()
    with pytest.raises(IntiExportError, match=want):
        resolve_settings(folder)


def test_an_openvino_choice_runs_with_its_hint_and_streams(tmp_path, one_good_video, tiny_onnx, make_best):
    """The `ov` runner is built with the chosen hint and streams, and embeds like ONNX Runtime."""
    pytest.importorskip("openvino", reason="install the openvino extra: pip install 'inti-export[openvino]'")
    import numpy as np

    from inti_export.corpus import embed_local, make_job, read_rows
    from inti_export.corpus.sampling import Sampling
    from inti_export.metrics import cosine_per_sample

    best = make_best(tmp_path / "best", tiny_onnx.onnx_path, runner="ov", batch=1,
                     settings={"threads": 1, "ov_hint": "throughput", "ov_streams": 1})
    s = resolve_settings(best)
    runner = s.model.make_runner()
    assert (runner.hint.value, runner.streams, runner.threads) == ("throughput", 1, 1)
    rows = {}
    for name, model in (("ov", s.model), ("ort", resolve_settings(Path(tiny_onnx.onnx_path), threads=1).model)):
        report = embed_local(make_job([one_good_video], model, tmp_path / name, Sampling(stride=4), batch=s.batch,
                                      decode_workers=1))
        assert report.runner == name and report.clips > 0
        t = read_rows(tmp_path / name).to_pydict()
        pairs = sorted(zip(t["clip"], t["embedding"], strict=True), key=lambda r: r[0])
        rows[name] = np.stack([np.asarray(e, np.float32) for _, e in pairs])
    assert cosine_per_sample(rows["ov"], rows["ort"]).min() >= 0.9999
