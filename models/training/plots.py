"""PNG report plots with matplotlib (training extra): confusion matrix, ROC, reliability, training curves."""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from maskwatch.core.labels import CLASSES  # noqa: E402
from maskwatch.models.training.metrics import VIOLATION_COLUMNS, roc_curve, violation_probability  # noqa: E402


def plot_confusion(cm: np.ndarray, labels: list[str], path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(5, 4.2))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            ax.text(
                j,
                i,
                f"{cm[i, j]}\n{norm[i, j]:.1%}",
                ha="center",
                va="center",
                color="white" if norm[i, j] > 0.5 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_roc(y_true: np.ndarray, probs: np.ndarray, auc: float | None, path: Path, title: str) -> Path:
    b = VIOLATION_COLUMNS[y_true].astype(int)
    fpr, tpr = roc_curve(b, violation_probability(probs))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"violation vs compliant (AUC {auc:.4f})" if auc is not None else "n/a")
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_reliability(y_true: np.ndarray, probs: np.ndarray, path: Path, title: str, bins: int = 10) -> Path:
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    centers, accs, counts = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            centers.append(conf[m].mean())
            accs.append((pred[m] == y_true[m]).mean())
            counts.append(int(m.sum()))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect calibration")
    ax.plot(centers, accs, "o-", label="model")
    for c, a, n in zip(centers, accs, counts, strict=True):
        ax.annotate(str(n), (c, a), textcoords="offset points", xytext=(0, 5), fontsize=7, ha="center")
    ax.set_xlabel("top-class confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def evaluation_plots(
    y_true: np.ndarray, probs: np.ndarray, metrics: dict, out_dir: Path, prefix: str
) -> list[Path]:
    """Confusion matrix (3-class and binary), ROC and reliability diagram as ``<prefix>_*.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_confusion(
            np.array(metrics["confusion_matrix"]["matrix"]),
            list(CLASSES),
            out_dir / f"{prefix}_confusion.png",
            prefix,
        ),
        plot_confusion(
            np.array(metrics["binary"]["confusion_matrix"]),
            metrics["binary"]["labels"],
            out_dir / f"{prefix}_confusion_binary.png",
            prefix,
        ),
        plot_roc(y_true, probs, metrics["roc_auc"], out_dir / f"{prefix}_roc.png", prefix),
        plot_reliability(y_true, probs, out_dir / f"{prefix}_reliability.png", prefix),
    ]


def plot_training_curves(history_csv: Path, out_dir: Path) -> list[Path]:
    """Loss and accuracy per epoch (train and validation) from Keras' CSVLogger file."""
    with open(history_csv) as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    epochs = [int(r["epoch"]) + 1 for r in rows]
    paths = []
    for metric in ("loss", "accuracy"):
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for key, label in ((metric, "train"), (f"val_{metric}", "validation")):
            if key in rows[0] and rows[0][key] != "NA":  # a refit has no validation: CSVLogger writes NA
                ax.plot(epochs, [float(r[key]) for r in rows], "o-", label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"training_{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
