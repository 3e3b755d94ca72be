"""MNIST digits for TextureMNIST: loading (Keras' ``mnist.npz`` layout) and placing them as masks."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = ["MNIST_KEYS", "SPLITS", "MnistDigits", "load_mnist", "place_digits"]

#: The arrays of Keras' ``mnist.npz``.
MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
SPLITS = ("train", "test")


class MnistDigits:
    """MNIST images and labels per split.

    Parameters
    ----------
    images : dict
        ``{"train": (N, H, W) uint8, "test": (M, H, W) uint8}``, white digit on black.
    labels : dict
        ``{"train": (N,) int, "test": (M,) int}`` in 0-9.
    source : str
        Where the digits came from (recorded in the dataset card).
    """

    def __init__(self, images: dict[str, np.ndarray], labels: dict[str, np.ndarray], source: str):
        self.images = images
        self.labels = labels
        self.source = source


def load_mnist(path: Optional[Union[str, Path]] = None) -> MnistDigits:
    """Read ``path`` (Keras' mnist.npz layout), or let Keras download/cache MNIST when ``None``."""
    if path is None:
        try:
            import keras

            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as exc:  # no internet, proxy, broken cache: all mean "give me a file"
            raise GsalInputError(
                f"could not download MNIST ({type(exc).__name__}: {exc}); pass a local copy with "
                "mnist=PATH (CLI: --mnist PATH), an .npz with x_train, y_train, x_test, y_test as in Keras' mnist.npz"
            ) from None
        arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        source = "keras.datasets.mnist"
    else:
        path = Path(path)
        if not path.is_file():
            raise GsalInputError(f"MNIST file {str(path)!r} does not exist; pass an .npz with x_train, y_train, x_test, y_test (Keras' mnist.npz layout)")
        try:
            with np.load(path, allow_pickle=False) as archive:
                missing = [k for k in MNIST_KEYS if k not in archive.files]
                if missing:
                    raise GsalInputError(
                        f"MNIST file {str(path)!r} lacks {', '.join(missing)}; it needs x_train, y_train, x_test, y_test (Keras' mnist.npz layout)"
                    )
                arrays = {k: archive[k] for k in MNIST_KEYS}
        except GsalInputError:
            raise
        except Exception as exc:
            raise GsalInputError(f"cannot read MNIST file {str(path)!r} as .npz ({type(exc).__name__}: {exc})") from None
        source = str(path)

    images, labels = {}, {}
    for split in SPLITS:
        x, y = np.asarray(arrays[f"x_{split}"]), np.asarray(arrays[f"y_{split}"]).reshape(-1)
        if x.ndim == 4 and x.shape[-1] == 1:
            x = x[..., 0]
        if x.ndim != 3 or x.shape[0] != y.shape[0]:
            raise GsalInputError(f"MNIST x_{split} must be (N, H, W) with one label per image in y_{split}; got {x.shape} and {y.shape}")
        if x.shape[0] == 0:
            raise GsalInputError(f"MNIST x_{split} is empty; TextureMNIST needs digits in both splits")
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
            raise GsalInputError(f"MNIST y_{split} must hold integer labels 0-9")
        if x.dtype != np.uint8:
            # Float copies of MNIST are usually scaled to [0, 1]; bring them back to 0-255.
            scale = 255.0 if float(np.max(x)) <= 1.0 else 1.0
            x = np.clip(np.asarray(x, np.float64) * scale, 0, 255).astype(np.uint8)
        images[split], labels[split] = x, y.astype(np.int64)
    return MnistDigits(images, labels, source)


def place_digits(
    digits: np.ndarray, sides: np.ndarray, tops: np.ndarray, lefts: np.ndarray, image_size: int, dilation: int = 0
) -> np.ndarray:
    """Upscale each MNIST digit to ``sides[i]`` pixels, binarise it and paste it into an empty image.

    Parameters
    ----------
    digits : (N, h, w) uint8
    sides, tops, lefts : (N,) int
        Side of the upscaled digit box and its top-left corner; the box lies inside the image.
    image_size : int
    dilation : int, default 0
        Pixels added to each side of the strokes (a disc dilation), so that a texture has room
        to show inside them.

    Returns
    -------
    (N, image_size, image_size) float32 mask, 1 on the digit's pixels.
    """
    masks = np.zeros((len(digits), image_size, image_size), np.uint8)
    for i, (digit, side, top, left) in enumerate(zip(digits, sides, tops, lefts)):
        # Upscale first, threshold second: smooth digit outlines instead of blocky 28x28 pixels.
        big = cv2.resize(digit, (int(side), int(side)), interpolation=cv2.INTER_LINEAR)
        masks[i, top : top + side, left : left + side] = big > 127
    if dilation > 0:
        disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation + 1, 2 * dilation + 1))
        # cv2 morphology takes one 2-D image at a time.
        masks = np.stack([cv2.dilate(mask, disc) for mask in masks]) if len(masks) else masks
    return masks.astype(np.float32)
