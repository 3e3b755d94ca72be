"""The perturbation, upsampling and objective against NumPy references written from the paper."""

import numpy as np
import pytest
import tensorflow as tf

from gsal_tf.saliency import objective as obj
from gsal_tf.saliency.masks import upsample_grid
from gsal_tf.saliency.perturbation import gaussian_blur, gaussian_kernel1d, make_baseline, perturb


def np_nearest(grid, size):
    n, gh, gw = grid.shape
    h, w = size
    out = np.zeros((n, h, w), np.float32)
    for y in range(h):
        for x in range(w):
            out[:, y, x] = grid[:, int(y * gh / h), int(x * gw / w)]
    return out


@pytest.mark.parametrize("size", [(16, 16), (20, 12), (7, 9)])
def test_nearest_upsampling_matches_reference(rng, size):
    grid = rng.random((2, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(upsample_grid(tf.constant(grid), size, "nearest").numpy(), np_nearest(grid, size))


def test_bilinear_upsampling_spreads_at_most_half_a_cell():
    grid = np.zeros((1, 4, 4), np.float32)
    grid[0, 1, 1] = 1.0  # cell rows/cols 8..15 of a 32x32 image
    up = upsample_grid(tf.constant(grid), (32, 32), "bilinear").numpy()[0]
    assert up[11:13, 11:13].min() > 0.7 and up[8:16, 8:16].min() > 0.3
    outside = np.ones((32, 32), bool)
    outside[4:20, 4:20] = False  # the cell dilated by half a cell (4 px)
    assert up[outside].max() == 0.0


def test_perturbation_context_and_full_modes(rng):
    x = rng.random((2, 6, 5, 3)).astype(np.float32)
    m = rng.random((2, 6, 5)).astype(np.float32)
    r = (rng.random((2, 6, 5)) > 0.5).astype(np.float32)
    a = rng.random((2, 6, 5, 3)).astype(np.float32)
    mm, rr = m[..., None], r[..., None]
    p = x * rr + a * (1 - rr)
    np.testing.assert_allclose(np.asarray(perturb(x, m, r, a, "context")), x * mm + p * (1 - mm), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(perturb(x, m, r, a, "full")), x * mm + a * (1 - mm), rtol=1e-6)
    # Context mode never changes the request region, whatever the mask.
    out = np.asarray(perturb(x, np.zeros_like(m), r, a, "context"))
    np.testing.assert_array_equal(out[r.astype(bool)], x[r.astype(bool)])


def test_objective_matches_reference(rng):
    grid = rng.random((3, 4, 4)).astype(np.float32)
    f = rng.random((3, 8, 8)).astype(np.float32)
    fp = rng.random((3, 8, 8)).astype(np.float32)
    r = (rng.random((3, 8, 8)) > 0.3).astype(np.float32)
    lam = 0.3
    ref = lam * np.abs(grid).sum((1, 2)) / 16 + (r * np.maximum(f - fp, 0)).sum((1, 2)) / r.sum((1, 2))
    np.testing.assert_allclose(obj.objective(grid, f, fp, r, lam).numpy(), ref, rtol=1e-5)
    ratio = (r * fp).sum((1, 2)) / (r * f).sum((1, 2))
    np.testing.assert_allclose(obj.score_ratio(f, fp, r).numpy(), ratio, rtol=1e-5)


def test_gaussian_blur_matches_separable_reference(rng):
    img = rng.random((1, 12, 10, 2)).astype(np.float32)
    sigma = 1.2
    k = gaussian_kernel1d(sigma)
    rad = len(k) // 2
    pad = np.pad(img, ((0, 0), (rad, rad), (rad, rad), (0, 0)), mode="reflect")
    ref = np.zeros_like(img)
    for dy in range(len(k)):
        for dx in range(len(k)):
            ref += k[dy] * k[dx] * pad[:, dy:dy + 12, dx:dx + 10, :]
    np.testing.assert_allclose(gaussian_blur(img, sigma).numpy(), ref, atol=1e-5)
    # A constant image stays constant; tiny images still work (kernel truncated).
    np.testing.assert_allclose(gaussian_blur(np.full((1, 3, 3, 1), 0.7, np.float32), 5.0).numpy(), 0.7, atol=1e-6)


def test_baselines(rng):
    x = rng.random((2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(make_baseline(0.5, x).numpy(), 0.5)
    per_channel = make_baseline((0.1, 0.2, 0.3), x).numpy()
    np.testing.assert_allclose(per_channel[1, 4, 4], [0.1, 0.2, 0.3], rtol=1e-6)
    np.testing.assert_allclose(make_baseline("mean", x).numpy()[:, 0, 0], x.mean((1, 2)), rtol=1e-5)
    noise_a = make_baseline("noise", x, seed=3).numpy()
    np.testing.assert_array_equal(noise_a, make_baseline("noise", x, seed=3).numpy())
    assert not np.allclose(noise_a, make_baseline("noise", x, seed=4).numpy())
    lo, hi = x.min((1, 2)), x.max((1, 2))
    assert np.all(noise_a >= lo[:, None, None] - 1e-6) and np.all(noise_a <= hi[:, None, None] + 1e-6)
    # An image gets the same noise alone or in a batch.
    np.testing.assert_allclose(make_baseline("noise", x[1:], seed=3).numpy()[0], noise_a[1], rtol=1e-6)
    np.testing.assert_allclose(make_baseline(lambda im: im * 0 + 2.0, x).numpy(), 2.0)
    np.testing.assert_allclose(make_baseline(np.full((8, 8, 3), 0.25), x).numpy(), 0.25)
