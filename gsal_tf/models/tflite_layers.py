"""Keras layers for the TFLite operators that have no exact built-in Keras counterpart.

Used by :mod:`gsal_tf.models.tflite_import`. Every layer is registered under the package
``"gsal"`` and returns its constructor arguments from ``get_config``, so a model that uses them
saves as ``.keras`` and loads with ``keras.saving.load_model(path, safe_mode=True)`` once this
module is imported. Constant tensors (:class:`ConstantOperand`) are stored as non-trainable
weights, not in the config.

All layers work on NHWC float tensors with any batch size and are differentiable.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


@keras.saving.register_keras_serializable(package="gsal_tf")
class ResizeBilinear(keras.layers.Layer):
    """TFLite RESIZE_BILINEAR: (N,h,w,C) → (N,H,W,C) with ``size = (H, W)``.

    Sampling position of output pixel ``i`` in the input (per axis, ``in``/``out`` sizes):

    - ``align_corners``: ``src = i · (in − 1) / (out − 1)`` (``out > 1``);
    - ``half_pixel_centers``: ``src = (i + 0.5) · in / out − 0.5`` (clamped at 0 below);
    - neither: ``src = i · in / out``.

    The value is the bilinear interpolation of the 4 neighbours of ``src`` (indices clamped to
    the image). This is ``tf.raw_ops.ResizeBilinear``, which TFLite's kernel reproduces;
    ``keras.layers.Resizing`` cannot express ``align_corners``.
    """

    def __init__(self, size, align_corners: bool = False, half_pixel_centers: bool = False, **kwargs):
        super().__init__(**kwargs)
        if align_corners and half_pixel_centers:
            raise ValueError("align_corners and half_pixel_centers cannot both be true")
        self.size = tuple(int(s) for s in size)
        self.align_corners = bool(align_corners)
        self.half_pixel_centers = bool(half_pixel_centers)

    def call(self, inputs):
        return tf.raw_ops.ResizeBilinear(images=inputs, size=tf.constant(self.size, tf.int32),
                                         align_corners=self.align_corners,
                                         half_pixel_centers=self.half_pixel_centers)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "align_corners": self.align_corners,
                "half_pixel_centers": self.half_pixel_centers}


@keras.saving.register_keras_serializable(package="gsal_tf")
class Tile(keras.layers.Layer):
    """TFLite TILE: ``out[n, y, x, c] = in[n mod N, y mod h, x mod w, c mod C]``; shape ``in · multiples``."""

    def __init__(self, multiples, **kwargs):
        super().__init__(**kwargs)
        self.multiples = tuple(int(m) for m in multiples)

    def call(self, inputs):
        return tf.tile(inputs, self.multiples)

    def compute_output_shape(self, input_shape):
        return tuple(None if d is None else d * m for d, m in zip(input_shape, self.multiples))

    def get_config(self):
        return {**super().get_config(), "multiples": list(self.multiples)}


@keras.saving.register_keras_serializable(package="gsal_tf")
class ReduceMean(keras.layers.Layer):
    """TFLite MEAN over ``axes`` (never the batch axis), keeping reduced axes as size 1 if ``keepdims``."""

    def __init__(self, axes, keepdims: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.axes = tuple(int(a) for a in axes)
        self.keepdims = bool(keepdims)

    def call(self, inputs):
        return tf.reduce_mean(inputs, axis=self.axes, keepdims=self.keepdims)

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        axes = {a % rank for a in self.axes}
        if self.keepdims:
            return tuple(1 if i in axes else d for i, d in enumerate(input_shape))
        return tuple(d for i, d in enumerate(input_shape) if i not in axes)

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes), "keepdims": self.keepdims}


@keras.saving.register_keras_serializable(package="gsal_tf")
class Pad(keras.layers.Layer):
    """TFLite PAD with zeros: ``paddings[i] = (before_i, after_i)`` for every axis (batch: (0, 0))."""

    def __init__(self, paddings, **kwargs):
        super().__init__(**kwargs)
        self.paddings = tuple(tuple(int(v) for v in p) for p in paddings)

    def call(self, inputs):
        return tf.pad(inputs, self.paddings)

    def compute_output_shape(self, input_shape):
        return tuple(None if d is None else d + b + a for d, (b, a) in zip(input_shape, self.paddings))

    def get_config(self):
        return {**super().get_config(), "paddings": [list(p) for p in self.paddings]}


@keras.saving.register_keras_serializable(package="gsal_tf")
class ConstantOperand(keras.layers.Layer):
    """An element-wise binary operator with a constant: ``x + c`` or ``x · c`` (NumPy broadcasting).

    ``c`` (shape ``constant_shape``, rank ≤ rank of ``x``, size 1 along the batch axis if it has one) is a
    non-trainable weight, so it is saved with the model's weights.
    """

    OPERATIONS = ("add", "mul")

    def __init__(self, operation: str, constant_shape, **kwargs):
        super().__init__(**kwargs)
        if operation not in self.OPERATIONS:
            raise ValueError(f"operation must be one of {self.OPERATIONS}, got {operation!r}")
        self.operation = operation
        self.constant_shape = tuple(int(s) for s in constant_shape)
        self.constant = self.add_weight(name="constant", shape=self.constant_shape, initializer="zeros",
                                        trainable=False)

    def call(self, inputs):
        return inputs + self.constant if self.operation == "add" else inputs * self.constant

    def compute_output_shape(self, input_shape):
        rank = len(input_shape)
        constant = (1,) * (rank - len(self.constant_shape)) + self.constant_shape
        known = tuple(1 if d is None else d for d in input_shape)
        out = np.broadcast_shapes(known, constant)
        return tuple(None if d is None and c == 1 else int(o) for d, c, o in zip(input_shape, constant, out))

    def get_config(self):
        return {**super().get_config(), "operation": self.operation, "constant_shape": list(self.constant_shape)}
