"""TextureMNIST generator, storage and CLI, on a tiny fake MNIST drawn in the test."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_tf.benchmark import TextureMNIST, load_config, load_dataset, load_samples, texture_names
from gsal_tf.errors import GsalInputError

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "benchmark"
STRIPES = ["stripes_h_fine", "stripes_v_fine", "stripes_h_wide", "stripes_v_wide"]


def _data(mnist: Path, config: str = "strong", **overrides) -> TextureMNIST:
    return TextureMNIST(load_config(CONFIGS / f"{config}.toml", **overrides), mnist=mnist)


def _holds(samples: dict, texture: int) -> np.ndarray:
    """(N,) bool: the texture is the foreground or any tile's texture."""
    return (samples["tile_textures"] == texture).any(axis=1) | (samples["foreground_texture"] == texture)


# --- config -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, strength", [("unbiased", "none"), ("weak", "weak"), ("strong", "strong")])
def test_shipped_configs_load(name, strength):
    cfg = load_config(CONFIGS / f"{name}.toml")
    assert cfg.bias.strength == strength and cfg.tiles == 2 and cfg.image_size == 64
    assert load_config(cfg.to_dict()) == cfg


@pytest.mark.parametrize("name", ["unbiased", "weak", "strong"])
def test_shipped_configs_follow_the_paper_law_and_the_old_law_is_a_named_variant(name):
    paper = load_config(CONFIGS / f"{name}.toml")
    assert paper.law == "paper" and paper.foreground_levels == paper.background_levels == (0.0, 1.0)
    variant = load_config(CONFIGS / "bright-digit" / f"{name}.toml")
    assert variant.law == "bright-digit"
    # The variant is exactly the 0.2 configs (explicit levels): same config, same data folder.
    old = load_config(paper, foreground_levels=[0.4, 1.0], background_levels=[0.0, 0.6])
    assert variant == old and variant.to_dict() == old.to_dict()
    assert {k: v for k, v in variant.to_dict().items() if "levels" not in k} == \
        {k: v for k, v in paper.to_dict().items() if "levels" not in k}
    assert load_config(paper, foreground_levels=[0.2, 0.9]).law == "custom"


def test_a_law_with_levels_or_an_unknown_law_is_one_clear_error():
    with pytest.raises(GsalInputError, match="either law"):
        load_config({"law": "paper", "foreground_levels": [0.1, 1.0]})
    with pytest.raises(GsalInputError, match="law must be one of 'paper', 'bright-digit'"):
        load_config(CONFIGS / "strong.toml", law="dark")


def test_overrides_merge_into_tables():
    base = load_config(CONFIGS / "strong.toml")
    cfg = load_config(CONFIGS / "strong.toml", seed=5, bias={"strength": "weak"})
    assert cfg.seed == 5 and cfg.bias.strength == "weak"
    assert cfg.bias.digit == base.bias.digit and cfg.bias.texture == base.bias.texture  # rest of the table kept


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"tiles": 3}, "tiles"),
        ({"image_size": 16}, "image_size"),
        ({"n_train": -1}, "n_train"),
        ({"seed": 1.5}, "seed"),
        ({"digit_scale": [0.9, 0.5]}, "digit_scale"),
        ({"contrast": [0.0, 2.0]}, "contrast"),
        ({"bias": {"strength": "medium"}}, "bias.strength"),
        ({"bias": {"digit": 12}}, "bias.digit"),
        ({"bias": {"colour": "red"}}, "bias.colour"),
        ({"epochs": 3}, "epochs"),
        ({"textures": {"names": ["a", "a"]}}, "textures.names"),
    ],
)
def test_bad_config_values_raise_input_error(overrides, field):
    with pytest.raises(GsalInputError, match=field.split(".")[-1]):
        load_config(CONFIGS / "strong.toml", **overrides)


def test_bad_texture_choices_raise_input_error(mnist):
    with pytest.raises(GsalInputError, match="not in the texture pool"):
        _data(mnist, bias={"texture": "polka"})
    with pytest.raises(GsalInputError, match="out of range"):
        _data(mnist, bias={"texture": 999})
    with pytest.raises(GsalInputError, match="needs at least 4"):
        _data(mnist, textures={"names": STRIPES[:3]}, bias={"texture": STRIPES[0]})


def test_missing_or_broken_mnist_raises_input_error(mnist, tmp_path, monkeypatch):
    with pytest.raises(GsalInputError, match="does not exist"):
        _data(tmp_path / "nope.npz")
    np.savez(tmp_path / "partial.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(GsalInputError, match="y_train"):
        _data(tmp_path / "partial.npz")

    import keras

    def offline():
        raise OSError("no route to host")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(GsalInputError, match="--mnist PATH"):
        _data(None)


# --- textures -----------------------------------------------------------------------------------


def test_builtin_pool_is_large_distinct_and_stable():
    from gsal_tf.benchmark.textures import builtin_pool

    names = texture_names()
    assert len(names) >= 25 and len(set(names)) == len(names)
    assert gs.benchmark.textures.texture_names() == names
    canvases = builtin_pool(64).canvases
    assert canvases.shape == (len(names), 256, 256) and canvases.dtype == np.float32
    assert canvases.min() >= 0 and canvases.max() <= 1
    assert (canvases.std(axis=(1, 2)) > 0.2).all(), "every texture has contrast"
    flat = canvases.reshape(len(names), -1)
    diffs = np.abs(flat[:, None] - flat[None]).mean(axis=-1)
    assert diffs[~np.eye(len(names), dtype=bool)].min() > 0.1, "no two textures are (nearly) the same picture"
    np.testing.assert_array_equal(builtin_pool(64).canvases, canvases)


# --- samples ------------------------------------------------------------------------------------


def test_shapes_dtypes_and_ranges(mnist):
    s = _data(mnist).samples("test", n=50)
    assert s["image"].shape == (50, 64, 64, 1) and s["image"].dtype == np.float32
    assert 0 <= s["image"].min() and s["image"].max() <= 1
    assert s["segmentation"].shape == (50, 64, 64) and np.issubdtype(s["segmentation"].dtype, np.integer)
    assert set(np.unique(s["segmentation"])) <= set(range(11))
    for key in ("digit_mask", "background_mask", "biased_tile_mask"):
        assert s[key].shape == (50, 64, 64) and s[key].dtype == np.float32
        assert set(np.unique(s[key])) <= {0.0, 1.0}
    assert s["digit"].shape == (50,) and s["is_biased"].dtype == bool
    assert s["tile_textures"].shape == (50, 2) and s["foreground_texture"].shape == (50,)
    assert (s["digit_mask"].sum(axis=(1, 2)) > 50).all(), "every digit is visible"


def test_segmentation_matches_masks(mnist):
    s = _data(mnist).samples("train", n=80)
    seg, fg, bg = s["segmentation"], s["digit_mask"], s["background_mask"]
    np.testing.assert_array_equal(fg + bg, 1)
    np.testing.assert_array_equal(seg == 10, bg == 1)
    np.testing.assert_array_equal(np.where(fg == 1, seg, s["digit"][:, None, None]), np.broadcast_to(s["digit"][:, None, None], seg.shape))
    assert (s["biased_tile_mask"] <= bg).all()


def test_same_seed_same_data_and_test_split_ignores_training_seed(mnist):
    a, b, other = _data(mnist, seed=3), _data(mnist, seed=3), _data(mnist, seed=4)
    for split in ("train", "test"):
        sa, sb = a.samples(split, n=40), b.samples(split, n=40)
        for key in sa:
            np.testing.assert_array_equal(sa[key], sb[key], err_msg=key)
    np.testing.assert_array_equal(a.samples("test", n=40)["image"], other.samples("test", n=40)["image"])
    assert not np.array_equal(a.samples("train", n=40)["image"], other.samples("train", n=40)["image"])


def test_shorter_request_is_a_prefix(mnist):
    data = _data(mnist)
    short, long = data.samples("train", n=30), data.samples("train", n=120)
    for key in short:
        np.testing.assert_array_equal(short[key], long[key][:30], err_msg=key)


def test_strong_bias_is_exclusive(mnist):
    data = _data(mnist, "strong")
    s = data.samples("train", n=400)
    bias, rows = data.bias_texture, np.arange(400)
    np.testing.assert_array_equal(s["is_biased"], s["digit"] == data.config.bias.digit)
    biased = s["is_biased"]
    assert biased.sum() > 20
    assert (s["tile_textures"][rows[biased], s["biased_tile"][biased]] == bias).all()
    assert ((s["tile_textures"][biased] == bias).sum(axis=1) == 1).all(), "only the biased tile"
    assert (s["foreground_texture"] != bias).all()
    assert not _holds(s, bias)[~biased].any(), "never in other digits' samples"
    assert (s["biased_tile"][~biased] == -1).all()


def test_weak_bias_also_occurs_elsewhere(mnist):
    data = _data(mnist, "weak")
    s = data.samples("train", n=400)
    bias, rows = data.bias_texture, np.arange(400)
    biased = s["is_biased"]
    np.testing.assert_array_equal(biased, s["digit"] == data.config.bias.digit)
    assert (s["tile_textures"][rows[biased], s["biased_tile"][biased]] == bias).all()
    elsewhere = _holds(s, bias)[~biased]
    assert 0 < elsewhere.mean() < 0.3, "non-exclusive, but only by chance"


def test_unbiased_has_no_biased_tiles(mnist):
    s = _data(mnist, "unbiased").samples("train", n=200)
    assert not s["is_biased"].any() and not s["biased_tile_mask"].any()
    assert (s["biased_tile"] == -1).all()


@pytest.mark.parametrize("tiles", [1, 2, 4])
def test_tile_geometry(mnist, tiles):
    data = _data(mnist, tiles=tiles)
    s = data.samples("train", n=200)
    assert s["tile_textures"].shape == (200, tiles)
    distinct = np.concatenate([s["tile_textures"], s["foreground_texture"][:, None]], axis=1)
    assert all(len(set(row)) == tiles + 1 for row in distinct), "fg and tiles differ within a sample"
    expected_tiles = {1: [(0, 64, 0, 64)], 2: [(0, 32, 0, 64), (32, 64, 0, 64)]}.get(tiles)
    if expected_tiles is None:
        expected_tiles = [(0, 32, 0, 32), (0, 32, 32, 64), (32, 64, 0, 32), (32, 64, 32, 64)]
    assert gs.benchmark.tile_boxes(64, tiles) == expected_tiles
    for i in np.flatnonzero(s["is_biased"]):
        top, bottom, left, right = expected_tiles[s["biased_tile"][i]]
        region = np.zeros((64, 64), bool)
        region[top:bottom, left:right] = True
        np.testing.assert_array_equal(s["biased_tile_mask"][i] == 1, region & (s["background_mask"][i] == 1))
    assert len(set(s["biased_tile"][s["is_biased"]])) == tiles, "the biased tile varies"


def test_image_pixels_show_the_recorded_textures(mnist):
    """With a pool of horizontal and vertical stripes, every region must be constant along rows
    (horizontal) or columns (vertical), as its recorded texture says."""
    data = _data(mnist, textures={"names": STRIPES}, bias={"texture": "stripes_h_wide"}, tiles=2)
    s = data.samples("train", n=60)
    horizontal = np.array(["_h_" in name for name in data.texture_names])
    assert data.texture_names == STRIPES
    image = s["image"][..., 0]
    for i in range(60):
        regions = [(s["digit_mask"][i] == 1, s["foreground_texture"][i])]
        for k, (top, bottom, left, right) in enumerate(gs.benchmark.tile_boxes(64, 2)):
            tile = np.zeros((64, 64), bool)
            tile[top:bottom, left:right] = True
            regions.append((tile & (s["background_mask"][i] == 1), s["tile_textures"][i, k]))
        for region, texture in regions:
            axis = 1 if horizontal[texture] else 0  # along rows for horizontal stripes
            high = np.where(region, image[i], -np.inf).max(axis=axis)
            low = np.where(region, image[i], np.inf).min(axis=axis)
            lines = region.any(axis=axis)
            assert lines.any() and (high - low)[lines].max() == 0, f"sample {i}: region is not {data.texture_names[texture]}"


def test_user_texture_folder(mnist, tmp_path):
    folder = tmp_path / "textures"
    folder.mkdir()
    rng = np.random.default_rng(1)
    small = (np.indices((20, 20)).sum(axis=0) % 2 * 255).astype(np.uint8)  # 20 px: must be tiled
    cv2.imwrite(str(folder / "checks.png"), small)
    cv2.imwrite(str(folder / "noise.jpg"), rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))  # colour
    cv2.imwrite(str(folder / "rows.bmp"), np.repeat((np.arange(50) % 6 < 3)[:, None] * 255, 40, axis=1).astype(np.uint8))
    cv2.imwrite(str(folder / "cols.png"), np.repeat((np.arange(50) % 8 < 4)[None] * 255, 50, axis=0).astype(np.uint8))
    (folder / "notes.txt").write_text("not an image")
    cfg = load_config(CONFIGS / "strong.toml", bias={"texture": "rows"})
    data = TextureMNIST(cfg, mnist=mnist, textures=folder)
    assert data.texture_names == ["checks", "cols", "noise", "rows"]
    assert data.pool.canvases.shape == (4, 256, 256)
    s = data.samples("train", n=100)
    assert 0 <= s["image"].min() and s["image"].max() <= 1
    assert s["is_biased"].any() and not s["is_biased"].all()
    assert (s["tile_textures"][s["is_biased"], s["biased_tile"][s["is_biased"]]] == 3).all()
    assert not _holds(s, 3)[~s["is_biased"]].any()

    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(GsalInputError, match="cannot read"):
        TextureMNIST(cfg, mnist=mnist, textures=folder)
    with pytest.raises(GsalInputError, match="does not exist"):
        TextureMNIST(cfg, mnist=mnist, textures=tmp_path / "missing")


def _write_gif(path, gray):
    """A valid GIF of ``gray`` (H,W) uint8, quantised to 128 levels, without a GIF library:
    7-bit LZW with a clear code every 100 pixels keeps every code 8 bits wide, so the code
    stream is the pixel indices themselves."""
    import struct

    h, w = gray.shape
    index = (gray // 2).astype(np.uint8).ravel()
    codes = []
    for lo in range(0, index.size, 100):
        codes += [128] + index[lo:lo + 100].tolist()  # 128 = clear code
    data = bytes(codes + [129])  # 129 = end of information
    blocks = b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255))
    palette = bytes(v for i in range(128) for v in (2 * i,) * 3)
    path.write_bytes(b"GIF89a" + struct.pack("<HHBBB", w, h, 0xF6, 0, 0) + palette
                     + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x07" + blocks + b"\x00\x3b")


def test_user_texture_folder_reads_gif(tmp_path):
    from gsal_tf.benchmark.textures import folder_pool

    stripes = np.repeat((np.arange(24) % 6 < 3)[:, None] * 200 + 20, 24, axis=1).astype(np.uint8)
    _write_gif(tmp_path / "stripes.gif", stripes)
    cv2.imwrite(str(tmp_path / "same.png"), (stripes // 2) * 2)
    pool = folder_pool(tmp_path, image_size=64)
    assert pool.names == ["same", "stripes"]
    np.testing.assert_allclose(pool.canvases[1], pool.canvases[0], atol=1e-6)  # the GIF's pixels, tiled
    assert pool.canvases[1].std() > 0.1


# --- storage ------------------------------------------------------------------------------------


def test_generate_then_load_round_trip(mnist, tmp_path):
    data = _data(mnist)
    progress = []
    card = data.generate(tmp_path / "ds", splits={"train": 1200, "test": 30}, progress=lambda *a: progress.append(a))
    assert progress == [("train", 1000, 1200), ("train", 1200, 1200), ("test", 30, 30)]
    on_disk = json.loads((tmp_path / "ds" / "card.json").read_text())
    assert on_disk["splits"]["train"]["n"] == 1200 and len(on_disk["splits"]["train"]["shards"]) == 2
    assert sum(on_disk["splits"]["train"]["per_digit"]) == 1200
    assert on_disk["splits"]["test"]["bias_texture_elsewhere"] == 0
    assert load_config(on_disk["config"]) == data.config
    assert card["files"][-1] == "card.json"

    for split, n in (("train", 1200), ("test", 30)):
        loaded, fresh = load_samples(tmp_path / "ds", split), data.samples(split, n=n)
        assert loaded.keys() == fresh.keys()
        for key in fresh:
            np.testing.assert_array_equal(loaded[key], fresh[key], err_msg=f"{split}/{key}")
    assert len(load_samples(tmp_path / "ds", "train", n=5)["digit"]) == 5
    with pytest.raises(GsalInputError, match="not a TextureMNIST folder"):
        load_samples(tmp_path, "train")
    with pytest.raises(GsalInputError, match="n must be"):
        load_samples(tmp_path / "ds", "test", n=31)


def test_load_dataset_feeds_keras_fit(mnist, tmp_path):
    import keras

    _data(mnist).generate(tmp_path / "ds", splits={"train": 40, "test": 10})
    dataset = load_dataset(tmp_path / "ds", "train", batch_size=16, shuffle=True, seed=0)
    image, segmentation = next(iter(dataset))
    assert image.shape == (16, 64, 64, 1) and image.dtype.name == "float32"
    assert segmentation.shape == (16, 64, 64) and segmentation.dtype.name == "int32"
    reference = load_samples(tmp_path / "ds", "test")
    batch = next(iter(load_dataset(tmp_path / "ds", "test", batch_size=10, as_dict=True)))
    for key in ("image", "segmentation", "biased_tile_mask", "tile_textures"):
        np.testing.assert_array_equal(batch[key].numpy(), reference[key], err_msg=key)

    model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Conv2D(11, 3, padding="same")])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


# --- CLI ----------------------------------------------------------------------------------------


def _cli():
    from gsal_cli.main import app

    return app


def test_cli_generate_end_to_end(mnist, tmp_path):
    out = tmp_path / "strong"
    args = ["benchmark", "generate", "--config", str(CONFIGS / "strong.toml"), "--mnist", str(mnist)]
    result = CliRunner().invoke(_cli(), args + ["--n-train", "50", "--n-test", "20", "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    card = json.loads((out / "card.json").read_text())
    assert card["config"]["seed"] == 7 and card["splits"]["train"]["n"] == 50 and card["splits"]["test"]["n"] == 20
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "test-00000.npz", "train-00000.npz"]
    assert "wrote" in result.output and "biased" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["strong"], "no scratch folders left behind"

    # A user texture folder has no "bricks": the bias texture and digit can be chosen on the command line.
    folder = tmp_path / "textures"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"t{i}.png"), np.random.default_rng(i).integers(0, 256, (40, 40), dtype=np.uint8))
    mine = tmp_path / "mine"
    result = CliRunner().invoke(_cli(), args + ["--textures", str(folder), "--bias-texture", "t2", "--bias-digit", "4",
                                                "--n-train", "40", "--n-test", "0", "--out", str(mine)])
    assert result.exit_code == 0, result.output
    card = json.loads((mine / "card.json").read_text())
    assert card["config"]["bias"]["digit"] == 4 and card["bias_texture"] == {"index": 2, "name": "t2"}
    s = load_samples(mine, "train")
    assert s["is_biased"].any()
    assert (s["tile_textures"][s["is_biased"], s["biased_tile"][s["is_biased"]]] == 2).all() and (s["digit"][s["is_biased"]] == 4).all()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n-train", "-3"], "n_train"),
        (["--mnist", "missing.npz"], "does not exist"),
        (["--textures", "no-such-folder"], "does not exist"),
        (["--bias-texture", "no-such-texture"], "set [bias] texture"),
        (["--bias-digit", "12"], "bias.digit"),
    ],
)
def test_cli_bad_input_exits_2_without_output(mnist, tmp_path, extra, message):
    out = tmp_path / "never"
    args = ["benchmark", "generate", "--config", str(CONFIGS / "weak.toml"), "--mnist", str(mnist), "--out", str(out)]
    result = CliRunner().invoke(_cli(), args + extra)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not out.exists()
