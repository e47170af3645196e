"""Every generated config.pbtxt parsed with Triton's model_config protobuf and checked against the artifact."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnxruntime as ort
import pytest
from serving_helpers import REQUIRE_ENV, fake_engine

from inti_export.serving import RepoConfig, RepositoryError, check_repository, write_triton_repo
from inti_export.serving.config import read_config

try:
    from tritonclient.grpc import model_config_pb2 as pb
except ImportError as e:
    if os.environ.get(REQUIRE_ENV):
        raise
    pytest.skip(f"tritonclient (the serve extra) is not installed: {e}", allow_module_level=True)

_ORT_TO_TRITON = {"tensor(float)": pb.TYPE_FP32, "tensor(float16)": pb.TYPE_FP16}


def _ort_io(onnx_path):
    """(inputs, outputs) as {name: (Triton dtype, dims without batch)}, read by ONNX Runtime (not our reader)."""
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

    def table(values):
        return {v.name: (_ORT_TO_TRITON[v.type], list(v.shape[1:])) for v in values}

    return table(sess.get_inputs()), table(sess.get_outputs())


def _io(tensors):
    return {t.name: (t.data_type, list(t.dims)) for t in tensors}


def test_python_video_repo_matches_onnx(tiny_repo, tiny_onnx):
    inputs, outputs = _ort_io(tiny_onnx.onnx_path)
    cfg = read_config(tiny_repo / "test-tiny" / "config.pbtxt")
    assert cfg.backend == "python" and cfg.max_batch_size == 8
    assert _io(cfg.input) == inputs and _io(cfg.output) == outputs
    assert list(cfg.dynamic_batching.preferred_batch_size) == [4, 8]
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_CPU and cfg.instance_group[0].count == 1
    assert cfg.parameters["runner"].string_value == "ort"
    # warmup: a real clip of the model's input shape, stored as raw float32
    (warm,) = cfg.model_warmup
    spec = warm.inputs["video"]
    clip = np.fromfile(tiny_repo / "test-tiny" / "warmup" / spec.input_data_file, dtype=np.float32)
    assert list(spec.dims) == inputs["video"][1] and clip.size == np.prod(spec.dims)
    assert 0.05 < float(clip.std()) < 10  # normalised pixels, not zeros or noise of another scale
    assert (tiny_repo / "test-tiny" / "1" / "model.onnx").read_bytes() == tiny_onnx.onnx_path.read_bytes()
    assert json.loads((tiny_repo / "test-tiny" / "1" / "model.onnx.json").read_text())["preset"] == "test-tiny"

    video = read_config(tiny_repo / "test-tiny_video" / "config.pbtxt")
    assert video.backend == "python" and video.max_batch_size == cfg.max_batch_size
    assert _io(video.input) == {"video_bytes": (pb.TYPE_STRING, [1])}
    assert _io(video.output) == {"video": inputs["video"]}
    pre = json.loads(video.parameters["preprocess"].string_value)
    assert (pre["frames"], pre["image_size"]) == (8, 32)

    ens = read_config(tiny_repo / "test-tiny_ensemble" / "config.pbtxt")
    assert ens.platform == "ensemble" and ens.max_batch_size == cfg.max_batch_size
    assert _io(ens.input) == {"video_bytes": (pb.TYPE_STRING, [1])} and _io(ens.output) == outputs
    steps = ens.ensemble_scheduling.step
    assert [s.model_name for s in steps] == ["test-tiny_video", "test-tiny"]
    assert steps[0].output_map["video"] == steps[1].input_map["video"]
    assert check_repository(tiny_repo) == ["test-tiny", "test-tiny_ensemble", "test-tiny_video"]


def test_onnxruntime_repo(tmp_path, tiny_onnx):
    onnx_path = tiny_onnx.onnx_path
    inputs, outputs = _ort_io(onnx_path)
    report = write_triton_repo(
        onnx_path,
        tmp_path / "repo",
        RepoConfig(name="tiny", backend="onnxruntime", max_batch=16, instances=2, dynamic_batching=False, warmup=False),
    )
    assert [m["name"] for m in report.models] == ["tiny"]
    cfg = read_config(tmp_path / "repo" / "tiny" / "config.pbtxt")
    assert (cfg.platform, cfg.backend, cfg.default_model_filename) == ("onnxruntime_onnx", "onnxruntime", "model.onnx")
    assert cfg.max_batch_size == 16 and cfg.instance_group[0].count == 2
    assert not cfg.HasField("dynamic_batching") and not cfg.model_warmup
    assert _io(cfg.input) == inputs and _io(cfg.output) == outputs


def test_refusals_are_one_line(tmp_path, tiny_onnx):
    onnx_path = tiny_onnx.onnx_path
    for options, words in [
        ({"backend": "tensorrt"}, "needs an engine"),
        ({"labels": tmp_path / "none.txt"}, "does not exist"),
        ({"max_batch": 0}, "must be 1 to 2147483647"),
    ]:
        with pytest.raises(RepositoryError, match=words) as e:
            write_triton_repo(onnx_path, tmp_path / "r", RepoConfig(**options))
        assert "\n" not in str(e.value)
    with pytest.raises(RepositoryError, match="unknown backend 'tflite'"):
        RepoConfig(backend="tflite")
    (tmp_path / "labels.txt").write_text("a\nb\n")
    with pytest.raises(RepositoryError, match="no class head"):
        write_triton_repo(onnx_path, tmp_path / "r", RepoConfig(labels=tmp_path / "labels.txt"))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08not an onnx file")
    with pytest.raises(RepositoryError, match="not a readable ONNX"):
        write_triton_repo(garbage, tmp_path / "r")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_invalid_repository(tmp_path, tiny_repo):
    with pytest.raises(RepositoryError, match="is not a folder"):
        check_repository(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryError, match="holds no models"):
        check_repository(tmp_path / "empty")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_repo, broken)
    (broken / "test-tiny" / "config.pbtxt").write_text('name: "test-tiny"\nmax_batch_size: "eight"\n')
    with pytest.raises(RepositoryError, match=r"test-tiny/config.pbtxt is not a valid Triton model config"):
        check_repository(broken)


# -- TensorRT: a real TensorRT-RTX engine built from test-tiny on this CPU-only machine ----------------
@pytest.fixture(scope="module")
def rtx_engine(tiny_engine):
    """The session's test-tiny engine (tests/conftest.py, batch profile 1:2:4), built by TensorRT-RTX."""
    from inti_export.errors import RuntimeUnavailableError
    from inti_export.runtime.trt import load_trt_module

    try:
        load_trt_module("tensorrt-rtx")
    except RuntimeUnavailableError as e:
        pytest.skip(f"TensorRT-RTX is not importable: {e}")
    return tiny_engine[0]  # built with TensorRT-RTX whenever it imports


def _relabelled(engine, folder, **fields):
    """A copy of `engine` whose manifest has `fields` changed (e.g. the runtime a full-TensorRT build records)."""
    copy = folder / f"relabelled-{engine.name}"
    shutil.copyfile(engine, copy)
    manifest = json.loads(engine.with_name(engine.name + ".json").read_text())
    copy.with_name(copy.name + ".json").write_text(json.dumps({**manifest, **fields}))
    return copy


@pytest.mark.trt
def test_tensorrt_repo_matches_engine_manifest(tmp_path, rtx_engine, tiny_onnx):
    from inti_export.runtime.manifest import load_manifest

    manifest = load_manifest(rtx_engine)
    full = _relabelled(rtx_engine, tmp_path, runtime="tensorrt")  # RTX engines are refused for this backend
    write_triton_repo(full, tmp_path / "repo", RepoConfig(backend="tensorrt", kind="gpu", video=True))
    cfg = read_config(tmp_path / "repo" / "test-tiny" / "config.pbtxt")
    assert (cfg.platform, cfg.backend, cfg.default_model_filename) == ("tensorrt_plan", "tensorrt", "model.plan")
    assert cfg.max_batch_size == manifest.profile_batch[2] == 4
    assert list(cfg.dynamic_batching.preferred_batch_size) == [2, 4]
    assert cfg.instance_group[0].kind == pb.ModelInstanceGroup.KIND_GPU
    # the engine's I/O, as TensorRT reported it into the manifest, equals the ONNX's as ONNX Runtime reads it
    assert {i["name"]: i["shape"][1:] for i in manifest.inputs} == {
        k: v[1] for k, v in _ort_io(tiny_onnx.onnx_path)[0].items()
    }
    assert _io(cfg.input) == {i["name"]: (pb.TYPE_FP32, i["shape"][1:]) for i in manifest.inputs}
    assert _io(cfg.output) == {o["name"]: (pb.TYPE_FP32, o["shape"][1:]) for o in manifest.outputs}
    assert (tmp_path / "repo" / "test-tiny" / "1" / "model.plan").read_bytes() == rtx_engine.read_bytes()
    ens = read_config(tmp_path / "repo" / "test-tiny_ensemble" / "config.pbtxt")
    assert (
        ens.max_batch_size == 4
        and read_config(tmp_path / "repo" / "test-tiny_video" / "config.pbtxt").max_batch_size == 4
    )

    python = write_triton_repo(rtx_engine, tmp_path / "py", RepoConfig(kind="gpu", max_batch=2))
    cfg = read_config(tmp_path / "py" / "test-tiny" / "config.pbtxt")
    assert cfg.backend == "python" and cfg.parameters["runner"].string_value == "trt" and cfg.max_batch_size == 2
    assert python.models[0]["max_batch_size"] == 2


@pytest.mark.trt
def test_tensorrt_refusals(tmp_path, rtx_engine):
    with pytest.raises(RepositoryError, match="exceeds the engine's batch profile max 4"):
        write_triton_repo(rtx_engine, tmp_path / "r", RepoConfig(backend="tensorrt", kind="gpu", max_batch=8))
    with pytest.raises(RepositoryError, match="needs an ONNX file"):
        write_triton_repo(rtx_engine, tmp_path / "r", RepoConfig(backend="onnxruntime", kind="gpu"))
    with pytest.raises(RepositoryError, match="runs only on a GPU: pass --kind gpu"):
        write_triton_repo(rtx_engine, tmp_path / "r", RepoConfig(backend="tensorrt"))
    # the same real engine, its manifest saying it needs the Python TokenInterpolate plugin (an old --plugin build)
    plugin = {"name": "TokenInterpolate", "namespace": "inti", "version": "1", "sha256": "0", "files": []}
    plugged = _relabelled(rtx_engine, tmp_path, runtime="tensorrt", plugins=[plugin])
    with pytest.raises(RepositoryError, match=r"needs plugin inti::TokenInterpolate.*--backend python"):
        write_triton_repo(plugged, tmp_path / "r", RepoConfig(backend="tensorrt", kind="gpu"))
    tampered = tmp_path / "tampered.engine"
    tampered.write_bytes(rtx_engine.read_bytes()[:-1] + b"\0")
    shutil.copyfile(rtx_engine.with_name(rtx_engine.name + ".json"), tampered.with_name(tampered.name + ".json"))
    with pytest.raises(RepositoryError, match="does not match its manifest"):
        write_triton_repo(tampered, tmp_path / "r", RepoConfig(backend="tensorrt", kind="gpu"))



# -- which engines Triton's tensorrt backend can load (issue 28, item 5): manifests only, no TensorRT ---------
_PLUGIN = {"name": "TokenInterpolate", "namespace": "inti", "version": "1", "sha256": "0", "files": []}


def test_tensorrt_backend_refuses_an_rtx_engine(tmp_path, tiny_onnx):
    engine = fake_engine(tmp_path, tiny_onnx.onnx_path, runtime="tensorrt-rtx")
    with pytest.raises(RepositoryError) as e:
        write_triton_repo(engine, tmp_path / "r", RepoConfig(backend="tensorrt", kind="gpu", warmup=False))
    assert "\n" not in str(e.value)
    assert "built by tensorrt-rtx, which Triton's tensorrt backend (full TensorRT) cannot load" in str(e.value)
    assert "--runtime tensorrt" in str(e.value) and "--backend python" in str(e.value)
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())
    # the Python backend runs it with TrtRunner, which loads TensorRT-RTX engines
    report = write_triton_repo(engine, tmp_path / "py", RepoConfig(kind="gpu", warmup=False))
    assert report.models[0]["backend"] == "python"


def test_tensorrt_backend_takes_an_aot_plugin_engine(tmp_path, tiny_onnx):
    aot = fake_engine(tmp_path, tiny_onnx.onnx_path, plugins=[{**_PLUGIN, "aot": True}])
    report = write_triton_repo(aot, tmp_path / "repo", RepoConfig(backend="tensorrt", kind="gpu", warmup=False))
    cfg = read_config(tmp_path / "repo" / "test-tiny" / "config.pbtxt")
    assert (cfg.platform, cfg.backend) == ("tensorrt_plan", "tensorrt") and report.notes == []
    assert (tmp_path / "repo" / "test-tiny" / "1" / "model.plan").read_bytes() == aot.read_bytes()
    for python_plugin in ({**_PLUGIN, "aot": False}, _PLUGIN):  # `aot` absent: a manifest from before AOT
        (tmp_path / "jit").mkdir(exist_ok=True)
        jit = fake_engine(tmp_path / "jit", tiny_onnx.onnx_path, plugins=[python_plugin])
        with pytest.raises(RepositoryError, match=r"needs plugin inti::TokenInterpolate through Python"):
            write_triton_repo(jit, tmp_path / "r", RepoConfig(backend="tensorrt", kind="gpu", warmup=False))


# -- the dynamic batcher prefers the batch the engine was tuned for (issue 28, item 7) ----------------------
@pytest.mark.parametrize(
    "profile, max_batch, preferred",
    [((1, 3, 8), None, [3, 4, 8]), ((1, 8, 8), None, [4, 8]), ((1, 6, 8), 4, [2, 4]), ((1, 1, 8), None, [4, 8])],
)
def test_preferred_batch_sizes_include_the_engine_opt(tmp_path, tiny_onnx, profile, max_batch, preferred):
    """opt joins max/2 and max; opt 1 does not (a preferred size of 1 would send every lone request at once)."""
    engine = fake_engine(tmp_path, tiny_onnx.onnx_path, batch=profile)
    for backend in ("tensorrt", "python"):
        config = RepoConfig(backend=backend, kind="gpu", max_batch=max_batch, warmup=False)
        write_triton_repo(engine, tmp_path / backend, config)
        cfg = read_config(tmp_path / backend / "test-tiny" / "config.pbtxt")
        assert list(cfg.dynamic_batching.preferred_batch_size) == preferred, backend
    # sizes given explicitly are kept as given
    write_triton_repo(engine, tmp_path / "own", RepoConfig(backend="tensorrt", kind="gpu", warmup=False,
                                                           preferred_batch_sizes=(2,)))
    assert list(read_config(tmp_path / "own" / "test-tiny" / "config.pbtxt").dynamic_batching.preferred_batch_size) == [2]
