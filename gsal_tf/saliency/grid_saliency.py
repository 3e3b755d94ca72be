"""Grid saliency: which context makes a segmentation network predict class c inside a region?

Hoyer, Munoz, Katiyar, Khoreva, Fischer. *Grid Saliency for Context Explanations of Semantic
Segmentation*. NeurIPS 2019, arXiv:1907.13054.

Notation (shapes per request; every function here is batched over a leading axis N)

- ``x``  image (H,W,C); ``f`` the segmentation network, ``f_c(x)`` (H,W) the probability of class
  ``c`` at each pixel (outputs at another resolution are resized bilinearly to H×W);
- ``R``  request mask (H,W) in {0,1}: the pixels whose prediction is explained;
- ``M``  mask on a coarse grid (gh,gw) in [0,1], upsampled to (H,W) (see :mod:`.masks`);
- ``a``  the perturbation baseline (H,W,C) (see :mod:`.perturbation`).

Perturbation
    context mode (default):  ``x' = x∘M + p(x,R)∘(1−M)``,  ``p(x,R) = x∘R + a∘(1−R)``
    full mode:               ``x' = x∘M + a∘(1−M)``

Objective (see :mod:`.objective`), minimised over ``M ∈ [0,1]^(gh×gw)``
    ``lam * ||M||_1 / (gh*gw) + ||R ∘ max(f_c(x) − f_c(x'), 0)||_1 / ||R||_1``

The result is the smallest context (the cells of ``M`` that stay on) that keeps the prediction
inside ``R``. The optimiser is projected Adam (or SGD with momentum) starting from ``M = init``.

Two formulations (``target``):
    paper (``target = 0``): the objective above with one fixed ``lam``;
    target τ (default 0.9): the smallest context whose preserved score
    ``sum(R∘f_c(x')) / sum(R∘f_c(x))`` stays ≥ τ — the same objective, with each request's
    ``lam`` multiplied by ``backoff`` and its mask sent back to the last one that kept τ
    whenever it falls below τ; the optimisation starts at the lowest uniform level ``M = u``
    that keeps τ (``init="auto"``, bisection), and a mask that never leaves it is explained
    again with the optimiser's moments kept through the returns (``moments="auto"``).

Speed: the optimisation of a batch of requests is one call of a compiled graph (:mod:`.loop`) — a
``tf.function`` whose loop (``tf.while_loop``) runs all iterations with no Python work per step.
It is traced once per model, image shape and structural options (grid size, mode, upsampling,
optimiser, output kind, XLA; with a target, pruning, cell removal and kept moments), with a free
batch axis, and hyper-parameters (lam, learning rate, iterations, init, momentum) are tensors, so
a second call, or another explainer on the same model with other hyper-parameters, reuses it.
A new process does not trace it again: the traced graph is kept on disk (:mod:`gsal_tf.graph_cache`,
keyed by the model's architecture and the structural options; the weights are read from the model),
and small graphs run without grappler's slow passes, which cost more on a first call than they
save; large ones (over 300x300 pixels a batch) run with TensorFlow's default optimisation, which
makes them faster (:data:`gsal_tf._graphs.FULL_GRAPPLER_MIN_PIXELS`).

Example
-------
>>> import gsal_tf as gs
>>> explainer = gs.GridSaliency(model, grid_size=(8, 8))
>>> result = explainer.explain(images, request_masks, class_ids)   # (N,H,W,C), (N,H,W), (N,)
>>> result.saliency.shape, result.preserved_score   # (N,H,W) in [0,1]; ~1 when converged
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gsal_tf.config import keyword_options, read_toml
from gsal_tf.errors import GsalInputError
from gsal_tf._graphs import run_batched
from gsal_tf.explainer import Explainer, ExplanationResult, describe_baseline
from gsal_tf.saliency import optim
from gsal_tf.saliency.loop import build_graph
from gsal_tf.saliency.masks import UPSAMPLINGS
from gsal_tf.saliency.perturbation import MODES, BaselineSpec, make_baseline
from gsal_tf.validation import (
    check_choice,
    check_class_ids,
    check_class_range,
    check_grid_size,
    check_images,
    check_number,
    check_request_masks,
)

__all__ = ["Explanation", "GridSaliency", "MOMENTS", "UNIFORM_SPREAD", "cell_spread", "uniform_masks", "is_uniform",
           "take_smaller_kept"]


@dataclasses.dataclass
class Explanation(ExplanationResult):
    """The result of :meth:`GridSaliency.explain` for N requests.

    Attributes
    ----------
    saliency : float32 (N,H,W) in [0,1] — the optimised mask as applied to the image (upsampled).
    grid : float32 (N,gh,gw) in [0,1] — the optimised grid mask itself.
    loss_history : float32 (N,iterations) — the objective at each iteration (before its step).
    final_loss : float32 (N,) — the objective at the returned mask.
    preserved_score : float32 (N,) — mean f_c(x') over R divided by mean f_c(x) over R at the
        returned mask; near 1 means the kept context preserves the prediction (converged).
    no_context_score : float32 (N,) — the same ratio with all context removed (M = 0): how much
        the prediction holds without any context (the paper's "only object" check). In full mode,
        M = 0 removes the whole image.
    original_score : float32 (N,) — mean f_c(x) over R: how confidently the class is predicted
        in the request at all (explaining a class the model does not predict there is allowed,
        e.g. for error analysis, but gives an empty saliency).
    class_ids : int32 (N,)
    params : dict — the settings used (``params["method"] == "grid_saliency"``).
    seconds : float — wall time of the optimisation.
    converged : bool (N,) — whether the returned mask had settled: no grid cell moved by more
        than :data:`~gsal_tf.saliency.loop.SETTLE_TOLERANCE` over the last :func:`~gsal_tf.saliency.loop.settle_window` iterations (and, with a
        ``target``, the request did not go back to an earlier mask in them). False means a mask
        still on its way: more iterations may give another answer.
    mask_change : float32 (N,) — the largest change of a grid cell over the last
        :func:`~gsal_tf.saliency.loop.settle_window` iterations.
    steps : int32 (N,) — optimisation steps the request ran. With a ``target`` a request stops
        once settled: every :func:`~gsal_tf.saliency.loop.settle_window` steps, a request whose cells all moved at most
        :data:`~gsal_tf.saliency.loop.SETTLE_TOLERANCE` since the last such check, without going back, stops costing
        (its ``loss_history`` repeats its last loss); the batch ends when all have stopped. With
        pruning, a request that keeps the target without context runs 0 steps (its answer is
        the empty mask). In the paper's formulation every request runs ``iterations``.
    uniform : bool (N,) (property) — the mask keeps context at one level in every cell
        (:func:`uniform_masks`): it localises nothing.
    cell_spread : float32 (N,) (property) — max − min over the grid's cells.

    It extends :class:`gsal_tf.explainer.ExplanationResult`, as every explainer's result does.
    """

    grid: np.ndarray
    loss_history: np.ndarray
    final_loss: np.ndarray
    preserved_score: np.ndarray
    no_context_score: np.ndarray
    converged: np.ndarray
    mask_change: np.ndarray
    steps: np.ndarray

    @property
    def cell_spread(self) -> np.ndarray:
        """float32 (N,): max − min over each grid's cells (0: every cell at one level)."""
        return cell_spread(self.grid)

    @property
    def uniform(self) -> np.ndarray:
        """bool (N,): masks that keep context at one level in every cell (:func:`uniform_masks`):
        a faint copy of the whole context, which localises nothing."""
        return uniform_masks(self.grid)


#: What happens to the optimiser's moments when a request goes back to its last mask that kept the
#: target (``GridSaliency(moments=...)``).
MOMENTS = ("restart", "keep", "auto")


#: A grid whose cells all lie within this of each other, and that keeps context, is "uniform"
#: (:func:`uniform_masks`). On the real photos of ``benchmarks/defaults_real.py`` the masks that
#: never left their searched start measured a spread of 0.00-0.07, the ones that parted 0.19 or
#: more (``benchmarks/results/defaults-real-starts.json``, docs/defaults.md).
UNIFORM_SPREAD = 0.1


def cell_spread(grid) -> np.ndarray:
    """``max(M) − min(M)`` over the cells of grids (N,gh,gw) -> (N,) float32."""
    return _spread(tf.convert_to_tensor(grid, tf.float32)).numpy()


def uniform_masks(grid) -> np.ndarray:
    """Grids (N,gh,gw) that keep context (a cell above 0) with every cell within
    :data:`UNIFORM_SPREAD` of the others -> (N,) bool.

    Such a mask keeps the target by dimming the whole context evenly: it says the prediction
    needs the context's overall presence, not which part of it. It happens when the optimisation
    never leaves its searched start level (every step from there lost the target); on 8-bit
    networks, whose gradients are straight-through surrogates, keeping the optimiser's moments
    parts them (``GridSaliency(moments=...)``; docs/defaults.md, "Masks that do not move").
    """
    return is_uniform(tf.convert_to_tensor(grid, tf.float32)).numpy()


def _spread(grid: tf.Tensor) -> tf.Tensor:
    return tf.reduce_max(grid, axis=[1, 2]) - tf.reduce_min(grid, axis=[1, 2])


def is_uniform(grid: tf.Tensor) -> tf.Tensor:
    """:func:`uniform_masks` on a tensor (N,gh,gw) -> bool tensor (N,) (inside graphs)."""
    return (tf.reduce_max(grid, axis=[1, 2]) > 0) & (_spread(grid) < UNIFORM_SPREAD)


def take_smaller_kept(first: dict, rows, again: dict, target) -> dict:
    """``moments="auto"``: the outputs ``first`` (each (N,...)) with its rows ``rows`` (k,),
    explained ``again`` (each (k,...)) with the moments kept, replaced where that mask keeps the
    ``target`` with less context (a smaller ``||M||_1``) -> dict of tensors (N,...)."""
    rows = tf.convert_to_tensor(rows, tf.int32)
    before = tf.reduce_sum(tf.gather(first["grid"], rows), axis=[1, 2])
    smaller = (tf.reduce_sum(again["grid"], axis=[1, 2]) < before) & (again["preserved_score"] >= target)
    replaced = tf.boolean_mask(rows, smaller)[:, None]
    return {name: tf.tensor_scatter_nd_update(values, replaced, tf.boolean_mask(again[name], smaller)) for name, values in first.items()}


class GridSaliency(Explainer):
    """Grid saliency context explanations (Hoyer et al., NeurIPS 2019) for a segmentation model.

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K). Any resolution h×w is
        resized bilinearly to H×W. Keras models are called with ``training=False``.
    grid_size : int or (int, int), default (8, 8)
        Rows and columns of the mask grid. Each cell covers (H/rows)×(W/cols) pixels.
        On held-out TextureMNIST (64×64; ``benchmarks/settings/defaults-grid.toml`` →
        ``benchmarks/results/defaults-heldout-grid.json``; CBL strong / weak, MobileNetV2 then
        Xception): 8×8 0.967 / 0.983, 0.887 / 0.908; 16×16 0.957 / 0.972, 0.877 / 0.892;
        4×4 0.968 / 0.955, 0.908 / 0.926. 4×4 cells (16 px) fit the benchmark's bias tiles
        (image halves) exactly and help the weakly biased networks, but lose 0.028 on the
        strong Xception and would give a 513×513 photo 128-px cells: 8×8 stays.
    iterations : int, default 40
        Optimisation steps after the start-level search; with a ``target``, the most a request
        runs: a request whose mask has settled stops (``Explanation.steps``). Why 40: with
        ``init="auto"`` the masks start where the prediction is about to be lost, so no step is
        spent fading the whole context together, and the pruning (``prune``) removes what is
        left faint at the end; on held-out TextureMNIST (table under ``target``) 40 pruned steps
        at learning rate 0.025 localise the bias at least as well as 50 unpruned ones at 0.02 on
        all four biased networks. Stopping a request as soon as its mask moves little while it
        bounces on the target (instead of only after a window without going back) cost 0.23 CBL
        on the strong MobileNetV2 (0.965 → 0.737 at 50 iterations): a request that bounces is
        still finding its context. A mask still moving at the end is flagged
        (``Explanation.converged`` False; the CLI warns): on the hand-built two-patch model of
        ``tests/test_known_context.py`` 50 steps are not enough and 100 are.
    lam : float, default 16.0
        Weight of the mask size term ``||M||_1/(gh*gw)``: larger asks for smaller masks. With a
        ``target`` it is each request's first weight, halved (``backoff``) each time the request
        loses the target, so it sets how hard context is pushed out, not where the answer ends.
        Held-out tuning chose 16 over 8 and 32 (table under ``target``). In the paper's
        formulation (``target=0``) it is the one weight that trades size against score: 1.0 up
        in gsal-tf 0.2 (:meth:`paper`), 8 or 16 in the benchmark's tuning.
    baseline : float, tuple, "mean", "blur", "noise", array or callable, default 0.0
        The perturbation ``a`` that replaces removed pixels (see :mod:`.perturbation`).
    mode : "context" or "full", default "context"
        "context" never perturbs the request region (the paper's context explanation);
        "full" perturbs the whole image.
    learning_rate : float, default 0.025
        Step size of the optimiser (in mask units, [0,1]). Adam moves every cell by about this
        much per step at first, all cells together: at 0.1 the whole context fades within a few
        steps and the prediction is lost before the cells it needs are told apart. From the
        searched start with 40 steps, 0.025 localised better than 0.02 and 0.03 on held-out data
        (0.03 lost 0.018 CBL on the strong Xception; table under ``target``); a cosine decay from
        0.05 lost 0.05-0.06 CBL.
    optimizer : "adam" or "sgd", default "adam"
        Projected Adam, or projected SGD with ``momentum``.
    momentum : float, default 0.9
        Momentum of "sgd" (unused by Adam).
    init : "auto" or float in [0, 1], default "auto"
        Initial value of every grid cell. "auto" with a ``target``: the lowest uniform level
        whose mask keeps the target (0 when the prediction keeps it without context), found by
        bisection in :data:`~gsal_tf.saliency.loop.SEARCH_STEPS` forward passes of the batch; without a target, 1.0.
        1.0 starts from the unperturbed image and spends ``1/learning_rate`` steps before any
        cell can reach 0 (at 25 iterations every lam gave chance-level CBL). A fixed level
        below 1 with a target starts there, and a request that loses the target at the start
        goes back to the whole image.
    upsampling : "nearest" or "bilinear", default "nearest"
        How the grid becomes a per-pixel mask (see :mod:`.masks`).
    blur_sigma : float, default 5.0
        σ in pixels of the "blur" baseline.
    output : "probabilities", "logits" or None, default None
        What the model returns (None: what it declares — logits for a keras-hub segmenter —
        else probabilities; :func:`gsal_tf.model_calls.declared_output`); a one-channel output is a
        binary segmenter (classes 0 = background, 1 = foreground). Softmax (sigmoid for one channel) is applied to logits.
    batch_size : int, default 16
        Requests optimised together in one graph call; more are split into batches.
    jit_compile : bool, default False
        Compile the optimisation loop with XLA.
    seed : int, default 0
        Seed of the "noise" baseline (the optimisation itself is deterministic).
    target : float in [0, 1], default 0.9
        The formulation. τ > 0 (the default) asks for the smallest context that keeps the
        preserved score at least τ: a request whose preserved score falls below τ goes back to
        its last mask that kept τ, its ``lam`` is multiplied by ``backoff`` and its optimiser
        moments restart (see ``moments``); the returned mask keeps τ (the final one, or the last that did). A mask
        is then empty only when the prediction holds without context. 0 is the paper's
        formulation (:meth:`paper`): one fixed ``lam`` trades mask size against the score, and
        a large ``lam`` removes context until the prediction is lost and the mask is empty
        ("collapsed") although the network needs context.

        Why these defaults: measured on held-out biased requests of the zoo's paper-law models
        (``python benchmarks/defaults.py MNIST.npz --settings S.toml --requests 60``; test_seed
        4242, never the evaluation split 1907; request = the digit; CBL counts a request without
        salient context as chance, 0.5, as the paper averages; MobileNetV2 / Xception), and on
        the real networks and photos of ``benchmarks/defaults_real.py`` (README, "Defaults"):

        ======================================================  =============  =============  =========
        setting                                                 CBL strong     CBL weak       collapsed
        ======================================================  =============  =============  =========
        paper, lam 1, 100 it. (0.2 default; 40 requests)        0.872 / 0.791  0.831 / 0.805  0,4,1,1
        paper, lam 8, 100 it. (40 requests)                     0.889 / 0.861  —              7,10,—,—
        τ 0.9, lam 8, lr 0.03, init 1, 100 it. (40 req.)        0.950 / 0.941  0.886 / 0.897  0
        τ 0.9, lam 16, lr 0.03, auto, 50 it.                    0.967 / 0.947  0.892 / 0.895  0
        τ 0.9, lam 8, lr 0.02, auto, 50 it.                     0.960 / 0.964  0.890 / 0.895  0
        τ 0.9, lam 16, lr 0.02, auto, 50 it.                    0.965 / 0.978  0.881 / 0.899  0
        τ 0.9, lam 32, lr 0.02, auto, 50 it.                    0.962 / 0.979  0.882 / 0.907  0
        τ 0.9, lam 16, lr 0.02, auto, 45 it.                    0.963 / 0.977  0.865 / 0.893  0
        pruned: τ 0.9, lam 16, lr 0.02, auto, 50 it.            0.969 / 0.984  0.896 / 0.905  0
        pruned: τ 0.9, lam 16, lr 0.02, auto, 45 it.            0.968 / 0.983  0.892 / 0.907  0
        pruned: τ 0.9, lam 16, lr 0.02, auto, 40 it.            0.965 / 0.984  0.883 / 0.897  0
        pruned: τ 0.9, lam 16, lr 0.03, auto, 40 it.            0.973 / 0.965  0.892 / 0.896  0
        pruned: τ 0.9, lam 16, lr 0.025, auto, 40 it.           0.967 / 0.983  0.887 / 0.908  0
        pruned: τ 0.9, lam 8, lr 0.025, auto, 40 it.            0.961 / 0.960  0.897 / 0.891  0
        pruned: τ 0.9, lam 32, lr 0.025, auto, 40 it.           0.968 / 0.975  0.894 / 0.901  0
        **the same, lam 16, moments "auto"**                    0.967 / 0.983  0.887 / 0.913  0
        the same, moments "keep"                                0.961 / 0.975  0.878 / 0.882  0
        ======================================================  =============  =============  =========

        60 requests per model where not said otherwise; the pruned rows:
        ``benchmarks/settings/defaults-{pruning,lam}.toml`` →
        ``benchmarks/results/defaults-heldout-{pruning,lam}.json``; the moments rows:
        ``defaults-moments.toml`` → ``defaults-heldout-moments.json``. lam 16 has the best mean
        CBL of the four networks among the pruned settings (0.936; lam 32 0.935, lam 8 0.927)
        and runs 40 of the 50 iterations of the unpruned setting above it; the default (bold)
        adds ``moments="auto"`` (see ``moments``).
        Around the default (``benchmarks/settings/defaults-target.toml`` →
        ``benchmarks/results/defaults-heldout-target.json``): τ 0.95 keeps more context off the
        bias (0.957 / 0.929 strong, 0.846 / 0.845 weak); τ 0.85 localises slightly better
        (0.974 / 0.986, 0.899 / 0.910) but lets the preserved score fall to 0.85 (median
        0.916 on the weak MobileNetV2), below the 0.9 the real-photo cases accept — τ 0.9 is
        the lowest such level. ``backoff`` 0.25 loses 0.005-0.031; 0.75 gives 0.973 / 0.989,
        0.883 / 0.911 (mean 0.939 against 0.936: within the spread of 60 requests, and lower on
        the weak MobileNetV2), so 0.5 stays.
    backoff : float in (0, 1], default 0.5
        With a ``target``: the factor on a request's ``lam`` each time it loses its prediction.
    remove_cells : bool, default False
        With a ``target`` (the paper's formulation removes nothing): after the pruning, each
        kept cell is removed alone (one forward pass of the batch per kept cell of its largest
        mask: leave-one-out), the cells are ordered by how much the preserved score drops without them, and the most of the
        least needed cells that still keep the target are removed together (a bisection of
        :data:`~gsal_tf.saliency.loop.REMOVE_STEPS` forward passes on their number). The optimisation ends in a mask
        whose every cell it kept together; some of them the prediction does not need once the
        others are there, and this finds them. On held-out TextureMNIST
        (``python benchmarks/cbl_diagnosis.py MNIST.npz``; ``benchmarks/results/cbl-diagnosis-*.json``)
        it raised CBL from 0.967 / 0.983, 0.887 / 0.908 to 0.978 / 0.987, 0.921 / 0.921 with
        smaller masks (weak MobileNetV2: 18.9 → 13.1 cells of 64), the median preserved score
        falling towards the target (0.932-0.952); at 35 iterations 0.980 / 0.987, 0.913 / 0.920
        in 0.48 of the paper's 100-iteration time (evaluation split: 0.984 / 0.987, 0.908 /
        0.942). Off by default: it costs a forward pass per kept cell, and a photo's grid keeps
        dozens — on the real photos of ``benchmarks/defaults_real.py`` it took 1.5-2.5× the
        time of the defaults (docs/defaults.md, "Removing unneeded cells").
    prune : bool, default True
        With a ``target``: the returned mask keeps only its cells at or above the highest
        threshold θ (to 1/16, :data:`~gsal_tf.saliency.loop.PRUNE_STEPS` bisection steps, one forward pass of the batch
        each) at which the preserved score still keeps the target; the cells below θ become 0
        (``θ = 0``: nothing pruned). The optimisation leaves cells that only faded part-way;
        they carry context the prediction does not need, and a user reading the map sees them.
        On held-out TextureMNIST pruning raised CBL by 0.004-0.015 at the same iterations
        (weak MobileNetV2 0.881 → 0.896 at 50). The returned preserved score is the pruned
        mask's (≥ ``target``). Without a target (the paper's formulation) nothing is pruned.
        With pruning, a request whose prediction keeps the target without context (searched
        start ``init="auto"``) takes no step: its answer is the empty mask, which the steps from
        M = 0 and the pruning used to reach again (held-out results unchanged; a 513×513 photo
        of such a request: 0.32 s instead of 3.6 s). The searches run only on the requests that
        need them (not under XLA, which needs static shapes).
    moments : "auto", "restart" or "keep", default "auto"
        With a target: what Adam's moments do when a request goes back to its last mask that
        kept the target. "restart" zeroes them, so the next step is sign-like: every cell moves
        by about the learning rate. On a smooth network that is what parts the cells: on the
        hand-built model of ``tests/test_target_formulation.py`` whose prediction weighs the
        context by a ramp, restarts keep the heaviest columns (kept share 0.50), kept moments
        carry the first steps' push on every cell through the returns and end at one level
        (0.71). On the 8-bit networks, whose gradients are straight-through surrogates, the
        searched start sits on a cliff: one step of ±0.0125 per cell along the gradient drops the
        aeroplane photo's preserved score from 0.91 to 0.72, every step goes back, and the mask
        never leaves its start (uniform: :func:`uniform_masks`). "keep" carries the moments
        through the returns; they average the gradients at the start and at the failed steps,
        the score holds along that direction, and the mask parts. "auto" restarts them, then
        explains each request whose mask came back uniform again with them kept, and returns
        that answer where it keeps the target with less context (:func:`take_smaller_kept`).
        Measured (``benchmarks/settings/defaults-moments.toml`` →
        ``benchmarks/results/defaults-heldout-moments.json``, ``defaults-real-moments.toml`` →
        ``defaults-real-moments.json``): on held-out TextureMNIST "auto" re-explains a few masks
        of the weak networks (CBL 0.967 / 0.983, 0.887 / 0.913 against the restarted
        0.967 / 0.983, 0.887 / 0.908); "keep" alone loses 0.006-0.026 there. On the real photos "auto" parts the aeroplane (kept share 0.250 →
        0.208, cell spread 0.00 → 0.49) and the dog's error request (0.969 → 0.489, as the
        paper's formulation finds); the Cityscapes frame's near-uniform mask stays, as the kept
        moments' answer keeps more (0.137 against 0.128). It costs a second optimisation, for
        the uniform masks only. Runs made before the option restarted the moments.
    """

    method = "grid_saliency"
    #: ``prune``, ``remove_cells`` and ``moments`` came after gsal-tf 0.2; runs made before them
    #: neither pruned nor removed cells, and restarted the moments at every return.
    ADDED_PARAMS = {"prune": False, "remove_cells": False, "moments": "restart"}

    def __init__(
        self,
        model: keras.Model | Callable,
        grid_size: int | tuple[int, int] = (8, 8),
        iterations: int = 40,
        lam: float = 16.0,
        baseline: BaselineSpec = 0.0,
        mode: str = "context",
        learning_rate: float = 0.025,
        optimizer: str = "adam",
        momentum: float = 0.9,
        init: float | str = "auto",
        upsampling: str = "nearest",
        blur_sigma: float = 5.0,
        output: str | None = None,
        batch_size: int = 16,
        jit_compile: bool = False,
        seed: int = 0,
        target: float = 0.9,
        backoff: float = 0.5,
        prune: bool = True,
        remove_cells: bool = False,
        moments: str = "auto",
    ):
        super().__init__(model, output=output, batch_size=batch_size, jit_compile=jit_compile)
        check_choice("mode", mode, MODES)
        check_choice("optimizer", optimizer, optim.OPTIMIZERS)
        check_choice("upsampling", upsampling, UPSAMPLINGS)
        check_number("iterations", iterations, minimum=1, integer=True)
        check_number("lam", lam, minimum=0.0)
        check_number("learning_rate", learning_rate, minimum=0.0, strict=True)
        check_number("momentum", momentum, minimum=0.0)
        if not (isinstance(init, str) and init == "auto"):
            check_number("init", init, minimum=0.0, maximum=1.0)
        check_number("blur_sigma", blur_sigma, minimum=0.0, strict=True)
        check_number("target", target, minimum=0.0, maximum=1.0)
        check_number("backoff", backoff, minimum=0.0, maximum=1.0, strict=True)
        check_choice("moments", moments, MOMENTS)
        for name, flag in (("prune", prune), ("remove_cells", remove_cells)):
            if not isinstance(flag, (bool, np.bool_)):
                raise GsalInputError(f"{name} must be True or False, got {flag!r}")
        self.grid_size = check_grid_size(grid_size, None)
        self.iterations = int(iterations)
        self.lam = float(lam)
        self.baseline = baseline
        self.mode = mode
        self.learning_rate = float(learning_rate)
        self.optimizer = optimizer
        self.momentum = float(momentum)
        self.init = init if isinstance(init, str) else float(init)
        self.upsampling = upsampling
        self.blur_sigma = float(blur_sigma)
        self.seed = int(seed)
        self.target = float(target)
        self.backoff = float(backoff)
        self.prune = bool(prune)
        self.remove_cells = bool(remove_cells)
        self.moments = moments

    #: The paper's formulation and the defaults of gsal-tf 0.2: one fixed ``lam``, no target,
    #: every cell starting at 1, 100 iterations (:meth:`paper`; ``configs/explain/paper.toml``).
    PAPER_OPTIONS = {"target": 0.0, "lam": 1.0, "init": 1.0, "iterations": 100, "learning_rate": 0.03}

    @classmethod
    def paper(cls, model, **options) -> "GridSaliency":
        """Grid saliency with the paper's fixed-``lam`` objective (:data:`PAPER_OPTIONS`);
        ``options`` override any of them (e.g. ``lam=8.0``, as the benchmark's tuning does)."""
        return cls(model, **{**cls.PAPER_OPTIONS, **options})

    def _method_params(self) -> dict:
        return {
            "grid_size": list(self.grid_size),
            "iterations": self.iterations,
            "lam": self.lam,
            "baseline": describe_baseline(self.baseline),
            "mode": self.mode,
            "learning_rate": self.learning_rate,
            "optimizer": self.optimizer,
            "momentum": self.momentum,
            "init": self.init,
            "upsampling": self.upsampling,
            "blur_sigma": self.blur_sigma,
            "seed": self.seed,
            "target": self.target,
            "backoff": self.backoff,
            "prune": self.prune,
            "remove_cells": self.remove_cells,
            "moments": self.moments,
        }

    def explain(self, images, request_masks, class_ids) -> Explanation:
        """Explain the prediction of ``class_ids`` inside ``request_masks``.

        Parameters
        ----------
        images : float array (N,H,W,C), in the scale the model expects.
        request_masks : array (N,H,W) of 0/1 (or bool): the pixels whose prediction is explained.
        class_ids : int or int array (N,): the class explained for each request.

        Returns
        -------
        :class:`Explanation`
        """
        images = check_images(images)
        n, height, width, channels = images.shape
        check_grid_size(self.grid_size, (height, width))
        requests = check_request_masks(request_masks, images, self.mode)
        classes = check_class_ids(class_ids, n)
        check_class_range(classes, self.num_classes(images))
        baseline = make_baseline(self.baseline, images, blur_sigma=self.blur_sigma, seed=self.seed)

        graph = self.compiled_graph((height, width, channels))
        merged, seconds = run_batched(graph, (images, requests, classes, baseline), self.hyper_tensors(), self.batch_size)
        if self.reexplains_uniform:
            seconds += self._part_uniform_masks(merged, (images, requests, classes, baseline))
        return Explanation(
            saliency=merged["saliency"],
            grid=merged["grid"],
            loss_history=merged["loss_history"],
            final_loss=merged["final_loss"],
            preserved_score=merged["preserved_score"],
            no_context_score=merged["no_context_score"],
            converged=merged["converged"].astype(bool),
            mask_change=merged["mask_change"],
            steps=merged["steps"],
            original_score=merged["original_score"],
            class_ids=classes,
            params=self.params,
            seconds=seconds,
        )

    def _part_uniform_masks(self, merged: dict, inputs: tuple) -> float:
        """``moments="auto"``: the requests whose mask came back uniform (:func:`uniform_masks`)
        are explained again with the moments kept (:func:`take_smaller_kept`); ``merged`` is
        updated in place. Returns the seconds it took."""
        redo = np.flatnonzero(uniform_masks(merged["grid"]))
        if redo.size == 0:
            return 0.0
        again, seconds = run_batched(self.keeping_moments().compiled_graph(inputs[0].shape[1:]), [np.asarray(v)[redo] for v in inputs],
                                     self.hyper_tensors(), self.batch_size)
        merged.update({name: value.numpy() for name, value in take_smaller_kept(merged, redo, again, self.target).items()})
        return seconds

    @property
    def reexplains_uniform(self) -> bool:
        """Whether ``explain`` runs the second pass of ``moments="auto"`` (only with a target)."""
        return self.moments == "auto" and self.target > 0

    def keeping_moments(self) -> "GridSaliency":
        """This explainer with ``moments="keep"`` (the second pass of ``moments="auto"``)."""
        keeping = copy.copy(self)
        keeping.moments = "keep"
        return keeping

    def hyper_tensors(self) -> tuple:
        """(lam, learning_rate, iterations, init, momentum, target, backoff) as the scalar tensors
        the graph takes."""
        return (
            tf.constant(self.lam, tf.float32),
            tf.constant(self.learning_rate, tf.float32),
            tf.constant(self.iterations, tf.int32),
            tf.constant(self._init_value(), tf.float32),
            tf.constant(self.momentum, tf.float32),
            tf.constant(self.target, tf.float32),
            tf.constant(self.backoff, tf.float32),
        )

    def _init_value(self) -> float:
        """``init`` as the graph takes it: -1 for "auto" with a target (search the start level),
        1 for "auto" without one (the paper's start), else the level."""
        if self.init == "auto":
            return -1.0 if self.target > 0 else 1.0
        return self.init

    @classmethod
    def options_from_toml(cls, path) -> dict:
        """The ``[explain]`` table of a TOML config (see ``configs/explain/``) as keyword arguments."""
        table = read_toml(path).get("explain")
        if not isinstance(table, dict):
            raise GsalInputError(f"{path} has no [explain] table")
        return keyword_options(table, cls.__init__, f"[explain] of {path}", exclude=("model",))

    # -- the compiled graph ----------------------------------------------------------------------

    def _graph_key(self) -> tuple:
        # target > 0 builds the constrained loop; its value and backoff are graph inputs.
        return (self.grid_size, self.mode, self.upsampling, self.optimizer, self.output, self.jit_compile, self.target > 0,
                self.prune and self.target > 0, self.remove_cells and self.target > 0,
                "keep" if self.moments == "keep" and self.target > 0 else "restart")

    def _build_graph(self, get_model, image_shape):
        return build_graph(get_model, image_shape, *self._graph_key())


def __getattr__(name: str):
    # SETTLE_*, SEARCH_STEPS, PRUNE_STEPS, REMOVE_STEPS, pruned, least_needed_removed,
    # settle_window: gsal_tf.saliency.loop (gsal_tf._deprecated warns).
    from gsal_tf import _deprecated

    return _deprecated.moved(__name__, name)
