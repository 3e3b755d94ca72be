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
    from gsal_tf import io

    return io.load_model(name_or_path), str(name_or_path)


def build_request(explainer, img, request, request_class, request_point, class_id):
    """The request mask (H,W) and the class to explain, from exactly one of the request options."""
    import numpy as np

    from gsal_tf import requests
    from gsal_tf.errors import GsalInputError

    given = [name for name, v in (("--request", request), ("--request-class", request_class), ("--request-point", request_point)) if v is not None]
    if len(given) != 1:
        raise GsalInputError("give exactly one of --request MASK, --request-class C or --request-point Y,X" + (f" (got {', '.join(given)})" if given else ""))
    if request is not None:
        req = requests.mask_from_image(request, shape=img.shape[:2])
        if class_id is not None:
            return req, class_id
        labels = requests.label_map(explainer.predict(img[None])[0])
        return req, int(np.bincount(labels[req > 0]).argmax())
    labels = requests.label_map(explainer.predict(img[None])[0])
    if request_class is not None:
        return requests.class_request(labels, request_class), request_class if class_id is None else class_id
    y, x = parse_pair(request_point, "--request-point")
    req = requests.component_request(labels, (y, x))
    return req, int(labels[y, x]) if class_id is None else class_id
