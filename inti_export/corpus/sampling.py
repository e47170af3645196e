"""Which clips a video gives: N evenly spaced segments (as parity samples them) or sliding windows."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from inti_export.errors import IntiExportError, VideoError
from inti_export.video.decode import sample_indices


@dataclass(frozen=True)
class Segment:
    """One clip of a video: its index, the frames it samples, and the span [start_s, end_s) it covers."""

    clip: int
    indices: tuple[int, ...]
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Sampling:
    """`clips_per_video` equal segments, `frames` points at sub-segment centres (calibration's
    `sample_indices`, so segment c of N is the clip parity computes); or, with `stride`, windows of
    `frames` consecutive frames starting every `stride` frames."""

    clips_per_video: int | None = None
    stride: int | None = None

    def __post_init__(self) -> None:
        if (self.clips_per_video is None) == (self.stride is None):
            raise IntiExportError("choose one of --clips-per-video N and --stride FRAMES")
        value = self.clips_per_video if self.stride is None else self.stride
        if int(value) != value or value < 1:
            name = "--clips-per-video" if self.stride is None else "--stride"
            raise IntiExportError(f"{name}={value!r} must be a positive integer")

    def to_dict(self) -> dict[str, int | None]:
        return asdict(self)

    def segments(self, num_frames: int, frames: int, fps: float) -> list[Segment]:
        """The clips of a video with `num_frames` frames at `fps`; VideoError when it is too short."""
        if num_frames < frames:
            raise VideoError(f"video is too short: {num_frames} frames, fewer than the model's {frames}")
        if self.stride is None:
            n = self.clips_per_video
            if num_frames < frames * n:
                raise VideoError(
                    f"video is too short: {num_frames} frames, fewer than {frames} frames x {n} clips;"
                    " use fewer --clips-per-video"
                )
            seg = num_frames / n
            return [
                Segment(c, tuple(sample_indices(num_frames, frames, c, n)), c * seg / fps, (c + 1) * seg / fps)
                for c in range(n)
            ]
        starts = range(0, num_frames - frames + 1, self.stride)
        return [
            Segment(k, tuple(range(s, s + frames)), s / fps, (s + frames) / fps) for k, s in enumerate(starts)
        ]
