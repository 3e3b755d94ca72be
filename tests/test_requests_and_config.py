"""Request helpers (pure NumPy) and the TOML explain config."""

import inspect
from pathlib import Path

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf import requests

ROOT = Path(__file__).resolve().parents[1]


def test_class_and_component_requests():
    labels = np.zeros((6, 6), int)
    labels[0:2, 0:2] = 3
    labels[4:6, 4:6] = 3
    np.testing.assert_array_equal(requests.class_request(labels, 3).sum(), 8)
    comp = requests.component_request(labels, (5, 5))
    assert comp.sum() == 4 and comp[5, 5] == 1 and comp[0, 0] == 0
    scores = np.eye(4)[labels]  # (H,W,K) one-hot scores reduce by argmax
    np.testing.assert_array_equal(requests.class_request(scores, 3), requests.class_request(labels, 3))
    diag = np.eye(4, dtype=int)  # 4-connectivity splits a diagonal, 8 joins it
    assert requests.component_request(diag, (0, 0), connectivity=8).sum() == 4
    assert requests.component_request(diag, (0, 0), connectivity=4).sum() == 1
    with pytest.raises(gs.GsalInputError, match="no pixel is predicted as class 5"):
        requests.class_request(labels, 5)
    with pytest.raises(gs.GsalInputError, match="outside the image"):
        requests.component_request(labels, (6, 0))


def test_error_request_finds_misclassified_pixels():
    truth = np.array([[1, 1, 2], [1, 0, 2]])
    pred = np.array([[1, 2, 2], [3, 0, 2]])
    np.testing.assert_array_equal(requests.error_request(pred, truth, 1), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(requests.error_request(pred, truth, 1, predicted_as=3), [[0, 0, 0], [1, 0, 0]])
    with pytest.raises(gs.GsalInputError, match="misclassified"):
        requests.error_request(pred, truth, 2)


def test_box_and_file_requests(tmp_path):
    box = requests.box_request((10, 12), (2, 3, 5, 20))
    assert box.sum() == 3 * 9 and box[2, 3] == 1 and box[5, 3] == 0
    with pytest.raises(gs.GsalInputError, match="does not overlap"):
        requests.box_request((10, 12), (20, 20, 30, 30))
    img = np.zeros((10, 12), np.uint8)
    img[1:4, 1:5] = 255
    cv2.imwrite(str(tmp_path / "m.png"), img)
    assert requests.mask_from_image(tmp_path / "m.png", shape=(10, 12)).sum() == 12
    with pytest.raises(gs.GsalInputError, match="image is 8x8"):
        requests.mask_from_image(tmp_path / "m.png", shape=(8, 8))
    with pytest.raises(gs.GsalInputError, match="not found"):
        requests.mask_from_image(tmp_path / "none.png")


def test_default_explain_config_equals_the_api_defaults():
    config = gs.GridSaliency.options_from_toml(ROOT / "configs" / "explain" / "default.toml")
    # A default of None (output: what the model declares) has no TOML form: the file leaves it unset.
    defaults = {k: p.default for k, p in inspect.signature(gs.GridSaliency.__init__).parameters.items()
                if k not in ("self", "model") and p.default is not None}
    assert config == defaults


def test_explain_config_with_unknown_key_is_refused(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[explain]\nlamda = 0.1\n")
    with pytest.raises(gs.GsalInputError, match="unknown option"):
        gs.GridSaliency.options_from_toml(p)


def test_every_shipped_config_loads_with_its_reader():
    """Each TOML file under configs/ is read by the reader of its folder, as the command that takes
    it would (a key renamed in the library cannot leave a shipped config unreadable)."""
    from gsal_tf.benchmark.protocol import Protocol
    from gsal_tf.benchmark.training import TrainConfig
    from gsal_tf.zoo.build import read_plan

    readers = {
        "explain": gs.GridSaliency.options_from_toml,
        "benchmark": gs.benchmark.load_config,
        "train": TrainConfig.from_toml,
        "protocol": Protocol.from_toml,
        "zoo": read_plan,
    }
    files = sorted((ROOT / "configs").rglob("*.toml"))
    assert files
    for path in files:
        folder = path.relative_to(ROOT / "configs").parts[0]
        assert folder in readers, f"{path}: no reader known for configs/{folder}/"
        assert readers[folder](path), path


def test_every_benchmark_settings_file_names_explainer_options_that_exist():
    """benchmarks/settings/: each ``[[setting]]`` of the defaults studies is a set of GridSaliency
    keywords (``name`` aside), and the error-analysis mapping loads as a label mapping."""
    import inspect
    import tomllib

    from gsal_tf.datasets.mapping import load_mapping

    keywords = set(inspect.signature(gs.GridSaliency.__init__).parameters) - {"self", "model"}
    folder = ROOT / "benchmarks" / "settings"
    studies = sorted(folder.glob("defaults-*.toml"))
    assert studies
    for path in studies:
        settings = tomllib.loads(path.read_text())["setting"]
        for setting in settings:
            unknown = set(setting) - keywords - {"name"}
            assert not unknown, f"{path.name}: {setting['name']!r} has {sorted(unknown)}, not GridSaliency keywords"
    assert load_mapping(folder / "cityscapes-camvid-errors.toml").network_classes
