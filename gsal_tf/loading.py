"""Reading what users hand to gsal: images and models (a ``.keras`` file or a SavedModel folder).

Errors a user can fix raise :class:`GsalInputError` with the fix in the message.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError, first_line

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def load_image(path, scale: float = 1.0 / 255.0) -> np.ndarray:
    """An image file as float32 (H,W,C), RGB channel order, pixel values times ``scale``.

    ``.npy`` files are read as they are ((H,W) or (H,W,C), no scaling). 8-bit images are
    multiplied by ``scale`` (default 1/255 → [0,1]); 16-bit ones by ``scale / 257``.
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
    factor = scale / 257.0 if img.dtype == np.uint16 else scale
    if img.ndim == 2:
        img = img[..., None]
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return img.astype(np.float32) * np.float32(factor)


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
        from gsal_tf import zoo

        if str(path) in zoo.names():
            return zoo.load(str(path))
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

