"""Figures and tables read without a caption: panels, legends, colour bars and numbers are on the
figure (checked on the matplotlib Figure objects), tables keep full model names in 80 columns."""

import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from conftest import figure_parts
from gsal_cli.main import app
from gsal_tf import viz
from gsal_tf.benchmark.classes import CLASS_NAMES

ROOT = Path(__file__).resolve().parents[1]


def _case(rng, size=16):
    image = rng.uniform(size=(size, size, 1)).astype(np.float32)
    request = np.zeros((size, size), np.float32)
    request[5:11, 5:11] = 1
    labels = np.full((size, size), 10)
    labels[4:12, 4:12] = 9
    labels[0, 0] = 3
    saliency = np.zeros((size, size), np.float32)
    saliency[:4, :8] = 0.8
    return image, request, labels, saliency


def test_explanation_figure_names_its_panels_classes_and_numbers(rng):
    image, request, labels, saliency = _case(rng)
    fig = viz.explanation_figure(image, request, saliency, 9, prediction=labels, class_names=CLASS_NAMES, model_name="my-model",
                                 preserved_score=0.987654, no_context_score=0.0123)
    parts = figure_parts(fig)
    assert parts["labels"] == ["image", "prediction", "saliency", "colorbar"]
    assert parts["titles"] == ["image, request outlined", "prediction", "grid saliency"]
    assert parts["suptitle"] == "my-model: which context keeps class 9 in the request?"
    assert parts["legend"] == ["request R", "class 3", "class 9 (explained)", "background"]
    assert parts["colorbar"] == [viz.SALIENCY_LABEL]
    bar = parts["axes"]["colorbar"]
    assert [t.get_text() for t in bar.get_yticklabels()] == ["0 removed", "0.25", "0.5", "0.75", "1 kept"]
    assert parts["xlabels"][2] == "preserved score 0.988\nscore without context 0.012"
    # Without a prediction: two panels, still a colour bar.
    two = figure_parts(viz.explanation_figure(image, request, saliency, 2))
    assert two["labels"] == ["image", "saliency", "colorbar"] and two["suptitle"].startswith("which context keeps class 2")


def test_class_names_from_zoo_entry_names_or_fallback():
    model = SimpleNamespace(zoo_entry=SimpleNamespace(class_names=("road", "person")))
    assert viz.class_names(model) == ["road", "person"]
    assert viz.class_names(model, num_classes=3) == ["road", "person", "class 2"]
    assert viz.class_names(object(), num_classes=2) == ["class 0", "class 1"]
    assert viz.class_names(None, names=CLASS_NAMES)[-1] == "background"
    assert viz.class_label(1, ["road", "person"]) == "person (class 1)" and viz.class_label(9, CLASS_NAMES) == "class 9"
    colours = viz.class_colours(21)
    assert colours.shape == (21, 3) and len({tuple(c) for c in colours}) == 21  # PASCAL VOC: 21 distinct colours


def test_comparison_figure_columns_per_model(rng):
    image, request, labels, saliency = _case(rng)
    models = {name: {"prediction": labels, "saliency": saliency, "preserved_score": 0.9, "no_context_score": 0.1}
              for name in ("tmnist-mobilenetv2-strong", "tmnist-xception-strong", "third")}
    parts = figure_parts(viz.comparison_figure(image, request, 9, models, class_names=CLASS_NAMES))
    assert parts["labels"].count("prediction") == 3 and parts["labels"].count("saliency") == 3
    assert [t for t in parts["titles"] if t in models] == list(models)
    assert "class 9 (explained)" in parts["legend"] and parts["colorbar"] == [viz.SALIENCY_LABEL]


def test_matrix_and_bar_figures_label_everything():
    values = np.array([[0.1, np.nan, 0.3], [0.0, 0.2, 0.05]])
    parts = figure_parts(viz.matrix_figure(values, ["a", "b"], ["0", "1", "2"], "T", colorbar_label="CBD", xlabel="digit", highlight_col=1))
    matrix = parts["axes"]["matrix"]
    assert [t.get_text() for t in matrix.texts] == ["0.100", "—", "0.300", "0.000", "0.200", "0.050"]
    assert matrix.get_xlabel() == "digit" and parts["colorbar"] == ["CBD"]
    assert matrix.get_xticklabels()[1].get_fontweight() == "bold"
    parts = figure_parts(viz.bar_figure({"grid_saliency": (0.9, 0.1), "integrated_gradients": (None, None), "x": (0.4, None)}, "T", ylabel="CBL"))
    bars = parts["axes"]["bars"]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["grid_saliency", "integrated_\ngradients", "x"]
    assert {"0.90", "—", "0.40"} <= {t.get_text() for t in bars.texts} and bars.get_ylabel() == "CBL"
    assert parts["legend"] == ["chance (0.5)", "± std"]


@pytest.mark.parametrize("name, fmt, written, magic", [
    ("f.png", None, "f.png", b"\x89PNG"), ("f.svg", None, "f.svg", b"<?xml"), ("f.pdf", None, "f.pdf", b"%PDF"),
    ("f.png", "svg", "f.svg", b"<?xml"), ("f", "pdf", "f.pdf", b"%PDF"), ("f", None, "f.png", b"\x89PNG"),
])
def test_save_figure_format_from_suffix_or_option(tmp_path, name, fmt, written, magic):
    fig = viz.bar_figure({"a": (0.5, None)}, "T")
    path = viz.save_figure(fig, tmp_path / name, fmt)
    assert path == tmp_path / written and path.read_bytes().startswith(magic)


def test_save_figure_refuses_unknown_format_and_unwritable_path(tmp_path):
    fig = viz.bar_figure({"a": (0.5, None)}, "T")
    with pytest.raises(gs.GsalInputError, match="figure format 'gif'"):
        viz.save_figure(fig, tmp_path / "f.png", "gif")
    with pytest.raises(gs.GsalInputError, match="cannot write"):
        viz.save_figure(fig, tmp_path / "missing" / "f.png")


def test_viz_imports_matplotlib_lazily():
    """matplotlib is imported inside the drawing functions, not when gsal_tf.viz is (Keras imports
    matplotlib itself, so ``sys.modules`` cannot tell: the module's own imports are read)."""
    tree = ast.parse((ROOT / "gsal_tf" / "viz.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top for a in n.names] + [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not any(name.startswith(("matplotlib", "typer", "rich")) for name in names)


def _fits(output: str, width: int = 80) -> bool:
    return max(len(line) for line in output.splitlines()) <= width


def test_compare_demo_table_keeps_full_model_names_in_80_columns(tmp_path, saved_figures):
    res = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["compare-backbones", "--demo", "--iterations", "5", "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    for name in ("tmnist-mobilenetv2-strong", "tmnist-xception-strong"):
        assert any(line.startswith(name + " ") for line in lines), res.output  # one row each, the whole name
    assert "…" not in res.output and _fits(res.output), res.output
    parts = figure_parts(saved_figures[0][0])
    assert {"tmnist-mobilenetv2-strong", "tmnist-xception-strong"} <= set(parts["titles"])
    assert {"class 9 (explained)", "background"} <= set(parts["legend"])


@pytest.mark.parametrize("args", [["zoo", "list"], ["zoo", "info", "tmnist-mobilenetv2-unbiased"]])
def test_zoo_tables_fit_80_columns(args):
    res = CliRunner(env={"COLUMNS": "80"}).invoke(app, args)
    assert res.exit_code == 0, res.output
    assert _fits(res.output) and "tmnist-mobilenetv2-unbiased" in res.output
    if args[1] == "list":
        for entry in gs.zoo.list_models():
            assert entry.name in res.output


def test_explain_table_folds_a_long_model_path_instead_of_cutting_it(monkeypatch, capsys):
    from gsal_cli import console as console_module
    from gsal_cli.explain import _print_table

    monkeypatch.setattr(console_module.console, "_width", 80)
    long_name = "/very/long/path/to/some/experiments/folder/with/a/deeplab_model_trained_for_ever.keras"
    _print_table({"model": long_name, "class_id": 3, "request_pixels": 10, "original_score": 0.5, "preserved_score": 0.9,
                  "no_context_score": 0.1, "salient_context_share": 0.2, "final_loss": 0.1, "seconds": 1.0})
    out = capsys.readouterr().out
    assert _fits(out) and "…" not in out
    values = "".join(cell.strip() for line in out.splitlines() for cell in line.split("│")[2:3])
    assert long_name in values
