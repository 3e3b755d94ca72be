"""The zoo's real pretrained networks (imported from TFLite releases) and class names in the CLI.

Without ``../shared``: the shipped entries load sha256-checked, have the recorded shapes, classes
and preprocessing, and still compute the arg-max written at build time on the shipped CC0 photo.
With ``../shared/data/real`` (skipped cleanly without it): each shipped entry agrees with
``tf.lite.Interpreter`` running the original file on the real photos (the numbers are printed:
``pytest -s``); for the one-channel MediaPipe selfie segmenter, its probability of "person"
(classes ``background``, ``person``) within 1e-3.
Also: the model file format, ``gsal zoo build`` of a tiny TFLite plan, the
name → id resolution and its CLI errors, ``gsal zoo list`` at 80 columns.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_cli.console import console
from gsal_cli.main import app
from gsal_tf.errors import IntegrityError
from gsal_tf.models.model_file import read_model_file, write_model_file
from gsal_tf.zoo.build_tflite import labels_of, photo_input, tflite_labels, tflite_output

pytestmark = [pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")]

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
MB = 1_000_000
PASCAL_PHOTOS = ("airplane.jpg", "bike_riders.jpg", "bird_segmentation.png", "cow.jpg", "dog_segmentation.png", "sheep.jpg")
#: name: (input shape, classes, dataset, the in-domain real photos of ../shared it is measured on)
REAL = {
    "pascal-mobilenetv2": ((513, 513, 3), 21, "PASCAL VOC 2012", PASCAL_PHOTOS),
    "pascal-mobilenetv2-0.5": ((513, 513, 3), 21, "PASCAL VOC 2012", PASCAL_PHOTOS),
    "pascal-mobilenetv2-0.5-257": ((257, 257, 3), 21, "PASCAL VOC 2012", PASCAL_PHOTOS),
    "cityscapes-mobilenet-edgetpu": ((513, 513, 3), 19, "Cityscapes", ("cityscapes_frame.jpg", "cityscapes_segmentation.png")),
}
#: The real zoo entries: name: (input shape, classes, dataset, weights dtype, photos of ../shared it is
#: measured on). The ADE20K network is also measured on ten CamVid frames (research-only, never shipped).
NEW_REAL = {
    "ade20k-mobilenetv2": ((513, 513, 3), 151, "ADE20K", "float32", PASCAL_PHOTOS),
    "mediapipe-selfie": ((256, 256, 3), 2, "MediaPipe selfie", "float16", PASCAL_PHOTOS),
}
runner = CliRunner()


def entries() -> dict:
    return {e.name: e for e in gs.zoo.list_models()}


# ---------------------------------------------------------------------------------------------
# The shipped entries, without ../shared
# ---------------------------------------------------------------------------------------------

def test_real_entries_record_source_licence_classes_and_measurements():
    shipped = entries()
    assert set(REAL) <= set(shipped)
    for name, (shape, k, dataset, photos) in REAL.items():
        e = shipped[name]
        assert (e.kind, e.dataset, e.licence, tuple(e.input_shape), e.num_classes) == ("tflite", dataset, "Apache-2.0", shape, k)
        assert e.bias is None and e.build["weights_dtype"] == "float16" and e.build["tflite"].endswith(".tflite")
        source = e.source
        assert source["url"] == f"https://raw.githubusercontent.com/{source['repository']}/{source['commit']}/{source['path']}"
        assert len(source["sha256"]) == 64 and source["licence"] == "Apache-2.0" and len(source["commit"]) == 40
        assert "[0, 1]" in e.preprocessing and "real = " in e.preprocessing
        assert "gsal zoo build --plan configs/zoo/real.toml" in e.training["command"]
        size = (gs.zoo.zoo_dir() / e.weights).stat().st_size
        assert size <= 5 * MB, f"{e.weights} is {size / MB:.2f} MB"
        f16_vs_f32 = e.metrics["argmax_agreement_float16_vs_float32"]
        f16_vs_tflite = e.metrics["argmax_agreement_float16_vs_tflite"]
        assert {Path(p).stem for p in photos} <= set(f16_vs_f32), name  # every in-domain photo was measured
        assert min(f16_vs_f32.values()) >= 0.99, name
        assert min(f16_vs_tflite[Path(p).stem] for p in photos) >= 0.95, name
    pascal, cityscapes = shipped["pascal-mobilenetv2"].class_names, shipped["cityscapes-mobilenet-edgetpu"].class_names
    assert (pascal[0], pascal[2], pascal[15], pascal[20]) == ("background", "bicycle", "person", "tvmonitor")
    # The output index is the Cityscapes train id: no "background" first.
    assert (cityscapes[0], cityscapes[11], cityscapes[18]) == ("road", "person", "bicycle")


@pytest.mark.parametrize("name", sorted(REAL))
def test_shipped_entry_loads_checked_and_reproduces_its_build_time_prediction(name):
    shape, k = REAL[name][:2]
    model = gs.zoo.load(name)  # sha256-checked, from the package only
    entry = model.zoo_entry
    assert gs.zoo.weights_path(entry).parent == gs.zoo.zoo_dir()
    assert model.tflite_info.preprocessing in entry.preprocessing and model.tflite_info.input_size == shape[:2]
    image = photo_input(gs.zoo.zoo_dir() / entry.reference["image"], shape[:2])
    probabilities = np.asarray(model(image, training=False))
    assert probabilities.shape == (1, *shape[:2], k)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    reference = cv2.imread(str(gs.zoo.zoo_dir() / entry.reference["argmax"]), cv2.IMREAD_UNCHANGED)
    agreement = float((probabilities[0].argmax(-1) == reference).mean())
    print(f"{name}: arg-max agreement with the build-time reference {agreement:.5f}")
    assert agreement >= 0.999


def test_from_preset_gives_the_real_entry_and_a_tampered_file_is_refused(tmp_path):
    from gsal_tf.models.presets import manifest_records, write_manifest

    name = "pascal-mobilenetv2-0.5"
    assert gs.models.from_preset(name).zoo_entry.name == name
    record = manifest_records(gs.zoo.zoo_dir())[name]
    data = bytearray((gs.zoo.zoo_dir() / record["weights"]).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / record["weights"]).write_bytes(bytes(data))
    write_manifest(tmp_path / "models.toml", {name: record})
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        gs.zoo.load(name, tmp_path / "models.toml")


def test_model_file_round_trip_is_float16_deterministic_and_safe(tmp_path):
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs))
    a, b = write_model_file(model, tmp_path / "a.npz"), write_model_file(model, tmp_path / "b.npz", metadata={})
    assert a.read_bytes() == b.read_bytes()  # same model, same bytes, same sha256
    loaded, metadata = read_model_file(a)
    assert metadata == {}
    with np.load(a, allow_pickle=False) as data:
        assert data["w000"].dtype == np.float16
    x = np.random.default_rng(0).random((1, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), atol=1e-2)
    lambda_model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    write_model_file(lambda_model, tmp_path / "lambda.npz")
    with pytest.raises(gs.GsalInputError, match="cannot rebuild"):  # safe mode: no code from a file
        read_model_file(tmp_path / "lambda.npz")


def classes_of(probabilities: np.ndarray) -> np.ndarray:
    """(N,H,W) classes of a zoo model's output: arg-max, or p > 0.5 (class 1) for one channel."""
    return labels_of(probabilities, threshold=0.5)


def test_ade20k_and_selfie_entries_record_source_licence_classes_and_measurements():
    shipped = entries()
    for name, (shape, k, dataset, dtype, photos) in NEW_REAL.items():
        e = shipped[name]
        assert (e.kind, e.dataset, e.licence, tuple(e.input_shape), e.num_classes) == ("tflite", dataset, "Apache-2.0", shape, k)
        assert e.build["weights_dtype"] == dtype and e.build["tflite"].endswith(".tflite")
        source = e.source
        assert len(source["sha256"]) == 64 and len(source["commit"]) == 40 and source["url"].startswith("https://")
        assert source["licence"] == "Apache-2.0" and source["note"]
        assert "[0, 1]" in e.preprocessing and "real = " in e.preprocessing
        assert f"gsal zoo build --plan configs/zoo/real.toml --tflite-dir DIR --only {name}" == e.training["command"]
        size = (gs.zoo.zoo_dir() / e.weights).stat().st_size
        assert size <= 5 * MB, f"{e.weights} is {size / MB:.2f} MB"
        measured = e.metrics["argmax_agreement_float16_vs_tflite"]
        assert {Path(p).stem for p in photos} <= set(measured), name
        assert min(e.metrics["argmax_agreement_float16_vs_float32"].values()) >= 0.99, name
        assert min(measured.values()) >= 0.95, name
    ade, selfie = shipped["ade20k-mobilenetv2"], shipped["mediapipe-selfie"]
    assert (ade.class_names[0], ade.class_names[1], ade.class_names[13], ade.class_names[150]) == ("other", "wall", "person", "flag")
    assert ade.build["float_input_range"] == [-1.0, 1.0] and len(ade.metrics["argmax_agreement_float32_vs_tflite"]) == 16
    assert selfie.class_names == ("background", "person") and selfie.build["float_input_range"] == [0.0, 1.0]
    assert max(selfie.metrics["max_probability_difference_float32_vs_tflite"].values()) <= 1e-3
    assert "p > 0.5" in selfie.metrics["measured_on"]


@pytest.mark.parametrize("name", sorted(NEW_REAL))
def test_new_entry_loads_checked_and_reproduces_its_build_time_prediction(name):
    shape, k = NEW_REAL[name][:2]
    model = gs.zoo.load(name)
    entry = model.zoo_entry
    assert model.tflite_info.preprocessing in entry.preprocessing and model.tflite_info.input_size == shape[:2]
    image = photo_input(gs.zoo.zoo_dir() / entry.reference["image"], shape[:2])
    probabilities = np.asarray(model(image, training=False))
    if k == 2:  # one channel: the probability of "person"
        assert probabilities.shape == (1, *shape[:2], 1) and probabilities.min() >= 0 and probabilities.max() <= 1
    else:
        assert probabilities.shape == (1, *shape[:2], k)
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-4)
    reference = cv2.imread(str(gs.zoo.zoo_dir() / entry.reference["argmax"]), cv2.IMREAD_UNCHANGED)
    agreement = float((classes_of(probabilities)[0] == reference).mean())
    print(f"{name}: agreement with the build-time reference {agreement:.5f}")
    assert agreement >= 0.999
    if k == 2:
        assert 0.02 < float(reference.mean()) < 0.5  # the sample photo's riders are found, not the whole frame


def test_explain_person_with_the_selfie_segmenter(tmp_path):
    """The one-channel zoo entry through the CLI: class names resolve, the request is the person."""
    photo = tmp_path / "bike_riders_256.png"
    image = cv2.imread(str(gs.zoo.zoo_dir() / "samples" / "bike_riders_513.png"))
    cv2.imwrite(str(photo), cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA))
    out = tmp_path / "out"
    res = runner.invoke(app, ["explain", str(photo), "--model", "mediapipe-selfie", "--request-class", "person",
                              "--grid", "2", "--iterations", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["class_id"], summary["class_name"]) == (1, "person") and summary["request_pixels"] > 1000


# ---------------------------------------------------------------------------------------------
# With ../shared: agreement with tf.lite.Interpreter on the real photos
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shared() -> Path:
    if not (SHARED / "models").is_dir():
        pytest.skip(f"real models and photos not available ({SHARED} is absent)")
    return SHARED


@pytest.mark.parametrize("name", sorted(REAL))
def test_shipped_entry_agrees_with_the_interpreter_on_real_photos(shared, name):
    shape, _, _, photos = REAL[name]
    model = gs.zoo.load(name)
    entry = model.zoo_entry
    tflite = shared / "models" / entry.build["tflite"]
    gs.zoo.verify(tflite, entry.source["sha256"])  # the recorded source is the file on disk
    float_range = tuple(entry.build.get("float_input_range", (-1.0, 1.0)))
    for photo in photos:
        path = shared / ("research-only" if photo.startswith("cityscapes") else "images") / photo
        x = photo_input(path, shape[:2])
        ours = np.asarray(model(x, training=False)).argmax(-1)
        agreement = float((ours == tflite_labels(tflite, x, float_range)).mean())
        print(f"{name} {photo}: arg-max agreement with tf.lite.Interpreter {agreement:.5f}")
        assert agreement >= 0.95


@pytest.mark.parametrize("name", sorted(NEW_REAL))
def test_new_entry_agrees_with_the_interpreter_on_real_photos(shared, name):
    """The shipped selfie segmenter: max |p − p_tflite| ≤ 1e-3 per photo; ADE20K: ≥ 95 % arg-max
    agreement (the import's own test also covers ten CamVid frames)."""
    shape, _, _, _, photos = NEW_REAL[name]
    model = gs.zoo.load(name)
    entry = model.zoo_entry
    tflite = shared / "models" / entry.build["tflite"]
    gs.zoo.verify(tflite, entry.source["sha256"])
    float_range = tuple(entry.build["float_input_range"])
    for photo in photos:
        x = photo_input(shared / "images" / photo, shape[:2])
        ours = np.asarray(model(x, training=False))
        theirs = tflite_output(tflite, x, float_range)
        if name == "mediapipe-selfie":  # the file ends with its sigmoid: both are probabilities
            difference = float(np.abs(ours - theirs).max())
            print(f"{name} {photo}: max |probability difference| with tf.lite.Interpreter {difference:.2e}")
            assert difference <= 1e-3
        else:
            agreement = float((classes_of(ours) == labels_of(theirs)).mean())
            print(f"{name} {photo}: arg-max agreement with tf.lite.Interpreter {agreement:.5f}")
            assert agreement >= 0.95


# ---------------------------------------------------------------------------------------------
# gsal zoo build of an imported entry (a tiny TFLite file converted here)
# ---------------------------------------------------------------------------------------------

def tiny_tflite(path: Path) -> Path:
    """A tiny uint8-input segmenter (conv, relu, 1x1 logits for 3 classes, ARG_MAX) as TFLite."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(3, 3, 3, 8)).astype(np.float32) * 0.5, rng.normal(size=(1, 1, 8, 3)).astype(np.float32)

    def segment(x):
        return tf.argmax(tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME")), w2, 1, "SAME"), axis=3)

    module = tf.Module()
    module.f = tf.function(segment, input_signature=[tf.TensorSpec((1, 16, 16, 3), tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([rng.uniform(-1, 1, (1, 16, 16, 3)).astype(np.float32)] for _ in range(8))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.uint8
    path.write_bytes(converter.convert())
    return path


def test_zoo_build_imports_a_tflite_entry_and_records_it(tmp_path):
    models, photos = tmp_path / "models", tmp_path / "photos"
    models.mkdir()
    photos.mkdir()
    tflite = tiny_tflite(models / "tiny.tflite")
    photo = np.random.default_rng(1).integers(0, 256, (40, 30, 3)).astype(np.uint8)
    cv2.imwrite(str(photos / "photo.png"), photo)
    sha = gs.zoo.sha256_of
    plan = tmp_path / "plan.toml"
    plan.write_text(textwrap.dedent(f"""
        [sample]
        image = "photo.png"
        sha256 = "{sha(photos / 'photo.png')}"
        file = "samples/photo_16.png"
        size = [16, 16]
        licence = "CC0 1.0"
        [classes]
        abc = ["a", "b", "c"]
        [[model]]
        name = "tiny-real"
        tflite = "tiny.tflite"
        sha256 = "{sha(tflite)}"
        repository = "example/tiny"
        commit = "{'0' * 40}"
        path = "tiny.tflite"
        url = "{tflite.as_uri()}"
        licence = "Apache-2.0"
        dataset = "Tiny"
        classes = "abc"
        backbone = "conv"
        images = ["photo.png", "absent.jpg"]
    """))
    zoo_dir = tmp_path / "zoo"
    args = ["zoo", "build", "--plan", plan, "--zoo-dir", zoo_dir, "--tflite-dir", models, "--image-dir", photos]
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    (entry,) = gs.zoo.list_models(zoo_dir / "models.toml")
    assert (entry.kind, entry.dataset, entry.class_names, tuple(entry.input_shape)) == ("tflite", "Tiny", ("a", "b", "c"), (16, 16, 3))
    assert entry.source["sha256"] == sha(tflite) and entry.source["url"] == tflite.as_uri()
    assert set(entry.metrics["argmax_agreement_float16_vs_tflite"]) == {"photo"}  # the absent photo is skipped
    assert entry.metrics["argmax_agreement_float16_vs_float32"]["photo"] >= 0.99
    model = gs.zoo.load("tiny-real", zoo_dir / "models.toml")
    assert model.output_shape == (None, 16, 16, 3) and model.zoo_entry.class_names[1] == "b"
    assert (zoo_dir / "samples" / "photo_16.png").is_file() and (zoo_dir / entry.reference["argmax"]).is_file()
    assert "skipped" in runner.invoke(app, [str(a) for a in args]).output

    # Without --tflite-dir the recorded URL is downloaded (a file:// URL here), checked by sha256.
    res = runner.invoke(app, [str(a) for a in [*args[:6], "--force"]])
    assert res.exit_code == 0, res.output
    plan.write_text(plan.read_text().replace(sha(tflite), "0" * 64))
    res = runner.invoke(app, [str(a) for a in [*args, "--force"]])
    assert res.exit_code == 2 and "does not match its recorded sha256" in res.output


def tiny_binary_tflite(path: Path) -> Path:
    """A tiny float one-channel segmenter (conv, relu, 1x1 conv to one channel, sigmoid) as TFLite."""
    rng = np.random.default_rng(3)
    w1, w2 = rng.normal(size=(3, 3, 3, 8)).astype(np.float32), rng.normal(size=(1, 1, 8, 1)).astype(np.float32)

    def segment(x):
        return tf.sigmoid(tf.nn.conv2d(tf.nn.relu(tf.nn.conv2d(x, w1, 1, "SAME")), w2, 1, "SAME"))

    module = tf.Module()
    module.f = tf.function(segment, input_signature=[tf.TensorSpec((1, 16, 16, 3), tf.float32)])
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module).convert())
    return path


def test_zoo_build_records_a_one_channel_entry_with_two_class_names(tmp_path):
    models, photos = tmp_path / "models", tmp_path / "photos"
    models.mkdir()
    photos.mkdir()
    tflite = tiny_binary_tflite(models / "binary.tflite")
    cv2.imwrite(str(photos / "photo.png"), np.random.default_rng(4).integers(0, 256, (40, 30, 3)).astype(np.uint8))
    sha = gs.zoo.sha256_of

    def plan_text(classes, dtype):
        return textwrap.dedent(f"""
            [sample]
            image = "photo.png"
            sha256 = "{sha(photos / 'photo.png')}"
            file = "samples/photo_16.png"
            size = [16, 16]
            [[model]]
            name = "tiny-binary"
            tflite = "binary.tflite"
            sha256 = "{sha(tflite)}"
            repository = "example/tiny"
            commit = "{'0' * 40}"
            path = "binary.tflite"
            url = "{tflite.as_uri()}"
            licence = "Apache-2.0"
            dataset = "Tiny"
            classes = {classes}
            backbone = "conv"
            float_input_range = [0.0, 1.0]
            weights_dtype = "{dtype}"
            source_note = "converted in the test"
            images = ["photo.png"]
        """)

    plan, zoo_dir = tmp_path / "plan.toml", tmp_path / "zoo"
    args = [str(a) for a in ["zoo", "build", "--plan", plan, "--zoo-dir", zoo_dir, "--tflite-dir", models,
                             "--image-dir", photos]]
    plan.write_text(plan_text('["background", "thing"]', "float32"))
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    (entry,) = gs.zoo.list_models(zoo_dir / "models.toml")
    assert entry.class_names == ("background", "thing") and entry.num_classes == 2
    assert entry.build["weights_dtype"] == "float32" and entry.source["note"] == "converted in the test"
    assert entry.metrics["argmax_agreement_float32_vs_tflite"] == {"photo": 1.0}
    assert entry.metrics["max_probability_difference_float32_vs_tflite"]["photo"] <= 1e-5
    model = gs.zoo.load("tiny-binary", zoo_dir / "models.toml")
    assert model.output_shape == (None, 16, 16, 1) and model.tflite_info.logistic_dropped
    reference = cv2.imread(str(zoo_dir / entry.reference["argmax"]), cv2.IMREAD_UNCHANGED)
    x = photo_input(zoo_dir / entry.reference["image"], (16, 16))
    np.testing.assert_array_equal(classes_of(np.asarray(model(x)))[0], reference)

    plan.write_text(plan_text('["thing"]', "float16"))  # one channel needs two names
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 2 and "needs 2 (background, foreground)" in res.output
    plan.write_text(plan_text('["background", "thing"]', "int8"))
    res = runner.invoke(app, [*args, "--force"])
    assert res.exit_code == 2 and "weights_dtype 'int8'" in res.output


# ---------------------------------------------------------------------------------------------
# Class names: name -> id, and the CLI
# ---------------------------------------------------------------------------------------------

PASCAL = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
          "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def test_class_id_resolves_names_and_ids():
    class_id = gs.requests.class_id
    assert class_id("person", PASCAL) == 15 and class_id("Bicycle", PASCAL) == 2 and class_id(" PERSON ", PASCAL) == 15
    assert class_id("potted plant", PASCAL) == 16 and class_id("dining_table", PASCAL) == 11
    assert class_id("traffic-light", ("road", "traffic light")) == 1
    assert class_id("7", PASCAL) == 7 and class_id(7, PASCAL) == 7 and class_id("3") == 3 and class_id(np.int64(4)) == 4
    assert class_id("9", [str(d) for d in range(10)] + ["background"]) == 9
    assert gs.requests.class_name(2, PASCAL) == "bicycle" and gs.requests.class_name(2) is None
    assert gs.requests.class_name(99, PASCAL) is None
    with pytest.raises(gs.GsalInputError, match=r"'bicylce' is not a class name of this model.*2 bicycle.*20 tvmonitor"):
        class_id("bicylce", PASCAL)
    with pytest.raises(gs.GsalInputError, match="has no class names; give a class id"):
        class_id("person")
    with pytest.raises(gs.GsalInputError, match="matches several"):
        class_id("ab", ("a b", "a_b"))


@pytest.fixture(scope="module")
def photo_257(tmp_path_factory) -> Path:
    """The shipped CC0 sample photo at the 257 network's input size."""
    path = tmp_path_factory.mktemp("photo") / "bike_riders_257.png"
    image = cv2.imread(str(gs.zoo.zoo_dir() / "samples" / "bike_riders_513.png"))
    cv2.imwrite(str(path), cv2.resize(image, (257, 257), interpolation=cv2.INTER_AREA))
    return path


def test_explain_takes_class_names_and_records_them(photo_257, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["explain", str(photo_257), "--model", "pascal-mobilenetv2-0.5-257", "--request-class", "Person",
                              "--class", "bicycle", "--grid", "2", "--iterations", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["class_id"], summary["class_name"]) == (2, "bicycle") and summary["request_pixels"] > 1000


@pytest.mark.parametrize("option", ["--class", "--request-class"])
def test_an_unknown_class_name_is_one_line_exit_2_and_no_output(photo_257, tmp_path, option):
    out = tmp_path / "out"
    other = ["--request-point", "128,128"] if option == "--class" else []
    res = runner.invoke(app, ["explain", str(photo_257), "--model", "pascal-mobilenetv2-0.5-257", option, "bicylce",
                              *other, "--iterations", "2", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert res.output.strip().count("\n") == 0 and "'bicylce' is not a class name" in res.output and "15 person" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_compare_backbones_takes_class_names(tmp_path):
    from gsal_tf.zoo.demo import demo_sample

    image = tmp_path / "digit.npy"
    np.save(image, demo_sample()["image"])
    models = "tmnist-mobilenetv2-strong,tmnist-xception-strong"
    out = tmp_path / "out"
    res = runner.invoke(app, ["compare-backbones", str(image), "--models", models, "--request-class", "Background",
                              "--class", "background", "--grid", "2", "--iterations", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "comparison.json").read_text())
    assert (summary["class_id"], summary["class_name"]) == (10, "background")
    res = runner.invoke(app, ["compare-backbones", str(image), "--models", models, "--request-class", "nine",
                              "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "'nine' is not a class name" in res.output and not (tmp_path / "bad").exists()


def test_zoo_list_shows_both_kinds_within_80_columns(monkeypatch):
    monkeypatch.setattr(console, "width", 80)
    res = runner.invoke(app, ["zoo", "list"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert any("imported from TFLite" in line for line in lines) and any("TextureMNIST" in line for line in lines)
    for e in gs.zoo.list_models():  # every entry on one line with its name whole
        (row,) = [line for line in lines if line.split()[:1] == [e.name]]
        if e.kind == "tflite":
            assert e.dataset in row and e.licence in row and f"{e.input_shape[0]}×{e.input_shape[1]}" in row
            assert f" {e.num_classes} " in row


def test_zoo_info_shows_the_new_fields():
    res = runner.invoke(app, ["zoo", "info", "cityscapes-mobilenet-edgetpu"], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for wanted in ("Cityscapes", "Apache-2.0", "google-coral/test_data", "source: url", "0 road", "18 bicycle",
                   "argmax_agreement_float16_vs_tflite", "reference: argmax"):
        assert wanted in text, wanted
