"""A Keras MobileNetV2 laid out exactly like torchvision's, so its ImageNet weights load one-to-one.

Differences from ``keras.applications.MobileNetV2`` that matter for torch weights: BatchNorm
epsilon 1e-5 (Keras: 1e-3), stride-2 convolutions padded by one pixel on every side (Keras pads
only bottom/right for even sizes), and ImageNet mean/std input normalisation built into the model,
which therefore takes RGB pixel values in 0..255.
"""

from __future__ import annotations

import keras
from keras import layers

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
TORCH_BN_EPSILON = 1e-5
INVERTED_RESIDUAL_SETTING: tuple[tuple[int, int, int, int], ...] = (
    # expansion t, output channels c, repeats n, first stride s (torchvision order)
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
LAST_CHANNELS = 1280


def _conv_bn(
    x, filters: int, kernel: int, stride: int, name: str, act: bool = True, eps: float = TORCH_BN_EPSILON
):
    if stride == 2 and kernel > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        x = layers.Conv2D(filters, kernel, strides=2, padding="valid", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(
            filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(x)
    x = layers.BatchNormalization(epsilon=eps, momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x) if act else x


def _depthwise_bn(x, stride: int, name: str, eps: float = TORCH_BN_EPSILON):
    if stride == 2:
        x = layers.ZeroPadding2D(1, name=f"{name}_pad")(x)
        x = layers.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.DepthwiseConv2D(3, strides=1, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=eps, momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x)


def build_mobilenet_v2_features(
    input_size: int,
    include_last_conv: bool = True,
    include_imagenet_top: bool = False,
    name: str = "mobilenet_v2",
) -> keras.Model:
    """MobileNetV2 (width 1.0) from RGB 0..255 input to pooled features (or ImageNet logits).

    Layer names follow torchvision's ``features.<i>`` blocks (``f<i>_expand``, ``f<i>_dw``,
    ``f<i>_project``, ``f18`` for the last 1x1 conv), see :func:`torch_key_map`.
    """
    inputs = keras.Input((input_size, input_size, 3), name="rgb_0_255")
    x = layers.Normalization(
        mean=[m * 255.0 for m in IMAGENET_MEAN],
        variance=[(s * 255.0) ** 2 for s in IMAGENET_STD],
        name="imagenet_norm",
    )(inputs)
    x = _conv_bn(x, 32, 3, 2, "f0")
    channels, block = 32, 1
    for t, c, n, s in INVERTED_RESIDUAL_SETTING:
        for i in range(n):
            stride = s if i == 0 else 1
            shortcut = x
            y = x
            if t != 1:
                y = _conv_bn(y, channels * t, 1, 1, f"f{block}_expand")
            y = _depthwise_bn(y, stride, f"f{block}_dw")
            y = _conv_bn(y, c, 1, 1, f"f{block}_project", act=False)
            x = layers.Add(name=f"f{block}_add")([shortcut, y]) if stride == 1 and channels == c else y
            channels = c
            block += 1
    if include_last_conv:
        x = _conv_bn(x, LAST_CHANNELS, 1, 1, f"f{block}")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    if include_imagenet_top:
        x = layers.Dense(1000, name="imagenet_logits")(x)
    return keras.Model(inputs, x, name=name)


def torch_key_map(include_last_conv: bool = True, include_imagenet_top: bool = False) -> dict[str, str]:
    """Keras layer name -> torchvision ``state_dict`` prefix for every layer with weights."""
    m = {"f0_conv": "features.0.0", "f0_bn": "features.0.1"}
    block = 1
    for t, _c, n, _s in INVERTED_RESIDUAL_SETTING:
        for _ in range(n):
            p = f"features.{block}.conv"
            if t == 1:
                m |= {f"f{block}_dw_conv": f"{p}.0.0", f"f{block}_dw_bn": f"{p}.0.1"}
                m |= {f"f{block}_project_conv": f"{p}.1", f"f{block}_project_bn": f"{p}.2"}
            else:
                m |= {f"f{block}_expand_conv": f"{p}.0.0", f"f{block}_expand_bn": f"{p}.0.1"}
                m |= {f"f{block}_dw_conv": f"{p}.1.0", f"f{block}_dw_bn": f"{p}.1.1"}
                m |= {f"f{block}_project_conv": f"{p}.2", f"f{block}_project_bn": f"{p}.3"}
            block += 1
    if include_last_conv:
        m |= {f"f{block}_conv": f"features.{block}.0", f"f{block}_bn": f"features.{block}.1"}
    if include_imagenet_top:
        m["imagenet_logits"] = "classifier.1"
    return m
