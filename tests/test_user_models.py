"""The models users own: SavedModels of both kinds, keras-hub segmenters with their preprocessor,
custom layers and user code, one-channel (binary) segmenters, exports that name their output kind,
and the convergence flag of a result."""

import subprocess
import sys
import textwrap

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_cli.main import app
from gsal_tf.model_calls import detect_output, resolve_output
from gsal_tf.export import export_explainer, export_model
from gsal_tf.loading import load_model
from gsal_tf.models.known_context import known_context_image, known_context_model

runner = CliRunner()
SHAPE = (32, 32, 3)
PATCHES = [(0, 0, 8, 8)]
TARGET = (12, 12, 20, 20)


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _request():
    mask = np.zeros(SHAPE[:2], np.float32)
    mask[TARGET[0]:TARGET[2], TARGET[1]:TARGET[3]] = 1
    return mask


@pytest.fixture(scope="module")
def keras_case(tmp_path_factory):
    """A known-context Keras model, its image and request written as files, and both kinds of
    SavedModel of it."""
    d = tmp_path_factory.mktemp("user-models")
    model = known_context_model(SHAPE, PATCHES, TARGET, num_classes=3)
    model.save(d / "model.keras")
    model.export(str(d / "exported"), verbose=False)          # Keras 3 model.export()
    tf.saved_model.save(model, str(d / "tf_saved"))           # tf.saved_model.save
    image = known_context_image(SHAPE, PATCHES, seed=1)
    cv2.imwrite(str(d / "image.png"), cv2.cvtColor((image * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(d / "request.png"), (_request() * 255).astype(np.uint8))
    return {"dir": d, "model": model, "image": cv2.cvtColor(cv2.imread(str(d / "image.png")), cv2.COLOR_BGR2RGB).astype(np.float32) / 255}


# --------------------------------------------------------------------------- SavedModels


@pytest.mark.parametrize("kind", ["exported", "tf_saved"])
def test_saved_models_explain_as_the_keras_model_in_the_api(keras_case, kind):
    import gc

    loaded = load_model(keras_case["dir"] / kind)
    gc.collect()  # the loaded object must live as long as the model gsal returns
    images, masks = keras_case["image"][None], _request()[None]
    reference = gs.GridSaliency(keras_case["model"], iterations=30).explain(images, masks, [1])
    result = gs.GridSaliency(loaded, iterations=30).explain(images, masks, [1])
    assert reference.saliency.max() > 0.5 and reference.saliency.min() < 0.5  # a non-trivial map is compared
    np.testing.assert_allclose(result.saliency, reference.saliency, atol=1e-6)
    np.testing.assert_allclose(result.preserved_score, reference.preserved_score, atol=1e-6)


@pytest.mark.parametrize("kind", ["exported", "tf_saved"])
def test_saved_models_explain_as_the_keras_model_in_the_cli(keras_case, kind, tmp_path):
    d = keras_case["dir"]
    common = (d / "image.png", "--request", d / "request.png", "--class", 1, "--iterations", 30)
    ref = run("explain", *common, "--model", d / "model.keras", "--out", tmp_path / "keras")
    res = run("explain", *common, "--model", d / kind, "--out", tmp_path / kind)
    assert ref.exit_code == 0 and res.exit_code == 0, res.output
    np.testing.assert_allclose(np.load(tmp_path / kind / "saliency.npy"), np.load(tmp_path / "keras" / "saliency.npy"), atol=1e-6)


def test_a_saved_model_without_an_image_signature_is_one_clear_line(tmp_path, keras_case):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    module.f = tf.function(lambda text: {"out": tf.strings.length(text)}, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "texts"), signatures={"serving_default": module.f})
    res = run("explain", keras_case["dir"] / "image.png", "--model", tmp_path / "texts", "--request-point", "15,15", "--out", tmp_path / "out")
    assert res.exit_code == 2
    assert "has no image signature" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- one-channel segmenters


def _binary_models():
    """The known-context model with two classes, and the same network with one output channel:
    the foreground's probability p, or its logit log(p / (1 - p))."""
    two = known_context_model(SHAPE, PATCHES, TARGET, num_classes=2)
    foreground = two.output[..., 1:2]
    probability = keras.Model(two.input, foreground)
    clipped = keras.ops.clip(foreground, 1e-6, 1.0 - 1e-6)  # a finite logit where p saturates
    logit = keras.Model(two.input, keras.ops.log(clipped) - keras.ops.log(1.0 - clipped))
    return two, probability, logit


@pytest.mark.parametrize("method", ["grid_saliency", "vanilla_gradients", "occlusion", "rise"])
def test_one_channel_segmenters_are_explained_as_background_and_foreground(method):
    two, probability, logit = _binary_models()
    image = known_context_image(SHAPE, PATCHES, seed=1)[None]
    masks = _request()[None]
    options = {"iterations": 30} if method == "grid_saliency" else {}
    reference = gs.make_explainer(method, two, **options).explain(image, masks, [1])
    for model, output in ((probability, "probabilities"), (logit, "logits")):
        explainer = gs.make_explainer(method, model, output=output, **options)
        assert explainer.num_classes(image) == 2
        np.testing.assert_allclose(explainer.predict(image), two.predict(image, verbose=0), atol=1e-5)
        result = explainer.explain(image, masks, [1])
        np.testing.assert_allclose(result.saliency, reference.saliency, atol=1e-4)
    with pytest.raises(gs.GsalInputError, match="out of range: the model has 2 classes"):
        gs.GridSaliency(probability).explain(image, masks, [2])


def test_the_output_kind_is_detected_or_asked_for():
    two, probability, logit = _binary_models()
    assert detect_output(two, SHAPE) == "probabilities"
    assert detect_output(logit, SHAPE) == "logits"
    assert detect_output(probability, SHAPE) is None  # one channel inside [0, 1]: cannot tell
    with pytest.raises(gs.GsalInputError, match="--output probabilities or --output logits"):
        resolve_output(probability, SHAPE)
    assert resolve_output(probability, SHAPE, "probabilities") == "probabilities"
    # an untrained network whose logits are all 0 on a black image still reads as logits
    zero = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(4, 3, padding="same", use_bias=False)])
    assert np.allclose(zero(np.zeros((1, *SHAPE), np.float32)), 0)
    assert detect_output(zero, SHAPE) == "logits"


# --------------------------------------------------------------------------- custom layers, user code


CUSTOM_LAYER = textwrap.dedent("""
    import keras

    @keras.saving.register_keras_serializable(package="user")
    class ScaledConv(keras.layers.Conv2D):
        def call(self, x):
            return super().call(x * 2.0)
""")


@pytest.fixture(scope="module")
def custom_files(tmp_path_factory):
    """A .keras file with a registered custom layer (written by another process, so this one has
    never imported the layer) and one with a Lambda layer."""
    d = tmp_path_factory.mktemp("custom")
    (d / "my_layers.py").write_text(CUSTOM_LAYER)
    code = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(d)!r})
        import keras, my_layers
        i = keras.Input({SHAPE}); o = my_layers.ScaledConv(3, 1, activation="softmax")(i)
        keras.Model(i, o).save({str(d / "custom.keras")!r})
        i = keras.Input({SHAPE}); o = keras.layers.Lambda(lambda x: x * 2.0)(i)
        keras.Model(i, keras.layers.Conv2D(3, 1, activation="softmax")(o)).save({str(d / "lambda.keras")!r})
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return d


def _forget_custom_layer():
    """Unregister the custom layer a test before imported: each test starts as a fresh process."""
    keras.saving.get_custom_objects().pop("user>ScaledConv", None)


def test_custom_layers_need_their_module_and_say_so(custom_files):
    _forget_custom_layer()
    with pytest.raises(gs.GsalInputError, match=r"custom object 'user>ScaledConv'.*--custom-module"):
        load_model(custom_files / "custom.keras")
    model = load_model(custom_files / "custom.keras", custom_modules=[custom_files / "my_layers.py"])
    assert type(model.layers[-1]).__name__ == "ScaledConv"
    with pytest.raises(gs.GsalInputError, match="cannot import custom module .*nope.py: no such file"):
        load_model(custom_files / "custom.keras", custom_modules=[custom_files / "nope.py"])


def test_lambda_layers_need_an_explicit_unsafe_opt_in(custom_files):
    with pytest.raises(gs.GsalInputError, match="Lambda layer.*--unsafe-deserialization"):
        load_model(custom_files / "lambda.keras")
    assert load_model(custom_files / "lambda.keras", safe_mode=False).output_shape == (None, *SHAPE)


# --------------------------------------------------------------------------- convergence


def test_a_result_says_whether_its_mask_converged():
    model = known_context_model(SHAPE, PATCHES, TARGET, num_classes=3)
    image = known_context_image(SHAPE, PATCHES, seed=1)[None]
    short = gs.GridSaliency(model, iterations=20).explain(image, _request()[None], [1])
    long = gs.GridSaliency(model, iterations=200).explain(image, _request()[None], [1])
    assert not short.converged[0]       # 20 steps of 0.03 from M = 1: every cell still on its way
    assert long.converged[0]


# --------------------------------------------------------------------------- keras-hub


def _keras_hub_segmenters():
    """keras-hub DeepLabV3 and SegFormer built from their constructors (random weights, no
    download), each with an ImageNet-style preprocessor as the presets ship."""
    keras_hub = pytest.importorskip("keras_hub")
    keras.utils.set_random_seed(0)
    imagenet = dict(scale=[1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)], offset=[-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225])
    encoder = keras_hub.models.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 16, 16],
                                              stackwise_num_blocks=[1, 1, 1], stackwise_num_strides=[1, 2, 2], block_type="basic_block",
                                              use_pre_activation=False, image_shape=(None, None, 3))
    backbone = keras_hub.models.DeepLabV3Backbone(image_encoder=encoder, low_level_feature_key="P2", spatial_pyramid_pooling_key="P4",
                                                 upsampling_size=4, dilation_rates=[2, 4], projection_filters=8)
    converter = keras_hub.layers.DeepLabV3ImageConverter(image_size=(64, 64), **imagenet)
    deeplab = keras_hub.models.DeepLabV3ImageSegmenter(
        backbone=backbone, num_classes=3, preprocessor=keras_hub.models.DeepLabV3ImageSegmenterPreprocessor(image_converter=converter))
    mit = keras_hub.models.MiTBackbone(layerwise_depths=[1, 1], image_shape=(64, 64, 3), hidden_dims=[8, 16], num_layers=2,
                                       layerwise_num_heads=[1, 2], layerwise_sr_ratios=[4, 2], max_drop_path_rate=0.0,
                                       layerwise_patch_sizes=[7, 3], layerwise_strides=[4, 2])
    converter = keras_hub.layers.SegFormerImageConverter(image_size=(64, 64), **imagenet)
    segformer = keras_hub.models.SegFormerImageSegmenter(
        backbone=keras_hub.models.SegFormerBackbone(image_encoder=mit, projection_filters=16), num_classes=3,
        preprocessor=keras_hub.models.SegFormerImageSegmenterPreprocessor(image_converter=converter))
    return {"deeplabv3": deeplab, "segformer": segformer}


@pytest.fixture(scope="module")
def hub_models():
    return _keras_hub_segmenters()


@pytest.mark.parametrize("name", ["deeplabv3", "segformer"])
def test_keras_hub_segmenters_are_explained_through_their_preprocessor(hub_models, name):
    seg = hub_models[name]
    pixels = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)  # what predict() takes
    reference = tf.nn.softmax(seg.predict(pixels, verbose=0), axis=-1).numpy()
    explainer = gs.GridSaliency(seg, iterations=10)
    assert explainer.output == "logits"  # detected from the segmenter's activation
    seen = explainer.predict(pixels / 255.0)  # gsal's images are in [0, 1]
    if seen.shape != reference.shape:  # SegFormer predicts at 1/4 resolution: gsal resizes to the input
        reference = tf.image.resize(reference, seen.shape[1:3], method="bilinear").numpy()
    assert (seen.argmax(-1) == reference.argmax(-1)).mean() == 1.0
    assert np.abs(seen - reference).max() <= 1e-5
    # without the preprocessor the network sees other pixels: this is what the wrapper is for
    raw = tf.nn.softmax(tf.image.resize(seg(pixels / 255.0), (64, 64)), axis=-1).numpy()
    assert (raw.argmax(-1) == seen.argmax(-1)).mean() < 0.99
    mask = np.zeros((2, 64, 64), np.float32)
    mask[:, 24:40, 24:40] = 1
    result = explainer.explain(pixels / 255.0, mask, [1, 2])
    assert result.saliency.shape == (2, 64, 64) and np.isfinite(result.preserved_score).all()


def test_a_keras_hub_file_round_trips_and_exports(hub_models, tmp_path):
    seg = hub_models["deeplabv3"]
    seg.save(tmp_path / "seg.keras")
    loaded = load_model(tmp_path / "seg.keras")
    images = np.random.default_rng(1).random((1, 64, 64, 3), np.float32)
    np.testing.assert_allclose(gs.GridSaliency(loaded).predict(images), gs.GridSaliency(seg).predict(images), atol=1e-5)
    _check_export(seg, tmp_path, images)


# --------------------------------------------------------------------------- exports


def _check_export(model, folder, images, output=None, mask=None, class_id=1):
    """``gsal export`` of ``model``'s file vs the in-process explainer: saliency within 1e-5, in a
    process that never imports gsal. The request is ``mask`` (N,H,W), else the centre third."""
    explainer = gs.GridSaliency(model, iterations=20, output=output)
    if mask is None:
        mask = np.zeros(images.shape[:3], np.float32)
        mask[:, images.shape[1] // 3: 2 * images.shape[1] // 3, images.shape[2] // 3: 2 * images.shape[2] // 3] = 1
    export_explainer(explainer, folder / "explainer", images.shape[1:])
    export_model(model, folder / "segmentation", images.shape[1:])
    np.save(folder / "images.npy", images)
    np.save(folder / "masks.npy", mask)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np, tensorflow as tf
        d = {str(folder)!r}
        loaded = tf.saved_model.load(d + "/explainer")
        out = loaded.signatures["serving_default"](images=tf.constant(np.load(d + "/images.npy")),
                                                   request_masks=tf.constant(np.load(d + "/masks.npy")),
                                                   class_ids=tf.constant([{class_id}] * {len(images)}, tf.int32))
        np.save(d + "/saliency.npy", out["saliency"].numpy())
        assert not any(m.startswith("gsal") for m in sys.modules), "gsal was imported"
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = explainer.explain(images, mask, [class_id] * len(images))
    np.testing.assert_allclose(np.load(folder / "saliency.npy"), reference.saliency, atol=1e-5)


def test_gsal_export_names_the_output_kind_and_refuses_to_guess(tmp_path, keras_case):
    _, probability, logit = _binary_models()
    probability.save(tmp_path / "binary.keras")
    res = run("export", tmp_path / "binary.keras", tmp_path / "out")
    assert res.exit_code == 2 and "--output probabilities or --output logits" in res.output
    assert not (tmp_path / "out").exists()
    res = run("export", tmp_path / "binary.keras", tmp_path / "out", "--output", "probabilities", "--iterations", 10)
    assert res.exit_code == 0, res.output
    assert "probabilities" in res.output and (tmp_path / "out" / "explainer" / "saved_model.pb").is_file()
    # an untrained logits network whose scores are all 0 on a black image is exported as logits
    zero = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(3, 3, padding="same", use_bias=False)])
    zero.save(tmp_path / "zero.keras")
    res = run("export", tmp_path / "zero.keras", tmp_path / "zero", "--iterations", 10)
    assert res.exit_code == 0 and "logits" in res.output, res.output


def test_exported_explainers_of_a_zoo_model_and_a_binary_model_equal_in_process(tmp_path):
    from gsal_tf.zoo.demo import demo_sample

    sample = demo_sample()
    (tmp_path / "zoo").mkdir()
    _check_export(gs.zoo.load("tmnist-mobilenetv2-strong"), tmp_path / "zoo", sample["image"][None].astype(np.float32))
    _, _, logit = _binary_models()
    (tmp_path / "binary").mkdir()
    _check_export(logit, tmp_path / "binary", known_context_image(SHAPE, PATCHES, seed=1)[None], output="logits")


def test_a_model_that_rescales_its_own_input_gets_a_pixel_range_hint():
    from gsal_tf.loading import pixel_range_hint

    rescaling = keras.Sequential([keras.Input(SHAPE), keras.layers.Rescaling(1 / 255), keras.layers.Conv2D(3, 1, activation="softmax")])
    plain = keras.Sequential([keras.Input(SHAPE), keras.layers.Conv2D(3, 1, activation="softmax")])
    assert "--pixel-scale 1" in pixel_range_hint(rescaling, 1 / 255)
    assert pixel_range_hint(rescaling, 1.0) is None       # fed 0-255: right
    assert pixel_range_hint(plain, 1 / 255) is None


def test_compare_backbones_reads_a_photo_at_the_pixel_scale_and_warns_without_it(tmp_path):
    # Two 0-255 networks (their own Rescaling(1/255) first), a photo of another size (letterboxed):
    # at --pixel-scale 1 each explains as the same network on [0, 1] does; without it, a warning.
    image = known_context_image(SHAPE, PATCHES, seed=1)
    cv2.imwrite(str(tmp_path / "photo.png"), cv2.cvtColor((image[4:-4] * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))
    plain, wide = [], []
    for name, patches in (("a", PATCHES), ("b", PATCHES[:1])):
        net = known_context_model(SHAPE, patches, TARGET, num_classes=3)
        net.save(tmp_path / f"{name}.keras")
        inputs = keras.Input(SHAPE)
        keras.Model(inputs, net(keras.layers.Rescaling(1 / 255)(inputs))).save(tmp_path / f"{name}-255.keras")
        plain.append(str(tmp_path / f"{name}.keras"))
        wide.append(str(tmp_path / f"{name}-255.keras"))
    mask = np.zeros((SHAPE[0] - 8, SHAPE[1]), np.uint8)
    mask[TARGET[0] - 4:TARGET[2] - 4, TARGET[1]:TARGET[3]] = 255
    cv2.imwrite(str(tmp_path / "request.png"), mask)
    args = ["compare-backbones", tmp_path / "photo.png", "--request", tmp_path / "request.png", "--class", 1, "--grid", 4, "--iterations", 10]
    ref = run(*args, "--models", ",".join(plain), "--out", tmp_path / "ref")
    assert ref.exit_code == 0 and "warning" not in ref.output, ref.output
    scaled = run(*args, "--models", ",".join(wide), "--pixel-scale", 1, "--out", tmp_path / "scaled")
    assert scaled.exit_code == 0 and "warning" not in scaled.output, scaled.output
    for a, b in (("a", "a-255"), ("b", "b-255")):
        np.testing.assert_allclose(np.load(tmp_path / "scaled" / f"saliency_{b}.npy"), np.load(tmp_path / "ref" / f"saliency_{a}.npy"), atol=1e-4)
    warned = run(*args, "--models", ",".join(wide), "--out", tmp_path / "warned")
    text = " ".join(warned.output.split())
    assert warned.exit_code == 0 and "warning: a-255:" in text and "warning: b-255:" in text and "pass --pixel-scale 1" in text


def test_the_cli_imports_a_custom_module_or_says_which_to_give(custom_files, keras_case, tmp_path):
    _forget_custom_layer()
    common = (keras_case["dir"] / "image.png", "--model", custom_files / "custom.keras", "--request", keras_case["dir"] / "request.png",
              "--class", 1, "--iterations", 10)
    res = run("explain", *common, "--out", tmp_path / "without")
    assert res.exit_code == 2 and "user>ScaledConv" in res.output and "--custom-module" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "without").exists()
    res = run("explain", *common, "--custom-module", custom_files / "my_layers.py", "--out", tmp_path / "with")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "with" / "saliency.npy").is_file()


def test_a_tflite_import_exports_an_explainer_equal_to_in_process(tmp_path):
    """A shipped TFLite import (the float PASCAL network): exported explainer vs in-process, on
    the shipped CC0 photo letterboxed to its input, the riders (person) as the request."""
    from gsal_tf.loading import fit_to_model, load_image

    model = gs.zoo.load("pascal-mobilenetv2-0.5-257")
    photo = load_image(gs.zoo.zoo_dir() / "samples" / "bike_riders_513.png")
    image, _ = fit_to_model(photo, model)
    person = (gs.GridSaliency(model).predict(image[None])[0].argmax(-1) == 15).astype(np.float32)
    assert person.sum() > 100
    _check_export(model, tmp_path, image[None].astype(np.float32), mask=person[None], class_id=15)
