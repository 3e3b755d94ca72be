"""Occlusion and RISE against brute-force NumPy references on a model whose request score is a
known function of context patches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import gsal_tf as gs
from gsal_tf.attributions import RISE, Occlusion
from gsal_tf.errors import GsalInputError

H, W, C = 12, 10, 2
PATCHES = [(0, 0, 3, 4), (8, 5, 12, 10)]  # (y0, x0, y1, x1), end-exclusive
PATCH_WEIGHTS = np.array([3.0, -2.0])
LOCAL = np.array([0.7, -0.4])  # per-pixel term: a perturbed request pixel would change the score
BIAS = 0.3


@keras.saving.register_keras_serializable(package="gsal_tests")
class PatchLogits(keras.layers.Layer):
    """Logits (N,H,W,2): class 0 is 0, class 1 is ``x(p)·LOCAL + sum_k w_k·mean(x over patch_k) + BIAS``."""

    def __init__(self, local=True, **kwargs):
        super().__init__(**kwargs)
        self.local = local

    def call(self, x):
        z = BIAS + sum(w * tf.reduce_mean(x[:, y0:y1, x0:x1, :], axis=[1, 2, 3]) for w, (y0, x0, y1, x1) in zip(PATCH_WEIGHTS, PATCHES))
        z = tf.broadcast_to(z[:, None, None], tf.shape(x)[:3])
        if self.local:
            z = z + tf.reduce_sum(x * LOCAL, axis=-1)
        return tf.stack([tf.zeros_like(z), z], axis=-1)

    def get_config(self):
        return {**super().get_config(), "local": self.local}


def patch_model(local=True):
    x = keras.Input((H, W, C))
    return keras.Model(x, PatchLogits(local)(x))


def numpy_score(x, request, local=True):
    """s_1(x) of the patch model for one image (H,W,C): the mean class-1 probability over R."""
    z = BIAS + sum(w * x[y0:y1, x0:x1].mean() for w, (y0, x0, y1, x1) in zip(PATCH_WEIGHTS, PATCHES))
    z = z + (x @ LOCAL if local else 0.0)
    p = 1.0 / (1.0 + np.exp(-np.broadcast_to(z, (H, W))))
    return float((p * request).sum() / request.sum())


def numpy_perturb(x, keep, request, baseline, mode):
    removed = x * request[..., None] + baseline * (1 - request[..., None]) if mode == "context" else baseline
    return x * keep[..., None] + removed * (1 - keep[..., None])


@pytest.fixture(scope="module")
def model():
    return patch_model()


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(3, H, W, C)).astype(np.float32)
    requests = np.zeros((3, H, W), np.float32)
    requests[0, 4:8, 3:7] = 1
    requests[1, 1:3, 1:3] = 1  # overlaps the first patch: its pixels there must stay
    requests[2, 9:, 6:] = 1
    return images, requests, np.array([1, 1, 1])


def reference_occlusion(images, requests, window, stride, baseline, mode, signed):
    """Brute force: every window applied in NumPy, drops averaged per pixel over covering windows."""
    (wh, ww), (sh, sw) = window, stride
    ys = sorted(set(range(0, H - wh + 1, sh)) | {H - wh})
    xs = sorted(set(range(0, W - ww + 1, sw)) | {W - ww})
    out = []
    for x, r in zip(images.astype(np.float64), requests.astype(np.float64)):
        a = np.full_like(x, baseline)
        s0 = numpy_score(x, r)
        total, cover = np.zeros((H, W)), np.zeros((H, W))
        for y0 in ys:
            for x0 in xs:
                win = np.zeros((H, W))
                win[y0:y0 + wh, x0:x0 + ww] = 1
                drop = s0 - numpy_score(numpy_perturb(x, 1 - win, r, a, mode), r)
                total += (drop if signed else max(drop, 0.0)) * win
                cover += win
        raw = total / cover
        out.append(raw * (1 - r) if mode == "context" else raw)
    return np.stack(out)


@pytest.mark.parametrize("mode, signed, window, stride", [
    ("context", False, (3, 4), (2, 3)),   # steps that do not end at the edge: a last flush window
    ("context", True, 4, 4),
    ("full", False, (2, 2), (1, 2)),
])
def test_occlusion_matches_brute_force(mode, signed, window, stride, model, batch):
    images, requests, classes = batch
    res = Occlusion(model, window=window, stride=stride, mode=mode, signed=signed, output="logits", masks_per_step=5).explain(images, requests, classes)
    pair = lambda v: (v, v) if np.isscalar(v) else v  # noqa: E731
    expected = reference_occlusion(images, requests, pair(window), pair(stride), 0.0, mode, signed)
    np.testing.assert_allclose(res.raw, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(expected).max() > 0.01  # the patches matter: the test compares real drops
    peak = np.abs(expected).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(res.saliency, expected / peak, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(res.original_score, [numpy_score(x, r) for x, r in zip(images, requests)], rtol=1e-5)
    if not signed:
        assert res.saliency.min() >= 0
    else:
        assert res.saliency.min() < 0  # the negative patch weight makes some removals help


def test_occlusion_drop_of_one_window_on_one_patch_is_analytic(batch):
    """A window covering exactly the first patch, nothing else: its drop is known in closed form."""
    images, _, _ = batch
    x = images[:1]
    request = np.zeros((1, H, W), np.float32)
    request[0, 5:7, 0:2] = 1
    model = patch_model(local=False)
    res = Occlusion(model, window=(3, 4), stride=(3, 4), mode="context", output="logits").explain(x, request, 1)
    m0, m1 = x[0, 0:3, 0:4].mean(), x[0, 8:12, 5:10].mean()
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    # the window at (0,0) zeroes patch 0 (mean -> 0); it is the only window over those pixels
    drop = sig(BIAS + 3.0 * m0 - 2.0 * m1) - sig(BIAS - 2.0 * m1)
    np.testing.assert_allclose(res.raw[0, 0:3, 0:4], max(drop, 0.0), rtol=1e-5)


def reference_rise(images, requests, masks, keep_probability, baseline, mode, centre):
    out = []
    n = len(masks)
    for x, r in zip(images.astype(np.float64), requests.astype(np.float64)):
        a = np.full_like(x, baseline)
        scores = np.array([numpy_score(numpy_perturb(x, m, r, a, mode), r) for m in masks.astype(np.float64)])
        weights = scores - scores.mean() if centre else scores
        raw = np.tensordot(weights, masks, axes=1) / (n * keep_probability)
        out.append(raw * (1 - r) if mode == "context" else raw)
    return np.stack(out)


@pytest.mark.parametrize("mode, centre, baseline", [("context", True, 0.0), ("context", False, 0.5), ("full", True, 0.0)])
def test_rise_matches_numpy_with_the_same_masks(mode, centre, baseline, model, batch):
    images, requests, classes = batch
    rise = RISE(model, masks=37, cell_size=4, keep_probability=0.4, centre=centre, baseline=baseline, mode=mode,
                seed=5, output="logits", masks_per_step=8)  # 37 masks: the last step is padded
    res = rise.explain(images, requests, classes)
    masks = rise.masks((H, W))
    assert masks.shape == (37, H, W)
    expected = reference_rise(images, requests, masks, 0.4, baseline, mode, centre)
    np.testing.assert_allclose(res.raw, expected, rtol=1e-4, atol=1e-6)
    shown = np.maximum(expected, 0) if centre else expected
    np.testing.assert_allclose(res.saliency, shown / shown.max(axis=(1, 2), keepdims=True), rtol=1e-4, atol=1e-5)
    assert res.saliency.min() >= 0 and res.params["method"] == "rise"


def test_rise_masks_are_upsampled_shifted_grids(model):
    """The masks against a NumPy bilinear upsampling (half-pixel centres) and crop of the same grids."""
    rise = RISE(model, masks=200, cell_size=3, keep_probability=0.3, seed=2)
    grids, shifts = rise.mask_parameters((H, W))
    assert grids.shape == (200, 5, 5) and set(np.unique(grids)) <= {0.0, 1.0}  # ceil(12/3)+1, ceil(10/3)+1
    assert shifts.min() >= 0 and shifts.max() < 3
    assert abs(grids.mean() - 0.3) < 0.03  # 5,000 cells: 4 standard deviations

    def upsample(grid, s):
        def axis_weights(cells):
            pos = np.clip((np.arange(cells * s) + 0.5) / s - 0.5, 0, cells - 1)
            lo = np.floor(pos).astype(int)
            hi = np.minimum(lo + 1, cells - 1)
            w = np.zeros((cells * s, cells))
            w[np.arange(cells * s), lo] += 1 - (pos - lo)
            w[np.arange(cells * s), hi] += pos - lo
            return w
        return axis_weights(grid.shape[0]) @ grid @ axis_weights(grid.shape[1]).T

    expected = np.stack([upsample(g, 3)[dy:dy + H, dx:dx + W] for g, (dy, dx) in zip(grids, shifts)])
    np.testing.assert_allclose(rise.masks((H, W)), expected, atol=1e-6)
    again = RISE(model, masks=200, cell_size=3, keep_probability=0.3, seed=2).masks((H, W))
    other = RISE(model, masks=200, cell_size=3, keep_probability=0.3, seed=3).masks((H, W))
    np.testing.assert_allclose(again, expected, atol=1e-6)  # the seed decides the masks
    assert not np.allclose(other, expected)


@pytest.mark.parametrize("method, kwargs", [(Occlusion, {"window": 3, "stride": 2}), (RISE, {"masks": 40, "cell_size": 3})])
def test_context_mode_never_perturbs_the_request(method, kwargs, batch):
    """A model that reads only each pixel itself: perturbing the context cannot change the score
    inside R, so in context mode every masked copy scores as the image and the map is zero; in
    full mode the request's own pixels are masked and the map is not."""
    images, requests, classes = batch
    x = keras.Input((H, W, C))
    readout = keras.layers.Conv2D(2, 1)
    local_only = keras.Model(x, readout(x))
    readout.set_weights([np.stack([np.zeros(C), np.ones(C)], axis=-1)[None, None].astype(np.float32), np.zeros(2, np.float32)])
    context = method(local_only, output="logits", **kwargs).explain(images, requests, classes)
    full = method(local_only, output="logits", mode="full", **kwargs).explain(images, requests, classes)
    np.testing.assert_allclose(context.raw, 0.0, atol=1e-6)
    assert np.all(context.saliency == 0)
    assert np.abs(full.raw).max() > 1e-3


@pytest.mark.parametrize("method, kwargs", [(Occlusion, {"window": 3, "stride": 2}), (RISE, {"masks": 20, "cell_size": 3})])
def test_a_batch_equals_one_by_one(method, kwargs, model, batch):
    images, requests, classes = batch
    together = method(model, output="logits", batch_size=2, masks_per_step=3, **kwargs).explain(images, requests, classes)
    alone = [method(model, output="logits", **kwargs).explain(images[i:i + 1], requests[i:i + 1], classes[i]) for i in range(3)]
    np.testing.assert_allclose(together.raw, np.concatenate([a.raw for a in alone]), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(together.saliency, np.concatenate([a.saliency for a in alone]), rtol=1e-5, atol=1e-6)
    assert together.class_ids.tolist() == [1, 1, 1] and together.seconds > 0


def test_settings_do_not_retrace(model, batch, traces):
    images, requests, classes = batch
    Occlusion(model, window=3, stride=2, output="logits").explain(images, requests, classes)
    RISE(model, masks=10, cell_size=3, output="logits").explain(images, requests, classes)
    before = traces()
    Occlusion(model, window=(4, 2), stride=(1, 2), signed=True, masks_per_step=7, output="logits").explain(images[:2], requests[:2], classes[:2])
    RISE(model, masks=13, cell_size=5, keep_probability=0.7, centre=False, seed=4, output="logits").explain(images, requests, classes)
    assert traces() == before


def test_registered_by_name_and_found_on_the_known_context_model():
    """``make_explainer`` finds both; on an AND model (every patch needed) both maps lie on the patches."""
    from gsal_tf.models.known_context import known_context_image, known_context_model

    shape, patches, target = (24, 24, 1), [(0, 0, 6, 6), (18, 16, 24, 22)], (9, 9, 15, 15)
    model = known_context_model(shape, patches, target, num_classes=2, combine="all", gain=8.0)
    image = known_context_image(shape, patches, seed=0)
    request = np.zeros((1, 24, 24), np.float32)
    request[0, 9:15, 9:15] = 1
    on_patches = np.zeros((24, 24), bool)
    for y0, x0, y1, x1 in patches:
        on_patches[y0:y1, x0:x1] = True
    occlusion = gs.make_explainer("occlusion", model, window=2, stride=2).explain(image[None], request, 1)
    assert np.all(occlusion.saliency[0][~on_patches] == 0) and occlusion.saliency[0][on_patches].min() > 0.5
    rise = gs.make_explainer("rise", model, masks=300, cell_size=6).explain(image[None], request, 1)
    # the mean saliency on the patches is far above the mean elsewhere in the context
    context = request[0] == 0
    assert rise.saliency[0][on_patches].mean() > 3 * rise.saliency[0][context & ~on_patches].mean()
    assert "occlusion" in gs.METHODS and "rise" in gs.METHODS


@pytest.mark.parametrize("make, match", [
    (lambda m: Occlusion(m, window=(13, 2), output="logits"), "window .* larger than the image"),
    (lambda m: Occlusion(m, window=0), "window must be a positive int"),
    (lambda m: Occlusion(m, window=3, stride=4), "stride .* larger than the window"),
    (lambda m: Occlusion(m, signed="no"), "signed"),
    (lambda m: Occlusion(m, mode="outside"), "mode"),
    (lambda m: RISE(m, masks=0), "masks must be an int >= 1"),
    (lambda m: RISE(m, keep_probability=0.0), r"keep_probability must be in \(0, 1\]"),
    (lambda m: RISE(m, keep_probability=1.5), r"keep_probability must be in \(0, 1\]"),
    (lambda m: RISE(m, cell_size=11, output="logits"), "cell_size 11 is larger than the image"),
    (lambda m: RISE(m, cell_size=2.5), "cell_size must be an int"),
    (lambda m: RISE(m, masks_per_step=0), "masks_per_step"),
    (lambda m: RISE(m, seed=-1), "seed"),
])
def test_bad_arguments_say_what_to_fix(make, match, model, batch):
    images, requests, classes = batch
    with pytest.raises(GsalInputError, match=match):
        make(model).explain(images, requests, classes)


def test_context_mode_needs_context(model, batch):
    images, _, classes = batch
    with pytest.raises(GsalInputError, match="covers the whole image"):
        Occlusion(model, window=3, output="logits").explain(images, np.ones((3, H, W)), classes)


def test_the_graph_cache_covers_the_new_methods(tmp_path, monkeypatch, batch, traces):
    """Their source is part of every cache key, and a graph loaded from disk gives the traced result."""
    from gsal_tf import graph_cache
    from gsal_tf.methods import METHOD_CLASSES

    modules = {path.split(":")[0] for path in METHOD_CLASSES.values()} | {"gsal_tf.attributions.masking"}
    assert modules <= set(graph_cache.GRAPH_MODULES)
    monkeypatch.setenv("GSAL_GRAPH_CACHE", "1")
    monkeypatch.setenv("GSAL_HOME", str(tmp_path / "home"))
    images, requests, classes = batch
    x = keras.Input((H, W, C))
    conv = keras.layers.Conv2D(2, 3, padding="same")
    model = keras.Model(x, conv(keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)))
    twin = keras.Model.from_config(model.get_config())
    twin.set_weights(model.get_weights())
    for method, kwargs in ((Occlusion, {"window": 3}), (RISE, {"masks": 20, "cell_size": 3})):
        traced = method(model, output="logits", **kwargs).explain(images, requests, classes)
        before = traces()
        loaded = method(twin, output="logits", **kwargs).explain(images, requests, classes)
        assert traces() == before  # from disk, not traced again
        np.testing.assert_allclose(loaded.raw, traced.raw, atol=1e-6)
        assert np.abs(traced.raw).max() > 0
    assert len(list((tmp_path / "home" / "graphs").glob("*.pb"))) == 2
