"""Vanilla gradients of a request score: which input pixels change the prediction inside R most.

Simonyan, Vedaldi, Zisserman. *Deep Inside Convolutional Networks: Visualising Image
Classification Models and Saliency Maps*. ICLR workshop 2014, arXiv:1312.6034 — restricted to a
segmentation request as in Hoyer et al. (NeurIPS 2019), who compare grid saliency against it.

For image ``x`` (H,W,C), request ``R`` and class ``c`` (see :mod:`.base`):

    ``s_c(x) = sum(R ∘ f_c(x)) / sum(R)``,   ``A = ∂s_c/∂x`` (H,W,C),
    ``raw = sum_channels |A|``,   ``saliency = raw / max(raw)``.

One forward and one backward pass per batch.

Example
-------
>>> import gsal_tf as gs
>>> result = gs.attributions.VanillaGradients(model).explain(images, request_masks, class_ids)
>>> result.saliency.shape   # (N,H,W) in [0,1]
"""

from __future__ import annotations

from gsal_tf.attributions.base import GradientExplainer


class VanillaGradients(GradientExplainer):
    """The gradient of the mean class probability over a request with respect to the input.

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K); h×w is resized
        bilinearly to H×W. Keras models are called with ``training=False``.
    batch_size : int, default 16
        Requests attributed together in one graph call; more are split into batches.
    output : "probabilities", "logits" or None, default None
        What the model returns (None: what it declares — logits for a keras-hub segmenter —
        else probabilities; :func:`gsal_tf.model_calls.declared_output`); a one-channel output is a
        binary segmenter (classes 0 = background, 1 = foreground). Softmax (sigmoid for one channel) is applied to logits (the gradient is always that of a
        probability).
    absolute : bool, default True
        Sum ``|∂s_c/∂x|`` over channels (True) or the signed gradient (False).
    jit_compile : bool, default False
        Compile the graph with XLA.
    """

    method = "vanilla_gradients"

    def __init__(
        self,
        model,
        batch_size: int = 16,
        output: str | None = None,
        absolute: bool = True,
        jit_compile: bool = False,
    ):
        super().__init__(model, batch_size=batch_size, output=output, absolute=absolute, jit_compile=jit_compile)

    @staticmethod
    def _attribute(gradient, score, reduce, images, requests, class_ids):
        grad, s = gradient(images, requests, class_ids)
        return {"raw": reduce(grad), "original_score": s}


__all__ = ["VanillaGradients"]
