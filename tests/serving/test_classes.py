"""Top-k labels from a real tritonserver, for the trained motion-task checkpoint (a 4-class head).

The shipped task-inti checkpoint exported to ONNX, `triton-repo --backend python --video --labels`,
a real server, labelled task videos sent through `inti-export infer --top-k`: each answer is
compared with the in-process PyTorch model and ONNX Runtime runner on the same clips.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error
from serving_helpers import child_env, running_server, serving_setup_missing
from typer.testing import CliRunner

_MISSING = serving_setup_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

from inti_export.cli import app  # noqa: E402
from inti_export.serving import RepoConfig, RepositoryError, write_triton_repo  # noqa: E402
from inti_export.serving.config import read_config  # noqa: E402
from inti_export.tasks.motion import CLASSES, read_labels  # noqa: E402

ENSEMBLE, PLAIN = "task-inti_ensemble", "task-plain"  # labelled by --labels; class_<i> by default
INFER = [sys.executable, "-c", "from inti_export.cli import app; app()", "infer", "--json"]


@pytest.fixture(scope="module")
def trained(task_checkpoint):
    from inti_export.models import create_model

    return create_model("task-inti", checkpoint=str(task_checkpoint))


@pytest.fixture(scope="module")
def task_videos(task_split):
    """The first 8 videos of the session's labelled test split (tests/conftest.py)."""
    return sorted(task_split.glob("*.mp4"))[:8]


@pytest.fixture(scope="module")
def task_clips(trained, task_videos):
    from inti_export.video.clipset import load_clips
    from inti_export.video.preprocess import preprocess_for

    clips = load_clips(task_videos, preprocess_for(trained.cfg))
    return [name.split("#")[0] for name in clips.names], clips.clips  # (8, T, 3, H, W)


@pytest.fixture(scope="module")
def reference(trained, task_onnx, task_clips):
    """{video: (PyTorch logits, ONNX Runtime logits)} in process, on the clips the server decodes;
    `task_onnx` is the session's export of the same checkpoint (tests/conftest.py)."""
    from inti_export.runtime.ort_runner import OrtRunner

    names, clips = task_clips
    with torch.no_grad():
        torch_logits = trained(torch.from_numpy(clips)).numpy()  # (8, 4)
    with OrtRunner(task_onnx) as runner:
        ort_logits = runner.infer({"video": clips})["logits"]  # (8, 4)
    return {name: (t, o) for name, t, o in zip(names, torch_logits, ort_logits, strict=True)}


@pytest.fixture(scope="module")
def task_repo(tmp_path_factory, task_onnx):
    """Through the CLI: the labelled ensemble (--labels, the class names) and the bare model without --labels."""
    folder = tmp_path_factory.mktemp("task-triton")
    labels = folder / "classes.txt"
    labels.write_text("\n".join(CLASSES) + "\n")
    repo = folder / "repo"
    for args in (["--video", "--labels", str(labels)], ["--name", PLAIN]):
        res = CliRunner().invoke(app, ["triton-repo", str(task_onnx), "-o", str(repo), "--backend", "python", *args])
        assert res.exit_code == 0, res.output
    return repo


@pytest.fixture(scope="module")
def task_server(task_repo):
    """A second tritonserver, on free ports, for the task repository; stopped (process group) after the module."""
    with running_server(task_repo, ready_timeout=300) as server:
        yield server


def test_labels_files_in_the_repository(task_repo, task_onnx, tmp_path):
    for model in ("task-inti", ENSEMBLE):
        (logits,) = read_config(task_repo / model / "config.pbtxt").output
        assert (logits.name, list(logits.dims), logits.label_filename) == ("logits", [4], "labels.txt")
        assert (task_repo / model / "labels.txt").read_text().split() == list(CLASSES)
    assert (task_repo / PLAIN / "labels.txt").read_text().split() == [f"class_{i}" for i in range(4)]
    (tmp_path / "three.txt").write_text("still\nhorizontal\nvertical\n")
    with pytest.raises(RepositoryError, match="three.txt has 3 labels but the model has 4 classes"):
        write_triton_repo(task_onnx, tmp_path / "r", RepoConfig(labels=tmp_path / "three.txt"))


def _infer(videos, url, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*INFER, *map(str, videos), "--url", url, *args], capture_output=True, text=True, env=child_env(), timeout=300
    )


def _check_top_k(results, reference, names, k: int):
    """Every video answered with k labels, best first, matching the in-process logits."""
    assert [r["video"].rsplit("/", 1)[-1] for r in results] == sorted(reference)
    for result in results:
        assert "error" not in result, result
        torch_logits, ort_logits = reference[result["video"].rsplit("/", 1)[-1]]
        assert np.argmax(torch_logits) == np.argmax(ort_logits)
        top = result["labels"]
        assert len(top) == k
        scores = [entry["score"] for entry in top]
        assert scores == sorted(scores, reverse=True)
        assert [entry["index"] for entry in top] == list(np.argsort(-ort_logits)[:k])
        assert [entry["label"] for entry in top] == [names[entry["index"]] for entry in top]
        # Triton prints scores with 6 decimals
        np.testing.assert_allclose(scores, torch_logits[[entry["index"] for entry in top]], atol=2e-5, rtol=0)
        np.testing.assert_allclose(scores, ort_logits[[entry["index"] for entry in top]], atol=2e-5, rtol=0)


def test_ensemble_top_k_labels_match_in_process_model(task_server, task_split, task_videos, reference):
    res = _infer(task_videos, task_server.endpoints.http, "--top-k", "2")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == ENSEMBLE  # the one ensemble, found without --model
    _check_top_k(out["results"], reference, CLASSES, k=2)
    # the labels mean what the task says: the trained model gets most of its own test videos right
    truth = read_labels(task_split / "labels.csv")
    right = sum(r["labels"][0]["label"] == CLASSES[truth[r["video"].rsplit("/", 1)[-1]]] for r in out["results"])
    assert right >= 6, out["results"]


def test_class_head_without_labels_file_gets_class_i(task_server, task_videos, reference):
    """The bare model (decoded clips from the client) over gRPC, labelled class_<i> by default."""
    res = _infer(task_videos, task_server.endpoints.grpc, "--model", PLAIN, "--top-k", "4")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["model"] == PLAIN
    _check_top_k(out["results"], reference, [f"class_{i}" for i in range(4)], k=4)


def test_top_k_on_an_embedding_model_is_one_line(tiny_server, shipped_videos):
    res = _infer([shipped_videos / "bikes.mp4"], tiny_server.endpoints.http, "--top-k", "2")
    message = assert_one_line_error(res, "--top-k needs a labelled output", quiet=True)
    assert "'test-tiny_ensemble'" in message and "embedding" in message


def test_negative_top_k_is_refused_before_any_request(shipped_videos):
    """Refused before the server is asked (port 1: nothing listens there), by the CLI and by the library."""
    from inti_export.serving.client import ClientError, infer_videos

    video = str(shipped_videos / "bikes.mp4")
    res = CliRunner().invoke(app, ["infer", video, "--url", "http://127.0.0.1:1", "--top-k", "-1"])
    assert res.exit_code == 2 and "--top-k" in res.output
    with pytest.raises(ClientError, match="top-k -1 must be 0"):
        infer_videos([video], "http://127.0.0.1:1", top_k=-1)
