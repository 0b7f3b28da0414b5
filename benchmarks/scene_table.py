"""The detector comparison of docs/detectors.md: every detector on every scene image, then metrics per split.

Detections (at each backend's evaluation floor) and classifier probabilities are cached per detector,
so the table for another split or classifier is cheap. Thresholds are tuned on the ``train`` split
(best face F1) and applied unchanged to ``test`` and ``all``.

    .venv/bin/python benchmarks/scene_table.py --out benchmarks/results/scene_table.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import cv2
import numpy as np

from maskwatch.config.settings import ClassifierSettings, DetectorSettings
from maskwatch.core.faces import Faces
from maskwatch.models.crops import crop_faces
from maskwatch.models.detectors.calibration import BoxCalibration
from maskwatch.models.detectors.registry import get as detector_spec
from maskwatch.models.evaluation.ap import best_f1_threshold
from maskwatch.models.evaluation.scenes import ImageResult, compute_metrics, tune_masked_threshold
from maskwatch.models.evaluation.voc import load_scenes
from maskwatch.models.training.splits import load_split
from maskwatch.runtime.model_factory import build_classifier, build_detector

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
SPECS: dict[str, dict] = {
    "opencv-res10": {"type": "opencv-res10"},
    "opencv-res10+boxcal": {"type": "opencv-res10", "calibrate": True},
    "blazeface-full": {"type": "blazeface", "blazeface_variant": "full"},
    "blazeface-back": {"type": "blazeface", "blazeface_variant": "back"},
    "blazeface-back+boxcal": {"type": "blazeface", "blazeface_variant": "back", "calibrate": True},
    "yunet": {"type": "yunet", "upscale_to": None, "downscale_to": None},
    "yunet+boxcal": {"type": "yunet", "upscale_to": None, "downscale_to": None, "calibrate": True},
    "yunet+up1280+boxcal": {"type": "yunet", "upscale_to": 1280, "downscale_to": None, "calibrate": True},
    "yunet+up1280+down400+boxcal": {
        "type": "yunet",
        "upscale_to": 1280,
        "downscale_to": 400,
        "calibrate": True,
    },
    # native size: the settings' default upscales small frames, so say None here
    "retinaface": {"type": "retinaface", "retinaface_upscale_to": None},
    "retinaface+boxcal": {"type": "retinaface", "retinaface_upscale_to": None, "calibrate": True},
    "retinaface+up1024+boxcal": {"type": "retinaface", "retinaface_upscale_to": 1024, "calibrate": True},
    "retinaface+boxcal+masked": {
        "type": "retinaface",
        "retinaface_upscale_to": None,
        "calibrate": True,
        "masked": True,
    },
    "retinaface+up1024+boxcal+masked": {
        "type": "retinaface",
        "retinaface_upscale_to": 1024,
        "calibrate": True,
        "masked": True,
    },
    "retinaface+boxcal+flip": {
        "type": "retinaface",
        "retinaface_upscale_to": None,
        "test_time_flip": True,
        "calibrate": True,
    },
    "retinaface+boxcal+flip+masked": {
        "type": "retinaface",
        "retinaface_upscale_to": None,
        "test_time_flip": True,
        "calibrate": True,
        "masked": True,
    },
    "yunet+up1280+down400+boxcal+masked": {
        "type": "yunet",
        "upscale_to": 1280,
        "downscale_to": 400,
        "calibrate": True,
        "masked": True,
    },
    "mtcnn": {"type": "mtcnn"},
    "mtcnn+boxcal": {"type": "mtcnn", "calibrate": True},
}
"""Detections are cached raw (``box_calibration=False``); ``calibrate`` applies the shipped calibration to them
(with ``test_time_flip`` inside the detector, to each view before the merge, as the worker does);
``masked`` adds a second, lower threshold for faces classified masked, tuned on train for masked/bare recall parity."""
FLAGS = ("calibrate", "masked")


def detect_all(spec: str, scenes, weights_dir: Path, cache: Path) -> tuple[list[Faces], float, str]:
    """Raw detections per image at the evaluation floor, seconds per image and the detector name (cached)."""
    options = {k: v for k, v in SPECS[spec].items() if k not in FLAGS}
    calibrate = bool(SPECS[spec].get("calibrate"))
    calibrated_inside = calibrate and bool(options.get("test_time_flip"))  # each view before the merge
    raw_key = "_".join(f"{k}-{v}" for k, v in sorted(options.items())) + "_calibrated" * calibrated_inside
    path = cache / f"det_{raw_key}.pkl"
    if path.exists():
        dets, seconds, name = pickle.loads(path.read_bytes())
    else:
        settings = DetectorSettings(weights_dir=weights_dir, box_calibration=calibrated_inside, **options)
        detector = build_detector(settings, confidence=detector_spec(settings.type).evaluation_floor)
        dets, total = [], 0.0
        for k, s in enumerate(scenes):
            frame = cv2.imread(str(s.path))
            t0 = time.perf_counter()
            dets.append(detector.detect([frame])[0])
            total += time.perf_counter() - t0
            if k % 200 == 0:
                print(f"  {spec}: {k}/{len(scenes)}", flush=True)
        seconds, name = total / len(scenes), detector.name
        path.write_bytes(pickle.dumps((dets, seconds, name)))
    if calibrate and not calibrated_inside:
        calibration = BoxCalibration.for_backend(options["type"])
        if calibration is None:
            raise SystemExit(f"no calibration for {options['type']}: python -m maskwatch.cli.fit_calibration")
        t0 = time.perf_counter()
        dets = [calibration.apply(d).clip(1e9, 1e9) for d in dets]
        seconds += (time.perf_counter() - t0) / len(scenes)
        name += "+boxcal"
    return dets, seconds, name


def classify_all(spec: str, scenes, dets, classifier, margin: float, cache: Path) -> tuple[list, float]:
    """Class probabilities of every detected face, and classifier seconds per image (cached per classifier)."""
    path = cache / f"cls_{spec.removesuffix('+masked')}_{classifier.name.replace(':', '_')}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    out, seconds = [], 0.0
    for s, det in zip(scenes, dets, strict=True):
        boxes = det.boxes
        if not len(boxes):
            out.append(np.zeros((0, len(classifier.classes)), np.float32))
            continue
        frame = cv2.imread(str(s.path))
        t0 = time.perf_counter()
        out.append(np.asarray(classifier.predict(crop_faces(frame, boxes, margin)), np.float32))
        seconds += time.perf_counter() - t0
    result = (out, seconds / len(scenes))
    path.write_bytes(pickle.dumps(result))
    return result


def threshold_text(row: dict) -> str:
    """``0.96`` or ``0.96 / masked 0.60``."""
    masked = row.get("masked_threshold_tuned_on_train")
    t = f"{row['threshold_tuned_on_train']:.2f}"
    return t if masked is None else f"{t} / masked {masked:.2f}"


def markdown(rows: list[dict], part: str) -> str:
    """The docs table of one split: face AP, recall (masked, unmasked, small), mAP, ms per image."""

    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.2f}"

    head = (
        "| detector | threshold | face AP | recall all | recall masked | recall unmasked | recall incorrect "
        "| recall < 32 px | precision | mAP | mAP mask/no-mask | ms/image |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        m = r[part]
        by = m["face_recall_by_class"]
        ms = r["ms_per_image_detector"] + r["ms_per_image_classifier"]
        lines.append(
            f"| {r['detector']} | {threshold_text(r)} | {f(m['face_ap'])} | {f(m['face_recall'])} "
            f"| {f(by['with_mask'])} | {f(by['without_mask'])} | {f(by['incorrect_mask'])} | {f(m['face_recall_small'])} "
            f"| {f(m['face_precision'])} | {f(m['map'])} | {f(m['map_binary'])} | {ms:.0f} |"
        )
    return head + "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=Path, default=SHARED / "data" / "scenes")
    ap.add_argument("--weights-dir", type=Path, default=SHARED / "weights")
    ap.add_argument("--detectors", nargs="+", default=list(SPECS), choices=list(SPECS))
    ap.add_argument(
        "--classifier", default="placeholder", help="'placeholder', 'keras' (shipped model) or a .keras path"
    )
    ap.add_argument("--cache", type=Path, default=Path("/tmp/maskwatch-scene-cache"))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/scene_table.json"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)

    scenes = load_scenes(args.scenes)
    index = {s.path.name: i for i, s in enumerate(scenes)}
    split = load_split("scenes")
    parts = {"all": list(range(len(scenes)))} | {
        p: [index[Path(n).name] for n in split[p]] for p in ("train", "val", "test")
    }
    if args.classifier == "placeholder":
        cls_settings = ClassifierSettings(type="placeholder")
    elif args.classifier == "keras":
        cls_settings = ClassifierSettings(type="keras")
    else:
        cls_settings = ClassifierSettings(type="keras", path=Path(args.classifier))
    classifier = build_classifier(cls_settings)

    rows = []
    for spec in args.detectors:
        dets, det_s, name = detect_all(spec, scenes, args.weights_dir, args.cache)
        probs, cls_s = classify_all(spec, scenes, dets, classifier, cls_settings.margin, args.cache)
        results = [ImageResult(s, d.boxes, d.scores, p) for s, d, p in zip(scenes, dets, probs, strict=True)]
        train = compute_metrics([results[i] for i in parts["train"]], threshold=1.0)
        threshold, _ = best_f1_threshold(train.curves["face"])
        masked = None
        if SPECS[spec].get("masked"):
            floor = detector_spec(SPECS[spec]["type"]).evaluation_floor
            masked = tune_masked_threshold([results[i] for i in parts["train"]], threshold, floor)
        row = {
            "detector": spec,
            "name": name,
            "threshold_tuned_on_train": threshold,
            "masked_threshold_tuned_on_train": masked,
            "ms_per_image_detector": 1000 * det_s,
            "ms_per_image_classifier": 1000 * cls_s,
        }
        for part in ("all", "val", "test"):
            m = compute_metrics([results[i] for i in parts[part]], threshold, masked_threshold=masked).metrics
            row[part] = m
        rows.append(row)
        t = row["test"]
        print(
            f"{spec:15s} thr {threshold:.2f}  test: face AP {t['face_ap']:.3f} recall {t['face_recall']:.3f} "
            f"masked {t['face_recall_by_class']['with_mask']:.3f} unmasked {t['face_recall_by_class']['without_mask']:.3f} "
            f"small {t['face_recall_small']:.3f} mAP {t['map']:.3f}  {1000 * det_s:.0f} ms",
            flush=True,
        )
    report = {
        "classifier": classifier.name,
        "classifier_placeholder": bool(getattr(classifier, "placeholder", False)),
        "scenes": str(args.scenes),
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float) + "\n")
    md = "".join(
        f"\n{part} ({rows[0][part]['images']} images, {rows[0][part]['faces']} faces)\n\n{markdown(rows, part)}"
        for part in ("test", "val", "all")
    )
    args.out.with_suffix(".md").write_text(f"classifier: {classifier.name}\n{md}")
    print(md)


if __name__ == "__main__":
    main()
