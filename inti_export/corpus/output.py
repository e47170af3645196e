"""The output folder: Parquet parts (each written atomically), `errors.jsonl`, and `embed.json`.

A row is one clip: `video` (absolute path), `clip`, `start_s`, `end_s`, `embedding`
(fixed-size list of float32) and `artifact_sha256`. A part holds whole videos only, so the videos
in the parts with the current artifact's hash are done and a re-run skips them.
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

from inti_export.errors import IntiExportError
from inti_export.fileio import atomic_output, write_atomic, write_json

logger = logging.getLogger(__name__)

ERRORS_FILE = "errors.jsonl"
MANIFEST_FILE = "embed.json"
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
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_rows(out_dir: str | Path, columns: list[str] | None = None):
    """Every part of the output folder as one Arrow table (for callers and tests)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted(Path(out_dir).glob(PART_GLOB))
    if not parts:
        raise IntiExportError(f"no {PART_GLOB} files in {out_dir}: run `inti-export embed` first")
    return pa.concat_tables([pq.read_table(p, columns=columns) for p in parts])


def done_videos(out_dir: Path, artifact_sha256: str) -> set[str]:
    """Videos with rows made by this artifact, from the parts already in `out_dir`."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    done: set[str] = set()
    for part in sorted(out_dir.glob(PART_GLOB)):
        try:
            table = pq.read_table(part, columns=["video", "artifact_sha256"])
        except (OSError, ValueError) as e:  # pyarrow's errors derive from these
            raise IntiExportError(f"cannot read part {part} ({e}); move it away and re-run") from e
        mine = table.filter(pc.equal(table["artifact_sha256"], artifact_sha256))
        done.update(mine["video"].unique().to_pylist())
    return done


@dataclass
class ErrorLog:
    """Videos that failed, by path, kept across runs: a later success removes the entry."""

    path: Path
    entries: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, out_dir: Path) -> ErrorLog:
        log = cls(out_dir / ERRORS_FILE)
        if log.path.is_file():
            for line in log.path.read_text().splitlines():
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


def check_manifest(out_dir: Path, settings: dict[str, Any]) -> None:
    """Write `embed.json` (the sampling and preprocessing), or refuse a folder made with other settings."""
    path = out_dir / MANIFEST_FILE
    want = json.loads(json.dumps({"format": EMBED_FORMAT, **settings}))  # tuples as lists, as read back
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise IntiExportError(f"{path} is not readable JSON ({e}); use another output folder") from e
        if have != want:
            keys = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            diff = "; ".join(f"{k}: {have.get(k)} there, {want.get(k)} now" for k in keys)
            raise IntiExportError(f"{out_dir} holds embeddings made with other settings ({diff}): use another folder")
        return
    write_json(path, want)


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
            raise IntiExportError(f"cannot read the commit journal {journal} ({e}); move it away and re-run") from e
        missing = [p for p in staged if not p.exists() and not (out_dir / p.name).exists()]
        if missing:
            raise IntiExportError(f"commit journal {journal} lists {missing[0]}, which is gone; move the journal away")
        _apply(out_dir, staged)
        logger.warning("completed an interrupted commit of %d parts into %s", len(staged), out_dir)
        journal.unlink()
