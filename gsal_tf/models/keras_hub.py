"""keras-hub segmenters (``keras_hub.models.ImageSegmenter``: DeepLabV3, SegFormer, …) seen as
gsal's segmentation model, through their own preprocessor.

A keras-hub task model applies its ``preprocessor`` only inside ``predict()`` / ``fit()``;
calling it directly (``segmenter(x)``) skips the preprocessor's resizing, scaling and
normalisation. :class:`KerasHubSegmenter` calls ``segmenter(preprocessor(x))``, so the explained
scores are those ``segmenter.predict`` returns for the same images, and gradients flow through the
preprocessor (its image converter is differentiable: resize, ``x * scale + offset``).

Pixel range: gsal's images are RGB in [0, 1] (photos read by :func:`gsal_tf.loading.load_image`,
the zoo, imported TFLite networks); keras-hub's image converters take raw pixels in [0, 255]
(their presets' ``scale`` is 1/255, or 1/(255·std) with an ImageNet ``offset``). The wrapper
multiplies by ``pixel_range`` (default 255) before the preprocessor, so
``KerasHubSegmenter(seg)(x / 255) == seg.predict(x)`` for 8-bit pixels ``x``.

Output kind: read from the segmenter's ``activation`` — None or linear returns logits (keras-hub's
default), softmax or sigmoid returns probabilities; :attr:`KerasHubSegmenter.gsal_output` says
which, and every explainer uses it when no ``output`` is given.

Every explainer wraps a keras-hub segmenter by itself (:func:`as_segmentation_model`)::

    seg = keras_hub.models.DeepLabV3ImageSegmenter.from_preset("deeplab_v3_plus_resnet50_pascalvoc")
    gs.GridSaliency(seg).explain(images_in_0_1, request_masks, class_ids)   # logits, from its activation

keras-hub is never imported here: a segmenter is recognised by its class hierarchy.
"""

from __future__ import annotations

import weakref

import tensorflow as tf

__all__ = ["KERAS_HUB_PIXEL_RANGE", "is_keras_hub_segmenter", "KerasHubSegmenter", "as_segmentation_model"]

#: gsal's [0, 1] pixels times this are the raw pixels keras-hub's image converters take.
KERAS_HUB_PIXEL_RANGE = 255.0


def is_keras_hub_segmenter(model) -> bool:
    """True for an instance of ``keras_hub.models.ImageSegmenter`` (or a subclass), by class name
    and module, so keras-hub need not be imported to ask."""
    return any(cls.__name__ == "ImageSegmenter" and cls.__module__.startswith("keras_hub")
               for cls in type(model).__mro__)


class KerasHubSegmenter(tf.Module):
    """``images (N,H,W,C) in [0,1] -> segmenter(preprocessor(images * pixel_range))`` (N,h,w,K).

    Parameters
    ----------
    segmenter : keras_hub.models.ImageSegmenter
        The task model; its ``preprocessor`` (may be None) is applied as ``predict`` applies it.
    pixel_range : float, default 255.0
        What gsal's pixel value 1.0 is in the preprocessor's input (keras-hub's converters take
        0-255); 1.0 passes images unchanged.

    Attributes
    ----------
    gsal_output : "logits" or "probabilities" — from the segmenter's ``activation``.
    input_shape : (None, H, W, C) of the backbone's input, so photos are letterboxed as for any
        model with a fixed input size; (None, None, None, C) when it takes any size.
    """

    def __init__(self, segmenter, pixel_range: float = KERAS_HUB_PIXEL_RANGE):
        super().__init__(name="keras_hub_segmenter")
        # A SavedModel export saves the segmenter's variables (tracked through this module), not
        # the segmenter itself: saving a keras-hub task traces its default signature over
        # images of unknown size, which its upsampling layers refuse. So the segmenter and its
        # preprocessor are held untracked.
        object.__setattr__(self, "segmenter", segmenter)
        object.__setattr__(self, "preprocessor", getattr(segmenter, "preprocessor", None))
        self.weights = list(segmenter.weights) + list(getattr(self.preprocessor, "weights", None) or [])
        self.pixel_range = float(pixel_range)
        activation = getattr(segmenter, "activation", None)
        name = activation if isinstance(activation, str) or activation is None else getattr(activation, "__name__", str(activation))
        self.gsal_output = "logits" if name in (None, "linear") else "probabilities"
        shape = getattr(segmenter, "input_shape", None)
        self.input_shape = tuple(shape) if isinstance(shape, tuple) and len(shape) == 4 else None

    def __call__(self, images) -> tf.Tensor:
        x = tf.convert_to_tensor(images, tf.float32) * self.pixel_range
        if self.preprocessor is not None:
            x = self.preprocessor(x)
        return self.segmenter(x, training=False)  # a keras-hub task is a Keras model: inference mode

    def __repr__(self) -> str:
        return f"KerasHubSegmenter({type(self.segmenter).__name__}, output={self.gsal_output!r})"


# One wrapper per segmenter (weakly held), so that explainers of one segmenter share its compiled
# graphs and probed class count, which are cached per model object.
_WRAPPERS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def as_segmentation_model(model):
    """``model`` as every explainer calls it: a keras-hub segmenter wrapped in
    :class:`KerasHubSegmenter` (the same wrapper each time), anything else unchanged."""
    if not is_keras_hub_segmenter(model):
        return model
    wrapper = _WRAPPERS.get(model)
    if wrapper is None:
        wrapper = _WRAPPERS[model] = KerasHubSegmenter(model)
    return wrapper
