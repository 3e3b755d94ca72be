"""Perturbations: what replaces the removed part of an image.

With image ``x`` (N,H,W,C), upsampled mask ``M`` (N,H,W) in [0,1], request mask ``R`` (N,H,W)
in {0,1} and baseline ``a`` (N,H,W,C):

context mode (the paper's context explanation; the request region is never perturbed)
    ``x' = x∘M + p(x,R)∘(1−M)``  with  ``p(x,R) = x∘R + a∘(1−R)``
full mode
    ``x' = x∘M + a∘(1−M)``

Baselines ``a`` (built once per image, before the optimisation):

- a float, or a per-channel tuple of C floats: a constant image;
- ``"mean"``: the image's per-channel mean;
- ``"blur"``: the image blurred with a Gaussian of standard deviation ``blur_sigma`` pixels
  (written with tf ops; tensorflow-addons is archived and does not import under Keras 3);
- ``"noise"``: uniform noise in each channel's [min, max] range of the image, from a stateless
  generator seeded with ``seed`` — the same seed gives the same noise, alone or in a batch;
- an array of shape (H,W,C) (one baseline image for all), or a callable
  ``images (N,H,W,C) -> (N,H,W,C)``.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
import tensorflow as tf

from gsal_tf.errors import GsalInputError

__all__ = [
    "NAMED_BASELINES", "MODES", "perturb", "gaussian_kernel1d", "gaussian_blur", "make_baseline",
    "baseline_function",
]

BaselineSpec = Union[float, tuple, str, np.ndarray, tf.Tensor, Callable]
NAMED_BASELINES = ("mean", "blur", "noise")
MODES = ("context", "full")


def perturb(images: tf.Tensor, mask: tf.Tensor, request: tf.Tensor, baseline: tf.Tensor, mode: str) -> tf.Tensor:
    """The perturbed image x' (N,H,W,C) for masks (N,H,W); formulas in the module docstring."""
    keep = mask[..., None]
    if mode == "context":
        r = request[..., None]
        removed = images * r + baseline * (1.0 - r)
    elif mode == "full":
        removed = baseline
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return images * keep + removed * (1.0 - keep)


def gaussian_kernel1d(sigma: float, max_radius: int | None = None) -> np.ndarray:
    """Normalised 1-D Gaussian of standard deviation ``sigma`` pixels, radius ceil(3σ).

    ``max_radius`` truncates the kernel (then renormalises) for images smaller than the kernel.
    """
    radius = max(1, int(math.ceil(3.0 * sigma)))
    if max_radius is not None:
        radius = max(0, min(radius, max_radius))
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def gaussian_blur(images: tf.Tensor, sigma: float) -> tf.Tensor:
    """Separable Gaussian blur of (N,H,W,C) float images, σ in pixels, reflected borders.

    Each channel is blurred on its own (depthwise convolution), so channels do not mix. The
    kernel radius is ceil(3σ), truncated to fit images smaller than the kernel.
    """
    images = tf.convert_to_tensor(images, tf.float32)
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    kernel = tf.constant(gaussian_kernel1d(sigma, max_radius=min(height, width) - 1))
    radius = (int(kernel.shape[0]) - 1) // 2
    if radius == 0:
        return images
    vertical = tf.tile(kernel[:, None, None, None], [1, 1, channels, 1])
    horizontal = tf.tile(kernel[None, :, None, None], [1, 1, channels, 1])
    x = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    x = tf.nn.depthwise_conv2d(x, vertical, [1, 1, 1, 1], "VALID")
    return tf.nn.depthwise_conv2d(x, horizontal, [1, 1, 1, 1], "VALID")


def make_baseline(spec: BaselineSpec, images: np.ndarray, *, blur_sigma: float = 5.0, seed: int = 0) -> tf.Tensor:
    """Build the baseline ``a`` (N,H,W,C) float32 for validated images (N,H,W,C).

    Raises :class:`GsalInputError` for a spec that does not fit the images.
    """
    images = np.asarray(images, np.float32)
    build = baseline_function(spec, images.shape[1:], blur_sigma=blur_sigma, seed=seed)
    out = build(tf.constant(images))
    if callable(spec) and not isinstance(spec, str):
        return _as_baseline_array(out, images.shape, what="the baseline callable's output")
    return out


def baseline_function(spec: BaselineSpec, image_shape, *, blur_sigma: float = 5.0, seed: int = 0) -> Callable[[tf.Tensor], tf.Tensor]:
    """Check ``spec`` against images of shape (H,W,C) and return ``images (N,H,W,C) -> a (N,H,W,C)``.

    The returned function is made of tf ops only, so it also runs inside a compiled or exported
    graph (a user callable is returned as it is).
    """
    height, width, channels = (int(v) for v in image_shape)
    if isinstance(spec, str):
        if spec == "mean":
            return lambda x: tf.broadcast_to(tf.reduce_mean(x, axis=(1, 2), keepdims=True), tf.shape(x))
        if spec == "blur":
            if not (isinstance(blur_sigma, (int, float)) and blur_sigma > 0):
                raise GsalInputError(f"blur_sigma must be > 0 pixels, got {blur_sigma}")
            return lambda x: gaussian_blur(x, float(blur_sigma))
        if spec == "noise":
            # One noise field per seed, shared by all images (scaled to each image's range), so an
            # image gets the same baseline whether it is explained alone or in a batch.
            field = tf.random.stateless_uniform((1, height, width, channels), seed=[int(seed), 0x65A1], dtype=tf.float32)

            def noise(x):
                low = tf.reduce_min(x, axis=(1, 2), keepdims=True)
                high = tf.reduce_max(x, axis=(1, 2), keepdims=True)
                return low + field * (high - low)

            return noise
        raise GsalInputError(
            f"unknown baseline {spec!r}: use a number, a per-channel tuple, one of {NAMED_BASELINES}, "
            "an array or a callable"
        )
    if callable(spec):
        return spec
    if np.isscalar(spec) or (isinstance(spec, (tuple, list)) and all(np.isscalar(v) for v in spec)):
        values = np.asarray(spec, np.float32).reshape(-1)
        if values.size not in (1, channels):
            raise GsalInputError(f"a constant baseline needs 1 or {channels} values (one per channel), got {values.size}")
        if not np.all(np.isfinite(values)):
            raise GsalInputError("the constant baseline contains NaN or inf")
        constant = tf.constant(values)
        return lambda x: tf.broadcast_to(constant, tf.shape(x))
    arr = np.asarray(spec, np.float32)
    if arr.shape != (height, width, channels):
        raise GsalInputError(f"the baseline array has shape {arr.shape}; it must be one image (H,W,C) = {(height, width, channels)}")
    if not np.all(np.isfinite(arr)):
        raise GsalInputError("the baseline array contains NaN or inf")
    image = tf.constant(arr[None])
    return lambda x: tf.broadcast_to(image, tf.shape(x))


def _as_baseline_array(value, shape, what: str) -> tf.Tensor:
    arr = np.asarray(value, np.float32)
    if arr.shape != tuple(shape):
        raise GsalInputError(f"{what} has shape {arr.shape}; it must match the images (N,H,W,C) = {tuple(shape)}")
    if not np.all(np.isfinite(arr)):
        raise GsalInputError(f"{what} contains NaN or inf")
    return tf.constant(arr)
