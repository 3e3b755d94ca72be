"""Grid masks: from the coarse grid that is optimised to the per-pixel mask applied to the image.

The mask ``M`` is a grid of ``gh × gw`` cells with values in [0, 1]. Each cell covers an
``H/gh × W/gw`` block of pixels. Two upsamplings are offered:

``"nearest"`` (default)
    Every pixel takes the value of the cell it lies in: the saliency is exactly the grid cells
    and never spreads past the cells the prediction depends on. This is what a user reads off a
    grid saliency map ("these cells of context matter") and it keeps region statistics such as
    the paper's context-bias localisation exact when regions are grid-aligned.
``"bilinear"``
    Bilinear interpolation between cell centres (half-pixel centres, as ``tf.image.resize``):
    a smoother perturbation without block edges. A cell's influence ends at its neighbours'
    centres, but pixels near a cell border take half their value from the neighbour, so keeping
    a region fully also switches neighbouring cells on: the saliency spreads up to about 1.5
    cells past the region the prediction depends on (measured on the known-context models in
    ``tests/test_known_context.py``). This is why "nearest" is the default.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["UPSAMPLINGS", "upsample_grid"]

UPSAMPLINGS = ("nearest", "bilinear")


def upsample_grid(grid: tf.Tensor, size: tuple[int, int], method: str = "nearest") -> tf.Tensor:
    """Upsample grid masks to image size.

    Parameters
    ----------
    grid : float tensor (N, gh, gw), values in [0, 1].
    size : (H, W) of the image in pixels.
    method : "nearest" or "bilinear" (see module docstring).

    Returns
    -------
    float tensor (N, H, W) in [0, 1].
    """
    if method not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {UPSAMPLINGS}, got {method!r}")
    grid4 = grid[..., None]
    if method == "nearest":
        height, width = size
        gh, gw = grid.shape[1], grid.shape[2]
        # Pixel p of H lies in cell floor(p * gh / H): exact for any H, also when gh does not divide H.
        rows = (tf.range(height) * gh) // height
        cols = (tf.range(width) * gw) // width
        up = tf.gather(tf.gather(grid4, rows, axis=1), cols, axis=2)
    else:
        up = tf.image.resize(grid4, size, method="bilinear", antialias=False)
    return up[..., 0]

