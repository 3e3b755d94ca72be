"""DeepLabv3+ segmentation networks as plain Keras functional models.

DeepLabv3+ (Chen et al., "Encoder-Decoder with Atrous Separable Convolution for Semantic Image
Segmentation", ECCV 2018) is the network explained in the grid saliency paper (Hoyer et al.,
NeurIPS 2019). Its parts, for an input of H×W pixels::

    image [0,1] ─ rescale ─ backbone ─┬─ features (H/os × W/os) ─ ASPP ─ upsample ─┐
                                      └─ low-level (H/ls × W/ls) ─ 1×1 proj ───────┴ concat
        ─ 2 × separable 3×3 ─ 1×1 logits ─ bilinear ×ls ─ softmax (N, H, W, num_classes)

ASPP (atrous spatial pyramid pooling) runs five branches on the backbone features and fuses
them with a 1×1 projection: a 1×1 conv, three 3×3 atrous separable convs with rates
``atrous_rates`` (default (6, 12, 18) at output stride ``os`` = 16, (12, 24, 36) at 8) and
image pooling (global average → 1×1 conv → broadcast back). ``ls`` is the low-level stride.

Conventions
-----------
- Input: float32 images in [0, 1], shape (N, H, W, C); H and W multiples of ``output_stride``.
  With ``rescale_input=True`` (default) the model's first layer maps them to [-1, 1], the range
  the ImageNet MobileNetV2 and DeepLab's Xception were trained on, so users never preprocess.
- Output: per-pixel class probabilities (softmax), float32 even under a ``mixed_float16``
  policy, shape (N, H, W, num_classes).
- Only built-in Keras layers: ``.keras`` files reload with ``keras.models.load_model(path)``
  under ``safe_mode=True`` and without ``custom_objects``.

Layer names (stable; weight mapping relies on them)
---------------------------------------------------
A conv ``X`` built with :func:`gsal_tf.models.layers.conv_bn` is followed by ``X_bn`` and
``X_relu``; a separable conv ``S`` consists of ``S_depthwise``, ``S_depthwise_bn``,
``S_depthwise_relu``, ``S_pointwise``, ``S_pointwise_bn``, ``S_pointwise_relu``.

==============================  ==========================================  =====================
layer(s)                        role                                        DeepLab TF scope
==============================  ==========================================  =====================
``image``                       input                                       —
``rescale``                     [0, 1] → [-1, 1] (if ``rescale_input``)     —
backbone layers                 see :mod:`.mobilenet`, :mod:`.xception`     (backbone scopes)
``aspp_pool``                   global average pooling                      image_pooling
``aspp_pool_conv``              1×1 conv of the pooled features             image_pooling
``aspp_pool_upsample``          broadcast back to the feature size          —
``aspp_conv1x1``                1×1 branch                                  aspp0
``aspp_atrous{1,2,3}``          3×3 separable atrous branches               aspp1..aspp3
``aspp_concat``, ``aspp_proj``  concat of the 5 branches, 1×1 projection    concat_projection
``aspp_dropout``                dropout after the projection                —
``decoder_low_level_proj``      1×1 reduction of the low-level features     feature_projection0
``decoder_upsample``            bilinear upsampling of the ASPP output      —
``decoder_concat``              [upsampled ASPP, projected low level]       —
``decoder_conv{1,2}``           3×3 separable convs                         decoder_conv0, 1
``logits``                      1×1 conv with bias → num_classes            logits/semantic
``logits_upsample``             bilinear upsampling to H×W                  —
``softmax``                     float32 probabilities                       —
==============================  ==========================================  =====================
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras

from gsal_tf.errors import GsalInputError
from gsal_tf.models.layers import conv_bn, separable_conv_bn
from gsal_tf.models.mobilenet import load_imagenet_weights, mobilenetv2
from gsal_tf.models.xception import aligned_xception
from gsal_tf.validation import check_choice, check_int

__all__ = [
    "BACKBONES", "BACKBONE_OPTIONS", "OUTPUT_STRIDES", "LOW_LEVEL_STRIDES", "ARCHITECTURES",
    "deeplabv3plus", "build_architecture",
]

BACKBONES = ("mobilenetv2", "xception")
# Options each backbone accepts through ``**backbone_options`` and their defaults.
BACKBONE_OPTIONS = {
    "mobilenetv2": {"alpha": 1.0},
    "xception": {"width": 1.0, "middle_blocks": 16},
}
OUTPUT_STRIDES = (8, 16)
LOW_LEVEL_STRIDES = (2, 4)

# Architectures (no weights) of the 64×64 TextureMNIST zoo (configs/train/*.toml). Output stride 16 (a 4×4 feature
# map: context enough to tell the digit) with the decoder at stride 2: strokes are 6-10 px wide,
# and even perfect logits pooled to stride 4 and upsampled bilinearly cap the test mean IoU at
# 0.92 (stride 2: 0.98, stride 8: 0.66). Atrous rates (1, 2, 3) fit the 4×4 map; DeepLab's
# (6, 12, 18) would leave only the centre tap inside it. Weights files: 1.85 MB (MobileNetV2,
# alpha 0.35) and 4.43 MB (Xception, width 0.2, 4 middle-flow blocks). Training at batch 32 on
# the 2-core development CPU: about 150 and 125 samples/s.
ARCHITECTURES: dict[str, dict] = {
    "mobilenetv2-tiny": {
        "backbone": "mobilenetv2", "alpha": 0.35, "output_stride": 16, "low_level_stride": 2,
        "aspp_filters": 64, "decoder_filters": 32, "low_level_filters": 24,
        "atrous_rates": (1, 2, 3),
    },
    "xception-tiny": {
        "backbone": "xception", "width": 0.2, "middle_blocks": 4, "output_stride": 16,
        "low_level_stride": 2, "aspp_filters": 64, "decoder_filters": 32,
        "low_level_filters": 24, "atrous_rates": (1, 2, 3),
    },
}


def deeplabv3plus(backbone: str, input_shape: Sequence[int], num_classes: int,
                  output_stride: int = 16, *, low_level_stride: int = 4,
                  aspp_filters: int = 256, decoder_filters: int = 256,
                  low_level_filters: int = 48, atrous_rates: Sequence[int] | None = None,
                  dropout: float = 0.1, rescale_input: bool = True,
                  backbone_weights: str | None = None, name: str | None = None,
                  **backbone_options) -> keras.Model:
    """Build a DeepLabv3+ model (softmax output) as a Keras functional model.

    Parameters
    ----------
    backbone : {"mobilenetv2", "xception"}
        Feature extractor: the dilated MobileNetV2 of :mod:`.mobilenet` or the aligned
        Xception of :mod:`.xception`.
    input_shape : (H, W, C)
        Image size; H and W must be multiples of ``output_stride``, C ≥ 1 (1 = grayscale).
    num_classes : int
        Number of output classes (≥ 2), background included.
    output_stride : {8, 16}, default 16
        Input-to-feature resolution ratio of the backbone (atrous convolutions beyond it).
    low_level_stride : {2, 4}, default 4
        Resolution of the low-level features fused by the decoder (4 in the paper).
    aspp_filters : int, default 256
        Channels of every ASPP branch and of the ASPP projection.
    decoder_filters : int, default 256
        Channels of the two decoder separable convolutions.
    low_level_filters : int, default 48
        Channels of the 1×1 projection of the low-level features.
    atrous_rates : three ints, default None
        Rates of the atrous ASPP branches; None gives (6, 12, 18) at output stride 16 and
        (12, 24, 36) at 8 (tuned for ~513 px crops; small images want smaller rates).
    dropout : float, default 0.1
        Dropout rate after the ASPP projection (active only in training).
    rescale_input : bool, default True
        If True the model expects images in [0, 1] and maps them to [-1, 1] itself; if False
        it expects [-1, 1] inputs.
    backbone_weights : None, "imagenet" or path, default None
        Initial backbone weights. Only the MobileNetV2 backbone has them (the Keras application
        files; ``alpha`` in 0.35, 0.5, 0.75, 1.0, 1.3, 1.4; 1 or 3 input channels).
    name : str, default None
        Model name; default ``"deeplabv3plus_{backbone}"``.
    **backbone_options
        ``alpha`` (float, default 1.0) for "mobilenetv2"; ``width`` (float, default 1.0) and
        ``middle_blocks`` (int, default 16 = Xception-65) for "xception".

    Returns
    -------
    keras.Model
        Maps (N, H, W, C) float32 images to (N, H, W, num_classes) float32 probabilities.

    Raises
    ------
    GsalInputError
        For any argument outside the ranges above, with the fix in the message.
    """
    backbone = _check_backbone(backbone)
    options = _check_backbone_options(backbone, backbone_options)
    output_stride = check_choice("output_stride", check_int("output_stride", output_stride), OUTPUT_STRIDES)
    low_level_stride = check_choice("low_level_stride", check_int("low_level_stride", low_level_stride), LOW_LEVEL_STRIDES)
    height, width, channels = _check_input_shape(input_shape, output_stride)
    num_classes = check_int("num_classes", num_classes, minimum=2)
    aspp_filters = check_int("aspp_filters", aspp_filters)
    decoder_filters = check_int("decoder_filters", decoder_filters)
    low_level_filters = check_int("low_level_filters", low_level_filters)
    rates = _check_rates(atrous_rates, output_stride)
    if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0 <= dropout < 1:
        raise GsalInputError(f"dropout must be in [0, 1); got {dropout!r}.")
    if backbone_weights is not None and backbone != "mobilenetv2":
        raise GsalInputError(
            f"backbone_weights={backbone_weights!r}: there are no Keras ImageNet weights for the "
            f"{backbone} backbone; pass backbone_weights=None.")

    image = keras.Input((height, width, channels), name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="rescale")(image) if rescale_input else image
    if backbone == "mobilenetv2":
        features, low_level = mobilenetv2(x, output_stride=output_stride,
                                          low_level_stride=low_level_stride, **options)
    else:
        features, low_level = aligned_xception(x, output_stride=output_stride,
                                               low_level_stride=low_level_stride, **options)
    x = _aspp(features, aspp_filters, rates, dropout)
    x = _decoder(x, low_level, output_stride // low_level_stride, low_level_filters,
                 decoder_filters)
    x = keras.layers.Conv2D(num_classes, 1, name="logits")(x)
    x = keras.layers.UpSampling2D(low_level_stride, interpolation="bilinear",
                                  name="logits_upsample")(x)
    # float32 so that probabilities (and saliency losses on them) stay exact under mixed precision.
    probabilities = keras.layers.Activation("softmax", dtype="float32", name="softmax")(x)
    model = keras.Model(image, probabilities, name=name or f"deeplabv3plus_{backbone}")
    if backbone_weights is not None:
        load_imagenet_weights(model, options["alpha"], backbone_weights)
    return model


def build_architecture(architecture: str, input_shape: Sequence[int] = (64, 64, 1), num_classes: int = 11,
                       **overrides) -> keras.Model:
    """Build the untrained DeepLabv3+ of :data:`ARCHITECTURES` ``[architecture]``; ``overrides``
    replace its entries. (A *preset*, as in keras-hub, is an architecture with trained weights:
    :func:`gsal_tf.models.from_preset`.)

    Example: ``build_architecture("mobilenetv2-tiny", (64, 64, 1), 11)``.
    """
    if architecture not in ARCHITECTURES:
        raise GsalInputError(f"unknown architecture {architecture!r}; choose one of {sorted(ARCHITECTURES)}.")
    kwargs = {**ARCHITECTURES[architecture], **overrides}
    return deeplabv3plus(kwargs.pop("backbone"), input_shape, num_classes, **kwargs)


def _aspp(features, filters: int, rates: tuple[int, int, int], dropout: float):
    """Atrous spatial pyramid pooling: (N, h, w, C) → (N, h, w, filters)."""
    height, width = features.shape[1:3]
    pooled = keras.layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(features)
    pooled = conv_bn(pooled, filters, "aspp_pool_conv")
    # Nearest upsampling of a 1×1 map is an exact broadcast with static shapes.
    pooled = keras.layers.UpSampling2D((height, width), name="aspp_pool_upsample")(pooled)
    branches = [pooled, conv_bn(features, filters, "aspp_conv1x1")]
    branches += [separable_conv_bn(features, filters, f"aspp_atrous{i}", rate=rate,
                                   relu_inside=True)
                 for i, rate in enumerate(rates, start=1)]
    x = keras.layers.Concatenate(name="aspp_concat")(branches)
    x = conv_bn(x, filters, "aspp_proj")
    return keras.layers.Dropout(dropout, name="aspp_dropout")(x)


def _decoder(x, low_level, upsample: int, low_level_filters: int, filters: int):
    """Fuse ASPP output (N, h, w, ·) with low-level features (N, h·upsample, w·upsample, ·)."""
    low_level = conv_bn(low_level, low_level_filters, "decoder_low_level_proj")
    x = keras.layers.UpSampling2D(upsample, interpolation="bilinear", name="decoder_upsample")(x)
    x = keras.layers.Concatenate(name="decoder_concat")([x, low_level])
    x = separable_conv_bn(x, filters, "decoder_conv1", relu_inside=True)
    return separable_conv_bn(x, filters, "decoder_conv2", relu_inside=True)


def _check_backbone(backbone) -> str:
    key = backbone.lower() if isinstance(backbone, str) else backbone
    if key not in BACKBONES:
        raise GsalInputError(f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}.")
    return key


def _check_backbone_options(backbone: str, options: dict) -> dict:
    allowed = BACKBONE_OPTIONS[backbone]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise GsalInputError(
            f"unknown option(s) {unknown} for backbone {backbone!r}; it accepts {sorted(allowed)} "
            "(and the head options of deeplabv3plus).")
    merged = {**allowed, **options}
    for key in ("alpha", "width"):
        if key in merged:
            value = merged[key]
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0:
                raise GsalInputError(f"{key} must be a positive number; got {value!r}.")
            merged[key] = float(value)
    if "middle_blocks" in merged:
        merged["middle_blocks"] = check_int("middle_blocks", merged["middle_blocks"], minimum=0)
    return merged


def _is_int(value) -> bool:
    """True for Python and numpy integers, False for bools and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_input_shape(input_shape, output_stride: int) -> tuple[int, int, int]:
    shape = tuple(input_shape) if isinstance(input_shape, (tuple, list)) else ()
    if len(shape) != 3 or not all(_is_int(d) and d > 0 for d in shape):
        raise GsalInputError(
            f"input_shape must be (height, width, channels) with positive integers, e.g. "
            f"(64, 64, 1); got {input_shape!r}.")
    height, width, channels = (int(d) for d in shape)
    if height % output_stride or width % output_stride:
        raise GsalInputError(
            f"input height and width must be multiples of output_stride={output_stride}; got "
            f"{height}×{width}. Pad or resize the images (e.g. to "
            f"{-(-height // output_stride) * output_stride}×"
            f"{-(-width // output_stride) * output_stride}).")
    return height, width, channels


def _check_rates(atrous_rates, output_stride: int) -> tuple[int, int, int]:
    if atrous_rates is None:
        return (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    rates = tuple(atrous_rates) if isinstance(atrous_rates, (tuple, list)) else ()
    if len(rates) != 3 or not all(_is_int(r) and r >= 1 for r in rates):
        raise GsalInputError(
            "atrous_rates must be three positive integers, e.g. (6, 12, 18); "
            f"got {atrous_rates!r}.")
    return tuple(int(r) for r in rates)
