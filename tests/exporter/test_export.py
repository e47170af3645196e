"""`inti-export onnx`: graph structure, metadata, parity with PyTorch, dynamic batch, errors."""

from __future__ import annotations

import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import CheckpointError, ExportError
from inti_export.exporter import ExportSpec, export_onnx, read_metadata
from inti_export.exporter.onnx_export import COSINE_MIN, REL_TOL
from inti_export.models import create_model


def _ort(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _compare(got, want):
    err = np.abs(got - want).max() / np.abs(want).max()
    a, b = got.astype(np.float64), want.astype(np.float64)
    cos = ((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min()
    return err, cos


def test_two_token_interpolate_nodes_with_function(tiny_onnx):
    m = onnx.load(str(tiny_onnx.onnx_path))
    nodes = [n for n in m.graph.node if n.op_type == "TokenInterpolate"]
    assert len(nodes) == 2 and all(n.domain == "inti" for n in nodes)
    assert [n.name for n in nodes] == ["inti_before_block_1", "inti_before_block_3"]
    assert {(o.domain, o.version) for o in m.opset_import} >= {("inti", 1), ("", 20)}
    (fn,) = m.functions
    assert (fn.domain, fn.name) == ("inti", "TokenInterpolate")
    assert list(fn.input) == ["h", "a", "b", "w1", "b1", "w2", "b2"]
    body = {n.op_type for n in fn.node}
    assert {"MatMul", "Erf", "Softmax", "Mul", "Add"} <= body
    assert all(n.domain == "" for n in fn.node)  # standard ops only
    # attention exported as plain ops: no fused kernels of other domains
    assert {n.domain for n in m.graph.node} <= {"", "inti"}
    onnx.checker.check_model(m, full_check=True)


def test_metadata_and_manifest(tiny_onnx):
    meta = read_metadata(tiny_onnx.onnx_path)
    assert meta["inti.preset"] == "test-tiny" and meta["inti.frames"] == 8 and meta["inti.image_size"] == 32
    assert meta["inti.insert_before"] == [1, 3] and len(meta["inti.mean"]) == 3
    assert meta["inti.inputs"][0]["name"] == "video" and meta["inti.inputs"][0]["layout"] == "B,T,C,H,W"
    assert meta["inti.outputs"][0]["name"] == "embedding"
    assert meta["inti.version"] and meta["inti.opset"] == 20
    manifest = json.loads(tiny_onnx.manifest_path.read_text())
    from inti_export.fileio import sha256_file

    assert manifest["onnx_sha256"] == sha256_file(tiny_onnx.onnx_path)
    assert len(manifest["weights_sha256"]) == 64
    assert {"torch", "onnx", "open_clip", "onnxruntime"} <= set(manifest["versions"])
    assert manifest["verification"]["passed"]
    assert manifest["verification"]["clips"][0].endswith(".mp4#0")


def test_parity_on_real_frames(tiny_onnx, tiny_model, tiny_clips):
    got = _ort(tiny_onnx.onnx_path).run(None, {"video": tiny_clips.clips})[0]
    with torch.no_grad():
        want = tiny_model(torch.from_numpy(tiny_clips.clips)).numpy()
    err, cos = _compare(got, want)
    assert err < REL_TOL and cos > COSINE_MIN


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_dynamic_batch(tiny_onnx, tiny_model, tiny_clips, batch):
    video = np.concatenate([tiny_clips.clips] * 2)[:batch]
    got = _ort(tiny_onnx.onnx_path).run(None, {"video": video})[0]
    with torch.no_grad():
        want = tiny_model(torch.from_numpy(video)).numpy()
    assert got.shape == (batch, 32)
    err, cos = _compare(got, want)
    assert err < REL_TOL and cos > COSINE_MIN


def _short_tiny(**overrides):
    """test-tiny cut to 1 block, 4 frames and one InTI layer (before the block), for tests of the export
    machinery (options, determinism, clean-up) where the model's depth does not matter: its export
    takes about 40% of test-tiny's."""
    from inti_export.models import get_config

    vision_cfg = {**get_config("test-tiny").vision_cfg, "layers": 1}
    return create_model("test-tiny", vision_cfg=vision_cfg, insert_before=(0,), frames=4, **overrides)


def test_decomposed_parity_and_no_custom_nodes(tmp_path, tiny_clips):
    """inti_op="decomposed" on short test-tiny (its InTI layer as standard ops), on real frames."""
    model = _short_tiny()
    video = np.ascontiguousarray(tiny_clips.clips[:, : model.cfg.frames])  # (K, 4, 3, 32, 32): real frames
    res = export_onnx(model, tmp_path / "d.onnx", ExportSpec(inti_op="decomposed"), clips=video[:2])
    assert res.verification.passed
    m = onnx.load(str(res.onnx_path))
    assert not m.functions and all(n.domain == "" for n in m.graph.node)
    got = _ort(res.onnx_path).run(None, {"video": video})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(video)).numpy()
    err, cos = _compare(got, want)
    assert err < REL_TOL and cos > COSINE_MIN


STATIC_SPEC = ExportSpec(dynamic_batch=False, opset=18, example_batch=2)


@pytest.fixture(scope="module")
def static_classifier(tmp_path_factory):
    """Short test-tiny with a 5-class head, exported with a static batch of 2 at opset 18, verified."""
    return export_onnx(_short_tiny(num_classes=5), tmp_path_factory.mktemp("static") / "s.onnx", STATIC_SPEC)


def test_export_is_byte_identical(static_classifier, tmp_path):
    """Two exports, each from its own model built from the same config (seeded weights), are the
    same bytes: InTI function, metadata and head included."""
    again = export_onnx(_short_tiny(num_classes=5), tmp_path / "s.onnx", STATIC_SPEC, verify=False)
    assert again.onnx_path.read_bytes() == static_classifier.onnx_path.read_bytes()


def test_static_batch_and_opset18(static_classifier):
    res = static_classifier
    assert res.manifest["inti_nodes"] == 1  # the InTI function is written at opset 18 too
    m = onnx.load(str(res.onnx_path))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_value == 2
    assert ("", 18) in {(o.domain, o.version) for o in m.opset_import}
    assert res.verification.passed


def test_classifier_head_output_named_logits(static_classifier):
    assert onnx.load(str(static_classifier.onnx_path)).graph.output[0].name == "logits"


def test_unwritable_or_missing_output_dir(tmp_path, tiny_model):
    with pytest.raises(ExportError, match="does not exist"):
        export_onnx(tiny_model, tmp_path / "no" / "such" / "m.onnx", verify=False)
    with pytest.raises(ExportError, match="is a directory"):
        export_onnx(tiny_model, tmp_path, verify=False)
    if os.geteuid() != 0:  # root can write anywhere; only test the permission check as a user
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ExportError, match="not writable"):
            export_onnx(tiny_model, ro / "m.onnx", verify=False)


def test_failed_verification_leaves_no_file(tmp_path, monkeypatch):
    from inti_export.exporter import onnx_export

    model = _short_tiny()
    monkeypatch.setattr(onnx_export, "REL_TOL", 0.0)  # nothing can pass a zero tolerance
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_onnx(model, tmp_path / "m.onnx", STATIC_SPEC)  # static batch: the cheaper trace
    assert list(tmp_path.iterdir()) == []


def test_cli_onnx_and_bad_checkpoints(tmp_path, tiny_onnx):
    runner = CliRunner()
    # the session's ONNX is the CLI's (tests/conftest.py): what it printed
    assert "TokenInterpolate nodes: 2" in tiny_onnx.stdout and "passed" in tiny_onnx.stdout
    assert f"wrote {tiny_onnx.onnx_path}" in tiny_onnx.stdout.replace("\n", "")

    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x80\x02garbage")
    res = runner.invoke(app, ["onnx", "--preset", "test-tiny", "--checkpoint", str(corrupt), "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code == 1 and "corrupt.pt" in res.stderr and "\n" not in res.stderr.strip()
    unknown = tmp_path / "unknown.pt"
    torch.save({"foo.weight": torch.zeros(2)}, unknown)
    res = runner.invoke(app, ["onnx", "--preset", "test-tiny", "--checkpoint", str(unknown), "-o", str(tmp_path / "x.onnx")])
    assert res.exit_code == 1 and "shares no tensor names" in res.stderr
    assert not (tmp_path / "x.onnx").exists()
    res = runner.invoke(app, ["onnx", "--preset", "test-tiny", "-o", str(tmp_path / "nodir" / "x.onnx")])
    assert res.exit_code == 1 and "does not exist" in res.stderr
    with pytest.raises(CheckpointError):
        create_model("test-tiny", checkpoint=corrupt)


@pytest.mark.slow
def test_inti_b16_export_parity(tmp_path, shipped_videos):
    """The paper's main preset: two TokenInterpolate nodes and parity on real frames.

    One real clip (16 frames of 224x224) is enough for the parity check and is half the verification
    (ONNX Runtime and PyTorch each take about 8 s of CPU per clip here); at batch 1 it also runs the
    dynamic batch axis at a size other than the one the export traced (2). Several clips and batch
    sizes are covered on test-tiny above.
    """
    from inti_export.exporter import export_preset
    from inti_export.jobs.inputs import verification_clips

    clips, names = verification_clips("inti-b16", shipped_videos, count=1)
    assert clips.shape == (1, 16, 3, 224, 224)
    res = export_preset(tmp_path / "b16.onnx", preset="inti-b16", clips=clips, clip_names=names)
    assert res.manifest["inti_nodes"] == 2
    assert res.verification.passed and res.verification.rel_err < REL_TOL
