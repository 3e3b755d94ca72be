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

__all__ = [
    "ResizeBilinear", "Tile", "ReduceMean", "Pad", "ConstantOperand", "TransposeConv", "SpaceToBatch",
    "BatchToSpace",
]


class ResizeSettings:
    """What the bilinear resize layers share (this module's :class:`ResizeBilinear` and the 8-bit
    :class:`~gsal_tf.models.tflite_quant.QuantizedResizeBilinear`): the output ``size = (H, W)``,
    the ``align_corners`` and ``half_pixel_centers`` sampling flags, the output shape
    (N,H,W,C) and the config entries. A mixin placed before the Keras layer base class."""

    def _set_resize(self, size, align_corners: bool, half_pixel_centers: bool) -> None:
        self.size = tuple(int(s) for s in size)
        self.align_corners = bool(align_corners)
        self.half_pixel_centers = bool(half_pixel_centers)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "align_corners": self.align_corners,
                "half_pixel_centers": self.half_pixel_centers}


@keras.saving.register_keras_serializable(package="gsal_tf")
class ResizeBilinear(ResizeSettings, keras.layers.Layer):
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
        self._set_resize(size, align_corners, half_pixel_centers)

    def call(self, inputs):
        return tf.raw_ops.ResizeBilinear(images=inputs, size=tf.constant(self.size, tf.int32),
                                         align_corners=self.align_corners,
                                         half_pixel_centers=self.half_pixel_centers)


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


@keras.saving.register_keras_serializable(package="gsal_tf")
class TransposeConv(keras.layers.Layer):
    """A transposed convolution cropped to a window: (N,h,w,C_in) → (N,H,W,C_out).

    With kernel ``W`` (kh,kw,C_out,C_in), strides ``(s_h, s_w)`` and ``offset = (t, l)``, the full
    transposed convolution (size ``F_h = s_h·(h − 1) + kh``, ``F_w = s_w·(w − 1) + kw``) is

        full[n, i·s_h + a, j·s_w + b, o] += Σ_c x[n, i, j, c] · W[a, b, o, c]

    (each input pixel scatters its kernel-weighted copy onto the output grid at stride ``s``),
    and the output is the window ``y[n, Y, X, o] = full[n, Y + t, X + l, o] + bias[o]`` for
    ``Y < H``, ``X < W`` (``full`` is 0 beyond ``F``). TFLite's TRANSPOSE_CONV (TensorFlow's
    ``conv2d_transpose``) and MediaPipe's ``Convolution2DTransposeBias`` are this layer with the
    ``offset`` and ``output_size`` their padding rules give
    (:func:`gsal_tf.models.tflite_import.transpose_conv_offset`,
    :func:`gsal_tf.models.tflite_import.mediapipe_transpose_geometry`).
    """

    def __init__(self, filters: int, kernel_size, strides, output_size, offset=(0, 0), use_bias: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = tuple(int(s) for s in strides)
        self.output_size = tuple(int(s) for s in output_size)
        self.offset = tuple(int(o) for o in offset)
        self.use_bias = bool(use_bias)
        if min(self.offset) < 0:
            raise ValueError(f"offset must be non-negative, got {self.offset}")

    def build(self, input_shape):
        self.kernel = self.add_weight(name="kernel", shape=(*self.kernel_size, self.filters, int(input_shape[-1])),
                                      initializer="glorot_uniform")
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, inputs):
        h, w = int(inputs.shape[1]), int(inputs.shape[2])
        full_h = self.strides[0] * (h - 1) + self.kernel_size[0]
        full_w = self.strides[1] * (w - 1) + self.kernel_size[1]
        shape = tf.stack([tf.shape(inputs)[0], full_h, full_w, self.filters])
        full = tf.nn.conv2d_transpose(inputs, tf.cast(self.kernel, inputs.dtype), shape, self.strides, "VALID")
        (top, left), (height, width) = self.offset, self.output_size
        extra_h, extra_w = max(top + height - full_h, 0), max(left + width - full_w, 0)
        if extra_h or extra_w:
            full = tf.pad(full, [[0, 0], [0, extra_h], [0, extra_w], [0, 0]])
        y = full[:, top:top + height, left:left + width, :]
        return y + tf.cast(self.bias, y.dtype) if self.use_bias else y

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.output_size, self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "output_size": list(self.output_size), "offset": list(self.offset),
                "use_bias": self.use_bias}


@keras.saving.register_keras_serializable(package="gsal_tf")
class SpaceToBatch(keras.layers.Layer):
    """TFLite SPACE_TO_BATCH_ND over H and W: (N,H,W,C) → (b_h·b_w·N, H'/b_h, W'/b_w, C).

    The image is zero-padded to ``H' = H + p_top + p_bottom``, ``W' = W + p_left + p_right``
    (``paddings = ((p_top, p_bottom), (p_left, p_right))``), then each phase ``(i, j)`` of the
    ``block = (b_h, b_w)`` grid becomes a batch entry:
    ``out[(i·b_w + j)·N + n, y, x, c] = padded[n, y·b_h + i, x·b_w + j, c]``
    (``tf.space_to_batch_nd``). Followed by a convolution and :class:`BatchToSpace`, this is a
    dilated (atrous) convolution with rate ``block``.
    """

    def __init__(self, block, paddings, **kwargs):
        super().__init__(**kwargs)
        self.block = tuple(int(b) for b in block)
        self.paddings = tuple(tuple(int(v) for v in p) for p in paddings)

    def call(self, inputs):
        return tf.space_to_batch_nd(inputs, self.block, self.paddings)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else input_shape[0] * self.block[0] * self.block[1]
        spatial = [None if d is None else (d + sum(p)) // b
                   for d, p, b in zip(input_shape[1:3], self.paddings, self.block)]
        return (n, *spatial, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "block": list(self.block), "paddings": [list(p) for p in self.paddings]}


@keras.saving.register_keras_serializable(package="gsal_tf")
class BatchToSpace(keras.layers.Layer):
    """TFLite BATCH_TO_SPACE_ND over H and W, the inverse of :class:`SpaceToBatch`:
    (b_h·b_w·N, h, w, C) → (N, h·b_h − c_top − c_bottom, w·b_w − c_left − c_right, C) with
    ``out[n, y·b_h + i − c_top, x·b_w + j − c_left, c] = in[(i·b_w + j)·N + n, y, x, c]``
    (``crops = ((c_top, c_bottom), (c_left, c_right))``; ``tf.batch_to_space``).
    """

    def __init__(self, block, crops, **kwargs):
        super().__init__(**kwargs)
        self.block = tuple(int(b) for b in block)
        self.crops = tuple(tuple(int(v) for v in c) for c in crops)

    def call(self, inputs):
        return tf.batch_to_space(inputs, self.block, self.crops)

    def compute_output_shape(self, input_shape):
        n = None if input_shape[0] is None else input_shape[0] // (self.block[0] * self.block[1])
        spatial = [None if d is None else d * b - sum(c) for d, c, b in zip(input_shape[1:3], self.crops, self.block)]
        return (n, *spatial, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "block": list(self.block), "crops": [list(c) for c in self.crops]}
