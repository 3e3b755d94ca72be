"""The one picture pipeline (gsal_tf.pictures): a photo of another size than the network's input
is fitted, gridded, requested and mapped back the same way by the library, `gsal explain` and
`gsal explain-dataset`."""

import json

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_cli.main import app
from gsal_tf import pictures
from gsal_tf.loading import PHOTO_GRID_CELLS
from gsal_tf.models.known_context import known_context_model

SHAPE = (64, 64, 3)
PATCHES = [(20, 0, 36, 16)]  # on the network input; inside the letterboxed photo (rows 16..47)
BOX = (24, 24, 40, 40)


@pytest.fixture(scope="module")
def model():
    return known_context_model(SHAPE, PATCHES, BOX)


def photo(height=48, width=96, seed=0):
    """A 2:1 photo (H0,W0,3) in [0,1] with the patch bright: letterboxed into 64x64 it fills
    32x64, centred, and the model predicts class 1 in its box."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.2, 0.5, (height, width, 3)).astype(np.float32)
    image[6:30, 0:24] = 1.0  # network rows 20..36, columns 0..16 when 48x96
    return image


def test_the_grid_rule_is_the_network_grid_at_its_size_and_square_cells_on_a_photo(model):
    at_size = pictures.fit_picture(photo(64, 64), model)
    assert at_size.fit.identity and at_size.grid == pictures.NETWORK_GRID
    wide = pictures.fit_picture(photo(), model)
    # 12 cells along the photo's long side (64 px of network input): 12 x 12 over the square input.
    assert wide.grid == (PHOTO_GRID_CELLS, PHOTO_GRID_CELLS)
    assert wide.network_input.shape == SHAPE
    assert wide.fit.size == (32, 64) and wide.fit.top == 16
    explainer = pictures.explainer_for(model, wide, iterations=2)
    assert explainer.grid_size == wide.grid
    assert pictures.explainer_for(model, wide, grid_size=(4, 4)).grid_size == (4, 4)  # given, kept
    assert not pictures.method_takes_grid("rise") and pictures.method_takes_grid("grid_saliency")


def test_requests_are_given_in_the_image_pixels(model):
    picture = pictures.fit_picture(photo(), model)
    predict = gs.GridSaliency(model).predict
    box = pictures.picture_request(picture, predict, box=(0, 0, 24, 48))
    # The box is the photo's top-left quarter (scale 2/3, 16 rows of padding above): rows 16..31, columns 0..31.
    rows, cols = np.nonzero(box.mask)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (16, 31, 0, 31)
    assert box.class_id == 0  # the known-context model predicts background outside its box
    mask = np.zeros((48, 96), bool)
    mask[0:24, 0:48] = True
    np.testing.assert_array_equal(pictures.picture_request(picture, predict, mask=mask, class_id=0).mask, box.mask)
    point = pictures.picture_request(picture, predict, point=(5, 5))
    assert point.mask[16 + 3, 3] == 1 and point.prediction.shape == SHAPE[:2]
    with pytest.raises(gs.GsalInputError, match="exactly one"):
        pictures.picture_request(picture, predict, box=(0, 0, 2, 2), point=(1, 1))
    with pytest.raises(gs.GsalInputError, match="outside the image"):
        pictures.picture_request(picture, predict, point=(48, 0))
    with pytest.raises(gs.GsalInputError, match="image's size"):
        pictures.picture_request(picture, predict, mask=np.ones((64, 64)))


def test_explain_picture_maps_the_saliency_back_to_the_photo(model):
    picture = pictures.fit_picture(photo(), model)
    explainer = pictures.explainer_for(model, picture, iterations=3)
    request = pictures.picture_request(picture, explainer.predict, box=(12, 24, 36, 72))
    explained = pictures.explain_picture(explainer, picture, request)
    assert explained.saliency.shape == (48, 96) and explained.prediction.shape == (48, 96)
    direct = explainer.explain(picture.network_input[None], request.mask[None], [request.class_id])
    np.testing.assert_allclose(explained.saliency, picture.fit.to_image(direct.saliency[0]), atol=1e-6)

    # the known answer, in the photo's pixels: class 1 reads only the bright patch (photo rows 6..30, columns 0..24)
    request = pictures.picture_request(picture, explainer.predict, predicted_class=1)
    saliency = pictures.explain_picture(pictures.explainer_for(model, picture), picture, request).saliency
    assert saliency[8:24, 0:20].mean() > 0.8
    assert saliency[:, 32:].max() == 0 and saliency[40:].max() == 0


def test_gsal_explain_and_explain_dataset_give_a_photo_the_same_grid_and_saliency(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    folder = tmp_path / "photos"
    folder.mkdir()
    image = (photo() * 255).astype(np.uint8)
    cv2.imwrite(str(folder / "wide.png"), image[..., ::-1])
    settings = ["--iterations", "20"]
    one = CliRunner().invoke(app, ["explain", str(folder / "wide.png"), "--model", str(path), "--request-class", "1",
                                   "--out", str(tmp_path / "one"), *settings])
    assert one.exit_code == 0, one.output
    run = CliRunner().invoke(app, ["explain-dataset", str(folder), "--model", str(path), "--zones-from", "predictions",
                                   "--zone", "class", "--classes", "1", "--maps", "--out", str(tmp_path / "run"), *settings])
    assert run.exit_code == 0, run.output
    summary = json.loads((tmp_path / "one" / "summary.json").read_text())
    card = json.loads((tmp_path / "run" / "run.json").read_text())
    assert summary["parameters"]["grid_size"] == card["settings"]["explainer"]["grid_size"] == [PHOTO_GRID_CELLS] * 2
    alone = np.load(tmp_path / "one" / "saliency.npy")
    maps = np.load(next((tmp_path / "run" / "maps").glob("*.npz")))
    in_run = maps["saliency_0"].astype(np.float32)
    assert alone.shape == in_run.shape == (48, 96)
    assert alone.max() - alone.min() > 0.1  # a map with structure is compared
    np.testing.assert_allclose(in_run, alone, atol=2e-3)  # the run stores float16
