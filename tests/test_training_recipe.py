"""The shipped classifier's recipe is a file: ``maskwatch train`` with no flags rebuilds it, flags
override it, and a recipe with a setting TrainConfig lacks is an error naming it. Nothing is trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from maskwatch.cli import training_commands
from maskwatch.cli.main import build_parser
from maskwatch.models.training.train import (
    DEFAULT_RECIPE,
    RUN_FIELDS,
    RecipeError,
    TrainConfig,
    config_from_recipe,
    load_recipe,
)

ROOT = Path(__file__).resolve().parents[1]


def shipped_config() -> dict:
    """The TrainConfig recorded with the shipped classifier, less what belongs to one run."""
    config = json.loads((ROOT / "models" / "mask_classifier.metrics.json").read_text())["config"]
    return {k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__ and k not in RUN_FIELDS}


def recipe_part(cfg: TrainConfig) -> dict:
    d = json.loads(json.dumps(cfg.as_dict()))  # tuples as lists, like the recorded JSON
    return {k: v for k, v in d.items() if k not in RUN_FIELDS}


def train_config(argv: list[str], monkeypatch) -> TrainConfig:
    """The TrainConfig ``maskwatch train ARGV`` would train with (the training call is replaced)."""
    seen: dict = {}
    import maskwatch.models.training.pipeline as pipeline

    monkeypatch.setattr(pipeline, "train_and_report", lambda cfg, evaluate: seen.setdefault("cfg", cfg))
    args = build_parser().parse_args(["train", "--out", "runs/x", "--shared", "/data", *argv])
    assert args.func(args) == 0
    return seen["cfg"]


def test_the_default_recipe_is_the_shipped_classifiers_training_config():
    assert DEFAULT_RECIPE == ROOT / "models" / "recipes" / "mask_classifier.yaml"
    cfg = config_from_recipe(Path("/data"), Path("runs/x"))
    assert recipe_part(cfg) == shipped_config()
    assert (cfg.input_size, cfg.epochs, cfg.patience, cfg.learning_rate, cfg.refit) == (
        112,
        24,
        24,
        5e-4,
        True,
    )


def test_train_without_flags_uses_the_shipped_recipe(monkeypatch):
    cfg = train_config([], monkeypatch)
    assert recipe_part(cfg) == shipped_config()
    assert cfg.shared_dir == Path("/data") and cfg.out_dir == Path("runs/x")


def test_flags_override_the_recipe_and_leave_the_rest(monkeypatch):
    cfg = train_config(["--epochs", "3", "--lr", "1e-3", "--no-refit", "--train-batchnorm"], monkeypatch)
    assert (cfg.epochs, cfg.learning_rate, cfg.refit, cfg.freeze_batchnorm) == (3, 1e-3, False, False)
    expected = shipped_config() | {
        "epochs": 3,
        "learning_rate": 1e-3,
        "refit": False,
        "freeze_batchnorm": False,
    }
    assert recipe_part(cfg) == expected


def test_another_recipe_file_is_read_and_flags_still_win(tmp_path, monkeypatch):
    recipe = tmp_path / "small.yaml"
    recipe.write_text("input_size: 96\nepochs: 12\nrefit: false\naugment:\n  flip_p: 0.0\n")
    cfg = train_config(["--recipe", str(recipe), "--epochs", "5"], monkeypatch)
    assert (cfg.input_size, cfg.epochs, cfg.refit, cfg.augment.flip_p) == (96, 5, False, 0.0)
    assert cfg.learning_rate == TrainConfig.learning_rate  # not in that recipe: the dataclass default


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("epochs: 3\nlearnig_rate: 0.001\n", "learnig_rate"),
        ("augment:\n  flip_prob: 0.5\n", "flip_prob"),
        ("out_dir: runs/y\n", "out_dir"),
    ],
)
def test_an_unknown_recipe_key_is_an_error_naming_it(tmp_path, text, named, monkeypatch, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(RecipeError, match=named):
        load_recipe(recipe)
    args = build_parser().parse_args(["train", "--recipe", str(recipe), "--shared", "/data"])
    assert training_commands._cmd_train(args) == 2
    assert named in capsys.readouterr().err


def test_the_recipe_is_package_data():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert '"recipes/*.yaml"' in pyproject
