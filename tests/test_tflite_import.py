"""from_tflite: TFLite segmentation networks rebuilt as Keras models, checked against tf.lite.Interpreter.

Two kinds of tests:

- tiny networks converted on the fly (float, and full-integer quantised with per-channel weights,
  uint8 and int8 input) that use every supported operator; they run anywhere. Operators the
  converter does not emit from TensorFlow code (MediaPipe's custom ``Convolution2DTransposeBias``,
  a DEQUANTIZE of int8 weights) are written into a converted file by editing its flatbuffer;
- the real DeepLab and MediaPipe files of ``../shared/data/real`` (skipped when the folder is
  absent), and ten CamVid frames of its ``research-only/`` folder (read in place, never copied).

The measured numbers are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import flatbuffers
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

import gsal_tf as gs
from gsal_tf.errors import GsalInputError
from gsal_tf.models import tflite_quant
from gsal_tf.models.model_file import read_model_file, write_model_file
from gsal_tf.models.tflite_import import (from_tflite, inspect_tflite, mediapipe_transpose_geometry,
                                          transpose_conv_offset)

pytestmark = [pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated"),
              pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")]

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
SIZE, CLASSES = 16, 5
TINY_OPERATORS = {"ADD", "ARG_MAX", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D",
                  "MAX_POOL_2D", "MEAN", "MUL", "PAD", "RESIZE_BILINEAR", "TILE"}


# ---------------------------------------------------------------------------------------------
# Tiny networks converted on the fly
# ---------------------------------------------------------------------------------------------

def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights; the first convolution's output channels span magnitudes 1/16 .. 8 (per-channel
    quantisation matters)."""
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.3):
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return {
        "conv_stride2": normal(3, 3, 3, 8) * (2.0 ** np.arange(8) / 16).astype(np.float32), "b1": normal(8),
        "conv_dilated": normal(3, 3, 8, 8), "b2": normal(8),
        "depthwise": normal(3, 3, 8, 2), "bd": normal(16),
        "conv_padded": normal(2, 2, 16, 16),
        "logits": normal(1, 1, 32, CLASSES), "b3": normal(CLASSES),
        "mul": 1 + normal(CLASSES), "add": normal(1, 1, 1, CLASSES),
    }


def tiny_segmenter(w: dict[str, np.ndarray], x, argmax: bool = True, extra=None):
    """A DeepLab-like graph using every supported operator: stride-2 SAME conv + relu6, dilated conv,
    depthwise ×2 + relu, max pool, pad + VALID conv, average pool, mean + broadcast add, global
    pool + tile + concat (image pooling), 1×1 logits, resizes with align_corners / half-pixel
    centres / neither, constant mul and add, ARG_MAX. ``extra`` is applied to the logits."""
    a = tf.nn.relu6(tf.nn.conv2d(x, w["conv_stride2"], 2, "SAME") + w["b1"])
    b = tf.nn.conv2d(a, w["conv_dilated"], 1, "SAME", dilations=2) + w["b2"]
    c = tf.nn.relu(tf.nn.depthwise_conv2d(b, w["depthwise"], [1, 1, 1, 1], "SAME") + w["bd"])
    c = tf.nn.max_pool2d(c, 2, 1, "SAME")
    p = tf.nn.conv2d(tf.pad(c, [[0, 0], [1, 0], [0, 1], [0, 0]]), w["conv_padded"], 1, "VALID")
    d = tf.nn.avg_pool2d(p, 3, 1, "SAME")
    e = d + tf.reduce_mean(d, axis=[1, 2], keepdims=True)
    pooled = tf.tile(tf.nn.avg_pool2d(e, 8, 8, "VALID"), [1, 8, 8, 1])
    logits = tf.nn.conv2d(tf.concat([e, pooled], axis=3), w["logits"], 1, "VALID") + w["b3"]
    if extra is not None:
        logits = extra(logits)
    r = tf.compat.v1.image.resize_bilinear(logits, [11, 11], align_corners=True)
    r = tf.image.resize(r, [13, 13])
    r = tf.raw_ops.ResizeBilinear(images=r, size=[SIZE, SIZE], align_corners=False, half_pixel_centers=False)
    r = r * w["mul"] + w["add"]
    return tf.argmax(r, axis=3) if argmax else r


def convert(graph_fn, input_shape=(1, SIZE, SIZE, 3), quantize: str | None = None) -> bytes:
    """``graph_fn`` as a TFLite flatbuffer: float, float16 weights (+ DEQUANTIZE), or full-integer
    quantised (``"uint8"``/``"int8"`` input) with a representative dataset of images in [-1, 1]."""
    module = tf.Module()
    module.f = tf.function(graph_fn, input_signature=[tf.TensorSpec(input_shape, tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize is not None:
        rng = np.random.default_rng(1)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [rng.uniform(-1, 1, input_shape).astype(np.float32)] for _ in range(16))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = {"uint8": tf.uint8, "int8": tf.int8}[quantize]
    return converter.convert()


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """The tiny segmenter as float / float16-weight / uint8-input / int8-input TFLite files (same weights)."""
    folder = tmp_path_factory.mktemp("tiny_tflite")
    weights = tiny_weights()
    files = {}
    for kind in ("float", "float16", "uint8", "int8"):
        path = folder / f"tiny_{kind}.tflite"
        path.write_bytes(convert(lambda x: tiny_segmenter(weights, x), quantize=None if kind == "float" else kind))
        files[kind] = path
    return files


def interpreter_run(path: Path, images01: np.ndarray, float_range=(-1.0, 1.0)):
    """Run the file on images in [0,1] (N,H,W,C), one at a time, as the importer's convention says:
    uint8 input q = 255·x, int8 input q = 255·x − 128, float input lo + (hi − lo)·x.

    Returns (argmax or output (N,...), logits (N,H,W,K)): the logits are the dequantised input of
    the final ARG_MAX (or the output itself when there is none).
    """
    interpreter = tf.lite.Interpreter(str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    argmax = [op for op in interpreter._get_ops_details() if op["op_name"] == "ARG_MAX"]
    logits_index = argmax[0]["inputs"][0] if argmax else output["index"]
    logits_details = next(t for t in interpreter.get_tensor_details() if t["index"] == logits_index)
    outputs, logits = [], []
    for image in images01:
        q = np.round(image * 255.0)
        low, high = float_range
        feed = {np.uint8: q, np.int8: q - 128, np.float32: low + (high - low) * image}[source["dtype"]]
        interpreter.set_tensor(source["index"], feed[None].astype(source["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output["index"])[0])
        scale, zero_point = logits_details["quantization"]
        raw = interpreter.get_tensor(logits_index)[0].astype(np.float32)
        logits.append(scale * (raw - zero_point) if scale else raw)
    return np.stack(outputs), np.stack(logits)


def pixel_images(n: int, seed: int, size: int = SIZE) -> np.ndarray:
    """Random 8-bit images as floats in [0,1] (exactly representable as uint8 pixels)."""
    return (np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)) / 255.0).astype(np.float32)


def operator_names(path: Path) -> set[str]:
    interpreter = tf.lite.Interpreter(str(path))
    return {op["op_name"] for op in interpreter._get_ops_details()}


def resize_modes(path: Path) -> set[tuple[bool, bool]]:
    """(align_corners, half_pixel_centers) of every RESIZE_BILINEAR in the file (read with the schema)."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    return {(op.builtinOptions.alignCorners, op.builtinOptions.halfPixelCenters)
            for op in model.subgraphs[0].operators
            if isinstance(op.builtinOptions, schema.ResizeBilinearOptionsT)}


def test_tiny_fixture_covers_every_operator_and_resize_mode(tiny_files):
    for path in tiny_files.values():
        assert TINY_OPERATORS <= operator_names(path)
        assert resize_modes(path) == {(True, False), (False, True), (False, False)}
    assert "QUANTIZE" in operator_names(tiny_files["uint8"])
    assert "DEQUANTIZE" in operator_names(tiny_files["float16"])


@pytest.mark.parametrize("kind", ["float", "float16"])
def test_float_tiny_model_matches_the_interpreter(tiny_files, kind):
    path = tiny_files[kind]
    model = from_tflite(path)
    images = pixel_images(2, seed=3)
    argmax, reference = interpreter_run(path, images)
    logits = model.predict(images, verbose=0)
    difference = float(np.abs(logits - reference).max())
    print(f"tiny {kind}: max |logit difference| = {difference:.3g} (logit range {np.ptp(reference):.3g})")
    assert logits.shape == (2, SIZE, SIZE, CLASSES)
    assert difference <= 1e-4
    assert np.array_equal(logits.argmax(-1), argmax)
    info = model.tflite_info
    assert info.argmax_dropped and not info.output_resized and info.input_range == (-1.0, 1.0)
    assert info.input_type == "float32" and info.input_size == (SIZE, SIZE) and info.num_classes == CLASSES

    probabilities = from_tflite(path, output="probabilities").predict(images, verbose=0)
    expected = np.exp(reference - reference.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


def test_float_input_range_option_sets_the_preprocessing(tiny_files):
    path = tiny_files["float"]
    model = from_tflite(path, float_input_range=(0.0, 255.0))
    images = pixel_images(1, seed=4)
    _, reference = interpreter_run(path, images, float_range=(0.0, 255.0))
    assert model.tflite_info.input_range == (0.0, 255.0)
    assert model.tflite_info.preprocessing == "real = 0 + 255·x"
    np.testing.assert_allclose(model.predict(images, verbose=0), reference, rtol=1e-4, atol=1e-3)
    with pytest.raises(GsalInputError, match="float_input_range"):
        from_tflite(path, float_input_range=(1.0, -1.0))


@pytest.mark.parametrize("kind", ["uint8", "int8"])
def test_quantised_tiny_model_matches_the_interpreter(tiny_files, kind):
    """The default import of a full-integer file simulates its 8-bit activations and computes the
    interpreter's integers (every operator of the tiny segmenter, three resize modes, per-channel
    weights); with quantize_activations=False the activations run in float (close, not equal)."""
    path = tiny_files[kind]
    images = pixel_images(2, seed=5)
    argmax, reference = interpreter_run(path, images)
    step = quantisation_step(path)
    faithful = from_tflite(path)
    float_import = from_tflite(path, quantize_activations=False)
    for model, simulated in ((faithful, True), (float_import, False)):
        logits = model.predict(images, verbose=0)
        difference = float(np.abs(logits - reference).max())
        agreement = float((logits.argmax(-1) == argmax).mean())
        exact = float((np.abs(logits - reference) <= 1e-3 * step).mean())
        print(f"tiny {kind}, simulated activations {simulated}: max |logit difference| = {difference:.3g} "
              f"(step {step:.3g}, logit range {np.ptp(reference):.3g}); arg-max agreement {agreement:.4f}; "
              f"logits on the interpreter's integer {exact:.4f}")
        assert model.tflite_info.quantized_activations == simulated and model.tflite_info.activation_type == "int8"
        if simulated:
            assert agreement == 1.0 and exact == 1.0
        else:
            assert difference <= 0.05 * np.ptp(reference) and agreement >= 0.9
    info = faithful.tflite_info
    assert info.input_type == kind
    scale, zero_point = info.input_quantization
    qmin = 0 if kind == "uint8" else -128
    assert info.input_range == pytest.approx((scale * (qmin - zero_point), scale * (qmin + 255 - zero_point)))


def quantisation_step(path: Path) -> float:
    """The scale of the file's logits tensor (the input of its ARG_MAX, else its output)."""
    interpreter = tf.lite.Interpreter(str(path))
    argmax = [op for op in interpreter._get_ops_details() if op["op_name"] == "ARG_MAX"]
    index = argmax[0]["inputs"][0] if argmax else interpreter.get_output_details()[0]["index"]
    return next(t["quantization"][0] for t in interpreter.get_tensor_details() if t["index"] == index)


@pytest.mark.parametrize("kind", ["uint8", "int8"])
def test_per_channel_weights_are_dequantised_per_channel(tiny_files, kind):
    """Each dequantised weight lies within half a quantisation step of the original float weight,
    with the step of its own output channel (symmetric int8: step = max|w_channel| / 127). With
    simulated activations the kernels hold the integers q − z themselves."""
    path = tiny_files[kind]
    scales = [d["quantization_parameters"]["scales"] for d in tf.lite.Interpreter(str(path)).get_tensor_details()]
    assert max(len(s) for s in scales) > 1, "the converter did not quantise per channel"
    weights = tiny_weights()

    def kernels(model):
        return [layer.get_weights()[0] for layer in model.layers
                if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]

    dequantised = kernels(from_tflite(path, quantize_activations=False))
    # Output channels: the last axis of a Conv2D kernel (kh,kw,C_in,C_out); the (C_in, M) pair of a
    # depthwise kernel (kh,kw,C_in,M).
    for key, reduced_axes in [("conv_stride2", (0, 1, 2)), ("conv_dilated", (0, 1, 2)), ("depthwise", (0, 1))]:
        original = weights[key]
        kernel = next(k for k in dequantised if k.shape == original.shape)
        step = np.abs(original).max(axis=reduced_axes, keepdims=True) / 127.0
        assert np.all(np.abs(kernel - original) <= 0.5 * step + 1e-7), key
    for kernel in kernels(from_tflite(path)):
        assert np.array_equal(kernel, np.round(kernel)) and np.abs(kernel).max() <= 127


def test_gradients_flow_to_the_input(tiny_files):
    for kind in ("float", "uint8"):
        model = from_tflite(tiny_files[kind], output="probabilities")
        images = tf.constant(pixel_images(1, seed=6))
        with tf.GradientTape() as tape:
            tape.watch(images)
            score = tf.reduce_sum(model(images)[..., 1])
        gradient = tape.gradient(score, images).numpy()
        assert np.all(np.isfinite(gradient)) and np.abs(gradient).max() > 0


def test_batch_of_three(tiny_files):
    path = tiny_files["float"]
    model = from_tflite(path)
    images = pixel_images(3, seed=7)
    _, reference = interpreter_run(path, images)
    logits = model(images).numpy()
    assert model.input_shape == (None, SIZE, SIZE, 3)
    assert logits.shape == (3, SIZE, SIZE, CLASSES)
    np.testing.assert_allclose(logits, reference, atol=1e-4)
    assert not np.allclose(logits[0], logits[1])


def test_keras_file_round_trip_in_safe_mode(tiny_files, tmp_path):
    """Saved as .keras, the model loads in a fresh Python process in safe mode once
    gsal_tf.models.tflite_import is imported, and gives identical outputs."""
    model = from_tflite(tiny_files["uint8"], output="probabilities")
    images = pixel_images(2, seed=8)
    np.save(tmp_path / "images.npy", images)
    file = tmp_path / "tiny.keras"
    model.save(file)
    script = ("import sys, numpy as np, keras, gsal_tf.models.tflite_import\n"
              "model = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
              "np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))\n"
              "print(','.join(layer.name for layer in model.layers))\n")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.run([sys.executable, "-c", script, str(file), str(tmp_path / "images.npy"),
                          str(tmp_path / "loaded.npy")], capture_output=True, text=True, env=environment, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1].split(",") == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(np.load(tmp_path / "loaded.npy"), model.predict(images, verbose=0))


def test_output_below_input_resolution_is_resized(tmp_path):
    """A graph whose logits stay at 1/2 resolution gets an align_corners resize to the input size."""
    weights = tiny_weights()

    def half_resolution(x):
        return tf.nn.conv2d(x, weights["conv_stride2"][..., :CLASSES], 2, "SAME")

    path = tmp_path / "half.tflite"
    path.write_bytes(convert(half_resolution))
    model = from_tflite(path)
    images = pixel_images(1, seed=9)
    _, reference = interpreter_run(path, images)
    expected = tf.compat.v1.image.resize_bilinear(reference, [SIZE, SIZE], align_corners=True).numpy()
    assert model.tflite_info.output_resized and not model.tflite_info.argmax_dropped
    np.testing.assert_allclose(model.predict(images, verbose=0), expected, atol=1e-4)



# ---------------------------------------------------------------------------------------------
# Simulated 8-bit activations (quantize_activations): a Keras model converted to full integer
# ---------------------------------------------------------------------------------------------

KERAS_SIZE, KERAS_CLASSES = 32, 4


def keras_segmenter(seed: int = 0) -> keras.Model:
    """A small Keras segmentation network: rescale to [−1, 1], stride-2 conv + relu6, depthwise +
    relu, 1×1 conv, residual add, 3×3 average pool, concat, dilated conv + relu, 1×1 logits,
    bilinear ×2 upsampling; (N,32,32,3) → (N,32,32,4)."""
    keras.utils.set_random_seed(seed)
    image = keras.Input((KERAS_SIZE, KERAS_SIZE, 3))
    x = keras.layers.Rescaling(2.0, -1.0)(image)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu6")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Add()([x, keras.layers.Conv2D(16, 1)(y)])
    x = keras.layers.Concatenate()([x, keras.layers.AveragePooling2D(3, strides=1, padding="same")(x)])
    x = keras.layers.Conv2D(16, 3, padding="same", dilation_rate=2, activation="relu")(x)
    logits = keras.layers.UpSampling2D(2, interpolation="bilinear")(keras.layers.Conv2D(KERAS_CLASSES, 1)(x))
    return keras.Model(image, logits)


@pytest.fixture(scope="module")
def keras_int8_file(tmp_path_factory) -> Path:
    """:func:`keras_segmenter` converted with full-integer quantisation (representative dataset of
    32 random images in [0, 1]; uint8 input and output, int8 inside)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(keras_segmenter())
    rng = np.random.default_rng(1)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [rng.random((1, KERAS_SIZE, KERAS_SIZE, 3), dtype=np.float32)] for _ in range(32))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.uint8
    path = tmp_path_factory.mktemp("keras_int8") / "keras_int8.tflite"
    path.write_bytes(converter.convert())
    return path


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def test_faithful_import_of_a_keras_model_matches_the_interpreter(keras_int8_file):
    """Measured on 8 random images: the simulated import computes the interpreter's integers on
    every pixel (arg-max agreement 1.0, every logit equal, probabilities to float round-off); the
    float import agrees on 99.2 % of the pixels."""
    assert {"SPACE_TO_BATCH_ND", "AVERAGE_POOL_2D", "RESIZE_BILINEAR", "ADD", "QUANTIZE"} <= operator_names(
        keras_int8_file)
    images = pixel_images(8, seed=21, size=KERAS_SIZE)
    _, reference = interpreter_run(keras_int8_file, images)
    step = quantisation_step(keras_int8_file)
    faithful = from_tflite(keras_int8_file, output="probabilities")
    float_import = from_tflite(keras_int8_file, output="probabilities", quantize_activations=False)
    logits = from_tflite(keras_int8_file).predict(images, verbose=0)
    agreement = {}
    for name, model in (("faithful", faithful), ("float", float_import)):
        probabilities = model.predict(images, verbose=0)
        agreement[name] = float((probabilities.argmax(-1) == reference.argmax(-1)).mean())
        print(f"keras int8, {name} import: arg-max agreement {agreement[name]:.4f}, max |probability difference| "
              f"{np.abs(probabilities - softmax(reference)).max():.2g}")
        if name == "faithful":
            np.testing.assert_allclose(probabilities, softmax(reference), atol=1e-6)
    assert agreement["faithful"] == 1.0 and agreement["float"] < agreement["faithful"]
    assert np.abs(logits - reference).max() <= 1e-3 * step
    assert faithful.tflite_info.quantized_activations and not float_import.tflite_info.quantized_activations


def test_faithful_gradient_is_straight_through_and_grid_saliency_runs(keras_int8_file):
    """The rounding passes the float operators' gradient (straight-through), so the gradient of a
    class score w.r.t. the input is finite, non-zero and close to the float import's; grid
    saliency optimises on the simulated model."""
    import gsal_tf as gs

    image = pixel_images(1, seed=22, size=KERAS_SIZE)
    gradients = []
    for simulated in (True, False):
        model = from_tflite(keras_int8_file, output="probabilities", quantize_activations=simulated)
        x = tf.constant(image)
        with tf.GradientTape() as tape:
            tape.watch(x)
            score = tf.reduce_sum(model(x)[..., 1])
        gradients.append(tape.gradient(score, x).numpy().ravel())
    faithful, reference = gradients
    cosine = float(faithful @ reference / (np.linalg.norm(faithful) * np.linalg.norm(reference)))
    print(f"gradient of the simulated model: max |g| {np.abs(faithful).max():.3g}, non-zero share "
          f"{np.mean(faithful != 0):.3f}, cosine similarity with the float import's {cosine:.3f}")
    assert np.all(np.isfinite(faithful)) and np.abs(faithful).max() > 0 and cosine > 0.5

    model = from_tflite(keras_int8_file, output="probabilities")
    prediction = model.predict(image, verbose=0)[0].argmax(-1)
    class_id = int(np.bincount(prediction.ravel()).argmax())
    request = (prediction == class_id).astype(np.float32)[None]
    result = gs.GridSaliency(model, iterations=3).explain(image, request, np.array([class_id]))
    assert result.saliency.shape == (1, KERAS_SIZE, KERAS_SIZE)
    assert np.all(np.isfinite(result.saliency)) and result.saliency.min() >= 0 and result.saliency.max() <= 1


def test_simulated_model_round_trips_through_a_float16_model_file(tiny_files, tmp_path):
    """The zoo's storage (weights in float16) keeps the simulation exact: the kernels hold 8-bit
    integers and the int32 biases live in the layer config."""
    model = from_tflite(tiny_files["uint8"], output="probabilities")
    images = pixel_images(2, seed=23)
    loaded, _ = read_model_file(write_model_file(model, tmp_path / "m.npz", "float16"))
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))


def test_simulated_kernel_parameters():
    """The kernels' parameters on cases worked by hand."""
    # Resize 33 → 513 with align_corners (DeepLab's logits): source step 1/16, so α = 128·(i mod 16).
    low, high, alpha = tflite_quant.resize_axis(33, 513, align_corners=True, half_pixel_centers=False)
    assert (low[17], high[17], alpha[17]) == (1, 2, 128) and (low[-1], alpha[-1]) == (32, 0)
    # Half-pixel centres 2 → 4: sources −0.25 (row 0 only, α 0), 0.25, 0.75 (rows 0, 1), 1.25 (row 1 twice).
    low, high, alpha = tflite_quant.resize_axis(2, 4, align_corners=False, half_pixel_centers=True)
    assert low.tolist() == [0, 0, 0, 1] and high.tolist() == [0, 1, 1, 1] and alpha.tolist() == [0, 512, 1536, 512]
    # A 3×3 SAME window counts only in-image positions.
    assert tflite_quant.window_counts((4, 4), (3, 3), (1, 1), "same").tolist() == [[4, 6, 6, 4], [6, 9, 9, 6],
                                                                                 [6, 9, 9, 6], [4, 6, 6, 4]]
    # ADD with s_a/s_out = 1, s_b/s_out = 0.5: exponent 0, shift 20, multipliers 2²⁰ and 2¹⁹.
    assert tflite_quant.add_multipliers(0.5, 0.25, 0.5) == (2 ** 20, 2 ** 19, 20)
    assert tflite_quant.convert_multiplier(0.00891796313226223, 0.055217549204826355) == 41
    grid = tflite_quant.Quantization(scale=0.05, zero_point=10, qmin=0, qmax=255)
    assert grid.bounds("relu6") == (10, 130) and grid.bounds("relu") == (10, 255) and grid.bounds(None) == (0, 255)


def per_channel_activation(model: schema.ModelT) -> None:
    """An edit giving the first CONV_2D's output (an activation tensor) two scales along the channels."""
    graph = model.subgraphs[0]
    op = next(o for o in graph.operators if builtin(model, o) == schema.BuiltinOperator.CONV_2D)
    quantization = graph.tensors[int(op.outputs[0])].quantization
    quantization.scale = [float(quantization.scale[0])] * 2
    quantization.zeroPoint = [int(quantization.zeroPoint[0])] * 2
    quantization.quantizedDimension = 3


def test_quantize_activations_bad_requests_are_one_line(tiny_files, tmp_path):
    with pytest.raises(GsalInputError) as error:
        from_tflite(tiny_files["float"], quantize_activations=True)
    print("float file:", error.value)
    assert "\n" not in str(error.value) and "computes in float" in str(error.value)
    with pytest.raises(GsalInputError, match="quantize_activations must be"):
        from_tflite(tiny_files["uint8"], quantize_activations="yes")
    assert not from_tflite(tiny_files["float"]).tflite_info.quantized_activations

    path = tmp_path / "per_channel_activation.tflite"
    path.write_bytes(edit_flatbuffer(tiny_files["int8"].read_bytes(), per_channel_activation))
    for requested in (None, True):
        with pytest.raises(GsalInputError) as error:
            from_tflite(path, quantize_activations=requested)
        message = str(error.value)
        assert "\n" not in message and "per channel (2 scales)" in message
        assert "quantize_activations=False" in message and path.name in message
    print("per-channel activation:", message)
    assert not from_tflite(path, quantize_activations=False).tflite_info.quantized_activations


# ---------------------------------------------------------------------------------------------
# One-channel (binary) networks and the operators of the MediaPipe and ADE20K files
# ---------------------------------------------------------------------------------------------

def edit_flatbuffer(data: bytes, edit) -> bytes:
    """``data`` with ``edit(model)`` applied to its unpacked :class:`schema.ModelT`, packed again."""
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def builtin(model: schema.ModelT, op: schema.OperatorT) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def as_mediapipe_transpose_conv(padding_code: int):
    """An edit turning the file's TRANSPOSE_CONV (inputs output shape, filter, image, bias) into
    MediaPipe's CUSTOM ``Convolution2DTransposeBias`` (inputs image, filter, bias; custom options
    int32 padding (1 = SAME, 2 = VALID), stride_w, stride_h) with the same output tensor."""
    def edit(model):
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
        code.customCode, code.version = "Convolution2DTransposeBias", 1
        model.operatorCodes.append(code)
        (op,) = [o for o in model.subgraphs[0].operators if builtin(model, o) == schema.BuiltinOperator.TRANSPOSE_CONV]
        _, weights, image, bias = (int(i) for i in op.inputs)
        options = op.builtinOptions
        op.customOptions = list(struct.pack("<iii", padding_code, options.strideW, options.strideH))
        op.opcodeIndex, op.inputs = len(model.operatorCodes) - 1, [image, weights, bias]
        op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.NONE, None
    return edit


def int8_filters_through_dequantize(*operators: int):
    """An edit putting a DEQUANTIZE between every int8 filter of the given operators (builtin codes)
    and the operator (the ADE20K file's form for its depthwise filters): the interpreter then runs
    the float kernel on the dequantised weights instead of quantising the activations on the fly."""
    def edit(model):
        graph = model.subgraphs[0]
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.DEQUANTIZE
        code.version = 2
        model.operatorCodes.append(code)
        rewritten = []
        for op in graph.operators:
            weights = int(op.inputs[1]) if builtin(model, op) in operators else -1
            if weights >= 0 and graph.tensors[weights].type == schema.TensorType.INT8:
                model.buffers.append(schema.BufferT())
                tensor = schema.TensorT()
                tensor.name, tensor.type = graph.tensors[weights].name + b"_dequantize", schema.TensorType.FLOAT32
                tensor.shape, tensor.buffer = graph.tensors[weights].shape, len(model.buffers) - 1
                graph.tensors.append(tensor)
                dequantize = schema.OperatorT()
                dequantize.opcodeIndex = len(model.operatorCodes) - 1
                dequantize.inputs, dequantize.outputs = [weights], [len(graph.tensors) - 1]
                rewritten.append(dequantize)
                op.inputs = [int(op.inputs[0]), len(graph.tensors) - 1, *(int(i) for i in op.inputs[2:])]
            rewritten.append(op)
        graph.operators = rewritten
    return edit


with_int8_dequantize = int8_filters_through_dequantize(schema.BuiltinOperator.DEPTHWISE_CONV_2D)


def interpreter_scores(path: Path, images01: np.ndarray, float_range=(0.0, 1.0), preserve: bool = False):
    """The file's output on float images (fed as ``lo + (hi − lo)·x``), one image at a time; with
    ``preserve`` also the input of its last operator (the logits before a final LOGISTIC).
    ``preserve`` keeps every tensor, which switches the XNNPACK delegate off."""
    interpreter = tf.lite.Interpreter(str(path), experimental_preserve_all_tensors=preserve)
    interpreter.allocate_tensors()
    source, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    last = next(op for op in interpreter._get_ops_details() if output["index"] in op["outputs"])
    outputs, last_inputs = [], []
    low, high = float_range
    for image in images01:
        interpreter.set_tensor(source["index"], (low + (high - low) * image)[None].astype(np.float32))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output["index"])[0])
        if preserve:
            last_inputs.append(interpreter.get_tensor(last["inputs"][0])[0])
    return np.stack(outputs), (np.stack(last_inputs) if preserve else None)


def tiny_binary_weights(seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def normal(*shape, scale=0.5):
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return {"conv": normal(3, 3, 3, 8), "b": normal(8), "se": normal(1, 1, 8, 8), "bse": normal(8),
            "up": normal(3, 3, 8, 8), "bup": normal(8), "out": normal(1, 1, 8, 1), "bout": normal(1)}


def tiny_binary_segmenter(w: dict[str, np.ndarray], x, final_sigmoid: bool = True):
    """A MediaPipe-like one-channel segmenter: stride-2 conv + hard swish, squeeze-excite gate
    (mean, 1×1 conv, sigmoid, multiply), half-pixel resize + stand-alone relu, SAME transposed
    convolution with bias, add, 1×1 conv to one channel, final sigmoid."""
    a = tf.nn.conv2d(x, w["conv"], 2, "SAME") + w["b"]
    a = a * tf.nn.relu6(a + 3.0) / 6.0
    gate = tf.sigmoid(tf.nn.conv2d(tf.reduce_mean(a, axis=[1, 2], keepdims=True), w["se"], 1, "VALID") + w["bse"])
    a = a * gate
    r = tf.nn.relu(tf.image.resize(a, [SIZE, SIZE]))
    t = tf.nn.conv2d_transpose(a, w["up"], [1, SIZE, SIZE, 8], 2, "SAME") + w["bup"]
    logit = tf.nn.conv2d(r + t, w["out"], 1, "VALID") + w["bout"]
    return tf.sigmoid(logit) if final_sigmoid else logit


def before_resize(model: keras.Model) -> keras.Model:
    """The imported model without its appended ``resize_to_input`` (the file's own output size)."""
    if not model.tflite_info.output_resized:
        return model
    return keras.Model(model.input, model.get_layer("resize_to_input").input)


BINARY_OPERATORS = {"CONV_2D", "HARD_SWISH", "MEAN", "LOGISTIC", "MUL", "RESIZE_BILINEAR", "RELU", "TRANSPOSE_CONV",
                    "ADD"}


@pytest.fixture(scope="module")
def binary_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("binary") / "binary.tflite"
    weights = tiny_binary_weights()
    path.write_bytes(convert(lambda x: tiny_binary_segmenter(weights, x)))
    return path


def test_one_channel_network_matches_the_interpreter(binary_file):
    """HARD_SWISH, LOGISTIC, stand-alone RELU, TRANSPOSE_CONV and a broadcasting MUL of two
    tensors; the final LOGISTIC is dropped for the logits and re-applied for the probabilities."""
    assert BINARY_OPERATORS <= operator_names(binary_file)
    images = pixel_images(2, seed=11)
    probabilities, logits = interpreter_scores(binary_file, images, preserve=True)
    ours_p = from_tflite(binary_file, output="probabilities", float_input_range=(0.0, 1.0))
    ours_z = from_tflite(binary_file, output="logits", float_input_range=(0.0, 1.0))
    p, z = ours_p.predict(images, verbose=0), ours_z.predict(images, verbose=0)
    print(f"tiny one-channel: max |p difference| {np.abs(p - probabilities).max():.3g}, "
          f"max |logit difference| {np.abs(z - logits).max():.3g} (logit range {np.ptp(logits):.3g})")
    assert p.shape == z.shape == (2, SIZE, SIZE, 1)
    np.testing.assert_allclose(p, probabilities, atol=1e-5)
    np.testing.assert_allclose(z, logits, atol=1e-4)
    info = ours_p.tflite_info
    assert info.num_classes == 1 and info.logistic_dropped and not info.argmax_dropped
    assert ours_p.layers[-1].name == "probabilities"
    assert inspect_tflite(binary_file).logistic_dropped


def test_one_channel_output_without_a_final_logistic_is_its_logit(tmp_path):
    weights = tiny_binary_weights()
    path = tmp_path / "binary_logit.tflite"
    path.write_bytes(convert(lambda x: tiny_binary_segmenter(weights, x, final_sigmoid=False)))
    images = pixel_images(1, seed=12)
    logits, _ = interpreter_scores(path, images)
    model = from_tflite(path, output="probabilities", float_input_range=(0.0, 1.0))
    assert not model.tflite_info.logistic_dropped
    np.testing.assert_allclose(model.predict(images, verbose=0), 1 / (1 + np.exp(-logits)), atol=1e-5)


def test_stand_alone_activations_are_exact(tmp_path):
    """HARD_SWISH x·min(max(x+3, 0), 6)/6, LOGISTIC and RELU on values spanning the kinks (−3, 0, 3)."""
    def activations(x):
        y = tf.reduce_mean(x, axis=3, keepdims=True) * 16.0 + (-8.0)
        hard_swish = y * tf.nn.relu6(y + 3.0) / 6.0
        return tf.concat([hard_swish, tf.sigmoid(y), tf.nn.relu(tf.image.resize(y, [SIZE, SIZE]))], 3)

    path = tmp_path / "activations.tflite"
    path.write_bytes(convert(activations))
    assert {"HARD_SWISH", "LOGISTIC", "RELU"} <= operator_names(path)
    images = pixel_images(2, seed=13)
    reference, _ = interpreter_scores(path, images)
    np.testing.assert_allclose(from_tflite(path, float_input_range=(0.0, 1.0)).predict(images, verbose=0),
                               reference, atol=1e-5)


@pytest.mark.parametrize("padding, kernel, stride, size_in, size_out", [
    ("SAME", 3, 2, 8, 16), ("SAME", 3, 2, 8, 15), ("SAME", 4, 2, 8, 16), ("SAME", 2, 2, 8, 16),
    ("VALID", 3, 2, 8, 17), ("VALID", 2, 2, 8, 16), ("VALID", 3, 2, 8, 18), ("SAME", 3, 1, 8, 8),
])
def test_transpose_conv_matches_the_interpreter(tmp_path, padding, kernel, stride, size_in, size_out):
    rng = np.random.default_rng(kernel * 100 + size_out)
    w, b = rng.normal(size=(kernel, kernel, 4, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)

    def transposed(x):
        return tf.nn.conv2d_transpose(x, w, [1, size_out, size_out, 4], stride, padding) + b

    path = tmp_path / "transpose.tflite"
    path.write_bytes(convert(transposed, input_shape=(1, size_in, size_in, 3)))
    assert "TRANSPOSE_CONV" in operator_names(path)
    images = pixel_images(2, seed=14, size=size_in)
    reference, _ = interpreter_scores(path, images)
    ours = before_resize(from_tflite(path, float_input_range=(0.0, 1.0))).predict(images, verbose=0)
    assert ours.shape == (2, size_out, size_out, 4)
    np.testing.assert_allclose(ours, reference, atol=1e-4)


@pytest.mark.parametrize("padding, kernel, size_in", [("SAME", 2, 8), ("SAME", 3, 8), ("SAME", 4, 8), ("VALID", 3, 8),
                                                      ("VALID", 2, 7)])
def test_mediapipe_transpose_conv_custom_op_matches_the_interpreter(tmp_path, padding, kernel, size_in):
    """``Convolution2DTransposeBias`` (stride 2), written into a converted TRANSPOSE_CONV file and run
    by tf.lite.Interpreter (XNNPACK implements the op). Sizes where MediaPipe's reference kernel and
    XNNPACK agree: SAME with the input a multiple of the stride, and VALID."""
    size_out, offset = mediapipe_transpose_geometry(padding.lower(), size_in, kernel, 2)
    rng = np.random.default_rng(kernel + size_in)
    w, b = rng.normal(size=(kernel, kernel, 4, 3)).astype(np.float32), rng.normal(size=4).astype(np.float32)

    def transposed(x):
        return tf.nn.conv2d_transpose(x, w, [1, size_out, size_out, 4], 2, padding) + b

    assert offset == transpose_conv_offset(padding.lower(), size_in, size_out, kernel, 2)  # the same window as TF's
    path = tmp_path / "mediapipe.tflite"
    data = convert(transposed, input_shape=(1, size_in, size_in, 3))
    path.write_bytes(edit_flatbuffer(data, as_mediapipe_transpose_conv({"SAME": 1, "VALID": 2}[padding])))
    assert "Convolution2DTransposeBias" in operator_names(path) and "TRANSPOSE_CONV" not in operator_names(path)
    images = pixel_images(2, seed=15, size=size_in)
    reference, _ = interpreter_scores(path, images)
    model = from_tflite(path, float_input_range=(0.0, 1.0))
    assert ("CUSTOM(Convolution2DTransposeBias)", 1) in model.tflite_info.operators
    ours = before_resize(model).predict(images, verbose=0)
    print(f"Convolution2DTransposeBias {padding} k={kernel} n={size_in}: output {size_out}, max |difference| "
          f"{np.abs(ours - reference).max():.3g}")
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_transpose_geometry_formulas():
    # TF conv2d_transpose: SAME pads like the forward convolution from the output size.
    assert [transpose_conv_offset("same", 8, o, 3, 2) for o in (15, 16)] == [1, 0]
    assert transpose_conv_offset("same", 8, 16, 4, 2) == 1 and transpose_conv_offset("valid", 8, 18, 3, 2) == 0
    # MediaPipe: total = max(k − (n − 1) mod s − 1, 0); the real selfie files: k = s = 2, n = 128 → 256,
    # no crop.
    assert mediapipe_transpose_geometry("same", 128, 2, 2) == (256, 0)
    assert mediapipe_transpose_geometry("same", 7, 3, 2) == (13, 1)
    assert mediapipe_transpose_geometry("valid", 8, 3, 2) == (17, 0)


@pytest.mark.parametrize("block, paddings, crops, kernel", [
    ((2, 2), ((2, 3), (2, 3)), ((0, 1), (0, 1)), 3),   # the ADE20K file's rate-2 form for 65×65 (here 15×15)
    ((4, 4), ((4, 5), (4, 5)), ((0, 1), (0, 1)), 3),   # rate 4
    ((2, 3), ((1, 0), (3, 0)), ((1, 0), (0, 2)), 2),   # unequal blocks, asymmetric paddings and crops
])
def test_space_to_batch_and_back_match_the_interpreter(tmp_path, block, paddings, crops, kernel):
    """SPACE_TO_BATCH_ND → DEPTHWISE_CONV_2D (+ relu, so the converter keeps the three operators)
    → BATCH_TO_SPACE_ND; a batch of three checks the phase/batch order (out batch (i·b_w + j)·N + n)."""
    rng = np.random.default_rng(sum(block))
    w = rng.normal(size=(kernel, kernel, 3, 1)).astype(np.float32)

    def atrous(x):
        y = tf.space_to_batch_nd(x, block, paddings)
        y = tf.nn.relu(tf.nn.depthwise_conv2d(y, w, [1, 1, 1, 1], "VALID"))
        return tf.batch_to_space(y, block, crops) * 2.0 + 0.5

    path = tmp_path / "atrous.tflite"
    path.write_bytes(convert(atrous, input_shape=(1, 15, 15, 3)))
    assert {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"} <= operator_names(path)
    images = pixel_images(3, seed=16, size=15)
    reference, _ = interpreter_scores(path, images, float_range=(-1.0, 1.0))
    ours = before_resize(from_tflite(path)).predict(images, verbose=0)
    assert ours.shape == reference.shape
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_int8_weights_through_dequantize_and_hybrid_convolution(tmp_path):
    """Dynamic-range quantisation (int8 weights, float activations, the ADE20K file's form): the
    depthwise filter passes a DEQUANTIZE (edited in: the interpreter then runs float kernels on the
    dequantised weights, so the import must match to float round-off); the CONV_2D reads its int8
    filter directly (the interpreter quantises its input on the fly: close, not equal)."""
    rng = np.random.default_rng(17)
    conv = rng.normal(size=(3, 3, 3, 128)).astype(np.float32)
    depthwise = rng.normal(size=(3, 3, 128, 1)).astype(np.float32)

    def hybrid(x):
        return tf.nn.depthwise_conv2d(tf.nn.relu(tf.nn.conv2d(x, conv, 1, "SAME")), depthwise, [1, 1, 1, 1], "SAME")

    module = tf.Module()
    module.f = tf.function(hybrid, input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    data = converter.convert()
    images = pixel_images(2, seed=18)

    only_dequantize = tmp_path / "dequantize.tflite"  # the depthwise alone, after a DEQUANTIZE
    expand = conv[1:2, 1:2]  # a 1×1 filter of 384 weights: too small to be quantised, stays float
    module.g = tf.function(lambda x: tf.nn.depthwise_conv2d(tf.nn.conv2d(x, expand, 1, "SAME"), depthwise,
                                                            [1, 1, 1, 1], "SAME"),
                           input_signature=[tf.TensorSpec((1, SIZE, SIZE, 3), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.g.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    only_dequantize.write_bytes(edit_flatbuffer(converter.convert(), with_int8_dequantize))
    details = tf.lite.Interpreter(str(only_dequantize)).get_tensor_details()
    assert "DEQUANTIZE" in operator_names(only_dequantize)
    assert any(d["dtype"] == np.int8 and len(d["quantization_parameters"]["scales"]) == 128 for d in details)
    reference, _ = interpreter_scores(only_dequantize, images)
    np.testing.assert_allclose(from_tflite(only_dequantize, float_input_range=(0.0, 1.0)).predict(images, verbose=0),
                               reference, atol=1e-4)

    full = tmp_path / "hybrid.tflite"
    full.write_bytes(edit_flatbuffer(data, with_int8_dequantize))
    reference, _ = interpreter_scores(full, images)
    ours = from_tflite(full, float_input_range=(0.0, 1.0)).predict(images, verbose=0)
    difference = float(np.abs(ours - reference).max())
    print(f"hybrid int8: max |difference| {difference:.3g} of a range {np.ptp(reference):.3g}")
    assert difference <= 0.02 * np.ptp(reference)


def test_new_layers_round_trip_through_the_model_file(binary_file, tmp_path):
    """TransposeConv, SpaceToBatch, BatchToSpace and the Activation layers rebuild from their
    config in safe mode (the zoo's .model.npz) and compute the same."""
    def atrous_binary(x):
        weights = tiny_binary_weights()
        y = tf.space_to_batch_nd(tiny_binary_segmenter(weights, x, final_sigmoid=False), [2, 2], [[0, 0], [0, 0]])
        return tf.sigmoid(tf.batch_to_space(tf.nn.relu(y), [2, 2], [[0, 0], [0, 0]]))

    path = tmp_path / "atrous_binary.tflite"
    path.write_bytes(convert(atrous_binary))
    model = from_tflite(path, output="probabilities", float_input_range=(0.0, 1.0))
    images = pixel_images(2, seed=19)
    loaded, _ = read_model_file(write_model_file(model, tmp_path / "m.npz", "float32"))
    np.testing.assert_array_equal(loaded.predict(images, verbose=0), model.predict(images, verbose=0))
    assert {"TransposeConv", "SpaceToBatch", "BatchToSpace"} <= {type(layer).__name__ for layer in loaded.layers}


# ---------------------------------------------------------------------------------------------
# Clear errors
# ---------------------------------------------------------------------------------------------

def test_unsupported_operator_is_named_with_its_position(tmp_path):
    weights = tiny_weights()
    path = tmp_path / "tanh.tflite"
    path.write_bytes(convert(lambda x: tiny_segmenter(weights, x, extra=lambda t: tf.concat([tf.tanh(t)], 3))))
    tanh = next(op for op in tf.lite.Interpreter(str(path))._get_ops_details() if op["op_name"] == "TANH")
    tensor = next(t["name"] for t in tf.lite.Interpreter(str(path)).get_tensor_details()
                  if t["index"] == tanh["outputs"][0])
    with pytest.raises(GsalInputError) as error:
        from_tflite(path)
    message = str(error.value)
    print("unsupported operator:", message[:200])
    assert "TANH" in message and f"op index {tanh['index']}" in message and tensor in message


def test_unsupported_operator_in_a_binary_network_is_one_line_that_says_what_to_do(tmp_path):
    weights = tiny_binary_weights()
    path = tmp_path / "binary_tanh.tflite"
    path.write_bytes(convert(lambda x: tf.sigmoid(tf.tanh(tiny_binary_segmenter(weights, x, final_sigmoid=False)))))
    with pytest.raises(GsalInputError) as error:
        from_tflite(path, output="probabilities")
    message = str(error.value)
    print("unsupported operator (binary):", message[:240])
    assert "\n" not in message and "operator TANH" in message and "binary_tanh.tflite" in message
    assert "Keras model or SavedModel instead" in message and "HARD_SWISH" in message


def test_one_channel_argmax_is_not_a_segmentation_network(tmp_path):
    weights = tiny_binary_weights()
    path = tmp_path / "argmax1.tflite"
    path.write_bytes(convert(lambda x: tf.argmax(tiny_binary_segmenter(weights, x, final_sigmoid=False), axis=3)))
    with pytest.raises(GsalInputError, match="not a segmentation network"):
        from_tflite(path)


def test_not_a_tflite_file_or_corrupt(tmp_path, tiny_files):
    random_bytes = tmp_path / "random.tflite"
    random_bytes.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(tiny_files["float"].read_bytes()[:2000])
    for path in (random_bytes, truncated, tmp_path / "missing.tflite"):
        with pytest.raises(GsalInputError, match="TensorFlow Lite|TFLite|corrupt"):
            from_tflite(path)


def test_classifier_is_not_a_segmentation_network(tmp_path):
    weights = tiny_weights()

    def classifier(x):
        return tf.reduce_mean(tf.nn.conv2d(x, weights["conv_stride2"], 2, "SAME"), axis=[1, 2])

    path = tmp_path / "classifier.tflite"
    path.write_bytes(convert(classifier))
    with pytest.raises(GsalInputError, match="not a segmentation network"):
        from_tflite(path)


def test_the_imported_model_declares_its_output_to_the_explainers(tiny_files):
    """from_tflite's default is logits: the explainers must read them as logits (softmax), not as
    probabilities, and explain the same scores as the model imported with probabilities."""
    logits_model = from_tflite(tiny_files["float"])
    probs_model = from_tflite(tiny_files["float"], output="probabilities")
    assert logits_model.gsal_output == "logits" and probs_model.gsal_output == "probabilities"
    images = pixel_images(2, seed=3)
    masks = np.zeros(images.shape[:3], np.float32)
    masks[:, 6:10, 6:10] = 1
    a = gs.GridSaliency(logits_model, grid_size=4, iterations=5).explain(images, masks, 1)
    b = gs.GridSaliency(probs_model, grid_size=4, iterations=5).explain(images, masks, 1)
    assert a.params["output"] == "logits" and b.params["output"] == "probabilities"
    np.testing.assert_allclose(a.original_score, b.original_score, rtol=1e-5)
    np.testing.assert_allclose(a.saliency, b.saliency, atol=1e-5)


def test_bad_output_option(tiny_files):
    with pytest.raises(GsalInputError, match="output"):
        from_tflite(tiny_files["float"], output="argmax")


# ---------------------------------------------------------------------------------------------
# The real DeepLab files of ../shared/data/real
# ---------------------------------------------------------------------------------------------

PASCAL_IMAGES = ("airplane.jpg", "bike_riders.jpg", "bird_segmentation.png", "cow.jpg", "dog_segmentation.png",
                 "sheep.jpg")
CITYSCAPES_IMAGES = ("cityscapes_frame.jpg", "cityscapes_segmentation.png")


@pytest.fixture(scope="module")
def real() -> Path:
    if not (REAL / "models").is_dir():
        pytest.skip(f"real models not available ({REAL} is absent)")
    return REAL


def load_resized(path: Path, size: tuple[int, int]) -> np.ndarray:
    """An RGB photo resized to the network input (INTER_AREA), as floats in [0,1] that are exact 8-bit values."""
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return (cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA) / 255.0).astype(np.float32)


def image_path(real: Path, name: str) -> Path:
    return real / ("research-only" if name.startswith("cityscapes") else "images") / name


def test_real_float_model_matches_the_interpreter(real):
    path = real / "models" / "deeplabv3_257_mv_gpu.tflite"
    model = from_tflite(path)
    assert model.tflite_info.input_size == (257, 257) and model.tflite_info.num_classes == 21
    assert model.tflite_info.input_range == (-1.0, 1.0)
    assert "MobilenetV2_Conv_Relu6" in {layer.name for layer in model.layers}
    images = np.stack([load_resized(image_path(real, name), (257, 257)) for name in PASCAL_IMAGES])
    _, reference = interpreter_run(path, images)
    logits = model.predict(images, verbose=0)
    for name, ours, theirs in zip(PASCAL_IMAGES, logits, reference):
        difference = float(np.abs(ours - theirs).max())
        print(f"{path.name} {name}: max |logit difference| = {difference:.3g}")
        assert difference <= 1e-3


@pytest.mark.parametrize("file, names", [
    ("deeplabv3_mnv2_pascal_quant.tflite", PASCAL_IMAGES),
    ("deeplabv3_mnv2_dm05_pascal_quant.tflite", PASCAL_IMAGES),
    ("deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite", CITYSCAPES_IMAGES),
])
def test_real_8bit_model_agrees_with_the_interpreter(real, file, names):
    """The default import simulates the 8-bit activations: ≥ 99 % arg-max agreement on every photo
    (measured: 100 % on each, ``benchmarks/results/tflite-agreement.json``)."""
    path = real / "models" / file
    model = from_tflite(path)
    info = model.tflite_info
    assert info.input_type == "uint8" and info.input_quantization == (1 / 128, 128) and info.argmax_dropped
    assert info.preprocessing == "real = 0.0078125·(255·x − 128)"
    assert info.activation_type == "uint8" and info.quantized_activations
    for name in names:
        image = load_resized(image_path(real, name), info.input_size)[None]
        argmax, _ = interpreter_run(path, image)
        agreement = float((model(image).numpy().argmax(-1) == argmax).mean())
        print(f"{file} {name}: arg-max agreement with the interpreter {agreement:.4f}")
        assert agreement >= 0.99


def test_real_cityscapes_network_needs_its_8bit_activations(real):
    """The Cityscapes network amplifies one-step rounding differences: on the bike riders photo
    the float import agrees with the interpreter on 90.0 % of the pixels, the simulated 8-bit
    activations on ≥ 99 % (measured 100 %)."""
    path = real / "models" / "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
    image = load_resized(real / "images" / "bike_riders.jpg", (513, 513))[None]
    argmax, _ = interpreter_run(path, image)
    agreement = {}
    for simulated in (True, False):
        model = from_tflite(path, quantize_activations=simulated)
        agreement[simulated] = float((model(image).numpy().argmax(-1) == argmax).mean())
    print(f"Cityscapes network, bike_riders.jpg: arg-max agreement with the interpreter, simulated 8-bit "
          f"activations {agreement[True]:.4f}, float activations {agreement[False]:.4f}")
    assert agreement[True] >= 0.99 and agreement[False] < agreement[True]


@pytest.mark.parametrize("file, image, mask, minimum", [
    ("deeplabv3_mnv2_pascal_quant.tflite", "bird_segmentation.png", "images/bird_segmentation_mask.png", 0.95),
    ("deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite", "cityscapes_segmentation.png",
     "research-only/cityscapes_segmentation_mask.png", 0.90),
])
def test_real_8bit_model_agrees_with_the_reference_mask(real, file, image, mask, minimum):
    """The reference masks are the 8-bit networks' own outputs (class ids; for Cityscapes train ids,
    which are the network's output indices — the labels file's line k+1)."""
    model = from_tflite(real / "models" / file)
    size = model.tflite_info.input_size
    reference = cv2.imread(str(real / mask), cv2.IMREAD_UNCHANGED)
    assert reference.shape == size
    prediction = model(load_resized(image_path(real, image), size)[None]).numpy()[0].argmax(-1)
    agreement = float((prediction == reference).mean())
    print(f"{file} {image}: agreement with the reference mask {agreement:.4f}")
    assert agreement >= minimum


def test_inspect_real_files(real):
    files = sorted((real / "models").glob("deeplab*.tflite"))
    assert len(files) == 5, files  # the shared folder's five DeepLab files (README of ../shared/data/real)
    for path in files:
        info = inspect_tflite(path)
        operators = dict(info.operators)
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_BILINEAR", "CONCATENATION"} <= set(operators)
        assert info.argmax_dropped == ("ARG_MAX" in operators)
        print(f"{path.name}: {info.input_size} {info.input_type}, {info.num_classes} classes, {info.preprocessing}, "
              f"operators {operators}")


SELFIE_FILES = ("selfie_segmentation.tflite", "selfie_segmentation_landscape.tflite")
SHARED_PHOTOS = ("airplane.jpg", "bike_riders.jpg", "bird_segmentation.png", "cow.jpg", "dog_segmentation.png",
                 "sheep.jpg")
CAMVID_FRAMES = 10


def camvid_frames(real: Path, n: int = CAMVID_FRAMES) -> list[Path]:
    """The first ``n`` CamVid test frames (sorted by name), read where they are (research-only)."""
    frames = sorted((real / "research-only" / "camvid" / "test").glob("*.png"))[:n]
    if len(frames) < n:
        pytest.skip(f"CamVid test frames not available under {real / 'research-only'}")
    return frames


@pytest.mark.parametrize("file", SELFIE_FILES)
def test_real_mediapipe_selfie_segmenter_matches_the_interpreter(real, file):
    """The sigmoid probability of "person" (N,H,W,1), input RGB in [0, 1]: max |difference| ≤ 1e-3
    on every shared photo."""
    path = real / "models" / file
    model = from_tflite(path, output="probabilities", float_input_range=(0.0, 1.0))
    info = model.tflite_info
    assert info.num_classes == 1 and info.logistic_dropped and info.input_range == (0.0, 1.0)
    assert ("CUSTOM(Convolution2DTransposeBias)", 1) in info.operators and ("HARD_SWISH", 11) in info.operators
    images = np.stack([load_resized(real / "images" / name, info.input_size) for name in SHARED_PHOTOS])
    reference, _ = interpreter_scores(path, images)
    ours = model.predict(images, verbose=0)
    assert ours.shape == (len(SHARED_PHOTOS), *info.input_size, 1)
    for name, p, q in zip(SHARED_PHOTOS, ours, reference):
        difference, agreement = float(np.abs(p - q).max()), float(((p > 0.5) == (q > 0.5)).mean())
        print(f"{file} {name}: max |probability difference| {difference:.2e}, person (p > 0.5) agreement "
              f"{agreement:.5f}, person share {float((q > 0.5).mean()):.3f}")
        assert difference <= 1e-3


def test_real_ade20k_deeplab_agrees_with_the_interpreter(real):
    """DeepLabv3 MobileNetV2 ADE20K (151 classes; hybrid int8 weights; dilated convolutions as
    SPACE_TO_BATCH_ND / DEPTHWISE_CONV_2D / BATCH_TO_SPACE_ND): ≥ 95 % arg-max agreement on every
    shared photo and on ten CamVid frames. The model takes [0, 1] and maps it to the file's [−1, 1]."""
    path = real / "models" / "deeplabv3_mnv2_ade20k.tflite"
    model = from_tflite(path)
    info = model.tflite_info
    assert (info.num_classes, info.input_size, info.input_range) == (151, (513, 513), (-1.0, 1.0))
    assert {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "DEQUANTIZE"} <= dict(info.operators).keys()
    photos = [real / "images" / name for name in SHARED_PHOTOS] + camvid_frames(real)
    for photo in photos:
        image = load_resized(photo, info.input_size)[None]
        theirs, _ = interpreter_scores(path, image, float_range=(-1.0, 1.0))
        logits = model(image).numpy()
        agreement = float((logits.argmax(-1) == theirs.argmax(-1)).mean())
        print(f"ade20k {photo.name}: arg-max agreement with the interpreter {agreement:.4f}, "
              f"max |logit difference| {float(np.abs(logits - theirs).max()):.3g}")
        assert agreement >= 0.95


def test_real_ade20k_expects_minus_one_to_one(real):
    """Fed [0, 1] directly, the file calls a street wall and bathtub; through the model's own
    preprocessing (real = 2·x − 1) it sees building, sky and road, as the interpreter does on [−1, 1]."""
    labels = ["other"] + [line.split("\t")[1].strip() for line in
                          (real / "models" / "ade20k_labels.txt").read_text().splitlines()]
    path = real / "models" / "deeplabv3_mnv2_ade20k.tflite"
    image = load_resized(camvid_frames(real, 1)[0], (513, 513))[None]

    def top(scores, n=3):
        ids, counts = np.unique(scores[0].argmax(-1), return_counts=True)
        return [labels[i] for i in ids[np.argsort(-counts)][:n]]

    direct, _ = interpreter_scores(path, image, float_range=(0.0, 1.0))
    ours = from_tflite(path)(image).numpy()
    print(f"ade20k on a CamVid frame: fed [0, 1] directly {top(direct, 4)}; imported model {top(ours)}")
    assert {"wall", "bathtub"} <= set(top(direct, 4)) and set(top(ours)) == {"building", "sky", "road"}


def test_inspect_real_selfie_files(real):
    for file in SELFIE_FILES:
        info = inspect_tflite(real / "models" / file)
        assert info.num_classes == 1 and info.logistic_dropped and not info.argmax_dropped


def test_real_ade20k_is_exact_where_the_interpreter_computes_in_float(real, tmp_path):
    """With every int8 filter of the file routed through a DEQUANTIZE (edited in), the interpreter
    runs float kernels on the same dequantised weights, and the import matches it to float
    round-off: the arg-max differences above are the interpreter's on-the-fly 8-bit activations."""
    path = tmp_path / "ade20k_float_kernels.tflite"
    path.write_bytes(edit_flatbuffer((real / "models" / "deeplabv3_mnv2_ade20k.tflite").read_bytes(),
                                     int8_filters_through_dequantize(schema.BuiltinOperator.CONV_2D,
                                                                     schema.BuiltinOperator.DEPTHWISE_CONV_2D)))
    image = load_resized(real / "images" / "sheep.jpg", (513, 513))[None]
    theirs, _ = interpreter_scores(path, image, float_range=(-1.0, 1.0))
    ours = from_tflite(path)(image).numpy()
    difference = float(np.abs(ours - theirs).max())
    print(f"ade20k with float kernels, sheep.jpg: max |logit difference| {difference:.3g}, arg-max agreement "
          f"{float((ours.argmax(-1) == theirs.argmax(-1)).mean()):.5f}")
    assert difference <= 1e-3
