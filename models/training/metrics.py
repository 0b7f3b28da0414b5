"""Classification metrics for 3-class probabilities and the compliant/violation split (numpy only)."""

from __future__ import annotations

import numpy as np

from maskwatch.core.labels import CLASSES, is_violation

VIOLATION_COLUMNS = np.array([is_violation(c) for c in CLASSES])
BINARY_LABELS: tuple[str, str] = ("compliant", "violation")
EPS = 1e-7


def violation_probability(probs: np.ndarray) -> np.ndarray:
    """P(violation) = P(without_mask) + P(incorrect_mask)."""
    return probs[:, VIOLATION_COLUMNS].sum(axis=1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties averaged); None when one class is absent."""
    pos, neg = int(y_true.sum()), int((1 - y_true).sum())
    if pos == 0 or neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(len(s), np.float64)
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[y_true == 1].sum() - pos * (pos + 1) / 2) / (pos * neg))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates over every threshold."""
    order = np.argsort(-score, kind="mergesort")
    y = y_true[order]
    tps = np.concatenate([[0], np.cumsum(y)])
    fps = np.concatenate([[0], np.cumsum(1 - y)])
    return fps / max(fps[-1], 1), tps / max(tps[-1], 1)


def _prf(cm: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict[str, float | int | None]]:
    out = {}
    for i, name in enumerate(labels):
        tp, support, predicted = int(cm[i, i]), int(cm[i].sum()), int(cm[:, i].sum())
        p = tp / predicted if predicted else None
        r = tp / support if support else None
        f1 = (
            2 * p * r / (p + r)
            if p is not None and r is not None and (p + r) > 0
            else (0.0 if p == 0 or r == 0 else None)
        )
        out[name] = {"precision": p, "recall": r, "f1": f1, "support": support}
    return out


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = 10) -> float:
    """ECE of the top-class confidence."""
    conf, pred = probs.max(1), probs.argmax(1)
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs((pred[m] == y_true[m]).mean() - conf[m].mean())
    return float(ece)


def classification_metrics(y_true: np.ndarray, probs: np.ndarray) -> dict:
    """Every reported number for labels ``y_true`` (indices into CLASSES) and (N, 3) ``probs``."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(y_true) == 0:
        raise ValueError("no samples to evaluate")
    n = len(CLASSES)
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, n)
    p_true = np.clip(probs[np.arange(len(y_true)), y_true], EPS, 1.0)
    b_true = VIOLATION_COLUMNS[y_true].astype(np.int64)
    p_viol = np.clip(violation_probability(probs), 0.0, 1.0)
    b_pred = VIOLATION_COLUMNS[y_pred].astype(np.int64)
    b_cm = confusion_matrix(b_true, b_pred, 2)
    pb = np.clip(np.where(b_true == 1, p_viol, 1 - p_viol), EPS, 1.0)
    per_class = _prf(cm, CLASSES)
    return {
        "n": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()),
        "binary_accuracy": float((b_pred == b_true).mean()),
        "log_loss": float(-np.log(p_true).mean()),
        "binary_log_loss": float(-np.log(pb).mean()),
        "roc_auc": roc_auc(b_true, p_viol),
        "ece": expected_calibration_error(y_true, probs),
        "per_class": per_class,
        "incorrect_mask_recall": per_class["incorrect_mask"]["recall"],
        "confusion_matrix": {
            "labels": list(CLASSES),
            "rows": "true",
            "columns": "predicted",
            "matrix": cm.tolist(),
        },
        "binary": {
            "labels": list(BINARY_LABELS),
            "per_class": _prf(b_cm, BINARY_LABELS),
            "confusion_matrix": b_cm.tolist(),
        },
    }
