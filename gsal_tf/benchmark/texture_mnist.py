"""TextureMNIST: MNIST digits on textured backgrounds with a controllable context bias.

The synthetic benchmark of Hoyer et al., "Grid Saliency for Context Explanations of Semantic
Segmentation", NeurIPS 2019 (arXiv:1907.13054). A segmentation network labels every pixel with its
digit (0-9) or background (10); a context bias ties the *bias digit* to the *bias texture* in the
background, so grid saliency should find that texture when the network has learnt the shortcut.

One sample, ``S = image_size``:

1. An MNIST digit (28x28) is upscaled to a box of side ``u * S``, ``u ~ U(digit_scale)``, placed at a
   random position, binarised and its strokes thickened by ``digit_dilation`` pixels (per 64 px):
   ``digit_mask``, ``background_mask = 1 - digit_mask``.
2. The background is split into ``tiles`` regions: 1 (whole), 2 (top/bottom halves, the paper's
   setting) or 4 (quadrants, numbered row by row). Each tile gets its own texture, the digit
   another one: ``image = digit_mask * L_fg(T_fg) + background_mask * L_tile(T_tile)``, each texture
   cropped from its canvas at a random offset and shown at random levels
   ``L(T) = low + c * T``, ``c ~ U(contrast)``, ``low ~ U(0, 1 - c)`` (the same law for foreground
   and background, so brightness never tells the digit apart; the texture does). The foreground
   texture always differs from all tile textures, and the tiles of one sample have pairwise
   different textures.
3. The bias (``bias.strength``):

   - ``"none"``: all textures are drawn at random (without replacement within a sample);
   - ``"weak"``: every sample of ``bias.digit`` has ``bias.texture`` in one random tile (the
     *biased tile*) and nowhere else in that sample; other samples draw from the whole pool, so
     the bias texture still appears with other digits (non-exclusive);
   - ``"strong"``: as weak, and the bias texture occurs in no other sample at all (exclusive).

   ``biased_tile_mask`` is the background part of the biased tile (zero for unbiased samples).

Images are quantised to 1/255 steps so the uint8 shards on disk hold them exactly.

Determinism. Samples are made in blocks of ``SHARD_SIZE``; block ``b`` of a split draws from
``np.random.default_rng([split_seed, split_code, 1, b])`` and the order of MNIST digits from
``default_rng([split_seed, split_code, 0])`` (train: ``seed``, code 0; test: ``test_seed``, code 1).
So the test split never depends on the training ``seed``, and ``samples(split, n)`` is a prefix of
``samples(split, m)`` for ``n <= m``. A split longer than its MNIST split reuses digits (with fresh
textures and positions), one full permutation after the other.

Example::

    import gsal_tf as gs
    cfg = gs.benchmark.load_config("configs/benchmark/strong.toml")
    data = gs.benchmark.TextureMNIST(cfg, mnist="mnist.npz")
    s = data.samples("test", n=500)           # dict of numpy arrays, see storage.to_public
    data.generate("out/strong")               # shards + card.json
    ds = gs.benchmark.load_dataset("out/strong", "train", batch_size=64, shuffle=True)
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Union

import numpy as np

from gsal_tf._version import __version__
from gsal_tf.benchmark import classes, storage
from gsal_tf.benchmark.config import BenchmarkConfig, load_config
from gsal_tf.benchmark.digits import SPLITS, load_mnist, place_digits
from gsal_tf.benchmark.textures import TexturePool, builtin_pool, folder_pool
from gsal_tf.benchmark.tiles import tile_boxes, tile_map  # noqa: F401  (tile_boxes, tile_map: also public here)
from gsal_tf.errors import GsalInputError

__all__ = ["TextureMNIST", "data_dir_name", "generate_once"]

_SPLIT_CODES = {"train": 0, "test": 1}

#: ``progress(split, done, total)`` is called after every block written by ``generate``.
ProgressCallback = Callable[[str, int, int], None]


class TextureMNIST:
    """Generator of the TextureMNIST benchmark (see the module docstring for the recipe).

    Parameters
    ----------
    config : BenchmarkConfig, dict or path, optional
        The configuration, read with :func:`load_config`; ``None`` gives the defaults (strong bias).
    mnist : path, optional
        An ``.npz`` in Keras' ``mnist.npz`` layout (``x_train, y_train, x_test, y_test``). ``None``
        asks ``keras.datasets.mnist`` (downloads once, needs internet).
    textures : path, optional
        A folder of texture images (grayscale-converted, tiled when small); ``None`` uses the
        config's ``texture_folder`` if set, else the built-in procedural pool
        (``textures.texture_names()``).

    Attributes
    ----------
    config : BenchmarkConfig
    texture_names : list of str
        The pool in use; ``tile_textures`` / ``foreground_texture`` index into it.
    bias_texture : int
        Index of the bias texture in ``texture_names`` (-1 when ``bias.strength == "none"``).
    """

    def __init__(
        self,
        config: Union[BenchmarkConfig, Mapping[str, Any], str, Path, None] = None,
        mnist: Union[str, Path, None] = None,
        textures: Union[str, Path, None] = None,
    ):
        self.config = config if isinstance(config, BenchmarkConfig) else load_config(config)
        cfg = self.config
        textures = textures if textures is not None else (cfg.texture_folder or None)
        pool = builtin_pool(cfg.image_size) if textures is None else folder_pool(textures, cfg.image_size)
        self.pool: TexturePool = pool.select(cfg.texture_names)
        self.biased = cfg.bias.strength != "none"
        try:
            self.bias_texture = self.pool.index(cfg.bias.texture) if self.biased else -1
        except GsalInputError as exc:
            raise GsalInputError(f"bias texture: {exc} (set [bias] texture in the benchmark config)") from None
        # Strong bias takes the bias texture out of every other sample, so the rest of the pool
        # must still fill the foreground and all tiles with distinct textures.
        needed = cfg.tiles + (2 if cfg.bias.strength == "strong" else 1)
        if len(self.pool) < needed:
            raise GsalInputError(
                f"the texture pool has {len(self.pool)} textures but tiles={cfg.tiles} with bias "
                f"{cfg.bias.strength!r} needs at least {needed}; add textures or use fewer tiles"
            )
        self.mnist = load_mnist(mnist)
        self._boxes = tile_boxes(cfg.image_size, cfg.tiles)
        self._tile_map = tile_map(cfg.image_size, cfg.tiles)

    @property
    def texture_names(self) -> list[str]:
        return list(self.pool.names)

    def samples(self, split: str, n: Optional[int] = None) -> dict[str, np.ndarray]:
        """The first ``n`` samples of ``split`` as numpy arrays.

        Parameters
        ----------
        split : str
            ``"train"`` or ``"test"``.
        n : int, optional
            Number of samples; ``config.n_train`` / ``config.n_test`` when ``None``.

        Returns
        -------
        dict
            ``image (N, S, S, 1) float32`` in [0, 1], ``segmentation (N, S, S) int32`` (0-9 digit,
            10 background), ``digit_mask``, ``background_mask``, ``biased_tile_mask``
            ``(N, S, S) float32``, ``digit``, ``biased_tile`` (-1 if none), ``foreground_texture``,
            ``mnist_index`` ``(N,) int32``, ``tile_textures (N, tiles) int32``, ``is_biased (N,) bool``.
        """
        n = self._check_request(split, n)
        blocks = [self._block(split, b, count) for b, count in _blocks(n)]
        if not blocks:
            return storage.to_public(storage.empty_compact(self.config.image_size, self.config.tiles))
        return storage.to_public({k: np.concatenate([blk[k] for blk in blocks]) for k in storage.COMPACT_FIELDS})

    def generate(
        self,
        out_dir: Union[str, Path],
        splits: Optional[Mapping[str, int]] = None,
        progress: Optional[ProgressCallback] = None,
    ) -> dict[str, Any]:
        """Write the dataset as compressed shards plus ``card.json`` into ``out_dir``.

        Parameters
        ----------
        out_dir : path
            Created if missing; files of the same names are overwritten.
        splits : dict, optional
            Samples per split, e.g. ``{"train": 10000, "test": 2000}``; defaults to the config's
            ``n_train`` / ``n_test``. Splits of size 0 are left out.
        progress : callable, optional
            ``progress(split, done, total)`` after every shard.

        Returns
        -------
        dict
            The card: config, texture pool, MNIST source, per-split counts and shards, and
            ``files`` (every file written, card last).
        """
        cfg = self.config
        if splits is None:
            splits = {"train": cfg.n_train, "test": cfg.n_test}
        requests = {split: self._check_request(split, n) for split, n in splits.items()}
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        card: dict[str, Any] = {
            "format": storage.CARD_FORMAT,
            "version": storage.CARD_VERSION,
            "generator": f"gsal_tf {__version__}",
            "config": cfg.to_dict(),
            "num_classes": classes.NUM_CLASSES,
            "background_class": classes.BACKGROUND,
            "textures": {"source": self.pool.source, "names": self.texture_names},
            "bias_texture": {"index": self.bias_texture, "name": self.texture_names[self.bias_texture] if self.biased else None},
            "mnist": self.mnist.source,
            "splits": {},
        }
        files = []
        for split, n in requests.items():
            if n == 0:
                continue
            shards = []
            per_digit = np.zeros(10, np.int64)
            biased = elsewhere = 0
            for b, count in _blocks(n):
                block = self._block(split, b, count)
                name = f"{split}-{b:05d}.npz"
                shards.append({"file": name, "n": count, "sha256": storage.write_shard(out_dir / name, block)})
                files.append(name)
                per_digit += np.bincount(block["digit"], minlength=10)
                biased += int(block["is_biased"].sum())
                elsewhere += int(self._bias_texture_elsewhere(block).sum())
                if progress is not None:
                    progress(split, b * storage.SHARD_SIZE + count, n)
            card["splits"][split] = {
                "n": n,
                "seed": cfg.split_seed(split),
                "per_digit": per_digit.tolist(),
                "biased": biased,
                "bias_texture_elsewhere": elsewhere,
                "shards": shards,
            }
        card["seconds"] = round(time.perf_counter() - start, 3)
        card["files"] = files + [storage.CARD_NAME]
        storage.write_card(out_dir, card)
        return card

    def _check_request(self, split: str, n: Optional[int]) -> int:
        if split not in SPLITS:
            raise GsalInputError(f"split must be 'train' or 'test' (MNIST's own splits), got {split!r}")
        if n is None:
            n = self.config.n_train if split == "train" else self.config.n_test
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise GsalInputError(f"the number of {split} samples must be a non-negative integer, got {n!r}")
        return int(n)

    def _bias_texture_elsewhere(self, block: dict[str, np.ndarray]) -> np.ndarray:
        """(N,) bool: samples holding the bias texture other than in their biased tile."""
        if not self.biased:
            return np.zeros(len(block["digit"]), bool)
        in_tiles = (block["tile_textures"] == self.bias_texture).sum(axis=1)
        in_tiles -= block["is_biased"].astype(in_tiles.dtype)
        return (in_tiles > 0) | (block["foreground_texture"] == self.bias_texture)

    def _digit_order(self, split: str, n: int) -> np.ndarray:
        """MNIST indices of the first ``n`` samples: permutations of the split, back to back."""
        available = len(self.mnist.labels[split])
        rng = np.random.default_rng([self.config.split_seed(split), _SPLIT_CODES[split], 0])
        rounds = -(-n // available)
        return np.concatenate([rng.permutation(available) for _ in range(max(rounds, 1))])[:n]

    def _block(self, split: str, block: int, count: int) -> dict[str, np.ndarray]:
        """Compact arrays (see ``storage``) of samples ``block * SHARD_SIZE ...`` + ``count``."""
        cfg = self.config
        tiles, full = cfg.tiles, storage.SHARD_SIZE
        rng = np.random.default_rng([cfg.split_seed(split), _SPLIT_CODES[split], 1, block])
        # Every draw covers a full block and is then cut to ``count``: a shorter request yields a
        # prefix of a longer one.
        u_digit = rng.random((3, full))[:, :count]
        u_offsets = rng.random((full, tiles + 1, 2))[:count]
        keys = rng.random((full, len(self.pool)))[:count]
        u_tile = rng.random(full)[:count]
        u_levels = rng.random((full, tiles + 1, 2))[:count]

        start = block * full
        index = self._digit_order(split, start + count)[start:]
        digit = self.mnist.labels[split][index]
        digit_mask = self._digit_masks(self.mnist.images[split][index], u_digit)
        is_biased = digit == cfg.bias.digit if self.biased else np.zeros(count, bool)
        foreground_texture, tile_textures, biased_tile = self._choose_textures(keys, u_tile, is_biased)
        image = self._render(digit_mask, foreground_texture, tile_textures, u_offsets, u_levels)

        segmentation = np.where(digit_mask > 0, digit[:, None, None], classes.BACKGROUND).astype(np.uint8)
        in_biased_tile = self._tile_map[None] == biased_tile[:, None, None]
        biased_tile_mask = in_biased_tile & (digit_mask == 0) & is_biased[:, None, None]
        return {
            "image": image,
            "segmentation": segmentation,
            "biased_tile_mask": biased_tile_mask.astype(np.uint8),
            "digit": digit.astype(np.uint8),
            "is_biased": is_biased,
            "biased_tile": biased_tile.astype(np.int8),
            "tile_textures": tile_textures.astype(np.int32),
            "foreground_texture": foreground_texture.astype(np.int32),
            "mnist_index": index.astype(np.int32),
        }

    def _digit_masks(self, digits: np.ndarray, u_digit: np.ndarray) -> np.ndarray:
        """``(N, S, S)`` masks of the digits at random sizes (``u_digit[0]``) and places (``[1:]``)."""
        cfg = self.config
        size = cfg.image_size
        low, high = cfg.digit_scale
        sides = np.clip(np.round((low + (high - low) * u_digit[0]) * size), 1, size).astype(np.int64)
        tops = np.floor(u_digit[1] * (size - sides + 1)).astype(np.int64)
        lefts = np.floor(u_digit[2] * (size - sides + 1)).astype(np.int64)
        dilation = int(round(cfg.digit_dilation * size / 64))
        return place_digits(digits, sides, tops, lefts, size, dilation)

    def _choose_textures(self, keys: np.ndarray, u_tile: np.ndarray, is_biased: np.ndarray):
        """Foreground ``(N,)`` and tile ``(N, tiles)`` textures, and the biased tile ``(N,)`` (-1: none).

        The ``tiles + 1`` textures of a sample are the pool positions of its smallest random
        ``keys``: distinct by construction. A key of 2 (above every uniform key) keeps the bias
        texture out wherever it must not appear; the biased tile then gets it explicitly.
        """
        cfg = self.config
        tiles = cfg.tiles
        if self.biased:
            keys = keys.copy()
            exclude = np.ones(len(keys), bool) if cfg.bias.strength == "strong" else is_biased
            keys[exclude, self.bias_texture] = 2.0
        chosen = np.argsort(keys, axis=1)[:, : tiles + 1]
        foreground_texture, tile_textures = chosen[:, 0], chosen[:, 1:].copy()
        biased_tile = np.where(is_biased, np.minimum((u_tile * tiles).astype(np.int64), tiles - 1), -1)
        rows = np.flatnonzero(is_biased)
        tile_textures[rows, biased_tile[rows]] = self.bias_texture
        return foreground_texture, tile_textures, biased_tile

    def _render(self, digit_mask, foreground_texture, tile_textures, u_offsets, u_levels) -> np.ndarray:
        """``(N, S, S)`` uint8 images: textured digit over textured tiles.

        Region r (0: foreground, k + 1: tile k) shows ``low_r + c_r * texture`` with
        ``c_r ~ U(contrast)`` and ``low_r ~ U(0, 1 - c_r)``, then mapped into the region's
        ``foreground_levels`` / ``background_levels`` interval; with the default intervals
        foreground and background share one law, so brightness says nothing about the digit.
        """
        size = self.config.image_size
        low_c, high_c = self.config.contrast
        contrast = (low_c + (high_c - low_c) * u_levels[..., 0]).astype(np.float32)[..., None, None]
        low = ((1 - contrast[..., 0, 0]) * u_levels[..., 1]).astype(np.float32)[..., None, None]
        foreground = low[:, 0] + contrast[:, 0] * self._crop(foreground_texture, u_offsets[:, 0], size, size)
        background = np.empty_like(foreground)
        for k, (top, bottom, left, right) in enumerate(self._boxes):
            crop = self._crop(tile_textures[:, k], u_offsets[:, k + 1], bottom - top, right - left)
            background[:, top:bottom, left:right] = low[:, k + 1] + contrast[:, k + 1] * crop
        (f_lo, f_hi), (b_lo, b_hi) = self.config.foreground_levels, self.config.background_levels
        foreground = f_lo + (f_hi - f_lo) * foreground
        background = b_lo + (b_hi - b_lo) * background
        image = digit_mask * foreground + (1 - digit_mask) * background
        return np.round(image * 255).astype(np.uint8)

    def _crop(self, texture: np.ndarray, u_offset: np.ndarray, height: int, width: int) -> np.ndarray:
        """``(N, height, width)`` crops of canvases ``texture (N,)`` at random offsets ``u_offset (N, 2)``."""
        canvas = self.pool.canvases.shape[-1]
        top = np.floor(u_offset[:, 0] * (canvas - height + 1)).astype(np.int64)
        left = np.floor(u_offset[:, 1] * (canvas - width + 1)).astype(np.int64)
        rows = top[:, None, None] + np.arange(height)[None, :, None]
        cols = left[:, None, None] + np.arange(width)[None, None, :]
        return self.pool.canvases[texture[:, None, None], rows, cols]


def _blocks(n: int) -> list[tuple[int, int]]:
    """``(block index, samples in it)`` covering ``n`` samples."""
    full = storage.SHARD_SIZE
    return [(b, min(full, n - b * full)) for b in range(-(-n // full))]


def data_dir_name(cfg: BenchmarkConfig) -> str:
    """A folder name unique to ``cfg``: ``data-<strength>-<n_train>-<hash8>``, the hash over the
    whole config, so two configs never share a folder."""
    digest = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
    return f"data-{cfg.bias.strength}-{cfg.n_train}-{digest}"


def generate_once(cfg: BenchmarkConfig, folder: Union[str, Path], mnist=None, textures=None,
                  on_generate: Optional[Callable[[Path], None]] = None) -> Path:
    """The dataset of ``cfg`` in ``folder``, generated only if it is not there yet.

    The one policy for reusing generated data (the protocol and ``gsal zoo build`` follow it):

    - a folder generated from exactly ``cfg`` (its card's config) is reused as it is;
    - a folder without a card (a generation that was interrupted: the card is written last) is
      generated again, over the partial files;
    - a folder generated from another config is refused with a GsalInputError — data of one
      config is never silently mixed with, or replaced by, data of another.

    ``on_generate(folder)`` is called before a generation starts.
    """
    folder = Path(folder)
    if (folder / storage.CARD_NAME).is_file():
        if storage.generated_from(folder, cfg):
            return folder
        raise GsalInputError(
            f"{folder} holds data generated from another config (the data config, its sizes or its bias "
            f"changed since it was made); use a new output folder, or delete {folder} to generate it again"
        )
    if on_generate:
        on_generate(folder)
    TextureMNIST(cfg, mnist=mnist, textures=textures).generate(folder)
    return folder
