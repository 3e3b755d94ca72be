"""GridSaliency as a user calls it: batching, determinism, tracing, dtypes and bad input."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gsal_tf as gs
from gsal_tf.models.known_context import known_context_image, known_context_model

SHAPE = (32, 32, 1)
TARGET = (12, 12, 20, 20)


@pytest.fixture(scope="module")
def model():
    return known_context_model(SHAPE, [(0, 0, 8, 8), (24, 24, 32, 32)], TARGET, num_classes=3, combine="all")


def requests(n):
    r = np.zeros((n,) + SHAPE[:2], np.float32)
    r[:, TARGET[0]:TARGET[2], TARGET[1]:TARGET[3]] = 1
    return r


def images(n, patches=((0, 0, 8, 8), (24, 24, 32, 32))):
    return np.stack([known_context_image(SHAPE, list(patches), seed=i) for i in range(n)])


def test_result_fields_and_shapes(model):
    res = gs.GridSaliency(model, grid_size=(4, 4), iterations=30).explain(images(2), requests(2), [1, 1])
    assert res.saliency.shape == (2, 32, 32) and res.saliency.dtype == np.float32
    assert res.grid.shape == (2, 4, 4)
    assert res.loss_history.shape == (2, 30)
    assert res.saliency.min() >= 0 and res.saliency.max() <= 1
    for field in ("final_loss", "preserved_score", "no_context_score", "original_score"):
        assert getattr(res, field).shape == (2,)
    assert res.loss_history[:, -1].mean() < res.loss_history[:, 0].mean()
    assert res.params["grid_size"] == [4, 4] and len(res) == 2


def test_batched_equals_one_by_one_and_seed_is_deterministic(model):
    x = images(5)
    r = requests(5)
    # Give the requests different classes and regions so the batch is not five copies.
    r[3] = 0
    r[3, 14:18, 14:18] = 1
    classes = np.array([1, 1, 0, 1, 1])
    explainer = gs.GridSaliency(model, grid_size=(4, 4), iterations=40, baseline="noise", seed=7, batch_size=2)
    batched = explainer.explain(x, r, classes)
    singles = [gs.GridSaliency(model, grid_size=(4, 4), iterations=40, baseline="noise", seed=7).explain(x[i:i + 1], r[i:i + 1], classes[i:i + 1]) for i in range(5)]
    np.testing.assert_allclose(batched.grid, np.concatenate([s.grid for s in singles]), atol=1e-4)
    np.testing.assert_allclose(batched.loss_history, np.concatenate([s.loss_history for s in singles]), atol=1e-4)
    again = explainer.explain(x, r, classes)
    np.testing.assert_array_equal(batched.grid, again.grid)


def test_second_call_and_new_explainer_do_not_retrace(traces):
    # A model of its own: the module's model may hold graphs other tests built, which would not be traced again.
    model = known_context_model(SHAPE, [(0, 0, 8, 8), (24, 24, 32, 32)], TARGET, num_classes=3, combine="all")
    x, r = images(3), requests(3)
    restart = {"grid_size": (4, 4), "moments": "restart"}
    gs.GridSaliency(model, iterations=5, **restart).explain(x, r, [1, 1, 1])
    before = traces()
    gs.GridSaliency(model, iterations=5, **restart).explain(x, r, [1, 1, 1])
    # Other hyper-parameters and another batch size reuse the same graph.
    gs.GridSaliency(model, iterations=9, lam=0.2, learning_rate=0.05, init=0.8, **restart).explain(x[:2], r[:2], 1)
    assert traces() == before
    # A structural change (grid size, what the moments do) is a new graph.
    gs.GridSaliency(model, grid_size=(2, 2), iterations=5, moments="restart").explain(x, r, [1, 1, 1])
    assert traces() == before + 1
    gs.GridSaliency(model, grid_size=(2, 2), iterations=5, moments="keep").explain(x, r, [1, 1, 1])
    assert traces() == before + 2
    # moments="auto" runs those two graphs (the second only for uniform masks): nothing new.
    gs.GridSaliency(model, grid_size=(2, 2), iterations=5, moments="auto").explain(x, r, [1, 1, 1])
    assert traces() == before + 2


def test_logits_and_low_resolution_outputs(model):
    x, r = images(1), requests(1)
    ref = gs.GridSaliency(model, grid_size=(4, 4), iterations=40).explain(x, r, [1])

    def logits_model(batch):
        return tf.math.log(model(batch) + 1e-9)

    via_logits = gs.GridSaliency(logits_model, grid_size=(4, 4), iterations=40, output="logits").explain(x, r, [1])
    np.testing.assert_allclose(via_logits.grid, ref.grid, atol=0.05)

    def low_res(batch):  # (N,16,16,K) outputs, resized back to the input by the explainer
        return tf.nn.avg_pool2d(model(batch), 2, 2, "VALID")

    res = gs.GridSaliency(low_res, grid_size=(4, 4), iterations=40).explain(x, r, [1])
    np.testing.assert_allclose(res.grid, ref.grid, atol=0.05)


def test_mixed_float16_policy_gives_the_same_explanation():
    x, r = images(2), requests(2)
    ref_model = known_context_model(SHAPE, [(0, 0, 8, 8), (24, 24, 32, 32)], TARGET)
    ref = gs.GridSaliency(ref_model, grid_size=(4, 4), iterations=40).explain(x, r, [1, 1])
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = known_context_model(SHAPE, [(0, 0, 8, 8), (24, 24, 32, 32)], TARGET)
        res = gs.GridSaliency(half, grid_size=(4, 4), iterations=40).explain(x, r, [1, 1])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert res.saliency.dtype == np.float32 and np.all(np.isfinite(res.loss_history))
    np.testing.assert_allclose(res.grid, ref.grid, atol=0.05)
    assert res.preserved_score.min() > 0.9


def test_xla_jit_compile_matches(model):
    x, r = images(2), requests(2)
    ref = gs.GridSaliency(model, grid_size=(4, 4), iterations=30).explain(x, r, 1)
    jit = gs.GridSaliency(model, grid_size=(4, 4), iterations=30, jit_compile=True).explain(x, r, 1)
    np.testing.assert_allclose(jit.grid, ref.grid, atol=1e-3)


@pytest.mark.parametrize(
    "case, message",
    [
        ("nan", "NaN or inf"),
        ("empty", "empty"),
        ("whole", "whole image"),
        ("class", "out of range"),
        ("rank3", r"images\[None\]"),
        ("mask_shape", "request masks have shape"),
        ("mask_values", "only 0 and 1"),
        ("size", "cannot take images"),
        ("grid", "finer than the image"),
    ],
)
def test_bad_input_raises_one_clear_error(model, case, message):
    x, r, c = images(2), requests(2), np.array([1, 1])
    kwargs = {}
    if case == "nan":
        x[1, 3, 3, 0] = np.nan
    elif case == "empty":
        r[1] = 0
    elif case == "whole":
        r[0] = 1
    elif case == "class":
        c = np.array([1, 3])
    elif case == "rank3":
        x = x[0]
    elif case == "mask_shape":
        r = r[:, :16]
    elif case == "mask_values":
        r = r * 0.5
    elif case == "size":
        x = np.zeros((2, 16, 16, 1), np.float32)
        r = r[:, :16, :16]
        r[:, 2, 2] = 1
    elif case == "grid":
        kwargs["grid_size"] = (64, 64)
    with pytest.raises(gs.GsalInputError, match=message):
        gs.GridSaliency(model, iterations=2, **kwargs).explain(x, r, c)


def test_bad_models_and_options():
    x, r = images(1), requests(1)
    with pytest.raises(gs.GsalInputError, match=r"\(N,h,w,K\)"):
        gs.GridSaliency(lambda b: tf.reduce_mean(b, axis=[1, 2]), iterations=2).explain(x, r, [0])
    with pytest.raises(gs.GsalInputError, match="logits"):
        gs.GridSaliency(lambda b: tf.concat([b, -b], -1) * 10, iterations=2).explain(x, r, [0])
    with pytest.raises(gs.GsalInputError, match="mode"):
        gs.GridSaliency(lambda b: b, mode="everything")
    with pytest.raises(gs.GsalInputError, match="iterations"):
        gs.GridSaliency(lambda b: b, iterations=0)
    with pytest.raises(gs.GsalInputError, match="baseline"):
        model = known_context_model(SHAPE, [(0, 0, 8, 8)], TARGET)
        gs.GridSaliency(model, baseline="zeros", iterations=2).explain(x, r, [1])


def test_graph_cache_does_not_keep_a_deleted_model_alive():
    import gc
    import weakref

    model = known_context_model(SHAPE, [(0, 0, 8, 8)], TARGET)
    gs.GridSaliency(model, grid_size=(4, 4), iterations=2).explain(images(1), requests(1), [1])
    from gsal_tf import _graphs

    assert _graphs._GRAPHS.get(model)  # its graphs are cached, under the model weakly
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None
