"""Evaluate a mask classifier on a crops folder or on the ground-truth face boxes of a VOC scene folder."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from maskwatch.models.training.data import CropSet, load_crops_folder, load_scene_crops
from maskwatch.models.training.metrics import classification_metrics
from maskwatch.models.training.splits import load_split

log = logging.getLogger(__name__)


def load_eval_set(
    crops_dir: Path | None = None,
    scenes_dir: Path | None = None,
    split: str | None = None,
    part: str = "test",
    margin: float = 0.15,
) -> CropSet:
    """The labelled crops of a crops folder or a scene folder, all of them or one ``part`` of split ``split``."""
    if (crops_dir is None) == (scenes_dir is None):
        raise ValueError("give exactly one of a crops folder or a scenes folder")
    only = load_split(split)[part] if split else None
    if crops_dir is not None:
        return load_crops_folder(crops_dir, only=only)
    return load_scene_crops(scenes_dir, margin=margin, only=only)  # type: ignore[arg-type]


def evaluate_set(classifier, data: CropSet, report_dir: Path | None = None, prefix: str = "eval") -> dict:
    """Metrics of ``classifier`` on ``data``; with ``report_dir`` also PNG plots (needs matplotlib)."""
    t0 = time.perf_counter()
    probs = classifier.predict(data.crops)
    seconds = time.perf_counter() - t0
    metrics = classification_metrics(data.labels, probs)
    metrics["model"] = classifier.name
    metrics["class_counts"] = data.counts()
    metrics["seconds"] = round(seconds, 3)
    if report_dir is not None:
        from maskwatch.models.training.plots import evaluation_plots

        metrics["plots"] = [
            str(p) for p in evaluation_plots(data.labels, probs, metrics, Path(report_dir), prefix)
        ]
    return metrics


def write_json(obj: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, default=_jsonable) + "\n")
    return path


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def summary_line(m: dict) -> str:
    """One human line: n, accuracy, binary accuracy, log loss, AUC and incorrect_mask recall."""
    auc = f"{m['roc_auc']:.4f}" if m["roc_auc"] is not None else "n/a"
    rec = m["incorrect_mask_recall"]
    return (
        f"n={m['n']} acc={m['accuracy']:.4f} binary_acc={m['binary_accuracy']:.4f} log_loss={m['log_loss']:.4f} "
        f"auc={auc} incorrect_recall={'n/a' if rec is None else f'{rec:.3f}'}"
    )
