"""TensorRT objects are destroyed on the CUDA device they were made on (issue 28 item 6), without a GPU.

A stand-in for `torch.cuda` keeps a current device: `torch.cuda.device` is a class whose instances
are context managers (as in torch), `torch.cuda.current_device()` a function. Stand-in TensorRT
objects record that device when they are destroyed (`__del__`), and, as TensorRT's Python bindings
do (keep_alive), a context or inspector keeps its engine alive.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from inti_export.errors import EngineError
from inti_export.runtime.trt import check
from inti_export.runtime.trt import runner as runner_module
from inti_export.runtime.trt.runner import TrtRunner

LAYERS = {"Layers": ["token_interpolate"], "Bindings": ["video", "embedding"]}


@pytest.fixture
def cuda(monkeypatch):
    """Two CUDA devices as torch.cuda shows them; `state.current` is the current one."""
    state = SimpleNamespace(current=0, count=2)

    class device:  # torch.cuda.device is a class
        def __init__(self, device):
            self.idx = device.index if isinstance(device, torch.device) else device
            self.prev = None

        def __enter__(self):
            if self.idx is not None:
                self.prev, state.current = state.current, self.idx

        def __exit__(self, *exc):
            if self.prev is not None:
                state.current = self.prev
            return False

    class Stream:
        def __init__(self, device=None):
            self.device = device

        def synchronize(self):
            pass

    monkeypatch.setattr(torch.cuda, "device", device)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: state.current)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: state.count)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "Event", lambda enable_timing=False: SimpleNamespace())
    return state


class _TrtObject:
    """An ICudaEngine, IExecutionContext, IRuntime or IEngineInspector whose destruction is observable."""

    def __init__(self, kind: str, log: list, keep_alive=None, context=None, layers=None):
        self.kind, self.log, self._parent, self._context, self._layers = kind, log, keep_alive, context, layers
        self.num_io_tensors = 0

    def create_execution_context(self, config=None):
        return self._context(self) if self._context else _TrtObject("context", self.log, keep_alive=self)

    def create_engine_inspector(self):
        return _TrtObject("inspector", self.log, keep_alive=self, layers=self._layers)

    def get_engine_information(self, fmt):
        assert fmt == "JSON"
        self.log.append(("inspected", torch.cuda.current_device()))
        return json.dumps(self._layers)

    def __del__(self):
        self.log.append((self.kind, torch.cuda.current_device()))


FAKE_TRT = SimpleNamespace(__name__="tensorrt", __version__="10.9.0.34",
                           LayerInformationFormat=SimpleNamespace(JSON="JSON"), TensorIOMode=SimpleNamespace())


def _fake_deserialize(log: list, context=None):
    def deserialize(trt, engine_path):
        log.append(("deserialized", torch.cuda.current_device()))
        return _TrtObject("engine", log, context=context, layers=LAYERS), _TrtObject("runtime", log)

    return deserialize


def _fake_runner_loading(monkeypatch, log: list, context=None) -> None:
    monkeypatch.setattr(runner_module, "gpu_compute_capability", lambda device=0: "SM90")
    monkeypatch.setattr(runner_module, "check_engine_and_load", lambda path, trt, device=0: (None, FAKE_TRT))
    monkeypatch.setattr(runner_module, "deserialize", _fake_deserialize(log, context))


def test_runner_destroys_context_and_engine_on_its_device(cuda, monkeypatch, tmp_path):
    log = []
    _fake_runner_loading(monkeypatch, log)
    with TrtRunner(tmp_path / "model.engine", device=1, runtime_cache=None):
        assert log == [("deserialized", 1)]
    assert log[1:] == [("context", 1), ("engine", 1), ("runtime", 1)]  # dependents first, all on device 1
    assert cuda.current == 0  # the caller's device is current again


def test_runner_that_fails_to_load_destroys_the_engine_on_its_device(cuda, monkeypatch, tmp_path):
    log = []
    _fake_runner_loading(monkeypatch, log, context=lambda engine: None)  # create_execution_context failed
    runner = TrtRunner(tmp_path / "model.engine", device=1, runtime_cache=None)
    with pytest.raises(EngineError, match="could not create an execution context"):
        runner.activate()
    assert log == [("deserialized", 1), ("engine", 1), ("runtime", 1)] and not runner.is_active
    assert cuda.current == 0


def _fake_inspection(monkeypatch, log: list, loads_on: set[int]) -> list:
    """inspect_engine's checks and deserialization, the engine loading on the devices in `loads_on`."""
    checked = []

    def check_engine_and_load(path, trt=None, device=0):
        checked.append(device)
        if device not in loads_on:
            raise EngineError(f"engine {path} targets ['SM90'], not this GPU (SM86): rebuild it on this GPU")
        return None, FAKE_TRT

    manifest = SimpleNamespace(to_dict=lambda: {"precision": "fp16"})
    monkeypatch.setattr(check, "verify_engine_artifact", lambda path: manifest)
    monkeypatch.setattr(check, "check_engine_and_load", check_engine_and_load)
    monkeypatch.setattr(check, "deserialize", _fake_deserialize(log))
    return checked


def test_inspect_engine_uses_the_device_it_is_asked_about(cuda, monkeypatch, tmp_path):
    log = []
    checked = _fake_inspection(monkeypatch, log, loads_on={0, 1})
    info = check.inspect_engine(tmp_path / "model.engine", device=1)
    assert checked == [1]
    assert info["engine_layers"] == LAYERS and info["engine_layers_device"] == 1
    assert log[:2] == [("deserialized", 1), ("inspected", 1)]
    assert sorted(log[2:]) == [("engine", 1), ("inspector", 1), ("runtime", 1)]  # destroyed on device 1
    assert cuda.current == 0


def test_inspect_engine_tries_every_visible_device(cuda, monkeypatch, tmp_path):
    log = []
    checked = _fake_inspection(monkeypatch, log, loads_on={1})  # device 0 is not a GPU the engine targets
    info = check.inspect_engine(tmp_path / "model.engine")
    assert checked == [0, 1]
    assert info["engine_layers"] == LAYERS and info["engine_layers_device"] == 1
    assert {device for _, device in log} == {1}


def test_inspect_engine_names_each_device_that_refuses(cuda, monkeypatch, tmp_path):
    log = []
    _fake_inspection(monkeypatch, log, loads_on=set())
    info = check.inspect_engine(tmp_path / "model.engine")
    assert info["engine_layers"] is None and log == []
    note = info["engine_layers_note"]
    assert note.startswith("CUDA device 0: engine ") and "; CUDA device 1: engine " in note
