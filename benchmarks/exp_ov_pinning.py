"""Two OpenVINO sessions of one thread each, at once, with and without CPU pinning (docs/openvino.md).

    python benchmarks/exp_ov_pinning.py OUT/artifacts/onnx-int8-*/model.int8.onnx [--calls 3]

Each setting compiles the ONNX twice (PERFORMANCE_HINT=THROUGHPUT, INFERENCE_NUM_THREADS=1, NUM_STREAMS=1,
f32), warms each request up once, then runs `--calls` calls in each of two Python threads at once on a
random inti-b16-shaped clip; prints the mean seconds a call per session and the clips/s of both together.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx")
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    import openvino as ov

    from inti_export.runtime.ov_runner import inline_functions

    path = inline_functions(args.onnx, tempfile.mkdtemp())
    core = ov.Core()
    x = np.random.default_rng(0).random((1, 16, 3, 224, 224), dtype=np.float32)
    for pin in ("YES", "NO"):
        props = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": "1", "NUM_STREAMS": "1",
                 "INFERENCE_PRECISION_HINT": "f32", "ENABLE_CPU_PINNING": pin}
        requests = [core.compile_model(core.read_model(str(path)), "CPU", props).create_infer_request()
                    for _ in range(2)]
        for r in requests:
            r.infer({0: x})
        per_call: list[float] = []

        def run(request, per_call: list[float]) -> None:
            t = time.perf_counter()
            for _ in range(args.calls):
                request.infer({0: x})
            per_call.append((time.perf_counter() - t) / args.calls)

        threads = [threading.Thread(target=run, args=(r, per_call)) for r in requests]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        clips_s = 2 * args.calls / (time.perf_counter() - start)
        print(f"ENABLE_CPU_PINNING={pin}: {[round(s, 2) for s in per_call]} s a call, {clips_s:.3f} clips/s")


if __name__ == "__main__":
    main()
