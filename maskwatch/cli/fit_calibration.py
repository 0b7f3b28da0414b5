"""Fit a backend's box calibration on the ``train`` scenes and write ``models/detectors/calibration/<backend>.json``.

    python -m maskwatch.cli.fit_calibration yunet --scenes DATA/scenes [--weights-dir DIR]

Only the ``train`` images of ``models/splits/scenes.json`` are used; each detection (at score
>= 0.3) is paired with the labelled face it overlaps most, when that IoU is at least 0.3.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from maskwatch.config.settings import DetectorSettings, load_settings
from maskwatch.core.faces import Faces
from maskwatch.models.detectors.calibration import CALIBRATION_DIR, BoxCalibration
from maskwatch.models.detectors.registry import DETECTORS
from maskwatch.models.evaluation.ap import iou_matrix
from maskwatch.models.evaluation.voc import load_scenes
from maskwatch.models.training.splits import load_split
from maskwatch.runtime.model_factory import build_detector

PAIR_IOU = 0.3
FIT_FLOOR = 0.3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("backend", choices=list(DETECTORS))
    ap.add_argument("--scenes", type=Path, required=True, help="folder of the labelled scene images")
    ap.add_argument(
        "--weights-dir",
        type=Path,
        help="folder of the detector's weights; default: the configured detector.weights_dir",
    )
    ap.add_argument("--ridge", type=float, default=1.0)
    ap.add_argument("--out", type=Path, help="default: models/detectors/calibration/<backend>.json")
    args = ap.parse_args()

    weights_dir = args.weights_dir or load_settings(None).detector.weights_dir
    settings = DetectorSettings(type=args.backend, weights_dir=weights_dir, box_calibration=False)
    detector = build_detector(settings, confidence=FIT_FLOOR)
    scenes = load_scenes(args.scenes, load_split("scenes")["train"])
    pairs, targets = [], []
    for scene in tqdm(scenes, desc=f"fit {args.backend}", unit="img"):
        faces = detector.detect([cv2.imread(str(scene.path))])[0]
        if not len(faces) or not len(scene.boxes):
            continue
        ious = iou_matrix(faces.boxes, scene.boxes)
        keep = ious.max(axis=1) >= PAIR_IOU
        pairs.append(faces[keep])
        targets.append(scene.boxes[ious.argmax(axis=1)[keep]])
    matched = Faces.merge(pairs)
    has_landmarks = matched.landmarks is not None
    calibration = BoxCalibration.fit(
        args.backend,
        matched.boxes,
        matched.scores,
        matched.landmarks,
        np.concatenate(targets),
        use_landmarks=has_landmarks,
        ridge=args.ridge,
        note=f"fit on the {len(scenes)} train images of models/splits/scenes.json, {detector.name}, "
        f"pairs at IoU >= {PAIR_IOU}, ridge {args.ridge}",
    )
    out = args.out or CALIBRATION_DIR / f"{args.backend}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(calibration.to_json() + "\n")
    print(f"wrote {out}: {calibration.pairs} pairs, landmarks {'used' if has_landmarks else 'not available'}")


if __name__ == "__main__":
    main()
