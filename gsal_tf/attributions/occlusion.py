"""Occlusion of a request score: how much the prediction inside R drops when a window of the
context is replaced by the baseline.

Zeiler, Fergus. *Visualizing and Understanding Convolutional Networks*. ECCV 2014,
arXiv:1311.2901 — restricted to a segmentation request like the other comparison methods
(:mod:`.masking`).

For image ``x`` (H,W,C), request ``R``, class ``c``, baseline ``a`` and windows ``W_j`` (H,W) in
{0,1} of ``window`` = (wh,ww) pixels whose top-left corners step by ``stride`` = (sh,sw):

    ``x_j = x∘(1−W_j) + p(x,R)∘W_j``,   ``p(x,R) = x∘R + a∘(1−R)``   (context mode: R is never replaced)
    ``Δ_j = s_c(x) − s_c(x_j)``                                     (the drop of the request score)
    ``raw(p) = sum_j max(Δ_j, 0)·W_j(p) / sum_j W_j(p)``            (the mean clipped drop of the windows covering p)
    ``saliency = raw / max(raw)``                                   in [0,1]

Clipped by default: a window whose removal *raises* the score is no evidence for the class, and
clipping matches grid saliency's objective, which counts only lost probability (``max(f_c(x) −
f_c(x'), 0)``). ``signed=True`` averages ``Δ_j`` as it is: ``saliency = raw / max|raw|`` in
[−1,1], negative where removing the context helps the prediction. ``raw`` is in units of the
request score (a probability); in context mode it is zero inside R.

Corners: rows 0, sh, 2sh, ... while the window fits, plus a last window flush with the bottom
edge when the steps do not end there (the same for columns), so every pixel is covered by at
least one window when ``stride <= window``. Cost: one forward pass of the batch per window,
``J = ny·nx`` with ``ny = ceil((H − wh)/sh) + 1``: 225 windows for the default 8×8 window and
its default stride 4 on a 64×64 image (about the forward+backward work of 75 grid saliency iterations).

Example
-------
>>> import gsal_tf as gs
>>> result = gs.attributions.Occlusion(model, window=8, stride=4).explain(images, request_masks, class_ids)
>>> result.saliency.shape   # (N,H,W) in [0,1]; zero inside the requests
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from gsal_tf.attributions.masking import PerturbationExplainer, weighted_masks
from gsal_tf.errors import GsalInputError
from gsal_tf.saliency.perturbation import BaselineSpec


class Occlusion(PerturbationExplainer):
    """The mean drop of the request score when a sliding window of the context is removed.

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K); h×w is resized
        bilinearly to H×W. Keras models are called with ``training=False``.
    window : int or (int, int), default 8
        Height and width of the occluding window, in pixels; at most the image size.
    stride : int or (int, int), optional
        Steps between window corners, in pixels; at most the window (so every pixel is covered).
        Default: half the window, rounded down (at least 1): 4 for the default window.
    baseline : float, tuple, "mean", "blur", "noise", array or callable, default 0.0
        What replaces the window (see :mod:`gsal_tf.saliency.perturbation`), as in grid saliency.
    mode : "context" or "full", default "context"
        "context" never replaces request pixels (a window over R replaces only its context part);
        "full" replaces the whole window.
    signed : bool, default False
        Average the signed drops (saliency in [−1,1]) instead of the drops clipped at 0.
    blur_sigma : float, default 5.0
        σ in pixels of the "blur" baseline.
    seed : int, default 0
        Seed of the "noise" baseline.
    masks_per_step : int, default 16
        Windows evaluated per model call: each call runs ``batch_size × masks_per_step`` images.
    batch_size : int, default 16
        Requests explained together in one graph call; more are split into batches.
    output : "probabilities", "logits" or None, default None
        What the model returns (None: what it declares — logits for a keras-hub segmenter —
        else probabilities; :func:`gsal_tf.model_calls.declared_output`); a one-channel output is a
        binary segmenter (classes 0 = background, 1 = foreground). Softmax (sigmoid for one channel) is applied to logits.
    """

    method = "occlusion"

    def __init__(
        self,
        model,
        window: int | tuple[int, int] = 8,
        stride: int | tuple[int, int] | None = None,
        baseline: BaselineSpec = 0.0,
        mode: str = "context",
        signed: bool = False,
        blur_sigma: float = 5.0,
        seed: int = 0,
        masks_per_step: int = 16,
        batch_size: int = 16,
        output: str | None = None,
    ):
        super().__init__(model, baseline=baseline, mode=mode, blur_sigma=blur_sigma, seed=seed,
                         masks_per_step=masks_per_step, batch_size=batch_size, output=output)
        self.window = _pixel_pair("window", window)
        self.stride = _pixel_pair("stride", stride) if stride is not None else tuple(max(1, v // 2) for v in self.window)
        if self.stride[0] > self.window[0] or self.stride[1] > self.window[1]:
            raise GsalInputError(
                f"stride {self.stride} is larger than the window {self.window}: pixels between windows would never "
                "be occluded; use a stride of at most the window"
            )
        if not isinstance(signed, (bool, np.bool_)):
            raise GsalInputError(f"signed must be True or False, got {signed!r}")
        self.signed = bool(signed)

    def _method_params(self) -> dict:
        return {"window": list(self.window), "stride": list(self.stride), "signed": self.signed}

    def _check_image(self, size):
        if self.window[0] > size[0] or self.window[1] > size[1]:
            raise GsalInputError(
                f"window {self.window} is larger than the image {tuple(size)} (H,W); use a window of at most the image size"
            )

    def corners(self, size: tuple[int, int]) -> np.ndarray:
        """Top-left corners (J,2) int32 of the windows on an image of ``size`` (H,W), row-major."""
        self._check_image(size)
        rows = _starts(size[0], self.window[0], self.stride[0])
        cols = _starts(size[1], self.window[1], self.stride[1])
        return np.array([(y, x) for y in rows for x in cols], np.int32)

    def _mask_inputs(self, size):
        return [self.corners(size)]

    def _hyper_inputs(self):
        return [tf.constant(self.window, tf.int32), tf.constant(float(self.signed), tf.float32)]

    @staticmethod
    def _mask_specs():
        return [tf.TensorSpec([None, 2], tf.int32)]

    @staticmethod
    def _hyper_specs():
        return [tf.TensorSpec([2], tf.int32), tf.TensorSpec([], tf.float32)]

    @staticmethod
    def _keep_masks(mask_params, hyper, size):
        return 1.0 - window_masks(mask_params[0], hyper[0], size)

    @staticmethod
    def _initial_sums(batch, size):
        return tf.zeros([batch, *size]), tf.zeros(size)

    @staticmethod
    def _accumulate(sums, scores, original, keep, valid, hyper):
        drop_sum, coverage = sums
        signed = hyper[1]
        drop = original[:, None] - scores  # (B,m)
        drop = signed * drop + (1.0 - signed) * tf.maximum(drop, 0.0)
        windows = 1.0 - keep
        return drop_sum + weighted_masks(drop * valid, windows), coverage + tf.einsum("m,mhw->hw", valid, windows)

    @staticmethod
    def _finish(sums, original, count, hyper):
        drop_sum, coverage = sums
        raw = tf.math.divide_no_nan(drop_sum, coverage[None])
        return raw, raw


def window_masks(corners: tf.Tensor, window: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Window indicators (m,H,W) float32: 1 on ``[y, y+wh) × [x, x+ww)`` for corners (m,2) (y,x)."""
    rows = tf.range(size[0])[None, :]
    cols = tf.range(size[1])[None, :]
    y, x = corners[:, 0:1], corners[:, 1:2]
    in_rows = tf.cast((rows >= y) & (rows < y + window[0]), tf.float32)  # (m,H)
    in_cols = tf.cast((cols >= x) & (cols < x + window[1]), tf.float32)  # (m,W)
    return in_rows[:, :, None] * in_cols[:, None, :]


def _starts(length: int, window: int, stride: int) -> list[int]:
    """0, stride, 2·stride, ... while the window fits, plus ``length − window`` if not reached."""
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def _pixel_pair(name: str, value) -> tuple[int, int]:
    try:
        pair = (value, value) if np.isscalar(value) else tuple(value)
        ok = len(pair) == 2 and all(not isinstance(v, bool) and float(v) == int(v) and int(v) >= 1 for v in pair)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise GsalInputError(f"{name} must be a positive int or (rows, cols) of positive ints in pixels, got {value!r}")
    return int(pair[0]), int(pair[1])


__all__ = ["Occlusion", "window_masks"]
