"""Plot training curves written by benchmarks/train_task.py (--log JSONs) into one PNG.

    python3 benchmarks/plot_task_curve.py docs/task_training.png benchmarks/results/train-task-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    out, logs = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for path in logs:
        log = json.loads(path.read_text())
        label = log["preset"] + (" (fixed 0.5/0.5)" if log.get("fixed_average") else "")
        steps = [p["step"] for p in log["curve"]]
        ax_loss.plot(steps, [p["train_loss"] for p in log["curve"]], label=label)
        ax_acc.plot(steps, [100 * p["val_top1"] for p in log["curve"]], marker=".", label=label)
    ax_loss.set(xlabel="step", ylabel="train loss (mean of the last interval)", title="training loss")
    ax_acc.set(xlabel="step", ylabel="validation top-1 (%)", title="validation accuracy")
    ax_acc.axhline(25, color="grey", lw=0.8, ls="--", label="chance")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
