"""Inputs shared by the benchmark scripts: random 64x64 images and a centred square request."""

import numpy as np


def make_inputs(n, shape, seed=0):
    """Images (n,*shape) in [0,1], requests (n,H,W) with a 24x24 centre square, class 3."""
    rng = np.random.default_rng(seed)
    images = rng.random((n,) + shape).astype(np.float32)
    requests = np.zeros((n,) + shape[:2], np.float32)
    requests[:, 20:44, 20:44] = 1
    return images, requests, np.full((n,), 3, np.int32)
