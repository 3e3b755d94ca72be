"""Projected first-order optimisers written as pure tensor functions for use inside a graph loop.

Each ``*_step(param, grad, state, t, hp)`` returns ``(new_param, new_state)``; the parameter is
projected back onto [0, 1] after every step (the mask is a keep-fraction). They carry no
variables, so one traced loop serves every call with any hyper-parameter values.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = [
    "OPTIMIZERS", "ADAM_BETA1", "ADAM_BETA2", "ADAM_EPSILON", "init_state", "adam_step", "sgd_step",
    "STEPS", "lowest_level", "highest_threshold",
]

OPTIMIZERS = ("adam", "sgd")

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPSILON = 1e-8


def init_state(param: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Zero moment buffers shaped like ``param``."""
    return tf.zeros_like(param), tf.zeros_like(param)


def adam_step(param, grad, state, t, learning_rate, momentum=None):
    """Adam (Kingma & Ba 2015) with bias correction; ``t`` counts steps from 1."""
    m, v = state
    m = ADAM_BETA1 * m + (1.0 - ADAM_BETA1) * grad
    v = ADAM_BETA2 * v + (1.0 - ADAM_BETA2) * tf.square(grad)
    t = tf.cast(t, param.dtype)
    m_hat = m / (1.0 - tf.pow(ADAM_BETA1, t))
    v_hat = v / (1.0 - tf.pow(ADAM_BETA2, t))
    param = param - learning_rate * m_hat / (tf.sqrt(v_hat) + ADAM_EPSILON)
    return tf.clip_by_value(param, 0.0, 1.0), (m, v)


def sgd_step(param, grad, state, t, learning_rate, momentum):
    """SGD with (heavy-ball) momentum: ``b = μ b + g; θ = θ − lr b``."""
    buf, unused = state
    buf = momentum * buf + grad
    param = param - learning_rate * buf
    return tf.clip_by_value(param, 0.0, 1.0), (buf, unused)


STEPS = {"adam": adam_step, "sgd": sgd_step}


def lowest_level(keeps, at_zero, steps: int) -> tf.Tensor:
    """The lowest level ``u`` (N,) in [0, 1] at which ``keeps(u)`` holds, per request, by bisection.

    ``keeps`` maps levels (N,) to booleans (N,) and is assumed monotone (false below a threshold,
    true above it); ``at_zero`` (N,) is ``keeps(0)``, known to the caller. ``u = 0`` where
    ``at_zero``; else ``steps`` halvings of (0, 1] return the smallest ``k / 2**steps`` found to
    keep (``1`` when no tested level keeps). ``keeps`` is called ``steps`` times, each on the batch.
    """
    n = tf.shape(at_zero)[0]
    low, high = tf.zeros([n]), tf.ones([n])
    for _ in range(steps):
        middle = 0.5 * (low + high)
        ok = keeps(middle)
        high = tf.where(ok, middle, high)
        low = tf.where(ok, low, middle)
    return tf.where(at_zero, 0.0, high)


def highest_threshold(keeps, value, steps: int) -> tuple[tf.Tensor, tf.Tensor]:
    """The highest threshold ``θ`` (N,) in [0, 1) at which ``keeps(θ)`` holds, per request, by
    bisection, and the value ``keeps`` returned there.

    ``keeps`` maps thresholds (N,) to ``(ok (N,) bool, value (N,...))`` and is assumed monotone
    (true up to a threshold, false above it); it is taken to hold at ``θ = 0``, where ``value``
    (N,...) is its value. ``steps`` halvings of [0, 1) return the largest ``k / 2**steps`` found to
    keep (0 when no tested threshold keeps). ``keeps`` is called ``steps`` times, each on the batch.
    """
    n = tf.shape(value)[0]
    low, high = tf.zeros([n]), tf.ones([n])
    for _ in range(steps):
        middle = 0.5 * (low + high)
        ok, at_middle = keeps(middle)
        low = tf.where(ok, middle, low)
        high = tf.where(ok, high, middle)
        value = tf.where(tf.reshape(ok, [-1] + [1] * (len(value.shape) - 1)), at_middle, value)
    return low, value
