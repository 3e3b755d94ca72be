"""Texture pools for TextureMNIST: a built-in procedural pool, or a folder of texture images.

A pool is a stack of square grayscale canvases, ``(P, C, C)`` float32 in [0, 1], with
``C = CANVAS_FACTOR * image_size``; each sample crops its textures from the canvases at random
offsets, so one texture looks slightly different from sample to sample.

The built-in pool has a stable order: a texture's index is its position in :data:`BUILTIN`, and new
textures are only ever appended. Its random textures (noise, random dots, blobs) use fixed seeds,
so a texture is the same picture for every dataset seed and split. Periods are given for 64-pixel
images and scale with ``image_size``.

Intensity alone never tells two textures apart: binary patterns span {0, 1}, and the continuous
ones (noise, sines) are histogram-equalised to a uniform spread over [0, 1].
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, Optional, Union

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = [
    "CANVAS_FACTOR", "IMAGE_SUFFIXES", "BUILTIN", "texture_names", "normalise", "TexturePool",
    "builtin_pool", "folder_pool",
]

#: Texture canvases are this many times larger than the image, to leave room for random crops.
CANVAS_FACTOR = 4
#: Extensions read from a user texture folder (anything cv2 can decode).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".pgm", ".ppm", ".pbm")

_Grid = tuple[np.ndarray, np.ndarray, float]  # (y, x, scale): pixel coordinates and image_size / 64


def _phase(y: np.ndarray, x: np.ndarray, angle: float, period: float) -> np.ndarray:
    """Position along direction ``angle`` (degrees from the x axis) in units of ``period``."""
    theta = np.deg2rad(angle)
    return (x * np.cos(theta) + y * np.sin(theta)) / period


def _stripes(angle: float, period: float, duty: float = 0.5) -> Callable[[_Grid], np.ndarray]:
    def make(grid: _Grid) -> np.ndarray:
        y, x, s = grid
        return (np.mod(_phase(y, x, angle, period * s), 1.0) < duty).astype(np.float32)

    return make


def _sine(angle: float, period: float) -> Callable[[_Grid], np.ndarray]:
    def make(grid: _Grid) -> np.ndarray:
        y, x, s = grid
        return np.sin(2 * np.pi * _phase(y, x, angle, period * s))

    return make


def _checker(period: float, angle: float = 0.0) -> Callable[[_Grid], np.ndarray]:
    def make(grid: _Grid) -> np.ndarray:
        y, x, s = grid
        u = np.floor(_phase(y, x, angle, period * s))
        v = np.floor(_phase(y, x, angle + 90.0, period * s))
        return np.mod(u + v, 2).astype(np.float32)

    return make


def _dot_grid(period: float, radius: float, stagger: bool = False) -> Callable[[_Grid], np.ndarray]:
    def make(grid: _Grid) -> np.ndarray:
        y, x, s = grid
        p = period * s
        row = np.floor(y / p)
        shift = np.where(np.mod(row, 2) == 1, p / 2, 0.0) if stagger else 0.0
        dy = np.mod(y, p) - p / 2
        dx = np.mod(x + shift, p) - p / 2
        return (dy**2 + dx**2 <= (radius * s) ** 2).astype(np.float32)

    return make


def _grid_lines(period: float, width: float) -> Callable[[_Grid], np.ndarray]:
    def make(grid: _Grid) -> np.ndarray:
        y, x, s = grid
        p, w = period * s, max(1.0, width * s)
        return ((np.mod(y, p) < w) | (np.mod(x, p) < w)).astype(np.float32)

    return make


def _noise(sigma: float, seed: int, sigma_x: Optional[float] = None) -> Callable[[_Grid], np.ndarray]:
    """Gaussian-blurred white noise; ``sigma_x`` != ``sigma`` gives streaks."""

    def make(grid: _Grid) -> np.ndarray:
        y, _, s = grid
        noise = np.random.default_rng(seed).standard_normal(y.shape).astype(np.float32)
        sy, sx = sigma * s, (sigma if sigma_x is None else sigma_x) * s
        if sy == 0:
            return noise
        return cv2.GaussianBlur(noise, (0, 0), sigmaX=sx, sigmaY=sy, borderType=cv2.BORDER_REFLECT)

    return make


def _blobs(grid: _Grid) -> np.ndarray:
    return (_noise(2.5, seed=29)(grid) > 0).astype(np.float32)


def _random_dots(grid: _Grid) -> np.ndarray:
    y, _, s = grid
    canvas = np.zeros(y.shape, np.uint8)
    rng = np.random.default_rng(17)
    count = int(canvas.size / (5 * s) ** 2)
    centres = rng.integers(0, canvas.shape[0], size=(count, 2))
    radii = np.maximum(1, np.round(rng.uniform(0.8, 1.8, size=count) * s)).astype(int)
    for (cy, cx), r in zip(centres, radii):
        cv2.circle(canvas, (int(cx), int(cy)), int(r), 1, thickness=-1)
    return canvas.astype(np.float32)


def _waves(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    return (np.mod((y + 2.0 * s * np.sin(2 * np.pi * x / (10 * s))) / (5 * s), 1.0) < 0.5).astype(np.float32)


def _rings(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    # Centres repeat every 24 px, so every crop shows arcs of several ring systems.
    p = 24 * s
    r = np.hypot(np.mod(y, p) - p / 2, np.mod(x, p) - p / 2)
    return (np.mod(r / (3.5 * s), 1.0) < 0.5).astype(np.float32)


def _bricks(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    h, w, mortar = 5 * s, 10 * s, max(1.0, 1.5 * s)
    row = np.floor(y / h)
    shifted = x + np.where(np.mod(row, 2) == 1, w / 2, 0.0)
    return ~((np.mod(y, h) < mortar) | (np.mod(shifted, w) < mortar)) * np.float32(1)


def _crosshatch(grid: _Grid) -> np.ndarray:
    a = _stripes(45, 6, duty=0.3)(grid)
    b = _stripes(135, 6, duty=0.3)(grid)
    return np.maximum(a, b)


def _zigzag(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    tooth = 8 * s
    tri = np.abs(np.mod(x, tooth) - tooth / 2)  # triangle wave along x
    return (np.mod((y + tri) / (4 * s), 1.0) < 0.5).astype(np.float32)


def _hexagons(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    size = 4 * s
    # Cube coordinates of each pixel on a hexagonal lattice, rounded to the nearest cell centre;
    # the hex-norm distance to that centre draws cells with dark borders.
    cx = (np.sqrt(3) / 3 * x - y / 3) / size
    cz = (2 / 3 * y) / size
    cy = -cx - cz
    rx, ry, rz = np.round(cx), np.round(cy), np.round(cz)
    dx, dy, dz = np.abs(rx - cx), np.abs(ry - cy), np.abs(rz - cz)
    fix_x = (dx > dy) & (dx > dz)
    fix_y = ~fix_x & (dy > dz)
    rx = np.where(fix_x, -ry - rz, rx)
    ry = np.where(fix_y, -rx - rz, ry)
    rz = -rx - ry
    dist = np.maximum.reduce([np.abs(cx - rx), np.abs(cy - ry), np.abs(cz - rz)])
    return (dist < 0.42).astype(np.float32)


def _plaid(grid: _Grid) -> np.ndarray:
    return _sine(0, 8)(grid) + _sine(90, 5)(grid)


def _weave(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    block = 8 * s
    cell = np.mod(np.floor(y / block) + np.floor(x / block), 2) == 1
    return np.where(cell, _stripes(0, 2.7)(grid), _stripes(90, 2.7)(grid))


def _sawtooth(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    return np.mod(_phase(y, x, 60, 8 * s), 1.0)


def _scales(grid: _Grid) -> np.ndarray:
    y, x, s = grid
    p = 8 * s
    row = np.floor(y / (p / 2))
    shifted = x + np.where(np.mod(row, 2) == 1, p / 2, 0.0)
    dy = np.mod(y, p / 2)
    dx = np.mod(shifted, p) - p / 2
    return (np.mod(np.hypot(dx, dy) / (2.5 * s), 1.0) < 0.5).astype(np.float32)


#: The built-in pool, in its stable order: (name, generator of the canvas). Periods stay within
#: 2-10 px (at 64 px images) so that even a digit stroke, ~8 px wide, shows a piece of pattern.
BUILTIN: tuple[tuple[str, Callable[[_Grid], np.ndarray]], ...] = (
    ("stripes_h_fine", _stripes(90, 3.5)),
    ("stripes_h_wide", _stripes(90, 8)),
    ("stripes_v_fine", _stripes(0, 3.5)),
    ("stripes_v_wide", _stripes(0, 8)),
    ("stripes_d45", _stripes(45, 5)),
    ("stripes_d135", _stripes(135, 5)),
    ("stripes_d30_thin", _stripes(30, 7, duty=0.3)),
    ("stripes_d120_thin", _stripes(120, 7, duty=0.3)),
    ("sine_h", _sine(90, 6)),
    ("sine_d60", _sine(150, 7)),
    ("checker_fine", _checker(2)),
    ("checker_coarse", _checker(5)),
    ("checker_diagonal", _checker(3.5, angle=45)),
    ("dots_grid", _dot_grid(5, 1.3)),
    ("dots_large", _dot_grid(9, 3, stagger=True)),
    ("dots_random", _random_dots),
    ("grid_thin", _grid_lines(5, 1)),
    ("grid_thick", _grid_lines(8, 2.5)),
    ("noise_pixel", _noise(0.0, seed=11)),
    ("noise_fine", _noise(0.8, seed=12)),
    ("noise_coarse", _noise(2.0, seed=13)),
    ("noise_streaks", _noise(0.5, seed=14, sigma_x=4.0)),
    ("blobs", _blobs),
    ("waves", _waves),
    ("rings", _rings),
    ("bricks", _bricks),
    ("crosshatch", _crosshatch),
    ("zigzag", _zigzag),
    ("hexagons", _hexagons),
    ("plaid", _plaid),
    ("weave", _weave),
    ("sawtooth", _sawtooth),
    ("scales", _scales),
)


def texture_names() -> list[str]:
    """Names of the built-in textures; a name's position is its stable index."""
    return [name for name, _ in BUILTIN]


def normalise(texture: np.ndarray) -> np.ndarray:
    """Map a texture to [0, 1]: min-max for few-level patterns, histogram equalisation otherwise.

    Equalising the continuous textures gives them the same (uniform) intensity histogram, so a
    network has to look at structure, not brightness, to tell them apart.
    """
    texture = np.asarray(texture, np.float64)
    if np.unique(texture).size <= 16:
        low, high = texture.min(), texture.max()
        out = (texture - low) / (high - low) if high > low else np.full_like(texture, 0.5)
    else:
        ranks = np.argsort(np.argsort(texture, axis=None, kind="stable"), kind="stable")
        out = (ranks / (texture.size - 1)).reshape(texture.shape)
    return out.astype(np.float32)


class TexturePool:
    """A stack of texture canvases with their names.

    Parameters
    ----------
    names : list of str
        Texture names; ``names[i]`` belongs to ``canvases[i]``.
    canvases : np.ndarray
        ``(P, C, C)`` float32 in [0, 1].
    source : str
        ``"builtin"`` or the folder the images came from (recorded in the dataset card).
    """

    def __init__(self, names: list[str], canvases: np.ndarray, source: str):
        self.names = list(names)
        self.canvases = canvases
        self.source = source

    def __len__(self) -> int:
        return len(self.names)

    def index(self, texture: Union[str, int]) -> int:
        """Position of ``texture`` (a name or an index) in this pool."""
        if isinstance(texture, str):
            if texture not in self.names:
                raise GsalInputError(
                    f"texture {texture!r} is not in the texture pool ({self.source}); choose one of: {', '.join(self.names)}"
                )
            return self.names.index(texture)
        if not 0 <= texture < len(self.names):
            raise GsalInputError(f"texture index {texture} is out of range; the pool ({self.source}) has {len(self.names)} textures (0-{len(self.names) - 1})")
        return int(texture)

    def select(self, textures: tuple[Union[str, int], ...]) -> "TexturePool":
        """The sub-pool of ``textures`` (names or indices), in the given order; empty keeps all."""
        if not textures:
            return self
        picks = [self.index(t) for t in textures]
        if len(set(picks)) != len(picks):
            raise GsalInputError(f"textures.names selects the same texture twice: {list(textures)!r}")
        return TexturePool([self.names[i] for i in picks], self.canvases[picks], self.source)


def builtin_pool(image_size: int = 64) -> TexturePool:
    """The procedural pool at canvas size ``CANVAS_FACTOR * image_size`` (built once per size)."""
    return TexturePool(texture_names(), _builtin_canvases(image_size), "builtin")


@functools.lru_cache(maxsize=4)
def _builtin_canvases(image_size: int) -> np.ndarray:
    side = CANVAS_FACTOR * image_size
    y, x = np.mgrid[0:side, 0:side].astype(np.float64)
    grid = (y, x, image_size / 64.0)
    canvases = np.stack([normalise(make(grid)) for _, make in BUILTIN])
    canvases.flags.writeable = False  # shared by every pool of this size
    return canvases


def folder_pool(folder: Union[str, Path], image_size: int = 64) -> TexturePool:
    """Textures from the images in ``folder`` (sorted by file name; names are the file stems).

    Images are read as grayscale, normalised like the built-in textures, tiled when smaller than
    the canvas and centre-cropped when larger (no rescaling, so the texture keeps its scale).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise GsalInputError(f"texture folder {str(folder)!r} does not exist; pass a folder of texture images (png, jpg, ...)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise GsalInputError(f"texture folder {str(folder)!r} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    names = [p.stem for p in files]
    if len(set(names)) != len(names):
        raise GsalInputError(f"texture folder {str(folder)!r} has two images with the same name stem; rename one")
    side = CANVAS_FACTOR * image_size
    canvases = []
    for path in files:
        image = _read_gray(path)
        if image is None:
            raise GsalInputError(f"cannot read texture image {str(path)!r}; use a common image format (png, jpg, bmp, tif)")
        canvases.append(_fit_canvas(normalise(image), side))
    return TexturePool(names, np.stack(canvases), str(folder))


def _read_gray(path: Path) -> np.ndarray | None:
    """An image file as grayscale uint8 (H,W), or None if unreadable. OpenCV's imread has no GIF
    decoder, so a GIF is read as the first frame through its FFmpeg video backend."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None and path.suffix.lower() == ".gif":
        capture = cv2.VideoCapture(str(path))
        ok, frame = capture.read()
        capture.release()
        image = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if ok and frame is not None else None
    return image


def _fit_canvas(texture: np.ndarray, side: int) -> np.ndarray:
    reps = (-(-side // texture.shape[0]), -(-side // texture.shape[1]))
    tiled = np.tile(texture, reps)
    top = (tiled.shape[0] - side) // 2
    left = (tiled.shape[1] - side) // 2
    return np.ascontiguousarray(tiled[top : top + side, left : left + side])
