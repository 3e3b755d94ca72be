"""``gsal explain`` end to end: outputs, request options, and one clear error per bad input."""

import json

import cv2
import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from conftest import figure_parts, one_error
from gsal_cli.main import app
from gsal_tf.models.known_context import brightness_model, known_context_image, known_context_model

runner = CliRunner()
SHAPE = (32, 32, 3)
PATCHES = [(0, 0, 8, 8)]
TARGET = (12, 12, 20, 20)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    model = known_context_model(SHAPE, PATCHES, TARGET, num_classes=3)
    model.save(d / "model.keras")
    image = known_context_image(SHAPE, PATCHES, seed=1)
    cv2.imwrite(str(d / "image.png"), cv2.cvtColor((image * 255).round().astype(np.uint8), cv2.COLOR_RGB2BGR))
    mask = np.zeros(SHAPE[:2], np.uint8)
    mask[TARGET[0]:TARGET[2], TARGET[1]:TARGET[3]] = 255
    cv2.imwrite(str(d / "request.png"), mask)
    cv2.imwrite(str(d / "empty.png"), np.zeros(SHAPE[:2], np.uint8))
    # Another size is letterboxed to the network's input and a grey image repeated to RGB
    # (tests/test_loading.py); a two-channel image is one the model cannot take.
    np.save(d / "two_channels.npy", np.zeros((16, 16, 2), np.float32))
    bad = image.copy()
    bad[3, 3, 0] = np.nan
    np.save(d / "nan.npy", bad)
    (d / "notanimage.png").write_text("hello")
    flat = keras.Sequential([keras.Input(SHAPE), keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    flat.save(d / "classifier.keras")
    return d


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help():
    version = run("--version")
    assert version.exit_code == 0 and version.output.strip() == f"gsal {gs.__version__}"
    res = run("explain", "--help")
    assert res.exit_code == 0 and "--request-point" in res.output


@pytest.mark.parametrize(
    "command, text",
    [(("explain",), "[explain] table"), (("benchmark", "train"), "[model] and [train] tables"), (("zoo", "build"), "[[model]] entries")],
)
def test_help_keeps_toml_table_names(command, text):
    """rich markup must not swallow the bracketed TOML table names in option help."""
    res = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert res.exit_code == 0 and text in " ".join(res.output.split())


def _commands(group, path=()):
    """Every (path, click command) of the CLI, groups included."""
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_help_keeps_every_word_and_reflows_paragraphs(monkeypatch):
    """Help text is Markdown: hard-wrapped docstring lines join into paragraphs, and nothing a
    docstring or an option's help says (``saliency_<model>.npy``, ``gsal-out/<image name>``,
    ``--demo``) is eaten as markup."""
    import typer.main

    monkeypatch.setenv("COLUMNS", "400")  # rich's console width: one paragraph, one line
    for path, command in _commands(typer.main.get_command(app)):
        res = runner.invoke(app, [*path, "--help"], terminal_width=400)
        assert res.exit_code == 0, path
        lines = [line.strip(" │") for line in res.output.splitlines()]
        for paragraph in (command.help or "").split("\n\n"):
            words = paragraph.replace("`", "").split()
            if not words or len(" ".join(words)) > 380:
                continue
            assert " ".join(words) in lines, (path, paragraph)
        # option and argument help, wherever the panel wraps it
        shown = " ".join(res.output.replace("│", " ").split())
        for param in command.params:
            text = " ".join((getattr(param, "help", None) or "").replace("`", "").replace("\\[", "[").split())
            assert text in shown, (path, param.name, text)
        # Arguments are named as the docstrings name them (``Export MODEL``) in the usage line (and so
        # in click's error for a missing one), not by the Python parameter (``{model}``).
        for param in command.params:
            if param.param_type_name == "argument":
                assert param.metavar == param.name.upper(), (path, param.name)
                assert param.metavar in res.output.split("Usage:")[1].splitlines()[0], (path, param.name)


def test_explain_writes_saliency_overlay_and_summary(files, tmp_path, saved_figures):
    out = tmp_path / "out"
    res = run("explain", files / "image.png", "--model", files / "model.keras", "--request", files / "request.png", "--class", 1, "--grid", "4,4", "--iterations", 60, "--out", out)
    assert res.exit_code == 0, res.output
    sal = np.load(out / "saliency.npy")
    assert sal.shape == (32, 32)
    # The one patch the model reads. The smallest context that keeps the target (0.9) keeps the
    # patch's cell partly (0.79 of the patch gives 95 % of the score), nothing else.
    assert sal[:8, :8].mean() > 0.75 and sal[16:, 16:].max() < 0.05
    summary = json.loads((out / "summary.json").read_text())
    assert summary["class_id"] == 1 and summary["preserved_score"] > 0.9
    assert summary["parameters"]["grid_size"] == [4, 4] and summary["parameters"]["iterations"] == 60
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay is not None and overlay.shape[0] >= 256
    assert "preserved score" in res.output
    # The figure explains itself: three titled panels, class legend by name, saliency colour bar, scores.
    (fig, path), = saved_figures
    parts = figure_parts(fig)
    assert path.name == "overlay.png"
    assert parts["labels"][:3] == ["image", "prediction", "saliency"] and "colorbar" in parts["labels"]
    assert parts["titles"][:3] == ["image, request outlined", "prediction", "grid saliency"]
    assert "model.keras" in parts["suptitle"] and "class 1" in parts["suptitle"]
    assert parts["legend"][0] == "request R" and "class 1 (explained)" in parts["legend"]  # no zoo entry: "class k"
    assert parts["colorbar"] == ["saliency: kept fraction of each cell"]
    assert f"preserved score {summary['preserved_score']:.3f}" in parts["xlabels"][2]
    assert f"score without context {summary['no_context_score']:.3f}" in parts["xlabels"][2]


def test_request_point_and_request_class_use_the_prediction(files, tmp_path):
    res = run("explain", files / "image.png", "--model", files / "model.keras", "--request-point", "15,15", "--grid", "4", "--iterations", 40, "--out", tmp_path / "a")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["class_id"] == 1 and summary["request_pixels"] == 64
    res = run("explain", files / "image.png", "--model", files / "model.keras", "--request-class", 1, "--grid", "4", "--iterations", 40, "--out", tmp_path / "b")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["request_pixels"] == 64


def test_config_file_and_cli_override(files, tmp_path):
    cfg = tmp_path / "p.toml"
    cfg.write_text("[explain]\ngrid_size = [2, 2]\niterations = 7\nbaseline = \"blur\"\n")
    res = run("explain", files / "image.png", "--model", files / "model.keras", "--request", files / "request.png", "--class", 1, "--config", cfg, "--iterations", 9, "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    params = json.loads((tmp_path / "o" / "summary.json").read_text())["parameters"]
    assert params["grid_size"] == [2, 2] and params["iterations"] == 9 and params["baseline"] == "blur"


def test_learning_rate_option_reaches_the_explainer(files, tmp_path):
    args = ("explain", files / "image.png", "--model", files / "model.keras", "--request-class", 1, "--grid", "2", "--iterations", 3)
    res = run(*args, "--learning-rate", 0.03, "--out", tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["parameters"]["learning_rate"] == 0.03
    bad = run(*args, "--learning-rate", 0, "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "'--learning-rate': 0.0 is not a number > 0.0" in bad.output and not (tmp_path / "x").exists()


@pytest.mark.parametrize("option, value, message", [
    ("--mode", "half", "'--mode': 'half' is not one of context, full"),
    ("--upsampling", "cubic", "'--upsampling': 'cubic' is not one of nearest, bilinear"),
    ("--moments", "kept", "'--moments': 'kept' is not one of restart, keep, auto"),
    ("--output", "results/", "'--output': 'results/' is not one of probabilities, logits"),
    ("--iterations", "0", "'--iterations'"),
    ("--lam", "-1", "'--lam': -1.0 is not a number >= 0.0"),
    ("--target", "1.5", "'--target': 1.5 is not a number >= 0.0 and <= 1.0"),
    ("--lam", "nan", "'--lam': nan is not a number >= 0.0"),
])
def test_choices_and_ranges_are_refused_while_parsing(files, tmp_path, monkeypatch, option, value, message):
    """Before any model loads (loading would fail here), naming the option."""
    import gsal_cli.explain

    monkeypatch.setattr(gsal_cli.explain, "resolve_model", lambda *a, **k: pytest.fail("the model was loaded"))
    res = run("explain", files / "image.png", "--model", files / "model.keras", "--request-class", 1, option, value, "--out", tmp_path / "x")
    assert res.exit_code == 2 and message in " ".join(res.output.replace("│", " ").split()), res.output
    assert "Traceback" not in res.output and not (tmp_path / "x").exists()


def test_demo_refuses_request_options_it_would_ignore(tmp_path):
    res = run("explain", "--demo", "--class", 3, "--request-class", 9, "--out", tmp_path / "demo")
    one_error(res, "--demo explains its own image, request and class; drop --request-class, --class or drop --demo")
    assert not (tmp_path / "demo").exists()
    one_error(run("explain", "--demo", "--pixel-scale", 1, "--out", tmp_path / "demo"), "drop --pixel-scale or drop --demo")
    one_error(run("compare-backbones", "--demo", "--pixel-scale", 1, "--out", tmp_path / "demo"), "drop --pixel-scale or drop --demo")
    assert not (tmp_path / "demo").exists()


def test_demo_runs(tmp_path, saved_figures):
    res = run("explain", "--demo", "--out", tmp_path / "demo")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo" / "overlay.png").is_file()
    parts = figure_parts(saved_figures[0][0])  # a zoo model: its class names, "background" named
    assert "tmnist-mobilenetv2-strong" in parts["suptitle"] and {"class 9 (explained)", "background"} <= set(parts["legend"])


def test_figure_format_svg(files, tmp_path):
    out = tmp_path / "svg"
    res = run("explain", files / "image.png", "--model", files / "model.keras", "--request-class", 1, "--grid", "2", "--iterations", 3,
              "--figure-format", "svg", "--out", out)
    assert res.exit_code == 0, res.output
    assert (out / "overlay.svg").read_text().lstrip().startswith("<?xml") and not (out / "overlay.png").exists()
    assert "overlay.svg" in res.output
    bad = run("explain", files / "image.png", "--model", files / "model.keras", "--request-class", 1, "--figure-format", "gif", "--out", tmp_path / "x")
    assert bad.exit_code == 2 and "'gif' is not one of 'png', 'svg', 'pdf'" in " ".join(bad.output.replace("│", " ").split())
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.png", "--model", "{d}/model.keras", "--request-class", "1"], "image not found"),
        (["{d}/notanimage.png", "--model", "{d}/model.keras", "--request-class", "1"], "cannot read"),
        (["{d}/image.png", "--model", "{d}/nope.keras", "--request-class", "1"], "model not found"),
        (["{d}/two_channels.npy", "--model", "{d}/model.keras", "--request-point", "1,1"], "cannot take images"),
        (["{d}/image.png", "--model", "{d}/model.keras", "--request", "{d}/empty.png", "--class", "1"], "empty request"),
        (["{d}/image.png", "--model", "{d}/model.keras", "--request", "{d}/request.png", "--class", "7"], "out of range"),
        (["{d}/image.png", "--model", "{d}/model.keras", "--request-class", "2"], "no pixel is predicted as class 2"),
        (["{d}/nan.npy", "--model", "{d}/model.keras", "--request", "{d}/request.png", "--class", "1"], "NaN"),
        (["{d}/image.png", "--model", "{d}/classifier.keras", "--request", "{d}/request.png", "--class", "1"], "(N,h,w,K)"),
        (["{d}/image.png", "--model", "{d}/model.keras", "--request-point", "99,1"], "outside the image"),
        (["{d}/image.png", "--model", "{d}/model.keras"], "exactly one of"),
        (["{d}/image.png", "--model", "{d}/model.keras", "--request-class", "1", "--grid", "a,b"], "--grid"),
        (["{d}/image.png", "--model", "{d}/model.keras", "--request-class", "1", "--baseline", "zeros"], "--baseline"),
    ],
)
def test_bad_input_is_one_red_line_and_no_output(files, tmp_path, args, message):
    out = tmp_path / "out"
    res = run("explain", *[a.format(d=files) for a in args], "--iterations", 3, "--out", out)
    one_error(res, message)
    assert not out.exists()
    assert not list(tmp_path.glob(".gsal-stage-*"))


def test_demo_class_is_the_predicted_digit_never_background():
    from gsal_tf.zoo.demo import predicted_digit

    labels = np.full((8, 8), 10)
    labels[2:4, 2:4] = 9   # 4 pixels of 9, 2 of 4, the rest of the request is background
    labels[5, 5:7] = 4
    request = np.zeros((8, 8), np.float32)
    request[1:7, 1:7] = 1
    assert predicted_digit(labels, request) == 9


def test_a_uniform_mask_is_reported(tmp_path):
    # A network that reads only the context's overall brightness: with the moments kept the mask
    # dims every cell to one level, and the summary and one warning say so.
    brightness_model(SHAPE).save(tmp_path / "brightness.keras")
    cv2.imwrite(str(tmp_path / "grey.png"), np.full(SHAPE, 230, np.uint8))
    mask = np.zeros(SHAPE[:2], np.uint8)
    mask[12:20, 12:20] = 255
    cv2.imwrite(str(tmp_path / "request.png"), mask)
    res = run("explain", tmp_path / "grey.png", "--model", tmp_path / "brightness.keras", "--request", tmp_path / "request.png",
              "--class", 1, "--grid", "4", "--moments", "keep", "--out", tmp_path / "out")
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["parameters"]["moments"] == "keep" and summary["uniform_mask"] is True
    assert summary["cell_spread"] < 0.1 and summary["preserved_score"] >= 0.9
    text = " ".join(res.output.split())
    assert "every grid cell kept about the same level" in text and "--moments" not in text


def test_the_uniform_warning_suggests_keeping_the_moments_only_when_they_restarted():
    from gsal_cli.explain import summary_warnings

    base = {"converged": True, "preserved_score": 0.95, "uniform_mask": True, "cell_spread": 0.0, "mask_change": 0.0}
    restarted = summary_warnings({**base, "parameters": {"moments": "restart"}})
    assert len(restarted) == 1 and "spread 0.00" in restarted[0] and "try --moments keep" in restarted[0]
    assert "--moments" not in summary_warnings({**base, "parameters": {"moments": "auto"}})[0]
    assert summary_warnings({**base, "uniform_mask": False, "parameters": {}}) == []
