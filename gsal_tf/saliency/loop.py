"""The compiled optimisation of grid saliency: the whole search for a batch of requests as one
``tf.function`` (:func:`build_graph`), and its parts.

One call on N requests (notation of :mod:`.grid_saliency`):

1. ``f_c(x)``; with a target also ``f_c`` at ``M = 0``, the score without context;
2. the start: every cell at ``init``, or with ``init="auto"`` and a target the lowest uniform
   level that keeps the target τ (:func:`start_level`, :data:`SEARCH_STEPS` forward passes);
3. the steps, projected Adam or SGD on the objective: the paper's loop (:func:`paper_loop`), or
   with a target :func:`target_loop`, where a request whose preserved score falls below τ goes
   back to its last mask that kept τ with ``lam`` times ``backoff`` and its optimiser moments
   restarted or kept, and stops once its mask has settled;
4. the end, with a target (:func:`target_answer`): the last mask that kept τ where the final one
   does not, the pruning (:data:`PRUNE_STEPS` forward passes) and the removal of unneeded cells
   (a forward pass per kept cell, then :data:`REMOVE_STEPS`).

No Python runs per step: the loops are ``tf.while_loop``. Only the requests still active are
stepped (gathered, stepped, scattered back); under XLA, which needs static shapes, every request
is stepped and the stopped ones keep their values.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple

import numpy as np
import tensorflow as tf

from gsal_tf.model_calls import class_probability, loss_scale
from gsal_tf.saliency import objective as obj
from gsal_tf.saliency import optim
from gsal_tf.saliency.masks import upsample_grid
from gsal_tf.saliency.perturbation import perturb

__all__ = [
    "SETTLE_WINDOW", "SETTLE_MIN_STEPS", "SETTLE_TOLERANCE", "SEARCH_STEPS", "PRUNE_STEPS", "REMOVE_STEPS",
    "pruned", "least_needed_removed", "settle_window", "build_graph",
]

#: A mask has settled (``Explanation.converged``) when no cell moved by more than
#: ``SETTLE_TOLERANCE`` over the last ``SETTLE_WINDOW`` of the iterations (at least
#: ``SETTLE_MIN_STEPS``). A cell still travelling at Adam's step (learning rate 0.03) moves
#: 0.15 or more in 5 steps; a settled one stays put or jitters around its balance. Measured with
#: ``python benchmarks/convergence.py MNIST.npz`` (README, "The method"): a criterion on the
#: objective instead (its last-window decrease under 5 % of the run's) called 40 of 40 requests
#: converged after 50 iterations whose grids were still 0.46 (median, max cell) from where 400
#: iterations end; the objective flattens long before the mask stops moving.
SETTLE_WINDOW = 0.1
SETTLE_MIN_STEPS = 5
SETTLE_TOLERANCE = 0.05

#: Halvings of the start-level search of ``init="auto"`` (the level to 1/32).
SEARCH_STEPS = 5

#: Halvings of the threshold search of ``prune=True`` (the threshold to 1/16).
PRUNE_STEPS = 4

#: Halvings of the search of ``remove_cells=True`` for how many kept cells go (to 1/32 of them).
REMOVE_STEPS = 5


def pruned(grid, threshold):
    """``grid`` (N,gh,gw) with every cell below its request's ``threshold`` (N,) set to 0."""
    return tf.where(grid >= threshold[:, None, None], grid, 0.0)


def least_needed_removed(grid, importance, fraction):
    """``grid`` (N,gh,gw) without ``floor(fraction * K)`` of its ``K`` kept cells (> 0) per request:
    those of smallest ``importance`` (N,gh,gw; ties in row-major order); ``fraction`` (N,) in
    [0, 1]."""
    n = tf.shape(grid)[0]
    flat, weight = tf.reshape(grid, [n, -1]), tf.reshape(importance, [n, -1])
    kept = flat > 0
    weight = tf.where(kept, weight, np.inf)  # cells already 0 rank last
    rank = tf.argsort(tf.argsort(weight, axis=1, stable=True), axis=1, stable=True)
    count = tf.floor(fraction * tf.reduce_sum(tf.cast(kept, tf.float32), axis=1))
    return tf.reshape(tf.where(tf.cast(rank, tf.float32) >= count[:, None], flat, 0.0), tf.shape(grid))


def settle_window(iterations):
    """The last ``k = max(SETTLE_MIN_STEPS, ceil(SETTLE_WINDOW * T))`` iterations (at most T)
    over which a mask must stay put to count as settled; ``iterations`` T is an int or an int32
    tensor."""
    if isinstance(iterations, (int, np.integer)):
        return min(max(SETTLE_MIN_STEPS, int(np.ceil(SETTLE_WINDOW * iterations))), int(iterations))
    scaled = tf.cast(tf.math.ceil(SETTLE_WINDOW * tf.cast(iterations, tf.float32)), tf.int32)
    return tf.minimum(tf.maximum(SETTLE_MIN_STEPS, scaled), iterations)


class Batch(NamedTuple):
    """The requests of one call: ``images`` (N,H,W,C), ``requests`` R (N,H,W), ``class_ids`` (N,),
    ``baseline`` a (N,H,W,C) and ``score`` f_c(x) (N,H,W)."""

    images: tf.Tensor
    requests: tf.Tensor
    class_ids: tf.Tensor
    baseline: tf.Tensor
    score: tf.Tensor

    def rows(self, rows) -> "Batch":
        """The requests ``rows`` (m,) of the batch."""
        return Batch(*(tf.gather(v, rows) for v in self))

    def map(self, fn) -> "Batch":
        """``fn`` applied to each tensor of the batch (e.g. the gather of the active rows)."""
        return Batch(*(fn(v) for v in self))


@dataclasses.dataclass(frozen=True)
class Setup:
    """What every part of one compiled graph shares: the model (read through ``get_model``, a weak
    reference, so the cache of compiled graphs never keeps a model alive), ``image_size`` (H,W)
    in pixels, ``grid_size`` (gh,gw) in cells, and the structural options ``mode``,
    ``upsampling`` and ``output``. ``compact``: step and search only the rows that need it
    (dynamic shapes; False under XLA)."""

    get_model: Callable
    image_size: tuple
    grid_size: tuple
    mode: str
    upsampling: str
    output: str
    compact: bool

    def class_score(self, x, class_ids):
        """f_c(x) resized to (N,H,W)."""
        return class_probability(self.get_model(), x, class_ids, self.output, self.image_size)

    def perturbed(self, grid, batch: Batch):
        """x' (N,H,W,C) for grids (N,gh,gw)."""
        return perturb(batch.images, upsample_grid(grid, self.image_size, self.upsampling), batch.requests, batch.baseline, self.mode)

    def scores(self, grid, batch: Batch):
        """f_c(x') (N,H,W) for grids (N,gh,gw)."""
        return self.class_score(self.perturbed(grid, batch), batch.class_ids)

    def preserved(self, perturbed_score, batch: Batch):
        """The preserved score (N,) of f_c(x') (N,H,W) (:func:`.objective.score_ratio`)."""
        return obj.score_ratio(batch.score, perturbed_score, batch.requests)

    def scores_of(self, batch: Batch, *grids):
        """f_c(x') (N,H,W) for each of the grids (N,gh,gw), in one forward pass."""
        k = len(grids)
        x = perturb(tf.tile(batch.images, [k, 1, 1, 1]), upsample_grid(tf.concat(grids, 0), self.image_size, self.upsampling),
                    tf.tile(batch.requests, [k, 1, 1]), tf.tile(batch.baseline, [k, 1, 1, 1]), self.mode)
        return tf.split(self.class_score(x, tf.tile(batch.class_ids, [k])), k)

    def on_rows(self, needed, fn, outputs):
        """``fn`` (taking row indices) on the requests where ``needed`` (N,) bool holds, its outputs
        put into ``outputs`` (full-batch tensors, kept where a request is not needed). Compact
        graphs gather the needed rows (and run no forward pass when there are none); XLA runs every
        row and selects."""
        if not self.compact:
            parts = fn(tf.range(tf.shape(needed)[0]))
            return [tf.where(needed[(slice(None),) + (None,) * (full.shape.rank - 1)], part, full)
                    for full, part in zip(outputs, parts)]
        rows = tf.where(needed)[:, 0]

        def run():
            parts = fn(rows)
            return [tf.tensor_scatter_nd_update(full, rows[:, None], part) for full, part in zip(outputs, parts)]

        return tf.cond(tf.size(rows) > 0, run, lambda: list(outputs))


def start_level(s: Setup, batch: Batch, target, kept_empty):
    """``init="auto"``: the lowest uniform level ``u`` (N,) whose mask ``M = u`` keeps the
    preserved score >= target (:func:`.optim.lowest_level`, :data:`SEARCH_STEPS` halvings;
    ``u = 1`` is the whole image), or 0 where the prediction keeps the target without context
    (``kept_empty`` (N,)); the search runs on the other requests only."""
    gh, gw = s.grid_size

    def search(rows):
        part = batch.rows(rows)
        m = tf.shape(rows)[0]

        def keeps(level):
            return s.preserved(s.scores(level[:, None, None] * tf.ones([m, gh, gw]), part), part) >= target

        return [optim.lowest_level(keeps, tf.zeros([m], tf.bool), SEARCH_STEPS)]

    return s.on_rows(tf.logical_not(kept_empty), search, [tf.zeros([tf.shape(batch.images)[0]])])[0]


def leave_one_out(s: Setup, grid, batch: Batch, current):
    """(m,gh,gw): how much the preserved score drops when each kept cell of ``grid`` alone is
    removed (0 for the cells already 0), from the preserved score of ``current`` (m,H,W); one
    forward pass of the batch per kept cell of the request that keeps most."""
    gh, gw = s.grid_size
    m = tf.shape(grid)[0]
    flat = tf.reshape(grid, [m, gh * gw])
    kept = tf.reduce_sum(tf.cast(flat > 0, tf.int32), axis=1)
    kept_first = tf.argsort(tf.cast(flat > 0, tf.int32), axis=1, direction="DESCENDING", stable=True)
    before = s.preserved(current, batch)

    def body(j, importance):
        cell = tf.one_hot(kept_first[:, j], gh * gw) * tf.cast(j < kept, tf.float32)[:, None]
        without = tf.reshape(flat * (1.0 - cell), [m, gh, gw])
        after = s.preserved(s.scores(without, batch), batch)
        return j + 1, importance + cell * (before - after)[:, None]

    _, importance = tf.while_loop(lambda j, _: j < tf.reduce_max(kept), body, [tf.constant(0), tf.zeros([m, gh * gw])])
    return tf.reshape(importance, [m, gh, gw])


class Stepper(NamedTuple):
    """One projected step on the objective: ``step`` (:data:`.optim.STEPS`), the loss ``scale``
    (:func:`gsal_tf.model_calls.loss_scale`), the learning rate and momentum (tensors)."""

    step: Callable
    scale: float
    learning_rate: tf.Tensor
    momentum: tf.Tensor

    def descend(self, s: Setup, grid, lams, state, t, batch: Batch):
        """One step on the n requests of ``batch`` from ``grid`` (n,gh,gw) with size weights
        ``lams`` (a scalar, or (n,) with a target) and optimiser ``state`` (a pair of (n,gh,gw)) at
        step ``t`` (int32, from 0): the new grid, optimiser state, the step's loss (n,) and f_c(x')
        (n,H,W) at ``grid``."""
        with tf.GradientTape() as tape:
            tape.watch(grid)
            perturbed = s.scores(grid, batch)
            loss = obj.objective(grid, batch.score, perturbed, batch.requests, lams)
            scaled = tf.reduce_sum(loss) * self.scale
        grad = tape.gradient(scaled, grid) / self.scale
        new_grid, state = self.step(grid, grad, state, t + 1, self.learning_rate, self.momentum)
        return new_grid, state, loss, perturbed


def paper_loop(s: Setup, stepper: Stepper, batch: Batch, grid0, lam, iterations):
    """The paper's formulation: ``iterations`` steps with one ``lam`` for every request. Returns
    the grid, the grid where the last settle window began, and the loss history (T,N)."""
    window_start = iterations - settle_window(iterations)
    history0 = tf.TensorArray(tf.float32, size=iterations, element_shape=[None])

    def body(t, grid, anchor, state_a, state_b, history):
        anchor = tf.where(tf.equal(t, window_start), grid, anchor)  # the mask where the last window starts
        grid, (state_a, state_b), loss, _ = stepper.descend(s, grid, lam, (state_a, state_b), t, batch)
        return t + 1, grid, anchor, state_a, state_b, history.write(t, loss)

    zeros_a, zeros_b = optim.init_state(grid0)
    matrix = tf.TensorShape([None, *s.grid_size])
    _, grid, anchor, _, _, history = tf.while_loop(
        lambda t, *_: t < iterations, body, (tf.constant(0), grid0, grid0, zeros_a, zeros_b, history0),
        shape_invariants=(tf.TensorShape([]), matrix, matrix, matrix, matrix, None))
    return grid, anchor, history.stack()


class TargetState(NamedTuple):
    """What :func:`target_loop` returns for N requests."""

    grid: tf.Tensor  # (N,gh,gw) the final grid
    anchor: tf.Tensor  # (N,gh,gw) the grid where the last settle window began
    loss_history: tf.Tensor  # (T,N) the objective before each step
    last_kept: tf.Tensor  # (N,gh,gw) the last grid that kept the target
    kept_score: tf.Tensor  # (N,H,W) f_c(x') at last_kept
    since_back: tf.Tensor  # (N,) int32 steps since the request last went back
    active: tf.Tensor  # (N,) bool still stepping when the loop ended
    steps: tf.Tensor  # (N,) int32 steps run


def target_loop(s: Setup, stepper: Stepper, batch: Batch, grid0, done, loss0, lam, iterations, target, backoff, moments):
    """The ``target`` formulation's steps from ``grid0`` (N,gh,gw), at most ``iterations`` (int32
    scalar), each request's size weight starting at ``lam`` (float32 scalar); requests ``done``
    (N,) bool take none (their history repeats ``loss0`` (N,)); ``moments`` is "restart" or
    "keep" (a Python string: it shapes the graph). A request whose preserved score (at this step's mask)
    falls below ``target`` goes back to its last mask that kept it, with lam times ``backoff`` and
    fresh optimiser moments (``moments="keep"``: they carry on); one whose cells all moved at most
    :data:`SETTLE_TOLERANCE` over a block of ``window`` steps without going back stops. (Sending
    back only the cells whose increase would raise the score left the others half-way down on the
    known-context models.)"""
    n = tf.shape(grid0)[0]
    window = settle_window(iterations)
    window_start = iterations - window
    take_rows = s.compact
    history0 = tf.TensorArray(tf.float32, size=iterations, element_shape=[None])

    def body(t, grid, anchor, state_a, state_b, history, last_kept, lams, since_back, active, block_anchor, last_loss, steps, kept_score):
        anchor = tf.where(tf.equal(t, window_start), grid, anchor)
        if take_rows:  # only the active requests are stepped: gathered, stepped, scattered back
            rows = tf.where(active)[:, 0]
            take = lambda x: tf.gather(x, rows)  # noqa: E731
            put = lambda full, part: tf.tensor_scatter_nd_update(full, rows[:, None], part)  # noqa: E731
        else:  # XLA needs static shapes: step every request, keep the stopped ones' values
            take = lambda x: x  # noqa: E731
            put = lambda full, part: tf.where(tf.reshape(active, [-1] + [1] * (len(full.shape) - 1)), part, full)  # noqa: E731
        part = batch.map(take)
        current = take(grid)
        new, (a, b), loss, perturbed = stepper.descend(s, current, take(lams), (take(state_a), take(state_b)), t, part)
        feasible = s.preserved(perturbed, part) >= target
        kept = tf.where(feasible[:, None, None], current, take(last_kept))
        kept_score = put(kept_score, tf.where(feasible[:, None, None], perturbed, take(kept_score)))  # f_c(x') at last_kept
        back = tf.logical_not(feasible)[:, None, None]
        grid = put(grid, tf.where(back, kept, new))
        last_kept = put(last_kept, kept)
        state_a = put(state_a, a if moments == "keep" else tf.where(back, 0.0, a))
        state_b = put(state_b, b if moments == "keep" else tf.where(back, 0.0, b))
        lams = put(lams, tf.where(feasible, take(lams), take(lams) * backoff))
        since_back = put(since_back, tf.where(feasible, take(since_back) + 1, 0))
        last_loss = put(last_loss, loss)
        steps = put(steps, take(steps) + 1)
        # Every ``window`` steps: a request whose cells all moved <= SETTLE_TOLERANCE since the
        # last check, without going back in between, has settled and stops.
        check = tf.equal(tf.math.floormod(t + 1, window), 0)
        moved = tf.reduce_max(tf.abs(grid - block_anchor), axis=[1, 2])
        settled_now = check & (moved <= SETTLE_TOLERANCE) & (since_back >= window)
        active = active & tf.logical_not(settled_now)
        block_anchor = tf.where(check, grid, block_anchor)
        return (t + 1, grid, anchor, state_a, state_b, history.write(t, last_loss), last_kept, lams, since_back,
                active, block_anchor, last_loss, steps, kept_score)

    # last_kept starts at the whole image (x' = x keeps the target; its f_c(x') is f_c(x)); the
    # first step checks the start mask and keeps it (a searched start keeps the target).
    zeros_a, zeros_b = optim.init_state(grid0)
    matrix, vector = tf.TensorShape([None, *s.grid_size]), tf.TensorShape([None])
    start = (tf.constant(0), grid0, grid0, zeros_a, zeros_b, history0, tf.ones_like(grid0), tf.fill([n], lam), tf.zeros([n], tf.int32),
             tf.logical_not(done), grid0, loss0, tf.zeros([n], tf.int32), batch.score)
    invariants = (tf.TensorShape([]), matrix, matrix, matrix, matrix, None, matrix, vector, vector, vector, matrix, vector, vector,
                  tf.TensorShape([None, *s.image_size]))
    t_end, grid, anchor, _, _, history, last_kept, _, since_back, active, _, last_loss, steps, kept_score = tf.while_loop(
        lambda t, grid, anchor, a, b, history, last_kept, lams, since_back, active, *_:
            (t < iterations) & (tf.reduce_any(active) if take_rows else True),
        body, start,
        shape_invariants=invariants)
    # A request that stopped repeats its last loss to the end of the history (under XLA the loop
    # runs every iteration, the stopped requests unchanged).
    if take_rows:  # (no step at all when every request was done at the start)
        loss_history = tf.cond(
            t_end > 0, lambda: tf.concat([history.gather(tf.range(t_end)), tf.tile(last_loss[None], [iterations - t_end, 1])], 0),
            lambda: tf.tile(last_loss[None], [iterations, 1]))
    else:
        loss_history = history.stack()
    return TargetState(grid, anchor, loss_history, last_kept, kept_score, since_back, active, steps)


def prune(s: Setup, grid, batch: Batch, s_final, target):
    """``prune=True``: the cells below the highest threshold θ that still keeps the target go to
    0 (:data:`PRUNE_STEPS` halvings), searched for the requests whose mask keeps any context (an
    empty one stays so). Returns the pruned grid and its f_c(x')."""

    def prune_rows(rows):
        g, part = tf.gather(grid, rows), batch.rows(rows)

        def keeps_pruned(theta):
            s_pruned = s.scores(pruned(g, theta), part)
            return s.preserved(s_pruned, part) >= target, s_pruned

        theta, s_rows = optim.highest_threshold(keeps_pruned, tf.gather(s_final, rows), PRUNE_STEPS)
        return [theta, s_rows]

    theta, s_final = s.on_rows(tf.reduce_max(grid, axis=[1, 2]) > 0, prune_rows, [tf.zeros([tf.shape(grid)[0]]), s_final])
    return pruned(grid, theta), s_final


def remove_unneeded(s: Setup, grid, batch: Batch, s_final, target):
    """``remove_cells=True``: leave-one-out over the kept cells (:func:`leave_one_out`), then the
    most of the least needed that still keep the target go together (:data:`REMOVE_STEPS`
    halvings). Returns the grid and its f_c(x')."""

    def remove_rows(rows):
        g, part = tf.gather(grid, rows), batch.rows(rows)
        s_rows = tf.gather(s_final, rows)
        importance = leave_one_out(s, g, part, s_rows)

        def keeps_removed(fraction):
            s_removed = s.scores(least_needed_removed(g, importance, fraction), part)
            return s.preserved(s_removed, part) >= target, s_removed

        fraction, s_rows = optim.highest_threshold(keeps_removed, s_rows, REMOVE_STEPS)
        return [least_needed_removed(g, importance, fraction), s_rows]

    grid, s_final = s.on_rows(tf.reduce_max(grid, axis=[1, 2]) > 0, remove_rows, [grid, s_final])
    return grid, s_final


def target_answer(s: Setup, result: TargetState, batch: Batch, settled, window, target, prune_cells: bool, remove_cells: bool):
    """The answer of the ``target`` formulation after :func:`target_loop`: the final mask where it
    keeps the target, else the last one that did (then not settled); then pruned and unneeded
    cells removed as asked. ``settled`` (N,) bool: no cell moved more than
    :data:`SETTLE_TOLERANCE` over the last ``window`` (int32 scalar) steps; ``target`` τ (float32
    scalar). Returns the grid (N,gh,gw), f_c(x') at it (N,H,W) and whether it settled (N,) bool."""
    (s_final,) = s.scores_of(batch, result.grid)
    fallback = s.preserved(s_final, batch) < target
    grid = tf.where(fallback[:, None, None], result.last_kept, result.grid)
    s_final = tf.where(fallback[:, None, None], result.kept_score, s_final)
    settled = (tf.logical_not(result.active) | (settled & (result.since_back >= window))) & tf.logical_not(fallback)
    if prune_cells:
        grid, s_final = prune(s, grid, batch, s_final, target)
    if remove_cells:
        grid, s_final = remove_unneeded(s, grid, batch, s_final, target)
    return grid, s_final, settled


def build_graph(get_model, image_shape, grid_size, mode, upsampling, optimizer, output, jit_compile, constrained=False,
                prune_cells=False, remove_cells=False, moments="restart"):
    """Compile the whole optimisation of a batch into one tf.function (module docstring).

    ``constrained`` builds the loop of the ``target`` formulation; without it the loop is the
    paper's, with no per-step work for a target. ``prune_cells`` (with ``constrained``) ends with the
    threshold search of ``GridSaliency(prune=True)``, and ``remove_cells`` (with ``constrained``)
    with the leave-one-out removal of ``GridSaliency(remove_cells=True)``; ``moments`` ("restart"
    or "keep"; "auto" runs the "restart" graph, then the "keep" one) is what the loop does with the
    optimiser's moments when a request goes back. The graph reads the model through ``get_model``
    (a weak reference), so the cache of compiled graphs never keeps a model alive.
    """
    height, width, channels = image_shape
    gh, gw = grid_size
    s = Setup(get_model, (height, width), (gh, gw), mode, upsampling, output, compact=not jit_compile)
    step, scale = optim.STEPS[optimizer], loss_scale(get_model())
    spec = [
        tf.TensorSpec([None, height, width, channels], tf.float32),
        tf.TensorSpec([None, height, width], tf.float32),
        tf.TensorSpec([None], tf.int32),
        tf.TensorSpec([None, height, width, channels], tf.float32),
        tf.TensorSpec([], tf.float32),  # lam (each request's first lam, with a target)
        tf.TensorSpec([], tf.float32),  # learning rate
        tf.TensorSpec([], tf.int32),  # iterations
        tf.TensorSpec([], tf.float32),  # init
        tf.TensorSpec([], tf.float32),  # momentum
        tf.TensorSpec([], tf.float32),  # target tau (used when constrained)
        tf.TensorSpec([], tf.float32),  # backoff of lam when a request loses its prediction
    ]

    @tf.function(input_signature=spec, jit_compile=jit_compile, autograph=False)
    def optimise(images, requests, class_ids, baseline, lam, learning_rate, iterations, init, momentum, target, backoff):
        n = tf.shape(images)[0]
        batch = Batch(images, requests, class_ids, baseline, s.class_score(images, class_ids))
        stepper = Stepper(step, scale, learning_rate, momentum)
        ones = tf.ones([n, gh, gw])
        if constrained:
            # init < 0 stands for "auto": search the start level (see GridSaliency.hyper_tensors).
            s_empty = s.scores(tf.zeros([n, gh, gw]), batch)  # no context (M = 0)
            search = init < 0
            kept_empty = s.preserved(s_empty, batch) >= target  # the prediction keeps τ without context
            level = tf.cond(search, lambda: start_level(s, batch, target, kept_empty), lambda: tf.fill([n], init))
            # With pruning, a request that keeps τ without context has its answer, the empty mask,
            # before the first step (the steps from M = 0 could only add context that the pruning
            # removes again): it takes no step. Without pruning it runs as before, so that runs
            # made with prune=False give the same masks.
            done = search & kept_empty if prune_cells else tf.zeros([n], tf.bool)
            grid0 = level[:, None, None] * ones
            # A request done before the first step repeats its loss at M = 0 in the history.
            loss0 = tf.where(done, obj.objective(grid0, batch.score, s_empty, requests, lam), 0.0)
            result = target_loop(s, stepper, batch, grid0, done, loss0, lam, iterations, target, backoff, moments)
            grid, anchor, loss_history, steps = result.grid, result.anchor, result.loss_history, result.steps
        else:
            grid0 = tf.fill([n], init)[:, None, None] * ones
            grid, anchor, loss_history = paper_loop(s, stepper, batch, grid0, lam, iterations)
            steps = tf.fill([n], iterations)

        # Settled: no cell moved more than SETTLE_TOLERANCE over the last window (and, with a
        # target, the request kept its mask's target through it).
        change = tf.reduce_max(tf.abs(grid - anchor), axis=[1, 2])
        settled = change <= SETTLE_TOLERANCE
        if constrained:
            grid, s_final, settled = target_answer(s, result, batch, settled, settle_window(iterations), target, prune_cells, remove_cells)
        else:
            s_final, s_empty = s.scores_of(batch, grid, tf.zeros_like(grid))  # the final mask and no context (M = 0)
        area = tf.reduce_sum(requests, axis=[1, 2])
        return {
            "saliency": upsample_grid(grid, (height, width), upsampling),
            "grid": grid,
            "loss_history": tf.transpose(loss_history),
            "final_loss": obj.objective(grid, batch.score, s_final, requests, lam),
            "preserved_score": s.preserved(s_final, batch),
            "no_context_score": s.preserved(s_empty, batch),
            "original_score": tf.reduce_sum(batch.score * requests, axis=[1, 2]) / area,
            "converged": settled,
            "mask_change": change,
            "steps": steps,
        }

    return optimise
