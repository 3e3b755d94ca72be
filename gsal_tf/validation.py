"""Checks on what a user passes to an explainer, done once at the public boundary.

Each check raises :class:`gsal_tf.errors.GsalInputError` with a message that says what to fix.
"""

from __future__ import annotations

import numbers

import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = [
    "check_images", "check_request_masks", "check_class_ids", "check_class_range", "check_model_output",
    "check_grid_size", "check_choice", "check_number", "check_int", "check_int_pair",
]


def check_images(images) -> np.ndarray:
    """Images (N,H,W,C) -> float32 array; finite values."""
    try:
        arr = np.asarray(images, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise GsalInputError(f"images must be a numeric array (N,H,W,C): {exc}") from None
    if arr.ndim == 3:
        raise GsalInputError(
            f"images have shape {arr.shape}; pass a batch (N,H,W,C) — for one image use images[None]"
        )
    if arr.ndim != 4 or min(arr.shape) == 0:
        raise GsalInputError(f"images must have shape (N,H,W,C) with N,H,W,C > 0, got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        n = int(np.argwhere(bad)[0][0])
        raise GsalInputError(f"image {n} contains NaN or inf pixels ({int(bad.sum())} in all); clean or re-encode it")
    return arr


def check_request_masks(masks, images: np.ndarray, mode: str) -> np.ndarray:
    """Request masks (N,H,W) or (N,H,W,1), values 0/1 (bool allowed) -> float32 (N,H,W)."""
    arr = np.asarray(masks)
    if arr.ndim == 4 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    n, height, width = images.shape[:3]
    if arr.shape != (n, height, width):
        raise GsalInputError(
            f"request masks have shape {arr.shape}; they must be (N,H,W) = {(n, height, width)}, one per image"
        )
    arr = arr.astype(np.float32)
    if not np.all((arr == 0) | (arr == 1)):
        raise GsalInputError("request masks must hold only 0 and 1 (1 = pixels whose prediction is explained)")
    area = arr.sum(axis=(1, 2))
    empty = np.flatnonzero(area == 0)
    if empty.size:
        raise GsalInputError(f"request {int(empty[0])} is empty (no pixel is 1): there is nothing to explain")
    if mode == "context":
        full = np.flatnonzero(area == height * width)
        if full.size:
            raise GsalInputError(
                f"request {int(full[0])} covers the whole image, so there is no context to explain; "
                "use mode='full' or a smaller request"
            )
    return arr


def check_class_ids(class_ids, n: int) -> np.ndarray:
    """Class ids: an int or (N,) ints -> int32 (N,). The range is checked against the model later."""
    arr = np.asarray(class_ids)
    if arr.ndim == 0:
        arr = np.full((n,), arr)
    if arr.shape != (n,):
        raise GsalInputError(f"class_ids must be one int or N={n} ints, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise GsalInputError(f"class_ids must be integers, got {arr.dtype}")
    return arr.astype(np.int32)


def check_class_range(class_ids: np.ndarray, num_classes: int) -> None:
    bad = np.flatnonzero((class_ids < 0) | (class_ids >= num_classes))
    if bad.size:
        raise GsalInputError(
            f"class {int(class_ids[bad[0]])} (request {int(bad[0])}) is out of range: the model has "
            f"{num_classes} classes, 0..{num_classes - 1}"
        )


def check_model_output(output, image_shape, output_kind: str) -> tuple[int, int, int]:
    """Check one probe output of the model for images of ``image_shape`` (H,W,C); return (h, w, K).

    K = 1 is a binary segmenter's one channel (foreground probability or logit), which the
    explainers read as two classes (:func:`gsal_tf.model_calls.to_probabilities`)."""
    if not hasattr(output, "shape"):
        raise GsalInputError(
            f"the model returns a {type(output).__name__}, not one tensor (N,h,w,K) of per-pixel class scores; "
            "say which output is the segmentation map: gs.models.adapt(model, output_key=...)"
        )
    shape = tuple(output.shape)
    if len(shape) != 4:
        raise GsalInputError(
            f"the model's output has shape {shape}; a segmentation model must return per-pixel "
            "class scores (N,h,w,K)"
        )
    _, h, w, k = shape
    height, width = image_shape[:2]
    if w * height == k * width and h * width != w * height:
        raise GsalInputError(
            f"the model's output {shape} looks channels-first (N,K,h,w) for {height}x{width} images; "
            "wrap it: gs.models.adapt(model, channels_first_output=True)"
        )
    if k < 1:
        raise GsalInputError(f"the model's output {shape} has no class channel; a segmentation model returns (N,h,w,K), K >= 1")
    values = np.asarray(output, np.float32)
    if not np.all(np.isfinite(values)):
        raise GsalInputError("the model returned NaN or inf for this image; check the model and the input scaling")
    if output_kind == "probabilities" and (values.min() < -1e-3 or values.max() > 1 + 1e-3):
        raise GsalInputError(
            f"the model's outputs range over [{values.min():.3g}, {values.max():.3g}], not [0, 1]: they look like "
            "logits — pass output='logits' (CLI: --output logits)"
        )
    return h, w, k


def check_grid_size(grid_size, image_hw) -> tuple[int, int]:
    try:
        if np.isscalar(grid_size):
            gh = gw = int(grid_size)
        else:
            gh, gw = (int(v) for v in grid_size)
    except (TypeError, ValueError):
        raise GsalInputError(f"grid_size must be an int or (rows, cols), got {grid_size!r}") from None
    if gh < 1 or gw < 1:
        raise GsalInputError(f"grid_size must be positive, got {(gh, gw)}")
    if image_hw is not None and (gh > image_hw[0] or gw > image_hw[1]):
        raise GsalInputError(f"grid_size {(gh, gw)} is finer than the image {tuple(image_hw)}: use at most one cell per pixel")
    return gh, gw


def check_choice(name: str, value, choices):
    """``value`` must be one of ``choices``; returns ``value``."""
    if value not in choices:
        raise GsalInputError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_number(name, value, minimum=None, maximum=None, integer=False, strict=False) -> None:
    """A finite real (or integer) within [minimum, maximum] (``strict``: > minimum)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)
    if ok and integer:
        ok = float(value) == int(value)
    if ok and minimum is not None:
        ok = value > minimum if strict else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = []
        if minimum is not None:
            bound.append(f"{'>' if strict else '>='} {minimum}")
        if maximum is not None:
            bound.append(f"<= {maximum}")
        kind = "an integer" if integer else "a number"
        raise GsalInputError(f"{name} must be {kind} {' and '.join(bound)}; got {value!r}")


def check_int(name: str, value, minimum: int = 1, optional: bool = False):
    """An integer (a Python or numpy int, not a bool nor a float) >= ``minimum`` -> ``int``.

    With ``optional``, None is allowed and returned as it is. Unlike
    ``check_number(..., integer=True)``, a float such as ``2.0`` is refused: use it for counts and
    sizes that must be given as integers.
    """
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise GsalInputError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def check_int_pair(name: str, value, minimum: int = 1, form: str = "H,W", shown=None) -> tuple[int, int]:
    """Two integers >= ``minimum`` (a size, a grid, a point) -> ``(int, int)``.

    ``form`` names the two values in the message (``"H,W"``); ``shown`` is what the user typed,
    when it is not ``value`` itself (a CLI string).
    """
    try:
        first, second = value
        ok = all(not isinstance(v, bool) and float(v) == int(v) and int(v) >= minimum for v in (first, second))
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        wanted = f"two positive integers {form}" if minimum == 1 else f"two integers {form}, each >= {minimum}"
        raise GsalInputError(f"{name} must be {wanted}; got {repr(value) if shown is None else shown}")
    return int(first), int(second)
