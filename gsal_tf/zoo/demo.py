"""The bundled demos behind ``gsal explain --demo [NAME]`` and ``gsal compare-backbones --demo``.

``textures`` (the default): the paper's TextureMNIST question. The demo image is a test sample of strongly biased TextureMNIST shipped with the zoo
(``samples/demo.npz``, written by ``gsal zoo build`` from the plan's ``[demo]`` config): the bias
digit with the bias texture in its top tile. The demo explains the zoo's strongly biased
MobileNetV2: the request is the digit, the class is the digit the model predicts there, and the
context saliency should fall on the biased tile. The comparison demo explains the same request
with the strongly biased MobileNetV2 and Xception.

``cyclists``: a real network on a real photo — the zoo's float PASCAL DeepLabv3
(``pascal-mobilenetv2-0.5-257``) on the shipped CC0 photo of two people riding bicycles
(``samples/bike_riders_513.png``, Pixabay), request = every pixel predicted as person: which
context keeps "person" there (the bicycles?). The photo is letterboxed to the network's 257×257
input like any user photo.
"""

from __future__ import annotations

import numpy as np

from gsal_tf.benchmark.classes import BACKGROUND
from gsal_tf.errors import GsalInputError
from gsal_tf.model_calls import predict
from gsal_tf.requests import predicted_class
from gsal_tf.models import presets

__all__ = [
    "DEMOS", "DEMO_MODEL", "CYCLISTS_MODEL", "CYCLISTS_PHOTO", "COMPARISON_MODELS", "SAMPLE",
    "demo_sample", "predicted_digit", "demo_model", "load_demo", "demo_comparison",
]

DEMOS = ("textures", "cyclists")
DEMO_MODEL = "tmnist-mobilenetv2-strong"
CYCLISTS_MODEL = "pascal-mobilenetv2-0.5-257"
CYCLISTS_PHOTO = "samples/bike_riders_513.png"
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


def demo_model(name: str = "textures") -> str:
    """The zoo name of the network demo ``name`` explains."""
    if name not in DEMOS:
        raise GsalInputError(f"unknown demo {name!r}; choose one of {', '.join(DEMOS)}")
    return CYCLISTS_MODEL if name == "cyclists" else DEMO_MODEL


def load_demo(name: str = "textures") -> dict:
    """Return ``model``, ``name``, ``image`` (H,W,C), ``class_id`` and ``description``, and the
    request: ``request`` (H,W) 0/1, or ``request_class`` (every pixel predicted as that class);
    ``prediction`` (H,W) the model's labels when the demo computed them."""
    if demo_model(name) == CYCLISTS_MODEL:
        return _cyclists()
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
        "prediction": scores.argmax(-1),
        "description": f"a digit {int(sample['digit'])} (the bias digit) with the bias texture in its {tile} half, "
        f"explained with {DEMO_MODEL} (trained with that bias): the context saliency should sit on the {tile} half",
    }


def _cyclists() -> dict:
    from gsal_tf.loading import load_image

    return {
        "model": presets.load(CYCLISTS_MODEL),
        "name": CYCLISTS_MODEL,
        "image": load_image(presets.zoo_dir() / CYCLISTS_PHOTO),
        "request_class": "person",
        "class_id": None,
        "description": f"two people riding bicycles (CC0 photo, Pixabay), explained with {CYCLISTS_MODEL} (PASCAL VOC): "
        "which context keeps 'person' in the riders?",
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
