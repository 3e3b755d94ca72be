"""TOML configs (stdlib ``tomllib``): reading them, and checking their keys against an API."""

from __future__ import annotations

import inspect
import os
import tomllib
from pathlib import Path

from gsal_tf.errors import GsalInputError

__all__ = ["read_toml", "keyword_options", "gsal_home"]


def read_toml(path) -> dict:
    """Parse a TOML file; a missing or malformed file is a GsalInputError naming the problem."""
    path = Path(path)
    if not path.is_file():
        raise GsalInputError(f"config file {str(path)!r} does not exist; give the path of a TOML file (see configs/)")
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise GsalInputError(f"{path} is not valid TOML: {exc}") from None


def keyword_options(table: dict, target, where: str, exclude: tuple[str, ...] = ()) -> dict:
    """Check that every key of ``table`` is a keyword argument of ``target`` (a callable).

    Returns a copy of the table with lists turned into tuples (TOML has no tuples).
    """
    params = set(inspect.signature(target).parameters) - {"self", *exclude}
    unknown = sorted(set(table) - params)
    if unknown:
        raise GsalInputError(f"unknown option(s) {', '.join(unknown)} in {where}; known: {', '.join(sorted(params))}")
    return {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}



def gsal_home() -> Path:
    """gsal's own folder for downloaded weights and compiled graphs: ``$GSAL_HOME`` (default
    ``~/.cache/gsal``)."""
    return Path(os.environ.get("GSAL_HOME", Path.home() / ".cache" / "gsal"))
