"""The output folder: Parquet parts (each written atomically), `_errors.jsonl`, and `_embed.json`.

A row is one clip: `video` (absolute path, `shown`), `clip`, `start_s`, `end_s`, `embedding`
(fixed-size list of float32) and `artifact_sha256`. A part holds whole videos only, so the videos
in the parts are done and a re-run skips them. Side files start with `_` or `.`, names pyarrow's
dataset discovery skips, so `pyarrow.parquet.read_table(OUT)` reads the parts alone (docs/corpus.md).
Parquet files are opened by Python, so a folder whose name is not UTF-8 works too.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from inti_export.corpus.names import shown
from inti_export.errors import IntiExportError
from inti_export.fileio import atomic_output, write_atomic, write_json

logger = logging.getLogger(__name__)

ERRORS_FILE = "_errors.jsonl"
MANIFEST_FILE = "_embed.json"
LEGACY_NAMES = {"errors.jsonl": ERRORS_FILE, "embed.json": MANIFEST_FILE}  # before issue 24; renamed on resume
JOURNAL_GLOB = ".commit-*.json"
PART_GLOB = "part-*.parquet"
EMBED_FORMAT = 1
COLUMNS = ("video", "clip", "start_s", "end_s", "embedding", "artifact_sha256")


def schema(dim: int):
    import pyarrow as pa

    return pa.schema([
        ("video", pa.string()), ("clip", pa.int32()), ("start_s", pa.float64()), ("end_s", pa.float64()),
        ("embedding", pa.list_(pa.float32(), dim)), ("artifact_sha256", pa.string()),
    ])


def make_table(videos: list[str], clips, start_s, end_s, embeddings: np.ndarray, artifact_sha256: str):
    """Rows as an Arrow table; `embeddings` is (rows, D)."""
    import pyarrow as pa

    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(len(videos), -1)  # (rows, D)
    dim = embeddings.shape[1]
    flat = pa.array(embeddings.reshape(-1), type=pa.float32())
    return pa.table(
        [
            pa.array(videos, pa.string()), pa.array(np.asarray(clips, np.int32)),
            pa.array(np.asarray(start_s, np.float64)), pa.array(np.asarray(end_s, np.float64)),
            pa.FixedSizeListArray.from_arrays(flat, dim), pa.array([artifact_sha256] * len(videos), pa.string()),
        ],
        schema=schema(dim),
    )


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def write_part(out_dir: Path, run_id: str, index: int, table) -> Path:
    """`part-<run>-<index>.parquet`, renamed into place only when complete."""
    import pyarrow.parquet as pq

    path = out_dir / f"part-{run_id}-{index:05d}.parquet"
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        pq.write_table(table, f)
    return path


def _read(path: Path, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    with open(path, "rb") as f:
        return pq.read_table(f, columns=columns)


def read_rows(out_dir: str | Path, columns: list[str] | None = None):
    """Every part of the output folder as one Arrow table (for callers and tests)."""
    import pyarrow as pa

    parts = sorted(Path(out_dir).glob(PART_GLOB))
    if not parts:
        raise IntiExportError(f"no {PART_GLOB} files in {shown(out_dir)}: run `inti-export embed` first")
    return pa.concat_tables([_read(p, columns) for p in parts])


def done_videos(out_dir: Path, artifact_sha256: str) -> set[str]:
    """Videos (`shown`) embedded in the parts already in `out_dir`; refused if a part holds another artifact's rows."""
    done: set[str] = set()
    for part in sorted(out_dir.glob(PART_GLOB)):
        try:
            table = _read(part, ["video", "artifact_sha256"])
        except (OSError, ValueError) as e:  # pyarrow's errors derive from these
            raise IntiExportError(f"cannot read part {shown(part)} ({e}); move it away and re-run") from e
        other = set(table["artifact_sha256"].unique().to_pylist()) - {artifact_sha256}
        if other:
            raise another_model(out_dir, other.pop(), artifact_sha256)
        done.update(table["video"].unique().to_pylist())
    return done


def another_model(out_dir: Path, there: str, now: str) -> IntiExportError:
    return IntiExportError(
        f"{shown(out_dir)} holds embeddings of another model (artifact sha256 {there[:12]}..., this one"
        f" {now[:12]}...): use another -o, or the artifact it was made with"
    )


def migrate_side_files(out_dir: Path) -> None:
    """Rename the side files of a folder written before issue 24 (`embed.json`) to today's (`_embed.json`)."""
    for old, new in LEGACY_NAMES.items():
        if (out_dir / old).is_file() and not (out_dir / new).exists():
            os.replace(out_dir / old, out_dir / new)
            logger.info("renamed %s to %s in %s", old, new, shown(out_dir))


@dataclass
class ErrorLog:
    """Videos that failed, by path, kept across runs: a later success removes the entry."""

    path: Path
    entries: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: Path) -> ErrorLog:
        log = cls(out_dir / ERRORS_FILE)
        if log.path.is_file():
            for line in log.path.read_text(encoding="utf-8", errors="backslashreplace").splitlines():
                try:
                    row = json.loads(line)
                    log.entries[str(row["video"])] = str(row["reason"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    logger.warning("ignoring a malformed line in %s: %r", log.path, line[:80])
        return log

    def failed(self, video: str, reason: str) -> None:
        self.entries[video] = reason

    def succeeded(self, video: str) -> None:
        self.entries.pop(video, None)

    def save(self) -> None:
        write_atomic(self.path, "".join(json.dumps({"video": v, "reason": r}) + "\n" for v, r in self.entries.items()))


def check_manifest(out_dir: Path, settings: dict[str, Any], artifact_sha256: str) -> None:
    """Write `_embed.json` (sampling, preprocessing, the artifact's hash), or refuse a folder made otherwise.

    A manifest from before issue 24 has no hash: the parts' hashes are checked (`done_videos`) and it is added.
    """
    path = out_dir / MANIFEST_FILE
    want = json.loads(json.dumps({"format": EMBED_FORMAT, **settings}))  # tuples as lists, as read back
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as e:
            raise IntiExportError(f"{shown(path)} is not readable JSON ({e}); use another output folder") from e
        if not isinstance(have, dict):
            raise IntiExportError(f"{shown(path)} is not an embed manifest; use another output folder")
        there = have.pop("artifact_sha256", None)
        if have != want:
            keys = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            diff = "; ".join(f"{k}: {have.get(k)} there, {want.get(k)} now" for k in keys)
            raise IntiExportError(
                f"{shown(out_dir)} holds embeddings made with other settings ({diff}): use another folder"
            )
        if there is not None and there != artifact_sha256:
            raise another_model(out_dir, str(there), artifact_sha256)
        if there is not None:
            return
    write_json(path, {**want, "artifact_sha256": artifact_sha256})


def commit_parts(out_dir: Path, run_id: str, staged: list[Path]) -> list[Path]:
    """Move finished parts from a staging folder into `out_dir`, all or none.

    A journal listing them is written first and removed last; `recover_commits` completes a commit
    that a kill interrupted, so no video is left with only some of its rows.
    """
    journal = out_dir / f".commit-{run_id}.json"
    write_json(journal, [str(p) for p in staged])
    done = _apply(out_dir, staged)
    journal.unlink()
    return done


def _apply(out_dir: Path, staged: list[Path]) -> list[Path]:
    done = []
    for p in staged:
        target = out_dir / p.name
        if p.exists():
            os.replace(p, target)
        done.append(target)
    return done


def recover_commits(out_dir: Path) -> None:
    """Finish every commit a killed run left half done (see `commit_parts`)."""
    for journal in sorted(out_dir.glob(JOURNAL_GLOB)):
        try:
            staged = [Path(p) for p in json.loads(journal.read_text())]
        except (OSError, json.JSONDecodeError) as e:
            raise IntiExportError(f"cannot read the commit journal {shown(journal)} ({e}); move it away and re-run") from e
        missing = [p for p in staged if not p.exists() and not (out_dir / p.name).exists()]
        if missing:
            raise IntiExportError(
                f"commit journal {shown(journal)} lists {shown(missing[0])}, which is gone; move the journal away"
            )
        _apply(out_dir, staged)
        logger.warning("completed an interrupted commit of %d parts into %s", len(staged), shown(out_dir))
        journal.unlink()
