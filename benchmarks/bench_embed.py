"""Clips/s of `inti-export embed` against its own stages, on ORT CPU (docs/benchmarks.md, docs/corpus.md).

    nice python benchmarks/bench_embed.py [--work DIR] [--videos 200] [--b16-videos 12] [--rounds 2]
        [--presets test-tiny,inti-b16] [--batch 4] [--b16-batch 1] [--json results.json] [--plot embed.png]

A synthetic corpus (benchmarks/make_corpus.py, 2-second videos, 15% of them corrupt or too short)
is written once into --work. For each preset (test-tiny: decoding dominates; inti-b16: inference
dominates) the ONNX is exported once, then five modes are timed, interleaved over --rounds rounds
(median reported), all on one clip per video:

    decode      decode_clips over every video in this process (what one decode worker does)
    infer       the runner alone on as many random clips, in batches of the preset's batch, after a warm-up
    sequential  per video: decode its clips, then infer them (no overlap)
    embed       embed_local with --decode-workers 1 (warm fork server); steady-state rate from
                the first embedded clip to the end, and the whole-run rate (start-up included)
    ray         embed_ray on a local Ray started beforehand (2 CPUs: one decode task, one actor)

Inference uses --threads ORT threads and one batch size per preset in every mode: --batch for
test-tiny, --b16-batch for inti-b16 (1 by default: on ORT CPU batch 1 is inti-b16's fastest per clip,
0.276 against 0.253 clips/s at batch 2 in `inti-export optimize`, docs/benchmarks.md; a larger batch
would handicap embed against the sequential loop, which infers each video's one clip alone).
inti-b16 runs on the first --b16-videos videos only, to keep the benchmark within about 15 minutes on
a 2-core machine.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from inti_export.corpus import ModelSource, Sampling, make_job
from inti_export.corpus.decode import decode_clips
from inti_export.corpus.local import embed_local
from inti_export.vocab import INPUT_NAME, package_versions

log = logging.getLogger("bench_embed")
MODES = ("decode", "infer", "sequential", "embed", "ray")


def _make_corpus(work: Path, videos: int) -> Path:
    corpus = work / f"corpus-{videos}"
    if not (corpus / "manifest.json").is_file():
        spec = importlib.util.spec_from_file_location("make_corpus", Path(__file__).with_name("make_corpus.py"))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        t = time.perf_counter()
        module.make_corpus(corpus, videos=videos, seconds=2.0)
        log.info("corpus of %d videos written in %.1f s", videos, time.perf_counter() - t)
    return corpus


def _export(work: Path, preset: str) -> Path:
    from inti_export.exporter import ExportSpec, export_onnx
    from inti_export.models import create_model

    path = work / f"{preset}.onnx"
    if not path.is_file():
        export_onnx(create_model(preset), path, ExportSpec(), verify=False)
    return path


def time_decode(videos, pre, sampling, batch) -> tuple[int, float]:
    start, clips = time.perf_counter(), 0
    for v in videos:
        try:
            for segments, _ in decode_clips(v, pre, sampling, batch):
                clips += len(segments)
        except Exception:  # noqa: BLE001 - bad videos cost their decode attempt, as in embed
            pass
    return clips, time.perf_counter() - start


def time_infer(runner, pre, clips: int, batch: int) -> tuple[int, float]:
    x = np.random.default_rng(0).standard_normal((batch, pre.frames, 3, pre.image_size, pre.image_size),
                                                 dtype=np.float32)
    runner.infer({INPUT_NAME: x})  # warm-up
    start, done = time.perf_counter(), 0
    while done < clips:
        n = min(batch, clips - done)
        runner.infer({INPUT_NAME: x[:n]})
        done += n
    return done, time.perf_counter() - start


def time_sequential(runner, videos, pre, sampling, batch) -> tuple[int, float]:
    """Per video: decode all its clips, then infer them in batches of at most `batch`."""
    start, clips = time.perf_counter(), 0
    for v in videos:
        try:
            got = [c for _, chunk in decode_clips(v, pre, sampling, 64) for c in chunk]
        except Exception:  # noqa: BLE001 - as in time_decode
            continue
        for i in range(0, len(got), batch):
            runner.infer({INPUT_NAME: np.stack(got[i:i + batch])})
        clips += len(got)
    return clips, time.perf_counter() - start


def time_embed(job) -> tuple[int, float, float]:
    """(clips, seconds from the first embedded clip to the end, whole-run seconds)."""
    marks = []
    report = embed_local(job, on_progress=lambda p: marks.append((p.elapsed_s, p.clips)))
    first = next((t for t, c in marks if c > 0), 0.0)
    first_clips = next((c for _, c in marks if c > 0), 0)
    return report.clips - first_clips, report.seconds - first, report.seconds


def run(args) -> dict:
    import ray

    from inti_export.corpus import embed_ray

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    corpus = _make_corpus(work, args.videos)
    all_videos = sorted(p for p in corpus.iterdir() if p.name != "manifest.json")
    sampling = Sampling(clips_per_video=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    results = {"machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                           "load_avg_at_start": os.getloadavg()},
               "versions": {**package_versions(), "ray": ray.__version__},
               "args": {k: str(v) for k, v in vars(args).items()},
               "presets": {}}
    try:
        counts = {"test-tiny": args.videos, "inti-b16": args.b16_videos}
        batches = {"test-tiny": args.batch, "inti-b16": args.b16_batch}
        for preset in args.presets.split(","):
            count = counts.get(preset, args.b16_videos)
            batch = batches.get(preset, args.batch)
            videos = all_videos[:count]
            onnx = _export(work, preset)
            model = ModelSource(artifact=onnx, threads=args.threads)
            pre = model.preprocess()
            out_root = work / f"out-{preset}"
            shutil.rmtree(out_root, ignore_errors=True)
            out_root.mkdir()

            def job(name, vids=videos, pre_root=out_root, m=model, b=batch):
                return make_job(vids, m, pre_root / name, sampling, batch=b, decode_workers=1)

            embed_local(job("warm", videos[:3]))  # start the fork server; import the decoding stack once
            embed_ray(job("warm-ray", videos[:3]))  # start Ray's workers
            rows: dict[str, list[dict]] = {m: [] for m in MODES}
            with model.make_runner() as runner:
                for r in range(args.rounds):
                    for mode in MODES:
                        if mode == "decode":
                            clips, s = time_decode(videos, pre, sampling, batch)
                            good, extra = clips, {}
                        elif mode == "infer":
                            clips, s = time_infer(runner, pre, good, batch)  # as many as decoded
                            extra = {}
                        elif mode == "sequential":
                            clips, s = time_sequential(runner, videos, pre, sampling, batch)
                            extra = {}
                        elif mode == "embed":
                            clips, s, whole = time_embed(job(f"embed-{r}"))
                            extra = {"whole_run_s": whole}
                        else:
                            rep = embed_ray(job(f"ray-{r}"))
                            clips, s, extra = rep.clips, rep.seconds, {}
                        row = {"round": r, "clips": clips, "seconds": s, "clips_per_s": clips / s, **extra}
                        log.info("%s %s round %d: %d clips in %.1f s = %.2f clips/s", preset, mode, r, clips, s,
                                 clips / s)
                        rows[mode].append(row)
            summary = {m: statistics.median(x["clips_per_s"] for x in rows[m]) for m in MODES}
            slower = min(summary["decode"], summary["infer"])
            results["presets"][preset] = {
                "videos": len(videos), "batch": batch, "rows": rows, "median_clips_per_s": summary,
                "embed_vs_slower_stage": summary["embed"] / slower, "ray_vs_slower_stage": summary["ray"] / slower,
                "embed_vs_sequential": summary["embed"] / summary["sequential"],
            }
    finally:
        ray.shutdown()
    return results


def plot(results: dict, path: Path) -> None:
    """Each mode's clips/s over the slower stage's (the issue's goal: embed >= 0.9, above sequential);
    bars are labelled with clips/s, and a stage more than CAP times the slower one is cut at CAP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cap = 1.5
    presets = list(results["presets"])
    fig, axes = plt.subplots(1, len(presets), figsize=(5.2 * len(presets), 3.8))
    for ax, preset in zip(np.atleast_1d(axes), presets, strict=True):
        r = results["presets"][preset]
        med = r["median_clips_per_s"]
        slower = min(med["decode"], med["infer"])
        rel = [med[m] / slower for m in MODES]
        ax.bar(MODES, [min(x, cap) for x in rel], color=["#999", "#999", "#c66", "#36c", "#6a3"])
        for i, (m, x) in enumerate(zip(MODES, rel, strict=True)):
            label = f"{med[m]:.3g}/s" + (f"\n({x:.0f}x, cut)" if x > cap else "")
            ax.text(i, min(x, cap), label, ha="center", va="bottom", fontsize=7)
        ax.axhline(0.9, color="#36c", lw=0.8, ls="--")
        ax.text(-0.38, 0.88, "goal 0.9", color="#36c", fontsize=7, ha="left", va="top")
        batch = f", batch {r['batch']}" if "batch" in r else ""
        ax.set_title(f"{preset}: {r['videos']} videos, ORT CPU{batch}\nembed {r['embed_vs_slower_stage']:.2f}x the slower"
                     f" stage, {r['embed_vs_sequential']:.2f}x sequential", fontsize=8)
        ax.set_ylim(0, cap * 1.25)
        ax.set_ylabel("clips/s / slower stage's (median)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("bench-embed-work"))
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--b16-videos", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--presets", default="test-tiny,inti-b16")
    ap.add_argument("--batch", type=int, default=4, help="test-tiny's (and any other preset's) batch")
    ap.add_argument("--b16-batch", type=int, default=1, help="inti-b16's batch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("inti_export").setLevel(logging.WARNING)
    results = run(args)
    text = json.dumps(results, indent=1)
    if args.json:
        args.json.write_text(text + "\n")
    if args.plot:
        plot(results, args.plot)
    for preset, r in results["presets"].items():
        med = r["median_clips_per_s"]
        print(preset, " ".join(f"{m}={med[m]:.2f}" for m in MODES),
              f"embed/slower={r['embed_vs_slower_stage']:.2f} ray/slower={r['ray_vs_slower_stage']:.2f}"
              f" embed/sequential={r['embed_vs_sequential']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
