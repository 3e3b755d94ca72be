"""Held-out tuning: same budget and rule for every method, the choice recorded in reports."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_cli.main import app
from gsal_tf.benchmark import evaluation, protocol, tuning
from gsal_tf.models.known_context import known_context_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
S = 16


def biased_samples(n=3):
    """Samples of digit 9 whose class-9 prediction reads a bright patch in the biased top tile."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 0.2, size=(n, S, S, 1)).astype(np.float32)
    images[:, 1:5, 2:6] = 1.0  # the patch the model reads, inside the top (biased) tile
    digit_mask = np.zeros((n, S, S), np.float32)
    digit_mask[:, 7:10, 6:10] = 1
    tile = np.zeros((n, S, S), np.float32)
    tile[:, : S // 2] = 1
    return {"image": images, "digit_mask": digit_mask, "digit": np.full(n, 9), "is_biased": np.ones(n, bool),
            "biased_tile_mask": tile}


@pytest.fixture(scope="module")
def patch_reader():
    return known_context_model((S, S, 1), [(1, 2, 5, 6)], (7, 6, 10, 10), num_classes=10, target_class=9, gain=8.0)


def test_tuning_scores_every_candidate_and_picks_the_one_that_localises(patch_reader):
    # A window as large as the image removes all context at once: its drop is spread over both
    # tiles (CBL 0.5). A small window finds the patch (CBL 1). The default-first order must not
    # win by position when the later candidate is better.
    candidates = {"occlusion": [{"window": 16, "stride": 16}, {"window": 4, "stride": 2}]}
    settings = evaluation.EvaluationSettings(methods=("occlusion", "vanilla_gradients"), tune=True, tune_requests=2)
    result = tuning.tune(patch_reader, biased_samples(), 9, settings, candidates=candidates)
    rows = result.table["occlusion"]
    assert [r["setting"] for r in rows] == [{"window": 16, "stride": 16}, {"window": 4, "stride": 2}]
    assert rows[0]["score"] == pytest.approx(0.5, abs=0.02) and rows[1]["score"] == pytest.approx(1.0)
    assert result.chosen["occlusion"] == {"window": 4, "stride": 2} and rows[1]["chosen"] and not rows[0]["chosen"]
    assert all(r["cbl_n"] + r["cbl_nan"] == 2 for r in rows)  # tune_requests of the 3 samples
    assert result.chosen["vanilla_gradients"] == {} and len(result.table["vanilla_gradients"]) == 1
    assert result.source("occlusion") == tuning.SOURCE_TUNED and result.source("vanilla_gradients") == tuning.SOURCE_NOTHING
    explainers = settings.explainers(patch_reader, result.chosen)
    assert explainers["occlusion"].window == (4, 4)
    record = evaluation.settings_record(settings, explainers, result)
    assert record["sources"] == {"occlusion": "tuned on held-out", "vanilla_gradients": "nothing to tune"}
    assert record["methods"]["occlusion"]["window"] == [4, 4]
    json.dumps(result.record())  # plain values, storable in a report
    assert result.record()["held_out"]["test_seed"] == 4242


def test_every_method_with_a_setting_gets_the_same_number_of_candidates_default_first():
    sizes = {m: len(c) for m, c in tuning.CANDIDATES.items() if c != [{}]}
    assert set(tuning.CANDIDATES) == set(gs.METHODS)
    assert set(sizes.values()) == {6} and set(sizes) == set(gs.METHODS) - {"vanilla_gradients"}
    from gsal_tf.benchmark.tuning_space import candidates_for

    default_space = candidates_for({})  # grid saliency's default formulation (a target)
    assert len(default_space["grid_saliency"]) == 6
    for method, candidates in default_space.items():
        explainer = gs.make_explainer(method, lambda x: x, **candidates[0])  # every candidate is a valid setting
        defaults = gs.make_explainer(method, lambda x: x).params
        assert all(explainer.params[k] == defaults[k] for k in candidates[0]), method  # the default comes first
    # The paper formulation's space starts at the paper's settings.
    paper = candidates_for({"target": 0.0})["grid_saliency"]
    assert paper == tuning.CANDIDATES["grid_saliency"]
    assert all(paper[0][k] == gs.GridSaliency.PAPER_OPTIONS[k] for k in paper[0])


def test_no_salient_context_counts_as_chance_and_ties_keep_the_first(patch_reader):
    assert tuning.tuning_score([1.0, np.nan, 0.0, np.nan]) == pytest.approx(0.5)
    assert tuning.tuning_score([np.nan]) == 0.5
    same = {"occlusion": [{"window": 4, "stride": 2}, {"window": 4, "stride": 2, "signed": False}]}
    settings = evaluation.EvaluationSettings(methods=("occlusion",), tune_requests=1)
    result = tuning.tune(patch_reader, biased_samples(), 9, settings, candidates=same)
    assert result.table["occlusion"][0]["score"] == result.table["occlusion"][1]["score"]
    assert result.chosen["occlusion"] == {"window": 4, "stride": 2}


def test_held_out_samples_are_another_split_of_the_same_config(mnist):
    cfg = gs.benchmark.load_config(CONFIGS / "benchmark" / "strong.toml", n_test=30)
    held = tuning.held_out_samples(cfg, mnist, n=30)
    evaluated = gs.benchmark.TextureMNIST(cfg, mnist=mnist).samples("test")
    assert held["image"].shape == evaluated["image"].shape and not np.array_equal(held["image"], evaluated["image"])
    assert held["is_biased"][held["digit"] == cfg.bias.digit].all()  # same bias
    with pytest.raises(gs.GsalInputError, match="test_seed 4242"):
        tuning.held_out_samples(gs.benchmark.load_config(cfg, test_seed=4242), mnist, n=5)
    with pytest.raises(gs.GsalInputError, match="no biased sample of digit"):
        tuning.held_out_requests({"digit": np.array([1, 2]), "is_biased": np.array([True, True])}, 9, 5)


def test_settings_refuse_a_tuned_option_fixed_by_hand_and_read_tune_from_toml():
    with pytest.raises(gs.GsalInputError, match="lam is chosen by tuning"):
        evaluation.EvaluationSettings(tune=True, grid_saliency={"lam": 2.0})
    settings = evaluation.EvaluationSettings.from_table({"tune": True, "tune_requests": 10, "iterations": 20, "methods": ["rise"]}, "[evaluate]")
    assert settings.tune and settings.tune_requests == 10 and settings.grid_saliency == {"iterations": 20}
    with pytest.raises(gs.GsalInputError, match=r"\[evaluate\]: tune must be true or false"):
        evaluation.EvaluationSettings.from_table({"tune": "yes"}, "[evaluate]")


def test_old_reports_still_load(tmp_path):
    old = {"explanations": {"methods": {"grid": {"cbl_mean": 0.9}, "gradients": {"cbl_mean": 0.5}}, "requests": [1]},
           "settings": {"per_digit": 2, "biased": 4, "methods": {}}}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(old))
    report = protocol.read_report(path)
    assert set(report["explanations"]["methods"]) == {"grid_saliency", "vanilla_gradients"}
    assert report["explanations"]["methods"]["grid_saliency"] == {"cbl_mean": 0.9}  # the values come along
    assert report["explanations"]["methods"]["vanilla_gradients"] == {"cbl_mean": 0.5}
    assert report["settings"]["per_digit"] == 2 and report["explanations"]["requests"] == [1]


def test_evaluate_cli_tunes_on_regenerated_held_out_samples(mnist, tiny_deeplab_file, tmp_path):
    data = tmp_path / "strong"
    cfg = gs.benchmark.load_config(CONFIGS / "benchmark" / "strong.toml", n_train=0, n_test=60)
    gs.benchmark.TextureMNIST(cfg, mnist=mnist).generate(data)
    out = tmp_path / "eval"
    res = CliRunner().invoke(app, ["benchmark", "evaluate", "--model", str(tiny_deeplab_file), "--data", str(data),
                                   "--unbiased-data", str(data), "--out", str(out), "--methods", "gradients,smoothgrad",
                                   "--per-digit", "1", "--biased", "2", "--tune", "--tune-requests", "2"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["settings"]["sources"] == {"vanilla_gradients": "nothing to tune", "smoothgrad": "tuned on held-out"}
    rows = report["tuning"]["candidates"]["smoothgrad"]
    assert len(rows) == 6 and sum(r["chosen"] for r in rows) == 1
    chosen = report["tuning"]["chosen"]["smoothgrad"]
    used = report["settings"]["methods"]["smoothgrad"]
    assert used["noise"] == chosen["noise"] and used["averaging"] == chosen["averaging"]
    assert report["tuning"]["held_out"]["test_seed"] == 4242 and "tuned on 2 held-out requests" in res.output
    assert protocol.read_report(out / "report.json")["settings"]["tune"] is True


class Stop(Exception):
    """Stands for a kill in the middle of tuning or evaluation."""


def test_an_interrupted_tuning_resumes_from_its_journal_with_the_same_result(patch_reader, tmp_path):
    candidates = {"occlusion": [{"window": 16, "stride": 16}, {"window": 4, "stride": 2}, {"window": 8, "stride": 4}]}
    settings = evaluation.EvaluationSettings(methods=("occlusion", "vanilla_gradients"), tune=True, tune_requests=2)
    whole = tuning.tune(patch_reader, biased_samples(), 9, settings, candidates=candidates)
    journal = tmp_path / "tuning-journal.json"
    ran = []

    def kill_at_third(method, setting):
        if len(ran) == 2:
            raise Stop
        ran.append((method, setting))

    with pytest.raises(Stop):
        tuning.tune(patch_reader, biased_samples(), 9, settings, candidates=candidates, on_candidate=kill_at_third, journal=journal)
    assert len(json.loads(journal.read_text())) == 2  # the two finished candidates, on disk
    resumed_runs = []
    resumed = tuning.tune(patch_reader, biased_samples(), 9, settings, candidates=candidates, journal=journal,
                          on_candidate=lambda method, setting: resumed_runs.append((method, setting)))
    assert resumed_runs == [("occlusion", {"window": 8, "stride": 4}), ("vanilla_gradients", {})]  # only the rest ran
    assert resumed.chosen == whole.chosen
    strip = lambda table: {m: [{k: v for k, v in r.items() if k != "seconds"} for r in rows] for m, rows in table.items()}  # noqa: E731
    assert strip(resumed.table) == strip(whole.table)
    # Another setting of the evaluation (batch size) is another unit: not taken from the journal.
    other = evaluation.EvaluationSettings(methods=("vanilla_gradients",), tune=True, tune_requests=2, batch_size=1)
    again = []
    tuning.tune(patch_reader, biased_samples(), 9, other, journal=journal, on_candidate=lambda m, s: again.append(m))
    assert again == ["vanilla_gradients"]


def test_an_interrupted_evaluation_resumes_from_its_journal(patch_reader, tmp_path):
    samples = biased_samples(4)
    settings = evaluation.EvaluationSettings(methods=("vanilla_gradients", "occlusion"), per_digit=0, biased=4)
    explainers = settings.explainers(patch_reader, {"occlusion": {"window": 4, "stride": 2}})
    whole = evaluation.bias_statistics(explainers, samples, 9, per_digit=0, biased=4)
    journal = tmp_path / "evaluation-journal.json"

    def kill_at_occlusion(name, n):
        if name == "occlusion":
            raise Stop

    with pytest.raises(Stop):
        evaluation.bias_statistics(explainers, samples, 9, per_digit=0, biased=4, on_method=kill_at_occlusion, journal=journal)
    ran = []
    resumed = evaluation.bias_statistics(explainers, samples, 9, per_digit=0, biased=4, journal=journal,
                                         on_method=lambda name, n: ran.append(name))
    assert ran == ["occlusion"]
    timeless = lambda row: {k: v for k, v in json.loads(json.dumps(row)).items() if k != "seconds"}  # noqa: E731
    assert timeless(resumed["methods"]["vanilla_gradients"]) == timeless(whole["methods"]["vanilla_gradients"])
    assert resumed["methods"]["vanilla_gradients"] == json.loads(journal.read_text())[next(iter(json.loads(journal.read_text())))]
    assert resumed["methods"]["occlusion"]["cbl_mean"] == pytest.approx(whole["methods"]["occlusion"]["cbl_mean"])


def test_a_report_knows_which_candidate_space_it_was_tuned_on():
    from gsal_tf.benchmark import tuning_space

    methods = ("grid_saliency", "vanilla_gradients", "occlusion")

    def record(space):
        return {"candidates": {m: [{"setting": tuning_space.plain(c), "score": 0.5} for c in space[m]] for m in methods}}

    assert tuning_space.tuned_on(record(tuning_space.CANDIDATES), methods)
    assert not tuning_space.tuned_on(record(tuning_space.FIRST_CANDIDATES), methods)
    assert not tuning_space.tuned_on(record(tuning_space.SECOND_CANDIDATES), methods)
    assert not tuning_space.tuned_on(record(tuning_space.THIRD_CANDIDATES), methods)
    assert tuning_space.space_name(record(tuning_space.CANDIDATES), methods) == "current"
    assert tuning_space.space_name(record(tuning_space.THIRD_CANDIDATES), methods) == "third"
    assert tuning_space.space_name(record(tuning_space.FIRST_CANDIDATES), methods) == "first"
    assert tuning_space.space_name({}, methods) == "untuned"
    assert tuning_space.space_name({"candidates": {"occlusion": [{"setting": {"window": 3}}]}}, methods) == "another"
    assert tuning_space.tuned_on(record(tuning_space.SECOND_CANDIDATES), methods, tuning_space.SECOND_CANDIDATES)
    assert tuning_space.tuned_on(record(tuning_space.FIRST_CANDIDATES), methods, tuning_space.FIRST_CANDIDATES)
    assert not tuning_space.tuned_on({}, methods)  # a report without tuning was not tuned on any space
    # Every space gives every method with a setting the same budget.
    for space in (tuning_space.FIRST_CANDIDATES, tuning_space.SECOND_CANDIDATES, tuning_space.THIRD_CANDIDATES,
                  tuning_space.CANDIDATES):
        assert {len(c) for c in space.values() if c != [{}]} == {6}
        assert all(space[m][0] == tuning_space.CANDIDATES[m][0] for m in space)  # the default first, in every space
