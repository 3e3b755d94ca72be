"""Reading what users hand to gsal: images and models (a ``.keras`` or ``.tflite`` file, a
SavedModel folder, a zoo name), and fitting an image of any size to a network's fixed input size
(:class:`Fit`: letterboxing there, and the saliency mapped back to the image).

Errors a user can fix raise :class:`GsalInputError` with the fix in the message.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError, first_line

__all__ = [
    "IMAGE_SUFFIXES", "load_image", "EXIF_ORIENTATION_TAG", "exif_orientation", "orient",
    "imread_as_displayed", "resize_nearest", "load_model", "import_user_modules", "keras_load_error",
    "pixel_range_hint", "declared_input_shape", "PHOTO_GRID_CELLS", "Fit", "model_input_size",
    "model_input_channels", "fit_to_model", "match_channels",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def letterbox_grey(pixel_scale: float = 1.0 / 255.0) -> float:
    """The padding value of a letterboxed image read with 8-bit pixels times ``pixel_scale``: the
    middle of the 8-bit range, 127.5 × ``pixel_scale`` (0.5 for images read as [0, 1])."""
    return 127.5 * float(pixel_scale)


def load_image(path, scale: float = 1.0 / 255.0) -> np.ndarray:
    """An image file as float32 (H,W,C), RGB channel order, pixel values times ``scale``, turned
    as viewers show it (its EXIF orientation applied, :func:`imread_as_displayed`).

    ``.npy`` files are read as they are ((H,W) or (H,W,C), no scaling). 8-bit images are
    multiplied by ``scale`` (default 1/255 → [0,1]). Images with other bit depths, and images with
    transparent pixels (what would the network see there?), are refused with the fix; an opaque
    alpha channel is dropped.

    Memory: the decoded 8-bit pixels (H·W·C bytes) and the float32 result (4·H·W·C bytes), no
    other full-size copy (a 48 MP RGB photo: 144 MB + 576 MB).
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
    img = imread_as_displayed(path)
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
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place: no second copy of a large photo
    scaled = np.empty(img.shape, np.float32)
    np.multiply(img, np.float32(scale), out=scaled)  # = img.astype(float32) * scale, without the intermediate
    return scaled


#: EXIF tag of the orientation in which a camera stored the pixels (values 1-8).
EXIF_ORIENTATION_TAG = 0x0112


def exif_orientation(path) -> int:
    """The EXIF orientation (1-8) an image file declares; 1 (shown as stored) when it declares
    none, declares a value outside 1-8, or its metadata cannot be read.

    Read with Pillow (a dependency of matplotlib) from the file's header; the pixels are not
    decoded. Covers JPEG (APP1), PNG (eXIf), TIFF and WebP.
    """
    import warnings

    try:
        from PIL import Image

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning on very large photos: nothing is decoded here
            with Image.open(path) as image:
                value = image.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # not an image Pillow knows, or broken metadata: the pixels are shown as stored
        return 1
    try:
        value = int(value)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """``pixels`` (H,W) or (H,W,C) stored with EXIF ``orientation``, turned as viewers show them
    (C-contiguous; a new array unless ``orientation`` is 1).

    The eight values (TIFF 6.0 / EXIF 2.3; what the stored row 0 and column 0 are on screen):
    1 as stored; 2 mirrored left-right; 3 turned 180°; 4 mirrored top-bottom; 5 transposed
    (mirrored about the main diagonal); 6 turned 90° clockwise; 7 transversed (mirrored about the
    anti-diagonal); 8 turned 90° anticlockwise. 5-8 swap H and W.
    """
    a = np.asarray(pixels)
    turned = {
        1: lambda: a,
        2: lambda: a[:, ::-1],
        3: lambda: a[::-1, ::-1],
        4: lambda: a[::-1],
        5: lambda: a.swapaxes(0, 1),
        6: lambda: np.rot90(a, -1),
        7: lambda: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda: np.rot90(a, 1),
    }
    if orientation not in turned:
        raise GsalInputError(f"EXIF orientation {orientation!r}: expected 1-8")
    return a if orientation == 1 else np.ascontiguousarray(turned[orientation]())


def imread_as_displayed(path) -> np.ndarray | None:
    """An image file's pixels as every viewer shows them: decoded by OpenCV unchanged (bit depth
    and alpha kept, channels in OpenCV's BGR(A) order, (H,W) or (H,W,C)) and turned by its EXIF
    orientation (:func:`exif_orientation`, :func:`orient`), which ``cv2.IMREAD_UNCHANGED``
    ignores. None when OpenCV cannot read the file.

    Every image gsal reads from a file goes through here: the images to explain, dataset
    samples (:mod:`gsal_tf.datasets.sources`), request masks.
    """
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        return None
    return orient(pixels, exif_orientation(path))


def resize_nearest(values: np.ndarray, size) -> np.ndarray:
    """``values`` (H,W) or (H,W,C) — labels, masks — resized to ``size`` (h,w) by nearest
    neighbour (OpenCV's ``INTER_NEAREST``), in their own dtype: no float copy of a label map.
    Integer dtypes OpenCV cannot resize are resized as int32 (labels fit) or float64, bools as
    uint8."""
    values = np.asarray(values)
    h, w = (int(v) for v in size[:2])
    if values.shape[:2] == (h, w):
        return values
    dtype = values.dtype
    if dtype in (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64):
        work = values
    elif dtype == np.bool_:
        work = values.view(np.uint8)
    elif np.issubdtype(dtype, np.integer) and values.size and np.iinfo(np.int32).min <= values.min() and values.max() <= np.iinfo(np.int32).max:
        work = values.astype(np.int32)
    else:
        work = values.astype(np.float64)
    out = cv2.resize(np.ascontiguousarray(work), (w, h), interpolation=cv2.INTER_NEAREST)
    out = out.reshape((h, w) + values.shape[2:])
    return out.view(np.bool_) if dtype == np.bool_ else out.astype(dtype, copy=False)


def load_model(path, *, custom_modules=(), safe_mode: bool = True):
    """Load a segmentation model from a ``.keras`` or ``.tflite`` file, a SavedModel folder or a zoo name.

    A name that is not a path on disk but names a zoo entry loads that zoo model
    (:func:`gsal_tf.zoo.load`, sha256-checked).

    A ``.keras`` file loads under Keras safe mode (gsal's own layers are registered on import;
    a keras-hub model's file imports keras-hub first). Custom layers of your own resolve once the
    module that registers them (``@keras.saving.register_keras_serializable``) is imported: name it
    in ``custom_modules`` (module names such as ``"my_pkg.layers"``, or paths of ``.py`` files).
    ``safe_mode=False`` allows what safe mode refuses — a ``Lambda`` layer's Python code: it
    runs code from the file, so only for files you trust.
    A ``.tflite`` file is rebuilt by :func:`gsal_tf.models.from_tflite` (probabilities; its input is
    RGB in [0, 1] at the file's input size; an 8-bit file with its activations simulated, so the
    model computes what ``tf.lite.Interpreter`` computes — ``from_tflite(path,
    quantize_activations=False)`` gives the float version).
    A SavedModel folder (Keras ``model.export`` or ``tf.saved_model.save``) loads as a
    :class:`gsal_tf.models.saved_model.SavedModelSegmenter` over its ``serving_default`` signature.
    """
    import keras
    import tensorflow as tf

    import gsal_tf.models  # noqa: F401  (registers gsal's serialisable layers)

    import_user_modules(custom_modules)
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
        from gsal_tf.models.saved_model import SavedModelSegmenter

        return SavedModelSegmenter(loaded, path)
    if path.suffix == ".tflite":  # rebuilt as a differentiable Keras model returning probabilities
        from gsal_tf.models import from_tflite

        model = from_tflite(path, output="probabilities")
        model.gsal_output = "probabilities"  # a one-channel network's sigmoid output reads as probabilities too
        return model
    if path.suffix != ".keras":
        raise GsalInputError(f"{path}: unsupported model file; give a .keras or .tflite file or a SavedModel folder")
    _import_keras_hub_if_needed(path)
    try:
        with warnings.catch_warnings():  # keras-hub tasks compile on their own: Keras' note about it is noise here
            warnings.filterwarnings("ignore", message=r".*compile\(\)` was not called as part of model loading")
            return keras.saving.load_model(path, safe_mode=safe_mode)
    except Exception as exc:
        raise GsalInputError(f"cannot load {path} as a Keras model: {keras_load_error(exc)}") from None


def import_user_modules(modules) -> None:
    """Import each of ``modules`` — a module name (``my_pkg.layers``) or the path of a ``.py``
    file — so the custom Keras objects it registers resolve when a model is loaded."""
    import importlib
    import importlib.util
    import sys

    for module in modules or ():
        text = str(module)
        try:
            if text.endswith(".py"):
                file = Path(text)
                if not file.is_file():
                    raise GsalInputError(f"cannot import custom module {text}: no such file")
                spec = importlib.util.spec_from_file_location(file.stem, file)
                loaded = importlib.util.module_from_spec(spec)
                sys.modules.setdefault(file.stem, loaded)
                spec.loader.exec_module(loaded)
            else:
                importlib.import_module(text)
        except GsalInputError:
            raise
        except Exception as exc:  # the user's code failed to import: say which and why
            raise GsalInputError(f"cannot import custom module {text}: {type(exc).__name__}: {first_line(exc)}") from None


def keras_load_error(exc: BaseException) -> str:
    """One line for a failed ``keras.saving.load_model``: Keras' own cause (a class it could not
    locate, a Lambda refused by safe mode) with what to do, else the message's first line.

    Keras wraps the cause of a failed deserialisation inside a long message that starts with
    "<class Functional> could not be deserialized properly"; the cause is what a user can act on.
    """
    import re

    text = str(exc)
    missing = re.search(r"Could not locate (?:class|function) '([^']+)'", text)
    if missing:
        registered = re.search(r"'registered_name': '([^']*>" + re.escape(missing.group(1)) + r")'", text)
        name = registered.group(1) if registered else missing.group(1)
        return (f"it uses the custom object {name!r}, which is not registered in this process: import the module "
                "that defines it first (CLI: --custom-module MODULE_OR_FILE.py; Python: import it before loading)")
    if "Lambda" in text and "safe_mode" in text:
        return ("it holds a Lambda layer (Python code stored in the file), which Keras safe mode refuses: if you "
                "trust the file, allow it (CLI: --unsafe-deserialization; Python: load_model(path, safe_mode=False))")
    return first_line(exc)


def _import_keras_hub_if_needed(path: Path) -> None:
    """Import keras-hub before loading a ``.keras`` file whose config names its classes (they
    register on import), with one clear line when it is not installed."""
    import importlib.util
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            uses_hub = b'"module": "keras_hub' in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return  # not a readable .keras archive: Keras' own error says so
    if not uses_hub:
        return
    if importlib.util.find_spec("keras_hub") is None:
        raise GsalInputError(f"{path} holds a keras-hub model: install keras-hub (pip install keras-hub) to load it")
    import keras_hub  # noqa: F401  (registers its classes)


def pixel_range_hint(model, pixel_scale: float) -> str | None:
    """A one-line hint when a Keras ``model`` rescales its own input for 8-bit pixels (its first
    layer after the input is a ``Rescaling`` with scale <= 1/100, e.g. 1/255 or 1/127.5) while the
    images are read as [0, 1] (``pixel_scale`` < 1/100): such a model expects 0-255, and fed [0, 1]
    it sees nearly black images. None when nothing looks wrong."""
    import keras

    layers = [layer for layer in getattr(model, "layers", []) if not isinstance(layer, keras.layers.InputLayer)]
    first = layers[0] if layers else None
    if not isinstance(first, keras.layers.Rescaling) or pixel_scale >= 0.01:
        return None
    scale = np.max(np.abs(np.asarray(first.scale, np.float64)))
    if scale > 0.01:
        return None
    return (f"the model starts with Rescaling(scale={scale:.4g}): it expects pixels in 0-255, but images are read as "
            f"[0, 1] (pixel scale {pixel_scale:.4g}); pass --pixel-scale 1")


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
    ``to_image(values)`` (H,W) or (H,W,K) -> (H0,W0[,K]), bilinear (``nearest=True`` for labels,
    which keep their dtype); with ``size=(h, w)`` to the image scaled to that size instead (a
    figure's screen-sized copy of a photo) without a copy at the photo's resolution;
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
        resized = resize_nearest(mask, self.size)  # in the mask's own dtype: no float copy at the photo's size
        return self._place(resized.astype(np.float32)[..., None], 0.0)[..., 0]

    def point_to_model(self, point) -> tuple[int, int]:
        y, x = (int(v) for v in point)
        return (min(self.target[0] - 1, self.top + int((y + 0.5) * self.scale)),
                min(self.target[1] - 1, self.left + int((x + 0.5) * self.scale)))

    def to_image(self, values: np.ndarray, nearest: bool = False, size=None) -> np.ndarray:
        size = self.source if size is None else (int(size[0]), int(size[1]))
        if self.identity and size == self.source:
            return values
        crop = np.asarray(values)[self.top:self.top + self.size[0], self.left:self.left + self.size[1]]
        if nearest:
            return resize_nearest(crop, size)
        # One float32 array of the output's size (the crop is network-sized): no other full-size copy.
        out = cv2.resize(np.ascontiguousarray(crop, np.float32), size[::-1], interpolation=cv2.INTER_LINEAR)
        return out.reshape(size + crop.shape[2:]).astype(crop.dtype, copy=False)

    def valid(self) -> np.ndarray:
        canvas = np.zeros(self.target, np.float32)
        canvas[self.top:self.top + self.size[0], self.left:self.left + self.size[1]] = 1.0
        return canvas

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
