"""Labelled synthetic video tasks: real encoded videos whose class needs time to tell (docs/task.md)."""

from inti_export.tasks.motion import CLASSES, SPLIT_SEEDS, make_split, read_labels

__all__ = ["CLASSES", "SPLIT_SEEDS", "make_split", "read_labels"]
