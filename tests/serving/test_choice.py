"""`triton-repo OUT/best` (issue 27): an `optimize` choice served with its batch, sessions, threads and
OpenVINO settings; a hand-written best/ folder around test-tiny's ONNX."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from helpers import assert_one_line_error
from serving_helpers import REQUIRE_ENV

from inti_export.serving import RepositoryError
from inti_export.serving.choice import read_choice, repo_config_for_choice, write_best_repo
from inti_export.serving.config import read_config

try:
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2 as pb
except ImportError as e:
    if os.environ.get(REQUIRE_ENV):
        raise
    pytest.skip(f"tritonclient (the serve extra) is not installed: {e}", allow_module_level=True)


def _best(tmp_path, tiny_onnx, runner="ort", precision="fp32", batch=4, settings=None, variant=None, name="best"):
    """OUT/best/ as `optimize` writes it: the artifact, its manifest, candidate.json, command.txt."""
    best = tmp_path / name
    best.mkdir()
    artifact = "ort-int8.onnx" if precision == "int8" else "model.onnx"
    shutil.copyfile(tiny_onnx.onnx_path, best / artifact)
    candidate = {"id": f"{runner}-{precision}", "runner": runner, "precision": precision, "status": "ok",
                 "artifact": f"units/{artifact}"}
    if settings is not None:
        candidate["settings"] = settings
    if variant is not None:
        candidate["variant"] = variant
    (best / "candidate.json").write_text(json.dumps({"choice": {"candidate": candidate["id"], "runner": runner,
                                                                "precision": precision, "batch": batch},
                                                     "candidate": candidate, "files": [artifact],
                                                     "model": {"preset": "test-tiny"}}))
    (best / "command.txt").write_text("inti-export ...\n")
    return best


def _params(cfg):
    return {k: v.string_value for k, v in cfg.parameters.items()}


def test_ort_choice_is_served_as_measured(tmp_path, tiny_onnx):
    best = _best(tmp_path, tiny_onnx, precision="int8", variant="int8-u8s8-rr-pc-max",
                 settings={"threads": 1, "sessions": 2, "ov_hint": None, "ov_streams": None})
    report = write_best_repo(best, tmp_path / "repo")
    cfg = read_config(tmp_path / "repo" / "test-tiny" / "config.pbtxt")
    assert cfg.backend == "python" and cfg.max_batch_size == 4
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4]
    assert (cfg.instance_group[0].count, cfg.instance_group[0].kind) == (2, pb.ModelInstanceGroup.KIND_CPU)
    params = _params(cfg)
    assert (params["runner"], params["threads"], params["precision"], params["variant"]) == (
        "ort", "1", "int8", "int8-u8s8-rr-pc-max")
    assert (tmp_path / "repo" / "test-tiny" / "1" / "model.onnx").read_bytes() == (best / "ort-int8.onnx").read_bytes()
    assert "2 instance(s) (sessions), 1 threads each" in report.notes[0]
    # flags win over the choice; Triton's onnxruntime backend gets the threads as intra_op_thread_count
    write_best_repo(best, tmp_path / "repo2", backend="onnxruntime", max_batch=8, instances=1)
    cfg = read_config(tmp_path / "repo2" / "test-tiny" / "config.pbtxt")
    assert (cfg.backend, cfg.max_batch_size, cfg.instance_group[0].count) == ("onnxruntime", 8, 1)
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert _params(cfg)["intra_op_thread_count"] == "1"


def test_batch_1_choice_and_no_settings(tmp_path, tiny_onnx):
    config, _ = repo_config_for_choice(read_choice(_best(tmp_path, tiny_onnx, batch=1)))
    assert (config.max_batch, config.preferred_batch_sizes, config.instances, config.threads) == (1, (1,), 1, 0)
    assert config.runner is None and config.kind == "cpu"


def test_openvino_choice_runs_openvino_in_the_python_backend(tmp_path, tiny_onnx):
    pytest.importorskip("openvino")
    from inti_export.serving.python_backend import EmbeddingModel

    best = _best(tmp_path, tiny_onnx, runner="ov", batch=2,
                 settings={"threads": 1, "sessions": 2, "ov_hint": "throughput", "ov_streams": 1})
    write_best_repo(best, tmp_path / "repo")
    folder = tmp_path / "repo" / "test-tiny"
    cfg = read_config(folder / "config.pbtxt")
    params = _params(cfg)
    assert (params["runner"], params["threads"], params["ov_hint"], params["ov_streams"]) == ("ov", "1", "throughput", "1")
    model = EmbeddingModel()
    model.initialize({"model_config": json_format.MessageToJson(cfg, preserving_proto_field_name=True),
                      "model_instance_kind": "CPU", "model_instance_device_id": "0",
                      "model_repository": str(folder), "model_version": "1"})
    assert type(model.runner).__name__ == "OvRunner"
    assert (model.runner.threads, model.runner.streams, model.runner.hint.value) == (1, 1, "throughput")
    model.finalize()
    with pytest.raises(RepositoryError, match="OpenVINO"):
        write_best_repo(best, tmp_path / "repo3", backend="onnxruntime")


def test_unservable_choices_are_refused(tmp_path, tiny_onnx):
    best = _best(tmp_path, tiny_onnx, runner="torch", name="torch")
    data = json.loads((best / "candidate.json").read_text())
    data["candidate"]["artifact"] = None
    (best / "candidate.json").write_text(json.dumps(data))
    with pytest.raises(RepositoryError, match="runs in PyTorch"):
        read_choice(best)
    gone = _best(tmp_path, tiny_onnx, name="gone")
    (gone / "model.onnx").unlink()
    with pytest.raises(RepositoryError, match="chose model.onnx, which is not in"):
        read_choice(gone)
    bad = _best(tmp_path, tiny_onnx, name="bad")
    (bad / "candidate.json").write_text("{")
    with pytest.raises(RepositoryError, match="cannot read .*candidate.json"):
        read_choice(bad)


def test_cli_triton_repo_of_best(tmp_path, tiny_onnx):
    from typer.testing import CliRunner

    from inti_export.cli import app

    best = _best(tmp_path, tiny_onnx, settings={"threads": 2, "sessions": 1})
    res = CliRunner().invoke(app, ["triton-repo", str(best), "-o", str(tmp_path / "repo")])
    assert res.exit_code == 0, res.output
    assert "served the choice ort fp32" in res.output
    assert _params(read_config(tmp_path / "repo" / "test-tiny" / "config.pbtxt"))["threads"] == "2"
    (best / "model.onnx").unlink()
    assert_one_line_error(CliRunner().invoke(app, ["triton-repo", str(best), "-o", str(tmp_path / "r2")]),
                          "which is not in")
