"""Reading what users hand to gsal: images and models (a ``.keras`` or ``.tflite`` file, a
SavedModel folder, a zoo name), and fitting an image of any size to a network's fixed input size
(:class:`Fit`: letterboxing there, and the saliency mapped back to the image).

Errors a user can fix raise :class:`GsalInputError` with the fix in the message.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image(path, scale: float = 1.0 / 255.0) -> np.ndarray:
    """An image file as float32 (H,W,C), RGB channel order, pixel values times ``scale``.

    ``.npy`` files are read as they are ((H,W) or (H,W,C), no scaling). 8-bit images are
    multiplied by ``scale`` (default 1/255 → [0,1]). Images with other bit depths, and images with
    transparent pixels (what would the network see there?), are refused with the fix; an opaque
    alpha channel is dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise GsalInputError(f"image not found: {path}")
    if path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as exc:  # corrupt or non-array file
            raise GsalInputError(f"cannot read {path} as a NumPy array: {exc}") from None
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.number):
            raise GsalInputError(f"{path} holds an array of shape {arr.shape}; an image must be (H,W) or (H,W,C) numbers")
        return arr.astype(np.float32)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise GsalInputError(f"cannot read {path} as an image (PNG, JPEG, BMP, TIFF, WebP or .npy)")
    if img.dtype != np.uint8:
        raise GsalInputError(
            f"{path} has {img.dtype.itemsize * 8}-bit pixels; networks take 8-bit images: convert it "
            "(e.g. `convert IN -depth 8 OUT.png`) or pass the scaled pixels as a .npy array"
        )
    if img.ndim == 2:
        img = img[..., None]
    elif img.shape[2] == 4:
        if img[..., 3].min() < 255:
            raise GsalInputError(f"{path} has transparent pixels (an alpha channel); flatten it onto a background first")
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img.astype(np.float32) * np.float32(scale)


def load_model(path):
    """Load a segmentation model from a ``.keras`` or ``.tflite`` file, a SavedModel folder or a zoo name.

    A name that is not a path on disk but names a zoo entry loads that zoo model
    (:func:`gsal_tf.zoo.load`, sha256-checked).

    A ``.keras`` file loads under Keras safe mode (gsal's own layers are registered on import).
    A ``.tflite`` file is rebuilt by :func:`gsal_tf.models.from_tflite` (probabilities; its input is
    RGB in [0, 1] at the file's input size).
    A SavedModel loads as a callable over its serving signature; a signature with several outputs
    must have exactly one of rank 4 (N,h,w,K).
    """
    import keras
    import tensorflow as tf

    import gsal_tf.models  # noqa: F401  (registers gsal's serialisable layers)

    path = Path(path)
    if not path.exists():
        from gsal_tf.models import presets

        if str(path) in presets.names():
            return presets.load(str(path))
        raise GsalInputError(f"model not found: {path} (give a .keras file, a SavedModel folder, or a zoo name)")
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise GsalInputError(f"{path} is a folder but not a SavedModel (no saved_model.pb in it)")
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise GsalInputError(f"cannot load the SavedModel {path}: {first_line(exc)}") from None
        return _saved_model_callable(loaded, path)
    if path.suffix == ".tflite":  # rebuilt as a differentiable Keras model returning probabilities
        from gsal_tf.models import from_tflite

        return from_tflite(path, output="probabilities")
    if path.suffix != ".keras":
        raise GsalInputError(f"{path}: unsupported model file; give a .keras or .tflite file or a SavedModel folder")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as exc:
        raise GsalInputError(f"cannot load {path} as a Keras model: {first_line(exc)}") from None


def declared_input_shape(path) -> tuple | None:
    """The input shape (H,W,C) a model declares, read without building it (so without running a
    TensorFlow op): a zoo name's manifest entry, or the input layer of a ``.keras`` file's
    config; None for other models, unreadable files, or several inputs."""
    import json
    import zipfile

    path = Path(path)
    if not path.exists():
        from gsal_tf.models import presets

        return tuple(presets.get(str(path)).input_shape) if str(path) in presets.names() else None
    if path.suffix != ".keras" or not path.is_file():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))["config"]
        inputs = [layer for layer in config["layers"] if layer.get("class_name") == "InputLayer"]
        shape = inputs[0]["config"]["batch_shape"] if len(inputs) == 1 else None
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile):
        return None
    return tuple(shape[1:]) if shape else None


def _saved_model_callable(loaded, path):
    signatures = getattr(loaded, "signatures", {})
    fn = signatures.get("serving_default") if signatures else None
    if fn is None:
        if callable(loaded):
            return loaded
        raise GsalInputError(f"the SavedModel {path} has no serving_default signature to call")
    (input_name,) = list(fn.structured_input_signature[1].keys())[:1] or [None]

    def call(images):
        out = fn(**{input_name: images}) if input_name else fn(images)
        if isinstance(out, dict):
            rank4 = [v for v in out.values() if len(v.shape) == 4]
            if len(rank4) != 1:
                raise GsalInputError(f"the SavedModel {path} returns {len(out)} outputs; gsal needs one (N,h,w,K) output")
            return rank4[0]
        return out

    return call



#: Default grid for photos fitted to a network (``gsal explain`` / ``compare-backbones`` on images
#: of another size than the network input): square cells, this many along the photo's long side.
#: Measured on four real photos letterboxed to the 257x257 PASCAL network (100 iterations, lam 1;
#: README, "Grid size for photos"): where the prediction needs context (bike riders, aeroplane),
#: 12 cells kept 0.051 and 0.491 of the photo's context against 0.103 and 0.569 with 8x8, at an
#: equal or higher preserved score; 16 cells kept 0.057 and 0.589 and, where no context is needed
#: (cow), 5 % spurious context against < 1 % with 8 or 12. Inputs at the network's own size
#: (TextureMNIST, the benchmark) keep the 8x8 default.
PHOTO_GRID_CELLS = 12


@dataclasses.dataclass(frozen=True)
class Fit:
    """How an image of ``source`` (H0,W0) pixels is fitted to a network input of ``target`` (H,W):
    scaled by ``scale`` keeping its aspect ratio to ``size`` (h,w), and centred with ``top``/``left``
    pixels of padding (letterboxing). Maps the other way crop the padding and resize back.

    ``to_model(image)`` (H0,W0,C) -> (H,W,C), bilinear (area when shrinking), padding ``pad_value``;
    ``mask_to_model(mask)`` (H0,W0) -> (H,W), nearest, padding 0 (never part of a request);
    ``point_to_model((y, x))`` a pixel of the image -> the pixel of the network input;
    ``to_image(values)`` (H,W) or (H,W,K) -> (H0,W0[,K]), bilinear (``nearest=True`` for labels);
    ``valid()`` (H,W) 1 on the image, 0 on the padding;
    ``grid(cells)`` the grid size (rows, cols) on the network input whose cells are square and
    number ``cells`` along the image's long side (:data:`PHOTO_GRID_CELLS` for photos).
    """

    source: tuple[int, int]
    target: tuple[int, int]
    scale: float
    size: tuple[int, int]
    top: int
    left: int
    pad_value: float = 0.5

    @classmethod
    def between(cls, source, target, pad_value: float = 0.5) -> "Fit":
        (h0, w0), (h, w) = (int(v) for v in source[:2]), (int(v) for v in target[:2])
        scale = min(h / h0, w / w0)
        size = (max(1, min(h, round(h0 * scale))), max(1, min(w, round(w0 * scale))))
        return cls((h0, w0), (h, w), scale, size, (h - size[0]) // 2, (w - size[1]) // 2, float(pad_value))

    @property
    def identity(self) -> bool:
        return self.source == self.target

    def to_model(self, image: np.ndarray) -> np.ndarray:
        if self.identity:
            return np.asarray(image, np.float32)
        interpolation = cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        resized = cv2.resize(np.asarray(image, np.float32), self.size[::-1], interpolation=interpolation)
        return self._place(resized.reshape(*self.size, -1), self.pad_value)

    def mask_to_model(self, mask: np.ndarray) -> np.ndarray:
        if self.identity:
            return np.asarray(mask, np.float32)
        resized = cv2.resize(np.asarray(mask, np.float32), self.size[::-1], interpolation=cv2.INTER_NEAREST)
        return self._place(resized[..., None], 0.0)[..., 0]

    def point_to_model(self, point) -> tuple[int, int]:
        y, x = (int(v) for v in point)
        return (min(self.target[0] - 1, self.top + int((y + 0.5) * self.scale)),
                min(self.target[1] - 1, self.left + int((x + 0.5) * self.scale)))

    def to_image(self, values: np.ndarray, nearest: bool = False) -> np.ndarray:
        if self.identity:
            return values
        crop = np.asarray(values)[self.top:self.top + self.size[0], self.left:self.left + self.size[1]]
        dtype = crop.dtype
        out = cv2.resize(crop.astype(np.float32), self.source[::-1], interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR)
        return out.astype(dtype)

    def valid(self) -> np.ndarray:
        return self.mask_to_model(np.ones(self.source, np.float32))

    def grid(self, cells: int = None) -> tuple[int, int]:
        """(rows, cols) of a grid over the network input with square cells, ``cells`` of them
        along the long side of the fitted image: cell side = max(h, w) / cells pixels of the
        network input, rows = round(H / side), cols = round(W / side). A 3:2 photo letterboxed
        into a square input gets ``cells`` x ``cells`` (its content covers cells x 2/3·cells)."""
        cells = PHOTO_GRID_CELLS if cells is None else int(cells)
        if cells < 1:
            raise GsalInputError(f"a grid needs at least one cell along the image's long side, got {cells}")
        side = max(self.size) / cells
        return max(1, round(self.target[0] / side)), max(1, round(self.target[1] / side))

    def _place(self, content: np.ndarray, fill: float) -> np.ndarray:
        canvas = np.full((*self.target, content.shape[-1]), fill, np.float32)
        canvas[self.top:self.top + self.size[0], self.left:self.left + self.size[1]] = content
        return canvas


def _input_shape(model) -> tuple | None:
    """A Keras model's input shape (N,H,W,C) with None for free axes, or None for other models."""
    shape = getattr(model, "input_shape", None)
    return shape if isinstance(shape, tuple) and len(shape) == 4 else None


def model_input_size(model) -> tuple[int, int] | None:
    """(H, W) a Keras model's input is fixed to, or None when it takes any size."""
    shape = _input_shape(model)
    if shape is None or shape[1] is None or shape[2] is None:
        return None
    return int(shape[1]), int(shape[2])


def model_input_channels(model) -> int | None:
    """The channel count a Keras model's input is fixed to, or None."""
    shape = _input_shape(model)
    return None if shape is None or shape[3] is None else int(shape[3])


def fit_to_model(image: np.ndarray, model) -> tuple[np.ndarray, "Fit"]:
    """``image`` (H0,W0,C) as ``model`` takes it — channels matched (:func:`match_channels`) and
    letterboxed to its fixed input size (:class:`Fit`; the identity for a model of any size) —
    and the Fit that maps results back to the image."""
    image = match_channels(image, model_input_channels(model))
    fit = Fit.between(image.shape[:2], model_input_size(model) or image.shape[:2])
    return fit.to_model(image), fit


def match_channels(image: np.ndarray, channels: int | None) -> np.ndarray:
    """``image`` (H,W,C) with the channels a network takes: a grey image is repeated to RGB, an RGB
    image becomes grey by its luminance (ITU-R BT.601: 0.299 R + 0.587 G + 0.114 B); any other
    mismatch is a GsalInputError."""
    have = image.shape[-1]
    if channels is None or have == channels:
        return image
    if have == 1:
        return np.repeat(image, channels, axis=-1)
    if have == 3 and channels == 1:
        return (image @ np.array([0.299, 0.587, 0.114], np.float32))[..., None].astype(np.float32)
    raise GsalInputError(f"the model cannot take images with {have} channels: it takes {channels}; convert the image")
