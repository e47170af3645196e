"""Print `name==version` for every package inti-export's extras resolve to in this Python (constraints.txt).

Walks the requirements of pyproject.toml's dependencies and the given extras through the installed
distributions' own metadata (markers evaluated, extras followed), so packages this environment holds
for other reasons are left out, and so is inti-export itself. Used by `.ci/relock` (README, "Installs").
Usage: python .ci/freeze.py cpu,dev,trt-rtx,quant,serve,ray,openvino > constraints.txt
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _wanted(req: Requirement, extras: set[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in (extras or {""}))


def resolve(extras: list[str]) -> dict[str, str]:
    """{distribution name: installed version} for the project's requirements with `extras`, transitively."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        if extra not in project["optional-dependencies"]:
            sys.exit(f"error: pyproject.toml has no extra {extra!r}: choose from {sorted(project['optional-dependencies'])}")
        todo += [Requirement(r) for r in project["optional-dependencies"][extra]]
    seen: set[tuple[str, frozenset[str]]] = set()
    pinned: dict[str, str] = {}
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            sys.exit(f"error: {req} is required but not installed here: install the project with its extras first")
        pinned[dist.metadata["Name"]] = dist.version
        for line in dist.requires or []:
            child = Requirement(line)
            if _wanted(child, set(req.extras)):
                todo.append(child)
    pinned.pop("inti-export", None)
    return pinned


def main() -> None:
    extras = [e for e in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if e]
    pinned = resolve(extras)
    print(f"# Exact versions the test suite passed with (extras {','.join(extras)}); written by .ci/relock.")
    print("# Install with `pip install -c constraints.txt -e '.[...]'`; pyproject.toml keeps the ranges.")
    for name in sorted(pinned, key=str.lower):
        print(f"{name}=={pinned[name]}")


if __name__ == "__main__":
    main()
