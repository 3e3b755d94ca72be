"""SmoothGrad of a request score: gradients averaged over noisy copies of the image.

Smilkov, Thorat, Kim, Viégas, Wattenberg. *SmoothGrad: removing noise by adding noise*.
arXiv:1706.03825, 2017 — restricted to a segmentation request (see :mod:`.base`).

For image ``x`` (H,W,C), request ``R``, class ``c`` and ``n = samples``:

    ``x_i = x + σ ε_i``,  ``ε_i ~ N(0, 1)`` (H,W,C),  ``σ = noise · (max(x) − min(x))``
    ``raw = (1/n) sum_i sum_channels |∂s_c/∂x (x_i)|``,   ``saliency = raw / max(raw)``

Which average: the absolute value of each sample's gradient, summed over channels, is averaged
over the samples. Smilkov et al. define ``M̂_c(x) = 1/n sum_i M_c(x + ε_i)`` with the signed
gradient ``M_c = ∂S_c/∂x`` and take absolute values only to display the map; averaging absolute
maps instead keeps gradients of opposite sign on different samples from cancelling, which suits a
saliency used as a map of "how much", as in the CBD/CBL statistics. ``absolute=False`` gives
their signed average (summed over channels).

The range ``max(x) − min(x)`` is taken per image over all pixels and channels (a constant image
gets no noise). The noise fields ``ε_i`` come from a stateless Philox generator seeded with
``(seed, i)`` and are shared by all images of a call, so an image gets the same result alone or
in a batch and the same seed gives the same result (under ``jit_compile=True`` XLA draws a
different, equally reproducible, stream). The ``n`` samples are a ``tf.while_loop`` inside one
compiled graph: one forward+backward pass of the batch per sample, and one forward pass for
``original_score``.

Example
-------
>>> import gsal_tf as gs
>>> result = gs.attributions.SmoothGrad(model, samples=25, noise=0.15).explain(images, requests, class_ids)
"""

from __future__ import annotations

import tensorflow as tf

from gsal_tf.attributions.base import GradientExplainer, check_seed
from gsal_tf.validation import check_number


class SmoothGrad(GradientExplainer):
    """Gradients of the mean class probability over a request, averaged over noisy images.

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K); h×w is resized
        bilinearly to H×W. Keras models are called with ``training=False``.
    samples : int, default 25
        Noisy copies per image ``n`` (Smilkov et al. find little change beyond ~50).
    noise : float, default 0.15
        Noise level ``σ / (max(x) − min(x))``: the standard deviation as a fraction of the image's
        value range (Smilkov et al. recommend 0.10–0.20). 0 gives vanilla gradients.
    seed : int, default 0
        Seed of the noise fields.
    batch_size : int, default 16
        Requests attributed together in one graph call; more are split into batches.
    output : "probabilities" or "logits", default "probabilities"
        What the model returns; softmax is applied to logits.
    absolute : bool, default True
        Average ``sum_channels |gradient|`` (True) or ``sum_channels gradient`` (False).
    jit_compile : bool, default False
        Compile the graph with XLA.
    """

    method = "smoothgrad"

    def __init__(
        self,
        model,
        samples: int = 25,
        noise: float = 0.15,
        seed: int = 0,
        batch_size: int = 16,
        output: str = "probabilities",
        absolute: bool = True,
        jit_compile: bool = False,
    ):
        super().__init__(model, batch_size=batch_size, output=output, absolute=absolute, jit_compile=jit_compile)
        check_number("samples", samples, minimum=1, integer=True)
        check_number("noise", noise, minimum=0.0)
        self.samples = int(samples)
        self.noise = float(noise)
        self.seed = check_seed(seed)

    def _method_params(self) -> dict:
        return {"samples": self.samples, "noise": self.noise, "seed": self.seed}

    def _hyper_inputs(self):
        return [tf.constant(self.samples, tf.int32), tf.constant(self.noise, tf.float32), tf.constant(self.seed, tf.int32)]

    @staticmethod
    def _hyper_specs():
        return [tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32)]

    @staticmethod
    def _attribute(gradient, score, reduce, images, requests, class_ids, samples, noise, seed):
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        sigma = noise * (high - low)
        field_shape = [1] + images.shape[1:].as_list()

        def body(i, total):
            field = tf.random.stateless_normal(field_shape, seed=tf.stack([seed, i]), dtype=tf.float32, alg="philox")
            grad, _ = gradient(images + sigma * field, requests, class_ids)
            return i + 1, total + reduce(grad)

        _, total = tf.while_loop(lambda i, _: i < samples, body, (tf.constant(0), tf.zeros_like(requests)))
        return {"raw": total / tf.cast(samples, tf.float32), "original_score": score(images, requests, class_ids)}


__all__ = ["SmoothGrad"]
