"""A short real training run on a tiny subset: checkpoints, history, a loadable model, metrics and plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from maskwatch.models.training.train import TrainConfig
from tests.conftest import shared_path

pytest.importorskip("matplotlib", reason="the 'train' extra (matplotlib) is not installed")


def _tiny(tmp_path: Path, **overrides) -> TrainConfig:
    """A seconds-long run: 32 px, from scratch, at most 8 crops per source and part."""
    settings = dict(
        shared_dir=shared_path(),
        out_dir=tmp_path / "run",
        input_size=32,
        init="scratch",
        batch_size=16,
        max_per_source=8,
    )
    return TrainConfig(**(settings | overrides))  # type: ignore[arg-type]


@pytest.mark.shared
def test_tiny_training_run_end_to_end(tmp_path: Path) -> None:
    import keras

    from maskwatch.models.keras_classifier import KerasMaskClassifier
    from maskwatch.models.training.pipeline import train_and_report

    shared = shared_path()
    cfg = TrainConfig(
        shared_dir=shared,
        out_dir=tmp_path / "run",
        input_size=32,
        init="scratch",
        epochs=2,
        batch_size=16,
        max_per_source=12,
        patience=5,
    )
    model_path = train_and_report(cfg, evaluate=False)
    assert model_path.is_file()
    assert (tmp_path / "run" / "checkpoints" / "best.keras").is_file()
    assert (tmp_path / "run" / "checkpoints" / "last.keras").is_file()
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(rows[0])
    assert (tmp_path / "run" / "report" / "training_loss.png").is_file()
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["seed"] == cfg.seed and config["input_size"] == 32

    model = keras.models.load_model(model_path)
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    clf = KerasMaskClassifier.load(model_path)
    rng = np.random.default_rng(0)
    probs = clf.predict([rng.integers(0, 255, (s, s + 3, 3), np.uint8) for s in (5, 20, 70)])
    assert probs.shape == (3, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.shared
def test_resume_continues_from_the_last_checkpoint(tmp_path: Path) -> None:
    from maskwatch.models.training.train import train

    train(_tiny(tmp_path, epochs=1))
    train(_tiny(tmp_path, epochs=2, resume=True))
    with open(tmp_path / "run" / "history.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f)] == ["0", "1"]


def test_tail_average_is_the_running_mean_of_the_epochs_from_its_start() -> None:
    from maskwatch.models.training.train import _tail_average_callback

    class Stub:
        def __init__(self) -> None:
            self.epoch = 0

        def get_weights(self):
            return [np.full((2, 2), float(self.epoch), np.float32), np.array([10.0 * self.epoch], np.float32)]

    stub = Stub()
    averager = _tail_average_callback(start_epoch=2)
    averager.set_model(stub)
    for epoch in range(5):
        stub.epoch = epoch
        averager.on_epoch_end(epoch)
    assert averager.count == 3  # epochs 2, 3, 4
    assert np.allclose(averager.mean[0], 3.0) and np.allclose(averager.mean[1], [30.0])


@pytest.mark.shared
def test_tail_average_competes_with_the_best_checkpoint_on_validation_loss(tmp_path: Path) -> None:
    import keras

    from maskwatch.models.training.train import train

    final = train(_tiny(tmp_path, epochs=3, patience=5, average_from=0.34))
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    losses = selection["val_loss"]
    assert selection["averaged_epochs"] == 2
    assert selection["chosen"] == min(losses, key=losses.get)
    best = keras.models.load_model(tmp_path / "run" / "checkpoints" / "best.keras", compile=False)
    same_as_best = all(
        np.array_equal(a, b)
        for a, b in zip(keras.models.load_model(final).get_weights(), best.get_weights(), strict=True)
    )
    assert same_as_best == (selection["chosen"] == "best_checkpoint")


@pytest.mark.shared
def test_refit_trains_on_train_and_val_and_keeps_the_last_epoch(tmp_path: Path) -> None:
    import keras

    from maskwatch.models.training.train import CANVAS_RATIO, load_arrays, train

    cfg = _tiny(tmp_path, epochs=2, refit=True)
    final = train(cfg)
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    side = round(cfg.input_size * CANVAS_RATIO)
    n_train = sum(len(load_arrays(cfg, part, side, canvas=True)[1]) for part in ("train", "val"))
    assert config["refit"] is True and sum(config["train_counts"]) == n_train
    assert not (tmp_path / "run" / "checkpoints" / "best.keras").exists()
    with open(tmp_path / "run" / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(r.get("val_loss", "NA") == "NA" for r in rows)
    last = keras.models.load_model(tmp_path / "run" / "checkpoints" / "last.keras", compile=False)
    assert all(
        np.array_equal(a, b)
        for a, b in zip(keras.models.load_model(final).get_weights(), last.get_weights(), strict=True)
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"average_from": 1.0},
        {"average_from": -0.1},
        {"average_from": 0.5, "resume": True},
        {"average_from": 0.5, "refit": True},
    ],
)
def test_tail_average_settings_are_checked_before_any_work(tmp_path: Path, bad: dict) -> None:
    from maskwatch.models.training.train import train

    with pytest.raises(ValueError, match="--average-from"):
        train(TrainConfig(shared_dir=tmp_path / "no-such-shared", out_dir=tmp_path / "run", **bad))
    assert not (tmp_path / "run").exists()


def test_model_card_says_which_weights_a_run_kept() -> None:
    from maskwatch.models.training.model_card import _kept_weights_text

    history = [
        {"epoch": "0", "val_loss": "0.30"},
        {"epoch": "1", "val_loss": "0.20"},
        {"epoch": "2", "val_loss": "0.25"},
    ]
    selected = {"config": {}, "history": history, "selection": None}
    assert _kept_weights_text(selected) == "best (lowest validation loss) epoch 2 (val loss 0.2000)"
    refit = {"config": {"refit": True}, "history": [{"epoch": "0", "val_loss": "NA"}], "selection": None}
    assert "refit on train + val, last epoch" in _kept_weights_text(refit)
