"""This machine's CPU flags, from /proc/cpuinfo (x86 `flags`, Arm `Features`): read once, parsed in one place."""

from __future__ import annotations

import functools
import os


def available_cores() -> int:
    """The cores this process may run on (its affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpuinfo_text() -> str:
    """The text of /proc/cpuinfo, or "" where it cannot be read (other systems)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def flags_from(cpuinfo: str) -> set[str]:
    """The feature flags listed in /proc/cpuinfo's text (empty when it lists none)."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("flags", "Features"):
            flags |= set(value.split())
    return flags
