"""Runs side by side (`gsal_tf.scale.compare_runs`, `gsal stats RUN_A RUN_B`): pairing, the
statistics of each side against the run's own, and bad input."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.errors import GsalInputError
from gsal_tf.scale import load_stats, read_results
from conftest import one_error
from test_dataset_faults import cli
from test_dataset_scale import OPTIONS, _run, make_pairs

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def two_runs(conv_model_file, tmp_path_factory):
    """One network, two settings: run 1 on 7 image/label pairs, run 2 (lam 4) on the first 4."""
    model = gs.loading.load_model(conv_model_file)
    root = tmp_path_factory.mktemp("compare")
    images, labels = make_pairs(root, np.random.default_rng(3))
    _run(model, images, labels, root / "one")
    gs.scale.explain_dataset(model, images, root / "two", labels=labels, options={**OPTIONS, "lam": 4.0}, limit=4,
                             policy=gs.scale.RequestPolicy(zone="component", min_pixels=4))
    return root / "one", root / "two"


def test_unpaired_sides_are_each_runs_own_statistics(two_runs):
    cmp = gs.scale.compare_runs(two_runs, paired=False)
    assert cmp.zone_classes == ["class 0", "class 1", "class 2"] and not cmp.paired
    for r, folder in enumerate(two_runs):
        stats, _ = load_stats(folder)  # zones from labels without a mapping: zone class = explained class
        np.testing.assert_array_equal(cmp.count[r], stats.count)
        np.testing.assert_array_equal(cmp.with_context[r], stats.with_context)
        np.testing.assert_allclose(cmp.share[r], stats.share)
        np.testing.assert_allclose(cmp.inflation[r], stats.inflation_share)
        np.testing.assert_allclose(cmp.salient_fraction[r], stats.mean_fraction)
        table = read_results(folder)
        zone = np.asarray(table.column("zone_class").to_pylist())
        no_context = np.asarray(table.column("no_context_score").to_pylist())
        np.testing.assert_allclose(cmp.no_context[r], [np.median(no_context[zone == z]) for z in range(3)])
    assert cmp.explained[0] == ["class 0", "class 1", "class 2"]


def test_paired_keeps_the_requests_both_runs_hold(two_runs):
    one, two = two_runs
    cmp = gs.scale.compare_runs(two_runs)
    # Run 2 saw the first 4 of the 7 samples: pairing keeps run 1's requests on those 4 only.
    first = read_results(one)
    on_four = np.asarray(first.column("sample_index").to_pylist()) < 4
    zone = np.asarray(first.column("zone_class").to_pylist())[on_four]
    np.testing.assert_array_equal(cmp.count[0], [np.sum(zone == z) for z in range(3)])
    np.testing.assert_array_equal(cmp.count[0], cmp.count[1])
    np.testing.assert_array_equal(cmp.count[1], load_stats(two)[0].count)
    assert cmp.shared_samples == 4
    # The top context classes are the largest shares, with their inflation baseline.
    top = cmp.top(0, 1, k=2)
    assert [name for name, _, _ in top] == [cmp.context_classes[c] for c in np.argsort(-np.nan_to_num(cmp.share[0, 1], nan=-1))[:len(top)]]
    assert all(share == pytest.approx(cmp.share[0, 1, cmp.context_classes.index(name)]) for name, share, _ in top)


def test_cli_prints_and_writes_the_comparison(two_runs, tmp_path):
    out = tmp_path / "cmp"
    result = cli("stats", *two_runs, "--out", out, "--top", "2")
    assert result.exit_code == 0, result.output
    assert "2 runs (paired)" in result.output and "run 2: tiny_conv" in result.output
    with open(out / "comparison.csv") as fh:
        rows = list(csv.DictReader(fh))
    cmp = gs.scale.compare_runs(two_runs)
    assert [(r["zone_class"], r["run"]) for r in rows] == [(z, run) for z in cmp.zone_classes for run in cmp.runs]
    assert float(rows[0]["share_1"]) == pytest.approx(cmp.top(0, 0, 2)[0][1])
    assert [int(r["with_context"]) for r in rows] == [int(cmp.with_context[r, z]) for z in range(len(cmp.zone_classes)) for r in range(2)]
    assert sorted(p.name for p in out.iterdir()) == ["comparison.csv", "share-1.png", "share-2.png", "share-minus-1-2.png"]
    # the printed table counts the requests that kept context, the ones the shares are means over
    assert "requests that kept salient labelled context" in " ".join(result.output.split())


def test_cli_prints_the_requests_that_kept_context(two_runs, tmp_path, monkeypatch):
    """The ``ctx`` column is ``with_context`` (here every request kept context, so one run's counts
    are lowered to tell the columns apart)."""
    cmp = gs.scale.compare_runs(two_runs)
    cmp.with_context = cmp.with_context.copy()
    cmp.with_context[0] = [1, 0, 2]
    monkeypatch.setattr(gs.scale, "compare_runs", lambda folders, paired=True: cmp)
    result = cli("stats", *two_runs, "--out", tmp_path / "cmp", "--min-requests", 2)
    assert result.exit_code == 0, result.output
    for z, zone in enumerate(cmp.zone_classes):
        rows = [re.split(r"\s{2,}", line.strip()) for line in result.output.splitlines() if line.strip().startswith(zone)]
        cells = next(cells for cells in rows if len(cells) > 4)  # zone class, run, explained, n, ctx, ...
        assert cells[1:5] == ["1", cmp.explained[0][z], str(cmp.count[0, z]), str(cmp.with_context[0, z])], cells


def test_cli_min_requests_greys_the_comparison_figures(two_runs, tmp_path, saved_figures):
    cmp = gs.scale.compare_runs(two_runs)
    cut = int(cmp.with_context.max())
    result = cli("stats", *two_runs, "--out", tmp_path / "cmp", "--min-requests", cut)
    assert result.exit_code == 0, result.output
    figures = {path.stem: fig for fig, path in saved_figures}
    _, shown = _shown(figures["share-minus-1-2"])
    np.testing.assert_array_equal(np.isnan(shown).all(axis=1), ~cmp.readable(cut).all(axis=0))
    one_error(cli("stats", *two_runs, "--out", tmp_path / "neg", "--min-requests", -1), "--min-requests -1")
    assert not (tmp_path / "neg").exists()


def _shown(fig):
    """(row labels, values with grey cells as NaN) of a matrix figure."""
    axes = fig.axes[0]
    return [t.get_text() for t in axes.get_yticklabels()], np.ma.filled(axes.get_images()[0].get_array().astype(float), np.nan)


def test_figures_count_requests_with_context_and_grey_too_few(two_runs):
    """Rows read ``zone (k/n)``; a share over fewer than ``min_requests`` masks that kept context is
    no statistic: its row is grey (NaN), in a difference when either run falls short."""
    from gsal_tf.scale import comparison

    cmp = gs.scale.compare_runs(two_runs)
    assert (cmp.with_context <= cmp.count).all() and cmp.with_context.sum() > 0
    cut = int(cmp.with_context.max())  # some row falls short of it in some run, some row reaches it
    readable = cmp.readable(cut)
    assert readable.any() and not readable.all()
    figures = comparison.comparison_figures(cmp, min_requests=cut)
    for r in range(2):
        labels, shown = _shown(figures[f"share-{r + 1}"])
        assert labels == [f"{z} ({k}/{n})" for z, k, n in zip(cmp.zone_classes, cmp.with_context[r], cmp.count[r])]
        assert np.isnan(shown[~readable[r]]).all()
        np.testing.assert_allclose(shown[readable[r]], cmp.share[r][readable[r]])
    both = readable.all(axis=0)
    labels, shown = _shown(figures["share-minus-1-2"])
    assert labels == [f"{z} ({a}/{n} · {b}/{n})" for z, a, b, n in zip(cmp.zone_classes, *cmp.with_context, cmp.count[1])]
    assert np.isnan(shown[~both]).all()
    np.testing.assert_allclose(shown[both], (cmp.share[1] - cmp.share[0])[both])
    # a subset of the rows, in the order asked, greyed as their own rows; min_requests 0 greys nothing
    labels, shown = _shown(comparison.difference_figure(cmp, 1, cmp.zone_classes[::-1], min_requests=cut))
    assert [label.split(" (")[0] for label in labels] == cmp.zone_classes[::-1]
    assert np.isnan(shown[~both[::-1]]).all()
    np.testing.assert_allclose(shown[both[::-1]], (cmp.share[1] - cmp.share[0])[::-1][both[::-1]])
    np.testing.assert_allclose(_shown(comparison.difference_figure(cmp, 1, min_requests=0))[1], cmp.share[1] - cmp.share[0])
    for bad in ({"min_requests": -1}, {"run": 0}, {"run": 2}, {"zones": ["sky"]}):
        with pytest.raises(GsalInputError, match=next(iter(bad)) if "zones" not in bad else "no zone class 'sky'"):
            comparison.difference_figure(cmp, **{"run": 1, **bad})
    with pytest.raises(GsalInputError, match="min_requests"):
        cmp.readable(-1)


def test_unpaired_difference_labels_count_each_run_over_its_own_requests(two_runs):
    from gsal_tf.scale import comparison

    cmp = gs.scale.compare_runs(two_runs, paired=False)
    assert (cmp.count[0] != cmp.count[1]).any()  # run 2 saw 4 of the 7 samples
    labels, _ = _shown(comparison.difference_figure(cmp, 1))
    assert labels == [f"{z} ({a}/{b} · {c}/{d})" for z, a, b, c, d in zip(cmp.zone_classes, cmp.with_context[0], cmp.count[0],
                                                                          cmp.with_context[1], cmp.count[1])]


def test_bad_input_one_line_nothing_written(two_runs, tmp_path, conv_model_file):
    one, _ = two_runs
    with pytest.raises(GsalInputError, match="two or more"):
        gs.scale.compare_runs([one])
    one_error(cli("stats", one, tmp_path, "--out", tmp_path / "a"), "is not a gsal results folder")
    one_error(cli("stats", *two_runs, "--html", "--out", tmp_path / "b"), "--html reports one run")
    # Runs of other data (other context class names) are not compared.
    model = gs.loading.load_model(conv_model_file)
    images, labels = make_pairs(tmp_path / "other", np.random.default_rng(4), n=2)
    gs.scale.explain_dataset(model, images, tmp_path / "named", labels=labels, options=OPTIONS, class_names=["sky", "road", "car"],
                             policy=gs.scale.RequestPolicy(zone="component", min_pixels=4))
    one_error(cli("stats", one, tmp_path / "named", "--out", tmp_path / "c"), "names other context classes")
    assert not any((tmp_path / d).exists() for d in ("a", "b", "c"))
