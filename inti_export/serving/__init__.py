"""Triton Inference Server: repository writer (config.pbtxt from artifacts), server launcher, client.

artifact -> `write_triton_repo(artifact, repo, RepoConfig)` -> repository -> `TritonServer(repo)`
-> `infer_videos(...)`. Heavy dependencies (tritonclient, the tritonserver binary) load on use.
"""

from inti_export.serving.artifact import Artifact, RepositoryError, read_artifact
from inti_export.serving.config import check_repository
from inti_export.serving.options import RepoConfig
from inti_export.serving.repository import RepoReport, write_triton_repo

__all__ = [
    "Artifact",
    "RepoConfig",
    "RepoReport",
    "RepositoryError",
    "check_repository",
    "read_artifact",
    "write_triton_repo",
]
