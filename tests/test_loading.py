"""Images of any size fitted to a network's fixed input (loading.Fit) and image files a network
cannot take (16-bit, transparent) refused with one clear error."""

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.loading import Fit, load_image, model_input_size


def test_fit_letterboxes_and_maps_back():
    fit = Fit.between((200, 400), (64, 64))
    assert fit.scale == pytest.approx(0.16) and fit.size == (32, 64) and (fit.top, fit.left) == (16, 0)
    image = np.zeros((200, 400, 3), np.float32)
    image[:, 200:] = 1.0  # right half bright
    fitted = fit.to_model(image)
    assert fitted.shape == (64, 64, 3)
    assert np.all(fitted[:16] == 0.5) and np.all(fitted[48:] == 0.5)  # padding above and below
    assert fitted[16:48, :31].max() == 0.0 and fitted[16:48, 33:].min() == pytest.approx(1.0)  # INTER_AREA rounding
    assert fit.valid().sum() == 32 * 64
    # A map on the network input comes back at the image size, the padding cropped away.
    back = fit.to_image(fitted[..., 0])
    assert back.shape == (200, 400) and np.abs(back - image[..., 0]).mean() < 0.02
    labels = fit.to_image((fitted[..., 0] > 0.5).astype(np.int64), nearest=True)
    assert labels.dtype == np.int64 and set(np.unique(labels)) == {0, 1}
    # Masks use nearest neighbours and zero padding: never part of a request.
    mask = np.zeros((200, 400), np.float32)
    mask[50:150, 100:300] = 1
    fitted_mask = fit.mask_to_model(mask)
    assert set(np.unique(fitted_mask)) == {0.0, 1.0} and fitted_mask[:16].max() == 0
    assert fitted_mask.sum() == pytest.approx(mask.sum() * fit.scale ** 2, rel=0.1)
    y, x = fit.point_to_model((100, 250))
    assert fitted_mask[y, x] == 1 and (y, x) == (32, 40)


def test_photo_grids_have_square_cells_and_twelve_on_the_long_side():
    from gsal_tf.loading import PHOTO_GRID_CELLS, Fit

    assert PHOTO_GRID_CELLS == 12
    assert Fit.between((853, 1280), (513, 513)).grid() == (12, 12)  # 3:2 photo, square input: 12 x 8 on the photo
    assert Fit.between((128, 128), (513, 513)).grid(8) == (8, 8)
    assert Fit.between((1024, 2048), (513, 1025)).grid() == (6, 12)  # a 2:1 input keeps its cells square
    assert Fit.between((400, 513), (257, 257)).grid(16) == (16, 16)
    with pytest.raises(gs.GsalInputError, match="at least one cell"):
        Fit.between((10, 10), (20, 20)).grid(0)


def test_a_matching_size_is_left_alone():
    fit = Fit.between((64, 64), (64, 64))
    image = np.random.default_rng(0).random((64, 64, 3), dtype=np.float32)
    assert fit.identity and np.array_equal(fit.to_model(image), image) and np.array_equal(fit.to_image(image[..., 0]), image[..., 0])


def test_channels_are_matched_to_the_network():
    from gsal_tf.loading import match_channels

    grey = np.random.default_rng(0).random((4, 4, 1), dtype=np.float32)
    assert np.array_equal(match_channels(grey, 3), np.repeat(grey, 3, -1))
    rgb = np.zeros((4, 4, 3), np.float32)
    rgb[..., 1] = 1.0
    assert np.allclose(match_channels(rgb, 1), 0.587) and match_channels(rgb, None) is rgb
    with pytest.raises(gs.GsalInputError, match="cannot take images with 2 channels"):
        match_channels(np.zeros((4, 4, 2), np.float32), 3)


def test_model_input_size():
    fixed = gs.models.known_context_model((32, 48, 3), [(0, 0, 4, 4)], (10, 10, 20, 20))
    assert model_input_size(fixed) == (32, 48)
    assert model_input_size(lambda x: x) is None


def test_sixteen_bit_and_transparent_images_are_refused(tmp_path):
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), np.full((8, 8, 3), 40000, np.uint16))
    with pytest.raises(gs.GsalInputError, match="16-bit pixels"):
        load_image(deep)
    rgba = np.full((8, 8, 4), 255, np.uint8)
    opaque = tmp_path / "opaque.png"
    cv2.imwrite(str(opaque), rgba)
    assert load_image(opaque).shape == (8, 8, 3)  # an opaque alpha channel is dropped
    rgba[0, 0, 3] = 0
    clear = tmp_path / "clear.png"
    cv2.imwrite(str(clear), rgba)
    with pytest.raises(gs.GsalInputError, match="transparent"):
        load_image(clear)


def test_explain_a_photo_of_another_size_than_the_network(tmp_path):
    """A 400x513 crop of the shipped CC0 photo, explained by the 257x257 PASCAL network: the
    photo is letterboxed to 257x257 and every output comes back at 400x513."""
    import json

    from typer.testing import CliRunner

    from gsal_cli.main import app

    photo = cv2.imread(str(gs.zoo.zoo_dir() / "samples" / "bike_riders_513.png"))[50:450]
    path = tmp_path / "riders.png"
    cv2.imwrite(str(path), photo)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["explain", str(path), "--model", "pascal-mobilenetv2-0.5-257", "--request-class", "person",
                                   "--iterations", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert np.load(out / "saliency.npy").shape == (400, 513)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["class_name"] == "person" and summary["fitted_to_network"]["network_input"] == [257, 257]
    assert summary["fitted_to_network"]["content"] == [200, 257]  # aspect ratio kept: 400/513 of 257
    assert summary["parameters"]["grid_size"] == [12, 12]  # a photo's default: square cells, 12 on its long side
    assert len(summary["grid"]) == 12 and len(summary["grid"][0]) == 12
    # A point is given in the photo's pixels: outside the photo is one clear error, nothing written.
    bad = CliRunner().invoke(app, ["explain", str(path), "--model", "pascal-mobilenetv2-0.5-257", "--request-point", "450,10",
                                   "--iterations", "3", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "outside the image" in bad.output and not (tmp_path / "bad").exists()


def test_cyclists_demo_is_a_real_network_on_a_real_photo(tmp_path):
    import json

    from typer.testing import CliRunner

    from gsal_cli.main import app

    out = tmp_path / "cyclists"
    res = CliRunner().invoke(app, ["explain", "--demo", "cyclists", "--iterations", "5", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "pascal-mobilenetv2-0.5-257" and summary["class_name"] == "person"
    assert np.load(out / "saliency.npy").shape == (513, 513) and summary["fitted_to_network"]["network_input"] == [257, 257]
    unknown = CliRunner().invoke(app, ["explain", "--demo", "bicycles", "--out", str(tmp_path / "none")])
    assert unknown.exit_code == 2 and "textures, cyclists" in unknown.output and not (tmp_path / "none").exists()


def test_bad_real_world_input_through_the_cli_is_one_line_and_no_output(tmp_path):
    """Issue 12's bad inputs at the command line: a file that is not TFLite, a TFLite network that
    is not a segmentation network, 16-bit and transparent images, an unknown class name."""
    import tensorflow as tf
    from typer.testing import CliRunner

    from gsal_cli.main import app

    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), np.full((40, 60, 3), 120, np.uint8))
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    module = tf.Module()
    module.f = tf.function(lambda x: tf.reduce_mean(x, axis=[1, 2]), input_signature=[tf.TensorSpec((1, 32, 32, 3), tf.float32)])
    classifier = tmp_path / "classifier.tflite"
    classifier.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module).convert())
    deep, clear = tmp_path / "deep.png", tmp_path / "clear.png"
    cv2.imwrite(str(deep), np.full((40, 60, 3), 40000, np.uint16))
    rgba = np.full((40, 60, 4), 255, np.uint8)
    rgba[0, 0, 3] = 0
    cv2.imwrite(str(clear), rgba)
    cases = [
        ([str(photo), "--model", str(corrupt)], "not a TensorFlow Lite flatbuffer"),
        ([str(photo), "--model", str(classifier)], "not a segmentation network"),
        ([str(deep), "--model", "pascal-mobilenetv2-0.5-257"], "16-bit"),
        ([str(clear), "--model", "pascal-mobilenetv2-0.5-257"], "transparent"),
        ([str(photo), "--model", "pascal-mobilenetv2-0.5-257", "--request-class", "unicorn"], "unicorn"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        res = CliRunner().invoke(app, ["explain", *args, "--request-point", "5,5", "--out", str(out)]
                                 if "--request-class" not in args else ["explain", *args, "--out", str(out)])
        assert res.exit_code == 2, (args, res.output)
        assert message in res.output and "Traceback" not in res.output, (args, res.output)
        assert len([line for line in res.output.strip().splitlines() if line.strip()]) == 1, res.output
        assert not out.exists()
