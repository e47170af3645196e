"""The layout of docs/architecture.md, checked on the source (issue 25): imports go only downward, no
`_private` name crosses a package, and no module is over its line budget.

Every module is parsed with `ast`; imports at module level and inside functions count alike. A failure
names the file, the line and the import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "inti_export"

# The layers, top to bottom (docs/architecture.md); a package imports only from layers below its own.
LAYERS = [
    ("cli",),
    ("jobs",),
    ("checks", "calibration", "corpus", "serving"),
    ("runtime", "exporter", "tasks"),
    ("video", "models"),
    ("plugins",),
    ("fileio", "metrics"),  # the ground ...
    ("vocab", "errors"),  # ... whose two leaves every ground module may use
]

GROUND = "fileio metrics vocab errors"
# What each package may import (besides itself and the root `inti_export`, which holds only __version__).
# Read it as the layer rule written out; no package imports another of its own layer (checks,
# calibration, corpus and serving are four independent users of the layers below: a gate that two of
# them need belongs in the lower layer, not in one of them; likewise runtime/exporter/tasks and
# video/models). The one same-layer edge is inside the ground, made explicit by splitting it in two:
# fileio and metrics raise errors and read vocab's enums; errors and vocab import nothing.
ALLOWED = {
    "cli": "jobs checks calibration corpus serving runtime exporter tasks video models plugins " + GROUND,
    "jobs": "checks calibration corpus serving runtime exporter tasks video models plugins " + GROUND,
    "checks": "runtime exporter tasks video models plugins " + GROUND,
    "calibration": "runtime exporter tasks video models plugins " + GROUND,
    "corpus": "runtime exporter tasks video models plugins " + GROUND,
    "serving": "runtime exporter tasks video models plugins " + GROUND,
    "runtime": "video models plugins " + GROUND,
    "exporter": "video models plugins " + GROUND,
    "tasks": "video models plugins " + GROUND,
    "video": "plugins " + GROUND,
    "models": "plugins " + GROUND,
    "plugins": GROUND,
    "fileio": "vocab errors",
    "metrics": "vocab errors",
    "vocab": "",
    "errors": "",
}
CLI_MAX_LINES, MAX_LINES = 200, 400


@dataclass(frozen=True)
class Module:
    path: Path
    name: str  # dotted: inti_export.runtime.trt.build
    package: str  # the first part under inti_export ("runtime"; "vocab" for vocab.py; "" for the root)

    @property
    def where(self) -> str:
        return str(self.path.relative_to(PKG.parent))


def _modules() -> list[Module]:
    found = []
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append(Module(path, ".".join(parts), parts[1] if len(parts) > 1 else ""))
    return found


MODULES = _modules()
MODULE_NAMES = {m.name for m in MODULES}


def _package_of(dotted: str) -> str | None:
    """"runtime" for inti_export.runtime.trt; "" for inti_export; None outside the package."""
    parts = dotted.split(".")
    if parts[0] != "inti_export":
        return None
    return parts[1] if len(parts) > 1 else ""


def _imports(module: Module):
    """(line, imported module, imported names, text) for every import of the package, resolved to absolute."""
    tree = ast.parse(module.path.read_text(), str(module.path))
    here = module.name.split(".") if module.path.name == "__init__.py" else module.name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, (), f"import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*here[: len(here) - node.level + 1], *filter(None, [node.module])])
            names = tuple(a.name for a in node.names)
            yield node.lineno, base, names, f"from {'.' * node.level}{node.module or ''} import {', '.join(names)}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_the_table_is_the_layer_rule():
    """The table names every package, and allows only packages of lower layers (the ground's two halves
    included): a same-layer or upward edge cannot slip in through the table itself."""
    layer = {p: i for i, names in enumerate(LAYERS) for p in names}
    assert set(ALLOWED) == set(layer)
    assert {m.package for m in MODULES} - {""} <= set(ALLOWED), "a package the table does not name"
    for package, allowed in ALLOWED.items():
        for target in allowed.split():
            assert layer[target] > layer[package], f"{package} -> {target} is not downward"


def test_imports_only_go_downward():
    bad = []
    for module in MODULES:
        allowed = set(ALLOWED.get(module.package, "").split()) | {module.package, ""}
        for line, target, names, text in _imports(module):
            to = _package_of(target)
            if to == "" and names:  # `from inti_export import x`: x is a package or a root name
                for name in names:
                    if name in ALLOWED and name not in allowed:
                        bad.append(f"{module.where}:{line}: {text} ({module.package or 'inti_export'} -> {name})")
            elif to is not None and to not in allowed:
                bad.append(f"{module.where}:{line}: {text} ({module.package or 'inti_export'} -> {to})")
    if bad:
        pytest.fail("imports that go up or sideways (docs/architecture.md):\n" + "\n".join(bad), pytrace=False)


def test_no_private_name_crosses_a_package():
    """Neither `from inti_export.other import _name`, nor a private module (`other._mod`), nor
    `module._name` on a module of another package."""
    bad = []
    for module in MODULES:
        bound = {}  # local name -> module of another package, to catch `alias._private`
        for line, target, names, text in _imports(module):
            to = _package_of(target)
            if to is None or to == module.package:
                continue
            hidden = [p for p in target.split(".") if _private(p)]
            hidden += [n for n in names if _private(n)]
            if hidden:
                bad.append(f"{module.where}:{line}: {text} (private {', '.join(hidden)} of {to or 'inti_export'})")
            for name in names:
                if f"{target}.{name}" in MODULE_NAMES and _package_of(f"{target}.{name}") != module.package:
                    bound[name] = f"{target}.{name}"
        tree = ast.parse(module.path.read_text(), str(module.path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname and _package_of(alias.name) not in (None, module.package):
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and _private(node.attr) and isinstance(node.value, ast.Name)
                    and node.value.id in bound):
                bad.append(f"{module.where}:{node.lineno}: {node.value.id}.{node.attr} (private name of {bound[node.value.id]})")
    if bad:
        pytest.fail("private names used across packages:\n" + "\n".join(bad), pytrace=False)


def test_no_module_is_over_its_line_budget():
    """At most 400 lines a module (aim for 250), 200 for a CLI module: a longer one holds more than one job."""
    bad = []
    for module in MODULES:
        budget = CLI_MAX_LINES if module.package == "cli" else MAX_LINES
        lines = len(module.path.read_text().splitlines())
        if lines > budget:
            bad.append(f"{module.where}: {lines} lines, over {budget}")
    if bad:
        pytest.fail("modules over their line budget:\n" + "\n".join(bad), pytrace=False)
