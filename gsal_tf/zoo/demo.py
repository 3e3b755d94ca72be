"""The bundled demo behind ``gsal explain --demo`` and ``gsal compare-backbones --demo``.

The demo image is a test sample of strongly biased TextureMNIST shipped with the zoo
(``samples/demo.npz``, written by ``gsal zoo build`` from the plan's ``[demo]`` config): the bias
digit with the bias texture in its top tile. The demo explains the zoo's strongly biased
MobileNetV2: the request is the digit, the class is the digit the model predicts there, and the
context saliency should fall on the biased tile. The comparison demo explains the same request
with the strongly biased MobileNetV2 and Xception.
"""

from __future__ import annotations

import numpy as np

from gsal_tf.benchmark.classes import BACKGROUND
from gsal_tf.errors import GsalInputError
from gsal_tf.explainer import predict
from gsal_tf.requests import predicted_class
from gsal_tf.models import presets

DEMO_MODEL = "tmnist-mobilenetv2-strong"
COMPARISON_MODELS = ["tmnist-mobilenetv2-strong", "tmnist-xception-strong"]
SAMPLE = "samples/demo.npz"


def demo_sample() -> dict:
    """The shipped TextureMNIST demo sample (image (64,64,1), digit_mask, biased_tile_mask, digit)."""
    path = presets.zoo_dir() / SAMPLE
    if not path.is_file():
        raise GsalInputError(f"the demo sample {path} is missing; reinstall gsal-tf")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def predicted_digit(labels: np.ndarray, request: np.ndarray) -> int:
    """The digit (0-9) the model predicts most often inside ``request`` (H,W); ``labels`` (H,W)
    are its per-pixel classes (background is never chosen: the demo explains a digit)."""
    return predicted_class(labels, request, exclude=(BACKGROUND,))


def load_demo() -> dict:
    """Return ``model``, ``name``, ``image`` (H,W,C), ``request`` (H,W), ``class_id``, ``description``."""
    sample = demo_sample()
    model = presets.load(DEMO_MODEL)
    image, request = sample["image"].astype(np.float32), sample["digit_mask"].astype(np.float32)
    scores = predict(model, image[None])[0]  # checked once: an explainer of this model need not probe it again
    tile = "top" if int(sample["biased_tile"]) == 0 else "bottom"
    return {
        "model": model,
        "name": DEMO_MODEL,
        "image": image,
        "request": request,
        "class_id": predicted_digit(scores, request),
        "description": f"a digit {int(sample['digit'])} (the bias digit) with the bias texture in its {tile} half, "
        f"explained with {DEMO_MODEL} (trained with that bias): the context saliency should sit on the {tile} half",
    }


def demo_comparison() -> dict:
    """Image, request and class of the comparison demo, and the zoo models it compares."""
    sample = demo_sample()
    missing = [m for m in COMPARISON_MODELS if m not in presets.names()]
    if missing:
        raise GsalInputError(f"the comparison demo needs the zoo models {', '.join(COMPARISON_MODELS)}; missing: {', '.join(missing)}")
    return {
        "image": sample["image"].astype(np.float32),
        "request": sample["digit_mask"].astype(np.float32),
        "class_id": int(sample["digit"]),
        "models": list(COMPARISON_MODELS),
    }
