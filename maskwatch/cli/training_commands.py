"""CLI commands of the classifier: ``maskwatch train`` and ``maskwatch evaluate crops``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction, evaluate_sub: argparse._SubParsersAction) -> None:
    """Add this module's subcommands; each sets ``func(args) -> int``."""
    p = sub.add_parser("train", help="Train the mask classifier (needs the 'train' extra)")
    p.add_argument(
        "--shared", type=Path, default=None, help="Data folder (default $MASKWATCH_SHARED or ../shared)"
    )
    p.add_argument(
        "--out", type=Path, default=Path("runs/classifier"), help="Run folder: checkpoints, history, report"
    )
    p.add_argument(
        "--recipe",
        type=Path,
        default=None,
        help="Recipe YAML (TrainConfig settings; default: models/recipes/mask_classifier.yaml, the "
        "shipped classifier's). The flags below override its values; unset flags keep them",
    )
    p.add_argument("--sources", default=None, help="Comma list of training sources: crops, scenes")
    p.add_argument("--input-size", type=int, default=None, help="Square input side in pixels")
    p.add_argument(
        "--margin", type=float, default=None, help="Margin around scene face boxes (as the worker)"
    )
    p.add_argument("--init", choices=["imagenet", "scratch"], default=None)
    p.add_argument(
        "--torch-checkpoint", type=Path, default=None, help="torchvision mobilenet_v2-b0353104.pth"
    )
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="Peak learning rate")
    p.add_argument("--patience", type=int, default=None, help="Early stopping patience (epochs)")
    p.add_argument("--class-weight-power", type=float, default=None, help="0 unweighted, 0.5 sqrt-balanced")
    p.add_argument("--seed", type=int, default=None, help="Seed for everything random")
    p.add_argument("--max-per-source", type=int, default=None, help="Tiny subset for smoke tests")
    p.add_argument("--max-minutes", type=float, default=None, help="Wall-clock budget for the epochs")
    p.add_argument("--cache-dir", type=Path, default=None, help="Cache decoded crops here between runs")
    p.add_argument(
        "--average-from",
        type=float,
        default=None,
        help="Average the weights of the epochs after this fraction of --epochs (e.g. 0.5) and keep the "
        "average when its validation loss beats the best checkpoint (needs --no-refit)",
    )
    p.add_argument(
        "--train-batchnorm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Let the pretrained BatchNorm layers adapt (statistics and scale), or keep them frozen",
    )
    p.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Train on train+val with a recipe already chosen on validation and keep the last epoch's "
        "weights; --no-refit trains on train and early-stops on val",
    )
    p.add_argument("--resume", action="store_true", help="Continue from OUT/checkpoints/last.keras")
    p.add_argument("--no-eval", action="store_true", help="Skip the held-out evaluation after training")
    p.add_argument(
        "--make-splits", action="store_true", help="(Re)write models/splits/{scenes,crops}.json and exit"
    )
    p.set_defaults(func=_cmd_train)

    e = evaluate_sub.add_parser(
        "crops", help="Classify labelled face crops: a crops folder or VOC scene boxes"
    )
    e.add_argument(
        "dir", nargs="?", type=Path, help="Crops folder with one subfolder per class (aliases accepted)"
    )
    e.add_argument(
        "--scenes", type=Path, default=None, help="Instead: a VOC scene folder; classify its GT boxes"
    )
    e.add_argument("--json", type=Path, required=True, help="Write the metrics here")
    e.add_argument(
        "--model", type=Path, default=None, help="A .keras model (default: models/mask_classifier.keras)"
    )
    e.add_argument("--report-dir", type=Path, default=None, help="Write PNG plots here (needs matplotlib)")
    e.add_argument("--split", default=None, help="Use only one part of this split (e.g. crops, scenes)")
    e.add_argument("--part", default="test", choices=["train", "val", "test"])
    e.add_argument(
        "--margin", type=float, default=None, help="Scene box margin (default: the configured one)"
    )
    e.set_defaults(func=_cmd_evaluate_crops)


def _shared(arg: Path | None) -> Path:
    from maskwatch.models.training.data import default_shared_dir

    return arg if arg is not None else default_shared_dir()


def recipe_overrides(args: argparse.Namespace) -> dict:
    """TrainConfig settings given as flags (those left unset keep the recipe's values)."""
    given = {
        "sources": tuple(s.strip() for s in args.sources.split(",") if s.strip()) if args.sources else None,
        "input_size": args.input_size,
        "margin": args.margin,
        "init": args.init,
        "torch_checkpoint": args.torch_checkpoint,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "patience": args.patience,
        "class_weight_power": args.class_weight_power,
        "seed": args.seed,
        "max_per_source": args.max_per_source,
        "max_minutes": args.max_minutes,
        "cache_dir": args.cache_dir,
        "average_from": args.average_from,
        "freeze_batchnorm": None if args.train_batchnorm is None else not args.train_batchnorm,
        "refit": args.refit,
    }
    overrides = {k: v for k, v in given.items() if v is not None}
    if args.resume:
        overrides["resume"] = True
    return overrides


def _cmd_train(args: argparse.Namespace) -> int:
    from maskwatch.models.training.data import DataError
    from maskwatch.models.training.splits import DEFAULT_SEED, make_crops_split, make_scenes_split

    shared = _shared(args.shared)
    seed = args.seed if args.seed is not None else DEFAULT_SEED
    if args.make_splits:
        print(make_scenes_split(shared / "data" / "scenes", seed))
        print(make_crops_split(shared / "data" / "crops", seed))
        return 0
    from maskwatch.models.training.pipeline import train_and_report
    from maskwatch.models.training.train import DEFAULT_RECIPE, RecipeError, config_from_recipe

    try:
        cfg = config_from_recipe(shared, args.out, args.recipe or DEFAULT_RECIPE, **recipe_overrides(args))
    except RecipeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        train_and_report(cfg, evaluate=not args.no_eval)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


def _cmd_evaluate_crops(args: argparse.Namespace) -> int:
    from maskwatch.models.keras_classifier import KerasMaskClassifier
    from maskwatch.models.training.data import DataError
    from maskwatch.models.training.evaluate import evaluate_set, load_eval_set, summary_line, write_json

    if (args.dir is None) == (args.scenes is None):
        print("error: give a crops folder DIR or --scenes DIR (not both)", file=sys.stderr)
        return 2
    margin = args.margin
    if margin is None:
        from maskwatch.config.settings import ClassifierSettings

        margin = ClassifierSettings().margin
    try:
        data = load_eval_set(args.dir, args.scenes, args.split, args.part, margin)
        classifier = KerasMaskClassifier.load(args.model)
        prefix = "scenes" if args.scenes is not None else "crops"
        metrics = evaluate_set(classifier, data, args.report_dir, prefix)
    except (DataError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    metrics["data"] = {
        "dir": str(args.scenes or args.dir),
        "kind": "scenes" if args.scenes is not None else "crops",
        "split": args.split,
        "part": args.part if args.split else "all",
        "margin": margin if args.scenes is not None else None,
    }
    write_json(metrics, args.json)
    print(summary_line(metrics))
    return 0
