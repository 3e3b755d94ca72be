"""What the gradient attribution methods share: the request score, its input gradient, the result
type and the graph that runs a method's body (the rest comes from :class:`gsal_tf.explainer.Explainer`).

For an image ``x`` (H,W,C), a request mask ``R`` (H,W) in {0,1} and a class ``c``, every method
explains the request score

    ``s_c(x) = sum(R ∘ f_c(x)) / sum(R)``

— the mean probability of class ``c`` over the request, exactly the quantity grid saliency
preserves (logits go through a softmax; outputs at another resolution are resized bilinearly to
H×W). A method produces an attribution ``A`` (H,W,C) and reduces it over channels to the raw map

    ``raw = sum_channels |A|``  (``absolute=True``, the default)   or   ``sum_channels A`` (signed);

and the saliency is ``raw / max|raw|`` per request — in [0,1] (absolute) or [−1,1] (signed), and
all zeros where the attribution is zero everywhere.

Speed: one explain call runs one compiled graph per batch (the method's samples or path steps are
a ``tf.while_loop`` inside it). A graph is traced once per model, method, image shape and
structural option (output kind, absolute, XLA), with a free batch axis; the method's
hyper-parameters are tensors, so other settings reuse it. Graphs are cached per model and hold
the model only weakly: a deleted model frees its graphs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from gsal_tf.errors import GsalInputError
from gsal_tf.model_calls import class_probability, loss_scale
from gsal_tf._graphs import run_batched
from gsal_tf.explainer import Explainer, ExplanationResult
from gsal_tf.validation import check_class_ids, check_class_range, check_images, check_request_masks

GradientFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple]
ScoreFn = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]
ReduceFn = Callable[[tf.Tensor], tf.Tensor]


@dataclasses.dataclass
class Attribution(ExplanationResult):
    """The result of a gradient method's ``explain`` for N requests.

    Attributes
    ----------
    saliency : float32 (N,H,W) — ``raw / max|raw|`` per request: in [0,1], or [−1,1] when
        ``absolute=False``; zero where ``raw`` is zero everywhere.
    raw : float32 (N,H,W) — the attribution summed over channels (of its absolute value by
        default), in units of the request score per input unit (gradients) or of the score
        itself (integrated gradients).
    original_score : float32 (N,) — ``s_c(x)``, the mean probability of the class over R.
    class_ids : int32 (N,)
    params : dict — the settings used (``params["method"]``: the method's name).
    seconds : float — wall time of the graph calls.

    It extends :class:`gsal_tf.explainer.ExplanationResult`, as every explainer's result does.
    """

    raw: np.ndarray


class GradientExplainer(Explainer):
    """Base of the gradient methods: the request score, its gradient and the compiled graph.

    A method sets ``method`` (its name), ``result_type`` and implements ``_method_params``,
    ``_hyper_inputs`` (scalar tensors), ``_image_inputs`` (per-image tensors (N,...)) and the
    static graph body ``_attribute``.
    """

    result_type = Attribution

    def __init__(self, model, batch_size: int, output: str, absolute: bool, jit_compile: bool):
        super().__init__(model, output=output, batch_size=batch_size, jit_compile=jit_compile)
        if not isinstance(absolute, (bool, np.bool_)):
            raise GsalInputError(f"absolute must be True or False, got {absolute!r}")
        self.absolute = bool(absolute)

    @property
    def params(self) -> dict:
        return {**super().params, "absolute": self.absolute}

    def explain(self, images, request_masks, class_ids) -> Attribution:
        """Attribute the mean probability of ``class_ids`` inside ``request_masks`` to the pixels.

        Parameters
        ----------
        images : float array (N,H,W,C), in the scale the model expects.
        request_masks : array (N,H,W) of 0/1 (or bool): the pixels whose prediction is explained;
            a request may cover the whole image.
        class_ids : int or int array (N,): the class explained for each request.

        Returns
        -------
        :class:`Attribution` (or the method's subclass of it).
        """
        images = check_images(images)
        n, height, width, channels = images.shape
        requests = check_request_masks(request_masks, images, "full")
        classes = check_class_ids(class_ids, n)
        check_class_range(classes, self.num_classes(images))
        per_image = self._image_inputs(images)
        hyper = self._hyper_inputs()

        graph = self.compiled_graph((height, width, channels))
        merged, seconds = run_batched(graph, (images, requests, classes, *per_image), hyper, self.batch_size)
        return self.result_type(**merged, class_ids=classes, params=self.params, seconds=seconds)

    # -- what a method provides --------------------------------------------------------------

    def _hyper_inputs(self) -> list[tf.Tensor]:
        """Scalar tensors passed to every graph call (their specs: ``_hyper_specs``)."""
        return []

    @staticmethod
    def _hyper_specs() -> list[tf.TensorSpec]:
        return []

    def _image_inputs(self, images: np.ndarray) -> list[tf.Tensor]:
        """Per-image tensors (N,...) passed batch by batch (their specs: ``_image_specs``)."""
        return []

    @staticmethod
    def _image_specs(image_shape) -> list[tf.TensorSpec]:
        return []

    @staticmethod
    def _attribute(gradient: GradientFn, score: ScoreFn, reduce: ReduceFn, images, requests, class_ids, *extra) -> dict:
        """Graph body: return ``{"raw": (N,H,W), "original_score": (N,), ...}``."""
        raise NotImplementedError

    # -- the compiled graph ----------------------------------------------------------------------

    def _graph_key(self) -> tuple:
        return (self.output, self.absolute, self.jit_compile)

    def _build_graph(self, get_model, image_shape):
        return build_graph(get_model, type(self), image_shape, self.output, self.absolute, self.jit_compile)


def build_graph(get_model: Callable[[], Any], method: type, image_shape, output: str, absolute: bool, jit_compile: bool):
    """Compile ``method._attribute`` over a batch into one tf.function (see module docstring)."""
    height, width, channels = image_shape
    # The graph reads the model through get_model, so the cache does not keep it alive.
    scale = loss_scale(get_model())

    def score(x, requests, class_ids):
        """s_c(x) (N,): the mean of f_c(x) over R."""
        probs = class_probability(get_model(), x, class_ids, output, (height, width))
        return tf.reduce_sum(probs * requests, axis=[1, 2]) / tf.reduce_sum(requests, axis=[1, 2])

    def gradient(x, requests, class_ids):
        """(d s_c / d x (N,H,W,C), s_c(x) (N,)); requests are independent, so one sum suffices."""
        with tf.GradientTape() as tape:
            tape.watch(x)
            s = score(x, requests, class_ids)
            total = tf.reduce_sum(s) * scale
        return tape.gradient(total, x) / scale, s

    def reduce(attribution):
        """Channel reduction (N,H,W,C) -> (N,H,W)."""
        return tf.reduce_sum(tf.abs(attribution) if absolute else attribution, axis=-1)

    spec = [
        tf.TensorSpec([None, height, width, channels], tf.float32),
        tf.TensorSpec([None, height, width], tf.float32),
        tf.TensorSpec([None], tf.int32),
        *method._image_specs(image_shape),
        *method._hyper_specs(),
    ]

    @tf.function(input_signature=spec, jit_compile=jit_compile, autograph=False)
    def attribute(images, requests, class_ids, *extra):
        out = method._attribute(gradient, score, reduce, images, requests, class_ids, *extra)
        out["saliency"] = normalise(out["raw"])
        return out

    return attribute


def normalise(raw: tf.Tensor) -> tf.Tensor:
    """``raw / max|raw|`` per request (N,H,W); zero maps stay zero."""
    peak = tf.reduce_max(tf.abs(raw), axis=[1, 2], keepdims=True)
    return tf.math.divide_no_nan(raw, peak)


def check_seed(seed) -> int:
    """A seed for the stateless generators: an int in [0, 2**31)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**31:
        raise GsalInputError(f"seed must be an int in [0, 2**31), got {seed!r}")
    return int(seed)


__all__ = ["Attribution", "GradientExplainer", "normalise", "check_seed"]
