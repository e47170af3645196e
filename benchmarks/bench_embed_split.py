"""`embed --stride S` with each frame's stem shared between overlapping windows, against the whole model per
window (docs/corpus.md, "Sliding windows share the stem"; docs/stream.md).

    nice python benchmarks/bench_embed_split.py [--preset inti-b16] [--runner ort|torch] [--strides 2,4,8]
        [--videos 4] [--seconds 2] [--rounds 2] [--batch B] [--threads N] [--work DIR] [--json r.json]

A synthetic corpus (benchmarks/make_corpus.py; its corrupt and short videos fail in both modes alike) is
written once into --work. For `--runner ort` the preset is exported once as model.onnx (the whole model)
and as the stream pair (`onnx --stream`); `split` embeds with the pair (stems shared), `whole` with
model.onnx. For `--runner torch`, both modes run the preset, `whole` with `--no-split`. Per stride the two
modes alternate, `--rounds` times, each a fresh local embed run after one untimed warm-up run per mode
(--decode-workers 1, steady state from the first embedded clip); medians reported, with the FLOP
prediction of the split per window, (S x stem + head) / full, beside the measured time ratio split / whole. Smoke it on test-tiny
(`--preset test-tiny --videos 3 --rounds 1`); the real run is inti-b16 on a quiet machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import shutil
import statistics
import time
from pathlib import Path

from inti_export.corpus import ModelSource, Sampling, machine_batch, make_job
from inti_export.corpus.local import embed_local

log = logging.getLogger("bench_embed_split")


def _corpus(work: Path, videos: int, seconds: float) -> Path:
    corpus = work / f"corpus-{videos}-{seconds:g}s"
    if not (corpus / "manifest.json").is_file():
        spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).with_name("make_corpus.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.make_corpus(corpus, videos=videos, seconds=seconds)
    return corpus


def _models(work: Path, preset: str, runner: str, threads: int | None) -> dict[str, ModelSource]:
    if runner == "torch":
        return {"split": ModelSource(preset=preset), "whole": ModelSource(preset=preset)}
    from inti_export.exporter import ExportSpec, export_onnx
    from inti_export.exporter.stream_export import export_stream
    from inti_export.models import create_model

    onnx, pair = work / f"{preset}.onnx", work / f"{preset}-stream"
    if not onnx.is_file():
        export_onnx(create_model(preset), onnx, ExportSpec(), verify=False)
    if not (pair / "head.onnx").is_file():
        export_stream(create_model(preset), pair, verify=False)
    return {"split": ModelSource(artifact=pair, threads=threads), "whole": ModelSource(artifact=onnx, threads=threads)}


def _time(job) -> dict:
    """Clips/s of one embed run: steady state (from the first embedded clip) and whole run."""
    marks: list[tuple[float, int]] = []
    report = embed_local(job, on_progress=lambda p: marks.append((p.elapsed_s, p.clips)))
    first = next(((t, c) for t, c in marks if c > 0), (0.0, 0))
    steady = report.clips - first[1]
    rate = steady / max(report.seconds - first[0], 1e-9) if steady >= 2 else report.clips_per_s  # tiny runs: whole
    return {"clips": report.clips, "split": report.split, "seconds": report.seconds, "clips_per_s": rate,
            "whole_run_clips_per_s": report.clips_per_s}


def run(args) -> dict:
    from inti_export.models.config import get_config
    from inti_export.models.flops import count_split_flops

    args.work.mkdir(parents=True, exist_ok=True)
    corpus = _corpus(args.work, args.videos, args.seconds)
    models = _models(args.work, args.preset, args.runner, args.threads)
    batch = args.batch or machine_batch(gpu=False)
    flops = count_split_flops(args.preset)
    results: dict = {"preset": args.preset, "runner": args.runner, "batch": batch, "threads": args.threads,
                     "videos": args.videos, "seconds": args.seconds, "rounds": args.rounds, "gflops": flops,
                     "strides": {}}
    first = sorted(p for p in corpus.iterdir() if p.suffix != ".json")[0]
    for mode, model in models.items():  # warm-up, not timed: the fork server, sessions, caches
        shutil.rmtree(args.work / "warm", ignore_errors=True)
        embed_local(make_job([first], model, args.work / "warm", Sampling(stride=args.strides[0]), batch=batch,
                             decode_workers=1, split=mode == "split"))
    for stride in args.strides:
        runs: dict[str, list[dict]] = {"split": [], "whole": []}
        for r in range(args.rounds):
            for mode in ("split", "whole") if r % 2 == 0 else ("whole", "split"):  # alternate the order
                out = args.work / f"out-{mode}"
                shutil.rmtree(out, ignore_errors=True)
                job = make_job([corpus], models[mode], out, Sampling(stride=stride), batch=batch, decode_workers=1,
                               split=mode == "split")
                runs[mode].append(_time(job))
                log.info("S=%d round %d %s: %.2f clips/s (split=%s)", stride, r, mode, runs[mode][-1]["clips_per_s"],
                         runs[mode][-1]["split"])
        med = {m: statistics.median(x["clips_per_s"] for x in v) for m, v in runs.items()}
        results["strides"][stride] = {
            "runs": runs, "split_clips_per_s": med["split"], "whole_clips_per_s": med["whole"],
            "time_ratio": med["whole"] / med["split"] if med["split"] else None,  # split time / whole time
            "flop_ratio": (stride * flops["stem"] + flops["head"]) / flops["full"] if stride < get_config(
                args.preset).frames else 1.0,
        }
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="inti-b16")
    ap.add_argument("--runner", choices=("ort", "torch"), default="ort")
    ap.add_argument("--strides", default="2,4,8", type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch", type=int, default=None, help="default: embed's machine default")
    ap.add_argument("--threads", type=int, default=None, help="ORT threads (default: all cores)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench_embed_split"))
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    start = time.perf_counter()
    results = run(args)
    print(f"{args.preset} {args.runner} batch {results['batch']}: clips/s per stride (steady state, median)")
    print(f"{'S':>3} {'split':>9} {'whole':>9} {'time split/whole':>17} {'FLOPs':>6}")
    for s, r in results["strides"].items():
        print(f"{s:>3} {r['split_clips_per_s']:>9.3f} {r['whole_clips_per_s']:>9.3f} {r['time_ratio']:>17.3f}"
              f" {r['flop_ratio']:>6.3f}")
    print(f"{time.perf_counter() - start:.0f} s in all")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
