"""torchvision's MobileNetV2, rebuilt in plain torch (dev only: needs ``torch``), to verify the conversion.

``verify_conversion`` runs the same images through this network and through the converted Keras
model and reports the largest differences of the ImageNet logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from maskwatch.models.training.mobilenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INVERTED_RESIDUAL_SETTING,
    LAST_CHANNELS,
)


def _conv_bn_relu(inp: int, out: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
        nn.ReLU6(inplace=True),
    )


class _InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, t: int):
        super().__init__()
        hidden = inp * t
        layers: list[nn.Module] = [] if t == 1 else [_conv_bn_relu(inp, hidden, 1)]
        layers += [
            _conv_bn_relu(hidden, hidden, 3, stride, hidden),
            nn.Conv2d(hidden, out, 1, bias=False),
            nn.BatchNorm2d(out),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class TorchMobileNetV2(nn.Module):
    """Same module tree and ``state_dict`` keys as ``torchvision.models.mobilenet_v2()``."""

    def __init__(self) -> None:
        super().__init__()
        feats: list[nn.Module] = [_conv_bn_relu(3, 32, 3, 2)]
        channels = 32
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            for i in range(n):
                feats.append(_InvertedResidual(channels, c, s if i == 0 else 1, t))
                channels = c
        feats.append(_conv_bn_relu(channels, LAST_CHANNELS, 1))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(LAST_CHANNELS, 1000))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.classifier(x)


def verify_conversion(checkpoint: Path, images_rgb: np.ndarray) -> dict[str, float]:
    """Max/mean absolute logit difference, top-1 agreement between torch and the converted Keras model.

    ``images_rgb``: (N, S, S, 3) uint8 RGB (S even or odd; both paddings are exercised).
    """
    from maskwatch.models.training.convert_torch import load_torch_mobilenet_v2_into
    from maskwatch.models.training.mobilenet import build_mobilenet_v2_features

    net = TorchMobileNetV2().eval()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    x = images_rgb.astype(np.float32) / 255.0
    x = (x - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    keras_model = build_mobilenet_v2_features(images_rgb.shape[1], include_imagenet_top=True)
    load_torch_mobilenet_v2_into(keras_model, checkpoint)
    got = np.asarray(keras_model(images_rgb.astype(np.float32), training=False))
    diff = np.abs(got - ref)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "logit_scale": float(np.abs(ref).max()),
        "top1_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
    }
