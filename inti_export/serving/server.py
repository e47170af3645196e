"""A real Triton Inference Server process on a repository: the `tritonserver` of the nvidia-pytriton wheel.

The wheel ships the binary, the Python backend and one backend stub per Python version. We run the
binary directly on our own repository (no PyTriton API, so no restricted statistics endpoints), bound
to 127.0.0.1, in its own process group so that `stop()` ends the server and every stub it started.

The Python backend stub embeds a shared libpython: the stub for this interpreter's version is linked
against `libpython3.X.so.1.0`, which we point at this interpreter's own library (`LD_LIBRARY_PATH`);
the stub ignores PYTHONPATH, so our `sys.path` goes in INTI_EXPORT_SYS_PATH for the repository's
model.py to prepend, so the stub imports this package, onnxruntime and the
clip code exactly as the interpreter that started the server does (docs/serving.md).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from inti_export.errors import IntiExportError, RuntimeUnavailableError
from inti_export.serving.config import check_repository
from inti_export.serving.repository import SYS_PATH_ENV

log = logging.getLogger(__name__)

STUB_SITE_ENV = "INTI_TRITON_STUB_SITE"  # a folder with numpy<2 for the stub (see stub_site)
HOME_ENV = "INTI_TRITONSERVER_HOME"  # a folder holding bin/tritonserver, backends/, python_backend_stubs/
HOST = "127.0.0.1"
_INSTALL = "pip install --no-deps nvidia-pytriton==0.7.0"
_FAILED_LOAD = re.compile(r"failed to load '([^']+)' version \d+: (.*?)\"?$")


class ServerError(IntiExportError, RuntimeError):
    """The server could not start, a model did not load, or a port is taken."""


def tritonserver_home() -> Path:
    """The folder with bin/tritonserver: $INTI_TRITONSERVER_HOME, else the installed nvidia-pytriton wheel's."""
    env = os.environ.get(HOME_ENV)
    if env:
        home = Path(env)
    else:
        spec = importlib.util.find_spec("pytriton")  # located, not imported: its own deps are not needed
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeUnavailableError(
                f"no tritonserver: install the nvidia-pytriton wheel that carries it ({_INSTALL}), or set {HOME_ENV}"
            )
        home = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (home / "bin" / "tritonserver").is_file():
        raise RuntimeUnavailableError(f"{home} has no bin/tritonserver: reinstall it ({_INSTALL}) or fix {HOME_ENV}")
    return home


def libpython() -> Path:
    """This interpreter's shared libpython, which the backend stub loads; a one-line error when it has none."""
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY") or ""
    path = Path(sysconfig.get_config_var("LIBDIR") or "") / name
    if not sysconfig.get_config_var("Py_ENABLE_SHARED") or not path.is_file():
        raise ServerError(
            f"the Python backend stub needs a shared libpython, and {sys.executable} (Python {sys.version.split()[0]})"
            " was built without --enable-shared: run inti-export from a Python that has one, e.g. a venv of"
            " Debian's /usr/bin/python3.11 (`python3.11 -m venv` then `pip install 'inti-export[serve]'`),"
            " or rebuild pyenv's with PYTHON_CONFIGURE_OPTS=--enable-shared"
        )
    return path


def backend_stub(home: Path) -> Path:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        have = (
            sorted(p.name for p in (home / "python_backend_stubs").iterdir())
            if (home / "python_backend_stubs").is_dir()
            else []
        )
        raise ServerError(
            f"{home} has no Python backend stub for Python {version} (it has {have}): run inti-export from one of those"
        )
    return stub


def stub_site() -> Path | None:
    """A folder with numpy<2 for the stub, when this interpreter's numpy is 2.x; None when it is 1.x.

    The stubs in nvidia-pytriton 0.7.0 are built against NumPy 1: under NumPy 2 every tensor they hand
    to Python has broken strides (a BYTES input reads as its first byte repeated). The repository's
    model.py puts this folder first on the stub's sys.path (docs/serving.md).
    """
    import numpy

    if int(numpy.__version__.split(".")[0]) < 2:
        return None
    folder = Path(os.environ.get(STUB_SITE_ENV) or Path.home() / ".cache" / "inti-export" / "triton-stub-site")
    if not any(folder.glob("numpy-1.*.dist-info")):
        raise ServerError(
            f"the Triton Python backend stub needs NumPy 1 and this Python has NumPy {numpy.__version__}:"
            f" run `{sys.executable} -m pip install --target {folder} 'numpy<2'` once (or set {STUB_SITE_ENV})"
        )
    return folder


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def check_port(port: int, what: str) -> None:
    """Refuse a port someone listens on (Triton itself would not say so: it binds with SO_REUSEPORT)."""
    if not 0 < port < 65536:
        raise ServerError(f"{what} port {port} is outside 1-65535: pick another")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as e:
            raise ServerError(
                f"{what} port {port} on {HOST} is in use ({e.strerror}): pick another with --{what}-port"
            ) from e
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        if s.connect_ex((HOST, port)) == 0:
            raise ServerError(f"{what} port {port} on {HOST} is in use: pick another with --{what}-port")


@dataclass(frozen=True)
class Endpoints:
    http: str
    grpc: str
    metrics: str


class TritonServer:
    """`with TritonServer(repo) as server:` starts tritonserver, waits until it and every model is ready, stops it.

    Ports default to free ones. `log_path` keeps the server's log (default: a temporary file).
    """

    def __init__(
        self,
        repository: str | os.PathLike,
        http_port: int | None = None,
        grpc_port: int | None = None,
        metrics_port: int | None = None,
        ready_timeout: float = 300.0,
        log_path: str | os.PathLike | None = None,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self.ready_timeout = ready_timeout
        self.log_path = Path(log_path) if log_path else None
        self.models: list[str] = []
        self.process: subprocess.Popen | None = None
        self._workdir: Path | None = None

    # -- lifecycle --------------------------------------------------------------------------------
    def __enter__(self) -> TritonServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoints(self) -> Endpoints:
        p = self.ports
        return Endpoints(
            f"http://{HOST}:{p['http']}", f"grpc://{HOST}:{p['grpc']}", f"http://{HOST}:{p['metrics']}/metrics"
        )

    def start(self) -> Endpoints:
        """Start the server and return once it and every model report ready (or raise, leaving nothing running)."""
        self.models = check_repository(self.repository)
        home = tritonserver_home()
        lib = libpython()
        stub = backend_stub(home)
        overlay = stub_site()
        for what, port in self.ports.items():
            if port is None:
                self.ports[what] = free_port()
            else:
                check_port(port, what)
        if len(set(self.ports.values())) < 3:
            raise ServerError(f"http, grpc and metrics ports must differ, got {self.ports}")
        self._workdir = Path(tempfile.mkdtemp(prefix="inti-triton-"))
        try:
            backends = self._backend_dir(home, stub)
            if self.log_path is None:
                self.log_path = self._workdir / "tritonserver.log"
            command = [
                str(home / "bin" / "tritonserver"),
                f"--model-repository={self.repository}",
                f"--backend-directory={backends}",
                f"--http-address={HOST}",
                f"--http-port={self.ports['http']}",
                f"--grpc-address={HOST}",
                f"--grpc-port={self.ports['grpc']}",
                f"--metrics-address={HOST}",
                f"--metrics-port={self.ports['metrics']}",
                "--allow-metrics=true",
                "--allow-gpu-metrics=false",
                "--disable-auto-complete-config",
                "--strict-readiness=true",
                "--exit-on-error=true",
                "--exit-timeout-secs=5",
                "--backend-config=python,shm-default-byte-size=16777216",
                "--backend-config=python,shm-growth-byte-size=16777216",
            ]
            env = dict(os.environ)
            env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib.parent), env.get("LD_LIBRARY_PATH")]))
            paths = ([str(overlay)] if overlay else []) + [
                str(Path(p).resolve()) for p in sys.path if p and Path(p).is_dir()
            ]
            env[SYS_PATH_ENV] = os.pathsep.join(paths)
            log.debug("starting %s", " ".join(command))
            with open(self.log_path, "wb") as log_file:
                self.process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                    cwd=self._workdir,
                )
            self._wait_ready(lib)
        except BaseException:
            self.stop()
            raise
        return self.endpoints

    def _backend_dir(self, home: Path, stub: Path) -> Path:
        """backends/ with python/ holding the backend library, its utils and this interpreter's stub."""
        backends = self._workdir / "backends"
        shutil.copytree(home / "backends", backends, symlinks=True)
        target = backends / "python" / "triton_python_backend_stub"
        target.unlink(missing_ok=True)
        target.symlink_to(stub)  # a link, so the stub's $ORIGIN rpath still finds the wheel's libraries
        for name in ("libtriton_python.so",):
            lib = backends / "python" / name
            lib.unlink()
            lib.symlink_to(home / "backends" / "python" / name)
        return backends

    def _wait_ready(self, lib: Path) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = list(self.models)
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(self._failure(code, lib))
            if _get(f"{self.endpoints.http}/v2/health/live") == 200:
                pending = [m for m in pending if _get(f"{self.endpoints.http}/v2/models/{m}/ready") != 200]
                if not pending and _get(f"{self.endpoints.http}/v2/health/ready") == 200:
                    return
            if time.monotonic() > deadline:
                waiting = ", ".join(pending) or "the server"
                raise ServerError(
                    f"tritonserver was not ready after {self.ready_timeout:.0f} s (waiting for {waiting}):"
                    f" see its log {self.log_path}, or raise the timeout"
                )
            time.sleep(0.25)

    def _failure(self, code: int, lib: Path) -> str:
        """One line from the server's log: the first model that failed to load and Triton's reason."""
        text = self.log_text()
        stub_hint = (
            f" (the Python backend stub ran {sys.executable} through {lib}: run inti-export from a Python with"
            " a working shared libpython, e.g. a venv of Debian's /usr/bin/python3.11)"
        )
        for line in text.splitlines():
            m = _FAILED_LOAD.search(line.strip())
            if m:
                name, reason = m.group(1), m.group(2).replace("\\n", " ").strip()
                reason = " ".join(reason.split())[:600]
                hint = stub_hint if re.search(r"stub|libpython|shared librar", reason, re.I) else ""
                return f"model {name!r} failed to load: {reason}{hint}"
        errors = [line.strip() for line in text.splitlines() if line.startswith("E") or "error" in line.lower()]
        last = errors[-1][:600] if errors else f"no error in its log {self.log_path}"
        hint = stub_hint if re.search(r"stub|libpython|shared librar", last, re.I) else ""
        return f"tritonserver exited with code {code} before it was ready: {last}{hint}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL it after `timeout`; remove the temporary folder."""
        code = None
        proc, self.process = self.process, None
        if proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop within %.0f s: killing it", timeout)
            with contextlib.suppress(ProcessLookupError):  # stubs left in the group, or a server that hung
                os.killpg(proc.pid, signal.SIGKILL)
            if code is None:
                code = proc.wait()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)  # with the default log: read it before stop()
            self._workdir = None
        return code

    def wait(self) -> int:
        """Block until the server exits on its own; its exit code."""
        return self.process.wait() if self.process is not None else 0


def _get(url: str, timeout: float = 2.0) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None
