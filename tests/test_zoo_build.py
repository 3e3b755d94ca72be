"""`gsal zoo build` end to end on tiny data: generate, train, measure, record, then load."""

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
STRONG = ROOT / "configs/benchmark/strong.toml"


def test_zoo_build_records_a_loadable_verified_model(mnist, tmp_path, tiny_train_config):
    train_cfg = tiny_train_config
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[[model]]\nname = "tiny-strong"\ndata = "{STRONG}"\ntrain = "{train_cfg}"\ndescription = "test"\n'
        f'[demo]\ndata = "{STRONG}"\n'
    )
    bias = gs.benchmark.load_config(STRONG).bias
    zoo_dir = tmp_path / "zoo"
    args = ["zoo", "build", "--plan", str(plan), "--mnist", str(mnist), "--work", str(tmp_path / "work"),
            "--zoo-dir", str(zoo_dir), "--n-train", "64"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    (entry,) = gs.zoo.list_models(zoo_dir / "models.toml")
    assert entry.name == "tiny-strong" and entry.bias.strength == "strong" and entry.bias.digit == bias.digit
    assert 0.0 <= entry.metrics["mean_iou"] <= 1.0 and len(entry.metrics["iou_per_class"]) == 11
    assert f"gsal zoo build --plan {plan.as_posix()} " in entry.training["command"]  # the plan actually used
    loaded = gs.zoo.load("tiny-strong", zoo_dir / "models.toml")
    assert loaded.output_shape == (None, 64, 64, 11)
    with np.load(zoo_dir / "samples/demo.npz") as demo:  # the plan's [demo]: a biased bias digit, texture on top
        assert int(demo["digit"]) == bias.digit and demo["image"].shape == (64, 64, 1)
        assert demo["biased_tile_mask"][:32].mean() > 0.5 and not demo["biased_tile_mask"][32:].any()
        assert demo["digit_mask"].any() and not (demo["digit_mask"] * demo["biased_tile_mask"]).any()
    again = CliRunner().invoke(app, args)  # already built: skipped, manifest unchanged
    assert again.exit_code == 0 and "skipped" in again.output


def test_each_data_config_gets_its_own_folder_and_biased_models_are_measured_on_their_unbiased_twin(mnist):
    """Two plan entries with the same strength but different image laws must not share data, and
    a biased model's IoU is measured on its own config with the bias switched off."""
    from gsal_tf.benchmark import unbiased_counterpart
    from gsal_tf.benchmark import data_dir_name

    weak = gs.benchmark.load_config(ROOT / "configs/benchmark/weak.toml", n_test=40)
    other_law = gs.benchmark.load_config(weak, law="bright-digit")
    assert (weak.law, other_law.law) == ("paper", "bright-digit")
    assert data_dir_name(weak) != data_dir_name(other_law)
    assert data_dir_name(weak) == data_dir_name(gs.benchmark.load_config(weak))
    assert data_dir_name(unbiased_counterpart(weak)) != data_dir_name(unbiased_counterpart(other_law))

    twin = unbiased_counterpart(weak)
    assert twin.bias.strength == "none" and twin.n_train == 0
    assert {k: v for k, v in twin.to_dict().items() if k not in ("bias", "n_train")} == \
        {k: v for k, v in weak.to_dict().items() if k not in ("bias", "n_train")}
    # The bias digit and texture left in the twin draw nothing: its test split is the unbiased config's.
    ours = gs.benchmark.TextureMNIST(twin, mnist=mnist).samples("test", n=40)
    shipped = gs.benchmark.TextureMNIST(gs.benchmark.load_config(ROOT / "configs/benchmark/unbiased.toml", n_test=40),
                                        mnist=mnist).samples("test", n=40)
    assert all(np.array_equal(ours[k], shipped[k]) for k in ours)
    assert not ours["is_biased"].any()
