"""Train a task preset on the motion-direction task (docs/task.md) on CPU; record seed, time and curve.

    PYTHONPATH=$PWD python3 benchmarks/train_task.py --preset task-inti \
        --out inti_export/models/checkpoints/task-inti.safetensors --log benchmarks/results/train-task-inti.json

`--fixed-average` keeps every InTI weight head's last layer at zero and frozen: each InTI layer then
blends its token pairs 0.5/0.5 (the "averaging" baseline at the same FLOPs as InTI).
Data: the train/val splits are generated with `inti_export.tasks.motion` into --data (real H.264
mp4), decoded through `inti_export.video` exactly as `eval` does.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inti_export.models import create_model
from inti_export.tasks.motion import CLASSES, make_split, read_labels
from inti_export.video.clipset import load_clips_cached
from inti_export.video.preprocess import preprocess_for

N = len(CLASSES)
# Symmetries of the task (class = 2 * axis + speed): playing backwards or mirroring keeps the class.
_REVERSE = _HFLIP = _VFLIP = list(range(N))


def split_tensors(data: Path, split: str, count: int, cfg) -> tuple[torch.Tensor, torch.Tensor]:
    """Generate (once) and decode a split: clips (K, T, 3, H, W), labels (K,)."""
    folder = data / f"{split}-{count}"
    if not (folder / "labels.csv").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        make_split(folder, split, count)
    labels = read_labels(folder / "labels.csv")
    clips = load_clips_cached(folder, preprocess_for(cfg), progress=False)
    y = [labels[name.split("#")[0]] for name in clips.names]
    return torch.from_numpy(clips.clips), torch.tensor(y)


def augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random time reversal and flips, with the classes they imply."""
    x, y = x.clone(), y.clone()
    for flip_dims, table in (((1,), _REVERSE), ((4,), _HFLIP), ((3,), _VFLIP)):
        pick = torch.rand(len(y), generator=g) < 0.5
        x[pick] = x[pick].flip(flip_dims)
        y[pick] = torch.tensor(table)[y[pick]]
    return x, y


@torch.no_grad()
def accuracy(model, x: torch.Tensor, y: torch.Tensor, batch: int = 64) -> float:
    model.eval()
    pred = torch.cat([model(x[i : i + batch]).argmax(-1) for i in range(0, len(x), batch)])
    model.train()
    return float((pred == y).float().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="task-inti")
    ap.add_argument("--out", type=Path, required=True, help="checkpoint (.safetensors) to write")
    ap.add_argument("--log", type=Path, required=True, help="JSON with settings, time and curve")
    ap.add_argument("--data", type=Path, default=Path("/tmp/inti-task-data"))
    ap.add_argument("--train", type=int, default=1600)
    ap.add_argument("--val", type=int, default=200)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--fixed-average", action="store_true", help="freeze InTI heads at 0.5/0.5 averaging")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = create_model(args.preset, seed=args.seed).train()
    if args.fixed_average:
        for layer in model.inti.values():
            for p in layer.head_fc2.parameters():
                p.requires_grad_(False)  # stays at its zero init: softmax(0, 0) = (0.5, 0.5)
    args.data.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    xtr, ytr = split_tensors(args.data, "train", args.train, model.cfg)
    xva, yva = split_tensors(args.data, "val", args.val, model.cfg)
    data_s = time.perf_counter() - t0

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.05)
    warm = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, args.steps) / args.steps))
    )
    g = torch.Generator().manual_seed(args.seed)
    curve = []
    t1 = time.perf_counter()
    losses = []
    for step in range(1, args.steps + 1):
        idx = torch.randint(len(ytr), (args.batch,), generator=g)
        x, y = augment(xtr[idx], ytr[idx], g)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % args.eval_every == 0 or step == args.steps:
            val = accuracy(model, xva, yva)
            curve.append({"step": step, "train_loss": float(np.mean(losses[-args.eval_every:])), "val_top1": val,
                          "seconds": round(time.perf_counter() - t1, 1)})
            print(json.dumps(curve[-1]), flush=True)
    train_s = time.perf_counter() - t1

    from safetensors.torch import save_file

    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(args.out))
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text(json.dumps({
        "preset": args.preset, "fixed_average": args.fixed_average, "seed": args.seed, "threads": args.threads,
        "train_videos": args.train, "val_videos": args.val, "steps": args.steps, "batch": args.batch, "lr": args.lr,
        "data_seconds": round(data_s, 1), "train_seconds": round(train_s, 1), "torch": torch.__version__,
        "curve": curve, "checkpoint": str(args.out),
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
