"""EmbeddingModel.initialize places its runner where Triton placed the instance (issue 28, item 4).

Triton's Python backend passes each instance `model_instance_kind` ("GPU", "CPU", "MODEL") and
`model_instance_device_id` in `args`, beside `model_config` (the config as JSON). The runners are
replaced by fakes that record their arguments: no GPU, no stub process.
"""

from __future__ import annotations

import json
import os
from typing import ClassVar

import pytest
from serving_helpers import REQUIRE_ENV, fake_engine

from inti_export.errors import IntiExportError
from inti_export.serving import RepoConfig, write_triton_repo
from inti_export.serving.config import read_config
from inti_export.serving.python_backend import EmbeddingModel

try:
    from google.protobuf import json_format
    from tritonclient.grpc import model_config_pb2  # noqa: F401
except ImportError as e:
    if os.environ.get(REQUIRE_ENV):
        raise
    pytest.skip(f"tritonclient (the serve extra) is not installed: {e}", allow_module_level=True)


class FakeRunner:
    """Records how it was made; activates without a device."""

    made: ClassVar[list[dict]] = []  # reset per test by the fixture

    def __init__(self, artifact, **kwargs):
        FakeRunner.made.append({"artifact": artifact.name, **kwargs})

    def activate(self):
        pass


@pytest.fixture
def fake_runners(monkeypatch):
    import inti_export.runtime.ort_runner as ort_runner
    import inti_export.runtime.trt as trt

    monkeypatch.setattr(FakeRunner, "made", [])
    monkeypatch.setattr(ort_runner, "OrtRunner", FakeRunner)
    monkeypatch.setattr(trt, "TrtRunner", FakeRunner)
    return FakeRunner.made


def _args(repo, name, kind, device_id):
    """The `args` Triton gives `initialize` for one instance of `repo/name`."""
    cfg = read_config(repo / name / "config.pbtxt")
    return {
        "model_config": json_format.MessageToJson(cfg, preserving_proto_field_name=True),
        "model_instance_kind": kind,
        "model_instance_device_id": str(device_id),
        "model_repository": str(repo / name),
        "model_version": "1",
        "model_name": name,
    }


def test_onnx_instances_run_where_triton_puts_them(tmp_path, tiny_onnx, fake_runners):
    repo = tmp_path / "repo"
    write_triton_repo(tiny_onnx.onnx_path, repo, RepoConfig(kind="gpu", instances=2, warmup=False))
    for kind, device_id, want in [("GPU", 1, "cuda:1"), ("GPU", 0, "cuda:0"), ("CPU", 0, "cpu"), ("MODEL", 0, "cuda:0")]:
        EmbeddingModel().initialize(_args(repo, "test-tiny", kind, device_id))
        assert fake_runners[-1]["device"] == want, (kind, device_id)
    assert json.loads(_args(repo, "test-tiny", "GPU", 1)["model_config"])["parameters"]["runner"]["string_value"] == "ort"


def test_engine_instances_run_on_their_gpu(tmp_path, tiny_onnx, fake_runners):
    engine = fake_engine(tmp_path, tiny_onnx.onnx_path)
    repo = tmp_path / "repo"
    write_triton_repo(engine, repo, RepoConfig(kind="gpu", warmup=False))
    EmbeddingModel().initialize(_args(repo, "test-tiny", "GPU", 3))
    assert fake_runners == [{"artifact": "model.plan", "device": 3}]
    with pytest.raises(IntiExportError, match="runs only on a GPU: give it instance_group kind KIND_GPU"):
        EmbeddingModel().initialize(_args(repo, "test-tiny", "CPU", 0))
