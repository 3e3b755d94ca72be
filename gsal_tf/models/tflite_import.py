"""Import a TensorFlow Lite segmentation network (e.g. DeepLab) as a differentiable Keras model.

``from_tflite(path, output="logits", name=None, float_input_range=(-1.0, 1.0))`` reads a
``.tflite`` flatbuffer and rebuilds its graph as a Keras functional model with the same weights,
so gradient-based explainers (grid saliency, integrated gradients, ...) can run on networks that
only exist as TFLite files (Coral / Android DeepLab releases).

What the returned model computes
--------------------------------
- **Input**: RGB float images ``x`` in ``[0, 1]`` of shape ``(N, H, W, C)`` — what
  :func:`gsal_tf.loading.load_image` returns — at the file's input size ``(H, W)`` (fixed: resize the
  image first), any batch size ``N``.
- **Preprocessing** (first layer, ``keras.layers.Rescaling`` named ``preprocess``) maps ``x`` to
  the real-valued input the network was trained on:

  - 8-bit input tensor with scale ``s`` and zero point ``z``: the file expects the pixel value
    ``q`` (``q = 255·x`` for uint8, ``q = 255·x − 128`` for int8), which means the real value
    ``real = s·(q − z)``. So ``real = s·(255·x − z)`` (uint8) or ``s·(255·x − 128 − z)`` (int8).
    The Coral DeepLab files: ``s = 1/128``, ``z = 128`` → ``real = (255·x − 128)/128 ∈ [−1, 0.992]``.
  - float32 input tensor: the file does not record the range, so ``float_input_range = (lo, hi)``
    gives it: ``real = lo + (hi − lo)·x``. The default ``(−1, 1)`` (``real = 2·x − 1``) is
    DeepLab's convention ``pixel/127.5 − 1``; the float ``deeplabv3_257_mv_gpu.tflite`` and
    ``deeplabv3_mnv2_ade20k.tflite`` expect it (their input tensors are named ``sub_7``: the
    subtraction of that normalisation was cut off). MediaPipe's segmenters take ``(0, 1)``.
- **Output**: per-pixel logits ``(N, H, W, K)`` at the input resolution, or their softmax over
  ``K`` with ``output="probabilities"``. A final ``ARG_MAX`` over the class axis is dropped. If the
  graph's last tensor is not at the input resolution a bilinear resize with
  ``align_corners=True`` (DeepLab's convention) is appended (layer ``resize_to_input``).
- **One-channel output** (``K = 1``, a binary segmenter such as MediaPipe's selfie segmenter):
  the channel is the foreground's logit ``z``; a final ``LOGISTIC`` (``p = 1/(1 + e^(−z))``) is
  dropped, so ``output="logits"`` gives ``z`` ``(N, H, W, 1)`` and ``output="probabilities"``
  gives ``p = sigmoid(z)`` ``(N, H, W, 1)`` — the file's own output when it ends with that
  ``LOGISTIC``. The explainers read such an output as two classes, 0 = background (``1 − p``)
  and 1 = foreground (``p``).
- ``model.tflite_info`` (:class:`TFLiteInfo`) records input size, input type and quantisation,
  the input range, the preprocessing formula as text, the operator counts of the file and what
  was dropped or appended. ``inspect_tflite(path)`` returns the same without building a model.
  (The attribute is not saved in a ``.keras`` file; the ``preprocess`` layer is.)

Exact semantics
---------------
- Constant tensors are dequantised: ``real = scale·(q − zero_point)``, with one scale and zero
  point per tensor or one per channel along the tensor's ``quantized_dimension``; float16
  constants are cast to float32. int32 biases use the same formula (their scale is
  ``s_input·s_weight``, zero point 0).
- **Activations are not quantised**: the model runs in float32. An 8-bit network therefore
  differs from its TFLite run by the rounding and clamping of activations to 8 bits (for the Coral
  DeepLab files ≥ 95 % of the arg-max pixels agree, see the tests); a float file is reproduced to
  float round-off (≤ 1e-3 in the logits). A *hybrid* file (float activations, int8 weights read
  directly by CONV_2D, e.g. the ADE20K DeepLab) is rebuilt with the dequantised weights, while
  ``tf.lite.Interpreter`` quantises each such convolution's input to 8 bits on the fly: the two
  differ by that rounding (≥ 95 % arg-max agreement on real photos, see the tests).
- Operators (``fused activation`` = NONE, RELU, RELU_N1_TO_1 (clip to [−1, 1]), RELU6 or TANH):

  ==================  ====================================================================
  CONV_2D             ``keras.layers.Conv2D``; filter ``(C_out, kh, kw, C_in)`` → kernel
                      ``(kh, kw, C_in, C_out)``; stride, dilation, fused activation, bias.
  TRANSPOSE_CONV      :class:`~gsal_tf.models.tflite_layers.TransposeConv` (TensorFlow's
                      ``conv2d_transpose``): inputs output shape ``(1, H, W, C_out)``, filter
                      ``(C_out, kh, kw, C_in)`` → kernel ``(kh, kw, C_out, C_in)``, image,
                      optional bias; the window starts at :func:`transpose_conv_offset`.
  CUSTOM              MediaPipe's custom transposed convolution with bias: inputs image,
  (Convolution2D-     filter ``(C_out, kh, kw, C_in)``, bias ``(C_out,)``; custom options three
  TransposeBias)      little-endian int32 ``(padding, stride_w, stride_h)``, padding 1 = SAME,
                      2 = VALID (TfLitePadding); output size and window from
                      :func:`mediapipe_transpose_geometry`. Same layer as TRANSPOSE_CONV.
  DEPTHWISE_CONV_2D   ``keras.layers.DepthwiseConv2D``; filter ``(1, kh, kw, C_in·M)`` → kernel
                      ``(kh, kw, C_in, M)`` (output channel ``c·M + m``), ``M = C_out / C_in``.
  AVERAGE_POOL_2D,    ``keras.layers.AveragePooling2D`` / ``MaxPooling2D``; padded positions
  MAX_POOL_2D         are not counted (TFLite and TF agree).
  ADD, MUL            NumPy broadcasting; ``keras.layers.Add`` / ``Multiply`` for two tensors,
                      :class:`~gsal_tf.models.tflite_layers.ConstantOperand` for a constant.
  RELU, LOGISTIC,     ``keras.layers.Activation``: ``max(x, 0)``; ``1/(1 + e^(−x))``;
  HARD_SWISH          ``x·min(max(x + 3, 0), 6)/6``.
  SPACE_TO_BATCH_ND,  :class:`~gsal_tf.models.tflite_layers.SpaceToBatch` /
  BATCH_TO_SPACE_ND   :class:`~gsal_tf.models.tflite_layers.BatchToSpace` with the constant
                      block shape and paddings / crops (spatial axes only; how the converter
                      stores a dilated convolution: pad, split into the block's phases,
                      convolve each, interleave, crop).
  CONCATENATION       ``keras.layers.Concatenate`` (not along the batch axis).
  RESIZE_BILINEAR     :class:`~gsal_tf.models.tflite_layers.ResizeBilinear` with the file's
                      ``align_corners`` / ``half_pixel_centers`` (``tf.raw_ops.ResizeBilinear``).
  TILE, MEAN, PAD     :class:`~gsal_tf.models.tflite_layers.Tile` / ``ReduceMean`` / ``Pad``
                      with constant multiples (batch multiple 1) / axes (not the batch axis) /
                      paddings (none on the batch axis).
  QUANTIZE,           identity (float inference; a DEQUANTIZE of a constant yields the
  DEQUANTIZE          dequantised constant: int8/uint8 weights ``scale·(q − zero_point)``,
                      float16 weights cast to float32).
  ARG_MAX             only as the last operator, over the class axis: dropped.
  LOGISTIC (last)     as the last operator of a one-channel output: dropped (see above).
  ==================  ====================================================================

- Padding: ``SAME`` pads ``total = max((⌈n/s⌉ − 1)·s + (k − 1)·d + 1 − n, 0)`` pixels per axis,
  ``⌊total/2⌋`` before and the rest after; ``VALID`` pads nothing. TFLite and TensorFlow use this
  same rule, so the Keras layers get ``padding="same"`` / ``"valid"``.
- Layers are named after the TFLite output tensor of their operator (first ``;``-separated part
  of the name, characters outside ``[A-Za-z0-9_]`` → ``_``, made unique with ``_2``, ``_3``, ...),
  e.g. ``MobilenetV2/expanded_conv/depthwise/Relu6`` → ``MobilenetV2_expanded_conv_depthwise_Relu6``.

Errors (all :class:`gsal_tf.errors.GsalInputError`): a missing, non-TFLite or corrupt file; an
operator outside the table (one line naming it, its op index and its output tensor, what to do
instead, and the supported operators) or an option combination without an exact rebuild (a
convolution with both stride > 1 and dilation > 1, grouped convolution, SIGN_BIT activation, a
non-constant filter or size); a network that is not a segmentation network (one input
``(1, H, W, C)``, one output ``(1, H, W, K)`` with ``K ≥ 1``, or the ARG_MAX of it with
``K ≥ 2``). Every rebuilt tensor's shape is checked against the file, so a rebuild never silently
differs in shape.

The graph is read with the flatbuffer schema module that ships inside TensorFlow
(``tensorflow.lite.python.schema_py_generated``): it exposes the operator options (strides,
padding, dilation, fused activation, align_corners) that ``tf.lite.Interpreter`` hides, and adds
no dependency.

Example::

    import cv2
    import gsal_tf as gs
    from gsal_tf.models.tflite_import import from_tflite

    model = from_tflite("deeplabv3_mnv2_pascal_quant.tflite", output="probabilities")
    info = model.tflite_info        # input_size (513, 513), preprocessing "real = 0.0078125·(255·x − 128)"
    image = gs.io.load_image("bird.png")                         # (H, W, 3) in [0, 1]
    image = cv2.resize(image, info.input_size[::-1], interpolation=cv2.INTER_AREA)
    probabilities = model(image[None])                           # (1, 513, 513, 21)
    model.save("deeplab_pascal.keras")  # loads with keras.saving.load_model(..., safe_mode=True)
                                        # after `import gsal_tf.models.tflite_import`

    selfie = from_tflite("selfie_segmentation.tflite", output="probabilities",
                         float_input_range=(0.0, 1.0))                  # (N, 256, 256, 1): p(person)
"""

from __future__ import annotations

import math
import re
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

from gsal_tf.errors import GsalInputError, first_line
from gsal_tf.models import tflite_layers

OUTPUTS = ("logits", "probabilities")

_OPERATOR_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
_TENSOR_TYPES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
_NUMPY_TYPES = {
    schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
    schema.TensorType.FLOAT64: np.float64, schema.TensorType.INT32: np.int32,
    schema.TensorType.INT64: np.int64, schema.TensorType.INT16: np.int16,
    schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
    schema.TensorType.BOOL: np.bool_,
}
_ACTIVATIONS = {
    schema.ActivationFunctionType.NONE: None,
    schema.ActivationFunctionType.RELU: "relu",
    schema.ActivationFunctionType.RELU_N1_TO_1: "hard_tanh",
    schema.ActivationFunctionType.RELU6: "relu6",
    schema.ActivationFunctionType.TANH: "tanh",
}
_PADDINGS = {schema.Padding.SAME: "same", schema.Padding.VALID: "valid"}
#: TfLitePadding (the C enum MediaPipe's custom options hold): 0 is "unknown".
_C_PADDINGS = {1: "same", 2: "valid"}
#: The MediaPipe custom transposed convolution (registered by MediaPipe, run by XNNPACK).
MEDIAPIPE_TRANSPOSE_CONV = "CUSTOM(Convolution2DTransposeBias)"


@dataclass(frozen=True)
class TFLiteInfo:
    """What :func:`from_tflite` read from a file and how the Keras model relates to it.

    ``input_range`` is the real-valued network input for ``x = 0`` and ``x = 1``;
    ``preprocessing`` the formula ``x ↦ real`` as text; ``input_quantization`` the file's
    ``(scale, zero_point)`` of an 8-bit input tensor (``None`` for float input); ``operators``
    the ``(name, count)`` pairs of the file's operators; ``num_classes`` the output channels
    ``K`` (1 for a one-channel binary segmenter); ``logistic_dropped`` whether a one-channel
    file's final LOGISTIC was dropped (the rebuilt graph ends at the logit;
    ``output="probabilities"`` applies the sigmoid).
    """

    source: str
    input_size: tuple[int, int]
    channels: int
    num_classes: int
    input_type: str
    input_quantization: tuple[float, int] | None
    input_range: tuple[float, float]
    preprocessing: str
    output: str
    argmax_dropped: bool
    output_resized: bool
    operators: tuple[tuple[str, int], ...]
    logistic_dropped: bool = False


@dataclass(frozen=True)
class _Graph:
    """A parsed flatbuffer: the file's bytes, the unpacked model and its main subgraph."""

    path: Path
    data: bytes
    model: schema.ModelT
    subgraph: schema.SubGraphT


@dataclass(frozen=True)
class _Signature:
    """The image input tensor, the logits tensor and the dropped final operator (its op index
    and name: ``"ARG_MAX"``, or ``"LOGISTIC"`` of a one-channel output; None if none)."""

    input_index: int
    logits_index: int
    dropped_op: int | None = None
    dropped: str | None = None

    @property
    def one_channel(self) -> bool:
        return self.dropped == "LOGISTIC"


@dataclass(frozen=True)
class _Preprocessing:
    """``real = scale·x + offset`` for images ``x`` in [0, 1]."""

    scale: float
    offset: float
    input_type: str
    quantization: tuple[float, int] | None
    formula: str


def from_tflite(path, output: str = "logits", name: str | None = None, *,
                float_input_range: tuple[float, float] = (-1.0, 1.0)) -> keras.Model:
    """The TFLite segmentation network at ``path`` as a Keras model ``(N,H,W,C) → (N,H,W,K)``.

    Input: RGB images in [0, 1]; output: logits or (``output="probabilities"``) softmax
    probabilities at the input resolution; for a one-channel output (``K = 1``) the foreground's
    logit or its sigmoid probability. ``float_input_range`` is the real input range of a
    float32-input file (ignored for 8-bit input). See the module docstring for the semantics;
    ``model.tflite_info`` (:class:`TFLiteInfo`) documents the preprocessing.
    """
    if output not in OUTPUTS:
        raise GsalInputError(f"output must be one of {OUTPUTS}, got {output!r}")
    graph = _read_graph(path)
    signature = _segmentation_signature(graph)
    preprocessing = _preprocessing(graph, signature.input_index, float_input_range)
    height, width, channels = _shape(graph, signature.input_index)[1:]
    names = _UniqueNames()
    image = keras.Input((height, width, channels), name=names("image"))
    x = keras.layers.Rescaling(preprocessing.scale, preprocessing.offset, name=names("preprocess"))(image)
    logits = _rebuild_operators(graph, signature, x, names)
    resized = tuple(logits.shape[1:3]) != (height, width)
    if resized:
        logits = tflite_layers.ResizeBilinear((height, width), align_corners=True,
                                              name=names("resize_to_input"))(logits)
    result = logits if output == "logits" else _probabilities(logits, names("probabilities"))
    model = keras.Model(image, result, name=name or _layer_name(graph.path.stem))
    model.tflite_info = _info(graph, signature, preprocessing, output, resized)
    return model


def _probabilities(logits, name: str):
    """Softmax over the classes, or the sigmoid of a one-channel output."""
    if logits.shape[-1] == 1:
        return keras.layers.Activation("sigmoid", name=name)(logits)
    return keras.layers.Softmax(axis=-1, name=name)(logits)


def inspect_tflite(path, output: str = "logits", *,
                   float_input_range: tuple[float, float] = (-1.0, 1.0)) -> TFLiteInfo:
    """The :class:`TFLiteInfo` of a file without building the model (the signature is checked)."""
    graph = _read_graph(path)
    signature = _segmentation_signature(graph)
    preprocessing = _preprocessing(graph, signature.input_index, float_input_range)
    logits_hw = _shape(graph, signature.logits_index)[1:3]
    return _info(graph, signature, preprocessing, output, logits_hw != _shape(graph, signature.input_index)[1:3])


def transpose_conv_offset(padding: str, input_size: int, output_size: int, kernel: int, stride: int) -> int:
    """Where TRANSPOSE_CONV's output window starts in the full transposed convolution (one axis).

    TFLite (like TensorFlow's ``conv2d_transpose``) pads as the forward convolution from the
    output size ``O`` would: ``n = ⌈O/s⌉`` (SAME) or ``⌈(O − k + 1)/s⌉`` (VALID),
    ``total = max((n − 1)·s + k − O, 0)``, offset ``⌊total/2⌋`` (0 for VALID).
    """
    if padding == "same":
        positions = -(-output_size // stride)
    else:
        positions = -(-(output_size - kernel + 1) // stride)
    return max((positions - 1) * stride + kernel - output_size, 0) // 2


def mediapipe_transpose_geometry(padding: str, input_size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, window offset) of MediaPipe's ``Convolution2DTransposeBias`` (one axis).

    ``total = max(k − (n − 1) mod s − 1, 0)`` for SAME, 0 for VALID; output size
    ``s·(n − 1) + k − total``; offset ``⌊total/2⌋`` (MediaPipe's reference kernel,
    ``mediapipe/util/tflite/operations/transpose_conv_bias.cc``).
    """
    total = max(kernel - (input_size - 1) % stride - 1, 0) if padding == "same" else 0
    return stride * (input_size - 1) + kernel - total, total // 2


def dequantize(values: np.ndarray, scale, zero_point, axis: int = 0) -> np.ndarray:
    """``real = scale·(q − zero_point)`` as float32; one scale (per tensor) or ``len(scale)`` scales
    and zero points along ``axis`` (per channel)."""
    scale = np.asarray(scale, np.float64).reshape(-1)
    zero_point = np.asarray(zero_point if zero_point is not None else 0, np.float64).reshape(-1)
    shape = [1] * values.ndim
    if scale.size > 1:
        if values.ndim == 0 or values.shape[axis] != scale.size:
            raise GsalInputError(f"per-channel quantisation with {scale.size} scales does not fit a "
                                 f"tensor of shape {values.shape} along axis {axis}")
        shape[axis] = scale.size
    if zero_point.size not in (1, scale.size):
        raise GsalInputError(f"{zero_point.size} zero points do not match {scale.size} scales")
    zero_point = zero_point.reshape(shape) if zero_point.size == scale.size else zero_point
    real = scale.reshape(shape) * (values.astype(np.float64) - zero_point)
    return real.astype(np.float32)


def _read_graph(path) -> _Graph:
    """Parse the flatbuffer; a missing, non-TFLite or corrupt file is a GsalInputError."""
    path = Path(path)
    if not path.is_file():
        raise GsalInputError(f"TFLite file not found: {path}")
    data = path.read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise GsalInputError(f"{path} is not a TensorFlow Lite flatbuffer (no 'TFL3' identifier); "
                             "pass a .tflite file")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        _check_indices(model)
    except Exception as exc:
        raise GsalInputError(f"{path} is a corrupt TensorFlow Lite flatbuffer ({first_line(exc)}); "
                             "re-export or re-download it") from None
    if not model.subgraphs:
        raise GsalInputError(f"{path} holds no graph (no subgraph)")
    return _Graph(path, data, model, model.subgraphs[0])


def _check_indices(model: schema.ModelT) -> None:
    """Every operator code, tensor and buffer index of the main subgraph points inside its table
    (a ValueError otherwise)."""
    graph = model.subgraphs[0] if model.subgraphs else None
    if graph is None:
        return
    tensors = graph.tensors or []
    for tensor in tensors:
        if not 0 <= tensor.buffer < len(model.buffers or []):
            raise ValueError(f"tensor {tensor.name!r} refers to buffer {tensor.buffer} of {len(model.buffers or [])}")
    indices = [*_ints(graph.inputs), *_ints(graph.outputs)]
    for op in graph.operators or []:
        if not 0 <= op.opcodeIndex < len(model.operatorCodes or []):
            raise ValueError(f"operator code index {op.opcodeIndex} out of range")
        indices += [i for i in (*_ints(op.inputs), *_ints(op.outputs)) if i != -1]
    bad = [int(i) for i in indices if not 0 <= i < len(tensors)]
    if bad:
        raise ValueError(f"tensor indices {bad[:5]} out of range (the graph has {len(tensors)} tensors)")


def _ints(values) -> list[int]:
    """A flatbuffer int vector (NumPy array or None) as a list of ints."""
    return [] if values is None else [int(v) for v in values]


def _tensor_name(graph: _Graph, index: int) -> str:
    return (graph.subgraph.tensors[index].name or b"").decode("utf-8", "replace")


def _shape(graph: _Graph, index: int) -> tuple[int, ...]:
    return tuple(_ints(graph.subgraph.tensors[index].shape))


def _operator_name(graph: _Graph, op: schema.OperatorT) -> str:
    """The builtin operator name (``CONV_2D``) or ``CUSTOM(name)``."""
    code = graph.model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM({(code.customCode or b'').decode('utf-8', 'replace')})"
    return _OPERATOR_NAMES.get(builtin, f"BUILTIN_{builtin}")


def _op_error(graph: _Graph, op_index: int, message: str) -> GsalInputError:
    """A GsalInputError naming the operator, its op index and its output tensor."""
    op = graph.subgraph.operators[op_index]
    outputs = _ints(op.outputs)
    tensor = _tensor_name(graph, outputs[0]) if outputs else "?"
    return GsalInputError(f"{graph.path.name}: operator {_operator_name(graph, op)} at op index {op_index} "
                          f"(output tensor '{tensor}'): {message}")


def _constant(graph: _Graph, index: int) -> np.ndarray | None:
    """The value of a constant tensor (dequantised if it is quantised), or None for a computed one."""
    tensor = graph.subgraph.tensors[index]
    buffer = graph.model.buffers[tensor.buffer]
    if buffer.offset > 1:
        raw = graph.data[buffer.offset:buffer.offset + buffer.size]
    elif buffer.data is not None and len(buffer.data):
        raw = np.asarray(buffer.data, np.uint8).tobytes()
    else:
        return None
    name = _tensor_name(graph, index)
    if tensor.sparsity is not None:
        raise GsalInputError(f"{graph.path.name}: tensor '{name}' is sparse; sparse weights are not supported")
    dtype = _NUMPY_TYPES.get(tensor.type)
    if dtype is None:
        raise GsalInputError(f"{graph.path.name}: tensor '{name}' has type "
                             f"{_TENSOR_TYPES.get(tensor.type, tensor.type)}, which from_tflite cannot read")
    shape = _shape(graph, index)
    values = np.frombuffer(raw, dtype)
    if values.size != math.prod(shape):
        raise GsalInputError(f"{graph.path.name}: constant '{name}' holds {values.size} values for shape "
                             f"{shape}; the file is corrupt")
    values = values.reshape(shape)
    quantization = tensor.quantization
    if np.issubdtype(dtype, np.integer) and quantization is not None and quantization.scale is not None \
            and len(quantization.scale):
        return dequantize(values, quantization.scale, quantization.zeroPoint, quantization.quantizedDimension)
    return values.astype(np.float32) if np.issubdtype(dtype, np.floating) else values.copy()


def _segmentation_signature(graph: _Graph) -> _Signature:
    """One image input (1,H,W,C) and one output (1,H',W',K): K ≥ 2 class scores or their ARG_MAX
    over K, or one channel (K = 1; a final LOGISTIC is dropped: the logits are its input)."""
    inputs, outputs = _ints(graph.subgraph.inputs), _ints(graph.subgraph.outputs)
    where = f"{graph.path.name} is not a segmentation network"
    if len(inputs) != 1 or len(outputs) != 1:
        raise GsalInputError(f"{where}: it has {len(inputs)} inputs and {len(outputs)} outputs (expected 1 and 1)")
    input_shape = _shape(graph, inputs[0])
    if len(input_shape) != 4 or input_shape[0] != 1 or min(input_shape[1:3]) < 2:
        raise GsalInputError(f"{where}: its input has shape {input_shape}, not an image batch (1,H,W,C)")
    producers = {out: k for k, op in enumerate(graph.subgraph.operators or []) for out in _ints(op.outputs)}
    last = producers.get(outputs[0])
    last_name = _operator_name(graph, graph.subgraph.operators[last]) if last is not None else None
    logits, dropped = outputs[0], None
    if last_name == "ARG_MAX":
        op = graph.subgraph.operators[last]
        logits, dropped = _ints(op.inputs)[0], "ARG_MAX"
        axis = _constant(graph, _ints(op.inputs)[1])
        if axis is None or axis.size != 1 or int(axis.reshape(-1)[0]) % 4 != 3:
            raise GsalInputError(f"{where}: its final ARG_MAX is not over the class axis (axis {axis})")
    elif last_name == "LOGISTIC" and _shape(graph, outputs[0])[-1:] == (1,):
        logits, dropped = _ints(graph.subgraph.operators[last].inputs)[0], "LOGISTIC"
    logits_shape = _shape(graph, logits)
    channels = 2 if dropped == "ARG_MAX" else 1
    if len(logits_shape) != 4 or logits_shape[0] != 1 or min(logits_shape[1:3]) < 2 or logits_shape[3] < channels:
        raise GsalInputError(f"{where}: its output '{_tensor_name(graph, logits)}' has shape {logits_shape}; "
                             "expected per-pixel class scores (1,H,W,K) with K ≥ 1 (K = 1: a binary segmenter's "
                             "foreground score), or their ARG_MAX over K ≥ 2 classes")
    return _Signature(inputs[0], logits, last if dropped else None, dropped)


def _preprocessing(graph: _Graph, input_index: int, float_input_range) -> _Preprocessing:
    """``x ∈ [0,1] ↦ real`` for the input tensor's type (see the module docstring)."""
    tensor = graph.subgraph.tensors[input_index]
    quantization = tensor.quantization
    if tensor.type in (schema.TensorType.UINT8, schema.TensorType.INT8):
        if quantization is None or quantization.scale is None or len(quantization.scale) != 1:
            raise GsalInputError(f"{graph.path.name}: the 8-bit input tensor has no single scale and zero point")
        scale = float(quantization.scale[0])
        zero_point = int(quantization.zeroPoint[0]) if quantization.zeroPoint is not None else 0
        qmin = 0 if tensor.type == schema.TensorType.UINT8 else -128
        shift = qmin - zero_point
        formula = f"real = {scale:.9g}·(255·x {'−' if shift < 0 else '+'} {abs(shift)})"
        return _Preprocessing(255.0 * scale, scale * shift, _TENSOR_TYPES[tensor.type].lower(),
                              (scale, zero_point), formula)
    if tensor.type == schema.TensorType.FLOAT32:
        try:
            low, high = (float(v) for v in float_input_range)
        except (TypeError, ValueError):
            raise GsalInputError(f"float_input_range must be two numbers (low, high), "
                                 f"got {float_input_range!r}") from None
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise GsalInputError(f"float_input_range must be finite with low < high, got {float_input_range!r}")
        return _Preprocessing(high - low, low, "float32", None, f"real = {low:g} + {high - low:g}·x")
    raise GsalInputError(f"{graph.path.name}: input type {_TENSOR_TYPES.get(tensor.type, tensor.type)} is not "
                         "supported (uint8, int8 or float32)")


def _info(graph: _Graph, signature: _Signature, preprocessing: _Preprocessing, output: str,
          resized: bool) -> TFLiteInfo:
    _, height, width, channels = _shape(graph, signature.input_index)
    counts = Counter(_operator_name(graph, op) for op in graph.subgraph.operators or [])
    return TFLiteInfo(
        source=graph.path.name, input_size=(height, width), channels=channels,
        num_classes=_shape(graph, signature.logits_index)[3], input_type=preprocessing.input_type,
        input_quantization=preprocessing.quantization,
        input_range=(preprocessing.offset, preprocessing.offset + preprocessing.scale),
        preprocessing=preprocessing.formula, output=output, argmax_dropped=signature.dropped == "ARG_MAX",
        output_resized=resized, operators=tuple(sorted(counts.items())), logistic_dropped=signature.one_channel)


def _layer_name(tensor_name: str) -> str:
    """First ``;``-part of a tensor name with characters outside ``[A-Za-z0-9_]`` replaced by ``_``."""
    clean = re.sub(r"[^A-Za-z0-9_]", "_", tensor_name.split(";")[0]).strip("_") or "tensor"
    return f"t_{clean}" if clean[0].isdigit() else clean


class _UniqueNames:
    """Sanitised layer names, made unique with ``_2``, ``_3``, ..."""

    def __init__(self):
        self._used: set[str] = set()

    def __call__(self, base: str) -> str:
        base = _layer_name(base)
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name


class _Op:
    """One operator being rebuilt: its operands, options, layer name and error context."""

    def __init__(self, graph: _Graph, index: int, values: dict, constants: dict, names: _UniqueNames):
        self.graph, self.index = graph, index
        self.op = graph.subgraph.operators[index]
        self.inputs = _ints(self.op.inputs)
        self.options = self.op.builtinOptions
        self._values, self._constants = values, constants
        self.name = names(_tensor_name(graph, _ints(self.op.outputs)[0]))
        self._names = names

    def error(self, message: str) -> GsalInputError:
        return _op_error(self.graph, self.index, message)

    def has_input(self, position: int) -> bool:
        return position < len(self.inputs) and self.inputs[position] != -1

    def operand(self, position: int):
        """Input ``position`` as a Keras tensor (computed) or a NumPy array (constant)."""
        index = self.inputs[position]
        if index in self._values:
            return self._values[index]
        if index not in self._constants:
            value = _constant(self.graph, index)
            if value is None:
                raise self.error(f"input '{_tensor_name(self.graph, index)}' is neither a constant nor computed "
                                 "by an earlier operator")
            self._constants[index] = value
        return self._constants[index]

    def tensor(self, position: int):
        value = self.operand(position)
        if isinstance(value, np.ndarray):
            raise self.error(f"input {position} is a constant; only computed tensors are supported there")
        return value

    def constant(self, position: int) -> np.ndarray:
        value = self.operand(position)
        if not isinstance(value, np.ndarray):
            raise self.error(f"input {position} must be a constant tensor (weights, sizes, axes)")
        return value

    def activation(self, code: int) -> str | None:
        if code not in _ACTIVATIONS:
            raise self.error(f"fused activation {code} (SIGN_BIT or unknown) is not supported")
        return _ACTIVATIONS[code]

    def activate(self, x, code: int):
        """``x`` followed by the fused activation ``code`` (an ``Activation`` layer if not NONE)."""
        activation = self.activation(code)
        if activation is None:
            return x
        return keras.layers.Activation(activation, name=self._names(f"{self.name}_{activation}"))(x)

    def padding(self, code: int) -> str:
        if code not in _PADDINGS:
            raise self.error(f"padding {code} is not SAME or VALID")
        return _PADDINGS[code]

    def custom_options(self) -> bytes:
        """The operator's custom options as bytes (stored inline or, for large ones, after the model)."""
        if self.op.customOptions is not None and len(self.op.customOptions):
            return np.asarray(self.op.customOptions, np.uint8).tobytes()
        offset, size = self.op.largeCustomOptionsOffset or 0, self.op.largeCustomOptionsSize or 0
        return self.graph.data[offset:offset + size] if size else b""


def _conv_geometry(op: _Op) -> tuple[tuple[int, int], tuple[int, int]]:
    """(strides, dilation) of a convolution; stride > 1 together with dilation > 1 has no exact Keras layer."""
    strides = (op.options.strideH, op.options.strideW)
    dilation = (op.options.dilationHFactor, op.options.dilationWFactor)
    if max(strides) > 1 and max(dilation) > 1:
        raise op.error(f"stride {strides} together with dilation {dilation} is not supported")
    return strides, dilation


def _bias(op: _Op, channels: int) -> np.ndarray | None:
    if not op.has_input(2):
        return None
    bias = op.constant(2).astype(np.float32)
    if bias.shape != (channels,):
        raise op.error(f"bias of shape {bias.shape} for {channels} output channels")
    return bias


def _build_conv_2d(op: _Op):
    """Filter (C_out,kh,kw,C_in) → Keras kernel (kh,kw,C_in,C_out)."""
    x, weights = op.tensor(0), op.constant(1)
    strides, dilation = _conv_geometry(op)
    if weights.ndim != 4 or weights.shape[3] != x.shape[-1]:
        raise op.error(f"filter of shape {weights.shape} for {x.shape[-1]} input channels (grouped convolution "
                       "is not supported)")
    bias = _bias(op, weights.shape[0])
    layer = keras.layers.Conv2D(weights.shape[0], weights.shape[1:3], strides=strides,
                                padding=op.padding(op.options.padding), dilation_rate=dilation,
                                activation=op.activation(op.options.fusedActivationFunction),
                                use_bias=bias is not None, name=op.name)
    y = layer(x)
    layer.set_weights([weights.transpose(1, 2, 3, 0)] + ([bias] if bias is not None else []))
    return y


def _build_depthwise_conv_2d(op: _Op):
    """Filter (1,kh,kw,C_in·M) → Keras kernel (kh,kw,C_in,M); output channel c·M + m."""
    x, weights = op.tensor(0), op.constant(1)
    strides, dilation = _conv_geometry(op)
    channels = x.shape[-1]
    if weights.ndim != 4 or weights.shape[0] != 1 or weights.shape[3] % channels:
        raise op.error(f"depthwise filter of shape {weights.shape} for {channels} input channels")
    multiplier = weights.shape[3] // channels
    if op.options.depthMultiplier not in (0, multiplier):
        raise op.error(f"depth multiplier {op.options.depthMultiplier} does not match the filter ({multiplier})")
    bias = _bias(op, weights.shape[3])
    layer = keras.layers.DepthwiseConv2D(weights.shape[1:3], strides=strides,
                                         padding=op.padding(op.options.padding), depth_multiplier=multiplier,
                                         dilation_rate=dilation,
                                         activation=op.activation(op.options.fusedActivationFunction),
                                         use_bias=bias is not None, name=op.name)
    y = layer(x)
    kernel = weights[0].reshape(weights.shape[1], weights.shape[2], channels, multiplier)
    layer.set_weights([kernel] + ([bias] if bias is not None else []))
    return y


def _transpose_conv(op: _Op, x, weights: np.ndarray, bias: np.ndarray | None, strides, output_size, offset):
    """A :class:`~gsal_tf.models.tflite_layers.TransposeConv` with the file's filter
    (C_out,kh,kw,C_in) → kernel (kh,kw,C_out,C_in)."""
    if weights.ndim != 4 or weights.shape[3] != x.shape[-1]:
        raise op.error(f"filter of shape {weights.shape} for {x.shape[-1]} input channels")
    if bias is not None and bias.shape != (weights.shape[0],):
        raise op.error(f"bias of shape {bias.shape} for {weights.shape[0]} output channels")
    layer = tflite_layers.TransposeConv(weights.shape[0], weights.shape[1:3], strides, output_size, offset,
                                        use_bias=bias is not None, name=op.name)
    y = layer(x)
    layer.set_weights([weights.transpose(1, 2, 0, 3)] + ([bias.astype(np.float32)] if bias is not None else []))
    return y


def _build_transpose_conv(op: _Op):
    """TRANSPOSE_CONV: inputs (output shape, filter, image, bias?); window at :func:`transpose_conv_offset`."""
    output_shape = op.constant(0).reshape(-1)
    weights, x = op.constant(1), op.tensor(2)
    if output_shape.size != 4 or weights.ndim != 4:
        raise op.error(f"output shape {output_shape.tolist()} or filter shape {weights.shape} is not 4-D")
    padding = op.padding(op.options.padding)
    strides = (op.options.strideH, op.options.strideW)
    size = (int(output_shape[1]), int(output_shape[2]))
    offset = tuple(transpose_conv_offset(padding, n, o, k, s)
                   for n, o, k, s in zip(x.shape[1:3], size, weights.shape[1:3], strides))
    bias = op.constant(3) if op.has_input(3) else None
    y = _transpose_conv(op, x, weights, bias, strides, size, offset)
    return op.activate(y, getattr(op.options, "fusedActivationFunction", 0) or 0)


def _build_mediapipe_transpose_conv(op: _Op):
    """MediaPipe's Convolution2DTransposeBias: inputs (image, filter, bias), custom options
    int32 (padding, stride_w, stride_h); geometry from :func:`mediapipe_transpose_geometry`."""
    options = op.custom_options()
    if len(options) < 12:
        raise op.error(f"custom options of {len(options)} bytes; expected 12 (padding, stride_w, stride_h)")
    padding_code, stride_w, stride_h = struct.unpack("<iii", options[:12])
    if padding_code not in _C_PADDINGS or min(stride_w, stride_h) < 1:
        raise op.error(f"padding {padding_code} (1 = SAME, 2 = VALID) or strides ({stride_h}, {stride_w}) invalid")
    x, weights, bias = op.tensor(0), op.constant(1), op.constant(2)
    if weights.ndim != 4:
        raise op.error(f"filter of shape {weights.shape} is not (C_out, kh, kw, C_in)")
    strides = (stride_h, stride_w)
    geometry = [mediapipe_transpose_geometry(_C_PADDINGS[padding_code], n, k, s)
                for n, k, s in zip(x.shape[1:3], weights.shape[1:3], strides)]
    return _transpose_conv(op, x, weights, bias, strides, [g[0] for g in geometry], [g[1] for g in geometry])


def _build_activation(op: _Op, activation: str):
    """A stand-alone activation operator (RELU, LOGISTIC, HARD_SWISH) as ``keras.layers.Activation``."""
    return keras.layers.Activation(activation, name=op.name)(op.tensor(0))


def _block_and_pairs(op: _Op, what: str) -> tuple[list[int], list[list[int]]]:
    """The constant block shape (b_h, b_w) and paddings / crops ((top, bottom), (left, right))."""
    block = op.constant(1).astype(np.int64).reshape(-1)
    pairs = op.constant(2).astype(np.int64)
    if block.shape != (2,) or pairs.shape != (2, 2) or block.min() < 1 or pairs.min() < 0:
        raise op.error(f"block shape {block.tolist()} and {what} {pairs.tolist()} are not over (H, W)")
    return block.tolist(), pairs.tolist()


def _build_space_to_batch(op: _Op):
    x = op.tensor(0)
    block, paddings = _block_and_pairs(op, "paddings")
    if any((n + sum(p)) % b for n, p, b in zip(x.shape[1:3], paddings, block)):
        raise op.error(f"padded size is not a multiple of the block {block}")
    return tflite_layers.SpaceToBatch(block, paddings, name=op.name)(x)


def _build_batch_to_space(op: _Op):
    block, crops = _block_and_pairs(op, "crops")
    return tflite_layers.BatchToSpace(block, crops, name=op.name)(op.tensor(0))


def _build_pool(op: _Op, layer_class):
    options = op.options
    layer = layer_class(pool_size=(options.filterHeight, options.filterWidth),
                        strides=(options.strideH, options.strideW), padding=op.padding(options.padding), name=op.name)
    return op.activate(layer(op.tensor(0)), options.fusedActivationFunction)


def _build_binary(op: _Op, operation: str):
    """``a + b`` or ``a · b`` with broadcasting; a constant operand becomes a ConstantOperand layer."""
    a, b = op.operand(0), op.operand(1)
    constant_a, constant_b = isinstance(a, np.ndarray), isinstance(b, np.ndarray)
    if constant_a and constant_b:
        return (a + b if operation == "add" else a * b).astype(np.float32)
    if constant_a or constant_b:
        x, c = (b, a) if constant_a else (a, b)
        c = c.astype(np.float32)
        if c.ndim > len(x.shape) or (c.ndim == len(x.shape) and c.shape[0] != 1):
            raise op.error(f"constant of shape {c.shape} does not broadcast over the batch of {x.shape}")
        layer = tflite_layers.ConstantOperand(operation, c.shape, name=op.name)
        y = layer(x)
        layer.set_weights([c])
    else:
        merge = keras.layers.Add if operation == "add" else keras.layers.Multiply
        y = merge(name=op.name)([a, b])
    return op.activate(y, op.options.fusedActivationFunction)


def _build_concatenation(op: _Op):
    tensors = [op.tensor(i) for i in range(len(op.inputs))]
    axis = op.options.axis
    if axis % len(tensors[0].shape) == 0:
        raise op.error("concatenation along the batch axis is not supported")
    y = keras.layers.Concatenate(axis=axis, name=op.name)(tensors)
    return op.activate(y, op.options.fusedActivationFunction)


def _build_resize_bilinear(op: _Op):
    size = op.constant(1).reshape(-1)
    if size.size != 2:
        raise op.error(f"size {size} is not (height, width)")
    return tflite_layers.ResizeBilinear(size, align_corners=op.options.alignCorners,
                                        half_pixel_centers=op.options.halfPixelCenters, name=op.name)(op.tensor(0))


def _build_tile(op: _Op):
    multiples = op.constant(1).reshape(-1)
    if multiples.size == 0 or multiples[0] != 1:
        raise op.error(f"multiples {multiples.tolist()} tile the batch axis")
    return tflite_layers.Tile(multiples, name=op.name)(op.tensor(0))


def _build_mean(op: _Op):
    x = op.tensor(0)
    axes = [int(a) % len(x.shape) for a in op.constant(1).reshape(-1)]
    if 0 in axes:
        raise op.error("a mean over the batch axis is not supported")
    return tflite_layers.ReduceMean(axes, keepdims=op.options.keepDims, name=op.name)(x)


def _build_pad(op: _Op):
    paddings = op.constant(1).astype(np.int64)
    if paddings.ndim != 2 or paddings.shape[1] != 2 or paddings[0].any():
        raise op.error(f"paddings {paddings.tolist()} are not ((0,0), (before,after), ...)")
    return tflite_layers.Pad(paddings.tolist(), name=op.name)(op.tensor(0))


def _build_identity(op: _Op):
    """QUANTIZE / DEQUANTIZE: float inference keeps the real value (a constant stays a constant)."""
    return op.operand(0)


_BUILDERS = {
    "CONV_2D": _build_conv_2d,
    "DEPTHWISE_CONV_2D": _build_depthwise_conv_2d,
    "TRANSPOSE_CONV": _build_transpose_conv,
    MEDIAPIPE_TRANSPOSE_CONV: _build_mediapipe_transpose_conv,
    "AVERAGE_POOL_2D": lambda op: _build_pool(op, keras.layers.AveragePooling2D),
    "MAX_POOL_2D": lambda op: _build_pool(op, keras.layers.MaxPooling2D),
    "ADD": lambda op: _build_binary(op, "add"),
    "MUL": lambda op: _build_binary(op, "mul"),
    "RELU": lambda op: _build_activation(op, "relu"),
    "LOGISTIC": lambda op: _build_activation(op, "sigmoid"),
    "HARD_SWISH": lambda op: _build_activation(op, "hard_swish"),
    "SPACE_TO_BATCH_ND": _build_space_to_batch,
    "BATCH_TO_SPACE_ND": _build_batch_to_space,
    "CONCATENATION": _build_concatenation,
    "RESIZE_BILINEAR": _build_resize_bilinear,
    "TILE": _build_tile,
    "MEAN": _build_mean,
    "PAD": _build_pad,
    "QUANTIZE": _build_identity,
    "DEQUANTIZE": _build_identity,
}
SUPPORTED_OPERATORS = (*sorted(_BUILDERS), "ARG_MAX (last operator, dropped)")
#: What a user can do about an operator outside :data:`SUPPORTED_OPERATORS`.
UNSUPPORTED_HINT = ("explain the network's original Keras model or SavedModel instead, or re-convert it to "
                    "TFLite with the supported operators only")


def _rebuild_operators(graph: _Graph, signature: _Signature, x, names: _UniqueNames):
    """Rebuild the operators in file order (TFLite stores them topologically); the logits tensor.

    Every computed tensor's Keras shape is checked against the file's shape (batch axis aside).
    """
    values = {signature.input_index: x}
    constants: dict[int, np.ndarray] = {}
    for index, tflite_op in enumerate(graph.subgraph.operators or []):
        if index == signature.dropped_op:
            continue
        operator = _operator_name(graph, tflite_op)
        builder = _BUILDERS.get(operator)
        if builder is None or not _ints(tflite_op.outputs):
            raise _op_error(graph, index, f"this operator is not supported by from_tflite; {UNSUPPORTED_HINT} "
                                          f"(supported: {', '.join(SUPPORTED_OPERATORS)})")
        op = _Op(graph, index, values, constants, names)
        result = builder(op)
        output = _ints(tflite_op.outputs)[0]
        expected = _shape(graph, output)
        if isinstance(result, np.ndarray):
            constants[output] = result
            continue
        if len(result.shape) != len(expected) or tuple(result.shape[1:]) != expected[1:]:
            raise op.error(f"the rebuilt output has shape {tuple(result.shape)} but the file says {expected}")
        values[output] = result
    if signature.logits_index not in values:
        raise GsalInputError(f"{graph.path.name}: the output '{_tensor_name(graph, signature.logits_index)}' is "
                             "not computed from the input image")
    return values[signature.logits_index]
