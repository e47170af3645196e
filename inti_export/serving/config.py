"""config.pbtxt as Triton's own `ModelConfig` protobuf: built, written, parsed back; a repository checked.

The message class comes from `tritonclient` (`tritonclient.grpc.model_config_pb2`, the
`model_config.proto` of triton-inference-server), so every config we write is one Triton parses.
"""

from __future__ import annotations

import os
from pathlib import Path

from inti_export.errors import RuntimeUnavailableError
from inti_export.serving.artifact import RepositoryError

CONFIG_NAME = "config.pbtxt"


def model_config_pb2():
    """Triton's model_config protobuf module (from tritonclient), or a one-line error saying how to get it."""
    try:
        from tritonclient.grpc import model_config_pb2 as pb
    except ImportError as e:
        raise RuntimeUnavailableError(
            f"tritonclient is needed for Triton model configs ({e}): pip install 'inti-export[serve]'"
        ) from e
    return pb


def to_text(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_config(text: str, source: str = CONFIG_NAME):
    """A ModelConfig from config.pbtxt text; a one-line RepositoryError naming `source` if Triton would refuse it."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as e:
        raise RepositoryError(f"{source} is not a valid Triton model config: {e}") from e


def read_config(path: str | os.PathLike):
    """Parse a config.pbtxt file with Triton's protobuf."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise RepositoryError(f"cannot read {path}: {e}") from e
    return parse_config(text, str(path))


def write_config(path: str | os.PathLike, config) -> None:
    """Write `config` as text, then parse the file back and require the same message."""
    from inti_export.fileio import write_atomic

    path = Path(path)
    write_atomic(path, to_text(config))
    back = read_config(path)
    if back != config:
        raise RepositoryError(f"{path} does not parse back to the config that was written: report this")


def check_repository(repo: str | os.PathLike) -> list[str]:
    """The model names of a repository whose every config.pbtxt parses; a one-line RepositoryError otherwise."""
    repo = Path(repo)
    if not repo.is_dir():
        raise RepositoryError(f"model repository {repo} is not a folder: write one with `inti-export triton-repo`")
    names = []
    for folder in sorted(p for p in repo.iterdir() if p.is_dir() and not p.name.startswith(".")):
        config = folder / CONFIG_NAME
        if not config.is_file():
            raise RepositoryError(
                f"model repository {repo}: {folder.name}/ has no {CONFIG_NAME}: remove it or rewrite it"
            )
        cfg = read_config(config)
        if cfg.name and cfg.name != folder.name:
            raise RepositoryError(
                f"{config} names the model {cfg.name!r} but its folder is {folder.name!r}: make them equal"
            )
        if not any(p.is_dir() and p.name.isdigit() for p in folder.iterdir()):
            raise RepositoryError(
                f"model repository {repo}: {folder.name}/ has no version folder (e.g. {folder.name}/1/)"
            )
        names.append(folder.name)
    if not names:
        raise RepositoryError(f"model repository {repo} holds no models: write one with `inti-export triton-repo`")
    return names
