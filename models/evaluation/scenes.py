"""Detector + mask classifier on labelled scene images: face-level and end-to-end (per class) metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from maskwatch.core.labels import CLASSES
from maskwatch.models.analysis import FaceAnalyzer, FaceThreshold
from maskwatch.models.evaluation.ap import PRCurve, average_precision, best_f1_threshold, match
from maskwatch.models.evaluation.voc import SceneImage

SMALL_FACE_PX = 32
MAP_CLASSES = ("with_mask", "without_mask")


@dataclass
class ImageResult:
    """Ground truth and predictions of one image (predictions at the detector's lowest threshold)."""

    scene: SceneImage
    boxes: np.ndarray
    scores: np.ndarray
    probs: np.ndarray


@dataclass
class SceneReport:
    """Every metric of one evaluation run, plus the curves and per-image results behind them."""

    metrics: dict[str, Any]
    curves: dict[str, PRCurve] = field(default_factory=dict)
    results: list[ImageResult] = field(default_factory=list)


def run_models(
    scenes: Iterable[SceneImage],
    analyzer: FaceAnalyzer,
    progress: Callable[[Iterable[SceneImage]], Iterable[SceneImage]] | None = None,
) -> tuple[list[ImageResult], float]:
    """Detect and classify every image one at a time; returns the results and the model seconds spent.

    ``analyzer`` should keep every candidate (no threshold, detector at the evaluation floor):
    :func:`compute_metrics` applies the operating threshold itself.
    """
    results, seconds = [], 0.0
    for scene in progress(scenes) if progress else scenes:
        frame = cv2.imread(str(scene.path), cv2.IMREAD_COLOR)
        if frame is None:
            raise ValueError(f"cannot read image {scene.path}")
        t0 = time.perf_counter()
        (found,) = analyzer([frame])
        seconds += time.perf_counter() - t0
        results.append(ImageResult(scene, found.boxes, found.scores, found.probs))
    return results, seconds


def _pooled_curve(
    results: Sequence[ImageResult],
    predict: Callable[[ImageResult], tuple[np.ndarray, np.ndarray]],
    positives: Callable[[SceneImage], np.ndarray],
    ignore: Callable[[SceneImage], np.ndarray],
    iou: float,
) -> PRCurve:
    """AP over a dataset: ``predict`` gives (boxes, scores) per image, ``positives``/``ignore`` masks of its ground truth."""
    all_scores, all_tp, n_pos = [], [], 0
    for r in results:
        boxes, scores = predict(r)
        pos, ign = positives(r.scene), ignore(r.scene) & ~positives(r.scene)
        keep_gt = pos | ign
        m = match(boxes, scores, r.scene.boxes[keep_gt], ign[keep_gt], iou)
        counted = ~m.ignored
        all_scores.append(scores[counted])
        all_tp.append(m.tp[counted])
        n_pos += int(pos.sum())
    scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    tp = np.concatenate(all_tp) if all_tp else np.zeros(0, bool)
    return average_precision(scores, tp, n_pos)


def _class_mask(scene: SceneImage, names: Iterable[str]) -> np.ndarray:
    names = set(names)
    return np.array([c in names for c in scene.classes], bool) & ~scene.difficult


def compute_metrics(
    results: Sequence[ImageResult], threshold: float, iou: float = 0.5, masked_threshold: float | None = None
) -> SceneReport:
    """Face AP/recall/precision, per-class AP and mAP of detector + classifier at IoU ``iou``.

    End-to-end, each face is labelled with the classifier's top class and scored
    ``detector score x class probability``. ``map`` averages ``with_mask`` and ``without_mask``,
    with ``incorrect_mask`` faces ignored for those two; ``map_binary`` merges incorrect into
    ``without_mask`` on both sides (mask / no mask, the convention of single-stage peers).
    Recall and precision are taken at the operating point: score >= ``threshold``, or
    >= ``masked_threshold`` for faces classified masked (:class:`models.analysis.FaceThreshold`).
    """
    rule = FaceThreshold(threshold, masked_threshold)
    curves: dict[str, PRCurve] = {}
    all_faces = lambda s: ~s.difficult  # noqa: E731
    difficult = lambda s: s.difficult  # noqa: E731
    curves["face"] = _pooled_curve(results, lambda r: (r.boxes, r.scores), all_faces, difficult, iou)

    # Face-level recall and precision at the operating threshold, by class and by size.
    n_gt = {c: 0 for c in CLASSES}
    found = {c: 0 for c in CLASSES}
    small = [0, 0]
    large = [0, 0]
    tp_at, n_det_at = 0, 0
    for r in results:
        keep = rule.keep(r.scores, r.probs, CLASSES)
        counted = ~r.scene.difficult
        m = match(r.boxes[keep], r.scores[keep], r.scene.boxes, r.scene.difficult, iou)
        hit = np.zeros(len(r.scene.boxes), bool)
        hit[m.gt_index[m.tp]] = True
        tp_at += int(m.tp.sum())
        n_det_at += int((~m.ignored).sum())
        heights = r.scene.boxes[:, 3] - r.scene.boxes[:, 1]
        for i, c in enumerate(r.scene.classes):
            if not counted[i]:
                continue
            n_gt[c] += 1
            found[c] += int(hit[i])
            bucket = small if heights[i] < SMALL_FACE_PX else large
            bucket[0] += int(hit[i])
            bucket[1] += 1

    three = [[i] for i in range(len(CLASSES))]
    for ci, c in enumerate(CLASSES):

        def predict(r: ImageResult, ci: int = ci) -> tuple[np.ndarray, np.ndarray]:
            k, s = _top_class(r, three)
            return r.boxes[k == ci], s[k == ci]

        ignored = (
            (lambda s: s.difficult | _class_mask(s, ["incorrect_mask"])) if c in MAP_CLASSES else difficult
        )
        curves[c] = _pooled_curve(results, predict, lambda s, c=c: _class_mask(s, [c]), ignored, iou)

    binary = {"mask": ["with_mask"], "no_mask": ["without_mask", "incorrect_mask"]}
    binary_cols = [[CLASSES.index(n) for n in names] for names in binary.values()]
    for bi, (b, names) in enumerate(binary.items()):

        def predict_binary(r: ImageResult, bi: int = bi) -> tuple[np.ndarray, np.ndarray]:
            k, s = _top_class(r, binary_cols)
            return r.boxes[k == bi], s[k == bi]

        curves[f"binary_{b}"] = _pooled_curve(
            results, predict_binary, lambda s, names=names: _class_mask(s, names), difficult, iou
        )

    f1_threshold, f1 = best_f1_threshold(curves["face"])
    total = sum(n_gt.values())
    masked = n_gt["with_mask"]
    metrics: dict[str, Any] = {
        "images": len(results),
        "faces": total,
        "faces_by_class": n_gt,
        "small_faces": small[1],
        "iou": iou,
        "threshold": threshold,
        "masked_threshold": masked_threshold,
        "face_ap": curves["face"].ap,
        "face_recall": sum(found.values()) / max(total, 1),
        "face_precision": tp_at / max(n_det_at, 1),
        "face_recall_by_class": {c: found[c] / n_gt[c] if n_gt[c] else None for c in CLASSES},
        "face_recall_masked": found["with_mask"] / max(masked, 1),
        "face_recall_small": small[0] / max(small[1], 1),
        "face_recall_large": large[0] / max(large[1], 1),
        "best_f1_threshold": f1_threshold,
        "best_f1": f1,
        "ap": {c: _nan_to_none(curves[c].ap) for c in CLASSES},
        "map": float(np.nanmean([curves[c].ap for c in MAP_CLASSES])),
        "map_binary": float(np.nanmean([curves[f"binary_{b}"].ap for b in binary])),
    }
    return SceneReport(metrics, curves, list(results))


def tune_masked_threshold(
    results: Sequence[ImageResult], threshold: float, floor: float, step: float = 0.05
) -> float | None:
    """The highest masked-face threshold (``threshold`` down to ``floor`` in ``step``) at which the
    recall of masked faces reaches that of bare faces on ``results``; None if none does.

    Meant for the ``train`` split: each backend's ``DetectorSpec.masked_confidence`` comes from it.
    """
    for candidate in np.arange(threshold - step, floor - 1e-9, -step):
        recall = compute_metrics(results, threshold, masked_threshold=float(candidate)).metrics[
            "face_recall_by_class"
        ]
        if recall["with_mask"] is not None and recall["with_mask"] >= (recall["without_mask"] or 0.0):
            return round(float(candidate), 2)
    return None


def _top_class(r: ImageResult, columns: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Each face's top class among groups of probability ``columns`` and its score: detector x class probability."""
    if not len(r.boxes):
        return np.zeros(0, int), np.zeros(0)
    p = np.column_stack([r.probs[:, cols].sum(axis=1) for cols in columns])
    k = p.argmax(axis=1)
    return k, r.scores * p[np.arange(len(k)), k]


def _nan_to_none(x: float) -> float | None:
    return None if np.isnan(x) else x
