"""artifact -> Triton model repository: `<name>/config.pbtxt`, `<name>/1/model.*`, warmup data, ensemble.

Layout (Triton's conventions, docs/serving.md):

    REPO/<name>/config.pbtxt            the model: onnxruntime, tensorrt or python backend
    REPO/<name>/1/model.onnx|model.plan the artifact, its manifest beside it (+ model.py for python)
    REPO/<name>/warmup/video            a real clip, (T, 3, H, W) float32, for model_warmup
    REPO/<name>_video/...               --video: encoded bytes -> clip (Python backend, video/decode.py)
    REPO/<name>_ensemble/config.pbtxt   --video: bytes -> clip -> embedding (or logits with labels)
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export import vocab
from inti_export.serving.artifact import ENGINE, ONNX, Artifact, RepositoryError, read_artifact
from inti_export.serving.config import CONFIG_NAME, model_config_pb2, write_config
from inti_export.serving.options import MODEL_NAME_RE, RepoConfig, read_labels
from inti_export.vocab import InstanceKind, ServingBackend

VIDEO_BYTES = "video_bytes"  # the video model's and the ensemble's input: one encoded video per batch row
LABELS_FILE = "labels.txt"
SYS_PATH_ENV = "INTI_EXPORT_SYS_PATH"  # the launcher's sys.path, for the stub (see _write_shim)
WARMUP_DIR = "warmup"
VERSION = "1"


@dataclass
class RepoReport:
    """What was written: the repository, each model's name and config path, and notes."""

    repository: str
    models: list[dict] = field(default_factory=list)  # [{name, backend, config, max_batch_size}]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"repository": self.repository, "models": self.models, "notes": self.notes}


def default_max_batch(artifact: Artifact) -> int:
    return artifact.batch[2] if artifact.batch else 8


def write_triton_repo(
    artifact_path: str | os.PathLike, repo: str | os.PathLike, config: RepoConfig | None = None
) -> RepoReport:
    """Write the model (and with `video`, its pre-processing model and ensemble) into `repo`."""
    config = config or RepoConfig()
    if config.stream:
        from inti_export.serving.stream_repo import write_stream_repo

        return write_stream_repo(artifact_path, repo, config)
    repo = _check_repo_folder(Path(repo))
    artifact = read_artifact(artifact_path)
    name = config.name or str(artifact.metadata.get(vocab.META_PRESET) or artifact.path.stem)
    if not MODEL_NAME_RE.match(name):
        raise RepositoryError(f"model name {name!r} (from the artifact) is not a valid Triton name: pass --name")
    max_batch = _check_batch(artifact, config.max_batch)
    _check_backend(artifact, config)
    labels = _labels(artifact, config)
    pb = model_config_pb2()
    warmup = _warmup_clip(artifact) if config.warmup else None

    report = RepoReport(repository=str(repo))
    repo.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".triton-repo-", dir=repo))
    try:
        models = [(name, _write_model(pb, staging / name, artifact, config, name, max_batch, labels, warmup))]
        if config.video:
            video_name, ensemble_name = f"{name}_video", f"{name}_ensemble"
            models.append(
                (video_name, _write_video_model(pb, staging / video_name, artifact, config, video_name, max_batch))
            )
            models.append(
                (
                    ensemble_name,
                    _write_ensemble(
                        pb, staging / ensemble_name, artifact, ensemble_name, name, video_name, max_batch, labels
                    ),
                )
            )
        for model_name, cfg in models:
            target = repo / model_name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(staging / model_name, target)
            report.models.append(
                {
                    "name": model_name,
                    "backend": cfg.backend or cfg.platform,
                    "config": str(target / CONFIG_NAME),
                    "max_batch_size": cfg.max_batch_size,
                }
            )
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _check_repo_folder(repo: Path) -> Path:
    """The repository folder, refused before any work when it is a file, has no parent, or cannot be written."""
    if repo.exists() and not repo.is_dir():
        raise RepositoryError(f"repository {repo} is a file: give a folder")
    if not repo.parent.is_dir():
        raise RepositoryError(f"folder {repo.parent} does not exist: create it first")
    target = repo if repo.exists() else repo.parent
    if not os.access(target, os.W_OK | os.X_OK):  # a read-only mount refuses root too
        where = "" if target == repo else f" (its folder {target})"
        raise RepositoryError(f"repository {repo} is not writable{where}: choose another folder")
    return repo


def _check_batch(artifact: Artifact, requested: int | None) -> int:
    if artifact.batch is None:
        return requested or default_max_batch(artifact)
    low, _, high = artifact.batch
    if low > 1:
        raise RepositoryError(
            f"engine {artifact.path} has a batch profile from {low}; Triton sends batches from 1:"
            f" rebuild it with --batch 1,{artifact.batch[1]},{high}"
        )
    if requested is not None and requested > high:
        raise RepositoryError(
            f"--max-batch {requested} exceeds the engine's batch profile max {high}:"
            f" use at most {high}, or rebuild the engine"
        )
    return requested or high


def _check_backend(artifact: Artifact, config: RepoConfig) -> None:
    if config.kind == InstanceKind.cpu and artifact.kind == ENGINE:
        raise RepositoryError(f"engine {artifact.path} runs only on a GPU: pass --kind gpu")
    if config.backend == ServingBackend.onnxruntime and artifact.kind != ONNX:
        raise RepositoryError(
            f"--backend onnxruntime needs an ONNX file, not the engine {artifact.path}: use tensorrt or python"
        )
    if config.backend == ServingBackend.tensorrt:
        if artifact.kind != ENGINE:
            raise RepositoryError(
                f"--backend tensorrt needs an engine built by `inti-export trt`, not {artifact.path}:"
                " build one, or use onnxruntime"
            )
        if artifact.runtime != vocab.TrtRuntime.tensorrt.value:
            raise RepositoryError(
                f"engine {artifact.path} was built by {artifact.runtime}, which Triton's tensorrt backend (full"
                " TensorRT) cannot load: rebuild it with --runtime tensorrt, or use --backend python"
            )
        from inti_export.runtime.trt.plugins import plugins_needing_registration

        python_plugins = plugins_needing_registration(artifact.plugins)  # AOT plugins live in the engine
        if python_plugins:
            names = ", ".join(f"{p.get('namespace', '')}::{p.get('name', '')}" for p in python_plugins)
            raise RepositoryError(
                f"engine {artifact.path} needs plugin {names} through Python, which Triton's tensorrt backend"
                " cannot call: rebuild it (--plugin now embeds the AOT kernel; or --no-plugin), or use --backend python"
            )


def _labels(artifact: Artifact, config: RepoConfig) -> list[str] | None:
    """Class labels for the classification output: the --labels file, else class_<i> for a class head."""
    classes = artifact.num_classes
    if config.labels is not None:
        lines = read_labels(config.labels)
        if not classes:
            raise RepositoryError(f"--labels given but {artifact.path} has no class head (it outputs an embedding)")
        if len(lines) != classes:
            raise RepositoryError(f"{config.labels} has {len(lines)} labels but the model has {classes} classes")
        return lines
    return [f"class_{i}" for i in range(classes)] if classes else None


def _warmup_clip(artifact: Artifact) -> tuple[str, np.ndarray] | None:
    """(video file, clip (T, 3, H, W)) from the smallest shipped video that decodes, or None."""
    from inti_export.errors import VideoError
    from inti_export.video.decode import load_clip
    from inti_export.video.discover import find_videos, shipped_videos_dir

    pre = artifact.preprocess
    for path in sorted(find_videos(shipped_videos_dir()), key=lambda p: p.stat().st_size):
        try:
            return str(path), load_clip(path, pre)
        except VideoError:
            continue
    return None


def _outputs(cfg, artifact, labels, folder: Path) -> None:
    """The artifact's outputs; a class output of len(labels) gets Triton's label file for top-k."""
    for t in artifact.outputs:
        out = cfg.output.add()
        _dims(out, t)
        if labels and len(t.dims) == 1 and t.dims[0] == len(labels):
            out.label_filename = LABELS_FILE
    if labels:
        (folder / LABELS_FILE).write_text("\n".join(labels) + "\n")


def _dims(message, tensor) -> None:
    message.name = tensor.name
    message.data_type = model_config_pb2().DataType.Value(tensor.triton_dtype)
    message.dims.extend(tensor.dims)


def preferred_batch_sizes(max_batch: int, wanted: tuple[int, ...] = (), opt: int | None = None) -> list[int]:
    """The dynamic batcher's preferred sizes: `wanted`, else max/2, max and the engine profile's `opt`
    (the batch TensorRT tuned its kernels for) unless it is 1, since a preferred size that can be formed
    runs at once and 1 always can (docs/serving.md); each within 1..max_batch."""
    sizes = wanted or (max_batch // 2, max_batch, *((opt,) if opt and opt > 1 else ()))
    return sorted({s for s in sizes if 1 <= s <= max_batch})


def _common(pb, cfg, name: str, max_batch: int, config: RepoConfig, opt: int | None = None) -> None:
    cfg.name = name
    cfg.max_batch_size = max_batch
    group = cfg.instance_group.add()
    group.kind = pb.ModelInstanceGroup.KIND_GPU if config.kind == InstanceKind.gpu else pb.ModelInstanceGroup.KIND_CPU
    group.count = config.instances
    if config.dynamic_batching and max_batch > 1:
        sizes = preferred_batch_sizes(max_batch, config.preferred_batch_sizes, opt)
        cfg.dynamic_batching.preferred_batch_size.extend(sizes)
        cfg.dynamic_batching.max_queue_delay_microseconds = config.queue_delay_us


def _write_model(pb, folder: Path, artifact: Artifact, config: RepoConfig, name, max_batch, labels, warmup):
    version = folder / VERSION
    version.mkdir(parents=True)
    cfg = pb.ModelConfig()
    model_file = "model.onnx" if artifact.kind == ONNX else "model.plan"
    if config.backend == ServingBackend.onnxruntime:
        cfg.platform, cfg.backend = "onnxruntime_onnx", "onnxruntime"
    elif config.backend == ServingBackend.tensorrt:
        cfg.platform, cfg.backend = "tensorrt_plan", "tensorrt"
    else:
        cfg.backend = "python"
        runner = "trt" if artifact.kind == ENGINE else (config.runner or "ort")
        _parameters(
            cfg,
            {
                "artifact": model_file,
                "runner": runner,
                "device": "cuda" if config.kind == InstanceKind.gpu else "cpu",
                "threads": str(config.threads),  # 0: the serving host's cores / instances, decided at load
                **({"ov_hint": config.ov_hint or "", "ov_streams": str(config.ov_streams or 0)} if runner == "ov" else {}),
            },
        )
        _write_shim(version, "EmbeddingModel")
    if config.backend == ServingBackend.onnxruntime and config.threads:
        _parameters(cfg, {"intra_op_thread_count": str(config.threads)})  # Triton's onnxruntime backend
    if config.backend != ServingBackend.python:  # the python backend takes this as its script's name
        cfg.default_model_filename = model_file
    _common(pb, cfg, name, max_batch, config, opt=artifact.batch[1] if artifact.batch else None)
    for t in artifact.inputs:
        _dims(cfg.input.add(), t)
    _outputs(cfg, artifact, labels, folder)
    _parameters(
        cfg,
        {"preprocess": artifact.preprocess_json(), "preset": str(artifact.metadata.get(vocab.META_PRESET, "")),
         **{k: v for k, v in (("precision", config.precision), ("variant", config.variant)) if v}},
    )
    shutil.copyfile(artifact.path, version / model_file)
    if artifact.manifest is not None:
        shutil.copyfile(artifact.manifest, version / f"{model_file}.json")
    if warmup is not None:
        video_file, clip = warmup
        (folder / WARMUP_DIR).mkdir()
        (folder / WARMUP_DIR / vocab.INPUT_NAME).write_bytes(np.ascontiguousarray(clip, np.float32).tobytes())
        w = cfg.model_warmup.add()
        w.name = f"clip_{Path(video_file).name}"
        w.batch_size = 1
        w.inputs[vocab.INPUT_NAME].data_type = pb.TYPE_FP32
        w.inputs[vocab.INPUT_NAME].dims.extend(artifact.inputs[0].dims)
        w.inputs[vocab.INPUT_NAME].input_data_file = vocab.INPUT_NAME
    write_config(folder / CONFIG_NAME, cfg)
    return cfg


def _write_video_model(pb, folder: Path, artifact: Artifact, config: RepoConfig, name: str, max_batch: int):
    """Encoded video bytes (TYPE_STRING) -> clip (T, 3, H, W) float32, by video/decode.py."""
    version = folder / VERSION
    version.mkdir(parents=True)
    cfg = pb.ModelConfig()
    cfg.backend = "python"
    video_config = RepoConfig(
        kind=InstanceKind.cpu,
        instances=config.instances,
        dynamic_batching=config.dynamic_batching,
        queue_delay_us=config.queue_delay_us,
    )
    _common(pb, cfg, name, max_batch, video_config)
    i = cfg.input.add()
    i.name, i.data_type = VIDEO_BYTES, pb.TYPE_STRING
    i.dims.append(1)
    o = cfg.output.add()
    o.name, o.data_type = vocab.INPUT_NAME, pb.TYPE_FP32
    o.dims.extend(artifact.inputs[0].dims)
    _parameters(cfg, {"preprocess": artifact.preprocess_json()})
    _write_shim(version, "VideoModel")
    # No model_warmup here: Triton's warmup of a TYPE_STRING input from a file crashed the server
    # (tritonserver 2.59 in nvidia-pytriton 0.7.0); VideoModel.initialize decodes a real video instead.
    write_config(folder / CONFIG_NAME, cfg)
    return cfg


def _write_ensemble(
    pb, folder: Path, artifact: Artifact, name: str, model: str, video_model: str, max_batch: int, labels
):
    """bytes -> `<name>_video` -> clip -> `<name>` -> outputs."""
    (folder / VERSION).mkdir(parents=True)  # Triton wants a version folder, even an empty one
    cfg = pb.ModelConfig()
    cfg.name, cfg.platform, cfg.max_batch_size = name, "ensemble", max_batch
    i = cfg.input.add()
    i.name, i.data_type = VIDEO_BYTES, pb.TYPE_STRING
    i.dims.append(1)
    _outputs(cfg, artifact, labels, folder)
    decode = cfg.ensemble_scheduling.step.add()
    decode.model_name, decode.model_version = video_model, -1
    decode.input_map[VIDEO_BYTES] = VIDEO_BYTES
    decode.output_map[vocab.INPUT_NAME] = "clip"
    embed = cfg.ensemble_scheduling.step.add()
    embed.model_name, embed.model_version = model, -1
    embed.input_map[vocab.INPUT_NAME] = "clip"
    for t in artifact.outputs:
        embed.output_map[t.name] = t.name
    write_config(folder / CONFIG_NAME, cfg)
    return cfg


def _parameters(cfg, values: dict[str, str]) -> None:
    for key, value in values.items():
        cfg.parameters[key].string_value = value


def _write_shim(version: Path, cls: str, module: str = "inti_export.serving.python_backend") -> None:
    """model.py: the Python-backend entry point, a re-export of this package's model class.

    The stub's embedded interpreter ignores PYTHONPATH; `inti-export serve` passes its own sys.path in
    SYS_PATH_ENV, so the stub imports the same inti_export (and site-packages) as the launcher.
    """
    (version / "model.py").write_text(
        '"""Written by `inti-export triton-repo`: the model code is inti_export/serving/python_backend.py."""\n\n'
        "import os\n"
        "import sys\n\n"
        f"_paths = os.environ.get({SYS_PATH_ENV!r}, '').split(os.pathsep)\n"
        "sys.path[:0] = [p for p in _paths if p and p not in sys.path]\n\n"
        f"from {module} import {cls} as TritonPythonModel  # noqa: E402, F401\n"
    )
