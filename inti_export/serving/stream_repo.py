"""A stream pair folder (`inti-export onnx --stream`) -> a Triton repository with a stateful sequence model.

    REPO/<name>/config.pbtxt       python backend + sequence_batching: frames in, a window every S frames
    REPO/<name>/1/                 stem.onnx, head.onnx, their manifests, stream.json, model.py (StreamModel)
    REPO/<name>_stem/              the stem alone, stateless: frames (F, 3, H, W) -> stems (F, N, D)
    REPO/<name>_head/              the head alone, stateless: stems (B, T, N, D) -> embedding/logits

The contract of the stateful model is in serving/stream_backend.py; docs/serving.md, "Streams".
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from inti_export import vocab
from inti_export.errors import IntiExportError
from inti_export.serving.artifact import RepositoryError
from inti_export.serving.config import CONFIG_NAME, model_config_pb2, write_config
from inti_export.serving.options import RepoConfig
from inti_export.serving.repository import VERSION, RepoReport, _check_repo_folder, _common, _parameters, _write_shim
from inti_export.serving.stream_backend import END, FIRST, FRAME, INDEX, LAST, START, STRIDE, TIMING, WINDOW
from inti_export.vocab import InstanceKind

DEFAULT_NAME = "inti_stream"
STREAM_MODULE = "inti_export.serving.stream_backend"


def write_stream_repo(folder: str | os.PathLike, repo: str | os.PathLike, config: RepoConfig) -> RepoReport:
    """`<name>` (stateful), `<name>_stem` and `<name>_head` from the checked pair in `folder`."""
    from inti_export.runtime.stream import check_stride, load_stream_artifact

    if config.kind != InstanceKind.cpu or config.backend != vocab.ServingBackend.python:
        raise RepositoryError("--stream serves the pair with the python backend on CPU: drop --backend/--kind")
    if config.video or config.labels is not None:
        raise RepositoryError("--stream takes preprocessed frames: drop --video and --labels")
    repo = _check_repo_folder(Path(repo))
    try:
        pair = load_stream_artifact(folder)
    except IntiExportError as e:
        raise RepositoryError(str(e)) from e
    t, size = pair.frames, pair.image_size
    stride = check_stride(config.stride if config.stride is not None else max(1, t // 2), t, RepositoryError)
    _, _, tokens, width = pair.meta[vocab.META_INPUTS][0]["shape"]  # head input (B, T, N, D)
    out = pair.meta[vocab.META_OUTPUTS][0]
    out_name, out_dim = out["name"], int(out["shape"][-1])
    name = config.name or DEFAULT_NAME
    max_batch = config.max_batch or 8
    pb = model_config_pb2()
    params = {"preset": str(pair.meta.get(vocab.META_PRESET, "")), "frames": str(t), "image_size": str(size),
              "threads": str(config.threads), "runner": "ort", "device": "cpu"}

    report = RepoReport(repository=str(repo))
    repo.mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".triton-repo-", dir=repo))
    try:
        models = []
        # the stateful model: one frame per row, the sequence batcher's controls
        version = staging / name / VERSION
        version.mkdir(parents=True)
        for src in (pair.stem_path, pair.head_path):
            for p in (src, src.with_name(src.name + ".json")):
                if p.is_file():
                    shutil.copyfile(p, version / p.name)
        manifest = Path(folder) / vocab.PAIR_MANIFEST
        if manifest.is_file():
            shutil.copyfile(manifest, version / manifest.name)
        cfg = pb.ModelConfig()
        cfg.backend = "python"
        _common(pb, cfg, name, max_batch, RepoConfig(instances=config.instances, dynamic_batching=False))
        _io(pb, cfg.input, [(FRAME, pb.TYPE_FP32, (3, size, size)), (INDEX, pb.TYPE_INT64, (1,)),
                            (STRIDE, pb.TYPE_INT32, (1,))])
        cfg.input[-1].optional = True
        _io(pb, cfg.output, [(WINDOW, pb.TYPE_INT32, (1,)), (FIRST, pb.TYPE_INT64, (1,)), (LAST, pb.TYPE_INT64, (1,)),
                             (TIMING, pb.TYPE_FP32, (2,)), (out_name, pb.TYPE_FP32, (out_dim,))])
        seq = cfg.sequence_batching
        seq.max_sequence_idle_microseconds = int(config.sequence_idle_s * 1e6)
        for control, kind in ((START, seq.Control.CONTROL_SEQUENCE_START), (END, seq.Control.CONTROL_SEQUENCE_END)):
            c = seq.control_input.add()
            c.name = control
            entry = c.control.add()
            entry.kind, entry.data_type = kind, pb.TYPE_INT32
            entry.int32_false_true.extend([0, 1])
        seq.oldest.max_candidate_sequences = config.max_sequences
        seq.oldest.max_queue_delay_microseconds = 0
        _parameters(cfg, {**params, "artifact": vocab.STEM_FILE, "stride": str(stride),
                          "idle_s": repr(float(config.sequence_idle_s)), "max_sequences": str(config.max_sequences)})
        _write_shim(version, "StreamModel", STREAM_MODULE)
        write_config(staging / name / CONFIG_NAME, cfg)
        models.append((name, cfg))
        # the two halves, stateless (EmbeddingModel with their own input)
        halves = (
            (f"{name}_stem", pair.stem_path, (vocab.STEM_INPUT, (3, size, size)), (vocab.STEM_OUTPUT, (tokens, width))),
            (f"{name}_head", pair.head_path, (vocab.HEAD_INPUT, (t, tokens, width)), (out_name, (out_dim,))),
        )
        for half, src, (in_name, in_dims), (o_name, o_dims) in halves:
            version = staging / half / VERSION
            version.mkdir(parents=True)
            shutil.copyfile(src, version / src.name)
            if src.with_name(src.name + ".json").is_file():
                shutil.copyfile(src.with_name(src.name + ".json"), version / (src.name + ".json"))
            cfg = pb.ModelConfig()
            cfg.backend = "python"
            _common(pb, cfg, half, max_batch, config)
            _io(pb, cfg.input, [(in_name, pb.TYPE_FP32, in_dims)])
            _io(pb, cfg.output, [(o_name, pb.TYPE_FP32, o_dims)])
            _parameters(cfg, {**params, "artifact": src.name})
            _write_shim(version, "EmbeddingModel")
            write_config(staging / half / CONFIG_NAME, cfg)
            models.append((half, cfg))
        for model_name, cfg in models:
            target = repo / model_name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(staging / model_name, target)
            report.models.append({"name": model_name, "backend": "python", "config": str(target / CONFIG_NAME),
                                  "max_batch_size": cfg.max_batch_size})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    report.notes.append(f"{name}: a stateful stream model (T = {t}, stride {stride} unless a request's `stride` says"
                        f" otherwise at START; sequences idle over {config.sequence_idle_s:g} s are dropped)")
    return report


def _io(pb, field, entries) -> None:
    for tensor_name, dtype, dims in entries:
        t = field.add()
        t.name, t.data_type = tensor_name, dtype
        t.dims.extend(dims)
