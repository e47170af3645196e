"""Experiment (issue 15): ONNX Runtime intra-op spinning on or off, inference alone against embed_local.

inti-b16 on the first 14 videos of bench_embed.py's corpus (12 decodable clips), batch 4, one decode
worker, 2 ORT threads. Needs the corpus and ONNX that bench_embed.py leaves in --work.

    python benchmarks/exp_ort_spinning.py 1 && python benchmarks/exp_ort_spinning.py 0
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

import inti_export.runtime.ort_runner as ort_runner


def main() -> None:
    spin = sys.argv[1]  # "1": ORT's default (threads spin between parallel sections); "0": they sleep
    work = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/bench-work")
    original = ort_runner.session_options

    def with_spinning(mode, threads=None):
        opts = original(mode, threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
        return opts

    ort_runner.session_options = with_spinning

    from inti_export.corpus import ModelSource, Sampling, make_job
    from inti_export.corpus.local import embed_local

    videos = sorted(p for p in (work / "corpus-200").iterdir() if p.name != "manifest.json")[:14]
    model = ModelSource(artifact=work / "inti-b16.onnx", threads=2)
    out = work / f"spin-{spin}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    sampling = Sampling(clips_per_video=1)
    embed_local(make_job(videos[:2], model, out / "warm", sampling, batch=4, decode_workers=1))  # fork server up
    with model.make_runner() as runner:
        x = np.random.default_rng(0).standard_normal((4, 16, 3, 224, 224), dtype=np.float32)  # (B, T, 3, H, W)
        runner.infer({"video": x})
        start = time.perf_counter()
        for _ in range(2):
            runner.infer({"video": x})
        infer = 8 / (time.perf_counter() - start)
    marks: list[tuple[float, int]] = []
    report = embed_local(make_job(videos, model, out / "run", sampling, batch=4, decode_workers=1),
                         on_progress=lambda p: marks.append((p.elapsed_s, p.clips)))
    first, first_clips = next((t, c) for t, c in marks if c > 0)
    print(json.dumps({"spin": spin, "infer_clips_s": infer,
                      "embed_steady_clips_s": (report.clips - first_clips) / (report.seconds - first),
                      "embed_whole_clips_s": report.clips / report.seconds, "clips": report.clips,
                      "loadavg": os.getloadavg()}))


if __name__ == "__main__":
    main()
