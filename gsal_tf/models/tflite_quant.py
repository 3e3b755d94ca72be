"""8-bit TFLite arithmetic simulated in float32: the imported model computes the interpreter's integers.

A full-integer TFLite network (int8 / uint8 activations) stores every activation tensor ``t`` as
integers ``q ∈ [q_min, q_max]`` (uint8: [0, 255], int8: [−128, 127]) with a scale ``s`` and a zero
point ``z``: the real value is ``t = s·(q − z)``. :func:`gsal_tf.models.from_tflite` with
``quantize_activations=True`` (the default for such files) rebuilds each operator so that its
float32 output is exactly ``s·(q − z)`` for the ``q`` the interpreter's kernel computes, and its
gradient is the gradient of the float operator (straight-through: rounding counts as the
identity; a clamp, i.e. the end of the integer range or a fused ReLU/ReLU6, passes no gradient).

Which kernels are simulated
---------------------------
``tf.lite.Interpreter`` runs an 8-bit network on the XNNPACK delegate where XNNPACK takes the
operator and on TFLite's built-in integer kernels elsewhere. Rounding differs between kernel
libraries, and a DeepLab network amplifies one-step differences: on the Cityscapes network the
interpreter's default path and its own built-in kernels
(``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``) agree on as few as 89.4 % of the pixels
(median 97.2 % over 32 images). So this module reproduces the default path, operator by
operator as measured on x86-64 with TensorFlow 2.21 (other CPUs may get XNNPACK kernels with
another requantisation, e.g. ARM's fixed-point one, whose ties can round one step apart). With
``n = q − z`` (the centred integer; ``rint`` rounds half to even, ``⌊·⌋`` is floor):

====================  =========================================================================
CONV_2D,              ``acc = Σ n_in·n_w + bias`` (int32 bias, exact: float32 when
DEPTHWISE_CONV_2D     ``255·Σ|n_w| + |bias| < 2²⁴``, float64 otherwise);
(:class:`Requantize`) ``q = clamp(rint(fp32(acc)·M_c), lo, hi) + z_out`` with
                      ``M_c = fp32(fp32(s_in·s_w,c) / s_out)`` per output channel ``c`` (XNNPACK's
                      fp32 requantisation); ``[lo, hi]`` the integer range cut by the fused
                      activation (``z + round(0/s)``, ``z + round(6/s)`` for RELU6).
ADD                   ``q = ⌊(m_a·n_a + m_b·n_b + 2^(k−1)) / 2^k⌋ + z_out`` with ``k = 20 − e``, ``e``
(:class:`Quantized-   the binary exponent of ``max(s_a, s_b)/s_out``, ``m = rint((s/s_out)·2^k)``
Binary`)              (XNNPACK's 20-bit fixed-point add); then the activation clamp.
MUL                   ``q = rint(fp32(n_a·n_b)·M) + z_out``, ``M = fp32(fp32(s_a·s_b)/s_out)``, clamp.
(:class:`Quantized-   Either operand may be a constant (its integers are a weight of the layer).
Binary`)
RESIZE_BILINEAR       ``q = ⌊(2²²·bilinear(q_in; α̂) + 2²¹) / 2²²⌋`` with the weights rounded to 11
(:class:`Quantized-   bits, ``α̂ = rint(2048·α)/2048`` (XNNPACK's ``ibilinear``; ``α`` from float32
ResizeBilinear`)      source positions for align_corners / half_pixel_centers / neither).
AVERAGE_POOL_2D       ``q = sign(S)·⌊(|S| + ⌊c/2⌋) / c⌋`` with ``S`` the sum of the raw ``q`` over the
(:class:`Quantized-   ``c`` in-image positions of the window (TFLite's built-in integer kernel, which
AveragePool`)         is what the interpreter ran), then the activation clamp; output scale = input
                      scale.
QUANTIZE (8-bit to    ``q = ⌊(m·n_in + 128) / 256⌋ + z_out``, ``m = rint(256·s_in/s_out)``
the same type)        (XNNPACK's ``convert``: an 8-bit multiplier, 41/256 for the Cityscapes
                      network's ratio 0.1615, which moves 5 % of that tensor by one step).
(:class:`Requantize8`)
everything else       the float operator, then :class:`FakeQuant`: ``q = clamp(rint(t/s) + z)``.
                      Exact for data movement (PAD, TILE, CONCATENATION of equal scales, MAX_POOL,
                      SPACE_TO_BATCH_ND, ...), which keeps values on the grid; for MEAN,
                      LOGISTIC, HARD_SWISH, TRANSPOSE_CONV and CONCATENATION with rescaling it
                      rounds the real result, which differs from the kernels' integer arithmetic
                      only where the real result lies within float round-off of a rounding
                      boundary (or, for LUT-based LOGISTIC/HARD_SWISH, by the LUT's own rounding).
====================  =========================================================================

Exactness rests on one fact: a float32 tensor on the grid, ``t = fp32(s·n)``, gives back
``n = rint(t/s)`` exactly for ``|n| ≤ 255``. So each simulated operator recovers its integer inputs,
computes in integers held exactly in float32/float64/int32, and writes ``s·(q − z)``.

Measured: fed the interpreter's own input tensors, every operator of the three Coral DeepLab
files (on a Cityscapes frame) and of the tests' tiny int8 networks returns exactly the
interpreter's output integers; before the kernels above were simulated, a generic rounding of
the float result missed 5.5 % of the QUANTIZE output, 1.75 % of the logits' RESIZE_BILINEAR
(ties at the 1/16 steps, rounded half up by the kernel), up to 0.04 % of an ADD and 0.007 % of
a CONV_2D — enough for the Cityscapes network to change 7 % of a photo's classes. End to end:
100 % arg-max agreement (the table in :func:`gsal_tf.models.tflite_import.from_tflite`;
``benchmarks/tflite_agreement.py``).

The layers are registered (package ``gsal_tf``) when :mod:`gsal_tf.models` is imported, so a model
saved as ``.keras`` or as a zoo ``.model.npz`` rebuilds in safe mode. Stored in float16 it stays
exact: the convolution kernels hold integers ``|n| ≤ 255``; biases and multipliers live in the
layer configs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from gsal_tf.models.tflite_layers import ResizeSettings

__all__ = [
    "RANGES", "FLOAT32_EXACT", "Quantization", "conv_multipliers", "add_multipliers", "convert_multiplier",
    "resize_axis", "window_counts", "straight_through", "FakeQuant", "ToInteger", "Requantize",
    "mul_multiplier", "QuantizedBinary", "QuantizedAveragePool", "QuantizedResizeBilinear", "Requantize8",
]

#: Integer range of each 8-bit activation type.
RANGES = {"uint8": (0, 255), "int8": (-128, 127)}
#: Largest integer every partial sum of a float32 convolution holds exactly.
FLOAT32_EXACT = 2 ** 24


@dataclass(frozen=True)
class Quantization:
    """One 8-bit tensor's grid: ``real = scale·(q − zero_point)``, ``q ∈ [qmin, qmax]``."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int

    def bounds(self, activation: str | None) -> tuple[int, int]:
        """The integer range ``[lo, hi]`` of ``q`` after a fused activation (None, ``"relu"``,
        ``"relu6"``, ``"hard_tanh"`` = RELU_N1_TO_1): TFLite's ``CalculateActivationRangeQuantized``,
        ``lo = max(qmin, z + round(a/s))``, ``hi = min(qmax, z + round(b/s))`` for the real range
        ``[a, b]`` (round halves away from zero)."""
        real = {None: (None, None), "relu": (0.0, None), "relu6": (0.0, 6.0), "hard_tanh": (-1.0, 1.0)}
        if activation not in real:
            raise ValueError(f"fused activation {activation!r} has no 8-bit range")
        low, high = real[activation]

        def quantize(value: float) -> int:
            v = value / self.scale
            return self.zero_point + int(math.copysign(math.floor(abs(v) + 0.5), v))

        return (self.qmin if low is None else max(self.qmin, quantize(low)),
                self.qmax if high is None else min(self.qmax, quantize(high)))


# ---------------------------------------------------------------------------------------------
# Kernel parameters (pure functions of the file's scales)
# ---------------------------------------------------------------------------------------------

def conv_multipliers(input_scale: float, kernel_scales, output_scale: float) -> np.ndarray:
    """``M_c = fp32(fp32(s_in·s_w,c) / s_out)`` (C,) float32: XNNPACK's requantisation scale of a
    convolution's int32 accumulator, computed in float32 as XNNPACK does."""
    product = np.float32(input_scale) * np.asarray(kernel_scales, np.float32).reshape(-1)
    return (product / np.float32(output_scale)).astype(np.float32)


def add_multipliers(a_scale: float, b_scale: float, output_scale: float) -> tuple[int, int, int]:
    """``(m_a, m_b, k)`` of XNNPACK's 8-bit ADD: ``k = 20 − e`` with ``e`` the binary exponent of
    ``max(r_a, r_b)``, ``r = fp32(s/s_out)``; ``m = rint(r·2^k)`` (the largest in [2²⁰, 2²¹])."""
    ratios = [np.float32(s) / np.float32(output_scale) for s in (a_scale, b_scale)]
    exponent = math.frexp(float(max(ratios)))[1] - 1
    shift = 20 - exponent
    if not 12 <= shift <= 30:
        raise ValueError(f"input/output scale ratios {[float(r) for r in ratios]} are outside XNNPACK's range")
    a, b = (int(np.rint(np.float32(math.ldexp(float(r), shift)))) for r in ratios)
    return a, b, shift


def convert_multiplier(input_scale: float, output_scale: float) -> int:
    """``m = rint(256·fp32(s_in/s_out))``: XNNPACK's 8-bit requantisation multiplier (QUANTIZE)."""
    return int(np.rint(np.float32(256.0) * (np.float32(input_scale) / np.float32(output_scale))))


def resize_axis(n_in: int, n_out: int, align_corners: bool, half_pixel_centers: bool):
    """``(low, high, alpha)`` (n_out,) int arrays of XNNPACK's 8-bit bilinear resize along one axis:
    output ``i`` reads input rows ``low[i]``, ``high[i]`` with weight ``alpha[i]/2048`` on ``high``.

    Source position (float32): ``p = i·r + o`` with ``r = (n_in − 1)/(n_out − 1)`` and ``o = 0`` for
    align_corners, ``r = n_in/n_out`` and ``o = r/2 − 1/2`` for half_pixel_centers, ``o = 0`` for
    neither; ``low = clamp(⌊p⌋)``, ``high = clamp(⌊p⌋ + 1)``, ``alpha = rint(2048·(p − ⌊p⌋))`` (0 where
    ``p < 0``).
    """
    adjust = 1 if align_corners and n_out > 1 else 0
    ratio = np.float32(n_in - adjust) / np.float32(n_out - adjust)
    offset = np.float32(0.5) * ratio - np.float32(0.5) if half_pixel_centers else np.float32(0.0)
    position = np.arange(n_out, dtype=np.float32) * ratio + offset
    top = np.floor(position).astype(np.int64)
    alpha = np.where(top < 0, np.float32(0.0), position - top.astype(np.float32))
    return (np.clip(top, 0, n_in - 1), np.clip(top + 1, 0, n_in - 1),
            np.rint(alpha * np.float32(2048.0)).astype(np.int64))


def window_counts(size, pool_size, strides, padding: str) -> np.ndarray:
    """(H', W') int: how many in-image positions each pooling window covers (TFLite counts no
    padding); ``size`` the input (H, W)."""
    counts = []
    for n, k, s in zip(size, pool_size, strides):
        if padding == "same":
            out = -(-n // s)
            before = max((out - 1) * s + k - n, 0) // 2
        else:
            out, before = (n - k) // s + 1, 0
        start = np.arange(out) * s - before
        counts.append(np.minimum(start + k, n) - np.maximum(start, 0))
    return np.outer(counts[0], counts[1]).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Differentiable building blocks
# ---------------------------------------------------------------------------------------------

def straight_through(exact, surrogate, *inputs):
    """``exact(*inputs)``'s value with ``surrogate(*inputs)``'s gradient (both the same shape)."""
    @tf.custom_gradient
    def function(*xs):
        def gradient(upstream):
            with tf.GradientTape() as tape:
                tape.watch(xs)
                value = surrogate(*xs)
            return tape.gradient(value, xs, output_gradients=upstream)
        return exact(*xs), gradient

    return function(*inputs)


def _integers(x, scale: float):
    """``n = rint(x/s)``: the centred integers of a float32 tensor on the grid of scale ``s``."""
    return tf.round(x / scale)


def _real(q, quantization: Quantization):
    """``s·(q − z)`` as float32 (``q`` float, integer-valued)."""
    return quantization.scale * (tf.cast(q, tf.float32) - quantization.zero_point)


class _QuantizedLayer(keras.layers.Layer):
    """A layer whose output lies on the grid ``scale``, ``zero_point`` clamped to ``[q_low, q_high]``."""

    def __init__(self, scale: float, zero_point: int, q_low: int, q_high: int, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.zero_point = float(scale), int(zero_point)
        self.q_low, self.q_high = int(q_low), int(q_high)
        if not (self.scale > 0 and self.q_low <= self.q_high):
            raise ValueError(f"invalid grid: scale {scale}, integer range [{q_low}, {q_high}]")

    @property
    def quantization(self) -> Quantization:
        return Quantization(self.scale, self.zero_point, self.q_low, self.q_high)

    @property
    def real_range(self) -> tuple[float, float]:
        return self.scale * (self.q_low - self.zero_point), self.scale * (self.q_high - self.zero_point)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "zero_point": self.zero_point, "q_low": self.q_low,
                "q_high": self.q_high}


@keras.saving.register_keras_serializable(package="gsal_tf")
class FakeQuant(_QuantizedLayer):
    """``y = s·(clamp(rint(x/s) + z, q_low, q_high) − z)``: a real tensor rounded to an 8-bit grid.

    Gradient 1 where ``s·(q_low − z) ≤ x ≤ s·(q_high − z)``, 0 outside. (N, ...) → same shape.
    """

    def call(self, inputs):
        low, high = self.real_range

        def exact(x):
            return _real(tf.clip_by_value(_integers(x, self.scale) + self.zero_point, self.q_low, self.q_high),
                         self.quantization)

        return straight_through(exact, lambda x: tf.clip_by_value(x, low, high), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="gsal_tf")
class ToInteger(keras.layers.Layer):
    """``n = rint(x/s)``: a grid tensor's centred integers ``q − z`` (float32), gradient ``1/s``.

    Feeds a convolution whose kernel holds the integer weights ``q_w − z_w``; (N, ...) → same shape.
    """

    def __init__(self, scale: float, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)

    def call(self, inputs):
        return straight_through(lambda x: _integers(x, self.scale), lambda x: x / self.scale, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="gsal_tf")
class Requantize(_QuantizedLayer):
    """A convolution's integer accumulator to its 8-bit output (XNNPACK's fp32 requantisation).

    Input ``acc`` (N,H,W,C): ``Σ n_in·n_w`` (integer-valued float32 or float64); ``bias`` (C,)
    int32 values (kept in the config: they must stay exact, model files may store weights in
    float16); ``multipliers`` (C,) the float32 ``M_c`` of :func:`conv_multipliers`. Output
    ``s·(q − z)`` with ``q = clamp(rint(fp32(acc + bias)·M_c), q_low, q_high)`` (the clamp on
    ``q − z``, then ``+ z``). Gradient ``s·M_c`` inside the clamp, 0 outside: with the integer
    kernel and :class:`ToInteger`'s ``1/s_in`` the chain is the real convolution's gradient.
    """

    def __init__(self, multipliers, bias, scale: float, zero_point: int, q_low: int, q_high: int, **kwargs):
        super().__init__(scale, zero_point, q_low, q_high, **kwargs)
        self.multipliers = [float(np.float32(m)) for m in np.asarray(multipliers).reshape(-1)]
        self.bias = None if bias is None else [int(b) for b in np.asarray(bias).reshape(-1)]

    def call(self, inputs):
        multipliers = tf.constant(self.multipliers, tf.float32)
        bias = None if self.bias is None else tf.constant(self.bias, inputs.dtype)
        low, high = float(self.q_low - self.zero_point), float(self.q_high - self.zero_point)

        def accumulate(acc):
            return tf.cast(acc if bias is None else acc + bias, tf.float32) * multipliers

        def exact(acc):
            return self.scale * tf.round(tf.clip_by_value(accumulate(acc), low, high))

        def surrogate(acc):
            return self.scale * tf.clip_by_value(accumulate(acc), low, high)

        return straight_through(exact, surrogate, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "multipliers": self.multipliers, "bias": self.bias}


def mul_multiplier(a_scale: float, b_scale: float, output_scale: float) -> float:
    """``M = fp32(fp32(s_a·s_b) / s_out)``: XNNPACK's scale of an 8-bit MUL's integer product."""
    return float((np.float32(a_scale) * np.float32(b_scale)) / np.float32(output_scale))


@keras.saving.register_keras_serializable(package="gsal_tf")
class QuantizedBinary(_QuantizedLayer):
    """8-bit ADD or MUL of two grid tensors, or of a grid tensor and a constant (NumPy
    broadcasting), with XNNPACK's arithmetic on ``n_a = rint(a/s_a)``, ``n_b = rint(b/s_b)``:

    - add: ``q = ⌊(m_a·n_a + m_b·n_b + 2^(k−1)) / 2^k⌋ + z`` with ``(m_a, m_b, k)`` =
      :func:`add_multipliers` (20-bit fixed point);
    - mul: ``q = rint(fp32(n_a·n_b)·M) + z`` with ``M`` = :func:`mul_multiplier`;

    then ``q`` clamped to ``[q_low, q_high]`` (the fused activation). With ``constant_shape`` the
    second operand is a non-trainable weight holding the constant's integers ``n_b = q_b − z_b``
    (exact in float16 storage) and the layer takes one input; otherwise it takes ``[a, b]``.
    Gradient: the real sum's or product's, inside the clamp.
    """

    OPERATIONS = ("add", "mul")

    def __init__(self, operation: str, a_scale: float, b_scale: float, scale: float, zero_point: int, q_low: int,
                 q_high: int, constant_shape=None, **kwargs):
        super().__init__(scale, zero_point, q_low, q_high, **kwargs)
        if operation not in self.OPERATIONS:
            raise ValueError(f"operation must be one of {self.OPERATIONS}, got {operation!r}")
        self.operation = operation
        self.a_scale, self.b_scale = float(a_scale), float(b_scale)
        if operation == "add":
            self.a_multiplier, self.b_multiplier, self.shift = add_multipliers(a_scale, b_scale, scale)
        else:
            self.multiplier = mul_multiplier(a_scale, b_scale, scale)
        self.constant_shape = None if constant_shape is None else tuple(int(d) for d in constant_shape)
        self.constant = None if self.constant_shape is None else self.add_weight(
            name="constant", shape=self.constant_shape, initializer="zeros", trainable=False)

    def _exact(self, n_a, n_b):
        if self.operation == "add":
            n_a, n_b = tf.cast(n_a, tf.int64), tf.cast(n_b, tf.int64)
            acc = self.a_multiplier * n_a + self.b_multiplier * n_b + (1 << (self.shift - 1))
            q = tf.bitwise.right_shift(acc, self.shift) + self.zero_point
        else:
            q = tf.round(n_a * n_b * self.multiplier) + self.zero_point
        return _real(tf.clip_by_value(tf.cast(q, tf.float32), self.q_low, self.q_high), self.quantization)

    def call(self, inputs):
        low, high = self.real_range

        def surrogate(x, y):
            return tf.clip_by_value(x + y if self.operation == "add" else x * y, low, high)

        if self.constant is not None:
            n_b = tf.convert_to_tensor(self.constant)
            return straight_through(lambda x: self._exact(_integers(x, self.a_scale), n_b),
                                    lambda x: surrogate(x, self.b_scale * n_b), inputs)
        a, b = inputs
        return straight_through(lambda x, y: self._exact(_integers(x, self.a_scale), _integers(y, self.b_scale)),
                                surrogate, a, b)

    def compute_output_shape(self, input_shape):
        shapes = [input_shape, self.constant_shape] if self.constant is not None else list(input_shape)
        known = [tuple(1 if d is None else d for d in s) for s in shapes]
        return (None, *np.broadcast_shapes(*known)[1:])

    def get_config(self):
        return {**super().get_config(), "operation": self.operation, "a_scale": self.a_scale,
                "b_scale": self.b_scale,
                "constant_shape": None if self.constant_shape is None else list(self.constant_shape)}


@keras.saving.register_keras_serializable(package="gsal_tf")
class QuantizedAveragePool(_QuantizedLayer):
    """8-bit AVERAGE_POOL_2D (TFLite's built-in kernel; input and output share ``scale`` and ``z``):
    ``S`` = sum of the raw ``q`` over the window's ``c`` in-image positions,
    ``q = clamp(sign(S)·⌊(|S| + ⌊c/2⌋) / c⌋, q_low, q_high)``. (N,H,W,C) → (N,H',W',C); sums in
    float64 (exact). Gradient: the real average pool's, inside the clamp.
    """

    def __init__(self, pool_size, strides, padding: str, scale: float, zero_point: int, q_low: int, q_high: int,
                 **kwargs):
        super().__init__(scale, zero_point, q_low, q_high, **kwargs)
        self.pool_size = tuple(int(k) for k in pool_size)
        self.strides = tuple(int(s) for s in strides)
        self.padding = str(padding)

    def _pool(self, x):
        return tf.nn.avg_pool2d(x, self.pool_size, self.strides, self.padding.upper())

    def call(self, inputs):
        low, high = self.real_range
        counts = window_counts(inputs.shape[1:3], self.pool_size, self.strides, self.padding)
        count = tf.constant(counts[None, :, :, None], tf.float64)

        def exact(x):
            q = tf.cast(_integers(x, self.scale) + self.zero_point, tf.float64)
            total = tf.round(self._pool(q) * count)
            rounded = tf.sign(total) * tf.math.floordiv(tf.abs(total) + tf.math.floordiv(count, 2.0), count)
            return _real(tf.clip_by_value(rounded, self.q_low, self.q_high), self.quantization)

        return straight_through(exact, lambda x: tf.clip_by_value(self._pool(x), low, high), inputs)

    def compute_output_shape(self, input_shape):
        counts = window_counts(input_shape[1:3], self.pool_size, self.strides, self.padding)
        return (input_shape[0], *counts.shape, input_shape[3])

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "strides": list(self.strides),
                "padding": self.padding}


@keras.saving.register_keras_serializable(package="gsal_tf")
class QuantizedResizeBilinear(ResizeSettings, _QuantizedLayer):
    """8-bit RESIZE_BILINEAR, XNNPACK's ``ibilinear`` (input and output share the grid):
    (N,h,w,C) → (N,H,W,C) with ``size = (H, W)`` and the tables of :func:`resize_axis`:
    ``t = 2048·q_tl + α_x·(q_tr − q_tl)``, ``b`` likewise, ``acc = 2048·t + α_y·(b − t)``,
    ``q = ⌊(acc + 2²¹) / 2²²⌋`` (int32, exact). Gradient: the float bilinear resize with the same
    weights.
    """

    def __init__(self, size, align_corners: bool, half_pixel_centers: bool, scale: float, zero_point: int,
                 q_low: int, q_high: int, **kwargs):
        super().__init__(scale, zero_point, q_low, q_high, **kwargs)
        self._set_resize(size, align_corners, half_pixel_centers)

    def _tables(self, axis: int, n_in: int):
        low, high, alpha = resize_axis(n_in, self.size[axis], self.align_corners, self.half_pixel_centers)
        shape = [1, 1, 1, 1]
        shape[axis + 1] = -1
        return tf.constant(low, tf.int32), tf.constant(high, tf.int32), alpha.reshape(shape).astype(np.int32)

    def call(self, inputs):
        y_low, y_high, alpha_y = self._tables(0, inputs.shape[1])
        x_low, x_high, alpha_x = self._tables(1, inputs.shape[2])

        def corners(t):
            top, bottom = tf.gather(t, y_low, axis=1), tf.gather(t, y_high, axis=1)
            return (tf.gather(top, x_low, axis=2), tf.gather(top, x_high, axis=2),
                    tf.gather(bottom, x_low, axis=2), tf.gather(bottom, x_high, axis=2))

        def exact(x):
            tl, tr, bl, br = corners(tf.cast(_integers(x, self.scale) + self.zero_point, tf.int32))
            top, bottom = tl * 2048 + (tr - tl) * alpha_x, bl * 2048 + (br - bl) * alpha_x
            acc = top * 2048 + (bottom - top) * alpha_y
            q = tf.clip_by_value(tf.bitwise.right_shift(acc + (1 << 21), 22), self.q_low, self.q_high)
            return _real(q, self.quantization)

        def surrogate(x):
            tl, tr, bl, br = corners(x)
            wx, wy = alpha_x.astype(np.float32) / 2048, alpha_y.astype(np.float32) / 2048
            top, bottom = tl + (tr - tl) * wx, bl + (br - bl) * wx
            return top + (bottom - top) * wy

        return straight_through(exact, surrogate, inputs)


@keras.saving.register_keras_serializable(package="gsal_tf")
class Requantize8(_QuantizedLayer):
    """QUANTIZE from one 8-bit grid to another of the same type (XNNPACK's ``convert``):
    ``q = clamp(⌊(m·n_in + 128) / 256⌋ + z, q_low, q_high)``, ``m`` = :func:`convert_multiplier`
    (an 8-bit multiplier, ``m/256`` up to ``1/512`` off the true ratio ``s_in/s_out``).
    Gradient 1 inside the clamp.
    """

    def __init__(self, input_scale: float, scale: float, zero_point: int, q_low: int, q_high: int, **kwargs):
        super().__init__(scale, zero_point, q_low, q_high, **kwargs)
        self.input_scale = float(input_scale)
        self.multiplier = convert_multiplier(input_scale, scale)

    def call(self, inputs):
        low, high = self.real_range

        def exact(x):
            n = tf.cast(_integers(x, self.input_scale), tf.int32)
            q = tf.bitwise.right_shift(self.multiplier * n + 128, 8) + self.zero_point
            return _real(tf.clip_by_value(q, self.q_low, self.q_high), self.quantization)

        return straight_through(exact, lambda x: tf.clip_by_value(x, low, high), inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "input_scale": self.input_scale}
