"""`inti-export onnx --stream`: stem.onnx + head.onnx, their metadata and pairing, exact windows under ONNX Runtime."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from helpers import assert_one_line_error
from onnx import numpy_helper
from typer.testing import CliRunner

from inti_export.cli import app
from inti_export.errors import IntiExportError
from inti_export.fileio import sha256_file
from inti_export.metrics import cosine_per_sample
from inti_export.runtime.stream import Frame, OrtStemHead, StreamSession, full_window_reference, load_stream_artifact
from inti_export.vocab import read_metadata


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_pair_structure_and_metadata(tiny_stream):
    directory, stdout = tiny_stream
    assert "cut before block 1" in stdout and "passed" in stdout
    stem, head = onnx.load(str(directory / "stem.onnx")), onnx.load(str(directory / "head.onnx"))
    assert [i.name for i in stem.graph.input] == ["frames"] and _dims(stem.graph.input[0])[1:] == [3, 32, 32]
    assert isinstance(_dims(stem.graph.input[0])[0], str) and _dims(stem.graph.output[0])[1:] == [17, 64]
    assert not any(n.op_type == "TokenInterpolate" for n in stem.graph.node) and not stem.functions
    assert [i.name for i in head.graph.input] == ["stems"] and _dims(head.graph.input[0])[1:] == [8, 17, 64]
    assert [n.name for n in head.graph.node if n.domain == "inti"] == ["inti_before_block_1", "inti_before_block_3"]
    assert [(f.domain, f.name) for f in head.functions] == [("inti", "TokenInterpolate")]
    sm, hm = read_metadata(directory / "stem.onnx"), read_metadata(directory / "head.onnx")
    assert (sm["inti.stream.part"], hm["inti.stream.part"]) == ("stem", "head")
    assert sm["inti.stream.cut_before_block"] == hm["inti.stream.cut_before_block"] == 1
    assert hm["inti.frames"] == 8 and hm["inti.preset"] == "test-tiny" and len(hm["inti.mean"]) == 3
    stem_sha, head_sha = sha256_file(directory / "stem.onnx"), sha256_file(directory / "head.onnx")
    assert hm["inti.stream.stem_sha256"] == stem_sha
    sman, hman = (json.loads((directory / f"{p}.onnx.json").read_text()) for p in ("stem", "head"))
    assert sman["partner_sha256"] == head_sha and hman["partner_sha256"] == stem_sha
    pair = json.loads((directory / "stream.json").read_text())
    assert pair["stem"]["sha256"] == stem_sha and pair["head"]["sha256"] == head_sha and pair["verification"]["passed"]
    assert not list(directory.glob(".*.tmp"))


@pytest.mark.parametrize("stride", [1, 5])
def test_ort_windows_exact_on_real_frames(tiny_stream, tiny_model, tiny_frames, stride):
    """ONNX Runtime stem per frame + head per window == the whole PyTorch model, every window offset."""
    session = StreamSession(OrtStemHead(tiny_stream[0]), stride)
    results = list(session.run(Frame(i, tiny_frames[i]) for i in range(len(tiny_frames))))
    assert [r.first_frame for r in results] == list(range(0, len(tiny_frames) - 7, stride))
    worst = 0.0
    for r in results:
        want = full_window_reference(tiny_model, tiny_frames[r.first_frame:r.last_frame + 1])
        worst = max(worst, float(np.abs(r.output - want).max()))
        assert cosine_per_sample(r.output[None], want[None])[0] >= 0.99999
    assert worst < 1e-5, worst


def test_head_with_another_stem_is_refused(tiny_stream, tmp_path):
    """A stem with other weights (its patch embedding changed) beside the head: refused by sha256."""
    other = tmp_path / "mixed"
    shutil.copytree(tiny_stream[0], other)
    stem = onnx.load(str(other / "stem.onnx"))
    init = next(i for i in stem.graph.initializer if i.name == "visual.conv1.weight")
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.01, init.name))
    onnx.save(stem, str(other / "stem.onnx"))
    with pytest.raises(IntiExportError, match="come from different models"):
        load_stream_artifact(other)
    (other / "head.onnx").unlink()
    with pytest.raises(IntiExportError, match="has no head.onnx"):
        load_stream_artifact(other)


def test_stream_export_errors(tmp_path):
    a_file = tmp_path / "x.onnx"
    a_file.write_text("not a folder")
    res = CliRunner().invoke(app, ["onnx", "--preset", "test-tiny", "--stream", "-o", str(a_file)])
    assert_one_line_error(res, "is a file; a stream export writes a folder", quiet=True)
    res = CliRunner().invoke(app, ["onnx", "--preset", "test-tiny", "--stream", "-o", str(tmp_path / "no" / "dir")])
    assert res.exit_code == 1 and "does not exist: create it first" in res.output
