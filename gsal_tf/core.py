"""What every explainer shares: calling the model, class probabilities, probing the model's
output, the per-model cache of compiled graphs, and running a graph batch by batch.

Grid saliency (:mod:`gsal_tf.saliency`) and the gradient methods (:mod:`gsal_tf.attributions`)
are built on these pieces, so they treat models, logits, resolutions and batches identically.
"""

from __future__ import annotations

import time
import weakref
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from gsal_tf.errors import GsalInputError, first_line
from gsal_tf.validation import check_model_output

OUTPUT_KINDS = ("probabilities", "logits")

# Compiled graphs per model (weakly held: a deleted model frees its graphs) and structural key.
_GRAPHS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def call_model(model, x: tf.Tensor) -> tf.Tensor:
    """``model(x)``; Keras layers and models are called in inference mode."""
    if isinstance(model, keras.layers.Layer):
        return model(x, training=False)
    return model(x)


def loss_scale(model) -> float:
    """A constant loss scale for gradients through a float16-compute model, else 1.

    Under a float16 compute policy, small gradients (~1e-3 and below) can underflow in the
    backward pass: scale the objective by this constant and divide the gradient by it (exact in
    float32 arithmetic).
    """
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None) or keras.config.dtype_policy().compute_dtype
    return 2.0**12 if compute == "float16" else 1.0


def class_probability(model, x: tf.Tensor, class_ids: tf.Tensor, output: str, size: Sequence[int]) -> tf.Tensor:
    """f_c(x) (N,H,W) float32 at ``size`` = (H,W): softmax of logits, bilinear resize if needed."""
    scores = tf.cast(call_model(model, x), tf.float32)
    if output == "logits":
        scores = tf.nn.softmax(scores, axis=-1)
    picked = tf.reduce_sum(scores * tf.one_hot(class_ids, tf.shape(scores)[-1])[:, None, None, :], -1)
    if picked.shape[1] != size[0] or picked.shape[2] != size[1]:
        picked = tf.image.resize(picked[..., None], tuple(size), method="bilinear")[..., 0]
    return picked


def probe_num_classes(model, images: np.ndarray, output: str) -> int:
    """Run the model on one image, check its output is (1,h,w,K) scores; return K."""
    try:
        out = call_model(model, tf.constant(images[:1]))
    except Exception as exc:  # a model that cannot take this input is a user error
        raise GsalInputError(f"the model cannot take images of shape {images.shape[1:]} (H,W,C): {first_line(exc)}") from None
    _, _, k = check_model_output(out, images.shape[1:], output)
    return k


def cached_graph(owner, model, key: tuple, build: Callable[[Callable[[], Any]], Any]):
    """The compiled graph for (``model``, ``key``), built once with ``build(get_model)``.

    ``get_model()`` returns the model; the graph must read the model through it, so the cache
    holds the model only weakly. Models that cannot be weakly referenced are cached on ``owner``.
    """
    try:
        per_model = _GRAPHS.setdefault(model, {})
        get_model = weakref.ref(model)
    except TypeError:
        per_model = owner.__dict__.setdefault("_own_graphs", {})
        get_model = lambda: model  # noqa: E731
    if key not in per_model:
        per_model[key] = build(get_model)
    return per_model[key]


def run_batched(graph, per_request: Sequence, shared: Sequence, batch_size: int) -> tuple[dict, float]:
    """Call ``graph(*per_request[lo:hi], *shared)`` batch by batch; concatenate its dict outputs.

    Returns (outputs as NumPy arrays, seconds spent in the graph calls).
    """
    n = len(per_request[0])
    parts = []
    start = time.perf_counter()
    for lo in range(0, n, batch_size):
        hi = min(n, lo + batch_size)
        out = graph(*[tf.convert_to_tensor(v[lo:hi]) for v in per_request], *shared)
        parts.append({k: v.numpy() for k, v in out.items()})
    seconds = time.perf_counter() - start
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, seconds
