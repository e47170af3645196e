"""What the TensorRT test modules share: the runtime this machine builds with, its skip marks, a copy helper.

Imported by tests/runtime's TensorRT modules and conftest (pytest puts this folder on sys.path).
"""

from __future__ import annotations

import shutil

import pytest

from inti_export.runtime.manifest import manifest_path
from inti_export.runtime.trt.config import gpu_compute_capability
from inti_export.runtime.trt.loader import pick_runtime


def cuda() -> bool:
    import torch

    return torch.cuda.is_available()


RUNTIME, SKIP_REASON = pick_runtime(gpu_compute_capability())
NEEDS_TRT = [pytest.mark.trt, pytest.mark.skipif(RUNTIME is None, reason=SKIP_REASON)]  # a module's pytestmark
needs_rtx = pytest.mark.skipif(RUNTIME != "tensorrt-rtx", reason="checks TensorRT-RTX behaviour")
needs_gpu = pytest.mark.skipif(not cuda(), reason="no CUDA GPU: TensorRT engines run only on a GPU")
BATCH = (1, 2, 4)  # the batch profile of the `engines` fixture (conftest.py)


def copy_engine(src, dst_dir):
    """Copy an engine and its manifest into `dst_dir`; the copy's path."""
    dst = dst_dir / src.name
    shutil.copy(src, dst)
    shutil.copy(manifest_path(src), manifest_path(dst))
    return dst
