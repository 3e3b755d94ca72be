"""SmoothGrad of a request score: gradients averaged over noisy copies of the image.

Smilkov, Thorat, Kim, Viégas, Wattenberg. *SmoothGrad: removing noise by adding noise*.
arXiv:1706.03825, 2017 — restricted to a segmentation request (see :mod:`.base`).

For image ``x`` (H,W,C), request ``R``, class ``c`` and ``n = samples``:

    ``x_i = x + σ ε_i``,  ``ε_i ~ N(0, 1)`` (H,W,C),  ``σ = noise · (max(x) − min(x))``
    ``raw = (1/n) sum_i sum_channels |∂s_c/∂x (x_i)|``,   ``saliency = raw / max(raw)``

Which average (``averaging``), with ``g_i = ∂s_c/∂x (x_i)`` (H,W,C):

    ``"absolute"`` (default)  ``raw = (1/n) sum_i sum_channels |g_i|``
    ``"signed"``              ``raw = sum_channels |(1/n) sum_i g_i|``   (Smilkov et al.)
    ``"squared"``             ``raw = (1/n) sum_i sum_channels g_i²``    (SmoothGrad-Squared, Hooker
                              et al., *A Benchmark for Interpretability Methods in Deep Neural
                              Networks*, NeurIPS 2019)

Smilkov et al. define ``M̂_c(x) = 1/n sum_i M_c(x + ε_i)`` with the signed gradient ``M_c =
∂S_c/∂x`` and take absolute values only to display the map ("signed"); averaging absolute maps
keeps gradients of opposite sign on different samples from cancelling ("absolute", the default);
squaring weights the large gradients more. ``absolute=False`` drops the absolute value of
"absolute" and "signed" (both then give the signed mean ``(1/n) sum_i sum_channels g_i``, saliency
in [−1,1]); "squared" is never negative. Which average localises a context bias best is a
setting to choose on held-out data (:mod:`gsal_tf.benchmark.tuning`): on the zoo's strongly
biased MobileNetV2 (60 biased 9s, 50 samples) "signed" at noise 0.20 reached CBL 0.84, "absolute"
0.81, and "absolute" at the default noise 0.15 0.65.

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
from gsal_tf.validation import check_choice, check_number

#: How the samples' gradients are averaged (see the module docstring).
AVERAGINGS = ("absolute", "signed", "squared")


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
    averaging : "absolute", "signed" or "squared", default "absolute"
        Average the per-sample absolute gradients, take the absolute value of the averaged
        signed gradient, or average the squared gradients (formulas in the module docstring).
    batch_size : int, default 16
        Requests attributed together in one graph call; more are split into batches.
    output : "probabilities", "logits" or None, default None
        What the model returns (None: what it declares — logits for a keras-hub segmenter —
        else probabilities; :func:`gsal_tf.model_calls.declared_output`); a one-channel output is a
        binary segmenter (classes 0 = background, 1 = foreground). Softmax (sigmoid for one channel) is applied to logits.
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
        output: str | None = None,
        absolute: bool = True,
        jit_compile: bool = False,
        averaging: str = "absolute",
    ):
        super().__init__(model, batch_size=batch_size, output=output, absolute=absolute, jit_compile=jit_compile)
        check_number("samples", samples, minimum=1, integer=True)
        check_number("noise", noise, minimum=0.0)
        check_choice("averaging", averaging, AVERAGINGS)
        self.samples = int(samples)
        self.noise = float(noise)
        self.seed = check_seed(seed)
        self.averaging = averaging

    def _method_params(self) -> dict:
        return {"samples": self.samples, "noise": self.noise, "seed": self.seed, "averaging": self.averaging}

    def _hyper_inputs(self):
        return [tf.constant(self.samples, tf.int32), tf.constant(self.noise, tf.float32), tf.constant(self.seed, tf.int32),
                tf.constant(AVERAGINGS.index(self.averaging), tf.int32)]

    @staticmethod
    def _hyper_specs():
        return [tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.int32)]

    @staticmethod
    def _attribute(gradient, score, reduce, images, requests, class_ids, samples, noise, seed, averaging):
        low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
        high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
        sigma = noise * (high - low)
        field_shape = [1] + images.shape[1:].as_list()

        # All three averages are accumulated (elementwise, cheap next to a backward pass) and one
        # is picked at the end, so the averaging is a graph input and does not retrace.
        def body(i, per_sample, signed, squared):
            field = tf.random.stateless_normal(field_shape, seed=tf.stack([seed, i]), dtype=tf.float32, alg="philox")
            grad, _ = gradient(images + sigma * field, requests, class_ids)
            return i + 1, per_sample + reduce(grad), signed + grad, squared + tf.reduce_sum(tf.square(grad), axis=-1)

        start = (tf.constant(0), tf.zeros_like(requests), tf.zeros_like(images), tf.zeros_like(requests))
        _, per_sample, signed, squared = tf.while_loop(lambda i, *_: i < samples, body, start)
        n = tf.cast(samples, tf.float32)
        raw = tf.gather(tf.stack([per_sample / n, reduce(signed / n), squared / n]), averaging)
        return {"raw": raw, "original_score": score(images, requests, class_ids)}


__all__ = ["SmoothGrad"]
