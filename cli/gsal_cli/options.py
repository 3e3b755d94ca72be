"""Parsing of CLI option values shared by several commands."""

from __future__ import annotations

from gsal_tf.errors import GsalInputError


def parse_pair(text: str, option: str, allow_single: bool = False) -> tuple[int, int]:
    """``"Y,X"`` -> (Y, X) ints; with ``allow_single``, ``"8"`` -> (8, 8)."""
    try:
        values = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        values = []
    if allow_single and len(values) == 1:
        values = values * 2
    if len(values) != 2:
        form = "N or ROWS,COLS" if allow_single else "two integers Y,X"
        raise GsalInputError(f"{option} {text!r}: expected {form}")
    return values[0], values[1]


def resolve_model(name_or_path: str):
    """A model from a path (.keras file or SavedModel folder) or a zoo name: (model, display name)."""
    from pathlib import Path

    import gsal_tf as gs
    from gsal_tf import io

    path = Path(name_or_path)
    if not path.exists() and name_or_path in {e.name for e in gs.zoo.list_models()}:
        return gs.zoo.load(name_or_path), name_or_path
    return io.load_model(path), str(name_or_path)
