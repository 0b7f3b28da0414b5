"""Pictures of a scene evaluation: precision-recall curves and a grid of the worst misses (PNG)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import cv2
import numpy as np

from maskwatch.core.labels import CLASSES
from maskwatch.models.analysis import FaceThreshold
from maskwatch.models.evaluation.ap import match
from maskwatch.models.evaluation.scenes import SceneReport

TILE = 96


def write_pr_curves(report: SceneReport, path: Path) -> Path:
    """Face and per-class precision-recall curves, AP in the legend (needs matplotlib: the ``dev``/``train`` extra)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise RuntimeError(f"--report-dir needs matplotlib ({e}); pip install 'maskwatch[dev]'") from None
    fig, ax = plt.subplots(figsize=(6, 5), dpi=110)
    for key in ("face", "with_mask", "without_mask", "incorrect_mask"):
        c = report.curves[key]
        if len(c.recall):
            ax.plot(c.recall, c.precision, label=f"{key} AP {c.ap:.3f}")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
    title = f"{report.metrics.get('detector', '')} + {report.metrics.get('classifier', '')}, IoU {report.metrics['iou']}"
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_worst_misses(
    report: SceneReport, path: Path, threshold: float, limit: int = 48, masked_threshold: float | None = None
) -> Path:
    """A grid of the largest labelled faces the detector missed at ``threshold`` (caption: class, height in px)."""
    misses = []
    for r in report.results:
        keep = FaceThreshold(threshold, masked_threshold).keep(r.scores, r.probs, CLASSES)
        m = match(r.boxes[keep], r.scores[keep], r.scene.boxes, r.scene.difficult)
        found = set(m.gt_index[m.tp].tolist())
        for i, box in enumerate(r.scene.boxes):
            if i not in found and not r.scene.difficult[i]:
                misses.append((float(box[3] - box[1]), r.scene.path, box, r.scene.classes[i]))
    misses.sort(key=lambda m: -m[0])
    tiles = []
    for height, image_path, box, cls in misses[:limit]:
        frame = cv2.imread(str(image_path))
        if frame is None:
            continue
        x1, y1, x2, y2 = box.round().astype(int)
        pad = int(0.25 * max(x2 - x1, y2 - y1))
        crop = frame[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad]
        tile = cv2.resize(crop, (TILE, TILE)) if crop.size else np.zeros((TILE, TILE, 3), np.uint8)
        cv2.putText(
            tile, f"{cls[:7]} {height:.0f}", (2, TILE - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 255, 255), 1
        )
        tiles.append(tile)
    cols = 8
    rows = max(1, -(-len(tiles) // cols))
    grid = np.zeros((rows * TILE, cols * TILE, 3), np.uint8)
    for k, tile in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE] = tile
    cv2.imwrite(str(path), grid)
    return path
