"""A real Triton Inference Server process on a repository: the `tritonserver` of the nvidia-pytriton wheel.

The wheel ships the binary, the Python backend and one backend stub per Python version. We run the
binary directly on our own repository (no PyTriton API, so no restricted statistics endpoints), bound
to 127.0.0.1, in its own process group so that `stop()` ends the server and every stub it started,
and with the kernel told to stop it when this process dies, even by SIGKILL (docs/serving.md).

The Python backend stub embeds a shared libpython: the stub for this interpreter's version is linked
against `libpython3.X.so.1.0`, which we point at this interpreter's own library (`LD_LIBRARY_PATH`);
the stub ignores PYTHONPATH, so our `sys.path` goes in INTI_EXPORT_SYS_PATH for the repository's
model.py to prepend, so the stub imports this package, onnxruntime and the clip code exactly as the
interpreter that started the server does; stub.py checks those imports before the server starts.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inti_export.errors import RuntimeUnavailableError
from inti_export.serving.config import check_repository
from inti_export.serving.process import (
    WORKDIR_PREFIX,
    ServerError,
    die_with_parent,
    group_shm_regions,
    kill_group,
    remove_stale_workdirs,
)
from inti_export.serving.repository import SYS_PATH_ENV
from inti_export.serving.stub import (  # noqa: F401  (libpython, stub_site: re-exported for callers)
    STUB_SITE_ENV,
    StubError,
    backend_stub,
    check_stub_imports,
    libpython,
    stub_modules,
    stub_site,
)

log = logging.getLogger(__name__)

HOME_ENV = "INTI_TRITONSERVER_HOME"  # a folder holding bin/tritonserver, backends/, python_backend_stubs/
HOST = "127.0.0.1"
_INSTALL = "pip install --no-deps nvidia-pytriton==0.7.0"
_FAILED_LOAD = re.compile(r"failed to load '([^']+)' version \d+: (.*?)\"?$")


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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def check_port(port: int, what: str) -> None:
    """Refuse a port someone listens on (Triton itself would not say so: it binds with SO_REUSEPORT).

    The test bind uses SO_REUSEADDR, as Triton's own does: connections of a server stopped a moment
    ago (TIME_WAIT, about 60 s) do not stop a new one from listening there.
    """
    if not 0 < port < 65536:
        raise ServerError(f"{what} port {port} is outside 1-65535: pick another")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
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

    Ports default to free ones. `log_path` keeps the server's log; by default it goes to a temporary
    file that a clean stop removes and a failure (start-up, death) keeps, its path in the error.
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
        from inti_export.fileio import check_output_path

        if not (isinstance(ready_timeout, (int, float)) and math.isfinite(ready_timeout) and ready_timeout > 0):
            raise ServerError(f"ready timeout {ready_timeout} s must be a positive number of seconds: pass --timeout > 0")
        self.repository = Path(repository).resolve()
        self.ports = {"http": http_port, "grpc": grpc_port, "metrics": metrics_port}
        self.ready_timeout = float(ready_timeout)
        self.log_path = check_output_path(log_path, "--log", error=ServerError) if log_path else None
        self.models: list[str] = []
        self.process: subprocess.Popen | None = None
        self.restarted = 0  # times supervise() restarted a server that died
        self._own_log = False  # the log is our temporary file: removed by a clean stop
        self._log_kept = False  # a failure happened: the log stays, whoever owns it
        self._workdir: Path | None = None
        self._command: list[str] = []
        self._env: dict[str, str] = {}
        self._lib: Path | None = None

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
        self._lib = libpython()
        stub = backend_stub(home)
        overlay = stub_site()
        for what, port in self.ports.items():
            if port is None:
                self.ports[what] = free_port()
            else:
                check_port(port, what)
        if len(set(self.ports.values())) < 3:
            raise ServerError(f"http, grpc and metrics ports must differ, got {self.ports}")
        self._env = self._environment(self._lib, overlay)
        check_stub_imports(self._env, SYS_PATH_ENV, stub_modules(self.repository, self.models), overlay)
        remove_stale_workdirs()
        self._workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{os.getpid()}-"))
        try:
            backends = self._backend_dir(home, stub)
            if self.log_path is None:
                fd, name = tempfile.mkstemp(prefix=f"{WORKDIR_PREFIX}log-", suffix=".log")
                os.close(fd)
                self.log_path, self._own_log = Path(name), True
            self._command = self._server_command(home, backends)
            self._launch(append=False)
            self._wait_ready()
        except KeyboardInterrupt:
            self.stop()
            raise
        except BaseException:
            self._log_kept = True
            self.stop()
            raise
        return self.endpoints

    def _environment(self, lib: Path, overlay: Path | None) -> dict[str, str]:
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(lib.parent), env.get("LD_LIBRARY_PATH")]))
        paths = ([str(overlay)] if overlay else []) + [str(Path(p).resolve()) for p in sys.path if p and Path(p).is_dir()]
        env[SYS_PATH_ENV] = os.pathsep.join(paths)
        return env

    def _server_command(self, home: Path, backends: Path) -> list[str]:
        return [
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

    def _launch(self, append: bool) -> None:
        log.debug("starting %s", " ".join(self._command))
        with open(self.log_path, "ab" if append else "wb") as log_file:
            self.process = subprocess.Popen(
                self._command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env,
                start_new_session=True,
                cwd=self._workdir,
                preexec_fn=die_with_parent(),
            )

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

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        pending = list(self.models)
        while True:
            code = self.process.poll()
            if code is not None:
                raise ServerError(self._failure(code))
            if _get(f"{self.endpoints.http}/v2/health/live") == 200:
                pending = [m for m in pending if _get(f"{self.endpoints.http}/v2/models/{m}/ready") != 200]
                if not pending and _get(f"{self.endpoints.http}/v2/health/ready") == 200:
                    return
            if time.monotonic() > deadline:
                waiting = ", ".join(pending) or "the server"
                raise ServerError(
                    f"tritonserver was not ready after {self.ready_timeout:g} s (waiting for {waiting}):"
                    f" raise --timeout; log: {self.log_path}"
                )
            time.sleep(0.25)

    def _failure(self, code: int) -> str:
        """One line from the server's log: the first model that failed to load and Triton's reason."""
        text = self.log_text()
        stub_hint = (
            f" (the Python backend stub ran {sys.executable} through {self._lib}: run inti-export from a Python with"
            " a working shared libpython, e.g. a venv of Debian's /usr/bin/python3.11)"
        )
        for line in text.splitlines():
            m = _FAILED_LOAD.search(line.strip())
            if m:
                name, reason = m.group(1), m.group(2).replace("\\n", " ").strip()
                reason = " ".join(reason.split())[:600]
                hint = stub_hint if re.search(r"stub|libpython|shared librar", reason, re.I) else ""
                return f"model {name!r} failed to load: {reason}{hint}; log: {self.log_path}"
        errors = [line.strip() for line in text.splitlines() if line.startswith("E") or "error" in line.lower()]
        last = errors[-1][:600] if errors else "no error in its log"
        hint = stub_hint if re.search(r"stub|libpython|shared librar", last, re.I) else ""
        return f"tritonserver exited with code {code} before it was ready: {last}{hint}; log: {self.log_path}"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            return ""

    def supervise(self, restarts: int = 0, report: Callable[[str], None] = log.warning) -> int:
        """Block while the server runs. When it dies (a signal, an exit code), keep its log and start it again
        on the same ports, at most `restarts` times in all, telling `report`; after that raise ServerError
        naming the death and the log. Returns 0 when the server stopped cleanly by itself."""
        while True:
            code = self.process.wait() if self.process is not None else 0
            if code == 0:
                return 0
            what = f"signal {-code}" if code < 0 else f"exit code {code}"
            self._log_kept = True
            if self.restarted >= restarts:
                self.stop()
                before = f", restarted {self.restarted} time{'s' * (self.restarted != 1)} before" if self.restarted else ""
                raise ServerError(f"tritonserver died ({what}{before}); log: {self.log_path}")
            self.restarted += 1
            report(f"tritonserver died ({what}); log: {self.log_path}: restarting it ({self.restarted} of {restarts})")
            regions = group_shm_regions(self.process.pid)  # what the dead server's stubs still map
            kill_group(self.process.pid, signal.SIGKILL)
            for region in regions:
                region.unlink(missing_ok=True)
            self._launch(append=True)
            self._wait_ready()
            report(f"tritonserver is ready again at {self.endpoints.http}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL it after `timeout`; remove the temporary folder (and the
        temporary log, unless a failure kept it)."""
        code = None
        proc, self.process = self.process, None
        if proc is not None:
            regions = group_shm_regions(proc.pid)
            proc.terminate()  # the server alone: it stops its stubs itself, which frees their shared memory
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("tritonserver did not stop within %.0f s: killing it", timeout)
            kill_group(proc.pid, signal.SIGKILL)  # stubs left in the group, or a server that hung
            if code is None:
                code = proc.wait()
            for region in regions:  # what stubs killed mid-start or after a death left in /dev/shm
                region.unlink(missing_ok=True)
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        if self._own_log and not self._log_kept and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)  # with the default log: read it before stop()
            self._own_log = False
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
