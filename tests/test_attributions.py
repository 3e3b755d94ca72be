"""Gradient comparison methods against closed-form gradients, completeness and known-context models."""

import gc
import weakref

import keras
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.attributions import IntegratedGradients, SmoothGrad, VanillaGradients
from gsal_tf.errors import GsalInputError
from gsal_tf.methods import METHODS as METHOD_NAMES
from gsal_tf.explainer import ExplanationResult
from gsal_tf.models.known_context import known_context_image, known_context_model

H, W, C, K = 6, 5, 2, 3
METHODS = (VanillaGradients, SmoothGrad, IntegratedGradients)


def linear_weights(seed=1):
    """Logits z(p) = x(p)·A + mean_q x(q)·V + b, so every logit sees its pixel and the whole image."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(C, K)).astype(np.float32), rng.normal(size=(C, K)).astype(np.float32), rng.normal(size=K).astype(np.float32)


def linear_model(probabilities: bool):
    a, v, b = linear_weights()
    x = keras.Input((H, W, C))
    local = keras.layers.Conv2D(K, 1, use_bias=True)
    pooled = keras.layers.Dense(K, use_bias=False)
    z = local(x) + keras.layers.Reshape((1, 1, K))(pooled(keras.layers.GlobalAveragePooling2D()(x)))
    out = keras.layers.Softmax()(z) if probabilities else z
    model = keras.Model(x, out)
    local.set_weights([a[None, None], b])
    pooled.set_weights([v])
    return model


def analytic(images, requests, classes):
    """(d s_c / d x (N,H,W,C), s_c(x) (N,)) of the linear model, in NumPy."""
    a, v, b = (w.astype(np.float64) for w in linear_weights())
    x = images.astype(np.float64)
    z = x @ a + (x.mean(axis=(1, 2)) @ v)[:, None, None, :] + b
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    grads, scores = [], []
    for n, c in enumerate(classes):
        pc = p[n, ..., c]
        jac = pc[..., None] * (np.eye(K)[c] - p[n])  # dP_c(p)/dz_k(p), (H,W,K)
        area = requests[n].sum()
        local = requests[n][..., None] * (jac @ a.T) / area
        pooled = (requests[n][..., None] * jac).sum(axis=(0, 1)) @ v.T / (area * H * W)
        grads.append(local + pooled)
        scores.append((pc * requests[n]).sum() / area)
    return np.stack(grads), np.array(scores)


@pytest.fixture(scope="module")
def logit_model():
    return linear_model(probabilities=False)


@pytest.fixture(scope="module")
def prob_model():
    return linear_model(probabilities=True)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, H, W, C)).astype(np.float32)
    requests = np.zeros((4, H, W), np.float32)
    requests[0, 1:3, 1:4] = 1
    requests[1, 4:, :2] = 1
    requests[2] = 1  # a whole-image request is allowed for gradients
    requests[3, 0, 0] = 1
    return images, requests, np.array([0, 2, 1, 2])


@pytest.mark.parametrize("kind", ["logits", "probabilities"])
def test_vanilla_gradients_match_the_analytic_gradient(kind, logit_model, prob_model, batch):
    images, requests, classes = batch
    model = logit_model if kind == "logits" else prob_model
    grad, score = analytic(images, requests, classes)
    signed = VanillaGradients(model, output=kind, absolute=False).explain(images, requests, classes)
    np.testing.assert_allclose(signed.raw, grad.sum(-1), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(signed.original_score, score, rtol=1e-5)
    res = VanillaGradients(model, output=kind)(images, requests, classes)
    np.testing.assert_allclose(res.raw, np.abs(grad).sum(-1), rtol=1e-4, atol=1e-7)
    peak = np.abs(grad).sum(-1).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(res.saliency, np.abs(grad).sum(-1) / peak, rtol=1e-4, atol=1e-6)
    assert res.saliency.dtype == np.float32 and res.saliency.shape == (4, H, W)
    assert res.saliency.min() >= 0 and np.allclose(res.saliency.max(axis=(1, 2)), 1)


def test_integrated_gradients_completeness(logit_model, batch):
    images, requests, classes = batch
    for baseline in (0.0, "mean"):
        res = IntegratedGradients(logit_model, steps=64, baseline=baseline, output="logits", absolute=False).explain(images, requests, classes)
        np.testing.assert_allclose(res.raw.sum(axis=(1, 2)), res.original_score - res.baseline_score, rtol=2e-3, atol=1e-5)
    # the end-point scores are the analytic ones
    _, score = analytic(images, requests, classes)
    _, score0 = analytic(np.zeros_like(images), requests, classes)
    res = IntegratedGradients(logit_model, steps=8, output="logits", absolute=False).explain(images, requests, classes)
    np.testing.assert_allclose(res.original_score, score, rtol=1e-5)
    np.testing.assert_allclose(res.baseline_score, score0, rtol=1e-5)


def test_integrated_gradients_single_step_is_gradient_at_the_midpoint_times_delta(logit_model, batch):
    images, requests, classes = batch
    grad, _ = analytic(images / 2, requests, classes)  # midpoint of the path from 0
    res = IntegratedGradients(logit_model, steps=1, output="logits", absolute=False).explain(images, requests, classes)
    np.testing.assert_allclose(res.raw, (images * grad).sum(-1), rtol=1e-4, atol=1e-7)


def test_smoothgrad_without_noise_is_vanilla_and_seeded(logit_model, batch):
    images, requests, classes = batch
    vanilla = VanillaGradients(logit_model, output="logits").explain(images, requests, classes)
    quiet = SmoothGrad(logit_model, samples=5, noise=0.0, output="logits").explain(images, requests, classes)
    np.testing.assert_allclose(quiet.raw, vanilla.raw, rtol=1e-5, atol=1e-8)
    noisy = SmoothGrad(logit_model, samples=5, noise=0.2, seed=3, output="logits")
    first, again = noisy.explain(images, requests, classes), noisy.explain(images, requests, classes)
    np.testing.assert_array_equal(first.raw, again.raw)
    other = SmoothGrad(logit_model, samples=5, noise=0.2, seed=4, output="logits").explain(images, requests, classes)
    assert not np.allclose(first.raw, other.raw)
    assert not np.allclose(first.raw, vanilla.raw)


def test_smoothgrad_averagings_match_the_analytic_gradient_at_the_same_noisy_images(logit_model, batch):
    """absolute: mean of sum_c |g_i|; signed: sum_c |mean g_i|; squared: mean of sum_c g_i²."""
    import tensorflow as tf

    images, requests, classes = batch
    samples, noise, seed = 3, 0.2, 7
    sigma = noise * (images.max(axis=(1, 2, 3), keepdims=True) - images.min(axis=(1, 2, 3), keepdims=True))
    grads = []
    for i in range(samples):  # the noise fields SmoothGrad draws: stateless Philox seeded (seed, i)
        field = tf.random.stateless_normal([1, H, W, C], seed=[seed, i], dtype=tf.float32, alg="philox").numpy()
        grads.append(analytic(images + sigma * field, requests, classes)[0])
    grads = np.stack(grads)  # (samples,N,H,W,C)
    expected = {
        "absolute": np.abs(grads).sum(-1).mean(0),
        "signed": np.abs(grads.mean(0)).sum(-1),
        "squared": (grads**2).sum(-1).mean(0),
    }
    for averaging, want in expected.items():
        res = SmoothGrad(logit_model, samples=samples, noise=noise, seed=seed, averaging=averaging, output="logits").explain(images, requests, classes)
        np.testing.assert_allclose(res.raw, want, rtol=2e-4, atol=1e-8)
        assert res.params["averaging"] == averaging and res.saliency.min() >= 0
    assert not np.allclose(expected["signed"], expected["absolute"])
    signed_mean = SmoothGrad(logit_model, samples=samples, noise=noise, seed=seed, averaging="signed", absolute=False, output="logits")
    np.testing.assert_allclose(signed_mean.explain(images, requests, classes).raw, grads.mean(0).sum(-1), rtol=2e-4, atol=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_batched_equals_one_by_one(method, logit_model, batch):
    images, requests, classes = batch
    kwargs = {"samples": 4} if method is SmoothGrad else {"steps": 4} if method is IntegratedGradients else {}
    batched = method(logit_model, batch_size=3, output="logits", **kwargs).explain(images, requests, classes)
    singles = [method(logit_model, output="logits", **kwargs).explain(images[i:i + 1], requests[i:i + 1], classes[i]) for i in range(4)]
    np.testing.assert_allclose(batched.raw, np.concatenate([s.raw for s in singles]), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(batched.saliency, np.concatenate([s.saliency for s in singles]), rtol=1e-5, atol=1e-6)
    assert batched.class_ids.tolist() == classes.tolist() and len(batched) == 4
    assert batched.params["method"] == method.method and batched.seconds > 0


def test_hyper_parameters_do_not_retrace(logit_model, batch, traces):
    images, requests, classes = batch
    SmoothGrad(logit_model, samples=2, output="logits").explain(images, requests, classes)
    IntegratedGradients(logit_model, steps=2, output="logits").explain(images, requests, classes)
    before = traces()
    SmoothGrad(logit_model, samples=3, noise=0.3, seed=9, output="logits").explain(images[:2], requests[:2], classes[:2])
    IntegratedGradients(logit_model, steps=5, baseline="blur", output="logits").explain(images, requests, classes)
    SmoothGrad(logit_model, samples=2, averaging="squared", output="logits").explain(images, requests, classes)
    assert traces() == before


@pytest.mark.parametrize("method", METHODS)
def test_known_context_saliency_lies_on_the_patches(method):
    shape = (24, 24, 1)
    patches = [(0, 0, 6, 6), (18, 16, 24, 22)]
    target = (9, 9, 15, 15)
    model = known_context_model(shape, patches, target, num_classes=2, combine="any", gain=4.0)
    image = known_context_image(shape, patches, seed=0)
    request = np.zeros(shape[:2], np.float32)
    request[target[0]:target[2], target[1]:target[3]] = 1
    kwargs = {"samples": 4} if method is SmoothGrad else {"steps": 8} if method is IntegratedGradients else {}
    res = method(model, **kwargs).explain(image[None], request[None], 1)
    on_patches = np.zeros(shape[:2], bool)
    for y0, x0, y1, x1 in patches:
        on_patches[y0:y1, x0:x1] = True
    assert np.all(res.saliency[0][~on_patches] == 0)
    assert res.saliency[0][on_patches].max() == 1


def test_result_fields_swap_with_grid_saliency(prob_model, batch):
    images, requests, classes = batch
    for explainer in (gs.GridSaliency(prob_model, grid_size=(2, 1), iterations=2, mode="full"), *(m(prob_model) for m in METHODS)):
        res = explainer(images, requests, classes)
        assert res.saliency.shape == (4, H, W) and res.class_ids.shape == (4,)
        assert res.original_score.shape == (4,) and isinstance(res, ExplanationResult)
        assert res.params["method"] == explainer.method in METHOD_NAMES and res.seconds > 0


def test_low_resolution_output_is_resized():
    x = keras.Input((8, 8, 1))
    model = keras.Model(x, keras.layers.Softmax()(keras.layers.Conv2D(2, 1)(keras.layers.AveragePooling2D(2)(x))))
    requests = np.zeros((1, 8, 8), np.float32)
    requests[0, :4] = 1
    image = np.random.default_rng(0).random((1, 8, 8, 1))
    res = VanillaGradients(model).explain(image, requests, 1)
    assert res.saliency.shape == (1, 8, 8) and res.saliency.max() == 1
    # the reference: the same model with the bilinear resize of its probabilities as a layer
    resized = keras.Model(x, keras.layers.Resizing(8, 8, interpolation="bilinear")(model.output))
    reference = VanillaGradients(resized).explain(image, requests, 1)
    np.testing.assert_allclose(res.saliency, reference.saliency, atol=1e-5)


def test_graph_cache_does_not_keep_the_model_alive(batch):
    images, requests, classes = batch
    model = linear_model(probabilities=False)
    IntegratedGradients(model, steps=2, output="logits").explain(images, requests, classes)
    from gsal_tf import _graphs

    assert _graphs._GRAPHS.get(model)  # its graph is cached, under the model weakly
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x[0], r, c), "batch"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x, r[:2], c), "request masks have shape"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x, r * 0, c), "empty"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x, r * 0.5, c), "only 0 and 1"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x, r, 7), "out of range"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x, r, [0, 1]), "class_ids"),
        (lambda m, x, r, c: VanillaGradients(m).explain(x, r, c), "logits"),
        (lambda m, x, r, c: VanillaGradients(m, output="scores"), "output"),
        (lambda m, x, r, c: VanillaGradients(m, batch_size=0), "batch_size"),
        (lambda m, x, r, c: VanillaGradients(m, absolute="yes"), "absolute"),
        (lambda m, x, r, c: VanillaGradients("model"), "model"),
        (lambda m, x, r, c: SmoothGrad(m, samples=0), "samples"),
        (lambda m, x, r, c: SmoothGrad(m, noise=-0.1), "noise"),
        (lambda m, x, r, c: SmoothGrad(m, seed=-1), "seed"),
        (lambda m, x, r, c: SmoothGrad(m, averaging="mean"), "averaging"),
        (lambda m, x, r, c: IntegratedGradients(m, steps=0), "steps"),
        (lambda m, x, r, c: IntegratedGradients(m, baseline="zeros", output="logits").explain(x, r, c), "baseline"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(np.full_like(x, np.nan), r, c), "NaN"),
        (lambda m, x, r, c: VanillaGradients(m, output="logits").explain(x[:, :3], np.ones_like(r[:, :3]), c), "cannot take"),
    ],
)
def test_bad_input_raises_gsal_input_error(call, match, logit_model, batch):
    images, requests, classes = batch
    with pytest.raises(GsalInputError, match=match):
        call(logit_model, images, requests, classes)
