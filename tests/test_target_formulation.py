"""The default formulation (the smallest context that keeps a target score) against the paper's
fixed-lam objective, on hand-built models whose right answer is known, and the start-level search
against a NumPy reference."""

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import gsal_tf as gs
from gsal_tf.models.known_context import brightness_model, known_context_image, known_context_model
from gsal_tf.saliency import loop, optim

from test_known_context import SHAPE, TARGET, assert_explains, box_mask

PATCHES = [(0, 48, 8, 64), (56, 0, 64, 16)]  # two patches the prediction needs together


def case(patches=PATCHES, combine="all"):
    model = known_context_model(SHAPE, patches, TARGET, combine=combine)
    image = known_context_image(SHAPE, patches)
    request = box_mask([TARGET]).astype(np.float32)
    return model, image[None], request[None]


def context_kept(result, request):
    return float((result.saliency[0] * (1 - request[0])).sum())


@pytest.mark.parametrize("thresholds", [[0.3, 0.0, 0.97, 1.0, 0.5], [0.031, 0.032, 0.7, 0.999, 0.2]])
def test_lowest_level_matches_a_numpy_bisection(thresholds):
    thresholds = np.array(thresholds, np.float32)
    steps = 5
    level = optim.lowest_level(lambda u: u >= tf.constant(thresholds), tf.constant(thresholds <= 0), steps).numpy()
    grid = np.arange(1, 2**steps + 1) / 2**steps  # the levels bisection can return, besides 0
    expected = np.array([0.0 if t <= 0 else grid[grid >= t].min() for t in thresholds])
    np.testing.assert_allclose(level, expected)


def test_a_large_lam_collapses_the_paper_objective_but_not_the_target():
    model, image, request = case()
    paper = gs.GridSaliency.paper(model, lam=64.0).explain(image, request, [1])
    # The paper's objective: the size term outweighs the lost prediction, the mask empties
    # although the prediction needs the patches (no-context score ~0).
    assert paper.no_context_score[0] < 0.05
    assert context_kept(paper, request) < 1.0 and paper.preserved_score[0] < 0.5
    kept = gs.GridSaliency(model, lam=64.0).explain(image, request, [1])
    assert kept.preserved_score[0] >= 0.9
    assert_explains(kept, PATCHES)


def test_defaults_keep_exactly_the_patches_and_the_target():
    model, image, request = case()
    result = gs.GridSaliency(model).explain(image, request, [1])
    assert_explains(result, PATCHES)
    assert result.preserved_score[0] >= gs.GridSaliency(model).target


def test_the_mask_is_empty_when_the_prediction_needs_no_context():
    # "any" with a patch inside the request: the request's own pixels carry the prediction.
    model, image, request = case(patches=[(28, 28, 36, 36)], combine="any")
    result = gs.GridSaliency(model).explain(image, request, [1])
    assert result.no_context_score[0] >= 0.9
    assert context_kept(result, request) == 0.0
    assert result.preserved_score[0] >= 0.9


def test_the_paper_formulation_by_name():
    model, image, request = case()
    paper = gs.GridSaliency.paper(model)
    assert (paper.target, paper.lam, paper.iterations, paper.init) == (0.0, 1.0, 100, 1.0)
    assert gs.GridSaliency.paper(model, lam=4.0).lam == 4.0
    from_config = gs.GridSaliency(model, **gs.GridSaliency.options_from_toml(Path(__file__).resolve().parents[1] / "configs" / "explain" / "paper.toml"))
    assert from_config.params == paper.params
    assert_explains(paper.explain(image, request, [1]), PATCHES)


def test_init_is_a_level_or_auto():
    model, _, _ = case()
    with pytest.raises(gs.GsalInputError, match="init"):
        gs.GridSaliency(model, init="search")
    with pytest.raises(gs.GsalInputError, match="init"):
        gs.GridSaliency(model, init=1.5)
    # An explicit start level with a target: a start that loses the prediction goes back to the
    # whole image and still ends keeping the target.
    model, image, request = case()
    result = gs.GridSaliency(model, init=0.0).explain(image, request, [1])
    assert result.preserved_score[0] >= 0.9


def test_a_settled_request_stops_and_leaves_the_others_unchanged():
    # combine "any" with one patch inside the request and one in the context: on the image with
    # the inner patch the prediction needs no context (empty mask, settled at the first check);
    # with the inner patch dark it needs the outer patch.
    patches = [(28, 28, 36, 36), (0, 0, 16, 16)]
    model, image, request = case(patches=patches, combine="any")
    needs_context = image.copy()
    needs_context[0, 28:36, 28:36] = 0.0
    images, requests = np.concatenate([image, needs_context]), np.concatenate([request, request])
    explainer = gs.GridSaliency(model)
    together = explainer.explain(images, requests, [1, 1])
    window = loop.settle_window(explainer.iterations)
    # With pruning (the default) the request that keeps the target without context has its
    # answer, the empty mask, before the first step: it takes none.
    assert together.steps[0] == 0 and together.converged[0]
    assert context_kept(together, request) == 0.0 and together.preserved_score[0] >= 0.9
    assert np.allclose(together.loss_history[0], together.loss_history[0, 0])  # its loss at M = 0, repeated
    assert together.steps[1] > window
    alone = explainer.explain(needs_context, request, [1])
    assert int(alone.steps[0]) == int(together.steps[1])
    np.testing.assert_allclose(alone.grid[0], together.grid[1], atol=1e-5)
    assert_explains(alone, [patches[1]])
    empty_alone = explainer.explain(image, request, [1])  # a batch with no step at all
    assert empty_alone.steps[0] == 0 and context_kept(empty_alone, request) == 0.0
    np.testing.assert_allclose(empty_alone.loss_history[0], together.loss_history[0], atol=1e-6)
    # Without pruning it steps from M = 0 and stops once its mask has settled, as before.
    unpruned = gs.GridSaliency(model, prune=False).explain(images, requests, [1, 1])
    assert unpruned.steps[0] == window and unpruned.converged[0]  # empty, settled at the first check
    assert context_kept(unpruned, request) == 0.0
    assert np.allclose(unpruned.loss_history[0, window:], unpruned.loss_history[0, window - 1])  # stopped: loss repeats
    # Under XLA (static shapes) every request runs the searches and the pruning, and the result
    # is selected: the same answer as the compact graph's gathered rows.
    jit = gs.GridSaliency(model, jit_compile=True).explain(images, requests, [1, 1])
    np.testing.assert_allclose(jit.grid, together.grid, atol=1e-3)
    np.testing.assert_allclose(jit.preserved_score, together.preserved_score, atol=1e-3)
    assert context_kept(jit, request) == 0.0


def test_the_paper_formulation_runs_every_iteration():
    model, image, request = case()
    result = gs.GridSaliency.paper(model, iterations=30).explain(image, request, [1])
    assert result.steps.tolist() == [30]


@pytest.mark.parametrize("steps", [1, 3, 4])
def test_highest_threshold_matches_a_numpy_bisection(steps):
    """Per request, the largest k/2**steps below its limit (limits 0.05, 0.3, 0.5, 0.99), with
    the value ``keeps`` returned there (here 10 θ)."""
    limits = np.array([0.05, 0.3, 0.5, 0.99], np.float32)
    theta, value = optim.highest_threshold(lambda t: (t <= tf.constant(limits), 10.0 * t[:, None]), tf.zeros([4, 1]), steps)
    grid = np.arange(2 ** steps) / 2 ** steps
    expected = np.array([grid[grid <= limit].max() for limit in limits])
    np.testing.assert_allclose(theta.numpy(), expected)
    np.testing.assert_allclose(value.numpy()[:, 0], 10 * expected)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_least_needed_removed_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    grid = np.where(rng.random((4, 3, 5)) < 0.6, rng.random((4, 3, 5)), 0.0).astype(np.float32)
    importance = rng.standard_normal((4, 3, 5)).astype(np.float32)
    importance[0, 0, :2] = importance[0, 0, 2]  # ties go in row-major order
    fraction = np.array([0.0, 0.3, 0.75, 1.0], np.float32)
    got = loop.least_needed_removed(tf.constant(grid), tf.constant(importance), tf.constant(fraction)).numpy()
    expected = grid.copy()
    for b in range(4):
        kept = np.flatnonzero(grid[b].ravel() > 0)
        order = kept[np.argsort(importance[b].ravel()[kept], kind="stable")]
        flat = expected[b].ravel()
        flat[order[:int(np.floor(fraction[b] * len(kept)))]] = 0.0
        expected[b] = flat.reshape(3, 5)
    np.testing.assert_array_equal(got, expected)


def test_remove_cells_keeps_one_of_two_contexts_that_each_suffice():
    # combine "any": the prediction in the request holds with either patch. The optimisation keeps
    # both (they are alike to it), the leave-one-out removal finds that one is enough.
    patches = [(0, 0, 16, 16), (48, 48, 64, 64)]
    model, image, request = case(patches=patches, combine="any")
    both = gs.GridSaliency(model).explain(image, request, [1])
    assert_explains(both, patches)
    one = gs.GridSaliency(model, remove_cells=True).explain(image, request, [1])
    assert one.preserved_score[0] >= 0.9 and one.params["remove_cells"] is True
    kept = [float(one.saliency[0][box_mask([p])].mean()) for p in patches]
    assert sorted(kept)[0] == 0.0 and sorted(kept)[1] > 0.75, kept
    assert_explains(one, [patches[int(np.argmax(kept))]])
    assert ((one.grid[0] > 0) <= (both.grid[0] > 0)).all()  # only removes cells
    jit = gs.GridSaliency(model, remove_cells=True, jit_compile=True).explain(image, request, [1])
    np.testing.assert_allclose(jit.grid, one.grid, atol=1e-3)


def test_remove_cells_must_be_a_bool():
    model, _, _ = case()
    with pytest.raises(gs.GsalInputError, match="remove_cells must be True or False"):
        gs.GridSaliency(model, remove_cells="yes")


def _graded_context_model(shape, request, gain):
    """A model whose prediction everywhere is sigmoid(gain·(s − 0.5)), s = the context's mean
    brightness weighted by a ramp from 0.05 (left column) to 1 (right column): the smallest
    context that keeps the prediction is the heaviest (rightmost) columns."""
    height, width = shape
    weights = np.linspace(0.05, 1.0, width)[None, :] * np.ones((height, 1)) * (1 - request)

    class GradedContext(keras.layers.Layer):
        def call(self, x):
            s = tf.reduce_sum(x[..., 0] * weights, axis=[1, 2]) / weights.sum()
            p = tf.sigmoid(gain * (s - 0.5))[:, None, None, None] * tf.ones_like(x[..., :1])
            return tf.concat([1 - p, p], -1)

    inputs = keras.Input((height, width, 1))
    return keras.Model(inputs, GradedContext()(inputs))


def test_restarting_the_moments_parts_a_graded_context_and_keeping_them_can_leave_it_uniform():
    # The optimum keeps the right-hand columns whole: restarting the moments at every return
    # finds it; keeping them (moments="keep") carries the first steps' push on every cell through
    # the returns, and here the mask stays at one level, which Explanation.uniform reports; "auto"
    # re-runs only uniform masks, so it returns the restarted answer (docs/defaults.md, "Masks
    # that do not move").
    request = np.zeros((64, 64), np.float32)
    request[24:40, 24:40] = 1
    model = _graded_context_model((64, 64), request, gain=10.0)
    image = np.ones((1, 64, 64, 1), np.float32)
    default = gs.GridSaliency(model, moments="restart").explain(image, request[None], [1])
    columns = default.grid[0].mean(axis=0)
    assert default.preserved_score[0] >= 0.9 and not default.uniform[0]
    assert columns[-3:].min() > 0.9 and columns[:3].max() == 0.0, columns
    kept = gs.GridSaliency(model, moments="keep").explain(image, request[None], [1])
    assert kept.preserved_score[0] >= 0.9 and kept.params["moments"] == "keep"
    assert kept.uniform[0] and kept.cell_spread[0] < 0.1 and kept.grid[0].mean() > default.grid[0].mean()
    auto = gs.GridSaliency(model, moments="auto").explain(image, request[None], [1])
    np.testing.assert_array_equal(auto.grid, default.grid)


def test_kept_moments_find_the_two_patches_and_old_runs_read_as_restarting():
    model, image, request = case()
    result = gs.GridSaliency(model, moments="keep").explain(image, request, [1])
    assert_explains(result, PATCHES)
    assert result.preserved_score[0] >= 0.9 and not result.uniform[0]
    jit = gs.GridSaliency(model, moments="keep", jit_compile=True).explain(image, request, [1])
    np.testing.assert_allclose(jit.grid, result.grid, atol=1e-3)
    # Runs recorded before the option existed restarted the moments at every return.
    assert gs.GridSaliency.ADDED_PARAMS["moments"] == "restart"
    with pytest.raises(gs.GsalInputError, match="moments"):
        gs.GridSaliency(model, moments="sometimes")


def test_uniform_masks_against_numpy():
    from gsal_tf.saliency.grid_saliency import UNIFORM_SPREAD, cell_spread, uniform_masks

    rng = np.random.default_rng(3)
    grids = np.stack([
        np.full((12, 12), 0.25),  # one level everywhere: the frozen start
        0.12 + rng.uniform(0, 0.07, (12, 12)),  # within the spread
        np.zeros((12, 12)),  # no context kept: empty, not uniform
        np.pad(np.ones((2, 2)), 5),  # two kept cells: localises
        0.3 + rng.uniform(0, 0.2, (12, 12)),  # parted
    ]).astype(np.float32)
    spread = grids.max(axis=(1, 2)) - grids.min(axis=(1, 2))
    np.testing.assert_allclose(cell_spread(grids), spread, rtol=1e-6)
    np.testing.assert_array_equal(uniform_masks(grids), (grids.max(axis=(1, 2)) > 0) & (spread < UNIFORM_SPREAD))
    np.testing.assert_array_equal(uniform_masks(grids), [True, True, False, False, False])


def test_auto_explains_a_uniform_mask_again_with_the_moments_kept():
    # A network that reads the mean brightness of the whole image, one pixel requested: every
    # step from the searched start lowers all cells together and loses the target, so with
    # restarted moments the mask never leaves its start (uniform). "auto" explains it again with
    # the moments kept and returns that answer when it keeps the target with less context.
    model = brightness_model((32, 32, 3))
    image = np.full((2, 32, 32, 3), 0.9, np.float32)
    request = np.zeros((2, 32, 32), np.float32)
    request[:, 0, 0] = 1
    request[1, 8:24, 8:24] = 1  # the request's cells move: not uniform, not explained again
    restart = gs.GridSaliency(model, grid_size=4, moments="restart").explain(image, request, [1, 1])
    keep = gs.GridSaliency(model, grid_size=4, moments="keep").explain(image, request, [1, 1])
    auto = gs.GridSaliency(model, grid_size=4, moments="auto").explain(image, request, [1, 1])
    assert restart.uniform.tolist() == [True, False]
    assert keep.grid[0].sum() < restart.grid[0].sum() and keep.preserved_score[0] >= 0.9
    for name in ("grid", "saliency", "preserved_score", "no_context_score", "steps", "loss_history"):
        np.testing.assert_array_equal(getattr(auto, name)[0], getattr(keep, name)[0], err_msg=name)
        np.testing.assert_array_equal(getattr(auto, name)[1], getattr(restart, name)[1], err_msg=name)
    assert auto.params["moments"] == "auto"


def test_take_smaller_kept_against_numpy():
    from gsal_tf.saliency.grid_saliency import take_smaller_kept

    rng = np.random.default_rng(5)
    first = {"grid": rng.random((5, 2, 3)).astype(np.float32), "preserved_score": rng.uniform(0.9, 1, 5).astype(np.float32),
             "converged": rng.random(5) < 0.5}
    rows = np.array([0, 2, 4])
    again = {"grid": first["grid"][rows] * np.array([0.5, 1.5, 0.5], np.float32)[:, None, None],
             "preserved_score": np.array([0.95, 0.99, 0.85], np.float32), "converged": np.array([True, False, True])}
    out = {k: v.numpy() for k, v in take_smaller_kept(first, rows, again, 0.9).items()}
    # row 0: smaller and keeps the target -> replaced; row 2: larger; row 4: below the target.
    expected = {k: v.copy() for k, v in first.items()}
    for k in expected:
        expected[k][0] = again[k][0]
    for k in expected:
        np.testing.assert_array_equal(out[k], expected[k], err_msg=k)
