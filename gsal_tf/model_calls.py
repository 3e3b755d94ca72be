"""Calling a segmentation model the way every explainer does: in inference mode, its output kind
(probabilities or logits) declared or detected, scores turned into class probabilities at the
image's resolution, and the output checked once per model and shape.

    probabilities(model, x, output)                       # (N,h,w,K) -> softmax / sigmoid if logits
    class_probability(model, x, class_ids, output, size)  # f_c(x) (N,H,W), the explained class
    predict(model, images, output)                        # NumPy (N,H,W,K), for building requests
"""

from __future__ import annotations

import weakref
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from gsal_tf.errors import GsalInputError, first_line
from gsal_tf.validation import check_choice, check_images, check_model_output

__all__ = ["OUTPUT_KINDS", "call_model", "declared_output", "detect_output", "resolve_output", "loss_scale",
           "to_probabilities", "probabilities", "class_probability", "checked_call", "num_classes", "predict"]

OUTPUT_KINDS = ("probabilities", "logits")


def call_model(model, x: tf.Tensor) -> tf.Tensor:
    """``model(x)``; Keras layers and models are called in inference mode."""
    if isinstance(model, keras.layers.Layer):
        return model(x, training=False)
    return model(x)


def declared_output(model) -> str | None:
    """The output kind a model declares — its ``gsal_output`` attribute ("logits" or
    "probabilities"; keras-hub segmenters through :class:`gsal_tf.models.keras_hub.KerasHubSegmenter`),
    "probabilities" for a zoo model — or None when it declares nothing."""
    declared = getattr(model, "gsal_output", None)
    if isinstance(declared, str) and declared in OUTPUT_KINDS:
        return declared
    return "probabilities" if getattr(model, "zoo_entry", None) is not None else None


def detect_output(model, image_shape, seed: int = 0) -> str | None:
    """Whether ``model`` returns probabilities or logits, read from its scores on probe images of
    ``image_shape`` (H,W,C): uniform noise in [0,1] and a smooth ramp (never a constant image,
    on which an untrained network's logits can all be 0 and pass for probabilities).

    "logits" when any score lies outside [0,1] (tolerance 1e-3) or, with K >= 2 classes, the
    scores of some pixel do not sum to 1 (tolerance 1e-3); "probabilities" when, with K >= 2,
    every pixel's scores lie in [0,1] and sum to 1; None when it cannot tell: a one-channel
    output inside [0,1] (a sigmoid probability, or logits that happen to lie there).
    """
    height, width, channels = (int(v) for v in image_shape)
    noise = np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None], (height, width, channels))
    scores = np.asarray(tf.cast(checked_call(model, np.stack([noise, ramp]), "logits"), tf.float32))
    if scores.min() < -1e-3 or scores.max() > 1 + 1e-3:
        return "logits"
    if scores.shape[-1] == 1:
        return None
    return "probabilities" if np.all(np.abs(scores.sum(axis=-1) - 1.0) <= 1e-3) else "logits"


def resolve_output(model, image_shape, output: str | None = None) -> str:
    """The output kind to explain ``model`` with, for images of ``image_shape`` (H,W,C): ``output``
    when given, else what the model declares (:func:`declared_output`), else what a probe shows
    (:func:`detect_output`); a GsalInputError naming the option when none of them can tell."""
    if output is not None:
        check_choice("output", output, OUTPUT_KINDS)
        return output
    from gsal_tf.models.keras_hub import as_segmentation_model

    model = as_segmentation_model(model)
    kind = declared_output(model) or detect_output(model, image_shape)
    if kind is None:
        raise GsalInputError("cannot tell whether the model returns probabilities or logits (one output channel, every "
                             "score in [0, 1]); say which: --output probabilities or --output logits (Python: output=...)")
    return kind


def loss_scale(model) -> float:
    """A constant loss scale for gradients through a float16-compute model, else 1.

    Under a float16 compute policy, small gradients (~1e-3 and below) can underflow in the
    backward pass: scale the objective by this constant and divide the gradient by it (exact in
    float32 arithmetic).
    """
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None) or keras.config.dtype_policy().compute_dtype
    return 2.0**12 if compute == "float16" else 1.0


def to_probabilities(scores: tf.Tensor, output: str) -> tf.Tensor:
    """Per-pixel class probabilities (N,h,w,K) float32 from a model's scores (N,h,w,K_out).

    K_out >= 2: softmax over the classes for ``output="logits"``, the scores as they are for
    ``"probabilities"``.

    K_out = 1 (a binary segmenter: person, road, lesion): the one channel is the foreground's
    probability ``p`` (``"probabilities"``) or logit ``z`` with ``p = sigmoid(z)`` (``"logits"``),
    explained as two classes, **0 = background** with ``1 - p`` and **1 = foreground** with ``p``
    (K = 2). ``softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]``, so a logit channel is the
    two-class softmax with the background's logit fixed at 0.
    """
    scores = tf.cast(scores, tf.float32)
    if scores.shape[-1] == 1:
        foreground = tf.sigmoid(scores) if output == "logits" else scores
        return tf.concat([1.0 - foreground, foreground], axis=-1)
    return tf.nn.softmax(scores, axis=-1) if output == "logits" else scores


def probabilities(model, x: tf.Tensor, output: str) -> tf.Tensor:
    """f(x) (N,h,w,K) float32 class probabilities at the model's resolution (:func:`to_probabilities`)."""
    return to_probabilities(call_model(model, x), output)


def class_probability(model, x: tf.Tensor, class_ids: tf.Tensor, output: str, size: Sequence[int]) -> tf.Tensor:
    """f_c(x) (N,H,W) float32 at ``size`` = (H,W): softmax of logits, bilinear resize if needed."""
    scores = probabilities(model, x, output)
    picked = tf.reduce_sum(scores * tf.one_hot(class_ids, tf.shape(scores)[-1])[:, None, None, :], -1)
    if picked.shape[1] != size[0] or picked.shape[2] != size[1]:
        picked = tf.image.resize(picked[..., None], tuple(size), method="bilinear")[..., 0]
    return picked


# K of each model per (image shape, output kind), weakly held: a deleted model frees its entry.
_NUM_CLASSES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def checked_call(model, images: np.ndarray, output: str) -> tf.Tensor:
    """``model(images)`` checked to be per-pixel class scores (N,h,w,K) (one clear GsalInputError
    otherwise); K is remembered for the model, so :func:`num_classes` need not call it again."""
    try:
        out = call_model(model, tf.constant(images))
    except Exception as exc:  # a model that cannot take this input is a user error
        raise GsalInputError(f"the model cannot take images of shape {images.shape[1:]} (H,W,C): {first_line(exc)}") from None
    _, _, k = check_model_output(out, images.shape[1:], output)
    try:
        _NUM_CLASSES.setdefault(model, {})[(tuple(images.shape[1:]), output)] = k
    except TypeError:  # not weakly referenceable: nothing remembered
        pass
    return out


def num_classes(model, images: np.ndarray, output: str) -> int:
    """K of ``model``'s output for images like ``images`` (N,H,W,C) — 2 for a one-channel
    (binary) output (:func:`to_probabilities`) — remembered from an earlier checked call, else one
    image is run through the model and checked."""
    try:
        known = _NUM_CLASSES.get(model, {}).get((tuple(images.shape[1:]), output))
    except TypeError:
        known = None
    if known is None:
        known = int(checked_call(model, images[:1], output).shape[-1])
    return max(known, 2)


def predict(model, images, output: str = "probabilities") -> np.ndarray:
    """The model's class probabilities (N,H,W,K) float32 at the input resolution (softmax of
    logits; outputs at another resolution resized bilinearly), after :func:`checked_call`."""
    images = check_images(images)
    scores = to_probabilities(checked_call(model, images, output), output)
    if scores.shape[1:3] != images.shape[1:3]:
        scores = tf.image.resize(scores, images.shape[1:3], method="bilinear")
    return scores.numpy()
