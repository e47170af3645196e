"""A real tritonserver (nvidia-pytriton's binary) on test-tiny's `--backend python --video` repository.

No mocks: the server, the Python backend stub, ONNX Runtime inside it, and the clip decoding are
the real ones; answers are compared with the in-process runner on the same clips.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import child_env, server_processes, serving_setup_missing

_MISSING = serving_setup_missing()
if _MISSING:
    pytest.skip(_MISSING, allow_module_level=True)

import tritonclient.http as http  # noqa: E402
from tritonclient.utils import InferenceServerException  # noqa: E402

from inti_export.metrics import cosine_per_sample  # noqa: E402
from inti_export.runtime.ort_runner import OrtRunner  # noqa: E402
from inti_export.serving.server import ServerError, TritonServer  # noqa: E402
from inti_export.video.clipset import load_clips  # noqa: E402
from inti_export.video.discover import find_videos  # noqa: E402

MODEL, VIDEO, ENSEMBLE = "test-tiny", "test-tiny_video", "test-tiny_ensemble"


@pytest.fixture(scope="module")
def reference(tiny_onnx, tiny_model, shipped_videos):
    """{video name: embedding} from the in-process ONNX Runtime runner on parity's clips."""
    from inti_export.video.preprocess import preprocess_for

    clips = load_clips(shipped_videos, preprocess_for(tiny_model.cfg))
    with OrtRunner(tiny_onnx.onnx_path) as runner:
        out = runner.infer({"video": clips.clips})["embedding"]  # (K, E)
    return {name.split("#")[0]: (clip, emb) for name, clip, emb in zip(clips.names, clips.clips, out, strict=True)}


def _client(server):
    return http.InferenceServerClient(
        server.endpoints.http.removeprefix("http://"), network_timeout=300, connection_timeout=300
    )


def _bytes_input(data: bytes):
    feed = http.InferInput("video_bytes", [1, 1], "BYTES")
    feed.set_data_from_numpy(np.array([[data]], dtype=object), binary_data=True)
    return feed


def _clip_input(clip: np.ndarray):
    feed = http.InferInput("video", list(clip.shape), "FP32" if clip.dtype == np.float32 else "FP64")
    feed.set_data_from_numpy(clip, binary_data=True)
    return feed


def _ask_ensemble(server, data: bytes) -> np.ndarray:
    return _client(server).infer(ENSEMBLE, [_bytes_input(data)]).as_numpy("embedding")[0]


def test_shipped_clips_from_8_threads_match_in_process_runner(tiny_server, reference, shipped_videos):
    videos = find_videos(shipped_videos)
    jobs = [videos[i % len(videos)] for i in range(8)]  # every shipped video, from 8 threads at once
    barrier = threading.Barrier(len(jobs))

    def ask(path):
        data = path.read_bytes()
        barrier.wait(timeout=60)
        return path.name, _ask_ensemble(tiny_server, data)

    with ThreadPoolExecutor(len(jobs)) as pool:
        answers = list(pool.map(ask, jobs))
    assert {name for name, _ in answers} == set(reference)
    for name, served in answers:
        cos = cosine_per_sample(served[None], reference[name][1][None])[0]
        assert cos > 0.99999, f"{name}: cosine {cos}"


def test_64_concurrent_requests_none_fails(tiny_server, reference, shipped_videos):
    names = sorted(reference)
    payloads = {name: (shipped_videos / name).read_bytes() for name in names}

    def ask(i):
        name = names[i % len(names)]
        if i % 2:  # half through the ensemble (bytes), half to the model (clips)
            return name, _ask_ensemble(tiny_server, payloads[name])
        clip = reference[name][0][None]
        return name, _client(tiny_server).infer(MODEL, [_clip_input(clip)]).as_numpy("embedding")[0]

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(64)))
    assert len(answers) == 64
    served = np.stack([a for _, a in answers])
    want = np.stack([reference[name][1] for name, _ in answers])
    assert cosine_per_sample(served, want).min() > 0.99999


def _error(fn) -> str:
    with pytest.raises(InferenceServerException) as e:
        fn()
    return e.value.message()


def test_bad_requests_name_the_problem_and_the_next_one_succeeds(tiny_server, reference, shipped_videos):
    client = _client(tiny_server)
    clip = reference["bikes.mp4"][0][None]  # (1, T, 3, H, W)
    checks = {
        "shape": (
            lambda: client.infer(MODEL, [_clip_input(clip[:, :, :, :16, :16].copy())]),
            r"shape.*\[1,8,3,16,16\]",
        ),
        "dtype": (lambda: client.infer(MODEL, [_clip_input(clip.astype(np.float64))]), r"FP64"),
        "corrupt": (
            lambda: client.infer(ENSEMBLE, [_bytes_input(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))]),
            r"video: cannot open video",
        ),
        "empty": (lambda: client.infer(ENSEMBLE, [_bytes_input(b"")]), r"video bytes are empty"),
        "unknown model": (
            lambda: client.infer("no-such-model", [_clip_input(clip)]),
            r"unknown model.*no-such-model|no-such-model.*not found",
        ),
    }
    for what, (call, pattern) in checks.items():
        message = _error(call)
        assert re.search(pattern, message, re.I), f"{what}: {message}"
        good = _ask_ensemble(tiny_server, (shipped_videos / "bikes.mp4").read_bytes())
        assert cosine_per_sample(good[None], reference["bikes.mp4"][1][None])[0] > 0.99999, what


def _successes(server, model: str) -> int:
    with urllib.request.urlopen(server.endpoints.metrics, timeout=30) as response:
        text = response.read().decode()
    m = re.search(rf'^nv_inference_request_success\{{model="{re.escape(model)}",version="1"\}} (\d+)', text, re.M)
    assert m, f"no success counter for {model} in the metrics"
    return int(m.group(1))


def test_metrics_count_successful_inferences(tiny_server, shipped_videos):
    before = _successes(tiny_server, ENSEMBLE)
    data = (shipped_videos / "carphone_pristine.mp4").read_bytes()
    for _ in range(3):
        _ask_ensemble(tiny_server, data)
    with pytest.raises(InferenceServerException):
        _client(tiny_server).infer(ENSEMBLE, [_bytes_input(b"")])  # a failure is not a success
    assert _successes(tiny_server, ENSEMBLE) - before == 3


def test_port_in_use_is_one_line(tiny_repo):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=rf"http port {port} on 127.0.0.1 is in use.*--http-port"):
            TritonServer(tiny_repo, http_port=port).start()


def test_model_that_fails_to_load_names_it_and_triton_reason(tmp_path, tiny_onnx):
    """The bundled tritonserver has no onnxruntime backend: the model fails to load, and we say so in one line."""
    from inti_export.serving import RepoConfig, write_triton_repo

    repo = tmp_path / "ort-repo"
    write_triton_repo(tiny_onnx.onnx_path, repo, RepoConfig(name="tiny-ort", backend="onnxruntime", warmup=False))
    with pytest.raises(ServerError) as e:
        TritonServer(repo, ready_timeout=120).start()
    message = str(e.value)
    assert "\n" not in message and message.startswith("model 'tiny-ort' failed to load:"), message
    assert "onnxruntime" in message
    assert server_processes(str(repo)) == []
    log = Path(message.rpartition("; log: ")[2])  # a failed start keeps its log (issue 24 row 12)
    assert log.is_file()
    log.unlink()


def test_stub_without_shared_libpython_names_interpreter(monkeypatch, tiny_repo):
    import sysconfig

    from inti_export.serving import stub

    real = sysconfig.get_config_var
    monkeypatch.setattr(stub.sysconfig, "get_config_var", lambda k: 0 if k == "Py_ENABLE_SHARED" else real(k))
    with pytest.raises(ServerError, match=rf"{re.escape(sys.executable)}.*--enable-shared.*/usr/bin/python3.11"):
        TritonServer(tiny_repo).start()


def test_serve_and_infer_commands(tmp_path, tiny_repo, shipped_videos):
    """`inti-export serve` in the foreground, `inti-export infer` against it, SIGINT: exit 130, nothing left."""
    import shutil

    from inti_export.serving.server import free_port

    repo = tmp_path / "repo"  # its own copy, so its processes are told apart from the session server's
    shutil.copytree(tiny_repo, repo)
    ports = [str(free_port()) for _ in range(3)]
    cmd = [
        sys.executable,
        "-c",
        "from inti_export.cli import app; app()",
        "serve",
        str(repo),
        "--http-port",
        ports[0],
        "--grpc-port",
        ports[1],
        "--metrics-port",
        ports[2],
        "--timeout",
        "240",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    try:
        lines = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "metrics" in line:
                break
        assert any(f"http://127.0.0.1:{ports[0]}" in line for line in lines), "".join(lines) + proc.stderr.read()
        infer = [sys.executable, "-c", "from inti_export.cli import app; app()", "infer", "--json"]
        video = str(shipped_videos / "bikes.mp4")
        ok = subprocess.run(
            [*infer, video, "--url", f"grpc://127.0.0.1:{ports[1]}"],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=300,
        )
        assert ok.returncode == 0, ok.stderr
        assert '"model": "test-tiny_ensemble"' in ok.stdout and '"embedding"' in ok.stdout
        bad = tmp_path / "bad.mp4"
        bad.write_bytes(b"not a video")
        failed = subprocess.run(
            [*infer, str(bad), "--url", f"http://127.0.0.1:{ports[0]}"],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=300,
        )
        assert failed.returncode == 1 and "cannot open video" in failed.stdout, failed.stdout + failed.stderr
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, proc.stderr.read()  # the README's promise: SIGINT exits 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert server_processes(str(repo)) == []
