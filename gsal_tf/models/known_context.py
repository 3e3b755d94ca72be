"""Hand-built segmentation models whose context dependence is known exactly.

Inside a target box the model predicts ``target_class`` with probability

    p = sigmoid(gain * (s − threshold)),   s = combine_i( mean of x over patch_i )

and class 0 (background) with 1 − p; outside the box it predicts class 0 with probability 1.
``combine`` is ``"all"`` (s = min over patches: every patch is needed — an AND) or ``"any"``
(s = max: one patch suffices). The prediction inside the box therefore reads only the listed
context patches: a correct context explanation of the box keeps exactly those patches. With
images whose patches are bright (1) and a zero baseline, removing a patch drops p from
sigmoid(gain·(1−threshold)) to sigmoid(−gain·threshold).

:func:`brightness_model` is the opposite case: every pixel's prediction reads the whole image's
mean brightness, so no part of the context matters more than another (an even mask is a right
answer).

These models test explainers against a known answer and power ``gsal explain --demo`` until a
trained zoo model is available. They are plain Keras models (one registered layer) and save and
load as ``.keras`` under safe mode.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

__all__ = ["PatchContextReadout", "known_context_model", "known_context_image", "brightness_model", "demo_case"]

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), end-exclusive pixels


@keras.saving.register_keras_serializable(package="gsal_tf")
class PatchContextReadout(keras.layers.Layer):
    """Per-pixel class probabilities (N,H,W,K) reading only given context patches (see module)."""

    def __init__(
        self,
        patches: list[Box],
        target_box: Box,
        num_classes: int = 2,
        target_class: int = 1,
        combine: str = "all",
        gain: float = 10.0,
        threshold: float = 0.5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if combine not in ("all", "any"):
            raise ValueError(f"combine must be 'all' or 'any', got {combine!r}")
        if not 0 < target_class < num_classes:
            raise ValueError("target_class must be in 1..num_classes-1 (0 is the background)")
        self.patches = [tuple(int(v) for v in p) for p in patches]
        self.target_box = tuple(int(v) for v in target_box)
        self.num_classes = int(num_classes)
        self.target_class = int(target_class)
        self.combine = combine
        self.gain = float(gain)
        self.threshold = float(threshold)

    def call(self, images):
        means = [ops.mean(images[:, y0:y1, x0:x1, :], axis=(1, 2, 3)) for (y0, x0, y1, x1) in self.patches]
        stacked = ops.stack(means, axis=1)
        evidence = ops.min(stacked, axis=1) if self.combine == "all" else ops.max(stacked, axis=1)
        p = ops.sigmoid(self.gain * (evidence - self.threshold))  # (N,)
        height, width = images.shape[1], images.shape[2]
        y0, x0, y1, x1 = self.target_box
        box = np.zeros((height, width), np.float32)
        box[y0:y1, x0:x1] = 1.0
        dtype = images.dtype
        p_target = p[:, None, None] * ops.convert_to_tensor(box, dtype=dtype)  # (N,H,W)
        onehot_target = ops.one_hot(self.target_class, self.num_classes, dtype=dtype)
        onehot_background = ops.one_hot(0, self.num_classes, dtype=dtype)
        return p_target[..., None] * onehot_target + (1.0 - p_target)[..., None] * onehot_background

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], input_shape[2], self.num_classes)

    def get_config(self):
        config = super().get_config()
        config.update(
            patches=[list(p) for p in self.patches],
            target_box=list(self.target_box),
            num_classes=self.num_classes,
            target_class=self.target_class,
            combine=self.combine,
            gain=self.gain,
            threshold=self.threshold,
        )
        return config


def known_context_model(
    image_shape: tuple[int, int, int],
    patches: list[Box],
    target_box: Box,
    num_classes: int = 2,
    target_class: int = 1,
    combine: str = "all",
    gain: float = 10.0,
    threshold: float = 0.5,
) -> keras.Model:
    """A Keras model (N,H,W,C) -> (N,H,W,K) whose prediction in ``target_box`` reads only ``patches``."""
    inputs = keras.Input(shape=image_shape, name="image")
    outputs = PatchContextReadout(
        patches, target_box, num_classes, target_class, combine, gain, threshold, name="patch_context_readout"
    )(inputs)
    return keras.Model(inputs, outputs, name="known_context")


def brightness_model(image_shape: tuple[int, int, int], gain: float = 20.0, threshold: float = 0.5) -> keras.Model:
    """A Keras model (N,H,W,C) -> (N,H,W,2) of standard layers: at every pixel class 1 has
    probability ``sigmoid(gain·(mean(x) − threshold))``, the mean over the whole image."""
    height, width, channels = image_shape
    inputs = keras.Input(shape=image_shape, name="image")
    mean = keras.layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    readout = keras.layers.Conv2D(2, 1, name="brightness_readout")
    logits = keras.layers.UpSampling2D((height, width))(readout(mean))
    model = keras.Model(inputs, keras.layers.Softmax()(logits), name="brightness")
    kernel = np.zeros((1, 1, channels, 2), np.float32)
    kernel[0, 0, :, 1] = gain / channels
    readout.set_weights([kernel, np.array([0.0, -gain * threshold], np.float32)])
    return model


def known_context_image(image_shape: tuple[int, int, int], patches: list[Box], seed: int = 0, background: float = 0.35) -> np.ndarray:
    """An image (H,W,C) float32 in [0,1]: textured noise around ``background`` with the patches set to 1."""
    rng = np.random.default_rng(seed)
    img = np.clip(background + 0.25 * rng.standard_normal(image_shape), 0.0, 1.0).astype(np.float32)
    for y0, x0, y1, x1 in patches:
        img[y0:y1, x0:x1, :] = 1.0
    return img


def demo_case() -> dict:
    """The bundled known-answer demo: a 64×64 RGB image, a model that needs two patches together.

    Returns a dict with ``model``, ``image`` (64,64,3), ``request`` (64,64) 0/1, ``class_id`` and
    ``true_patches`` (the boxes the prediction in the request reads).
    """
    shape = (64, 64, 3)
    patches = [(0, 0, 16, 16), (40, 44, 56, 60)]
    target = (24, 24, 40, 40)
    model = known_context_model(shape, patches, target, num_classes=2, combine="all")
    request = np.zeros(shape[:2], np.float32)
    request[target[0]:target[2], target[1]:target[3]] = 1.0
    return {
        "model": model,
        "image": known_context_image(shape, patches, seed=0),
        "request": request,
        "class_id": 1,
        "true_patches": patches,
    }
