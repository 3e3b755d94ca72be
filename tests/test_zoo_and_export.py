"""The zoo's integrity checks and loading, and SavedModel exports reloaded without gsal_tf."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.errors import IntegrityError
from gsal_tf.export import export_explainer, export_model
from gsal_tf.models.known_context import brightness_model, demo_case

TINY = {"backbone": "mobilenetv2", "alpha": 0.35, "output_stride": 8, "low_level_stride": 4,
        "aspp_filters": 8, "decoder_filters": 8, "low_level_filters": 4, "atrous_rates": [1, 2, 3]}


def write_manifest(folder, weights_name, sha, url=""):
    build = ", ".join(f"{k} = {json.dumps(v)}" for k, v in TINY.items())
    (folder / "models.toml").write_text(textwrap.dedent(f"""
        [[model]]
        name = "tiny"
        description = "test model"
        input_shape = [32, 32, 1]
        class_names = ["a", "b", "c"]
        preprocessing = "[0,1] floats"
        weights = "{weights_name}"
        sha256 = "{sha}"
        url = "{url}"
        build = {{ {build} }}
        metrics = {{ mean_iou = 0.5 }}
        [model.bias]
        digit = 3
        texture = "stripes"
        strength = "strong"
    """))
    return folder / "models.toml"


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("zoo")
    build = dict(TINY)
    model = gs.models.deeplabv3plus(build.pop("backbone"), (32, 32, 1), 3, **build)
    path = d / "tiny.weights.h5"
    model.save_weights(path)
    x = np.random.default_rng(0).random((2, 32, 32, 1)).astype(np.float32)
    return d, path, model(x, training=False).numpy(), x


def test_zoo_loads_verified_weights(tiny_weights):
    d, path, expected, x = tiny_weights
    manifest = write_manifest(d, path.name, gs.zoo.sha256_of(path))
    (entry,) = gs.zoo.list_models(manifest)
    assert entry.name == "tiny" and entry.backbone == "mobilenetv2" and entry.bias.digit == 3
    model = gs.zoo.load("tiny", manifest)
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, atol=1e-6)
    assert model.zoo_entry.metrics["mean_iou"] == 0.5
    with pytest.raises(gs.GsalInputError, match="no zoo model named 'nope'"):
        gs.zoo.load("nope", manifest)


def test_tampered_weights_are_refused(tiny_weights, tmp_path):
    _, path, _, _ = tiny_weights
    bad = tmp_path / path.name
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    manifest = write_manifest(tmp_path, bad.name, gs.zoo.sha256_of(path))
    with pytest.raises(IntegrityError, match="does not match its recorded sha256"):
        gs.zoo.load("tiny", manifest)


def test_url_weights_download_once_into_the_cache(tiny_weights, tmp_path, monkeypatch):
    _, path, expected, x = tiny_weights
    monkeypatch.setenv("GSAL_HOME", str(tmp_path / "home"))
    manifest_dir = tmp_path / "m"
    manifest_dir.mkdir()
    manifest = write_manifest(manifest_dir, "remote.weights.h5", gs.zoo.sha256_of(path), url=path.as_uri())
    model = gs.zoo.load("tiny", manifest)  # fetched from a file:// URL, hash checked
    assert (tmp_path / "home" / "zoo" / "remote.weights.h5").is_file()
    np.testing.assert_allclose(model(x, training=False).numpy(), expected, atol=1e-6)
    manifest = write_manifest(manifest_dir, "remote.weights.h5", "0" * 64, url=path.as_uri())
    with pytest.raises(IntegrityError):
        gs.zoo.load("tiny", manifest)


TMNIST = [f"tmnist-{backbone}-{bias}" for bias in ("unbiased", "strong", "weak") for backbone in ("mobilenetv2", "xception")]
#: Pretrained networks imported from TFLite releases (tests/test_real_zoo.py checks them in depth).
REAL = ["pascal-mobilenetv2", "pascal-mobilenetv2-0.5", "pascal-mobilenetv2-0.5-257", "cityscapes-mobilenet-edgetpu", "ade20k-mobilenetv2",
        "mediapipe-selfie"]
SHIPPED = TMNIST + REAL


def test_shipped_manifest_is_consistent():
    assert sorted(gs.zoo.names()) == sorted(SHIPPED)  # the loops below must not pass on an empty zoo
    for entry in gs.zoo.list_models():
        assert (gs.zoo.zoo_dir() / entry.weights).is_file() or entry.url, entry.name
        assert entry.metrics and entry.training.get("command"), entry.name
        assert entry.kind == ("tflite" if entry.name in REAL else "deeplabv3plus"), entry.name
        assert entry.dataset == "TextureMNIST" or entry.name in REAL, entry.name
        if entry.bias is None:  # no bias digit to report (the unbiased config's digit is unused)
            assert "bias_digit_iou" not in entry.metrics, entry.name
        else:
            assert entry.metrics["bias_digit_iou"] == entry.metrics["iou_per_class"][entry.bias.digit], entry.name


def _export_case(kind):
    """(model, image (H,W,C), request (H,W), class id): the hand-built known-context model, or a
    shipped DeepLabv3+ (aligned Xception: the most custom layers) on the demo sample."""
    if kind == "known-context":
        case = demo_case()
        return case["model"], case["image"], case["request"], 1
    if kind == "uniform":  # one pixel requested of a network that reads the mean brightness
        request = np.zeros((32, 32), np.float32)
        request[0, 0] = 1
        return brightness_model((32, 32, 3)), np.full((32, 32, 3), 0.9, np.float32), request, 1
    from gsal_tf.zoo.demo import demo_sample

    sample = demo_sample()
    return gs.zoo.load("tmnist-xception-strong"), sample["image"], sample["digit_mask"].astype(np.float32), int(sample["digit"])


@pytest.mark.parametrize("kind", ["known-context", "zoo-xception", "uniform"])
def test_exports_reload_without_gsal_and_reproduce_outputs(tmp_path, kind):
    model, image, request, class_id = _export_case(kind)
    # Both loops: the default formulation (target, start-level search) on the known-context model,
    # whose prediction is lost without the patches; the paper's with the blur baseline on the zoo
    # network (under blur the known-context patches survive, and the default's answer is empty);
    # moments="auto" where the restarted mask stays uniform, so the export runs the second pass.
    if kind == "known-context":
        explainer = gs.GridSaliency(model, iterations=30)
    elif kind == "uniform":
        explainer = gs.GridSaliency(model, grid_size=4, moments="auto")
    else:
        explainer = gs.GridSaliency.paper(model, iterations=30, baseline="blur")
    export_model(model, tmp_path / "segmentation")
    export_explainer(explainer, tmp_path / "explainer", image.shape)
    images = np.stack([image, image[::-1]]).astype(np.float32)
    requests = np.stack([request, request])
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "requests.npy", requests)
    code = textwrap.dedent(f"""
        import sys
        import numpy as np, tensorflow as tf
        d = {str(tmp_path)!r}
        explainer = tf.saved_model.load(d + "/explainer")  # keep it: its signature uses the model's variables
        explain = explainer.signatures["serving_default"]
        out = explain(images=tf.constant(np.load(d + "/images.npy")), request_masks=tf.constant(np.load(d + "/requests.npy")),
                      class_ids=tf.constant([{class_id}, {class_id}], tf.int32))
        np.save(d + "/saliency.npy", out["saliency"].numpy())
        segmentation = tf.saved_model.load(d + "/segmentation")
        np.save(d + "/probs.npy", segmentation.serve(tf.constant(np.load(d + "/images.npy"))).numpy())
        assert not any(m.startswith("gsal") for m in sys.modules), "gsal was imported"
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    reference = explainer.explain(images, requests, [class_id, class_id])
    assert reference.saliency.max() > 0  # a non-trivial explanation is compared, not two empty maps
    np.testing.assert_allclose(np.load(tmp_path / "saliency.npy"), reference.saliency, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), np.asarray(model(images)), atol=1e-5)


def test_bias_digit_ious_pair_each_biased_model_with_its_backbones_unbiased_one():
    entries = gs.zoo.list_models()
    assert sorted(e.name for e in entries) == sorted(SHIPPED)
    assert sum(e.bias is not None for e in entries) == 4  # the loop below checks four pairs
    for e in entries:
        own, ref = gs.zoo.bias_digit_ious(e, entries)
        if e.bias is None:
            assert (own, ref) == (None, None)
            continue
        unbiased = next(u for u in entries if u.bias is None and u.backbone == e.backbone and u.dataset == e.dataset)
        assert unbiased.name in TMNIST
        assert own == e.metrics["iou_per_class"][e.bias.digit]
        assert ref == unbiased.metrics["iou_per_class"][e.bias.digit]


def test_a_missing_manifest_is_an_error_not_an_empty_zoo(tmp_path):
    with pytest.raises(gs.GsalInputError, match="manifest .* is missing"):
        gs.zoo.list_models(tmp_path / "models.toml")


def test_from_preset_is_the_zoo_model():
    model = gs.models.from_preset("tmnist-mobilenetv2-strong")
    reference = gs.zoo.load("tmnist-mobilenetv2-strong")
    x = np.random.default_rng(0).random((1, 64, 64, 1), dtype=np.float32)
    assert model.zoo_entry.name == "tmnist-mobilenetv2-strong"
    np.testing.assert_array_equal(np.asarray(model(x, training=False)), np.asarray(reference(x, training=False)))
