"""A stem/head pair behind the whole model's Runner interface: clips in, the head's output out (docs/stream.md).

    with PairRunner(lambda: OrtStemHead(folder), "ort-stem+head") as r:
        r.infer({"video": clips})   # (B, T, 3, H, W) -> {"embedding": (B, E)}

The stem runs on all B*T frames at once, then the head on the B windows: what `parity` and `bench`
compare against the whole model, through the same loop as every other runner.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from inti_export.runtime.base import Runner, TensorSpec
from inti_export.vocab import INPUT_NAME


class PairRunner(Runner):
    """Runs `make()`'s stem per frame and head per window as one model with input `video`."""

    def __init__(self, make: Callable[[], object], name: str) -> None:
        super().__init__()
        self._make, self.name, self.pair = make, name, None

    def activate_impl(self) -> None:
        self.pair = self._make()

    def deactivate_impl(self) -> None:
        self.pair = None

    def input_specs(self) -> list[TensorSpec]:
        t, s = self.pair.frames, self.pair.image_size
        return [TensorSpec(INPUT_NAME, np.dtype(np.float32), (None, t, 3, s, s))]

    def infer_impl(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        video = feed[INPUT_NAME]  # (B, T, 3, H, W)
        b, t = video.shape[:2]
        stems = self.pair.stem(np.ascontiguousarray(video.reshape(b * t, *video.shape[2:])))  # (B*T, N, D)
        out = self.pair.head(np.ascontiguousarray(stems.reshape(b, t, *stems.shape[1:])))  # (B, out)
        return {self.pair.output_name: out}
