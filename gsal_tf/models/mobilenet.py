"""MobileNetV2 backbone with atrous convolutions for DeepLabv3+ (Sandler et al., CVPR 2018).

keras.applications.MobileNetV2 cannot dilate, so it always ends at stride 32. This module builds
the same network (same layers, same names, same channel rounding, so its ImageNet weights load
one-to-one) with DeepLab's output-stride control: once the running stride reaches
``output_stride``, the remaining stride-2 blocks run with stride 1 and the depthwise convolutions
after them are dilated instead (rate 2 after block 13 at output stride 16; rate 2 from block 7
and 4 from block 14 at output stride 8). The final 1×1 ``Conv_1`` (1280 channels) of the
classifier is left out, as in DeepLab: the features are block 16's projection (320·alpha
channels).

Layer names are those of keras.applications.MobileNetV2: ``Conv1``, ``bn_Conv1``,
``Conv1_relu``, ``expanded_conv_{depthwise,project}[_BN|_relu]`` (block 0) and
``block_{i}_{expand,depthwise,project}[_BN|_relu]``, ``block_{i}_add`` for i = 1..16.
Strided layers use ``padding="same"``, which on the TF backend pads exactly like the
application's ``ZeroPadding2D(correct_pad) + "valid"`` pair, so no ``block_{i}_pad`` layers exist.

Low-level features for the decoder: ``block_1_expand_relu`` (stride 2, 96·alpha channels before
rounding) or ``block_2_depthwise_relu`` (stride 4, DeepLab's ``layer_4/depthwise_output``).
"""

from __future__ import annotations

import keras

from gsal_tf.errors import GsalInputError
from gsal_tf.models.layers import StrideSchedule, batch_norm, make_divisible

__all__ = ["IMAGENET_ALPHAS", "mobilenetv2", "load_imagenet_weights"]

# (output channels before alpha, nominal stride, expansion) of blocks 0..16
_BLOCKS = (
    (16, 1, 1),
    (24, 2, 6), (24, 1, 6),
    (32, 2, 6), (32, 1, 6), (32, 1, 6),
    (64, 2, 6), (64, 1, 6), (64, 1, 6), (64, 1, 6),
    (96, 1, 6), (96, 1, 6), (96, 1, 6),
    (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)
_LOW_LEVEL_LAYER = {2: "block_1_expand_relu", 4: "block_2_depthwise_relu"}
IMAGENET_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)


def _inverted_residual(x, block_id, filters, expansion, stride, rate, nominal_stride, alpha):
    """Expand 1×1 → depthwise 3×3 (strided or dilated) → project 1×1, with a residual when the
    shape is kept. Returns ``(output, {layer name: tensor})`` of the named ReLU outputs."""
    in_channels = x.shape[-1]
    out_channels = make_divisible(int(filters * alpha))
    prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
    taps = {}
    h = x
    if block_id:
        h = keras.layers.Conv2D(expansion * in_channels, 1, use_bias=False,
                                name=f"{prefix}expand")(h)
        h = batch_norm(h, f"{prefix}expand_BN")
        h = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu")(h)
        taps[f"{prefix}expand_relu"] = h
    h = keras.layers.DepthwiseConv2D(3, strides=stride, dilation_rate=rate, padding="same",
                                     use_bias=False, name=f"{prefix}depthwise")(h)
    h = batch_norm(h, f"{prefix}depthwise_BN")
    h = keras.layers.ReLU(6.0, name=f"{prefix}depthwise_relu")(h)
    taps[f"{prefix}depthwise_relu"] = h
    h = keras.layers.Conv2D(out_channels, 1, use_bias=False, name=f"{prefix}project")(h)
    h = batch_norm(h, f"{prefix}project_BN")
    # The nominal stride decides, so dilated blocks keep the application's topology.
    if in_channels == out_channels and nominal_stride == 1:
        h = keras.layers.Add(name=f"{prefix}add")([x, h])
    return h, taps


def mobilenetv2(x, *, alpha: float = 1.0, output_stride: int = 16, low_level_stride: int = 4):
    """Build the dilated MobileNetV2 on tensor ``x`` (N, H, W, C), scaled to [-1, 1].

    Parameters
    ----------
    x : keras tensor
        Input images, shape (N, H, W, C) with any C ≥ 1.
    alpha : float, default 1.0
        Width multiplier of keras.applications.MobileNetV2 (ImageNet weights exist for
        0.35, 0.5, 0.75, 1.0, 1.3 and 1.4).
    output_stride : {8, 16}, default 16
        Stride of the returned high-level features.
    low_level_stride : {2, 4}, default 4
        Stride of the returned low-level features.

    Returns
    -------
    features, low_level : keras tensors
        (N, H/output_stride, W/output_stride, 320·alpha) and
        (N, H/low_level_stride, W/low_level_stride, 96·alpha or 144·alpha), channels rounded.
    """
    x = keras.layers.Conv2D(make_divisible(32 * alpha), 3, strides=2, padding="same",
                            use_bias=False, name="Conv1")(x)
    x = batch_norm(x, "bn_Conv1")
    x = keras.layers.ReLU(6.0, name="Conv1_relu")(x)
    schedule = StrideSchedule(output_stride, current_stride=2)
    low_level = None
    for block_id, (filters, nominal_stride, expansion) in enumerate(_BLOCKS):
        stride, rate = schedule.next(nominal_stride)
        x, taps = _inverted_residual(x, block_id, filters, expansion, stride, rate,
                                     nominal_stride, alpha)
        low_level = taps.get(_LOW_LEVEL_LAYER[low_level_stride], low_level)
    return x, low_level


def load_imagenet_weights(model: keras.Model, alpha: float, weights: str) -> None:
    """Copy keras.applications.MobileNetV2 weights into the backbone layers of ``model``.

    Parameters
    ----------
    model : keras.Model
        A model containing the layers built by :func:`mobilenetv2` (matched by name).
    alpha : float
        Width multiplier of ``model``'s backbone; must be one of :data:`IMAGENET_ALPHAS`.
    weights : str
        ``"imagenet"`` (Keras downloads or reuses ``~/.keras/models/mobilenet_v2_weights_tf_
        dim_ordering_tf_kernels_{alpha}_224_no_top.h5``) or the path of such a no-top file.

    A single-channel input takes the sum of the RGB kernels of ``Conv1`` (exact for a grey
    image repeated over three channels); other channel counts than 1 and 3 are rejected.
    """
    if alpha not in IMAGENET_ALPHAS:
        raise GsalInputError(
            f"MobileNetV2 ImageNet weights exist only for alpha in {IMAGENET_ALPHAS}; got "
            f"alpha={alpha}. Pick one of those or pass backbone_weights=None.")
    channels = model.get_layer("Conv1").kernel.shape[2]
    if channels not in (1, 3):
        raise GsalInputError(
            f"ImageNet weights need 1 or 3 input channels; the model has {channels}. "
            "Pass backbone_weights=None or convert the images to grey/RGB.")
    try:
        reference = keras.applications.MobileNetV2(
            input_shape=(224, 224, 3), alpha=alpha, include_top=False, weights=weights)
    except Exception as error:  # download failures and unreadable files alike
        raise GsalInputError(
            f"could not load MobileNetV2 weights {weights!r} ({error}). Without internet, put "
            "the no-top .h5 file from keras.applications in ~/.keras/models/ or pass its path."
        ) from error
    own = {layer.name: layer for layer in model.layers}
    for layer in reference.layers:
        values = layer.get_weights()
        if not values or layer.name not in own:  # Conv_1 / Conv_1_bn are not part of DeepLab
            continue
        if layer.name == "Conv1" and channels == 1:
            values = [values[0].sum(axis=2, keepdims=True)]
        own[layer.name].set_weights(values)
