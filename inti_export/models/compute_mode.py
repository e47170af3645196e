"""How the model computes (not what): fused attention or plain matmuls, the blend custom op or not.

A scoped setting that puts the old value back, after timm's `set_layer_config`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class ComputeMode:
    fused_attention: bool = True  # F.scaled_dot_product_attention; False: explicit matmul/softmax
    blend_op: bool = False  # route InTI's weight-predict-and-blend through torch.ops.inti.token_interpolate


_mode = ComputeMode()


def current() -> ComputeMode:
    return _mode


@contextlib.contextmanager
def scoped(**changes: bool) -> Iterator[ComputeMode]:
    """Change the compute mode inside the block and put the old one back after it."""
    global _mode
    old = _mode
    _mode = replace(old, **changes)
    try:
        yield _mode
    finally:
        _mode = old


def export_mode() -> contextlib.AbstractContextManager[ComputeMode]:
    """Plain-op attention (ONNX-expressible, visible to FLOP counters) and the blend custom op."""
    return scoped(fused_attention=False, blend_op=True)


def counting_mode() -> contextlib.AbstractContextManager[ComputeMode]:
    """Plain-op attention so FlopCounterMode sees every matmul."""
    return scoped(fused_attention=False, blend_op=False)
