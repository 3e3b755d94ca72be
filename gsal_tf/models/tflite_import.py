"""Import a TensorFlow Lite segmentation network (e.g. DeepLab) as a differentiable Keras model.

``from_tflite(path, output="logits", name=None, float_input_range=(-1.0, 1.0),
quantize_activations=None)`` reads a ``.tflite`` flatbuffer and rebuilds its graph as a Keras
functional model with the same weights, so gradient-based explainers (grid saliency, integrated
gradients, ...) can run on networks that only exist as TFLite files (Coral / Android DeepLab
releases). For a full-integer (8-bit) file the model computes, by default, the integers the
interpreter computes (see "Activations" below).

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
- **Activations**: a float file is reproduced in float32 to float round-off (≤ 1e-3 in the
  logits). A full-integer file (int8/uint8 activation tensors, e.g. the Coral DeepLab files) has
  its 8-bit activations simulated by default (``quantize_activations``; the kernels and their
  formulas: :mod:`gsal_tf.models.tflite_quant`): each operator writes ``s·(q − z)`` for the
  integer ``q`` that ``tf.lite.Interpreter`` (default settings) computes, and passes the float
  operator's gradient (straight-through). Measured: 100 % arg-max agreement on every shared photo,
  Cityscapes frame and 24 CamVid frames for each of the three Coral files, where the float
  activations of ``quantize_activations=False`` agree on as few as 32.9 % (the Cityscapes network
  on a photo), 92.7 % (on a CamVid frame). A *hybrid* file (float activations, int8 weights read
  directly by CONV_2D, e.g. the ADE20K DeepLab) is rebuilt with the dequantised weights in float,
  while ``tf.lite.Interpreter`` quantises each such convolution's input to 8 bits on the fly: the
  two differ by that rounding (≥ 95 % arg-max agreement on real photos, see the tests).
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
  QUANTIZE,           identity in float (a DEQUANTIZE of a constant yields the dequantised
  DEQUANTIZE          constant: int8/uint8 weights ``scale·(q − zero_point)``, float16 weights
                      cast to float32); with simulated 8-bit activations a QUANTIZE rounds to
                      its output's grid.
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
    info = model.tflite_info        # input_size (513, 513), preprocessing "real = 0.0078125·(255·x − 128)",
                                    # quantized_activations True: computes the interpreter's uint8 tensors
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
from gsal_tf.models import tflite_layers, tflite_quant

__all__ = [
    "OUTPUTS", "MEDIAPIPE_TRANSPOSE_CONV", "TFLiteInfo", "from_tflite", "inspect_tflite",
    "transpose_conv_offset", "mediapipe_transpose_geometry", "dequantize", "SUPPORTED_OPERATORS",
    "UNSUPPORTED_HINT",
]

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
    ``output="probabilities"`` applies the sigmoid); ``activation_type`` the type of the file's
    computed tensors (``"uint8"``/``"int8"`` for a full-integer file, else ``"float32"``);
    ``quantized_activations`` whether the model simulates those 8-bit activations
    (``quantize_activations``; see :mod:`gsal_tf.models.tflite_quant`).
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
    activation_type: str = "float32"
    quantized_activations: bool = False


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
                float_input_range: tuple[float, float] = (-1.0, 1.0),
                quantize_activations: bool | None = None) -> keras.Model:
    """The TFLite segmentation network at ``path`` as a Keras model ``(N,H,W,C) → (N,H,W,K)``.

    Input: RGB images in [0, 1]; output: logits or (``output="probabilities"``) softmax
    probabilities at the input resolution; for a one-channel output (``K = 1``) the foreground's
    logit or its sigmoid probability. See the module docstring for the semantics;
    ``model.tflite_info`` (:class:`TFLiteInfo`) documents the preprocessing and the activations.

    Parameters
    ----------
    float_input_range : (low, high), default (−1, 1)
        The real input range of a float32-input file (ignored for 8-bit input).
    quantize_activations : bool or None, default None
        ``True``: simulate the file's 8-bit activations, integer for integer
        (:mod:`gsal_tf.models.tflite_quant`); ``False``: run them in float32 (the dequantised
        network; the only behaviour up to gsal-tf 0.2.0); ``None``: ``True`` for a file that
        computes int8/uint8 activations, ``False`` otherwise. ``True`` for a float or hybrid
        file is a :class:`~gsal_tf.errors.GsalInputError`, and so is ``True`` or ``None`` for an
        8-bit file with an activation quantised per channel or in 16 bits (the message says to
        pass ``False``, which imports it with float activations).

        Why simulated is the default: an explanation of a network that differs from the
        deployed file explains another network. Arg-max agreement with ``tf.lite.Interpreter``
        (default settings), min / median over 8 photos and Cityscapes frames and 24 CamVid
        frames at 513×513 (``python benchmarks/tflite_agreement.py``;
        ``benchmarks/results/tflite-agreement.json``):

        ================================  =============  =============  =================
        Coral file (uint8 activations)    float32        simulated      interpreter, TFLite
                                          activations    (default)      built-in kernels
        ================================  =============  =============  =================
        Cityscapes MobileNet-EdgeTPU      0.329 / 0.966  1.000 / 1.000  0.894 / 0.972
        PASCAL MobileNetV2 1.0            0.979 / 0.999  1.000 / 1.000  0.948 / 0.999
        PASCAL MobileNetV2 0.5            0.982 / 0.998  1.000 / 1.000  0.975 / 0.998
        ================================  =============  =============  =================

        The simulated model's class probabilities differ from the interpreter's by at most
        5.1e-7 (float32 softmax round-off), the float32 activations' by up to 0.99. The last
        column is the interpreter itself on TFLite's own integer kernels instead of XNNPACK:
        the Cityscapes network turns one-step rounding differences into other classes, so only
        an integer-exact simulation reproduces it. Cost (Cityscapes network, 2 CPU cores):
        forward 0.25 s vs 0.15 s, input gradient 0.65 s vs 0.32 s, grid saliency (10 iterations)
        5.9 s vs 4.8 s.
    """
    if output not in OUTPUTS:
        raise GsalInputError(f"output must be one of {OUTPUTS}, got {output!r}")
    graph = _read_graph(path)
    signature = _segmentation_signature(graph)
    preprocessing = _preprocessing(graph, signature.input_index, float_input_range)
    quantize = _quantize_activations(graph, quantize_activations)
    height, width, channels = _shape(graph, signature.input_index)[1:]
    names = _UniqueNames()
    image = keras.Input((height, width, channels), name=names("image"))
    x = keras.layers.Rescaling(preprocessing.scale, preprocessing.offset, name=names("preprocess"))(image)
    logits = _rebuild_operators(graph, signature, x, names, quantize)
    resized = tuple(logits.shape[1:3]) != (height, width)
    if resized:
        logits = tflite_layers.ResizeBilinear((height, width), align_corners=True,
                                              name=names("resize_to_input"))(logits)
    result = logits if output == "logits" else _probabilities(logits, names("probabilities"))
    model = keras.Model(image, result, name=name or _layer_name(graph.path.stem))
    model.tflite_info = _info(graph, signature, preprocessing, output, resized, quantize)
    # The model declares what it returns, so every explainer applies softmax (sigmoid) to logits
    # (gsal_tf.model_calls.declared_output); undeclared, an output is read as probabilities.
    model.gsal_output = output
    return model


def _probabilities(logits, name: str):
    """Softmax over the classes, or the sigmoid of a one-channel output."""
    if logits.shape[-1] == 1:
        return keras.layers.Activation("sigmoid", name=name)(logits)
    return keras.layers.Softmax(axis=-1, name=name)(logits)


def inspect_tflite(path, output: str = "logits", *, float_input_range: tuple[float, float] = (-1.0, 1.0),
                   quantize_activations: bool | None = None) -> TFLiteInfo:
    """The :class:`TFLiteInfo` of a file without building the model (the signature and the
    ``quantize_activations`` request are checked as :func:`from_tflite` checks them)."""
    graph = _read_graph(path)
    signature = _segmentation_signature(graph)
    preprocessing = _preprocessing(graph, signature.input_index, float_input_range)
    quantized = _quantize_activations(graph, quantize_activations)
    logits_hw = _shape(graph, signature.logits_index)[1:3]
    return _info(graph, signature, preprocessing, output, logits_hw != _shape(graph, signature.input_index)[1:3],
                 quantized)


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
    return np.asarray(real, np.float32)  # a 0-d product is a NumPy scalar: keep it an array


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
    raw = _stored_constant(graph, index)
    if raw is None:
        return None
    values, quantization = raw
    if quantization is not None:
        return dequantize(values, quantization.scale, quantization.zeroPoint, quantization.quantizedDimension)
    return values.astype(np.float32) if np.issubdtype(values.dtype, np.floating) else values.copy()


def _stored_constant(graph: _Graph, index: int):
    """``(values, quantization)`` of a constant tensor as stored (integers stay integers;
    ``quantization`` is None unless an integer tensor has scales), or None for a computed one."""
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
    quantization = tensor.quantization
    scaled = quantization is not None and quantization.scale is not None and len(quantization.scale)
    return values.reshape(shape), (quantization if np.issubdtype(dtype, np.integer) and scaled else None)


_EIGHT_BIT = {schema.TensorType.UINT8: "uint8", schema.TensorType.INT8: "int8"}


def _grid(graph: _Graph, index: int) -> tflite_quant.Quantization | None:
    """The grid of an 8-bit tensor with one scale and zero point; None for any other tensor."""
    tensor = graph.subgraph.tensors[index]
    quantization = tensor.quantization
    if tensor.type not in _EIGHT_BIT or quantization is None or quantization.scale is None \
            or len(quantization.scale) != 1:
        return None
    zero_point = int(quantization.zeroPoint[0]) if quantization.zeroPoint is not None else 0
    qmin, qmax = tflite_quant.RANGES[_EIGHT_BIT[tensor.type]]
    return tflite_quant.Quantization(float(quantization.scale[0]), zero_point, qmin, qmax)


def _quantize_activations(graph: _Graph, requested: bool | None) -> bool:
    """Whether to simulate the file's 8-bit activations: ``requested``, or (None) whether the file
    computes 8-bit activations. A GsalInputError when True is asked of a file without them, or
    when an activation is quantised in a way the simulation does not cover (per channel, 16-bit)."""
    if requested is not None and not isinstance(requested, bool):
        raise GsalInputError(f"quantize_activations must be True, False or None (automatic), got {requested!r}")
    if requested is False:
        return False
    computed = sorted({out for op in graph.subgraph.operators or [] for out in _ints(op.outputs)})
    quantized = [i for i in computed if graph.subgraph.tensors[i].type in _EIGHT_BIT]
    if not quantized:
        if requested:
            raise GsalInputError(f"{graph.path.name}: quantize_activations=True simulates 8-bit activations, but this "
                                 "file computes in float (its activation tensors are not int8/uint8); import it "
                                 "without quantize_activations: a float file is rebuilt exactly as it is")
        return False
    unsupported = [i for i in computed if _grid(graph, i) is None and (
        graph.subgraph.tensors[i].type in _EIGHT_BIT or graph.subgraph.tensors[i].type == schema.TensorType.INT16)]
    if unsupported:
        tensor = graph.subgraph.tensors[unsupported[0]]
        scales = 0 if tensor.quantization is None or tensor.quantization.scale is None \
            else len(tensor.quantization.scale)
        what = (f"is quantised per channel ({scales} scales)" if scales > 1 else
                f"is {_TENSOR_TYPES.get(tensor.type, tensor.type)} with {scales} scales")
        raise GsalInputError(f"{graph.path.name}: activation tensor '{_tensor_name(graph, unsupported[0])}' {what}; "
                             "the simulated 8-bit activations support int8/uint8 tensors with one scale and zero "
                             "point each — pass quantize_activations=False to import it with float activations")
    return True


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
          resized: bool, quantized: bool) -> TFLiteInfo:
    _, height, width, channels = _shape(graph, signature.input_index)
    counts = Counter(_operator_name(graph, op) for op in graph.subgraph.operators or [])
    computed = [graph.subgraph.tensors[out].type for op in graph.subgraph.operators or [] for out in _ints(op.outputs)]
    activation_type = next((_EIGHT_BIT[t] for t in computed if t in _EIGHT_BIT), "float32")
    return TFLiteInfo(
        source=graph.path.name, input_size=(height, width), channels=channels,
        num_classes=_shape(graph, signature.logits_index)[3], input_type=preprocessing.input_type,
        input_quantization=preprocessing.quantization,
        input_range=(preprocessing.offset, preprocessing.offset + preprocessing.scale),
        preprocessing=preprocessing.formula, output=output, argmax_dropped=signature.dropped == "ARG_MAX",
        output_resized=resized, operators=tuple(sorted(counts.items())), logistic_dropped=signature.one_channel,
        activation_type=activation_type, quantized_activations=quantized)


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

    def __init__(self, graph: _Graph, index: int, values: dict, constants: dict, names: _UniqueNames,
                 quantized: bool = False):
        self.graph, self.index = graph, index
        self.op = graph.subgraph.operators[index]
        self.inputs = _ints(self.op.inputs)
        self.output = _ints(self.op.outputs)[0]
        self.options = self.op.builtinOptions
        self._values, self._constants = values, constants
        self.name = names(_tensor_name(graph, self.output))
        self._names = names
        self.quantized = quantized

    def grid(self, tensor: int) -> tflite_quant.Quantization | None:
        """The 8-bit grid of tensor ``tensor`` (a file index), or None for a float tensor."""
        return _grid(self.graph, tensor)

    def input_grid(self, position: int) -> tflite_quant.Quantization | None:
        return self.grid(self.inputs[position])

    @property
    def output_grid(self) -> tflite_quant.Quantization | None:
        return self.grid(self.output)

    def stored(self, position: int):
        """Input ``position`` as stored in the file: ``(values, quantization)`` (see
        :func:`_stored_constant`), None for a computed tensor."""
        return _stored_constant(self.graph, self.inputs[position])

    def layer_name(self, suffix: str) -> str:
        return self._names(f"{self.name}_{suffix}")

    def fake_quantize(self, y):
        """``y`` rounded to the output tensor's 8-bit grid (:class:`~gsal_tf.models.tflite_quant.FakeQuant`)
        when activations are simulated and the output is 8-bit; ``y`` itself otherwise."""
        grid = self.output_grid
        if not self.quantized or grid is None:
            return y
        return tflite_quant.FakeQuant(grid.scale, grid.zero_point, grid.qmin, grid.qmax,
                                      name=self.layer_name("quantized"))(y)

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
    weights = op.constant(1)
    _check_filter(op, weights, depthwise=False)
    return _convolution(op, op.tensor(0), _conv_kernel(weights, None), _bias(op, weights.shape[0]),
                        op.activation(op.options.fusedActivationFunction))


def _build_depthwise_conv_2d(op: _Op):
    """Filter (1,kh,kw,C_in·M) → Keras kernel (kh,kw,C_in,M); output channel c·M + m."""
    weights = op.constant(1)
    _check_filter(op, weights, depthwise=True)
    return _convolution(op, op.tensor(0), _conv_kernel(weights, op.tensor(0).shape[-1]), _bias(op, weights.shape[3]),
                        op.activation(op.options.fusedActivationFunction))


def _check_filter(op: _Op, weights: np.ndarray, depthwise: bool) -> None:
    """The filter fits the input channels (no grouped convolution; a depthwise multiplier that
    matches the filter)."""
    channels = op.tensor(0).shape[-1]
    if not depthwise:
        if weights.ndim != 4 or weights.shape[3] != channels:
            raise op.error(f"filter of shape {weights.shape} for {channels} input channels (grouped convolution "
                           "is not supported)")
        return
    if weights.ndim != 4 or weights.shape[0] != 1 or weights.shape[3] % channels:
        raise op.error(f"depthwise filter of shape {weights.shape} for {channels} input channels")
    multiplier = weights.shape[3] // channels
    if op.options.depthMultiplier not in (0, multiplier):
        raise op.error(f"depth multiplier {op.options.depthMultiplier} does not match the filter ({multiplier})")


def _conv_kernel(weights: np.ndarray, depthwise_channels: int | None) -> np.ndarray:
    """The file's filter in Keras' layout: (C_out,kh,kw,C_in) → (kh,kw,C_in,C_out); a depthwise
    filter (1,kh,kw,C_in·M) over ``depthwise_channels = C_in`` → (kh,kw,C_in,M)."""
    if depthwise_channels is None:
        return weights.transpose(1, 2, 3, 0)
    return weights[0].reshape(weights.shape[1], weights.shape[2], depthwise_channels, -1)


def _convolution(op: _Op, x, kernel: np.ndarray, bias: np.ndarray | None, activation: str | None,
                 dtype: str = "float32"):
    """``x`` through a ``Conv2D`` (kernel (kh,kw,C_in,C_out)) or, for a DEPTHWISE_CONV_2D, a
    ``DepthwiseConv2D`` (kernel (kh,kw,C_in,M)) with the operator's strides, padding and dilation."""
    strides, dilation = _conv_geometry(op)
    common = {"strides": strides, "padding": op.padding(op.options.padding), "dilation_rate": dilation,
              "activation": activation, "use_bias": bias is not None, "name": op.name, "dtype": dtype}
    if isinstance(op.options, schema.DepthwiseConv2DOptionsT):
        layer = keras.layers.DepthwiseConv2D(kernel.shape[:2], depth_multiplier=kernel.shape[3], **common)
    else:
        layer = keras.layers.Conv2D(kernel.shape[3], kernel.shape[:2], **common)
    y = layer(x)
    layer.set_weights([kernel.astype(dtype)] + ([bias.astype(dtype)] if bias is not None else []))
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


# ---------------------------------------------------------------------------------------------
# Simulated 8-bit activations (quantize_activations=True): the kernels of tflite_quant
# ---------------------------------------------------------------------------------------------

def _float_then_round(op: _Op, operator: str):
    """The float operator followed by rounding to the output's grid (the generic simulation)."""
    return op.fake_quantize(_BUILDERS[operator](op))


def _centred_integers(values: np.ndarray, quantization, axis: int) -> np.ndarray:
    """``q − z`` (int64) of stored integer weights, one zero point or one per channel along ``axis``."""
    zero_points = np.asarray(quantization.zeroPoint if quantization.zeroPoint is not None else [0], np.int64)
    shape = [1] * values.ndim
    if zero_points.size > 1:
        shape[axis] = zero_points.size
    return values.astype(np.int64) - zero_points.reshape(shape)


def _build_quantized_convolution(op: _Op, operator: str):
    """CONV_2D / DEPTHWISE_CONV_2D on integers: :class:`~gsal_tf.models.tflite_quant.ToInteger`
    (``n_in``), the Keras convolution with the integer filter ``q_w − z_w`` and no bias (``Σ n_in·n_w``,
    exact: float32 when ``max|n_in|·Σ|n_w| + |bias| < 2²⁴`` for every output channel, float64
    otherwise), then :class:`~gsal_tf.models.tflite_quant.Requantize` (int32 bias, ``M_c``, fused
    activation as a clamp). Other weights (float, or not constant): the float operator, then rounding."""
    depthwise = operator == "DEPTHWISE_CONV_2D"
    parts = _integer_filter(op, depthwise)
    activation = op.activation(op.options.fusedActivationFunction)
    grid_in, grid_out = op.input_grid(0), op.output_grid
    if parts is None or grid_in is None or grid_out is None or activation == "tanh":
        return _float_then_round(op, operator)
    x = op.tensor(0)
    integers, scales, bias = parts
    _check_filter(op, integers, depthwise)
    kernel = _conv_kernel(integers, x.shape[-1] if depthwise else None)
    largest_input = max(grid_in.qmax - grid_in.zero_point, grid_in.zero_point - grid_in.qmin)
    bound = largest_input * np.abs(kernel).reshape(-1, scales.size).sum(0) + (0 if bias is None else np.abs(bias))
    dtype = "float32" if bound.max() < tflite_quant.FLOAT32_EXACT else "float64"
    accumulator = _convolution(op, tflite_quant.ToInteger(grid_in.scale, name=op.layer_name("integers"))(x),
                               kernel.astype(np.float64), None, None, dtype)
    return tflite_quant.Requantize(tflite_quant.conv_multipliers(grid_in.scale, scales, grid_out.scale),
                                   bias, grid_out.scale, grid_out.zero_point, *grid_out.bounds(activation),
                                   name=op.layer_name("requantize"))(accumulator)


def _integer_filter(op: _Op, depthwise: bool):
    """``(q_w − z_w, s_w per output channel (C_out,), int32 bias (C_out,) or None)`` of a
    convolution whose filter is a stored 8-bit tensor with scales and whose bias, if any, is a
    stored int32 tensor; None otherwise."""
    weights = op.stored(1)
    if weights is None or weights[1] is None or weights[0].dtype not in (np.int8, np.uint8) or weights[0].ndim != 4:
        return None
    values, quantization = weights
    channels = values.shape[3] if depthwise else values.shape[0]
    scales = np.asarray(quantization.scale, np.float64).reshape(-1)
    if scales.size not in (1, channels):
        return None
    bias = None
    if op.has_input(2):
        stored = op.stored(2)
        if stored is None or stored[0].dtype != np.int32 or stored[0].size != channels:
            return None
        bias = stored[0].reshape(-1).astype(np.int64)
    integers = _centred_integers(values, quantization, quantization.quantizedDimension)
    return integers, np.broadcast_to(scales, (channels,)), bias


def _build_quantized_binary(op: _Op, operator: str):
    """ADD / MUL of two 8-bit tensors, or of one and an 8-bit constant (one scale):
    :class:`~gsal_tf.models.tflite_quant.QuantizedBinary`; otherwise (a float constant, scale
    ratios outside XNNPACK's range, a fused TANH) the float operator, then rounding."""
    operands = [op.operand(0), op.operand(1)]
    constants = [isinstance(v, np.ndarray) for v in operands]
    activation = op.activation(op.options.fusedActivationFunction)
    if all(constants) or activation == "tanh":
        return _float_then_round(op, operator)
    order = (1, 0) if constants[0] else (0, 1)  # the constant, if any, second
    x = operands[order[0]]
    grid_x, grid_y, grid_out = op.input_grid(order[0]), op.input_grid(order[1]), op.output_grid
    stored = op.stored(order[1]) if constants[order[1]] else None
    if None in (grid_x, grid_y, grid_out) or (stored is not None and (stored[1] is None or len(stored[1].scale) != 1)):
        return _float_then_round(op, operator)
    integers = None if stored is None else np.asarray(_centred_integers(stored[0], stored[1], 0), np.float32)
    if integers is not None and (integers.ndim > len(x.shape)
                                 or (integers.ndim == len(x.shape) and integers.shape[0] != 1)):
        raise op.error(f"constant of shape {integers.shape} does not broadcast over the batch of {x.shape}")
    try:
        layer = tflite_quant.QuantizedBinary(operator.lower(), grid_x.scale, grid_y.scale, grid_out.scale,
                                             grid_out.zero_point, *grid_out.bounds(activation),
                                             constant_shape=None if integers is None else integers.shape,
                                             name=op.name)
    except ValueError:
        return _float_then_round(op, operator)
    if integers is None:
        return layer([x, operands[order[1]]])
    y = layer(x)
    layer.set_weights([integers])
    return y


def _build_quantized_average_pool(op: _Op):
    """AVERAGE_POOL_2D with equal input and output grids:
    :class:`~gsal_tf.models.tflite_quant.QuantizedAveragePool`; otherwise the float pool, then rounding."""
    grid = op.input_grid(0)
    activation = op.activation(op.options.fusedActivationFunction)
    if grid is None or grid != op.output_grid or activation == "tanh":
        return _float_then_round(op, "AVERAGE_POOL_2D")
    options = op.options
    return tflite_quant.QuantizedAveragePool((options.filterHeight, options.filterWidth),
                                             (options.strideH, options.strideW), op.padding(options.padding),
                                             grid.scale, grid.zero_point, *grid.bounds(activation),
                                             name=op.name)(op.tensor(0))


def _build_quantized_resize_bilinear(op: _Op):
    """RESIZE_BILINEAR with equal input and output grids:
    :class:`~gsal_tf.models.tflite_quant.QuantizedResizeBilinear`; otherwise the float resize, then rounding."""
    grid = op.input_grid(0)
    if grid is None or grid != op.output_grid:
        return _float_then_round(op, "RESIZE_BILINEAR")
    size = op.constant(1).reshape(-1)
    if size.size != 2:
        raise op.error(f"size {size} is not (height, width)")
    return tflite_quant.QuantizedResizeBilinear(size, op.options.alignCorners, op.options.halfPixelCenters,
                                                grid.scale, grid.zero_point, grid.qmin, grid.qmax,
                                                name=op.name)(op.tensor(0))


def _build_quantized_quantize(op: _Op):
    """QUANTIZE from an 8-bit grid to another of the same type with ``2⁻⁸ ≤ s_in/s_out ≤ 2⁷``:
    :class:`~gsal_tf.models.tflite_quant.Requantize8`; from float (or across types): rounding."""
    x = op.operand(0)
    grid_in, grid_out = op.input_grid(0), op.output_grid
    if isinstance(x, np.ndarray) or grid_in is None or grid_out is None \
            or (grid_in.qmin, grid_in.qmax) != (grid_out.qmin, grid_out.qmax) \
            or not 2.0 ** -8 <= grid_in.scale / grid_out.scale <= 2.0 ** 7:
        return x if isinstance(x, np.ndarray) else op.fake_quantize(x)
    return tflite_quant.Requantize8(grid_in.scale, grid_out.scale, grid_out.zero_point, grid_out.qmin, grid_out.qmax,
                                    name=op.name)(x)


#: Operators whose 8-bit kernels are simulated integer for integer (the others: float, then rounding).
_QUANTIZED_BUILDERS = {
    "CONV_2D": lambda op: _build_quantized_convolution(op, "CONV_2D"),
    "DEPTHWISE_CONV_2D": lambda op: _build_quantized_convolution(op, "DEPTHWISE_CONV_2D"),
    "ADD": lambda op: _build_quantized_binary(op, "ADD"),
    "MUL": lambda op: _build_quantized_binary(op, "MUL"),
    "AVERAGE_POOL_2D": _build_quantized_average_pool,
    "RESIZE_BILINEAR": _build_quantized_resize_bilinear,
    "QUANTIZE": _build_quantized_quantize,
}
#: What a user can do about an operator outside :data:`SUPPORTED_OPERATORS`.
UNSUPPORTED_HINT = ("explain the network's original Keras model or SavedModel instead, or re-convert it to "
                    "TFLite with the supported operators only")


def _rebuild_operators(graph: _Graph, signature: _Signature, x, names: _UniqueNames, quantize: bool = False):
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
        op = _Op(graph, index, values, constants, names, quantized=quantize)
        simulated = _QUANTIZED_BUILDERS.get(operator) if quantize else None
        result = simulated(op) if simulated is not None else builder(op)
        output = _ints(tflite_op.outputs)[0]
        expected = _shape(graph, output)
        if isinstance(result, np.ndarray):
            constants[output] = result
            continue
        if len(result.shape) != len(expected) or tuple(result.shape[1:]) != expected[1:]:
            raise op.error(f"the rebuilt output has shape {tuple(result.shape)} but the file says {expected}")
        if quantize and simulated is None:
            result = op.fake_quantize(result)
        values[output] = result
    if signature.logits_index not in values:
        raise GsalInputError(f"{graph.path.name}: the output '{_tensor_name(graph, signature.logits_index)}' is "
                             "not computed from the input image")
    return values[signature.logits_index]
