"""An embedding job (what to embed, with what, where) and its report; shared by both engines."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inti_export.corpus.lock import output_lock
from inti_export.corpus.model import ModelSource
from inti_export.corpus.names import shown
from inti_export.corpus.output import ErrorLog, check_manifest, done_videos, migrate_side_files, recover_commits
from inti_export.corpus.sampling import Sampling
from inti_export.errors import IntiExportError
from inti_export.fileio import check_output_dir
from inti_export.video.preprocess import Preprocess

logger = logging.getLogger(__name__)

EMBED_SCHEMA = "inti-export/embed/1"


def default_decode_workers() -> int:
    """One decoding process per core but one, which inference keeps busy."""
    return max(1, (os.cpu_count() or 2) - 1)


@dataclass(frozen=True)
class EmbedJob:
    """Videos (already expanded), the model, the output folder and how to cut and batch clips."""

    videos: tuple[Path, ...]
    model: ModelSource
    output: Path
    sampling: Sampling
    batch: int = 8
    decode_workers: int = field(default_factory=default_decode_workers)
    part_rows: int = 4096  # rows per Parquet part (whole videos; a part may hold more)
    split: bool = True  # share each frame's stem between the clips that hold it, where the runner can split
    # where the runner, threads and batch came from (vocab.SettingSource values), and the optimize choice read
    settings_from: dict[str, str] = field(default_factory=dict, compare=False)
    best: dict[str, Any] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("batch", "decode_workers", "part_rows"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise IntiExportError(f"--{name.replace('_', '-')}={value!r} must be a positive integer")
        if not self.videos:
            raise IntiExportError("no videos to embed: pass video files, folders, globs or a .txt list")
        if self.output.exists() and not self.output.is_dir():
            raise IntiExportError(f"output {shown(self.output)} is a file: -o takes a folder (created if missing)")
        if not self.output.parent.is_dir():
            raise IntiExportError(
                f"output folder's parent {shown(self.output.parent)} does not exist: create it first"
            )

    @property
    def split_wanted(self) -> bool:
        """Whether the local engine shares stems: not turned off (--no-split), and the runner can split."""
        return self.split and self.model.can_split

    def check_report(self, report: Path, sources: tuple[str | os.PathLike, ...] = ()) -> None:
        """Refuse a `--report` path that is one of the job's inputs or inside its output folder.

        Inputs: the videos, the `.txt` lists among `sources`, the artifact and its manifest, the checkpoint.
        """
        from inti_export.fileio import check_output_path

        where = report.expanduser().resolve()
        if where in set(self.videos):
            raise IntiExportError(f"--report {shown(report)} is a video to embed: write the report elsewhere")
        if where.is_relative_to(self.output.resolve()):
            raise IntiExportError(
                f"--report {shown(report)} is inside the output folder {shown(self.output)}, which is read as"
                " one Parquet table: write the report elsewhere"
            )
        model = self.model
        inputs = [model.artifact, model.checkpoint, *(s for s in sources if Path(s).is_file())]
        if model.is_pair:  # its files and their manifests
            inputs += [model.artifact / f for f in ("stem.onnx", "head.onnx", "stem.onnx.json", "head.onnx.json")]
        elif model.artifact is not None:
            inputs.append(model.artifact.with_name(model.artifact.name + ".json"))  # its manifest
        check_output_path(report, "--report", inputs=inputs)


@dataclass
class Prepared:
    """What both engines need before decoding: preprocessing, artifact hash, the videos left to do."""

    pre: Preprocess
    sha256: str
    pending: list[Path]
    skipped: int
    errors: ErrorLog


@contextlib.contextmanager
def prepared(job: EmbedJob) -> Iterator[Prepared]:
    """Check the model, lock the folder (one run at a time), record the settings, find the videos done.

    The lock is held until the block ends; a folder made with other settings or another model is refused.
    """
    check_output_dir(job.output, "-o")  # a read-only or file path: one line before any work
    pre = job.model.preprocess()
    sha = job.model.sha256()
    job.output.mkdir(exist_ok=True)
    with output_lock(job.output):
        migrate_side_files(job.output)
        recover_commits(job.output)
        done = done_videos(job.output, sha)  # first: refuses parts of another model before the manifest is touched
        check_manifest(job.output, {"sampling": job.sampling.to_dict(), "preprocess": asdict(pre)}, sha)
        pending = [v for v in job.videos if shown(v) not in done]
        if done:
            logger.info("%d of %d videos already embedded in %s; skipping them", len(job.videos) - len(pending),
                        len(job.videos), shown(job.output))
        yield Prepared(pre, sha, pending, len(job.videos) - len(pending), ErrorLog.load(job.output))


@dataclass
class EmbedProgress:
    videos_done: int
    videos_total: int
    clips: int
    errors: int
    elapsed_s: float


@dataclass
class EmbedReport:
    """What a run did: counts, throughput, and the videos that failed (path -> reason)."""

    output: str
    engine: str  # "local" or "ray"
    runner: str
    artifact_sha256: str
    videos: int  # given
    skipped: int  # already embedded with this artifact
    embedded: int
    failed: int
    clips: int
    parts: list[str]
    seconds: float
    clips_per_s: float
    errors: dict[str, str]
    batch: int = 0
    batch_source: str = ""  # flag, best (an optimize OUT/best) or machine (docs/corpus.md, "Batch")
    split: bool = False  # each frame's stem computed once and shared by the clips that hold it
    settings_from: dict[str, str] = field(default_factory=dict)  # runner, threads, batch -> flag|best|machine|default
    best: dict[str, Any] | None = None  # the optimize choice embedded with (--artifact OUT/best)
    schema: str = EMBED_SCHEMA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_report(
    job: EmbedJob, prep: Prepared, engine: str, parts: list[str], errors_now: dict[str, str], counts: dict, start: float,
    split: bool = False,
) -> EmbedReport:
    """The report of a run that started at `start` (perf_counter)."""
    seconds = time.perf_counter() - start
    return EmbedReport(
        output=shown(job.output), engine=engine, runner=job.model.kind, artifact_sha256=prep.sha256,
        videos=len(job.videos), skipped=prep.skipped, embedded=counts["embedded"], failed=len(errors_now),
        clips=counts["clips"], parts=parts, seconds=seconds,
        clips_per_s=counts["clips"] / seconds if seconds > 0 else 0.0, errors=errors_now, batch=job.batch,
        batch_source=job.settings_from.get("batch", "flag"), split=split,
        settings_from=dict(job.settings_from), best=job.best,
    )
