"""CCTV-like augmentation of square face crops: flips, scale/position jitter, light, blur, JPEG, small faces."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of each augmentation (all applied independently)."""

    flip_p: float = 0.5
    crop_scale: tuple[float, float] = (0.80, 1.05)
    """Side of the sampled window relative to the canvas (>1 zooms out with edge padding)."""
    shift: float = 0.08
    """Largest window shift, relative to the canvas side."""
    aspect: tuple[float, float] = (0.9, 1.1)
    light_p: float = 0.8
    contrast: tuple[float, float] = (0.6, 1.4)
    brightness: tuple[float, float] = (-40.0, 40.0)
    gray_p: float = 0.05
    blur_p: float = 0.2
    blur_sigma: tuple[float, float] = (0.4, 1.5)
    small_p: float = 0.3
    small_side: tuple[int, int] = (10, 48)
    """Down-and-up sampling: side in pixels the face is shrunk to before it is scaled back."""
    jpeg_p: float = 0.3
    jpeg_quality: tuple[int, int] = (25, 85)

    def as_dict(self) -> dict:
        return asdict(self)


def fit_canvas(crop: np.ndarray, side: int) -> np.ndarray:
    """Resize a crop (any aspect) to ``side`` x ``side``, squashing like serving's ``resize_batch``."""
    interp = cv2.INTER_AREA if min(crop.shape[:2]) > side else cv2.INTER_LINEAR
    return cv2.resize(crop, (side, side), interpolation=interp)


def augment_one(img: np.ndarray, out_side: int, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """One augmented ``out_side`` x ``out_side`` BGR uint8 view of a square BGR uint8 canvas."""
    side = img.shape[0]
    s = rng.uniform(*cfg.crop_scale) * side
    a = np.sqrt(rng.uniform(*cfg.aspect))
    w, h = s * a, s / a
    cx = side / 2 + rng.uniform(-cfg.shift, cfg.shift) * side
    cy = side / 2 + rng.uniform(-cfg.shift, cfg.shift) * side
    # affine map of the window [cx-w/2, cx+w/2] x [cy-h/2, cy+h/2] onto the output square
    sx, sy = out_side / w, out_side / h
    m = np.array([[sx, 0, -(cx - w / 2) * sx], [0, sy, -(cy - h / 2) * sy]], dtype=np.float32)
    interp = cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR
    out = cv2.warpAffine(img, m, (out_side, out_side), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    if rng.random() < cfg.flip_p:
        out = out[:, ::-1]
    if rng.random() < cfg.small_p:
        small = int(rng.integers(cfg.small_side[0], min(cfg.small_side[1], out_side) + 1))
        tiny = cv2.resize(out, (small, small), interpolation=cv2.INTER_AREA)
        out = cv2.resize(tiny, (out_side, out_side), interpolation=cv2.INTER_LINEAR)
    if rng.random() < cfg.blur_p:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(*cfg.blur_sigma))
    if rng.random() < cfg.light_p:
        alpha, beta = rng.uniform(*cfg.contrast), rng.uniform(*cfg.brightness)
        mean = out.mean()
        out = np.clip((out.astype(np.float32) - mean) * alpha + mean + beta, 0, 255).astype(np.uint8)
    if rng.random() < cfg.gray_p:
        out = cv2.cvtColor(cv2.cvtColor(out, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    if rng.random() < cfg.jpeg_p:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(out), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return np.ascontiguousarray(out)


def augment_batch(
    canvases: np.ndarray, out_side: int, rng: np.random.Generator, cfg: AugmentConfig
) -> np.ndarray:
    """(N, out_side, out_side, 3) RGB uint8 augmented views of (N, P, P, 3) BGR canvases."""
    out = np.empty((len(canvases), out_side, out_side, 3), np.uint8)
    for i, img in enumerate(canvases):
        out[i] = augment_one(img, out_side, rng, cfg)[..., ::-1]
    return out
