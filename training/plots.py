"""PNG plots written beside a run: loss and validation curves, and a row-normalised confusion matrix.

matplotlib is imported lazily with the Agg backend, so plotting works on a headless machine.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_history(history: list[dict], path: Path) -> None:
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], marker=".", label="train loss (CE + Dice)")
    ax1.set_xlabel("epoch"), ax1.set_ylabel("loss"), ax1.grid(alpha=0.3), ax1.legend()
    ax2.plot(epochs, [h["miou"] for h in history], marker=".", label="val mIoU")
    ax2.plot(epochs, [h["pixel_accuracy"] for h in history], marker=".", label="val pixel accuracy")
    for name in ("shoes", "pants", "skirt", "legwear"):
        vals = [h["per_class"].get(name) for h in history]
        if any(v is not None for v in vals):
            ax2.plot(epochs, [np.nan if v is None else v for v in vals], lw=0.8, alpha=0.7, label=f"IoU {name}")
    ax2.set_xlabel("epoch"), ax2.set_ylim(0, 1), ax2.grid(alpha=0.3), ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(conf: np.ndarray, names: list[str], path: Path, title: str = "") -> None:
    plt = _pyplot()
    rows = conf.sum(axis=1, keepdims=True)
    norm = np.divide(conf, rows, out=np.zeros(conf.shape, dtype=float), where=rows > 0)
    fig, ax = plt.subplots(figsize=(8, 7))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted"), ax.set_ylabel("ground truth")
    ax.set_title(f"confusion (row-normalised) {title}".strip())
    for i in range(len(names)):
        for j in range(len(names)):
            if norm[i, j] >= 0.01:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
