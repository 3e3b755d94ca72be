"""Integrated gradients of a request score along the straight path from a baseline to the image.

Sundararajan, Taly, Yan. *Axiomatic Attribution for Deep Networks*. ICML 2017,
arXiv:1703.01365 — restricted to a segmentation request (see :mod:`.base`).

For image ``x`` (H,W,C), baseline ``x0`` (H,W,C), request ``R``, class ``c`` and ``m = steps``:

    ``A = (x − x0) ∘ (1/m) sum_{k=0}^{m−1} ∂s_c/∂x (x0 + α_k (x − x0))``,  ``α_k = (k + ½) / m``
    ``raw = sum_channels |A|``,   ``saliency = raw / max(raw)``

The path integral is a midpoint Riemann sum: ``m`` gradient evaluations, none at the end points,
error O(1/m²) for a smooth score. Completeness: the signed attribution (``absolute=False``) sums
to the score difference, ``sum(raw) ≈ s_c(x) − s_c(x0) = original_score − baseline_score``; the
gap tells whether ``steps`` is enough (Sundararajan et al. suggest within 5%).

The baseline is any of grid saliency's perturbation baselines (:mod:`gsal_tf.saliency.perturbation`):
a constant (default 0, a black image), a per-channel tuple, "mean", "blur", "noise", an (H,W,C)
array or a callable. The ``m`` steps are a ``tf.while_loop`` inside one compiled graph: one
forward+backward pass of the batch per step, and one forward pass of 2N images for the scores.

Example
-------
>>> import gsal_tf as gs
>>> ig = gs.attributions.IntegratedGradients(model, steps=32, absolute=False)
>>> result = ig.explain(images, request_masks, class_ids)
>>> result.raw.sum(axis=(1, 2)) - (result.original_score - result.baseline_score)   # ≈ 0
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from gsal_tf.attributions.base import Attribution, GradientExplainer, check_seed
from gsal_tf.explainer import describe_baseline
from gsal_tf.validation import check_number
from gsal_tf.saliency.perturbation import BaselineSpec, make_baseline


@dataclasses.dataclass
class IntegratedGradientsAttribution(Attribution):
    """:class:`~gsal_tf.attributions.base.Attribution` plus ``baseline_score`` float32 (N,):
    ``s_c(x0)``, the mean class probability over R at the baseline (for the completeness check)."""

    baseline_score: np.ndarray


class IntegratedGradients(GradientExplainer):
    """Integrated gradients of the mean class probability over a request (Sundararajan et al. 2017).

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K); h×w is resized
        bilinearly to H×W. Keras models are called with ``training=False``.
    steps : int, default 32
        Points ``m`` of the midpoint Riemann sum along the path.
    baseline : float, tuple, "mean", "blur", "noise", array or callable, default 0.0
        The path's start ``x0`` (see :mod:`gsal_tf.saliency.perturbation`).
    blur_sigma : float, default 5.0
        σ in pixels of the "blur" baseline.
    seed : int, default 0
        Seed of the "noise" baseline.
    batch_size : int, default 16
        Requests attributed together in one graph call; more are split into batches.
    output : "probabilities", "logits" or None, default None
        What the model returns (None: what it declares — logits for a keras-hub segmenter —
        else probabilities; :func:`gsal_tf.model_calls.declared_output`); a one-channel output is a
        binary segmenter (classes 0 = background, 1 = foreground). Softmax (sigmoid for one channel) is applied to logits.
    absolute : bool, default True
        Sum ``|A|`` over channels (True) or the signed ``A`` (False, satisfies completeness).
    jit_compile : bool, default False
        Compile the graph with XLA.
    """

    method = "integrated_gradients"
    result_type = IntegratedGradientsAttribution

    def __init__(
        self,
        model,
        steps: int = 32,
        baseline: BaselineSpec = 0.0,
        blur_sigma: float = 5.0,
        seed: int = 0,
        batch_size: int = 16,
        output: str | None = None,
        absolute: bool = True,
        jit_compile: bool = False,
    ):
        super().__init__(model, batch_size=batch_size, output=output, absolute=absolute, jit_compile=jit_compile)
        check_number("steps", steps, minimum=1, integer=True)
        check_number("blur_sigma", blur_sigma, minimum=0.0, strict=True)
        self.steps = int(steps)
        self.baseline = baseline
        self.blur_sigma = float(blur_sigma)
        self.seed = check_seed(seed)

    def _method_params(self) -> dict:
        return {
            "steps": self.steps,
            "baseline": describe_baseline(self.baseline),
            "blur_sigma": self.blur_sigma,
            "seed": self.seed,
        }

    def _image_inputs(self, images):
        return [make_baseline(self.baseline, images, blur_sigma=self.blur_sigma, seed=self.seed)]

    @staticmethod
    def _image_specs(image_shape):
        return [tf.TensorSpec([None, *image_shape], tf.float32)]

    def _hyper_inputs(self):
        return [tf.constant(self.steps, tf.int32)]

    @staticmethod
    def _hyper_specs():
        return [tf.TensorSpec([], tf.int32)]

    @staticmethod
    def _attribute(gradient, score, reduce, images, requests, class_ids, baseline, steps):
        delta = images - baseline
        m = tf.cast(steps, tf.float32)

        def body(k, total):
            alpha = (tf.cast(k, tf.float32) + 0.5) / m
            grad, _ = gradient(baseline + alpha * delta, requests, class_ids)
            return k + 1, total + grad

        _, total = tf.while_loop(lambda k, _: k < steps, body, (tf.constant(0), tf.zeros_like(images)))
        n = tf.shape(images)[0]
        # Both end-point scores in one forward pass of 2N images.
        ends = score(tf.concat([images, baseline], 0), tf.tile(requests, [2, 1, 1]), tf.tile(class_ids, [2]))
        return {"raw": reduce(delta * total / m), "original_score": ends[:n], "baseline_score": ends[n:]}


__all__ = ["IntegratedGradients", "IntegratedGradientsAttribution"]
