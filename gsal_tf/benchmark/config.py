"""The TextureMNIST configuration: one validated, immutable object read from TOML or a dict.

A config file (``configs/benchmark/strong.toml``)::

    image_size = 64          # side of the square images, pixels
    tiles = 2                # background tiles: 1 (whole), 2 (top/bottom halves), 4 (quadrants)
    seed = 0                 # training split RNG
    test_seed = 1907         # test split RNG, independent of ``seed`` on purpose
    n_train = 10000
    n_test = 2000
    digit_scale = [0.8, 1.0] # side of the (28 px) MNIST box as a fraction of image_size
    digit_dilation = 1       # pixels added to each side of the strokes (per 64 px of image)
    contrast = [0.5, 1.0]    # range of each region's contrast; its brightness offset is random too
    law = "paper"            # image law (LAWS): "paper" (default) or "bright-digit"; or give
                             # foreground_levels / background_levels instead

    [bias]
    strength = "strong"      # "none" | "weak" | "strong"
    digit = 0                # the digit tied to the bias texture
    texture = "checker_coarse"  # name or index in the texture pool

    [textures]
    names = []               # pool subset (names or indices); empty = the whole pool
    folder = ""              # a folder of texture images (relative to this file) instead of the
                             # built-in procedural pool; names and bias.texture are then file stems

Every value is checked here, at the boundary; a bad one raises
:class:`~gsal_tf.errors.GsalInputError` naming the field and what it accepts.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any, Mapping, Union

from gsal_tf.config import read_toml
from gsal_tf.errors import GsalInputError

__all__ = [
    "BIAS_STRENGTHS", "TILINGS", "LAWS", "BiasConfig", "BenchmarkConfig", "load_config",
    "unbiased_counterpart",
]

#: Bias settings, weakest first.
BIAS_STRENGTHS = ("none", "weak", "strong")
#: Allowed background tilings: whole background, top/bottom halves, quadrants.
TILINGS = (1, 2, 4)
#: Named image laws: (foreground_levels, background_levels). ``paper`` is the paper's composition
#: (Hoyer et al. 2019): digit and background textures from the same pool under the same intensity
#: law, so only texture boundaries show the digit. ``bright-digit`` maps the digit into the upper
#: and the background into the lower part of the range (the digit brighter on average, as in MNIST,
#: yet overlapping): the law of gsal-tf 0.2's configs and zoo, kept as a named variant.
LAWS = {"paper": ((0.0, 1.0), (0.0, 1.0)), "bright-digit": ((0.4, 1.0), (0.0, 0.6))}

_DEFAULTS: dict[str, Any] = {
    "image_size": 64,
    "tiles": 2,
    "seed": 0,
    "test_seed": 1907,
    "n_train": 10000,
    "n_test": 2000,
    "digit_scale": [0.8, 1.0],
    "digit_dilation": 1,
    "contrast": [0.5, 1.0],
    "law": "paper",
    "foreground_levels": [0.0, 1.0],
    "background_levels": [0.0, 1.0],
    "bias": {"strength": "strong", "digit": 0, "texture": "checker_coarse"},
    "textures": {"names": [], "folder": ""},
}


@dataclasses.dataclass(frozen=True)
class BiasConfig:
    """The context bias: which digit is tied to which background texture, and how strongly.

    Parameters
    ----------
    strength : str, default "strong"
        ``"none"`` (textures drawn at random), ``"weak"`` (every sample of ``digit`` has
        ``texture`` in one random background tile; the texture still occurs in other samples) or
        ``"strong"`` (as weak, and ``texture`` occurs nowhere else).
    digit : int, default 0
        The biased digit, 0-9.
    texture : str or int, default "checker_coarse"
        The bias texture, by name or by position in the pool in use, i.e. after the
        ``textures.names`` selection (resolved by ``TextureMNIST``).
    """

    strength: str = "strong"
    digit: int = 0
    texture: Union[str, int] = "checker_coarse"


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """A validated TextureMNIST configuration; build it with :func:`load_config`.

    Parameters
    ----------
    image_size : int, default 64
        Side of the square grayscale images, in pixels (32-512).
    tiles : int, default 2
        Background tiles, each with its own texture: 1, 2 (top/bottom halves) or 4 (quadrants).
    seed : int, default 0
        Seed of the training split.
    test_seed : int, default 1907
        Seed of the test split. Kept separate from ``seed`` so that every model trained with any
        training seed is evaluated on the very same test images.
    n_train, n_test : int, default 10000, 2000
        Samples per split written by ``generate`` (``samples`` takes its own ``n``).
    digit_scale : (float, float), default (0.8, 1.0)
        Range of the side of the upscaled 28x28 MNIST box, as a fraction of ``image_size``.
    digit_dilation : int, default 1
        Pixels added to each side of the digit strokes, per 64 pixels of image (0-4). Upscaled
        MNIST strokes are only ~5 px wide at 64 px; a little more lets the foreground texture
        show inside them.
    contrast : (float, float), default (0.5, 1.0)
        Each region (foreground, every tile) shows ``low + c * texture`` with ``c ~ U(contrast)``
        and ``low ~ U(0, 1 - c)``, drawn per sample. Foreground and background draw from the same
        distribution, so intensity alone never identifies the digit, while a random level
        difference mostly keeps the digit visible. ``[1.0, 1.0]`` keeps every texture full-range.
    foreground_levels, background_levels : (float, float), default (0.0, 1.0)
        The intensity interval each region's values are mapped into: ``lo + (hi - lo) * value``.
        The defaults are the paper's law (:data:`LAWS` ``"paper"``): foreground and background on
        the same footing. A brighter foreground interval (``"bright-digit"``: (0.4, 1.0) over
        (0.0, 0.6)) makes the digit stand out as in MNIST. In a file, ``law = "<name>"`` sets
        both; giving ``law`` and levels in the same table is an error. :attr:`law` names the law
        the levels make.
    bias : BiasConfig
        The context bias.
    texture_folder : str, default ""
        A folder of texture images (``[textures] folder``; a relative path in a TOML file is
        resolved against the file's folder) that replaces the built-in procedural pool; every
        image file in it is one texture named by its file stem. Empty: the built-in pool.
    texture_names : tuple of (str or int), default ()
        Subset of the texture pool to draw from (names or indices); empty means all of it.
    """

    image_size: int = 64
    tiles: int = 2
    seed: int = 0
    test_seed: int = 1907
    n_train: int = 10000
    n_test: int = 2000
    digit_scale: tuple[float, float] = (0.8, 1.0)
    digit_dilation: int = 1
    contrast: tuple[float, float] = (0.5, 1.0)
    foreground_levels: tuple[float, float] = (0.0, 1.0)
    background_levels: tuple[float, float] = (0.0, 1.0)
    bias: BiasConfig = BiasConfig()
    texture_names: tuple[Union[str, int], ...] = ()
    texture_folder: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The config in the nested layout of the TOML files (``load_config`` reads it back)."""
        return {
            "image_size": self.image_size,
            "tiles": self.tiles,
            "seed": self.seed,
            "test_seed": self.test_seed,
            "n_train": self.n_train,
            "n_test": self.n_test,
            "digit_scale": list(self.digit_scale),
            "digit_dilation": self.digit_dilation,
            "contrast": list(self.contrast),
            "foreground_levels": list(self.foreground_levels),
            "background_levels": list(self.background_levels),
            "bias": dataclasses.asdict(self.bias),
            # The folder only when set: configs of the built-in pool keep their 0.2 form (and hash).
            "textures": {"names": list(self.texture_names), **({"folder": self.texture_folder} if self.texture_folder else {})},
        }

    @property
    def law(self) -> str:
        """The name in :data:`LAWS` of this config's (foreground, background) levels, or "custom"."""
        levels = (tuple(self.foreground_levels), tuple(self.background_levels))
        return next((name for name, pair in LAWS.items() if pair == levels), "custom")

    def split_seed(self, split: str) -> int:
        """The seed of ``split`` ("train" or "test")."""
        return self.seed if split == "train" else self.test_seed


def load_config(source: Union[str, Path, Mapping[str, Any], BenchmarkConfig, None] = None, **overrides: Any) -> BenchmarkConfig:
    """Read and validate a TextureMNIST config.

    Parameters
    ----------
    source : path, dict or BenchmarkConfig, optional
        A TOML file, a dict in the same nested layout, or an existing config. ``None`` gives the
        defaults (the strongly biased setting).
    **overrides
        Top-level fields to replace, e.g. ``seed=3, n_train=500``. A dict value for a table
        (``bias={"strength": "weak"}``) is merged into that table.

    Returns
    -------
    BenchmarkConfig

    Raises
    ------
    GsalInputError
        Unreadable file, unknown field or bad value; the message names the field.
    """
    raw = copy.deepcopy(_DEFAULTS)
    _merge(raw, _read_source(source), where="config")
    _merge(raw, overrides, where="override")
    return _validate(raw)


def unbiased_counterpart(cfg: BenchmarkConfig) -> BenchmarkConfig:
    """``cfg`` with the bias switched off and no training samples: the test data a biased model's
    IoU is measured on (same image law, sizes and ``test_seed``, so the same digits). The bias
    digit and texture stay in the config but draw nothing when the strength is ``"none"``."""
    return load_config(cfg, bias={"strength": "none"}, n_train=0)


def _read_source(source: Any) -> dict[str, Any]:
    if source is None:
        return {}
    if isinstance(source, BenchmarkConfig):
        return source.to_dict()
    if isinstance(source, Mapping):
        return copy.deepcopy(dict(source))
    if isinstance(source, (str, Path)):
        raw = read_toml(source)
        folder = raw.get("textures", {}).get("folder") if isinstance(raw.get("textures"), Mapping) else None
        if isinstance(folder, str) and folder and not Path(folder).is_absolute():
            raw["textures"]["folder"] = str((Path(source).parent / folder).resolve())
        return raw
    raise GsalInputError(f"a benchmark config must be a TOML path or a dict, not {type(source).__name__}")


def _merge(base: dict[str, Any], update: Mapping[str, Any], where: str) -> None:
    if "law" in update:
        law = update["law"]
        if law not in LAWS:
            raise GsalInputError(f"law must be one of {', '.join(map(repr, LAWS))} (or give foreground_levels and "
                                 f"background_levels instead), got {law!r}")
        if {"foreground_levels", "background_levels"} & set(update):
            raise GsalInputError(f"benchmark {where}: give either law = {law!r} or foreground_levels/background_levels, not both")
        base["foreground_levels"], base["background_levels"] = (list(v) for v in LAWS[law])
        update = {k: v for k, v in update.items() if k != "law"}
    for key, value in update.items():
        if key not in _DEFAULTS:
            raise GsalInputError(f"unknown benchmark {where} field {key!r}; valid fields: {', '.join(_DEFAULTS)}")
        if isinstance(_DEFAULTS[key], dict):
            if not isinstance(value, Mapping):
                raise GsalInputError(f"benchmark field {key!r} must be a table (dict) with keys {', '.join(_DEFAULTS[key])}")
            for sub in value:
                if sub not in _DEFAULTS[key]:
                    raise GsalInputError(f"unknown benchmark field '{key}.{sub}'; valid: {', '.join(_DEFAULTS[key])}")
            base[key].update(value)
        else:
            base[key] = value


def _validate(raw: dict[str, Any]) -> BenchmarkConfig:
    image_size = _int(raw, "image_size", 32, 512)
    tiles = _int(raw, "tiles", 1, 4)
    if tiles not in TILINGS:
        raise GsalInputError(f"tiles must be 1, 2 (top/bottom halves) or 4 (quadrants), got {tiles}")
    seed = _int(raw, "seed", 0, 2**63 - 1)
    test_seed = _int(raw, "test_seed", 0, 2**63 - 1)
    n_train = _int(raw, "n_train", 0, 10**8)
    n_test = _int(raw, "n_test", 0, 10**8)

    digit_scale = _range(raw, "digit_scale", 0.3, 1.0, what="fraction of image_size")
    digit_dilation = _int(raw, "digit_dilation", 0, 4)
    contrast = _range(raw, "contrast", 0.1, 1.0, what="texture contrast")
    foreground_levels = _range(raw, "foreground_levels", 0.0, 1.0, what="intensity interval")
    background_levels = _range(raw, "background_levels", 0.0, 1.0, what="intensity interval")

    bias = raw["bias"]
    strength = bias["strength"]
    if strength not in BIAS_STRENGTHS:
        raise GsalInputError(f"bias.strength must be one of {', '.join(BIAS_STRENGTHS)}, got {strength!r}")
    digit = _int(bias, "digit", 0, 9, prefix="bias.")
    texture = bias["texture"]
    if isinstance(texture, bool) or not isinstance(texture, (str, int)) or texture == "":
        raise GsalInputError(f"bias.texture must be a texture name or an index into the texture pool, got {texture!r}")

    folder = raw["textures"]["folder"]
    if not isinstance(folder, str):
        raise GsalInputError(f"textures.folder must be a folder path (a string; empty = the built-in pool), got {folder!r}")
    names = raw["textures"]["names"]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (str, int)) and not isinstance(n, bool) for n in names):
        raise GsalInputError(f"textures.names must be a list of texture names or indices (empty = whole pool), got {names!r}")
    if len(set(names)) != len(names):
        raise GsalInputError(f"textures.names lists a texture twice: {names!r}")

    return BenchmarkConfig(
        image_size=image_size,
        tiles=tiles,
        seed=seed,
        test_seed=test_seed,
        n_train=n_train,
        n_test=n_test,
        digit_scale=digit_scale,
        digit_dilation=digit_dilation,
        contrast=contrast,
        foreground_levels=foreground_levels,
        background_levels=background_levels,
        bias=BiasConfig(strength=strength, digit=digit, texture=texture),
        texture_names=tuple(names),
        texture_folder=folder,
    )


def _int(table: Mapping[str, Any], key: str, low: int, high: int, prefix: str = "") -> int:
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise GsalInputError(f"{prefix}{key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _range(table: Mapping[str, Any], key: str, low: float, high: float, what: str) -> tuple[float, float]:
    value = table[key]
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
        or not low <= value[0] <= value[1] <= high
    ):
        raise GsalInputError(f"{key} must be [low, high] with {low} <= low <= high <= {high} ({what}), got {value!r}")
    return float(value[0]), float(value[1])
