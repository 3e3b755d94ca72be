"""Training lowers the loss; `evaluate` and `compare-backbones` run end to end on tiny data/models."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from conftest import figure_parts, one_error
from gsal_cli.main import app
from gsal_tf.compare import rank_correlation, top_cell_iou
from gsal_tf.models.known_context import known_context_image, known_context_model
from gsal_tf.benchmark.training import TrainConfig, class_weights, train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
runner = CliRunner()


def test_class_weights_balance_the_mean_pixel_weight():
    seg = np.array([[[10, 10, 10, 1]]])
    w = class_weights(seg, power=1.0, num_classes=11)
    assert w[1] > w[10]
    freq = np.array([0, 0.25] + [0] * 8 + [0.75])
    assert np.isclose((w * freq).sum(), 1.0)


def test_short_training_lowers_the_loss(strong_dir, tmp_path):
    from conftest import TINY_DEEPLAB

    model_opts = {k: v for k, v in TINY_DEEPLAB.items()}
    cfg = TrainConfig(architecture="mobilenetv2-tiny", model=model_opts, epochs=3, batch_size=16, learning_rate=5e-3, warmup_epochs=0.2, val_fraction=0.1)
    on_disk = []  # the history file as it stands at each epoch's end: a long run can be watched

    def watch(epoch, row):
        on_disk.append([r["epoch"] for r in json.loads((tmp_path / "run" / "history.json").read_text())])

    metrics = train(strong_dir, tmp_path / "run", cfg, on_epoch_end=watch)
    assert on_disk == [[1], [1, 2], [1, 2, 3]]
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    assert (tmp_path / "run" / "model.keras").is_file()
    assert 0.0 <= metrics["test"]["mean_iou"] <= 1.0 and len(metrics["test"]["iou_per_class"]) == 11


def test_train_config_file_and_bad_values(tmp_path):
    cfg = TrainConfig.from_toml(CONFIGS / "train" / "mobilenetv2.toml", epochs=2)
    assert cfg.epochs == 2 and cfg.architecture == "mobilenetv2-tiny"
    legacy = tmp_path / "legacy.toml"  # the [model] key's name before version 0.2
    legacy.write_text('[model]\npreset = "xception-tiny"\n[train]\nepochs = 1\n')
    assert TrainConfig.from_toml(legacy).architecture == "xception-tiny"
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochz = 3\n")
    with pytest.raises(gs.GsalInputError, match="unknown option"):
        TrainConfig.from_toml(bad)


def test_train_cli_refuses_a_backbone_that_contradicts_the_recipe(strong_dir, tmp_path):
    out = tmp_path / "never"
    res = runner.invoke(app, ["benchmark", "train", "--data", str(strong_dir), "--backbone", "mobilenetv2",
                              "--config", str(CONFIGS / "train" / "xception.toml"), "--out", str(out)])
    assert res.exit_code == 2 and "does not match" in res.output and "configs/train/mobilenetv2.toml" in res.output
    assert "Traceback" not in res.output and not out.exists()


def test_evaluate_end_to_end_writes_report_and_figures(strong_dir, tiny_deeplab_file, tmp_path, saved_figures):
    out = tmp_path / "eval"
    res = runner.invoke(app, ["benchmark", "evaluate", "--model", str(tiny_deeplab_file), "--data", str(strong_dir),
                              "--reference", str(tiny_deeplab_file), "--unbiased-data", str(strong_dir), "--out", str(out),
                              "--methods", "grid,gradients", "--per-digit", "2", "--biased", "4", "--iterations", "5"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    digit = gs.benchmark.load_config(CONFIGS / "benchmark" / "strong.toml").bias.digit
    assert report["bias_digit"] == digit
    assert set(report["explanations"]["methods"]) == {"grid_saliency", "vanilla_gradients"}  # old names are aliases
    grid = report["explanations"]["methods"]["grid_saliency"]
    assert len(grid["cbd_by_digit"]) == 10 and grid["cbl_n"] + grid["cbl_nan"] == 4
    assert report["iou"]["drop"][digit] == 0.0  # the reference is the same model
    for name in ("cbd.png", "cbl.png", "iou.png"):
        img = cv2.imread(str(out / name))
        assert img is not None and img.shape[0] > 100 and img.shape[1] > 200
    figures = {path.name: figure_parts(fig) for fig, path in saved_figures}
    assert set(figures) == {"cbd.png", "cbl.png", "iou.png"}
    cbd = figures["cbd.png"]
    rows = [t.get_text() for t in cbd["axes"]["matrix"].get_yticklabels()]
    assert rows == ["grid_saliency", "vanilla_gradients"]  # two methods, one row each
    assert [t.get_text() for t in cbd["axes"]["matrix"].get_xticklabels()] == [str(d) for d in range(10)]
    assert cbd["titles"][0].startswith("CBD") and str(tiny_deeplab_file) in cbd["titles"][0] and f"bias digit {digit}" in cbd["titles"][0]
    assert cbd["colorbar"] == ["CBD (mean saliency on the context)"]
    cbl = figures["cbl.png"]
    bars = [t.get_text() for t in cbl["axes"]["bars"].get_xticklabels()]
    assert bars[0] == "grid_saliency" and "inflation\nbaseline" in bars and "chance (0.5)" in cbl["legend"]
    iou = figures["iou.png"]
    assert [t.get_text() for t in iou["axes"]["matrix"].get_xticklabels()][-1] == "background"
    assert [t.get_text() for t in iou["axes"]["matrix"].get_yticklabels()] == [f"explained: {tiny_deeplab_file}", f"reference: {tiny_deeplab_file}"]
    assert iou["colorbar"] == ["IoU"]


def test_evaluate_bad_input(tmp_path, tiny_deeplab_file):
    res = runner.invoke(app, ["benchmark", "evaluate", "--model", str(tiny_deeplab_file), "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    one_error(res, f"{tmp_path / 'none'}' is not a TextureMNIST folder", "gsal benchmark generate")
    assert not (tmp_path / "o").exists()


def test_agreement_metrics_by_hand():
    a = np.array([[0.9, 0.1], [0.0, 0.5]])
    b = np.array([[0.8, 0.0], [0.2, 0.7]])
    assert top_cell_iou(a, b, fraction=0.5) == 1.0  # both top-2 cells are {0, 3}
    assert top_cell_iou(a, np.array([[0.0, 0.9], [0.8, 0.1]]), fraction=0.5) == 0.0
    assert np.isclose(rank_correlation(a, b), 0.8)  # ranks (3,1,0,2) vs (3,0,1,2): 1 - 6*2/(4*15)
    assert np.isnan(rank_correlation(a, np.zeros((2, 2))))
    assert np.isnan(top_cell_iou(a, np.zeros((2, 2))))  # a model that keeps no context has no top cells


def test_compare_backbones_end_to_end(tmp_path, saved_figures):
    shape, target = (32, 32, 1), (12, 12, 20, 20)
    left = known_context_model(shape, [(0, 0, 8, 8)], target)
    right = known_context_model(shape, [(0, 0, 8, 8), (24, 24, 32, 32)], target)
    left.save(tmp_path / "left.keras")
    right.save(tmp_path / "right.keras")
    np.save(tmp_path / "image.npy", known_context_image(shape, [(0, 0, 8, 8), (24, 24, 32, 32)]))
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare-backbones", str(tmp_path / "image.npy"), "--models", f"{tmp_path / 'left.keras'},{tmp_path / 'right.keras'}",
                              "--request-point", "15,15", "--grid", "4", "--iterations", "60", "--out", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["class_id"] == 1 and summary["request_pixels"] == 64
    assert summary["models"]["left"]["salient_context_share"] < summary["models"]["right"]["salient_context_share"]
    (agree,) = summary["agreement"]
    assert 0.0 < agree["top_cell_iou"] < 1.0
    fig = cv2.imread(str(out / "comparison.png"))
    assert fig is not None and fig.shape[0] > 256 and fig.shape[1] > 512
    (figure, path), = saved_figures
    parts = figure_parts(figure)
    assert path.name == "comparison.png"
    assert parts["labels"].count("image") == 1  # image + 2 x (prediction, saliency)
    assert parts["labels"].count("prediction") == 2 and parts["labels"].count("saliency") == 2
    assert [t for t in parts["titles"] if t in ("left", "right")] == ["left", "right"]  # the models' names head their columns
    assert parts["legend"][:2] == ["request R", "class 0"] and "class 1 (explained)" in parts["legend"]
    assert parts["colorbar"] == ["saliency: kept fraction of each cell"]
    for name in ("left", "right"):
        assert f"preserved score {summary['models'][name]['preserved_score']:.3f}" in " ".join(parts["xlabels"])
    assert np.load(out / "saliency_right.npy").shape == (32, 32)


def test_compare_backbones_tells_models_of_one_file_name_apart(tmp_path, saved_figures):
    """`gsal benchmark train` names every model model.keras: the folders tell them apart."""
    shape, target = (32, 32, 1), (12, 12, 20, 20)
    for folder, patches in (("mnv2", [(0, 0, 8, 8)]), ("xception", [(0, 0, 8, 8), (24, 24, 32, 32)])):
        (tmp_path / folder).mkdir()
        known_context_model(shape, patches, target).save(tmp_path / folder / "model.keras")
    np.save(tmp_path / "image.npy", known_context_image(shape, [(0, 0, 8, 8), (24, 24, 32, 32)]))
    models = f"{tmp_path / 'mnv2' / 'model.keras'},{tmp_path / 'xception' / 'model.keras'}"
    args = ["compare-backbones", str(tmp_path / "image.npy"), "--request-point", "15,15", "--grid", "4", "--iterations", "5"]
    res = runner.invoke(app, [*args, "--models", models, "--baseline", "0.5", "--upsampling", "bilinear", "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert set(summary["models"]) == {"mnv2-model", "xception-model"}
    assert summary["settings"]["baseline"] == 0.5 and summary["settings"]["upsampling"] == "bilinear"
    assert (tmp_path / "cmp" / "saliency_mnv2-model.npy").is_file() and (tmp_path / "cmp" / "saliency_xception-model.npy").is_file()
    twice = runner.invoke(app, [*args, "--models", f"{tmp_path / 'mnv2' / 'model.keras'},{tmp_path / 'mnv2' / 'model.keras'}",
                                "--out", str(tmp_path / "twice")])
    one_error(twice, "the same model is given twice in --models")
    assert not (tmp_path / "twice").exists()


def test_bias_reliance_on_models_with_known_answers():
    """Paired test: same digits without / with the bias texture (top half = 1); NumPy reference."""
    from gsal_tf.benchmark.evaluation import bias_reliance

    digits = np.array([9, 9, 3, 9])
    mask = np.zeros((4, 8, 8), np.float32)
    mask[:, 5:7, 2:6] = 1  # 8 digit pixels per sample, half of them in the left half
    without = {"digit": digits, "digit_mask": mask, "image": np.zeros((4, 8, 8, 1), np.float32)}
    textured = np.zeros((4, 8, 8, 1), np.float32)
    textured[:, :4] = 1
    with_bias = {**without, "image": textured}

    def onehot(classes):  # (N,8,8) ints -> (N,8,8,11) probabilities
        return np.eye(11, dtype=np.float32)[classes]

    def reads_texture(x, training=False):  # 9 everywhere iff the top half is bright, else 0
        on = x[:, :4].mean(axis=(1, 2, 3)) > 0.5
        return onehot(np.where(on[:, None, None], 9, 0) * np.ones((1, 8, 8), int))

    def ignores_it_left_nine(x, training=False):  # 9 on the left half whatever the texture
        return onehot(np.broadcast_to(np.where(np.arange(8) < 4, 9, 3), (len(x), 8, 8)))

    r = bias_reliance(reads_texture, without, with_bias, 9, batch_size=2)
    assert (r["called_without"], r["called_with"], r["gain"], r["samples"]) == (0.0, 1.0, 1.0, 3)
    r = bias_reliance(ignores_it_left_nine, without, with_bias, 9)
    expected = float((mask[digits == 9][:, :, :4] > 0).sum() / (mask[digits == 9] > 0).sum())  # 0.5
    assert r["called_without"] == r["called_with"] == pytest.approx(expected) and r["gain"] == 0.0
    with pytest.raises(gs.GsalInputError, match="same digits"):
        bias_reliance(reads_texture, without, {**with_bias, "digit": digits[::-1]}, 9)
    with pytest.raises(gs.GsalInputError, match="no sample of digit 7"):
        bias_reliance(reads_texture, without, with_bias, 7)
