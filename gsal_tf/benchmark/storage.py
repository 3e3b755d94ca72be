"""On-disk TextureMNIST: compressed ``.npz`` shards plus a ``card.json``, and their loaders.

Layout of a generated folder::

    card.json                 config, texture pool, MNIST source, counts, shard list with sha256
    train-00000.npz ...       up to SHARD_SIZE samples each, in generation order
    test-00000.npz ...

A shard stores the compact form of a sample: the image as uint8 (the generator quantises images to
1/255 steps, so nothing is lost), the segmentation as uint8, the biased-tile mask as uint8 and the
per-sample records. :func:`to_public` turns it into the arrays ``TextureMNIST.samples`` returns;
``load_samples(dir, split)`` therefore equals ``TextureMNIST(...).samples(split)`` bit for bit.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from gsal_tf.benchmark.classes import BACKGROUND
from gsal_tf.benchmark.tiles import tile_map
from gsal_tf.errors import GsalInputError, IntegrityError

__all__ = [
    "CARD_NAME", "CARD_FORMAT", "CARD_VERSION", "SHARD_SIZE", "RECORD_FIELDS", "COMPACT_FIELDS",
    "to_public", "texture_map", "write_shard", "write_card", "read_card", "generated_from", "load_compact",
    "load_samples", "load_dataset", "empty_compact",
]

CARD_NAME = "card.json"
CARD_FORMAT = "gsal-texture-mnist"
CARD_VERSION = 1
#: Samples per shard; also the generator's block size (see ``texture_mnist``).
SHARD_SIZE = 1000

#: Per-sample records stored next to the pixel arrays.
RECORD_FIELDS = ("digit", "is_biased", "biased_tile", "tile_textures", "foreground_texture", "mnist_index")
COMPACT_FIELDS = ("image", "segmentation", "biased_tile_mask") + RECORD_FIELDS


def to_public(compact: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Expand compact arrays (uint8 pixels) to the public sample dict.

    Returns
    -------
    dict with
        image (N, S, S, 1) float32 in [0, 1]; segmentation (N, S, S) int32, 0-9 digit, 10 background;
        digit_mask, background_mask, biased_tile_mask (N, S, S) float32 in {0, 1};
        digit (N,) int32; is_biased (N,) bool; biased_tile (N,) int32, -1 when not biased;
        tile_textures (N, tiles) int32 and foreground_texture (N,) int32, indices into the card's
        texture names; mnist_index (N,) int32, the digit's index in its MNIST split;
        texture_map (N, S, S) int32, the texture id of every pixel (:func:`texture_map`): the
        context classes of TextureMNIST for context statistics.
    """
    segmentation = compact["segmentation"].astype(np.int32)
    digit_mask = (segmentation != BACKGROUND).astype(np.float32)
    textures = texture_map(segmentation, compact["tile_textures"], compact["foreground_texture"])
    return {
        "image": (compact["image"].astype(np.float32) / 255)[..., None],
        "segmentation": segmentation,
        "digit_mask": digit_mask,
        "background_mask": 1 - digit_mask,
        "biased_tile_mask": compact["biased_tile_mask"].astype(np.float32),
        "digit": compact["digit"].astype(np.int32),
        "is_biased": compact["is_biased"].astype(bool),
        "biased_tile": compact["biased_tile"].astype(np.int32),
        "tile_textures": compact["tile_textures"].astype(np.int32),
        "foreground_texture": compact["foreground_texture"].astype(np.int32),
        "mnist_index": compact["mnist_index"].astype(np.int32),
        "texture_map": textures,
    }


def texture_map(segmentation, tile_textures, foreground_texture) -> np.ndarray:
    """The texture id (index into the card's texture names) of every pixel, (N, S, S) int32.

    ``texture_map[n, y, x]`` is ``foreground_texture[n]`` on the digit
    (``segmentation != BACKGROUND``) and ``tile_textures[n, t]`` on the background of tile ``t``
    (``tiles.tile_map``). Inputs: segmentation (N, S, S), tile_textures (N, tiles),
    foreground_texture (N,).
    """

    segmentation = np.asarray(segmentation)
    tile_textures = np.asarray(tile_textures, np.int32)
    tiles = tile_map(segmentation.shape[-1], tile_textures.shape[-1])
    background = tile_textures[:, tiles]  # (N, S, S)
    foreground = np.asarray(foreground_texture, np.int32)[:, None, None]
    return np.where(segmentation != BACKGROUND, foreground, background).astype(np.int32)


def write_shard(path: Path, compact: dict[str, np.ndarray]) -> str:
    """Write one compressed shard; returns its sha256."""
    np.savez_compressed(path, **{k: compact[k] for k in COMPACT_FIELDS})
    return _sha256(path)


def write_card(out_dir: Path, card: dict[str, Any]) -> None:
    (Path(out_dir) / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")


def read_card(directory: Union[str, Path]) -> dict[str, Any]:
    """The ``card.json`` of a generated TextureMNIST folder."""
    path = Path(directory) / CARD_NAME
    if not path.is_file():
        raise GsalInputError(f"{str(directory)!r} is not a TextureMNIST folder (no {CARD_NAME}); create one with `gsal benchmark generate`")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GsalInputError(f"{str(path)!r} is not valid JSON ({exc}); regenerate the dataset") from None
    if card.get("format") != CARD_FORMAT:
        raise GsalInputError(f"{str(path)!r} is not a TextureMNIST card (format {card.get('format')!r})")
    return card


def generated_from(directory: Union[str, Path], cfg) -> bool:
    """True when ``directory`` holds a dataset generated from exactly ``cfg`` (its card's config)."""
    path = Path(directory) / CARD_NAME
    return path.is_file() and read_card(directory).get("config") == cfg.to_dict()


def load_compact(directory: Union[str, Path], split: str, n: Optional[int] = None, verify: bool = True) -> dict[str, np.ndarray]:
    """The compact arrays of the first ``n`` samples (all when ``None``) of ``split``."""
    directory = Path(directory)
    card = read_card(directory)
    splits = card["splits"]
    if split not in splits:
        raise GsalInputError(f"split {split!r} is not in {str(directory)!r}; it holds: {', '.join(splits) or 'nothing'}")
    total = splits[split]["n"]
    if n is None:
        n = total
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= total:
        raise GsalInputError(f"n must be an integer in [0, {total}] for split {split!r} of {str(directory)!r}, got {n!r}")
    parts: list[dict[str, np.ndarray]] = []
    have = 0
    for shard in splits[split]["shards"]:
        if have >= n:
            break
        path = directory / shard["file"]
        if not path.is_file():
            raise GsalInputError(f"shard {str(path)!r} listed in the card is missing; regenerate the dataset")
        if verify and _sha256(path) != shard["sha256"]:
            raise IntegrityError(f"shard {str(path)!r} does not match the sha256 in its card; regenerate the dataset")
        with np.load(path, allow_pickle=False) as archive:
            parts.append({k: archive[k] for k in COMPACT_FIELDS})
        have += shard["n"]
    if not parts:
        size = card["config"]["image_size"]
        tiles = card["config"]["tiles"]
        return empty_compact(size, tiles)
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in COMPACT_FIELDS}


def load_samples(directory: Union[str, Path], split: str, n: Optional[int] = None) -> dict[str, np.ndarray]:
    """Samples of a generated folder as the dict ``TextureMNIST.samples`` returns.

    Parameters
    ----------
    directory : path
        A folder written by ``TextureMNIST.generate`` / ``gsal benchmark generate``.
    split : str
        ``"train"`` or ``"test"``.
    n : int, optional
        The first ``n`` samples; all of them when ``None``.
    """
    return to_public(load_compact(directory, split, n))


def load_dataset(
    directory: Union[str, Path],
    split: str,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: Optional[int] = None,
    as_dict: bool = False,
    n: Optional[int] = None,
):
    """A batched ``tf.data.Dataset`` of a generated split, ready for ``model.fit``.

    Parameters
    ----------
    directory : path
        A folder written by ``TextureMNIST.generate``.
    split : str
        ``"train"`` or ``"test"``.
    batch_size : int, default 32
    shuffle : bool, default False
        Shuffle the whole split, anew every epoch (``seed`` makes the order reproducible).
    seed : int, optional
        Shuffle seed.
    as_dict : bool, default False
        Yield the full sample dict (see :func:`to_public`) instead of ``(image, segmentation)``.
    n : int, optional
        Use only the first ``n`` samples.

    Returns
    -------
    tf.data.Dataset
        Batches of ``image (B, S, S, 1) float32`` and ``segmentation (B, S, S) int32``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise GsalInputError(f"batch_size must be a positive integer, got {batch_size!r}")
    import tensorflow as tf

    compact = load_compact(directory, split, n)
    count = len(compact["digit"])
    # Pixels stay uint8 inside the pipeline (4x less memory); batches are expanded on the fly.
    dataset = tf.data.Dataset.from_tensor_slices(compact)
    if shuffle:
        dataset = dataset.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    tile_index = tf.constant(tile_map(compact["image"].shape[-1], compact["tile_textures"].shape[-1]))

    def expand(batch):
        segmentation = tf.cast(batch["segmentation"], tf.int32)
        image = (tf.cast(batch["image"], tf.float32) / 255.0)[..., None]
        if not as_dict:
            return image, segmentation
        digit_mask = tf.cast(segmentation != BACKGROUND, tf.float32)
        return {
            "image": image,
            "segmentation": segmentation,
            "digit_mask": digit_mask,
            "background_mask": 1.0 - digit_mask,
            "biased_tile_mask": tf.cast(batch["biased_tile_mask"], tf.float32),
            "digit": tf.cast(batch["digit"], tf.int32),
            "is_biased": tf.cast(batch["is_biased"], tf.bool),
            "biased_tile": tf.cast(batch["biased_tile"], tf.int32),
            "tile_textures": tf.cast(batch["tile_textures"], tf.int32),
            "foreground_texture": tf.cast(batch["foreground_texture"], tf.int32),
            "mnist_index": tf.cast(batch["mnist_index"], tf.int32),
            "texture_map": tf.where(segmentation != BACKGROUND, tf.cast(batch["foreground_texture"], tf.int32)[:, None, None],
                                    tf.gather(tf.cast(batch["tile_textures"], tf.int32), tile_index, axis=1)),
        }

    return dataset.map(expand, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def empty_compact(size: int, tiles: int) -> dict[str, np.ndarray]:
    return {
        "image": np.zeros((0, size, size), np.uint8),
        "segmentation": np.zeros((0, size, size), np.uint8),
        "biased_tile_mask": np.zeros((0, size, size), np.uint8),
        "digit": np.zeros((0,), np.uint8),
        "is_biased": np.zeros((0,), bool),
        "biased_tile": np.zeros((0,), np.int8),
        "tile_textures": np.zeros((0, tiles), np.int32),
        "foreground_texture": np.zeros((0,), np.int32),
        "mnist_index": np.zeros((0,), np.int32),
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
