"""PNG plots: training curves, confusion matrix, reliability diagram. Matplotlib's Agg backend."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def training_curves(rows: list[dict], path: Path) -> None:
    plt = _plt()
    ep = [r["epoch"] for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(ep, [r["train_loss"] for r in rows], label="train")
    a.plot(ep, [r["val_loss"] for r in rows], label="validation")
    a.set_xlabel("epoch"), a.set_ylabel("loss"), a.set_title("Loss"), a.legend()
    b.plot(ep, [r["train_acc"] for r in rows], label="train")
    b.plot(ep, [r["val_acc"] for r in rows], label="validation")
    b.set_xlabel("epoch"), b.set_ylabel("accuracy"), b.set_title("Accuracy"), b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def confusion(cm: np.ndarray, classes, path: Path, title: str = "Confusion matrix") -> None:
    plt = _plt()
    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted"), ax.set_ylabel("true"), ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reliability_diagram(curves: dict, path: Path) -> None:
    """``curves``: {name: (centres, accuracy, confidence, count, ece)}; several on one plot."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    for name, (centres, acc, conf, count, ece) in curves.items():
        m = count > 0
        ax.plot(conf[m], acc[m], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("confidence"), ax.set_ylabel("accuracy"), ax.set_title("Reliability diagram")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1.02), ax.grid(alpha=0.3), ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
