"""The grid-saliency objective and the scores reported with every explanation.

For one request, with class probabilities ``f_c(x)`` and ``f_c(x')`` (H,W), request mask ``R``
(H,W) in {0,1} and grid mask ``M`` (gh,gw) in [0,1]:

    loss(M) = lam * ||M||_1 / (gh*gw)  +  ||R ∘ max(f_c(x) − f_c(x'), 0)||_1 / ||R||_1

The first term asks for the smallest mask (normalised by the number of grid cells, so ``lam``
does not depend on the grid size); the second is the mean drop of the class probability inside
the request — a rise is not rewarded, so the mask is not pushed to find adversarial context.

All functions are batched over a leading axis N and return one value per request (N,).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["sparsity", "preservation_loss", "objective", "score_ratio"]


def sparsity(grid: tf.Tensor) -> tf.Tensor:
    """||M||_1 / (gh*gw): the mean mask value of grids (N,gh,gw) -> (N,)."""
    return tf.reduce_mean(grid, axis=[1, 2])


def preservation_loss(score: tf.Tensor, perturbed_score: tf.Tensor, request: tf.Tensor) -> tf.Tensor:
    """||R ∘ max(f_c(x) − f_c(x'), 0)||_1 / ||R||_1 for (N,H,W) inputs -> (N,)."""
    drop = tf.nn.relu(score - perturbed_score) * request
    return tf.reduce_sum(drop, axis=[1, 2]) / tf.reduce_sum(request, axis=[1, 2])


def objective(grid, score, perturbed_score, request, lam) -> tf.Tensor:
    """lam * sparsity(M) + preservation_loss: the quantity minimised, per request (N,)."""
    return lam * sparsity(grid) + preservation_loss(score, perturbed_score, request)


def score_ratio(score: tf.Tensor, perturbed_score: tf.Tensor, request: tf.Tensor) -> tf.Tensor:
    """How much of the class probability inside R survives the perturbation, (N,H,W) -> (N,).

    ``sum(R ∘ f_c(x')) / sum(R ∘ f_c(x))``: the ratio of the mean probabilities over R (1 = fully
    preserved). A ratio of means rather than a mean of per-pixel ratios, so that pixels where
    f_c(x) is near zero cannot dominate it.
    """
    kept = tf.reduce_sum(perturbed_score * request, axis=[1, 2])
    original = tf.reduce_sum(score * request, axis=[1, 2])
    return kept / tf.maximum(original, 1e-12)
