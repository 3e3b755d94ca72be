"""What the perturbation methods share: masked copies of the image, their request scores, and the
compiled loop that evaluates them in batches.

For an image ``x`` (H,W,C), a request mask ``R`` (H,W) in {0,1}, a class ``c``, a perturbation
baseline ``a`` (H,W,C) and a *keep mask* ``K`` (H,W) in [0,1] (1 = the pixel is kept):

    context mode (default)   ``x_K = x∘K + p(x,R)∘(1−K)``,   ``p(x,R) = x∘R + a∘(1−R)``
    full mode                ``x_K = x∘K + a∘(1−K)``
    request score            ``s_c(x) = sum(R ∘ f_c(x)) / sum(R)``   (the mean probability of c over R)

— exactly grid saliency's perturbation (:func:`gsal_tf.saliency.perturbation.perturb`), so in
context mode the request pixels are never perturbed and only the context is explained, as grid
saliency's context explanation does; ``mode="full"`` perturbs every pixel. In context mode the
map is zero inside ``R``: those pixels were never perturbed, so nothing is measured about them.

A method (:class:`~gsal_tf.attributions.occlusion.Occlusion`, :class:`~gsal_tf.attributions.rise.RISE`)
defines ``J`` keep masks ``K_j`` from a few numbers per mask (a window's corner; a coarse random
grid and a shift), evaluates ``s_j = s_c(x_{K_j})`` for all of them and combines the scores into a
map ``raw`` (H,W), in units of the request score (a probability). The saliency is ``raw /
max|raw|`` per request (:func:`gsal_tf.attributions.base.normalise`).

Speed: one explain call runs one compiled graph per batch of ``batch_size`` requests. Inside it a
``tf.while_loop`` builds ``masks_per_step`` masks at a time from their parameters, runs the
``batch_size × masks_per_step`` perturbed images through the model in one call and accumulates
the method's sums, so the ``J`` masks are never all in memory (1,000 masks of 513×513 would be
1 GB). The masks' parameters and the method's hyper-parameters (window, stride, cell size, keep
probability, number of masks) are graph inputs: the graph is traced once per model, image shape,
mode and output kind, and every setting reuses it. Masks are shared by all images of a call, so
an image gets the same result alone or in a batch.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from gsal_tf.attributions.base import Attribution, check_seed, normalise
from gsal_tf.model_calls import class_probability
from gsal_tf._graphs import run_batched
from gsal_tf.explainer import Explainer, describe_baseline
from gsal_tf.saliency.perturbation import MODES, BaselineSpec, make_baseline, perturb
from gsal_tf.validation import check_choice, check_class_ids, check_class_range, check_images, check_number, check_request_masks


class PerturbationExplainer(Explainer):
    """Base of the perturbation methods: the request-restricted perturbation and the compiled loop.

    A method sets ``method`` (its name) and implements ``_method_params``, ``_check_image``
    (settings that depend on the image size), ``_mask_inputs`` (per-mask parameters, leading axis
    J), ``_hyper_inputs`` and the static graph pieces ``_mask_specs``, ``_hyper_specs``,
    ``_keep_masks``, ``_initial_sums``, ``_accumulate`` and ``_finish`` (see :func:`build_graph`).

    Parameters shared by every perturbation method (each method documents them again)
    ----------------------------------------------------------------------------------
    baseline : the perturbation ``a`` (see :mod:`gsal_tf.saliency.perturbation`).
    mode : "context" (default; the request is never perturbed) or "full".
    masks_per_step : perturbed copies of each image per model call.
    """

    result_type = Attribution

    def __init__(self, model, baseline: BaselineSpec, mode: str, blur_sigma: float, seed: int, masks_per_step: int,
                 batch_size: int, output: str):
        super().__init__(model, output=output, batch_size=batch_size, jit_compile=False)
        check_choice("mode", mode, MODES)
        check_number("blur_sigma", blur_sigma, minimum=0.0, strict=True)
        check_number("masks_per_step", masks_per_step, minimum=1, integer=True)
        self.baseline = baseline
        self.mode = mode
        self.blur_sigma = float(blur_sigma)
        self.seed = check_seed(seed)
        self.masks_per_step = int(masks_per_step)

    @property
    def params(self) -> dict:
        return {**super().params, "baseline": describe_baseline(self.baseline), "mode": self.mode,
                "blur_sigma": self.blur_sigma, "seed": self.seed, "masks_per_step": self.masks_per_step}

    def explain(self, images, request_masks, class_ids) -> Attribution:
        """Attribute the mean probability of ``class_ids`` inside ``request_masks`` to the pixels.

        Parameters
        ----------
        images : float array (N,H,W,C), in the scale the model expects.
        request_masks : array (N,H,W) of 0/1 (or bool): the pixels whose prediction is explained.
            In context mode a request must leave some context.
        class_ids : int or int array (N,): the class explained for each request.

        Returns
        -------
        :class:`~gsal_tf.attributions.base.Attribution`: ``saliency`` (N,H,W), ``raw`` (N,H,W)
        in units of the request score, ``original_score`` (N,), ``class_ids``, ``params``, ``seconds``.
        """
        images = check_images(images)
        n, height, width, channels = images.shape
        self._check_image((height, width))
        requests = check_request_masks(request_masks, images, self.mode)
        classes = check_class_ids(class_ids, n)
        check_class_range(classes, self.num_classes(images))
        baseline = make_baseline(self.baseline, images, blur_sigma=self.blur_sigma, seed=self.seed).numpy()

        mask_inputs = self._mask_inputs((height, width))
        count = len(mask_inputs[0])
        per_step = min(self.masks_per_step, count)
        padded = [_pad_to_multiple(v, per_step) for v in mask_inputs]
        shared = [tf.constant(count, tf.int32), tf.constant(per_step, tf.int32),
                  *(tf.constant(v) for v in padded), *self._hyper_inputs()]
        graph = self.compiled_graph((height, width, channels))
        merged, seconds = run_batched(graph, (images, requests, classes, baseline), shared, self.batch_size)
        return self.result_type(**merged, class_ids=classes, params=self.params, seconds=seconds)

    # -- what a method provides --------------------------------------------------------------

    def _check_image(self, size: tuple[int, int]) -> None:
        """Raise GsalInputError when a setting does not fit images of ``size`` (H,W)."""

    def _mask_inputs(self, size: tuple[int, int]) -> list[np.ndarray]:
        """Per-mask parameters, each with a leading axis of length J (the number of masks)."""
        raise NotImplementedError

    def _hyper_inputs(self) -> list[tf.Tensor]:
        return []

    @staticmethod
    def _mask_specs() -> list[tf.TensorSpec]:
        raise NotImplementedError

    @staticmethod
    def _hyper_specs() -> list[tf.TensorSpec]:
        return []

    @staticmethod
    def _keep_masks(mask_params: list, hyper: list, size: tuple[int, int]) -> tf.Tensor:
        """Keep masks (m,H,W) in [0,1] from the parameters of m masks."""
        raise NotImplementedError

    @staticmethod
    def _initial_sums(batch: tf.Tensor, size: tuple[int, int]) -> tuple:
        raise NotImplementedError

    @staticmethod
    def _accumulate(sums: tuple, scores, original, keep, valid, hyper: list) -> tuple:
        """Add m masks' contributions: ``scores`` (B,m), ``original`` (B,), ``keep`` (m,H,W),
        ``valid`` (m,) 1 for real masks and 0 for padding."""
        raise NotImplementedError

    @staticmethod
    def _finish(sums: tuple, original, count, hyper: list) -> tuple[tf.Tensor, tf.Tensor]:
        """(raw (B,H,W), the map to normalise into the saliency (B,H,W))."""
        raise NotImplementedError

    # -- the compiled graph ----------------------------------------------------------------------

    def _graph_key(self) -> tuple:
        return (self.output, self.mode)

    def _build_graph(self, get_model, image_shape):
        return build_graph(get_model, type(self), image_shape, self.output, self.mode)


def request_score(model, x: tf.Tensor, requests: tf.Tensor, class_ids: tf.Tensor, output: str, size) -> tf.Tensor:
    """``s_c(x)`` (N,): the mean of f_c(x) over R, for images (N,H,W,C) and requests (N,H,W)."""
    probs = class_probability(model, x, class_ids, output, size)
    return tf.reduce_sum(probs * requests, axis=[1, 2]) / tf.reduce_sum(requests, axis=[1, 2])


def build_graph(get_model: Callable[[], Any], method: type, image_shape, output: str, mode: str):
    """Compile the loop over masks of ``method`` into one tf.function (see the module docstring).

    Inputs: images (B,H,W,C), requests (B,H,W), class ids (B,), baselines (B,H,W,C), the number of
    real masks J, masks per step m, the per-mask parameters (padded to a multiple of m) and the
    method's hyper-parameters. Outputs: ``raw``, ``saliency`` (B,H,W), ``original_score`` (B,).
    """
    height, width, channels = image_shape
    size = (height, width)

    def score(x, requests, class_ids):
        return request_score(get_model(), x, requests, class_ids, output, size)

    spec = [
        tf.TensorSpec([None, height, width, channels], tf.float32),
        tf.TensorSpec([None, height, width], tf.float32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, height, width, channels], tf.float32),
        tf.TensorSpec([], tf.int32),
        tf.TensorSpec([], tf.int32),
        *method._mask_specs(),
        *method._hyper_specs(),
    ]
    n_params = len(method._mask_specs())

    @tf.function(input_signature=spec, autograph=False)
    def attribute(images, requests, class_ids, baseline, count, per_step, *rest):
        mask_params, hyper = list(rest[:n_params]), list(rest[n_params:])
        batch = tf.shape(images)[0]
        original = score(images, requests, class_ids)
        steps = tf.shape(mask_params[0])[0] // per_step

        def body(i, *sums):
            index = tf.range(i * per_step, (i + 1) * per_step)
            keep = method._keep_masks([tf.gather(p, index) for p in mask_params], hyper, size)  # (m,H,W)
            valid = tf.cast(index < count, tf.float32)
            # (B,m,H,W,C): every image with every mask of this step, evaluated in one model call.
            perturbed = perturb(images[:, None], keep[None], requests[:, None], baseline[:, None], mode)
            repeat = [batch, per_step]
            scores = score(
                tf.reshape(perturbed, [-1, height, width, channels]),
                tf.reshape(tf.broadcast_to(requests[:, None], [*repeat, height, width]), [-1, height, width]),
                tf.reshape(tf.broadcast_to(class_ids[:, None], repeat), [-1]),
            )
            return (i + 1, *method._accumulate(sums, tf.reshape(scores, repeat), original, keep, valid, hyper))

        initial = method._initial_sums(batch, size)
        sums = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), *initial))[1:]
        raw, shown = method._finish(tuple(sums), original, count, hyper)
        if mode == "context":  # request pixels were never perturbed: nothing is measured there
            raw = raw * (1.0 - requests)
            shown = shown * (1.0 - requests)
        return {"raw": raw, "saliency": normalise(shown), "original_score": original}

    return attribute


def weighted_masks(weights: tf.Tensor, masks: tf.Tensor) -> tf.Tensor:
    """``sum_j weights[b,j] · masks[j]`` (B,H,W) for weights (B,m) and masks (m,H,W)."""
    return tf.einsum("bm,mhw->bhw", weights, masks)


def _pad_to_multiple(values: np.ndarray, multiple: int) -> np.ndarray:
    """Zero rows appended so the leading axis is a multiple of ``multiple`` (padding is marked
    invalid inside the graph and adds nothing)."""
    missing = -len(values) % multiple
    if not missing:
        return values
    return np.concatenate([values, np.zeros((missing, *values.shape[1:]), values.dtype)])


__all__ = ["PerturbationExplainer", "request_score", "weighted_masks"]
