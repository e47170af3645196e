"""What turns decoded clips into embeddings: the whole model, or the stem once per frame and the head per clip.

    FullModel:  clips (B, T, 3, H, W) -> runner -> (B, D)
    SplitModel: frames new to a video -> stem (F, N, D) -> ring keyed by frame index -> (T, N, D) per clip
                -> head (B, T, N, D) -> (B, D)

The model is cut at its first InTI layer (docs/stream.md, "The split"): everything before it sees one
frame at a time, so a frame's stem is the same in every clip that holds it, and sliding windows that
overlap (`--stride S`, S < T) share T - S stems each; this is `StreamSession`'s computation with
`--drop none`, applied to embed's windows. A video's ring holds only the stems from its latest clip's
first frame on (at most T plus one chunk's new frames), and is dropped when the video ends.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from inti_export.vocab import INPUT_NAME

logger = logging.getLogger(__name__)

STEM_FRAMES = 64  # frames per stem call at most (bounds the stem's activations)


class FullModel:
    """The whole model on each clip (a Runner: ORT, OpenVINO, TensorRT, PyTorch)."""

    split = False

    def __init__(self, runner) -> None:
        self.runner = runner

    def __enter__(self) -> FullModel:
        self.runner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.runner.__exit__(*exc)

    def prepare(self, vid: int, indices: Sequence[Sequence[int]], clips: np.ndarray) -> list[np.ndarray]:
        """Per clip, what `infer` takes: the clip itself (T, 3, H, W)."""
        return list(clips)

    def infer(self, feeds: list[np.ndarray]) -> np.ndarray:  # B x (T, 3, H, W) -> (B, D)
        out = self.runner.infer({INPUT_NAME: np.stack(feeds)})
        return next(iter(out.values())).reshape(len(feeds), -1)

    def forget(self, vid: int) -> None:
        pass


class SplitModel:
    """A `runtime.stream.StemHead`: stems per frame, kept per video by frame index, the head per clip.

    With `share=False` every clip's T stems are computed afresh (no ring): the same arithmetic, no reuse.
    """

    def __init__(self, pair, share: bool = True) -> None:
        self.pair, self.split = pair, share
        self.rings: dict[int, dict[int, np.ndarray]] = {}  # video id -> frame index -> stem (N, D)
        self.stem_frames = 0  # frames whose stem was computed
        self.clip_frames = 0  # frames in the clips prepared (what the whole model would have computed)

    def __enter__(self) -> SplitModel:
        return self

    def __exit__(self, *exc) -> None:
        self.rings.clear()

    def _stems(self, frames: np.ndarray) -> np.ndarray:  # (F, 3, H, W) -> (F, N, D)
        parts = [self.pair.stem(np.ascontiguousarray(frames[i:i + STEM_FRAMES]))
                 for i in range(0, len(frames), STEM_FRAMES)]
        self.stem_frames += len(frames)
        return np.concatenate(parts)

    def prepare(self, vid: int, indices: Sequence[Sequence[int]], clips: np.ndarray) -> list[np.ndarray]:
        """Per clip of the chunk `clips` (k, T, 3, H, W) whose frames are `indices` (in order), its stems (T, N, D)."""
        self.clip_frames += clips.shape[0] * clips.shape[1]
        if not self.split:
            stems = self._stems(clips.reshape(-1, *clips.shape[2:]))  # (k*T, N, D)
            return list(stems.reshape(clips.shape[0], clips.shape[1], *stems.shape[1:]))
        ring = self.rings.setdefault(vid, {})
        new: dict[int, tuple[int, int]] = {}  # frame index -> (clip, slot) of its first occurrence
        for k, idx in enumerate(indices):
            for t, i in enumerate(idx):
                if i not in ring and i not in new:
                    new[i] = (k, t)
        if new:
            stems = self._stems(np.stack([clips[k, t] for k, t in new.values()]))
            ring.update(zip(new, stems, strict=True))
        feeds = []
        for idx in indices:
            feeds.append(np.stack([ring[i] for i in idx]))  # (T, N, D)
            for i in [i for i in ring if i < idx[0]]:  # later clips start no earlier: these are done
                del ring[i]
        return feeds

    def infer(self, feeds: list[np.ndarray]) -> np.ndarray:  # B x (T, N, D) -> (B, D)
        return self.pair.head(np.stack(feeds)).reshape(len(feeds), -1)

    def forget(self, vid: int) -> None:
        self.rings.pop(vid, None)


def make_embedder(model, split: bool):
    """SplitModel when `model` (a corpus ModelSource) can run its stem and head apart, sharing stems unless
    `split` is False; else FullModel on its runner. A stream pair always runs as its two halves."""
    if model.is_pair or (split and model.can_split):
        return SplitModel(model.stem_head(), share=split)
    return FullModel(model.make_runner())
