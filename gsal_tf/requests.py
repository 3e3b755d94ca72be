"""Request masks: which pixels' prediction to explain. Pure functions, NumPy in, NumPy out.

Every mask helper returns a float32 (H,W) mask of 0/1 and raises :class:`GsalInputError` when the
request would be empty — an empty request has nothing to explain.

``prediction`` arguments accept a label map (H,W) of ints or per-pixel scores (H,W,K), which
are reduced with argmax. Classes are ids (output channels); :func:`class_id` turns a class name of
a model (``model.zoo_entry.class_names``) into its id, :func:`class_name` back.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = [
    "label_map", "class_request", "component_request", "error_request", "box_request", "mask_from_image",
    "predicted_class", "class_id", "class_name",
]


def label_map(prediction) -> np.ndarray:
    """(H,W) int labels from a label map (H,W) or per-pixel scores (H,W,K)."""
    arr = np.asarray(prediction)
    if arr.ndim == 3:
        return arr.argmax(-1).astype(np.int64)
    if arr.ndim == 2:
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(arr == np.round(arr)):
                raise GsalInputError("a label map (H,W) must hold integer class ids")
            arr = arr.astype(np.int64)
        return arr
    raise GsalInputError(f"a prediction must be a label map (H,W) or scores (H,W,K), got shape {arr.shape}")


def class_request(prediction, class_id: int) -> np.ndarray:
    """All pixels predicted as ``class_id``."""
    mask = label_map(prediction) == int(class_id)
    return _nonempty(mask, f"no pixel is predicted as class {class_id}")


def component_request(prediction, point: tuple[int, int], connectivity: int = 8) -> np.ndarray:
    """The connected component of the predicted class under pixel ``point = (y, x)``.

    ``connectivity`` is 4 or 8 (neighbours that join a component).
    """
    labels = label_map(prediction)
    y, x = (int(v) for v in point)
    height, width = labels.shape
    if not (0 <= y < height and 0 <= x < width):
        raise GsalInputError(f"point (y={y}, x={x}) is outside the image of size {height}x{width}")
    if connectivity not in (4, 8):
        raise GsalInputError(f"connectivity must be 4 or 8, got {connectivity}")
    same = (labels == labels[y, x]).astype(np.uint8)
    _, components = cv2.connectedComponents(same, connectivity=connectivity)
    return (components == components[y, x]).astype(np.float32)


def error_request(prediction, labels, class_id: int, predicted_as: int | None = None, ignore_label: int | None = None) -> np.ndarray:
    """Pixels of ground-truth ``class_id`` that the model gets wrong (error analysis).

    With ``predicted_as``, only the pixels predicted as that class (e.g. pedestrians predicted as
    riders); explain them with ``class_ids = predicted_as`` to see which context caused the error.
    Pixels labelled ``ignore_label`` never count.
    """
    pred = label_map(prediction)
    truth = label_map(labels)
    if truth.shape != pred.shape:
        raise GsalInputError(f"labels {truth.shape} and prediction {pred.shape} must have the same (H,W)")
    mask = (truth == int(class_id)) & (pred != int(class_id))
    if predicted_as is not None:
        mask &= pred == int(predicted_as)
    if ignore_label is not None:
        mask &= truth != int(ignore_label)
    what = f" predicted as {predicted_as}" if predicted_as is not None else ""
    return _nonempty(mask, f"no pixel of class {class_id} is misclassified{what}")


def box_request(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """A rectangle ``box = (y0, x0, y1, x1)`` (end-exclusive, pixels) in an image of ``shape`` (H,W)."""
    height, width = (int(v) for v in shape[:2])
    y0, x0, y1, x1 = (int(v) for v in box)
    y0, x0, y1, x1 = max(0, y0), max(0, x0), min(height, y1), min(width, x1)
    mask = np.zeros((height, width), bool)
    if y1 > y0 and x1 > x0:
        mask[y0:y1, x0:x1] = True
    return _nonempty(mask, f"box {tuple(box)} does not overlap the image of size {height}x{width}")


def mask_from_image(path, shape: tuple[int, int] | None = None, threshold: int = 127) -> np.ndarray:
    """Read a request mask from an image file: pixels brighter than ``threshold`` (0-255) are in.

    The mask is read as viewers show it (its EXIF orientation applied, like the image it is
    drawn on: :func:`gsal_tf.loading.imread_as_displayed`). With ``shape`` (H,W), the mask must
    have that size (it is never silently resized).
    """
    from gsal_tf.loading import imread_as_displayed

    path = Path(path)
    if not path.is_file():
        raise GsalInputError(f"request mask file not found: {path}")
    img = imread_as_displayed(path)
    if img is None:
        raise GsalInputError(f"cannot read {path} as an image (PNG, JPEG, BMP, TIFF …)")
    if img.ndim == 3:
        if img.shape[2] == 4:  # transparent pixels are out of the request
            alpha = img[..., 3]
            img = np.where(alpha > 0, cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY), 0)
        else:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) * (255.0 / max(float(img.max()), 1.0))).astype(np.uint8)
    if shape is not None and tuple(img.shape) != tuple(shape[:2]):
        raise GsalInputError(f"request mask {path} is {img.shape[0]}x{img.shape[1]}; the image is {shape[0]}x{shape[1]}")
    return _nonempty(img > threshold, f"request mask {path} has no pixel brighter than {threshold}")


def predicted_class(prediction, request, exclude=()) -> int:
    """The class predicted most often inside ``request`` (H,W) 0/1: the class a request of that
    region explains by default. Classes in ``exclude`` (e.g. a background class) are never chosen;
    ties go to the smaller id.
    """
    labels = label_map(prediction)
    inside = labels[np.asarray(request) > 0.5]
    if inside.size == 0:
        raise GsalInputError("empty request: there is no predicted class inside it")
    counts = np.bincount(inside.ravel(), minlength=max(int(inside.max()), *exclude, 0) + 1)
    counts[list(exclude)] = -1
    return int(counts.argmax())


def class_id(name_or_id, class_names=None) -> int:
    """The class id (output channel) named by ``name_or_id``: an id (``3``, ``"3"``) or a name of
    ``class_names`` (index = id, e.g. ``model.zoo_entry.class_names``).

    Names match case-insensitively and ignore spaces, ``_`` and ``-`` (``"Traffic_Light"`` is
    ``"traffic light"``). A string of digits is an id, even where a class is named by digits
    (TextureMNIST's class ``"9"`` is id 9 either way). An id is returned as it is (the explainer
    checks its range against the model's output); an unknown name, or a name without
    ``class_names`` to look it up in, is a GsalInputError listing the names.
    """
    if isinstance(name_or_id, (int, np.integer)) and not isinstance(name_or_id, bool):
        return int(name_or_id)
    text = str(name_or_id).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if not class_names:
        raise GsalInputError(f"class {text!r}: this model has no class names; give a class id (an integer)")
    wanted = _class_key(text)
    matches = [i for i, name in enumerate(class_names) if _class_key(name) == wanted]
    if len(matches) == 1:
        return matches[0]
    listing = ", ".join(f"{i} {name}" for i, name in enumerate(class_names))
    problem = "matches several class names" if matches else "is not a class name of this model"
    raise GsalInputError(f"{text!r} {problem}; give a class id or name (id name): {listing}")


def class_name(index: int, class_names=None) -> str | None:
    """The name of class id ``index`` in ``class_names``, or None when unknown (no names, or an id
    outside them)."""
    if class_names and 0 <= int(index) < len(class_names):
        return str(class_names[int(index)])
    return None


def _class_key(name: str) -> str:
    return "".join(ch for ch in str(name).casefold() if ch not in " _-")


def _nonempty(mask: np.ndarray, message: str) -> np.ndarray:
    if not mask.any():
        raise GsalInputError(f"empty request: {message}")
    return mask.astype(np.float32)
