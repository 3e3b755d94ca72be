"""Networks with other conventions, seen as gsal's segmentation model: images (N,H,W,C) float32 ->
per-pixel scores (N,h,w,K).

Every explainer calls ``model(images)`` and reads one tensor (N,h,w,K) — probabilities, or logits
with ``output="logits"`` — at any resolution h×w (resized bilinearly to H×W). Models that return
something else are wrapped once with :func:`adapt`:

======================================  ==========================================================
what the model returns / takes          one line
======================================  ==========================================================
logits (N,h,w,K)                        no adapter: ``GridSaliency(model, output="logits")``
scores at 1/4 or 1/8 resolution         no adapter: outputs are resized to the input
a dict ``{"logits": ..., ...}``         ``adapt(model, output_key="logits")``
an object with ``.logits`` (Hugging     ``adapt(model, output_key="logits", channels_first_input=True,
Face style, channels first)             channels_first_output=True)`` (+ ``output="logits"``)
channels-first maps (N,K,h,w)           ``adapt(model, channels_first_output=True)``
a tuple / list of outputs               ``adapt(model, output_key=0)``
inputs scaled otherwise (e.g. [0,255],  ``adapt(model, input_transform=lambda x: x * 255.0)``
ImageNet mean/std)
keras-hub ``DeepLabV3ImageSegmenter``   no adapter: it returns (N,H,W,K) logits;
                                        ``GridSaliency(segmenter, output="logits")``
======================================  ==========================================================

``output_key=None`` picks the one tensor of rank 4 when the model returns a dict or a tuple, and
``.logits`` of an object; an ambiguous output is a :class:`~gsal_tf.errors.GsalInputError` that
names the keys to choose from. The input transform
runs inside the explainer's graph (it must be TensorFlow code), so gradients flow through it.

Example
-------
>>> seg = gs.models.adapt(hf_model, output_key="logits", channels_first_input=True, channels_first_output=True)
>>> gs.GridSaliency(seg, output="logits").explain(images, request_masks, class_ids)
"""

from __future__ import annotations

from typing import Callable, Hashable

import tensorflow as tf

from gsal_tf.errors import GsalInputError
from gsal_tf.model_calls import call_model


class SegmentationAdapter:
    """A callable ``images (N,H,W,C) -> scores (N,h,w,K)`` around a model with other conventions.

    Parameters
    ----------
    model : keras.Model or callable
        The wrapped network (Keras models are called with ``training=False``).
    output_key : str, int or None, default None
        Which output is the segmentation map: a dict key, an attribute name (``"logits"``) or a
        tuple index. None: the model's only rank-4 output.
    channels_first_input : bool, default False
        The model takes (N,C,H,W): images are transposed before the call.
    channels_first_output : bool, default False
        The model returns (N,K,h,w): the map is transposed to (N,h,w,K).
    input_transform : callable or None, default None
        TensorFlow function applied to the (N,H,W,C) images before the call (scaling,
        normalisation); it is differentiated through.
    """

    def __init__(self, model, output_key: Hashable | None = None, channels_first_input: bool = False,
                 channels_first_output: bool = False, input_transform: Callable | None = None):
        if not callable(model):
            raise GsalInputError(f"model must be a Keras model or a callable, got {type(model).__name__}")
        if input_transform is not None and not callable(input_transform):
            raise GsalInputError(f"input_transform must be a function of the images, got {type(input_transform).__name__}")
        self.model = model
        self.output_key = output_key
        self.channels_first_input = bool(channels_first_input)
        self.channels_first_output = bool(channels_first_output)
        self.input_transform = input_transform

    def __call__(self, images) -> tf.Tensor:
        x = tf.convert_to_tensor(images, tf.float32)
        if self.input_transform is not None:
            x = self.input_transform(x)
        if self.channels_first_input:
            x = tf.transpose(x, [0, 3, 1, 2])
        scores = select_output(call_model(self.model, x), self.output_key)
        if self.channels_first_output:
            scores = tf.transpose(scores, [0, 2, 3, 1])
        return scores


def adapt(model, output_key: Hashable | None = None, channels_first_input: bool = False,
          channels_first_output: bool = False, input_transform: Callable | None = None) -> SegmentationAdapter:
    """``model`` as gsal's segmentation model (see the module docstring and :class:`SegmentationAdapter`)."""
    return SegmentationAdapter(model, output_key, channels_first_input, channels_first_output, input_transform)


def select_output(out, key: Hashable | None = None):
    """The segmentation map among a model's outputs: ``out[key]`` / ``out.key`` / ``out[index]``,
    or with ``key=None`` the one rank-4 tensor (a plain tensor is returned as it is)."""
    if key is not None:
        if isinstance(out, dict):
            if key not in out:
                raise GsalInputError(f"the model's outputs have no key {key!r}; it returns {', '.join(map(repr, out))}")
            return out[key]
        if isinstance(out, (tuple, list)) and isinstance(key, int):
            if not -len(out) <= key < len(out):
                raise GsalInputError(f"output_key {key} is out of range: the model returns {len(out)} outputs")
            return out[key]
        if isinstance(key, str) and hasattr(out, key):
            return getattr(out, key)
        raise GsalInputError(f"output_key {key!r} does not name an output of a {type(out).__name__}")
    if isinstance(out, dict):
        candidates = {k: v for k, v in out.items() if _rank(v) == 4}
    elif isinstance(out, (tuple, list)):
        candidates = {i: v for i, v in enumerate(out) if _rank(v) == 4}
    elif hasattr(out, "logits") and _rank(out.logits) == 4:
        return out.logits
    else:
        return out
    if len(candidates) != 1:
        names = ", ".join(map(repr, candidates or (out.keys() if isinstance(out, dict) else range(len(out)))))
        raise GsalInputError(f"the model returns several outputs ({names}); say which one is the segmentation map: "
                             "gs.models.adapt(model, output_key=...)")
    return next(iter(candidates.values()))


def _rank(value) -> int | None:
    shape = getattr(value, "shape", None)
    return len(shape) if shape is not None else None


__all__ = ["SegmentationAdapter", "adapt", "select_output"]
