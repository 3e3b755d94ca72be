"""The bundled demo behind ``gsal explain --demo`` and ``gsal compare-backbones --demo``.

The demo image is a test sample of strongly biased TextureMNIST shipped with the zoo
(``samples/demo.npz``, written by ``gsal zoo build`` from the plan's ``[demo]`` config): the bias
digit with the bias texture in its top tile. The demo
explains the zoo's strongly biased MobileNetV2: the request is the digit, the class is the digit
the model predicts there, and the context saliency should fall on the biased tile. The
comparison demo explains the same request with the strongly biased MobileNetV2 and Xception.

Without a zoo (e.g. a checkout whose weights were not built yet) the demo falls back to the
known-context model of :mod:`gsal_tf.models.known_context`, whose right answer is exact.
"""

from __future__ import annotations

import numpy as np

DEMO_MODEL = "tmnist-mobilenetv2-strong"
COMPARISON_MODELS = ["tmnist-mobilenetv2-strong", "tmnist-xception-strong"]
SAMPLE = "samples/demo.npz"


def demo_sample() -> dict | None:
    """The shipped TextureMNIST demo sample (image (64,64,1), digit_mask, biased_tile_mask, digit)."""
    from gsal_tf import zoo

    path = zoo.zoo_dir() / SAMPLE
    if not path.is_file():
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def predicted_digit(labels: np.ndarray, request: np.ndarray) -> int:
    """The digit (0-9) the model predicts most often inside ``request`` (H,W); ``labels`` (H,W)
    are its per-pixel classes (10 = background, never chosen: the demo explains a digit)."""
    return int(np.bincount(labels[request > 0].ravel(), minlength=11)[:10].argmax())


def load_demo() -> dict:
    """Return ``model``, ``name``, ``image`` (H,W,C), ``request`` (H,W), ``class_id``, ``description``."""
    from gsal_tf import zoo
    from gsal_tf.requests import label_map

    sample = demo_sample()
    if sample is not None and DEMO_MODEL in {e.name for e in zoo.list_models()}:
        model = zoo.load(DEMO_MODEL)
        image, request = sample["image"].astype(np.float32), sample["digit_mask"].astype(np.float32)
        labels = label_map(np.asarray(model(image[None], training=False))[0])
        class_id = predicted_digit(labels, request)
        tile = "top" if int(sample["biased_tile"]) == 0 else "bottom"
        return {
            "model": model,
            "name": DEMO_MODEL,
            "image": image,
            "request": request,
            "class_id": class_id,
            "description": f"a digit {int(sample['digit'])} (the bias digit) with the bias texture in its {tile} half, "
            f"explained with {DEMO_MODEL} (trained with that bias): the context saliency should sit on the {tile} half",
        }
    from gsal_tf.models.known_context import demo_case

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


def demo_comparison() -> dict:
    """Image, request and class of the comparison demo, and the zoo models it compares."""
    from gsal_tf import zoo
    from gsal_tf.errors import GsalInputError

    sample = demo_sample()
    names = {e.name for e in zoo.list_models()}
    missing = [m for m in COMPARISON_MODELS if m not in names]
    if sample is None or missing:
        raise GsalInputError(f"the comparison demo needs the zoo models {', '.join(COMPARISON_MODELS)}; missing: {', '.join(missing) or 'the demo sample'}")
    return {
        "image": sample["image"].astype(np.float32),
        "request": sample["digit_mask"].astype(np.float32),
        "class_id": int(sample["digit"]),
        "models": list(COMPARISON_MODELS),
    }
