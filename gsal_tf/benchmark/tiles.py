"""The background tiling of TextureMNIST: which pixels belong to which tile (1, 2 or 4 tiles).

Shared by the generator (:mod:`gsal_tf.benchmark.texture_mnist`), which paints a texture per
tile, and the storage (:mod:`gsal_tf.benchmark.storage`), which rebuilds per-pixel texture maps
from the compact samples.
"""

from __future__ import annotations

import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = ["tile_boxes", "tile_map"]


def tile_boxes(image_size: int, tiles: int) -> list[tuple[int, int, int, int]]:
    """The background tiles as ``(top, bottom, left, right)`` pixel ranges, row by row."""
    half = image_size // 2
    if tiles == 1:
        return [(0, image_size, 0, image_size)]
    if tiles == 2:
        return [(0, half, 0, image_size), (half, image_size, 0, image_size)]
    if tiles == 4:
        return [(0, half, 0, half), (0, half, half, image_size), (half, image_size, 0, half), (half, image_size, half, image_size)]
    raise GsalInputError(f"tiles must be 1, 2 or 4, got {tiles}")


def tile_map(image_size: int, tiles: int) -> np.ndarray:
    """``(S, S)`` int32 map of the tile index of every pixel."""
    index = np.zeros((image_size, image_size), np.int32)
    for k, (top, bottom, left, right) in enumerate(tile_boxes(image_size, tiles)):
        index[top:bottom, left:right] = k
    return index
