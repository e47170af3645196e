"""The Python backend stub's interpreter: its shared libpython, its NumPy 1 folder, and a check that it imports.

The stub embeds this interpreter's libpython and puts the stub folder (NumPy 1, ml_dtypes<0.6: the
stubs of nvidia-pytriton 0.7.0 are built against NumPy 1) first on its sys.path, then the launcher's
sys.path (repository.py's model.py). `check_stub_imports` runs this interpreter with the same path, in
the same order, and imports what the repository's models will, so an incompatible package is named
with its fix before tritonserver starts, not as a model-load failure inside it (docs/serving.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from inti_export.serving.process import ServerError

STUB_SITE_ENV = "INTI_TRITON_STUB_SITE"  # a folder with numpy<2 for the stub (see stub_site)
# What the stub folder holds, with the ranges that work beside NumPy 1 (constraints-stub.txt pins them).
STUB_PINS = {"numpy": "numpy<2", "ml_dtypes": "ml_dtypes<0.6"}
_OPTIONAL = ("ml_dtypes",)  # imported first so that a failure inside it is named as its own
CHECK_TIMEOUT_S = 180.0


class StubError(ServerError):
    """The Python backend stub cannot run here: no shared libpython, no NumPy 1 folder, a package it cannot import."""


def libpython() -> Path:
    """This interpreter's shared libpython, which the backend stub loads; a one-line error when it has none."""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    path = Path(sysconfig.get_config_var("LIBDIR") or "") / name
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not path.is_file():
        raise StubError(
            f"the Python backend stub needs a shared libpython, and {sys.executable} (Python {sys.version.split()[0]})"
            " was built without --enable-shared: run inti-export from a Python that has one, e.g. a venv of"
            " Debian's /usr/bin/python3.11 (`python3.11 -m venv` then `pip install 'inti-export[serve]'`),"
            " or rebuild pyenv's with PYTHON_CONFIGURE_OPTS=--enable-shared"
        )
    return path


def backend_stub(home: Path) -> Path:
    """The stub binary for this interpreter's Python version in the tritonserver folder `home`."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        folder = home / "python_backend_stubs"
        have = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        raise StubError(
            f"{home} has no Python backend stub for Python {version} (it has {have}): run inti-export from one of those"
        )
    return stub


def stub_site() -> Path | None:
    """A folder with numpy<2 for the stub, when this interpreter's numpy is 2.x; None when it is 1.x.

    Under NumPy 2 every tensor the stub hands to Python has broken strides (a BYTES input reads as its
    first byte repeated). The repository's model.py puts this folder first on the stub's sys.path.
    """
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2:
        return None
    folder = Path(os.environ.get(STUB_SITE_ENV) or Path.home() / ".cache" / "inti-export" / "triton-stub-site")
    if not any(folder.glob("numpy-1.*.dist-info")):
        raise StubError(
            f"the Triton Python backend stub needs NumPy 1 and this Python has NumPy {numpy.__version__}:"
            f" run `{install_command(folder, list(STUB_PINS))}` once (or set {STUB_SITE_ENV})"
        )
    return folder


def install_command(folder: Path | None, packages: list[str]) -> str:
    """The pip command that puts `packages` (with their NumPy-1 ranges) into the stub folder."""
    specs = " ".join(f"'{STUB_PINS.get(p, p)}'" for p in packages)
    if folder is None:
        return f"{sys.executable} -m pip install {specs}"
    return f"{sys.executable} -m pip install --upgrade --target {folder} {specs}"


# Runs in a child interpreter: the path set up as model.py does, then each module imported in order.
# On failure it prints the module, the top-level package the failing frame belongs to, and the error.
_PROBE = r"""
import importlib, importlib.util, json, os, sys, traceback
paths = [p for p in os.environ[sys.argv[1]].split(os.pathsep) if p]
sys.path[:0] = [p for p in paths if p not in sys.path]
optional = set(sys.argv[2].split(","))

def culprit(e, module):
    if isinstance(e, ModuleNotFoundError) and e.name:
        return e.name.split(".")[0]
    roots = sorted((os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)), key=len, reverse=True)
    name = module.split(".")[0]
    for frame in traceback.extract_tb(e.__traceback__):
        path = os.path.realpath(frame.filename)
        for root in roots:
            if path.startswith(root + os.sep):
                name = os.path.relpath(path, root).split(os.sep)[0].removesuffix(".py")
                break
    return name

for module in sys.argv[3:]:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as e:
        if module in optional and e.name == module:
            continue
        bad = e
    except BaseException as e:
        bad = e
    else:
        continue
    package = culprit(bad, module)
    try:
        origin = getattr(importlib.util.find_spec(package), "origin", None) or ""
    except (ImportError, ValueError):
        origin = ""
    text = " ".join(str(bad).split()) or type(bad).__name__
    print(json.dumps({"module": module, "package": package, "origin": origin,
                      "error": f"{type(bad).__name__}: {text}"[:300]}))
    sys.exit(3)
import numpy
print(json.dumps({"numpy": numpy.__version__}))
"""


def stub_modules(repo: Path, models: list[str]) -> list[str]:
    """What the repository's Python-backend models import in the stub: ONNX Runtime (and onnx) or the
    engine's TensorRT module, PyAV for a video model, then this package's model classes."""
    from inti_export.serving.config import CONFIG_NAME, read_config

    modules: list[str] = []
    for name in models:
        cfg = read_config(repo / name / CONFIG_NAME)
        if cfg.backend != "python":
            continue
        params = {k: v.string_value for k, v in cfg.parameters.items()}
        if params.get("runner") == "trt":
            modules.append(_trt_module(repo / name, params.get("artifact", "model.plan")))
        elif params.get("runner") == "ov":
            modules += ["onnx", "openvino"]
        elif "artifact" in params:
            modules += ["onnx", "onnxruntime"]
            if cfg.HasField("sequence_batching"):  # the stateful stream model (serving/stream_repo.py)
                modules.append("inti_export.serving.stream_backend")
        else:
            modules.append("av")  # the video model decodes with PyAV (video/decode.py)
    modules.append("inti_export.serving.python_backend")
    return list(dict.fromkeys(modules))


def _trt_module(folder: Path, artifact: str) -> str:
    """`tensorrt` or `tensorrt_rtx`, by the engine manifest's runtime (runtime/trt/loader.py)."""
    for manifest in sorted(folder.glob(f"*/{artifact}.json")):
        try:
            runtime = json.loads(manifest.read_text()).get("runtime", "tensorrt")
        except (OSError, ValueError, AttributeError):
            continue
        return str(runtime).replace("-", "_")
    return "tensorrt"


def check_stub_imports(env: dict[str, str], path_env: str, modules: list[str], folder: Path | None) -> str:
    """Import `modules` as the stub will (`path_env` in `env` holds its sys.path); the stub's NumPy version.

    A package that fails is refused in one line naming it, where it came from, and the pip command that
    puts a release working with NumPy 1 into the stub folder.
    """
    order = [m for m in ("numpy", *_OPTIONAL) if m not in modules] + list(modules)
    command = [sys.executable, "-I", "-c", _PROBE, path_env, ",".join(_OPTIONAL), *order]
    try:
        res = subprocess.run(command, env=env, capture_output=True, text=True, timeout=CHECK_TIMEOUT_S)
    except subprocess.TimeoutExpired as e:
        raise StubError(f"the stub's imports ({', '.join(order)}) took over {CHECK_TIMEOUT_S:.0f} s: is the disk busy?") from e
    last = (res.stdout.strip().splitlines() or [""])[-1]
    try:
        found = json.loads(last)
    except json.JSONDecodeError:
        found = {}
    if res.returncode == 0 and "numpy" in found:
        return found["numpy"]
    if "package" not in found:
        tail = " ".join((res.stderr or res.stdout).split())[-300:]
        raise StubError(f"the stub's interpreter {sys.executable} failed (exit {res.returncode}): {tail}")
    package, origin = found["package"], found["origin"]
    where = f" ({origin})" if origin else ""
    inside = folder is not None and origin and Path(origin).resolve().is_relative_to(folder.resolve())
    source = "the stub folder" if inside else "this environment"
    fix = install_command(folder, [package])
    if package not in STUB_PINS:
        fix += f" (a release of {package} built for NumPy 1)"
    raise StubError(
        f"the Triton stub cannot import {package} from {source}{where}: {found['error']}"
        f" (importing {found['module']}): run `{fix}`"
    )
