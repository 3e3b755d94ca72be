"""Photos are read as every viewer shows them: the EXIF orientation a camera stores is applied
wherever gsal reads an image file (``gsal explain``, ``compare-backbones``, dataset folders and the
report that reads through them, request masks). ``cv2.IMREAD_UNCHANGED`` ignores it; Pillow's
``ImageOps.exif_transpose`` is the oracle."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from gsal_cli.main import app
from gsal_tf.datasets import open_source
from gsal_tf.errors import GsalInputError
from gsal_tf.loading import exif_orientation, imread_as_displayed, load_image, orient
from gsal_tf.requests import mask_from_image

STORED = (40, 60)  # (H, W) of the pixels as the camera stored them


def stored_pixels() -> np.ndarray:
    """(40,60,3) uint8 RGB with no symmetry: a red block at the stored top-left corner, a green one
    at the top-right, a blue gradient down the rows."""
    pixels = np.zeros(STORED + (3,), np.uint8)
    pixels[..., 2] = np.linspace(0, 120, STORED[0], dtype=np.uint8)[:, None]
    pixels[:10, :10, 0] = 255
    pixels[:10, -10:, 1] = 255
    return pixels


def write_with_orientation(path, pixels: np.ndarray, orientation: int | None, **options):
    """``pixels`` (H,W,3) RGB written by Pillow with the EXIF orientation tag (none when None)."""
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, exif=exif.tobytes(), **options)
    return path


def as_displayed_by_pillow(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_what_viewers_show(tmp_path, orientation):
    """Lossless PNG (eXIf chunk): the loaded pixels equal Pillow's exif_transpose exactly, and
    orientations 5-8 swap height and width."""
    path = write_with_orientation(tmp_path / f"o{orientation}.png", stored_pixels(), orientation)
    assert exif_orientation(path) == orientation
    loaded = load_image(path)
    expected = as_displayed_by_pillow(path)
    assert loaded.dtype == np.float32 and loaded.shape == expected.shape
    assert loaded.shape[:2] == (STORED if orientation <= 4 else STORED[::-1])
    np.testing.assert_array_equal(np.round(loaded * 255).astype(np.uint8), expected)
    # OpenCV's colour reader applies the orientation too: the same picture, in BGR.
    np.testing.assert_array_equal(imread_as_displayed(path), cv2.imread(str(path), cv2.IMREAD_COLOR))


@pytest.mark.parametrize("orientation, corner", [(1, (0, 0)), (3, (-1, -1)), (6, (0, -1)), (8, (-1, 0))])
def test_jpeg_with_exif_orientation_is_turned(tmp_path, orientation, corner):
    """Phone JPEGs: turned 90° clockwise (6), 180° (3), 90° anticlockwise (8). The stored top-left
    red block is where a viewer shows it."""
    path = write_with_orientation(tmp_path / f"o{orientation}.jpg", stored_pixels(), orientation, quality=95)
    image = load_image(path)
    assert image.shape == ((60, 40, 3) if orientation in (6, 8) else (40, 60, 3))
    red = image[..., 0] > 0.8
    y, x = (0 if c == 0 else image.shape[i] - 1 for i, c in enumerate(corner))
    assert red[y, x] and red.sum() == pytest.approx(100, abs=15)
    assert np.abs(image - as_displayed_by_pillow(path) / 255).mean() < 0.01


def test_orientation_of_files_without_one_and_bad_values(tmp_path):
    plain = tmp_path / "plain.png"
    cv2.imwrite(str(plain), stored_pixels())
    assert exif_orientation(plain) == 1 and load_image(plain).shape == STORED + (3,)
    assert exif_orientation(write_with_orientation(tmp_path / "nine.png", stored_pixels(), 9)) == 1  # outside 1-8: as stored
    text = tmp_path / "note.png"
    text.write_text("not an image")
    assert exif_orientation(text) == 1 and imread_as_displayed(text) is None
    grey = orient(np.arange(6).reshape(2, 3), 6)
    assert grey.shape == (3, 2) and grey.flags.c_contiguous and grey.tolist() == [[3, 0], [4, 1], [5, 2]]
    with pytest.raises(GsalInputError, match="EXIF orientation"):
        orient(grey, 0)


def test_request_mask_is_read_as_displayed(tmp_path):
    """A mask painted on the displayed photo and saved with the same orientation tag lines up."""
    mask = np.zeros(STORED + (3,), np.uint8)
    mask[:10, :10] = 255  # stored top-left: displayed top-right with orientation 6
    path = write_with_orientation(tmp_path / "mask.png", mask, 6)
    read = mask_from_image(path, shape=STORED[::-1])
    assert read.shape == (60, 40) and read[:10, -10:].all() and read.sum() == 100


def test_explain_outputs_match_the_displayed_photo(tmp_path, conv_model_file):
    """``gsal explain`` on a JPEG stored 40x60 with orientation 6: saliency.npy is 60x40, like the
    photo in a viewer, and --request-point is in the displayed photo's pixels."""
    photo = write_with_orientation(tmp_path / "phone.jpg", stored_pixels(), 6, quality=95)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["explain", str(photo), "--model", str(conv_model_file), "--request-point", "55,5",
                                   "--iterations", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert np.load(out / "saliency.npy").shape == (60, 40)
    assert json.loads((out / "summary.json").read_text())["fitted_to_network"]["image"] == [60, 40]
    outside = CliRunner().invoke(app, ["explain", str(photo), "--model", str(conv_model_file), "--request-point", "5,55",
                                       "--iterations", "3", "--out", str(tmp_path / "none")])
    assert outside.exit_code == 2 and "outside the image of size 60x40" in outside.output


def test_dataset_folder_source_reads_photos_as_displayed(tmp_path):
    """A dataset folder (and the HTML report, which reads its overlays' images through the same
    source) sees the photo as displayed."""
    folder = tmp_path / "photos"
    folder.mkdir()
    write_with_orientation(folder / "a.jpg", stored_pixels(), 6, quality=95)
    write_with_orientation(folder / "b.png", stored_pixels(), 3)
    samples = [sample for _, sample in open_source(folder).iter_from(0)]
    assert [s.image.shape for s in samples] == [(60, 40, 3), (40, 60, 3)]
    np.testing.assert_allclose(samples[1].image, as_displayed_by_pillow(folder / "b.png") / 255, atol=1e-6)


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_label_maps_follow_their_photo_when_it_is_turned(tmp_path, orientation):
    """A label PNG without an orientation of its own, aligned with the photo's stored pixels, is
    turned with the photo; one already in the displayed shape is kept as it is."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    stored = stored_pixels()
    write_with_orientation(images / "a.png", stored, orientation)
    ids = np.zeros(stored.shape[:2], np.uint8)
    ids[:10, :15] = 1  # the stored top-left corner
    cv2.imwrite(str(labels / "a.png"), ids)
    (sample,) = [s for _, s in open_source(images, labels=labels).iter_from(0)]
    np.testing.assert_array_equal(sample.labels, orient(ids, orientation))
    if orientation >= 5:  # a label exported in the displayed shape is not turned again
        cv2.imwrite(str(labels / "a.png"), orient(ids, orientation))
        (sample,) = [s for _, s in open_source(images, labels=labels).iter_from(0)]
        np.testing.assert_array_equal(sample.labels, orient(ids, orientation))
