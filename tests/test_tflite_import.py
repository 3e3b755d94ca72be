"""from_tflite: TFLite segmentation networks rebuilt as Keras models, checked against tf.lite.Interpreter.

Two kinds of tests:

- tiny networks converted on the fly (float, and full-integer quantised with per-channel weights,
  uint8 and int8 input) that use every supported operator; they run anywhere;
- the real DeepLab files of ``../shared/data/real`` (skipped when the folder is absent).

The measured numbers are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from gsal_tf.errors import GsalInputError
from gsal_tf.models.tflite_import import from_tflite, inspect_tflite

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
    path = tiny_files[kind]
    model = from_tflite(path)
    images = pixel_images(2, seed=5)
    argmax, reference = interpreter_run(path, images)
    logits = model.predict(images, verbose=0)
    difference = float(np.abs(logits - reference).max())
    agreement = float((logits.argmax(-1) == argmax).mean())
    print(f"tiny {kind}: max |logit difference| = {difference:.3g} of a logit range {np.ptp(reference):.3g}; "
          f"arg-max agreement {agreement:.4f}")
    assert difference <= 0.05 * np.ptp(reference)
    assert agreement >= 0.9
    info = model.tflite_info
    assert info.input_type == kind
    scale, zero_point = info.input_quantization
    qmin = 0 if kind == "uint8" else -128
    assert info.input_range == pytest.approx((scale * (qmin - zero_point), scale * (qmin + 255 - zero_point)))


@pytest.mark.parametrize("kind", ["uint8", "int8"])
def test_per_channel_weights_are_dequantised_per_channel(tiny_files, kind):
    """Each dequantised weight lies within half a quantisation step of the original float weight,
    with the step of its own output channel (symmetric int8: step = max|w_channel| / 127)."""
    path = tiny_files[kind]
    scales = [d["quantization_parameters"]["scales"] for d in tf.lite.Interpreter(str(path)).get_tensor_details()]
    assert max(len(s) for s in scales) > 1, "the converter did not quantise per channel"
    weights = tiny_weights()
    model = from_tflite(path)
    kernels = [layer.get_weights()[0] for layer in model.layers
               if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))]
    # Output channels: the last axis of a Conv2D kernel (kh,kw,C_in,C_out); the (C_in, M) pair of a
    # depthwise kernel (kh,kw,C_in,M).
    for key, reduced_axes in [("conv_stride2", (0, 1, 2)), ("conv_dilated", (0, 1, 2)), ("depthwise", (0, 1))]:
        original = weights[key]
        kernel = next(k for k in kernels if k.shape == original.shape)
        step = np.abs(original).max(axis=reduced_axes, keepdims=True) / 127.0
        assert np.all(np.abs(kernel - original) <= 0.5 * step + 1e-7), key


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
    path = real / "models" / file
    model = from_tflite(path)
    info = model.tflite_info
    assert info.input_type == "uint8" and info.input_quantization == (1 / 128, 128) and info.argmax_dropped
    assert info.preprocessing == "real = 0.0078125·(255·x − 128)"
    for name in names:
        image = load_resized(image_path(real, name), info.input_size)[None]
        argmax, _ = interpreter_run(path, image)
        agreement = float((model(image).numpy().argmax(-1) == argmax).mean())
        print(f"{file} {name}: arg-max agreement with the interpreter {agreement:.4f}")
        assert agreement >= 0.95


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
    for path in sorted((real / "models").glob("*.tflite")):
        info = inspect_tflite(path)
        operators = dict(info.operators)
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESIZE_BILINEAR", "CONCATENATION"} <= set(operators)
        assert info.argmax_dropped == ("ARG_MAX" in operators)
        print(f"{path.name}: {info.input_size} {info.input_type}, {info.num_classes} classes, {info.preprocessing}, "
              f"operators {operators}")
