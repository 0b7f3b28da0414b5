"""Box matching and average precision (all-point interpolated, as PASCAL VOC 2010+ and COCO per IoU)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskwatch.core.faces import iou_matrix


@dataclass(frozen=True)
class Matches:
    """Outcome of matching one image's detections to its ground truth.

    ``tp``/``ignored`` are per detection; ``gt_index`` is the matched ground-truth row (-1: none);
    an ignored detection matched an ignored ground-truth box and counts neither way.
    """

    tp: np.ndarray
    ignored: np.ndarray
    gt_index: np.ndarray


def match(
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_boxes: np.ndarray,
    gt_ignore: np.ndarray | None = None,
    iou_threshold: float = 0.5,
) -> Matches:
    """Greedy matching, best score first: each detection takes the unmatched ground truth it overlaps most.

    A detection that overlaps no free counted box by ``iou_threshold`` but overlaps an ignored
    box is ignored (VOC "difficult" semantics); otherwise it is a false positive.
    """
    det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    n, m = len(det_boxes), len(gt_boxes)
    ignore = np.zeros(m, bool) if gt_ignore is None else np.asarray(gt_ignore, bool)
    tp = np.zeros(n, bool)
    ignored = np.zeros(n, bool)
    gt_index = np.full(n, -1, int)
    if n == 0 or m == 0:
        return Matches(tp, ignored, gt_index)
    ious = iou_matrix(det_boxes, gt_boxes)
    taken = np.zeros(m, bool)
    for d in np.argsort(-np.asarray(det_scores), kind="stable"):
        free = np.where(~taken & ~ignore, ious[d], -1.0)
        g = int(free.argmax())
        if free[g] >= iou_threshold:
            tp[d], taken[g], gt_index[d] = True, True, g
        elif ignore.any() and ious[d][ignore].max() >= iou_threshold:
            ignored[d] = True
            gt_index[d] = int(np.flatnonzero(ignore)[ious[d][ignore].argmax()])
    return Matches(tp, ignored, gt_index)


@dataclass(frozen=True)
class PRCurve:
    """Precision/recall after each detection (scores descending) and the area under it."""

    ap: float
    precision: np.ndarray
    recall: np.ndarray
    scores: np.ndarray


def average_precision(scores: np.ndarray, tp: np.ndarray, n_positives: int) -> PRCurve:
    """All-point interpolated AP: area under the precision envelope (precision made monotone) over recall."""
    scores = np.asarray(scores, np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    hits = np.asarray(tp, bool)[order]
    ctp = np.cumsum(hits)
    cfp = np.cumsum(~hits)
    recall = ctp / max(n_positives, 1)
    precision = ctp / np.maximum(ctp + cfp, 1)
    if n_positives == 0:
        return PRCurve(float("nan"), precision, recall, scores[order])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    steps = np.flatnonzero(mrec[1:] != mrec[:-1])
    ap = float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    return PRCurve(ap, precision, recall, scores[order])


def best_f1_threshold(curve: PRCurve) -> tuple[float, float]:
    """The score threshold with the highest F1 on this curve, and that F1."""
    if not len(curve.scores):
        return 1.0, 0.0
    f1 = 2 * curve.precision * curve.recall / np.maximum(curve.precision + curve.recall, 1e-12)
    i = int(f1.argmax())
    return float(curve.scores[i]), float(f1[i])
