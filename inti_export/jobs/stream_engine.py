"""A stream pair's engines (docs/stream.md): stem.engine and head.engine built by `build_engine`, checked as a pair.

    build_pair_engines("inti-b16-stream/", "inti-b16-stream/", BuildConfig())         -> PairEngines
    build_pair_engines(pair, "inti-b16-stream.fp16/", BuildConfig(), precision="fp16") -> PairEngines
    describe_pair("inti-b16-stream/")                                                   -> what `inspect DIR` prints

The stem's profile is over frames (min 1, opt 1: a stream runs each frame as it arrives; max T x the
head's max, one batch of windows' frames at once); the head's is over windows (`BuildConfig.batch`, the
default of a whole model otherwise). With a precision, the pair is first converted
(`calibration.stream_pair.convert_pair`) into the output folder and the engines are built from it.
stream.json in the output folder gains an `engines` section: each engine's file and sha256, the ONNX
sha256 it was built from and its partner's; `load_engine_pair` checks all of it without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from inti_export.errors import EngineError, IntiExportError
from inti_export.fileio import sha256_file, write_json
from inti_export.runtime.manifest import EngineManifest, manifest_path
from inti_export.runtime.trt import DEFAULT_BATCH, BuildConfig, BuildProgress, build_engine, verify_engine_artifact
from inti_export.vocab import HEAD_FILE, META_PRECISION, META_STEM_SHA, PAIR_MANIFEST, STEM_FILE, decode_metadata

STEM_ENGINE, HEAD_ENGINE = "stem.engine", "head.engine"


@dataclass
class PairEngines:
    directory: Path
    stem: EngineManifest
    head: EngineManifest
    converted: bool  # the ONNX pair was converted into `directory` first


def is_pair_dir(path: str | os.PathLike) -> bool:
    """A folder with stem.onnx or stem.engine: a stream pair, not one ONNX."""
    p = Path(path)
    return p.is_dir() and ((p / STEM_FILE).is_file() or (p / STEM_ENGINE).is_file())


def stem_profile(frames: int, head_batch: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """Frames per stem call: 1 to T x the head's max windows, tuned for 1 (a stream's frame at a time)."""
    return 1, 1, frames * (head_batch or DEFAULT_BATCH)[2]


def build_pair_engines(
    pair_dir: str | os.PathLike,
    out_dir: str | os.PathLike | None = None,
    config: BuildConfig | None = None,
    precision: str | None = None,
    calib_data: str | os.PathLike | None = None,
    progress: BuildProgress | None = None,
    cancel: threading.Event | None = None,
) -> PairEngines:
    """stem.engine and head.engine from `pair_dir`'s ONNX pair into `out_dir` (default: the pair folder,
    or `<pair>.<precision>` beside it when converting). Both engines or neither are left behind."""
    from inti_export.runtime.stream import load_stream_artifact

    config = config or BuildConfig()
    src = Path(pair_dir)
    artifact = load_stream_artifact(src)
    precision = getattr(precision, "value", precision)
    converted = precision is not None and precision != artifact.meta.get(META_PRECISION, "fp32")
    out = Path(out_dir) if out_dir is not None else (src.with_name(f"{src.name}.{precision}") if converted else src)
    load_trt_first(config)  # the one-line 'no TensorRT module' before anything is converted or created
    created = not out.exists()
    if not converted:
        if out.exists() and not out.is_dir():
            raise EngineError(f"--output {out} is a file; a stream pair's engines go in a folder: give a folder")
        if not out.parent.is_dir():
            raise EngineError(f"--output folder {out.parent} does not exist: create it first")
        for name in (STEM_ENGINE, HEAD_ENGINE):
            if (out / name).exists() and out.resolve() != src.resolve():
                raise EngineError(f"{out / name} exists: give a new --output folder")
    else:
        from inti_export.calibration.stream_pair import check_pair_output, convert_pair

        check_pair_output(src, out)
        convert_pair(src, precision, out, calib_data=calib_data)
        artifact = load_stream_artifact(out)
    out.mkdir(exist_ok=True)
    stem_cfg = replace(config, batch=stem_profile(artifact.frames, config.batch))
    stem_engine, head_engine = out / STEM_ENGINE, out / HEAD_ENGINE
    written: list[Path] = []
    try:
        stem = build_engine(artifact.stem_path, stem_engine, stem_cfg, progress, cancel)
        written += [stem_engine, manifest_path(stem_engine)]
        head = build_engine(artifact.head_path, head_engine, config, progress, cancel)
        written += [head_engine, manifest_path(head_engine)]
        _write_engine_section(out, src, artifact, stem, head)
    except BaseException:
        for path in written:  # all or nothing: no stem engine without its head
            path.unlink(missing_ok=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)  # a folder this call made (the converted pair too)
        raise
    return PairEngines(out, stem, head, converted)


def load_trt_first(config: BuildConfig) -> None:
    """The one-line 'no TensorRT module' refusal before a pair is converted for nothing."""
    from inti_export.runtime.trt import load_trt_module

    load_trt_module(config.runtime)


def _write_engine_section(out: Path, src: Path, artifact, stem: EngineManifest, head: EngineManifest) -> None:
    manifest = out / PAIR_MANIFEST
    data = json.loads(manifest.read_text()) if manifest.is_file() else json.loads((src / PAIR_MANIFEST).read_text())
    stem_sha, head_sha = sha256_file(out / STEM_ENGINE), sha256_file(out / HEAD_ENGINE)
    data["onnx_dir"] = str(artifact.stem_path.parent)
    data["engines"] = {
        "stem": {"engine": STEM_ENGINE, "sha256": stem_sha, "onnx_sha256": stem.onnx_sha256, "profile": stem.profiles,
                 "partner": HEAD_ENGINE, "partner_sha256": head_sha},
        "head": {"engine": HEAD_ENGINE, "sha256": head_sha, "onnx_sha256": head.onnx_sha256, "profile": head.profiles,
                 "stem_onnx_sha256": head.onnx_metadata.get(META_STEM_SHA), "partner": STEM_ENGINE,
                 "partner_sha256": stem_sha},
        "runtime": f"{stem.runtime} {stem.runtime_version}", "precision": stem.precision,
    }
    write_json(manifest, data, sort_keys=True)


def load_engine_pair(directory: str | os.PathLike) -> tuple[EngineManifest, EngineManifest]:
    """Both engines' manifests, checked without a GPU: each engine against its manifest, and the head built
    from a head exported with the very stem the stem engine was built from."""
    d = Path(directory)
    stem = verify_engine_artifact(d / STEM_ENGINE)
    head = verify_engine_artifact(d / HEAD_ENGINE)
    want = decode_metadata(head.onnx_metadata).get(META_STEM_SHA)
    if want != stem.onnx_sha256:
        raise EngineError(f"{d / HEAD_ENGINE} was built from a head exported with stem sha256 {str(want)[:12]}..., but"
                          f" {d / STEM_ENGINE} from a stem of sha256 {stem.onnx_sha256[:12]}...: rebuild both with"
                          " `inti-export trt DIR`")
    return stem, head


def describe_pair(directory: str | os.PathLike) -> dict[str, Any]:
    """What `inspect DIR` shows: each part's metadata, the cut, the partner check; the engines when present."""
    from inti_export.runtime.stream import load_stream_artifact
    from inti_export.vocab import META_CUT, META_FRAMES, META_PRESET, read_metadata

    d = Path(directory)
    info: dict[str, Any] = {"directory": str(d), "parts": {}}
    if (d / STEM_FILE).is_file():
        try:
            load_stream_artifact(d)
            info["partner_check"] = "ok: head.onnx names the sha256 of this stem.onnx"
        except IntiExportError as e:  # the report shows why, the command then fails (check_described)
            info["partner_check"] = f"FAILED: {e}"
        for part, file in (("stem", STEM_FILE), ("head", HEAD_FILE)):
            meta = read_metadata(d / file)
            info["parts"][part] = {
                "onnx": file, "sha256": sha256_file(d / file), "size": (d / file).stat().st_size,
                "preset": meta.get(META_PRESET), "frames": meta.get(META_FRAMES),
                "precision": meta.get(META_PRECISION, "fp32"), "cut_before_block": meta.get(META_CUT),
                "stem_sha256": meta.get(META_STEM_SHA), "inputs": meta.get("inti.inputs"), "outputs": meta.get("inti.outputs"),
            }
    if (d / STEM_ENGINE).is_file() or (d / HEAD_ENGINE).is_file():
        try:
            stem, head = load_engine_pair(d)
            info["engines"] = {"check": "ok", "stem": _engine_row(stem), "head": _engine_row(head)}
        except IntiExportError as e:
            info["engines"] = {"check": f"FAILED: {e}"}
    if not info["parts"] and "engines" not in info:
        raise EngineError(f"{d} holds no stem.onnx/head.onnx nor stem.engine/head.engine: pass a folder written by"
                          " `inti-export onnx --stream` or `inti-export trt DIR`")
    return info


def _engine_row(m: EngineManifest) -> dict[str, Any]:
    return {"engine": m.engine_file, "sha256": m.engine_sha256, "size": m.engine_size, "runtime": m.runtime,
            "runtime_version": m.runtime_version, "precision": m.precision, "profiles": m.profiles,
            "onnx_sha256": m.onnx_sha256}


def pair_lines(info: dict[str, Any]) -> list[str]:
    """`describe_pair`'s report as lines of text."""
    lines = [f"stream pair {info['directory']}"]
    for part, p in info["parts"].items():
        lines.append(f"{part}: {p['onnx']} {p['size'] / 2**20:.2f} MiB sha256 {p['sha256'][:16]}..., {p['preset']},"
                     f" T={p['frames']}, {p['precision']}, cut before block {p['cut_before_block']}")
        lines.append(f"  inputs {p['inputs']}; outputs {p['outputs']}")
    if info["parts"]:
        lines.append(f"partner check: {info['partner_check']}")
    engines = info.get("engines", {})
    for part in ("stem", "head"):
        if e := engines.get(part):
            lines.append(f"{part} engine: {e['engine']} {e['size'] / 2**20:.2f} MiB, {e['runtime']} {e['runtime_version']},"
                         f" {e['precision']}, profile {e['profiles']}")
    if engines:
        lines.append(f"engine pair check: {engines['check']}")
    return lines


def check_described(info: dict[str, Any]) -> None:
    """Raise the first failed check of `describe_pair`'s report, as one line."""
    for check in (info.get("partner_check", ""), info.get("engines", {}).get("check", "")):
        if check.startswith("FAILED: "):
            raise EngineError(f"{info['directory']}: {check[len('FAILED: '):]}")
