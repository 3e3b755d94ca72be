"""`gsal benchmark protocol` end to end on tiny data: runs, resumes, summarises."""

import json
from pathlib import Path

from typer.testing import CliRunner

from conftest import figure_parts
from gsal_cli.main import app
from gsal_tf.benchmark.protocol import Protocol, summarise

ROOT = Path(__file__).resolve().parents[1]


def _user_textures(tmp_path) -> tuple[Path, Path]:
    """A folder of five texture images and data configs that use it (relative path, resolved
    against the config file): the protocol must run unchanged on a user's texture pool."""
    import cv2
    import numpy as np

    folder = tmp_path / "my_textures"
    folder.mkdir()
    rng = np.random.default_rng(3)
    yy, xx = np.indices((64, 64))
    cv2.imwrite(str(folder / "rows.png"), ((yy % 6 < 3) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "cols.png"), ((xx % 8 < 4) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "dots.png"), (((yy % 7 < 2) & (xx % 7 < 2)) * 255).astype(np.uint8))
    cv2.imwrite(str(folder / "noise.jpg"), rng.integers(0, 256, (80, 90, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "ramp.png"), (xx * 4 % 256).astype(np.uint8))
    configs = tmp_path / "configs"
    configs.mkdir()
    paths = []
    for name in ("strong", "unbiased"):
        text = (ROOT / f"configs/benchmark/{name}.toml").read_text()
        assert "\n[textures]\n" in text
        path = configs / f"{name}.toml"
        path.write_text(text.replace("\n[textures]\n", '\n[textures]\nfolder = "../my_textures"\n'))
        paths.append(path)
    return tuple(paths)


def test_protocol_runs_once_and_resumes(mnist, tmp_path, tiny_train_config, saved_figures, monkeypatch):
    train = tiny_train_config
    strong_config, unbiased_config = _user_textures(tmp_path)
    config = tmp_path / "protocol.toml"
    config.write_text(f"""
[protocol]
backbones = ["mobilenetv2"]
bias_digits = [3]
textures = ["rows"]
strengths = ["strong"]
data_config = "{strong_config}"
unbiased_config = "{unbiased_config}"
n_train = 48
n_test = 40
[train_configs]
mobilenetv2 = "{train}"
[evaluate]
methods = ["grid_saliency", "vanilla_gradients"]
per_digit = 1
biased = 3
iterations = 3
target = 0.0
init = 1.0
tune = true
tune_requests = 2
""")
    assert [r["name"] for r in Protocol.from_toml(config).runs()] == ["mobilenetv2-strong-digit3-rows"]
    out = tmp_path / "out"
    args = ["benchmark", "protocol", "--config", str(config), "--mnist", str(mnist), "--out", str(out)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs"] == 1
    group = summary["groups"]["mobilenetv2/strong"]
    assert set(group["methods"]) == {"grid_saliency", "vanilla_gradients"}
    assert summary["cbd_matrix"]["mobilenetv2/strong/grid_saliency"]["bias_digits"] == [3]
    # Every run records the paired reliance test of its network; the summary counts uptake.
    (result,) = [json.loads(f.read_text()) for f in (out / "results").glob("*.json")]
    reliance = result["reliance"]
    assert reliance["threshold"] == 0.3 and reliance["taken"] == (reliance["gain"] >= 0.3)
    assert reliance["samples"] > 0 and abs(reliance["called_with"] - reliance["called_without"] - reliance["gain"]) < 1e-12
    up = summary["uptake"]["mobilenetv2/strong"]
    assert (up["runs"], up["measured"], up["taken"]) == (1, 1, int(reliance["taken"]))
    assert up["methods"]["grid_saliency"]["cbl_all"][2] <= 1
    assert "took the bias" in " ".join(res.output.split())  # the table's title, however the console wraps it
    assert (out / "cbl.png").is_file() and (out / "cbd_mobilenetv2_strong_grid_saliency.png").is_file()
    figures = {path.name: figure_parts(fig) for fig, path in saved_figures}
    assert set(figures) == {"cbl.png", "cbd_mobilenetv2_strong_grid_saliency.png", "cbd_mobilenetv2_strong_vanilla_gradients.png"}
    bars = [t.get_text() for t in figures["cbl.png"]["axes"]["bars"].get_xticklabels()]
    assert bars == ["mobilenetv2/strong\ngrid_saliency", "mobilenetv2/strong\nvanilla_\ngradients"]  # full method names
    assert "chance (0.5)" in figures["cbl.png"]["legend"] and "± std" in figures["cbl.png"]["legend"]
    cbd = figures["cbd_mobilenetv2_strong_grid_saliency.png"]
    assert [t.get_text() for t in cbd["axes"]["matrix"].get_yticklabels()] == ["3"] and cbd["axes"]["matrix"].get_ylabel() == "bias digit of the run"
    assert "mobilenetv2/strong/grid_saliency" in cbd["titles"][0] and cbd["colorbar"] == ["CBD (mean saliency on the context)"]
    again = CliRunner().invoke(app, args)  # finished runs are not redone
    assert again.exit_code == 0 and "skip" in again.output and "train" not in again.output.replace("train_configs", "")
    assert summarise(out / "results") == summary
    # tune = true: each method's setting was chosen on held-out samples and the report says so
    run = json.loads((out / "results" / "mobilenetv2-strong-digit3-rows.json").read_text())
    card = json.loads((out / "data" / "strong-digit3-rows" / "card.json").read_text())
    assert card["textures"]["names"] == ["cols", "dots", "noise", "ramp", "rows"]  # the user's pool, not the built-in one
    assert card["config"]["textures"]["folder"] == str((tmp_path / "my_textures").resolve())
    assert run["settings"]["sources"] == {"grid_saliency": "tuned on held-out", "vanilla_gradients": "nothing to tune"}
    assert len(run["tuning"]["candidates"]["grid_saliency"]) == 6 and run["tuning"]["held_out"]["test_seed"] == 4242
    assert run["settings"]["methods"]["grid_saliency"]["lam"] == run["tuning"]["chosen"]["grid_saliency"]["lam"]
    assert run["settings"]["methods"]["grid_saliency"]["iterations"] == 3
    # The journals a killed run resumes from: every tuning candidate and every evaluated method.
    run_dir = out / "models" / "mobilenetv2-strong-digit3-rows"
    assert len(json.loads((run_dir / "tuning-journal.json").read_text())) == 7
    assert len(json.loads((run_dir / "evaluation-journal.json").read_text())) == 2
    # A new candidate space: the finished run is tuned and evaluated again on the same network;
    # the journals keep what was computed, so only the new candidate runs.
    from gsal_tf.benchmark import tuning_space

    today = tuning_space.CANDIDATES["grid_saliency"]
    unseen = {"lam": 2 * max(row["lam"] for row in today), "learning_rate": today[0]["learning_rate"]}
    space = [today[0], unseen]  # the default (already in the journal) and one candidate never run
    monkeypatch.setitem(tuning_space.CANDIDATES, "grid_saliency", space)
    retuned = CliRunner().invoke(app, args)
    assert retuned.exit_code == 0 and "retune" in retuned.output, retuned.output
    assert "train mobilenetv2" not in retuned.output  # the trained network is kept
    run = json.loads((out / "results" / "mobilenetv2-strong-digit3-rows.json").read_text())
    assert [row["setting"] for row in run["tuning"]["candidates"]["grid_saliency"]] == space
    assert run["reliance"] == reliance  # the network did not change: its uptake is kept
    assert len(json.loads((run_dir / "tuning-journal.json").read_text())) == 8  # 7 + the one new candidate
    again = CliRunner().invoke(app, args)
    assert "skip" in again.output and "retune" not in again.output
    # Without its network (another machine trained it), a run tuned on another space is kept and said stale.
    monkeypatch.setitem(tuning_space.CANDIDATES, "grid_saliency", space[:1])
    (run_dir / "model.keras").rename(run_dir / "elsewhere.keras")
    stale = CliRunner().invoke(app, args)
    assert stale.exit_code == 0 and "stale" in stale.output and "retune" not in stale.output, stale.output
    assert json.loads((out / "results" / "mobilenetv2-strong-digit3-rows.json").read_text()) == run
    (run_dir / "elsewhere.keras").rename(run_dir / "model.keras")
    # Resuming into a folder whose data came from another config is refused, not silently mixed.
    config.write_text(config.read_text().replace("n_test = 40", "n_test = 32"))
    changed = CliRunner().invoke(app, args)
    assert changed.exit_code == 2 and "another config" in changed.output and "Traceback" not in changed.output


def test_uptake_summary_counts_networks_that_took_the_bias_and_their_cbl_apart():
    from gsal_tf.benchmark.uptake import uptake_summary

    def report(strength, gain, cbl, taken):
        return {"backbone": "b", "strength": strength, "reliance": {"gain": gain, "taken": taken},
                "explanations": {"methods": {"grid_saliency": {"cbl_mean": cbl}}}}

    reports = [report("strong", 0.9, 1.0, True), report("strong", 0.5, 0.8, True), report("strong", 0.01, 0.2, False),
               report("weak", 0.2, 0.9, True),
               {"backbone": "b", "strength": "weak", "explanations": {"methods": {"grid_saliency": {"cbl_mean": 0.4}}}},
               {"backbone": "b", "strength": "none", "explanations": {"methods": {}}}]
    out = uptake_summary(reports)
    assert set(out) == {"b/strong", "b/weak"}
    strong = out["b/strong"]
    assert (strong["runs"], strong["measured"], strong["taken"]) == (3, 3, 2) and abs(strong["uptake"] - 2 / 3) < 1e-12
    cbl = strong["methods"]["grid_saliency"]
    assert abs(cbl["cbl_all"][0] - 2.0 / 3) < 1e-12 and cbl["cbl_all"][2] == 3
    assert abs(cbl["cbl_taken"][0] - 0.9) < 1e-12 and abs(cbl["cbl_taken"][1] - 0.1) < 1e-12 and cbl["cbl_taken"][2] == 2
    weak = out["b/weak"]  # a run without a measurement counts as a run, not as measured
    assert (weak["runs"], weak["measured"], weak["taken"], weak["uptake"]) == (2, 1, 1, 1.0)
    assert weak["methods"]["grid_saliency"]["cbl_all"][2] == 2 and weak["methods"]["grid_saliency"]["cbl_taken"][2] == 1


def test_protocol_config_errors(tmp_path):
    import pytest

    import gsal_tf as gs

    bad = tmp_path / "p.toml"
    bad.write_text('[protocol]\nbackbones = ["xception"]\nbias_digits = [1]\ntextures = ["a"]\nstrengths = ["weak"]\n'
                   'data_config = "x"\nunbiased_config = "y"\n[train_configs]\nmobilenetv2 = "z"\n')
    with pytest.raises(gs.GsalInputError, match="no \\[train_configs\\] entry for backbone 'xception'"):
        Protocol.from_toml(bad)
