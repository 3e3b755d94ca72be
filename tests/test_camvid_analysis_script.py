"""benchmarks/camvid_analysis.py: what a stage reads back of the runs in its results folder (tiny
runs of a hand-built model on generated images; no CamVid, no real network)."""

import numpy as np
import pytest

import gsal_tf as gs
from conftest import load_benchmark_script
from gsal_tf.scale import RequestPolicy, explain_dataset
from test_dataset_scale import OPTIONS, make_pairs

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def out(conv_model_file, tmp_path_factory):
    """OUT with a finished class-zone run and a component run stopped after its first shard."""
    root = tmp_path_factory.mktemp("camvid-analysis")
    images, labels = make_pairs(root, np.random.default_rng(0), n=4)
    model = gs.loading.load_model(conv_model_file)
    for zone in ("class", "component"):
        explain_dataset(model, images, root / "out" / "runs" / f"cityscapes-{zone}", labels=labels, options=OPTIONS,
                        policy=RequestPolicy(zone=zone, min_pixels=4))
    component = root / "out" / "runs" / "cityscapes-component"
    card = gs.scale.store.read_card(component)
    gs.scale.store.write_card(component, {**card, "status": "running"})
    for shard in sorted((component / "requests").glob("part-*.parquet"))[1:]:
        shard.unlink()
    return root / "out"


def _analysis(ca, out, *args):
    """The script's Analysis of OUT with its command line ``args`` (the full-split runs' settings)."""
    return ca.Analysis(ca.parse_args(["--out", str(out), "--explainer", "defaults", *args]))


def test_a_context_stage_for_one_zone_keeps_the_other_zones_tables(out):
    ca = load_benchmark_script("camvid_analysis")
    result = ca.stage_context(_analysis(ca, out, "--report-only", "--context-zones", "component"))
    assert list(result["runs"]) == ["cityscapes-class", "cityscapes-component"]  # the class zones read back, first
    text = (out / "context.md").read_text()
    whole = gs.scale.read_results(out / "runs" / "cityscapes-class").num_rows
    part = gs.scale.read_results(out / "runs" / "cityscapes-component").num_rows
    assert f"## cityscapes-class: 4 frames, {whole} requests" in text
    assert f"{part} requests (the run stopped part-way" in text
    assert "## Components beside class zones" in text
    # Paired by frame: each component's score without context over its frame's class zone's, against NumPy.
    read = lambda zone: gs.scale.read_results(out / "runs" / f"cityscapes-{zone}").to_pandas()  # noqa: E731
    zones, parts = read("class"), read("component")
    joined = parts.merge(zones, on=["sample_key", "class_id"], suffixes=("", "_zone"))
    ratio = (joined["no_context_score"] / joined["no_context_score_zone"]).to_numpy()
    name = gs.scale.store.read_card(out / "runs" / "cityscapes-component")["settings"]["context_classes"][int(joined["class_id"].iloc[0])]
    mine = joined["class_id"] == joined["class_id"].iloc[0]
    expected = f"{np.median(ratio[mine]):.2f} ({np.mean(ratio[mine] < 1):.2f} of {int(mine.sum())})"
    row = next(line for line in text.split("## Components beside class zones")[1].splitlines() if line.startswith(f"| {name} |"))
    assert row.rstrip(" |").endswith(expected), (row, expected)
    assert (out / "context-component.png").is_file() and not (out / "context-class.png").exists()  # only the asked zone is drawn


def test_generalisation_leaves_out_a_part_way_run_unless_report_only(out):
    ca = load_benchmark_script("camvid_analysis")
    result = ca.stage_generalisation(_analysis(ca, out, "--report-only"))
    assert result["zones_part_way"] == ["component"] and set(result["quantiles"]) == {"class", "component"}
    assert "component (part-way)" in (out / "generalisation.md").read_text()
    result = ca.stage_generalisation(_analysis(ca, out))
    assert set(result["quantiles"]) == {"class"} and "zones_part_way" not in result


def test_architecture_pairs_choose_the_runs_and_their_order():
    ca = load_benchmark_script("camvid_analysis")
    plan, pairs = ca.architecture_plan("pascal,cityscapes-ade20k")
    assert [run[0] for run in plan] == ["pascal-1.0-people-cars", "pascal-0.5-people-cars", "cityscapes-class", "ade20k-shared"]
    assert [pair[:2] for pair in pairs] == [("pascal-1.0-people-cars", "pascal-0.5-people-cars"), ("cityscapes-class", "ade20k-shared")]
    assert plan[0][1:] == ("pascal-1.0", "pascal-camvid", (ca.CAR, ca.PEDESTRIAN))
    plan, pairs = ca.architecture_plan("all")
    assert [run[0] for run in plan] == ["cityscapes-class", "ade20k-shared", "pascal-1.0-people-cars", "pascal-0.5-people-cars"]
    assert ca.BICYCLIST not in pairs[0][2] and len(pairs[0][2]) == 10  # Cityscapes explains rider, ADE20K bicycle
    for bad in ("pascl", ","):
        with pytest.raises(SystemExit, match="--pairs: unknown pair"):
            ca.parse_args(["--pairs", bad])


def test_moments_comparison_counts_what_auto_changed():
    ca = load_benchmark_script("camvid_analysis")
    nan = float("nan")
    restart = {"salient_mass": [0.0, 2.0, 4.0, 1.0, 3.0], "preserved_score": [0.9, 0.9, 0.9, 0.9, 0.9],
               "area_distance": [nan, 0.0, 0.01, 0.3, 0.2]}
    # request 0 keeps no context in either; 1 unchanged; 2: 25 % less; 3: 50 % more; 4: 1e-9 relative: unchanged
    auto = {"salient_mass": [0.0, 2.0, 3.0, 1.5, 3.0 * (1 + 1e-9)], "preserved_score": [0.9, 0.9, 0.95, 0.5, 0.9],
            "area_distance": [nan, 0.0, 0.2, 0.3, 0.2]}
    c = ca.moments_comparison(restart, auto, original=[1.0] * 5, target=0.9)
    assert (c["requests"], c["keep_context_restart"], c["keep_context_auto"]) == (5, 4, 4)
    assert (c["changed"], c["smaller"], c["larger"]) == (2, 1, 1)
    assert c["less_salient_mass_min"] == pytest.approx(0.25) == c["less_salient_mass_max"]
    assert c["changed_keep_target"] == 1  # request 3's larger mask lost the target (0.5 < 0.9)
    assert c["area_like"] == {"restart": 2, "auto": 1}  # NaN (no context) is not area-like
    assert ca.moments_comparison(restart, restart, [1.0] * 5, 0.9)["less_salient_mass_min"] is None


def test_moments_stage_needs_a_limit(tmp_path):
    ca = load_benchmark_script("camvid_analysis")
    with pytest.raises(SystemExit, match="give --limit N"):
        ca.stage_moments(ca.Analysis(ca.parse_args(["--out", str(tmp_path), "--stage", "moments"])))
    assert not any(tmp_path.iterdir())


def test_a_read_back_records_the_wall_time_of_the_invocation_that_explained(out):
    """--report-only and a rerun of a finished run record the run's time from its card (the
    invocation that explained it), not the seconds it took to read it back."""
    ca = load_benchmark_script("camvid_analysis")
    folder = out / "runs" / "cityscapes-class"
    explained = gs.scale.store.read_card(folder)["seconds_this_session"]
    read = _analysis(ca, out, "--report-only").read_run("cityscapes-class", "cityscapes")
    assert read["wall_seconds_this_session"] == explained and read["requests"] == gs.scale.read_results(folder).num_rows
    assert read["folder_bytes"] == sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
