"""Helpers shared by the serving tests (imported by name: tests/ is not a package)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

from helpers import cli_env

ROOT = Path(__file__).resolve().parents[2]


child_env = cli_env  # the one definition lives in tests/helpers.py


def server_processes(marker: str) -> list[str]:
    """tritonserver / stub processes whose command line mentions `marker` (a test's repository path)."""
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "tritonserver" in line or "triton_python_backend_stub" in line]


REQUIRE_ENV = "INTI_REQUIRE_SERVING"  # set by .ci/run: a missing serving setup fails instead of skipping


def serving_setup_missing() -> str | None:
    """Why a real server cannot start here (tritonclient, tritonserver, stub NumPy), or None."""
    from inti_export.errors import IntiExportError

    try:
        import tritonclient.http  # noqa: F401

        from inti_export.serving.server import libpython, stub_site, tritonserver_home

        tritonserver_home()
        libpython()
        stub_site()
    except (ImportError, IntiExportError) as e:
        if os.environ.get(REQUIRE_ENV):
            raise
        return f"serving setup missing ({e}); .ci/run installs it (docs/serving.md)"
    return None


@contextlib.contextmanager
def running_server(repo: Path, ready_timeout: float):
    """A real tritonserver over `repo` on free ports; stopped (whole process group) on exit, leaving no process."""
    from inti_export.serving.server import TritonServer

    server = TritonServer(repo, ready_timeout=ready_timeout)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        assert server_processes(str(repo)) == []


def fake_engine(folder: Path, onnx_path: Path, runtime: str = "tensorrt", batch=(1, 2, 4), plugins=()) -> Path:
    """An engine file of placeholder bytes with the manifest `build_engine` would write beside it for
    `onnx_path` (its I/O, metadata, `runtime`, batch profile and plugins): enough for the repository writer,
    which reads only the manifest and checks the bytes against it, without TensorRT."""
    import hashlib

    import onnx

    from inti_export.runtime.manifest import EngineManifest

    model = onnx.load(str(onnx_path), load_external_data=False)
    dtypes = {1: "float32", 10: "float16"}

    def tensors(values):
        return [
            {"name": v.name, "dtype": dtypes[v.type.tensor_type.elem_type],
             "shape": [None, *(d.dim_value for d in v.type.tensor_type.shape.dim[1:])]}
            for v in values
        ]

    inputs = tensors(model.graph.input)
    lo, opt, hi = batch
    engine = Path(folder) / f"{runtime}.engine"
    engine.write_bytes(b"not a real engine: " + runtime.encode())
    EngineManifest(
        engine_file=engine.name, engine_sha256=hashlib.sha256(engine.read_bytes()).hexdigest(),
        engine_size=engine.stat().st_size, runtime=runtime, runtime_version="10.13.0" if runtime == "tensorrt" else "1.7.1",
        precision="fp32",
        profiles=[{"input": i["name"], "min": [lo, *i["shape"][1:]], "opt": [opt, *i["shape"][1:]],
                   "max": [hi, *i["shape"][1:]]} for i in inputs],
        inputs=inputs, outputs=tensors(model.graph.output), onnx_file=Path(onnx_path).name, onnx_sha256="0" * 64,
        onnx_metadata={p.key: p.value for p in model.metadata_props}, compute_capabilities=["SM90"],
        compute_capabilities_source="requested", build_time_s=1.0, plugins=list(plugins),
    ).save(engine)
    return engine

