"""A hostile-user probe of the CLI: bad input for every command, each result classified (issue 24).

    nice python3 benchmarks/probe_bad_input.py [--work DIR] [--json probe.json] [--timeout 180] [--only SUBSTR]

Each case runs `python3 -m inti_export.cli ...` in its own process group, with a timeout, in a fresh copy
of a folder of inputs (good, foreign, broken, hostile; made once, mostly by the CLI). Classes: clear
(non-zero exit, one line on stderr), ok (exit 0, the input is valid after all), accepted (exit 0 on input
that should be refused), unclear (non-zero exit, several lines or none), traceback, unexpected (the
catch-all `error: unexpected ...`), hang (killed at the timeout), data loss (an input's sha256 changed or
it vanished, a temporary file left, or a failed run left new files where the case does not allow it).
Read-only folders: chmod, or for root a read-only bind mount in a private mount namespace (`unshare -m`).
`serve` never starts a server: INTI_TRITONSERVER_HOME is empty and no case gives a valid repository.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT = REPO / "inti_export" / "models" / "checkpoints" / "task-inti.safetensors"
NONUTF = os.fsdecode(b"vid\xff.mp4")  # a file name that is not UTF-8

# One case a line: id, flags, then the arguments as a shell splits them. Flags: ok (exit 0 is right), ro
# ({in}/ro is read-only), leave (a failed run may keep what it made: caches, reports), pre (PRE runs first),
# engine/stream (needs that input or command; skipped without). {in} is the case's copy of the inputs: {T}
# test-tiny ONNX, {P} task-inti ONNX exported with {ck}, {V} 4 labelled task videos and CSVs, {S} one video.
TABLE = r"""
onnx-unknown-preset            -         onnx -p nope -o {in}/o.onnx
onnx-missing-folder            -         onnx -p test-tiny -o {in}/nope/m.onnx
onnx-output-dir                -         onnx -p test-tiny -o {in}/emptydir
onnx-output-is-checkpoint      -         onnx -p task-inti --checkpoint {ck} -o {ck} --no-verify
onnx-evil-checkpoint           -         onnx -p test-tiny --checkpoint {in}/evil.pt -o {in}/e.onnx
onnx-garbage-checkpoint        -         onnx -p task-inti --checkpoint {in}/garbage.safetensors -o {in}/g.onnx
onnx-checkpoint-dir            -         onnx -p test-tiny --checkpoint {in}/emptydir -o {in}/c.onnx
onnx-opset-low                 -         onnx -p test-tiny --opset 12 -o {in}/o.onnx
onnx-num-classes-negative      -         onnx -p test-tiny --num-classes -3 -o {in}/o.onnx
onnx-name-too-long             -         onnx -p test-tiny -o {in}/{long}.onnx
onnx-readonly                  ro        onnx -p test-tiny -o {in}/ro/m.onnx
onnx-videos-empty              -         onnx -p test-tiny --videos {in}/emptydir -o {in}/o.onnx
onnx-videos-not-videos         -         onnx -p test-tiny --videos {in}/junkvideos -o {in}/o.onnx
calibrate-not-onnx             -         calibrate {in}/notonnx.onnx -p fp16 -o {in}/o.onnx
calibrate-empty-onnx           -         calibrate {in}/empty.onnx -p fp16 -o {in}/o.onnx
calibrate-foreign              -         calibrate {in}/foreign.onnx -p fp16 -o {in}/o.onnx
calibrate-bad-precision        -         calibrate {T} -p int4 -o {in}/o.onnx
calibrate-output-is-input      -         calibrate {T} -p fp16 -o {T}
calibrate-output-is-manifest   -         calibrate {T} -p fp16 -o {T}.json
calibrate-report-is-manifest   -         calibrate {P} -p fp16 -o {in}/o.onnx --report {P}.json
calibrate-report-txt           -         calibrate {T} -p fp16 -o {in}/o.onnx --report {in}/r.txt
calibrate-report-in-labelled   -         calibrate {P} -p fp16 -o {in}/o.onnx --labels {V}/labels.csv --report {V}/r.json
calibrate-labels-dup           -         calibrate {P} -p fp16 -o {in}/o.onnx --labels {V}/dup.csv --report {in}/r.json
calibrate-labels-no-report     -         calibrate {P} -p fp16 -o {in}/o.onnx --labels {V}/labels.csv
calibrate-labels-calibrate-too -         calibrate {P} -p int8 --videos {V} --labels {V}/labels.csv --report {in}/r.json
calibrate-data-not-npz         -         calibrate {T} -p int8 --data {in}/a-file -o {in}/o.onnx
calibrate-data-bad-npz         -         calibrate {T} -p int8 --data {in}/bad.npz -o {in}/o.onnx
calibrate-clips-zero           -         calibrate {T} -p int8 --clips 0 -o {in}/o.onnx
calibrate-readonly             ro        calibrate {T} -p fp16 -o {in}/ro/o.onnx
trt-not-onnx                   -         trt {in}/notonnx.onnx -o {in}/n.engine
trt-foreign                    -         trt {in}/foreign.onnx -o {in}/f.engine
trt-output-is-input            -         trt {T} -o {T}
trt-output-dir                 -         trt {T} -o {in}/emptydir
trt-bad-batch                  -         trt {T} -o {in}/b.engine --batch 4:2:1
trt-batch-garbage              -         trt {T} -o {in}/b.engine --batch a:b:c
trt-two-precisions             -         trt {T} -o {in}/p.engine --fp16 --int8
trt-opt-level                  -         trt {T} -o {in}/p.engine --opt-level 9
trt-model-dir                  -         trt {in}/emptydir -o {in}/p.engine
trt-model-missing              -         trt {in}/none.onnx
trt-calib-missing              -         trt {T} --int8 --calib-data {in}/none.npz -o {in}/p.engine
inspect-onnx                   -         inspect {T}
inspect-missing                -         inspect {in}/none.engine
inspect-dir                    -         inspect {in}/emptydir
inspect-random-bytes           -         inspect {in}/random.engine
inspect-bad-manifest           engine    inspect {in}/oops.engine
parity-nothing                 -         parity
parity-not-onnx                -         parity --onnx {in}/notonnx.onnx
parity-foreign                 -         parity --onnx {in}/foreign.onnx --preset test-tiny
parity-onnx-dir                -         parity --onnx {in}/emptydir
parity-report-video            -         parity --onnx {P} --checkpoint {ck} --videos {V} --report {V}/test_00001.mp4
parity-report-manifest         -         parity --onnx {T} --random 2 --report {T}.json
parity-other-weights           -         parity --onnx {P} --random 2
parity-labels-dup              -         parity --onnx {P} --labels {V}/dup.csv
parity-labels-latin1           -         parity --onnx {P} --labels {V}/latin1.csv
parity-labels-missing-video    -         parity --onnx {P} --labels {V}/missing.csv
parity-labels-bad-class        -         parity --onnx {P} --labels {V}/class9.csv
parity-drop-without-labels     -         parity --onnx {T} --max-top1-drop 3
parity-random-zero             -         parity --onnx {T} --random 0
parity-labels-and-random       -         parity --onnx {P} --labels {V}/labels.csv --random 2
parity-engine-random-bytes     -         parity --onnx {T} --engine {in}/random.engine --allow-skip
parity-videos-missing          -         parity --onnx {T} --videos {in}/nope
parity-bad-tolerance           -         parity --onnx {T} --tolerance int4
bench-unknown-runner           -         bench -p test-tiny --runners tensorflow
bench-batch-zero               -         bench -p test-tiny --batch 0
bench-batch-garbage            -         bench -p test-tiny --batch 1,x
bench-trt-without-engine       -         bench -p test-tiny --runners trt
bench-plot-missing-folder      -         bench -p test-tiny --plot {in}/nope/p.png
bench-report-is-onnx           -         bench -p test-tiny --onnx {T} --report {T}
bench-iters-zero               -         bench -p test-tiny --iters 0
bench-onnx-dir                 -         bench -p test-tiny --onnx {in}/emptydir
pipeline-output-is-file        -         pipeline -p test-tiny -o {in}/a-file
pipeline-bad-precision         -         pipeline -p test-tiny --precision int4 -o {in}/p
pipeline-onnx-dir              -         pipeline --onnx {in}/emptydir -o {in}/p
pipeline-other-weights         -         pipeline --onnx {P} -o {in}/p
pipeline-onnx-fp16             -         pipeline --onnx {in}/tiny.fp16.onnx -o {in}/p
pipeline-preset-mismatch       -         pipeline -p test-tiny --onnx {P} -o {in}/p
pipeline-readonly              ro        pipeline -p test-tiny -o {in}/ro/p
pipeline-iters-zero            -         pipeline -p test-tiny --iters 0 -o {in}/p
task-count-huge                -         task {in}/emptydir --count 99999999999999999999
task-count-zero                -         task {in}/emptydir --count 0
task-bad-split                 -         task {in}/emptydir --split holdout --count 2
task-missing-dir               -         task {in}/nope --count 2
task-dir-is-file               -         task {in}/a-file --count 2
task-readonly                  ro        task {in}/ro --count 2
eval-report-video              -         eval --videos {V} -p task-inti --report {V}/test_00003.mp4
eval-report-manifest           -         eval --videos {V} --onnx {P} --report {P}.json
eval-report-labels             -         eval --videos {V} -p task-inti --report {V}/labels.csv
eval-labels-dup                -         eval --videos {V} -p task-inti --labels {V}/dup.csv
eval-labels-bom                ok        eval --videos {V} -p task-inti --checkpoint {ck} --labels {V}/bom.csv
eval-labels-latin1             -         eval --videos {V} -p task-inti --labels {V}/latin1.csv
eval-labels-no-columns         -         eval --videos {V} -p task-inti --labels {V}/nocols.csv
eval-labels-empty              -         eval --videos {V} -p task-inti --labels {V}/empty.csv
eval-labels-dir                -         eval --videos {V} -p task-inti --labels {in}/emptydir
eval-expect-top1-huge          -         eval --videos {V} -p task-inti --expect-top1 1e308
eval-expect-top1-nan           -         eval --videos {V} -p task-inti --expect-top1 nan
eval-max-drop-negative         -         eval --videos {V} -p task-inti --max-drop -1
eval-no-preset                 -         eval --videos {V}
eval-videos-missing            -         eval --videos {in}/nope -p task-inti
eval-checkpoint-dir            -         eval --videos {V} -p task-inti --checkpoint {in}/emptydir
eval-no-classes                -         eval --videos {V} -p test-tiny
optimize-trt-no-gpu            leave     optimize -p test-tiny --runners trt --precisions fp32 --batch 1 -o {in}/o
optimize-batch-huge            leave     optimize -p test-tiny --runners torch --precisions fp32 --batch 100000000 -o {in}/o
optimize-readonly              ro        optimize -p test-tiny -o {in}/ro/o
optimize-readonly-triton-repo  ro        optimize -p test-tiny -o {in}/o --triton-repo {in}/ro/r
optimize-onnx-dir              -         optimize --onnx {in}/emptydir -o {in}/o
optimize-drop-without-labels   -         optimize -p test-tiny -o {in}/o --max-top1-drop 3
optimize-labels-dup            -         optimize -p task-inti --labels {V}/dup.csv -o {in}/o
optimize-preset-and-onnx       -         optimize -p test-tiny --onnx {T} -o {in}/o
optimize-neither               -         optimize -o {in}/o
optimize-bad-runner            -         optimize -p test-tiny --runners tf -o {in}/o
optimize-bad-precision         -         optimize -p test-tiny --precisions int4 -o {in}/o
optimize-min-cosine            -         optimize -p test-tiny --min-cosine 2 -o {in}/o
optimize-max-latency           -         optimize -p test-tiny --max-latency-ms -5 -o {in}/o
optimize-output-is-file        -         optimize -p test-tiny -o {in}/a-file
optimize-onnx-fp16             -         optimize --onnx {in}/tiny.fp16.onnx -o {in}/o
optimize-clips-one             -         optimize -p test-tiny --clips 1 -o {in}/o
embed-report-is-artifact       leave     embed {V} --artifact {T} -o {in}/e --report {T}
embed-report-is-video          leave     embed {V} --artifact {T} -o {in}/e --report {V}/test_00002.mp4
embed-artifact-dir             -         embed {V} --artifact {in}/emptydir -o {in}/e
embed-artifact-missing         -         embed {V} --artifact {in}/none.onnx -o {in}/e
embed-decode-workers-zero      -         embed {V} --artifact {T} -o {in}/e --decode-workers 0
embed-threads-negative         -         embed {V} --artifact {T} -o {in}/e --threads -1
embed-batch-zero               -         embed {V} --artifact {T} -o {in}/e --batch 0
embed-stride-zero              -         embed {V} --artifact {T} -o {in}/e --stride 0
embed-address-garbage          -         embed {V} --artifact {T} -o {in}/e --address 'not an address'
embed-no-videos                -         embed {in}/emptydir --artifact {T} -o {in}/e
embed-nonutf8-name             ok,leave  embed {in}/nonutf --artifact {T} -o {in}/e
embed-nonutf8-output           ok,leave  embed {V} --artifact {T} -o {in}/{nonutf}
embed-other-model              pre       embed {V} --artifact {P} -o {in}/e
embed-readonly                 ro        embed {V} --artifact {T} -o {in}/ro/e
triton-repo-max-batch-huge     -         triton-repo {T} -o {in}/r --max-batch 99999999999
triton-repo-labels-latin1      -         triton-repo {P} -o {in}/r --labels {in}/classes-latin1.txt
triton-repo-artifact-dir       -         triton-repo {in}/emptydir -o {in}/r
triton-repo-readonly           ro        triton-repo {T} -o {in}/ro/r
triton-repo-output-is-file     -         triton-repo {T} -o {in}/a-file
triton-repo-not-onnx           -         triton-repo {in}/notonnx.onnx -o {in}/r
triton-repo-instances-zero     -         triton-repo {T} -o {in}/r --instances 0
triton-repo-bad-name           -         triton-repo {T} -o {in}/r --name 'bad name/../x'
triton-repo-bad-backend        -         triton-repo {T} -o {in}/r --backend tensorflow
triton-repo-queue-delay-negative -         triton-repo {T} -o {in}/r --queue-delay-us -5
infer-missing-video            -         infer {in}/none.mp4 --url http://127.0.0.1:9
infer-dir                      -         infer {in}/emptydir --url http://127.0.0.1:9
infer-no-server                -         infer {S} --url http://127.0.0.1:9
infer-bad-url                  -         infer {S} --url ftp://nowhere
infer-top-k-negative           -         infer {S} --top-k -1
serve-missing-repo             -         serve {in}/none
serve-repo-is-file             -         serve {in}/a-file
serve-empty-dir                -         serve {in}/emptydir
serve-timeout-negative         -         serve {in}/emptydir --timeout -1
serve-log-dir                  -         serve {in}/emptydir --log {in}/emptydir
serve-log-readonly             ro        serve {in}/emptydir --log {in}/ro/log.txt
serve-port-huge                -         serve {in}/emptydir --http-port 99999
serve-restarts-negative        -         serve {in}/emptydir --restarts -1
stream-no-args                 stream    stream
stream-no-model                stream    stream {S}
stream-both-models             stream    stream {S} --artifact {in}/emptydir -p test-tiny
stream-artifact-is-onnx        stream    stream {S} --artifact {T}
stream-missing-source          stream    stream {in}/none.mp4 -p test-tiny
stream-source-not-video        stream    stream {in}/a-file -p test-tiny
stream-source-dir              stream    stream {in}/emptydir -p test-tiny
stream-unknown-option          stream    stream {S} --no-such-option
stream-stride-zero             stream    stream {S} -p test-tiny --stride 0
stream-stride-huge             stream    stream {S} -p test-tiny --stride 999
stream-output-is-source        stream    stream {S} -p test-tiny -o {S}
stream-report-is-source        stream    stream {S} -p test-tiny --report {S}
stream-url-nothing-there       stream    stream http://127.0.0.1:9/x.mp4 -p test-tiny --timeout 2
stream-timeout-negative        stream    stream {S} -p test-tiny --timeout -1
stream-duration-negative       stream    stream {S} -p test-tiny --duration -5
stream-bad-lavfi               stream    stream lavfi:nonsense -p test-tiny
stream-checkpoint-missing      stream    stream {S} -p task-inti --checkpoint {in}/none.pt
stream-output-readonly         ro,stream stream {S} -p test-tiny -o {in}/ro/r.jsonl
unknown-command                -         nope
"""
PRE = "embed {V} --artifact {T} -o {in}/e"  # another model's embeddings, for embed-other-model
SHORT = {"{T}": "{in}/tiny.onnx", "{P}": "{in}/task.onnx", "{S}": "{V}/test_00000.mp4", "{V}": "{in}/task",
         "{ck}": "{in}/task.safetensors", "{long}": "x" * 300, "{nonutf}": NONUTF}


@dataclass
class Case:
    id: str
    argv: list[str]
    flags: list[str]
    pre: list[str]


def _expand(text: str) -> list[str]:
    for short, full in SHORT.items():
        text = text.replace(short, full)
    return shlex.split(text)


CASES = [Case(i, _expand(rest), f.split(","), _expand(PRE) if "pre" in f.split(",") else [])
         for i, f, rest in (line.split(None, 2) for line in TABLE.replace("\\\n", " ").splitlines() if line.strip())]


def _cli(argv: list[str], env: dict, cwd: Path, timeout: float, ro: Path | None = None) -> tuple[int | None, str, str]:
    """(exit code, None on a timeout; stdout; stderr) of one CLI run in its own process group."""
    cmd = [sys.executable, "-m", "inti_export.cli", *argv]
    if ro is not None and os.geteuid() == 0:  # root ignores modes: a read-only bind mount, private to the run
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" || exit 99; shift; exec "$@"'
        cmd = ["unshare", "-m", "sh", "-c", script, "sh", str(ro), *cmd]
    elif ro is not None:
        ro.chmod(0o555)
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        code = None
    finally:
        if ro is not None and os.geteuid() != 0:
            ro.chmod(0o755)
    return code, out.decode(errors="replace"), err.decode(errors="replace")


def _snapshot(folder: Path) -> dict[str, str]:
    """{path: sha256 (or "dir")} of everything under `folder`."""
    return {os.fsencode(p.relative_to(folder)).decode(errors="backslashreplace"):
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir" for p in sorted(folder.rglob("*"))}


def classify(case: Case, code: int | None, out: str, err: str, before: dict, after: dict) -> tuple[str, dict]:
    """The class of one result, and what changed in the folder."""
    new = sorted(k for k in after if k not in before)
    detail = {"changed": sorted(k for k, v in before.items() if v != "dir" and after.get(k, v) != v),
              "vanished": sorted(k for k in before if k not in after),
              "temporary": [k for k in new if k.endswith(".tmp") or "/." in "/" + k],
              "left": [] if code == 0 or "leave" in case.flags else new}
    lines = [line for line in err.splitlines() if line.strip()]
    if code is None:
        return "hang", detail
    if "Traceback (most recent call last)" in out + err:
        return "traceback", detail
    if any("error: unexpected" in line for line in lines):
        return "unexpected", detail
    if any(detail.values()):
        return "data loss", detail
    if code == 0:
        return "ok" if "ok" in case.flags else "accepted", detail
    return ("clear" if len(lines) == 1 else "unclear"), detail


def make_inputs(d: Path, env: dict, timeout: float) -> set[str]:
    """The inputs every case copies; returns the optional ones made here ("engine", "stream")."""
    import onnx
    import torch
    from onnx import TensorProto, helper

    def run(*argv):
        code, _, err = _cli([str(a) for a in argv], env, d, timeout)
        if code != 0:
            raise SystemExit(f"set-up failed: {' '.join(map(str, argv))}: {err.strip()[-400:]}")

    for sub in ("emptydir", "task", "ro", "junkvideos", "nonutf"):
        (d / sub).mkdir()
    run("onnx", "-p", "test-tiny", "-o", d / "tiny.onnx")
    run("calibrate", d / "tiny.onnx", "-p", "fp16", "-o", d / "tiny.fp16.onnx")
    shutil.copy(CHECKPOINT, d / "task.safetensors")
    run("onnx", "-p", "task-inti", "--checkpoint", d / "task.safetensors", "-o", d / "task.onnx")
    run("task", d / "task", "--count", "4")
    v = d / "task"
    files = {v / "dup.csv": b"video,label\ntest_00000.mp4,0\ntest_00000.mp4,1\n",
             v / "bom.csv": b"\xef\xbb\xbf" + (v / "labels.csv").read_bytes(),
             v / "latin1.csv": "video,label\ntést_00000.mp4,0\n".encode("latin-1"),
             v / "nocols.csv": b"name,class\ntest_00000.mp4,0\n", v / "empty.csv": b"",
             v / "missing.csv": b"video,label\nnope.mp4,0\n", v / "class9.csv": b"video,label\ntest_00000.mp4,9\n",
             d / "nonutf" / NONUTF: (v / "test_00000.mp4").read_bytes(),
             d / "nonutf" / "good.mp4": (v / "test_00001.mp4").read_bytes(),
             d / "junkvideos" / "a.mp4": b"not a video\n", d / "notonnx.onnx": b"this is not an ONNX file\n",
             d / "classes-latin1.txt": "still\nhorizontal\nvértical\ndiagonal\n".encode("latin-1"),
             d / "empty.onnx": b"", d / "a-file": b"not a folder\n",
             d / "garbage.safetensors": np.random.default_rng(0).bytes(4096),
             d / "random.engine": np.random.default_rng(1).bytes(4096)}
    for path, data in files.items():
        path.write_bytes(data)
    np.savez(d / "bad.npz", video=np.zeros((2, 3), np.float32))
    x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "xy")
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), d / "foreign.onnx")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, d / "evil.pt")
    have = set()
    if _cli(["trt", str(d / "tiny.onnx"), "-o", str(d / "oops.engine"), "--batch", "1:1:2"], env, d, timeout)[0] == 0:
        manifest = d / "oops.engine.json"  # a well-built engine whose manifest is damaged
        manifest.write_text(manifest.read_text().replace('"profiles": [', '"profiles": "oops", "_was": [', 1))
        have.add("engine")
    if _cli(["stream", "--help"], env, d, 60)[0] == 0:
        have.add("stream")
    return have


def run_case(case: Case, inputs: Path, folder: Path, env: dict, timeout: float) -> dict:
    """One case in a fresh copy of `inputs` at `folder`: its result and class."""
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(inputs, folder, symlinks=True)
    if case.pre:
        _cli([a.replace("{in}", str(folder)) for a in case.pre], env, folder, timeout)
    argv = [a.replace("{in}", str(folder)) for a in case.argv]
    before, t0 = _snapshot(folder), time.perf_counter()
    code, out, err = _cli(argv, env, folder, timeout, folder / "ro" if "ro" in case.flags else None)
    seconds = round(time.perf_counter() - t0, 2)
    if "ro" in case.flags and code == 99 and os.geteuid() == 0:
        return {"id": case.id, "class": "skipped", "why": "no read-only bind mount here (unshare -m)"}
    cls, detail = classify(case, code, out, err, before, _snapshot(folder))
    return {"id": case.id, "command": case.argv[0], "argv": case.argv, "rc": code, "class": cls, "seconds": seconds,
            "stderr": err.strip()[-600:], **detail}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, help="Scratch folder (default: a temporary one, removed).")
    ap.add_argument("--json", type=Path, default=Path("probe_bad_input.json"), help="Write the results here.")
    ap.add_argument("--timeout", type=float, default=180.0, help="Seconds per case before it counts as a hang.")
    ap.add_argument("--only", default="", help="Run the cases whose id contains this.")
    args = ap.parse_args()
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="probe-")) if args.work is None else args.work
    shutil.rmtree(work / "inputs", ignore_errors=True)
    (work / "inputs").mkdir(parents=True)
    (work / "no-tritonserver").mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200",
           "INTI_TRITONSERVER_HOME": str(work / "no-tritonserver")}
    have = make_inputs(work / "inputs", env, args.timeout)
    results = []
    for case in [c for c in CASES if args.only in c.id]:
        needs = next((f for f in case.flags if f in ("engine", "stream")), None)
        if needs and needs not in have:
            results.append({"id": case.id, "class": "skipped", "why": f"no {needs} here"})
            continue
        r = run_case(case, work / "inputs", work / "case", env, args.timeout)
        results.append(r)
        last = (r.get("stderr", "").splitlines() or [r.get("why", "")])[-1]
        print(f"{r['class']:10s} {case.id} ({r.get('seconds', 0):.1f} s): {last[:150]}", flush=True)
    shutil.rmtree(work / "case", ignore_errors=True)
    kinds = ("clear", "ok", "accepted", "unclear", "traceback", "unexpected", "hang", "data loss", "skipped")
    counts = {k: sum(r["class"] == k for r in results) for k in kinds}
    wall = time.perf_counter() - start
    commands = sorted({r["command"] for r in results if "command" in r})
    data = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "wall_s": round(wall, 1),
            "cases": len(results) - counts["skipped"], "counts": counts, "commands": commands,
            "timeout_s": args.timeout, "table": [asdict(c) for c in CASES], "results": results}
    args.json.write_text(json.dumps(data, indent=1) + "\n")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"probe: {data['cases']} cases over {len(commands)} commands: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()) + f"; {wall:.0f} s; {args.json}")


if __name__ == "__main__":
    main()
