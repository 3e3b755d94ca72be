"""RISE of a request score: the request score averaged over random masks, per pixel kept.

Petsiuk, Das, Saenko. *RISE: Randomized Input Sampling for Explanation of Black-box Models*.
BMVC 2018, arXiv:1806.07421 — restricted to a segmentation request like the other comparison
methods (:mod:`.masking`).

Masks: ``N = masks`` random binary grids ``G_i`` of ``(ceil(H/s)+1) × (ceil(W/s)+1)`` cells, each
cell 1 with probability ``p = keep_probability``; each grid is upsampled bilinearly so that one
cell spans ``s = cell_size`` pixels (``tf.image.resize``, half-pixel centres) and cropped to H×W
at a random shift ``(dy,dx)`` in ``[0,s)²``, giving smooth masks ``M_i`` (H,W) in [0,1] whose
cells do not sit on a fixed lattice. (Petsiuk et al.'s code stretches an s×s grid over s+1 cells;
here a cell is exactly ``cell_size`` pixels.)

For image ``x`` (H,W,C), request ``R``, class ``c`` and baseline ``a``:

    ``x_i = x∘M_i + p(x,R)∘(1−M_i)``,   ``p(x,R) = x∘R + a∘(1−R)``   (context mode: R is never perturbed)
    ``s_i = s_c(x_i)``                                              (the request score of masked copy i)
    ``rise(p) = sum_i s_i·M_i(p) / (N·p)``                          (Petsiuk et al.'s importance map)
    ``raw(p) = sum_i (s_i − s̄)·M_i(p) / (N·p)``,   ``s̄ = (1/N) sum_i s_i``   (``centre=True``, the default)
    ``saliency = max(raw, 0) / max(max(raw, 0))``                    in [0,1]

Why centred: ``rise(p)`` estimates ``E[s | M(p) kept]``, which is the mean score ``s̄`` for every
pixel that does not matter — the whole map sits on that offset, and a saliency normalised by its
maximum is then nearly flat (its context-bias localisation is the context's area share, not a
measurement). Subtracting ``s̄·sum_i M_i(p)/(N·p)`` removes exactly the offset that ``p``'s masks
would give to an irrelevant pixel, and leaves ``E[s | kept] − E[s]``: positive where keeping the
pixel raises the score. ``centre=False`` returns Petsiuk et al.'s ``rise`` as ``raw`` and
``rise / max(rise)`` as the saliency. ``raw`` is in units of the request score; in context mode
it is zero inside R. Measured on the zoo's strongly biased MobileNetV2, 8 held-out biased 9s
(test_seed 4242), defaults otherwise: CBL 0.914 centred, 0.526 with Petsiuk et al.'s map (chance
0.5) (``RISE(model, centre=...)`` on :func:`gsal_tf.benchmark.tuning.held_out_samples`).

The grids and shifts come from ``numpy.random.default_rng(seed)`` (:meth:`RISE.mask_parameters`)
and are the same for every image of a call; :meth:`RISE.masks` returns the masks ``M_i`` exactly
as the graph builds them. Cost: one forward pass of the batch per mask (``N`` passes); the
default 1,000 masks cost about as much as 330 grid saliency iterations (forward+backward ≈ 3
forwards).

Example
-------
>>> import gsal_tf as gs
>>> rise = gs.attributions.RISE(model, masks=1000, cell_size=8, keep_probability=0.5, seed=0)
>>> result = rise.explain(images, request_masks, class_ids)
>>> rise.masks(images.shape[1:3]).shape     # (1000, H, W): the masks that were used
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from gsal_tf.attributions.masking import PerturbationExplainer, weighted_masks
from gsal_tf.errors import GsalInputError
from gsal_tf.saliency.perturbation import BaselineSpec


class RISE(PerturbationExplainer):
    """The request score of randomly masked images, averaged per pixel over the masks keeping it.

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K); h×w is resized
        bilinearly to H×W. Keras models are called with ``training=False``.
    masks : int, default 1000
        Number ``N`` of random masks (Petsiuk et al. use 4,000 at 224×224; the estimate's noise
        falls as 1/sqrt(N)).
    cell_size : int, default 8
        Side ``s`` of a grid cell in pixels (8 gives grid saliency's 8×8 grid on a 64×64 image);
        at most the image's shorter side.
    keep_probability : float, default 0.5
        Probability ``p`` in (0, 1] that a grid cell is kept (Petsiuk et al.: 0.5).
    centre : bool, default True
        Subtract the mean score (see the module docstring); False gives Petsiuk et al.'s map.
    baseline : float, tuple, "mean", "blur", "noise", array or callable, default 0.0
        What replaces the masked pixels (see :mod:`gsal_tf.saliency.perturbation`), as in grid saliency.
    mode : "context" or "full", default "context"
        "context" never perturbs request pixels; "full" masks the whole image.
    seed : int, default 0
        Seed of the masks (and of the "noise" baseline).
    blur_sigma : float, default 5.0
        σ in pixels of the "blur" baseline.
    masks_per_step : int, default 16
        Masks evaluated per model call: each call runs ``batch_size × masks_per_step`` images.
    batch_size : int, default 16
        Requests explained together in one graph call; more are split into batches.
    output : "probabilities", "logits" or None, default None
        What the model returns (None: what it declares — logits for a keras-hub segmenter —
        else probabilities; :func:`gsal_tf.model_calls.declared_output`); a one-channel output is a
        binary segmenter (classes 0 = background, 1 = foreground). Softmax (sigmoid for one channel) is applied to logits.
    """

    method = "rise"

    def __init__(
        self,
        model,
        masks: int = 1000,
        cell_size: int = 8,
        keep_probability: float = 0.5,
        centre: bool = True,
        baseline: BaselineSpec = 0.0,
        mode: str = "context",
        seed: int = 0,
        blur_sigma: float = 5.0,
        masks_per_step: int = 16,
        batch_size: int = 16,
        output: str | None = None,
    ):
        super().__init__(model, baseline=baseline, mode=mode, blur_sigma=blur_sigma, seed=seed,
                         masks_per_step=masks_per_step, batch_size=batch_size, output=output)
        if isinstance(masks, bool) or not isinstance(masks, (int, np.integer)) or masks < 1:
            raise GsalInputError(f"masks must be an int >= 1 (the number N of random masks), got {masks!r}")
        if isinstance(cell_size, bool) or not isinstance(cell_size, (int, np.integer)) or cell_size < 1:
            raise GsalInputError(f"cell_size must be an int >= 1 (pixels per grid cell), got {cell_size!r}")
        ok = isinstance(keep_probability, (int, float, np.integer, np.floating)) and not isinstance(keep_probability, bool)
        if not ok or not 0.0 < float(keep_probability) <= 1.0:
            raise GsalInputError(f"keep_probability must be in (0, 1] (the chance a grid cell is kept), got {keep_probability!r}")
        if not isinstance(centre, (bool, np.bool_)):
            raise GsalInputError(f"centre must be True or False, got {centre!r}")
        self.n_masks = int(masks)
        self.cell_size = int(cell_size)
        self.keep_probability = float(keep_probability)
        self.centre = bool(centre)

    def _method_params(self) -> dict:
        return {"masks": self.n_masks, "cell_size": self.cell_size, "keep_probability": self.keep_probability,
                "centre": self.centre}

    def _check_image(self, size):
        if self.cell_size > min(size):
            raise GsalInputError(
                f"cell_size {self.cell_size} is larger than the image {tuple(size)} (H,W); use at most {min(size)} pixels"
            )

    def mask_parameters(self, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """The random grids (N, ceil(H/s)+1, ceil(W/s)+1) float32 in {0,1} and shifts (N,2) int32
        in [0,s) for images of ``size`` (H,W), from ``numpy.random.default_rng(seed)``."""
        self._check_image(size)
        s = self.cell_size
        rng = np.random.default_rng(self.seed)
        cells = (math.ceil(size[0] / s) + 1, math.ceil(size[1] / s) + 1)
        grids = (rng.random((self.n_masks, *cells)) < self.keep_probability).astype(np.float32)
        shifts = rng.integers(0, s, size=(self.n_masks, 2)).astype(np.int32)
        return grids, shifts

    def masks(self, size: tuple[int, int]) -> np.ndarray:
        """The masks ``M_i`` (N,H,W) float32 in [0,1] used for images of ``size`` (H,W)."""
        grids, shifts = self.mask_parameters(size)
        return upsampled_masks(tf.constant(grids), tf.constant(shifts), tf.constant(self.cell_size), tuple(size)).numpy()

    def _mask_inputs(self, size):
        return list(self.mask_parameters(size))

    def _hyper_inputs(self):
        return [tf.constant(self.cell_size, tf.int32), tf.constant(self.keep_probability, tf.float32),
                tf.constant(float(self.centre), tf.float32)]

    @staticmethod
    def _mask_specs():
        return [tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None, 2], tf.int32)]

    @staticmethod
    def _hyper_specs():
        return [tf.TensorSpec([], tf.int32), tf.TensorSpec([], tf.float32), tf.TensorSpec([], tf.float32)]

    @staticmethod
    def _keep_masks(mask_params, hyper, size):
        return upsampled_masks(mask_params[0], mask_params[1], hyper[0], size)

    @staticmethod
    def _initial_sums(batch, size):
        return tf.zeros([batch, *size]), tf.zeros(size), tf.zeros([batch])

    @staticmethod
    def _accumulate(sums, scores, original, keep, valid, hyper):
        # Sums of score changes s_i − s_c(x), not of scores: a copy that scores exactly as the
        # image adds exactly 0, so a map with nothing to show is exactly zero (no rounding noise
        # for the normalisation to blow up); the formulas are rearranged in _finish.
        weighted, coverage, change_sum = sums
        change = (scores - original[:, None]) * valid
        return (weighted + weighted_masks(change, keep), coverage + tf.einsum("m,mhw->hw", valid, keep),
                change_sum + tf.reduce_sum(change, axis=1))

    @staticmethod
    def _finish(sums, original, count, hyper):
        weighted, coverage, change_sum = sums
        _, keep_probability, centre = hyper
        n = tf.cast(count, tf.float32)
        # sum_i (s_i − s̄) M_i = sum_i (s_i − s0) M_i − (s̄ − s0) sum_i M_i;  sum_i s_i M_i = sum_i (s_i − s0) M_i + s0 sum_i M_i
        offset = centre * (-change_sum / n) + (1.0 - centre) * original
        raw = (weighted + offset[:, None, None] * coverage[None]) / (n * keep_probability)
        shown = centre * tf.maximum(raw, 0.0) + (1.0 - centre) * raw
        return raw, shown


def upsampled_masks(grids: tf.Tensor, shifts: tf.Tensor, cell_size: tf.Tensor, size: tuple[int, int]) -> tf.Tensor:
    """Masks (m,H,W) float32 in [0,1] from grids (m,gh,gw): bilinear upsampling to ``cell_size``
    pixels per cell (half-pixel centres), then the H×W crop starting at ``shifts`` (m,2) (dy,dx)."""
    cells = tf.shape(grids)[1:3]
    up = tf.image.resize(grids[..., None], cells * cell_size, method="bilinear")[..., 0]  # (m, gh·s, gw·s)
    rows = shifts[:, 0:1] + tf.range(size[0])[None, :]  # (m,H)
    cols = shifts[:, 1:2] + tf.range(size[1])[None, :]  # (m,W)
    up = tf.gather(up, rows, axis=1, batch_dims=1)  # (m,H,gw·s)
    return tf.gather(up, cols, axis=2, batch_dims=1)  # (m,H,W)


__all__ = ["RISE", "upsampled_masks"]
