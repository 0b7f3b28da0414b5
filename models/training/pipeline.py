"""One training run end to end: train, evaluate on every held-out set, plots, metrics.json."""

from __future__ import annotations

import logging
from pathlib import Path

from maskwatch.models.training.evaluate import evaluate_set, summary_line, write_json
from maskwatch.models.training.splits import load_split
from maskwatch.models.training.train import SOURCES, TrainConfig, train

log = logging.getLogger(__name__)


def held_out_evaluation(model_path: Path, cfg: TrainConfig, report_dir: Path | None) -> dict[str, dict]:
    """Metrics on the ``test`` part of every source, and on all of any source not trained on."""
    from maskwatch.models.keras_classifier import KerasMaskClassifier
    from maskwatch.models.training.data import load_crops_folder, load_scene_crops

    clf = KerasMaskClassifier.load(model_path)
    results = {}
    for source in SOURCES:
        root = cfg.shared_dir / "data" / source
        parts = {"test": load_split(source)["test"]}
        if source not in cfg.sources:
            parts["all"] = None
        for part, only in parts.items():
            if source == "crops":
                data = load_crops_folder(root, only=only)
            else:
                data = load_scene_crops(root, margin=cfg.margin, only=only)
            key = f"{source}_{part}"
            results[key] = evaluate_set(clf, data, report_dir, key)
            log.info("%s: %s", key, summary_line(results[key]))
    return results


def train_and_report(cfg: TrainConfig, evaluate: bool = True) -> Path:
    """Train, then (unless ``evaluate`` is False) write ``metrics.json`` and PNG plots into the run folder."""
    model_path = train(cfg)
    out = Path(cfg.out_dir)
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    try:
        from maskwatch.models.training.plots import plot_training_curves

        plot_training_curves(out / "history.csv", report)
    except ImportError:
        log.warning("matplotlib missing: no training curves")
    if evaluate:
        write_json(held_out_evaluation(model_path, cfg, report), out / "metrics.json")
    log.info("model: %s", model_path)
    return model_path
