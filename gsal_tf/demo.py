"""The bundled demo case behind ``gsal explain --demo``: a model, an image and a request.

Until a trained zoo model is available this is the known-context model of
:mod:`gsal_tf.models.known_context`, whose right answer is known (two context patches).
"""

from __future__ import annotations

from gsal_tf.models.known_context import demo_case


def load_demo() -> dict:
    """Return ``model``, ``name``, ``image`` (H,W,C), ``request`` (H,W), ``class_id``, ``description``."""
    case = demo_case()
    return {
        "model": case["model"],
        "name": "known-context demo model",
        "image": case["image"],
        "request": case["request"],
        "class_id": case["class_id"],
        "description": "a hand-built model whose prediction in the centre square reads two context "
        f"patches {case['true_patches']} (y0,x0,y1,x1): the saliency should keep exactly those",
    }
