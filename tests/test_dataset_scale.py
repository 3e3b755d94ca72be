"""Dataset-scale explanations: readers, label tables, context statistics, runs, resume, faults."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf import context_stats
from gsal_tf.datasets import CITYSCAPES, CITYSCAPES_LABELS, open_source
from gsal_tf.errors import GsalInputError
from gsal_tf.scale import RequestPolicy, explain_dataset, load_stats, read_results

pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[1]
# The paper's formulation: 3 iterations from the whole image keep some context on the untrained
# test network, whose prediction holds without context (the default's answer there is empty).
OPTIONS = {"grid_size": (4, 4), "iterations": 3, "batch_size": 4, "target": 0.0}


# -- context statistics against hand-made maps -------------------------------------------------


def test_request_sums_and_aggregate_known_answer():
    """8x8, request = rows 3-4 x cols 3-4; context classes: left half 0, right half 1."""
    r = np.zeros((8, 8))
    r[3:5, 3:5] = 1
    labels = np.zeros((8, 8), int)
    labels[:, 4:] = 1
    labels[0, 0] = 255  # ignored pixel, salient
    s = np.zeros((8, 8))
    s[0, 0] = 1.0                  # ignore: counted in the mass, not in the shares
    s[2, 3] = 0.5                  # class 0, distance 1
    s[2, 5], s[7, 7] = 1.0, 0.5    # class 1, distances 1 and 3
    sums = context_stats.request_sums(s[None], r[None], labels[None], 2, ignore_label=255)
    np.testing.assert_allclose(sums["salient"][0], [0.5, 1.5])
    np.testing.assert_allclose(sums["context_pixels"][0], [32 - 2 - 1, 32 - 2])  # a half minus its 2 request px (and the ignored one)
    assert sums["salient_mass"][0] == 3.0 and sums["context_area"][0] == 60
    # Distance bins (0,1], (1,2], (2,4]: 1.0+0.5 at 1, 0 at 2, the 0.5 at Chebyshev distance 3; (0,0) is at distance 3.
    np.testing.assert_allclose(sums["salient_by_distance"][0][:4], [1.5, 0.0, 1.5, 0.0])
    ring_pixels = np.array([[max(abs(y - 3.5) - 0.5, abs(x - 3.5) - 0.5) for x in range(8)] for y in range(8)])
    np.testing.assert_allclose(sums["pixels_by_distance"][0][:3], [(ring_pixels == d).sum() for d in (1, 2)] + [((ring_pixels > 2) & (ring_pixels <= 4)).sum()])
    # Inflation: mass 3 -> one dilation step (12 ring pixels), 6 on each half.
    np.testing.assert_allclose(sums["inflation"][0], [6, 6])

    stats = context_stats.aggregate([7], sums)
    np.testing.assert_allclose(stats.share[0], [0.25, 0.75])
    np.testing.assert_allclose(stats.inflation_share[0], [0.5, 0.5])
    np.testing.assert_allclose(stats.difference[0], [-0.25, 0.25])
    assert stats.mean_size[0] == 3.0 and stats.mean_fraction[0] == pytest.approx(3 / 60)
    assert stats.profile[0, 0] == pytest.approx(1.5 / 12)


def test_area_like_requests_are_those_whose_mask_spreads_like_the_areas(rng):
    """A uniform mask's salient context lies on the context classes in proportion to their areas
    (distance 0: area-like); a mask on one class does not; no salient context is not counted."""
    r = np.zeros((4, 16, 16))
    r[:, 6:10, 6:10] = 1
    labels = np.zeros((4, 16, 16), int)
    labels[:, :, 12:] = 1  # class 1: a quarter of the columns
    s = np.zeros((4, 16, 16))
    s[0] = 0.25                        # uniform
    s[1] = 0.25
    s[1, 0, 0] = 0.6                   # uniform but for one cell: still area-like
    s[2, :, 12:] = 1.0                 # only on class 1
    sums = context_stats.request_sums(s, r, labels, 2)
    distance = context_stats.area_distance(sums["salient"], sums["context_pixels"])
    area = sums["context_pixels"] / sums["context_pixels"].sum(axis=1, keepdims=True)
    assert distance[0] == pytest.approx(0.0, abs=1e-12)
    assert 0 < distance[1] < context_stats.AREA_LIKE_DISTANCE
    assert distance[2] == pytest.approx(area[2, 0])  # all on class 1 against an area share of area[2, 1]
    assert np.isnan(distance[3])                      # s[3] = 0: no salient context
    stats = context_stats.aggregate([5, 5, 5, 5], sums)
    assert stats.area_like.tolist() == [2] and stats.count.tolist() == [4] and stats.empty.tolist() == [1]


def test_aggregate_matches_numpy_reference_on_random_maps(rng):
    n, kc = 12, 4
    s = rng.random((n, 10, 10)) * (rng.random((n, 10, 10)) > 0.6)
    r = np.zeros((n, 10, 10))
    for i in range(n):
        y, x = rng.integers(0, 7, 2)
        r[i, y:y + 3, x:x + 3] = 1
    labels = rng.integers(0, kc, (n, 10, 10))
    classes = rng.integers(0, 3, n)
    s[0] = 0  # a request without salient context: left out of the shares, counted as empty
    stats = context_stats.aggregate(classes, context_stats.request_sums(s, r, labels, kc))
    for row, c in enumerate(stats.classes):
        shares = []
        for i in np.flatnonzero(classes == c):
            per = np.array([(s[i] * (1 - r[i]) * (labels[i] == k)).sum() for k in range(kc)])
            if per.sum() > 0:
                shares.append(per / per.sum())
        np.testing.assert_allclose(stats.share[row], np.mean(shares, axis=0))
        assert stats.empty[row] == (classes == c).sum() - len(shares)
        np.testing.assert_allclose(stats.mean_fraction[row], np.mean([(s[i] * (1 - r[i])).sum() / (1 - r[i]).sum() for i in np.flatnonzero(classes == c)]))


def test_request_policy_zones():
    labels = np.zeros((8, 8), int)
    labels[0:3, 0:3] = 1
    labels[5:8, 5:8] = 1
    labels[0:2, 6:8] = 2
    labels[7, 0] = 255
    prediction = labels.copy()
    prediction[0:3, 0:3] = 2  # the first square of class 1 is predicted as 2
    prediction[7, 0] = 0
    zones = RequestPolicy(zone="class", min_pixels=1).requests(labels, prediction, ignore_label=255)
    assert [(r.zone_class, r.class_id, int(r.mask.sum())) for r in zones] == [(0, 0, 64 - 18 - 4 - 1), (1, 1, 18), (2, 2, 4)]
    comps = RequestPolicy(zone="component", classes=(1,), min_pixels=1).requests(labels, prediction, ignore_label=255)
    assert [(int(r.mask[1, 1]), int(r.mask[6, 6]), int(r.mask.sum())) for r in comps] == [(1, 0, 9), (0, 1, 9)]
    assert RequestPolicy(zone="component", classes=(1,), min_pixels=10).requests(labels, prediction, 255) == []
    errors = RequestPolicy(zone="error", min_pixels=1).requests(labels, prediction, ignore_label=255)
    assert [(r.zone_class, r.class_id, int(r.mask.sum())) for r in errors] == [(1, 2, 9)]
    from_pred = RequestPolicy(zone="class", zones_from="predictions", exclude=(0,), min_pixels=1).requests(None, prediction)
    assert [(r.class_id, int(r.mask.sum())) for r in from_pred] == [(1, 9), (2, 13)]


# -- label tables and readers --------------------------------------------------------------------


def test_cityscapes_table_matches_cityscapesscripts():
    official = pytest.importorskip("cityscapesscripts.helpers.labels")
    mine = {row[1]: row for row in CITYSCAPES_LABELS}
    assert len(mine) == len(official.labels)
    for label in official.labels:
        name, _, train, category, colour = mine[label.id]
        assert (name, train, category, colour) == (label.name, label.trainId, label.category, tuple(label.color))
    evaluated = sorted((l.trainId, l.name) for l in official.labels if 0 <= l.trainId < 255)
    assert CITYSCAPES.names == tuple(name for _, name in evaluated) and CITYSCAPES.num_classes == 19
    raw = np.array([[7, 8, 24, 0], [33, 26, 9, 23]])
    assert CITYSCAPES.to_class_ids(raw).tolist() == [[0, 1, 11, 255], [18, 13, 255, 10]]
    with pytest.raises(GsalInputError, match=r"raw label ids \[40\] are not in the cityscapes label table"):
        CITYSCAPES.to_class_ids(np.array([[7, 40]]))


def make_cityscapes(root: Path, rng, cities=("aachen", "bonn"), per_city=2, size=(16, 16), labels=True) -> Path:
    for city in cities:
        (root / "leftImg8bit" / "val" / city).mkdir(parents=True)
        if labels:
            (root / "gtFine" / "val" / city).mkdir(parents=True)
        for k in range(per_city):
            stem = f"{city}_{k:06d}_000019"
            cv2.imwrite(str(root / "leftImg8bit" / "val" / city / f"{stem}_leftImg8bit.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
            if labels:
                raw = np.full(size, 7, np.uint8)      # road
                raw[: size[0] // 2] = 23              # sky on top
                raw[6:10, 6:10] = 26                  # a car
                raw[0, 0] = 0                         # unlabeled
                cv2.imwrite(str(root / "gtFine" / "val" / city / f"{stem}_gtFine_labelIds.png"), raw)
    return root


def test_cityscapes_tree_reader(tmp_path, rng):
    source = open_source(make_cityscapes(tmp_path / "cs", rng))
    assert source.layout == "cityscapes" and len(source) == 4 and source.has_labels
    sample = source.read(2)
    assert sample.key == "bonn/bonn_000000_000019_leftImg8bit.png"
    assert sample.image.shape == (16, 16, 3) and 0 <= sample.image.min() and sample.image.max() <= 1
    assert sample.labels[0, 0] == 255 and sample.labels[8, 8] == 13 and sample.labels[1, 5] == 10 and sample.labels[15, 15] == 0
    assert source.class_names[13] == "car"
    raw = open_source(tmp_path / "cs", pixel_scale=2)
    np.testing.assert_allclose(raw.read(2).image, sample.image * 510, atol=1e-3)
    assert raw.describe()["pixel_scale"] == 2 and raw.grey == 255


def test_texture_mnist_samples_carry_the_texture_map(mnist):
    data = gs.benchmark.TextureMNIST({"n_train": 0, "n_test": 6, "tiles": 2}, mnist=mnist)
    s = data.samples("test", 6)
    for i in range(6):
        digit = s["digit_mask"][i] > 0
        assert np.all(s["texture_map"][i][digit] == s["foreground_texture"][i])
        assert np.all(s["texture_map"][i][:32][~digit[:32]] == s["tile_textures"][i, 0])
        assert np.all(s["texture_map"][i][32:][~digit[32:]] == s["tile_textures"][i, 1])


# -- runs ------------------------------------------------------------------------------------------


def make_pairs(root: Path, rng, n=7, bad_label=False) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True)
    labels.mkdir()
    for i in range(n):
        cv2.imwrite(str(images / f"img{i:02d}.png"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        label = np.zeros((16, 16), np.uint8)
        label[2:8, 2:8] = 1
        label[10:15, 9:15] = 2 if i % 2 else 1
        if bad_label and i == 3:
            label[0, 0] = 9
        cv2.imwrite(str(labels / f"img{i:02d}.png"), label)
    return images, labels


def _run(model, images, labels, out, options=OPTIONS, **kw):
    return explain_dataset(model, images, out, labels=labels, options=options, policy=RequestPolicy(zone="component", min_pixels=4), **kw)


def _columns(folder) -> dict:
    table = read_results(folder)
    return {name: table.column(name).to_pylist() for name in table.column_names}


def test_run_writes_shards_and_card(conv_model_file, tmp_path, rng):
    model = gs.loading.load_model(conv_model_file)
    images, labels = make_pairs(tmp_path, rng)
    summary = _run(model, images, labels, tmp_path / "out", store_maps=True)
    rows = _columns(tmp_path / "out")
    # Components of >= 4 px per image: the background (class 0) and two squares (classes 1 and 1,
    # or 1 and 2 on odd images): 3 requests each.
    expected = 3 * 7
    assert summary.requests == len(rows["class_id"]) == expected
    assert sorted(p.name for p in (tmp_path / "out" / "requests").iterdir()) == [f"part-{k:05d}.parquet" for k in range(-(-expected // 4))]
    assert rows["sample_index"] == sorted(rows["sample_index"])
    assert all(len(v) == 3 for v in rows["salient"]) and np.all(np.isfinite(rows["preserved_score"]))
    card = json.loads((tmp_path / "out" / "run.json").read_text())
    assert card["status"] == "complete" and card["settings"]["explainer"]["iterations"] == 3 and card["versions"]["pyarrow"]
    with np.load(tmp_path / "out" / "maps" / "part-00000.npz") as maps:
        assert maps["saliency_0"].shape == (16, 16)
        mask = np.unpackbits(maps["request_0"])[:256].reshape(16, 16)
        assert mask.sum() == rows["request_pixels"][0]
    stats, _ = load_stats(tmp_path / "out")
    assert list(stats.classes) == [0, 1, 2] and np.allclose(np.nansum(stats.share, axis=1), 1)
    none, _ = load_stats(tmp_path / "out", read_results(tmp_path / "out").slice(0, 0))  # a filter that keeps no request
    assert len(none.classes) == 0 and none.share.shape == (0, 3) and none.profile.shape == (0, stats.profile.shape[1])

    # A rerun of a complete run changes nothing, its card included (finish and wall time); a run
    # of other settings is refused.
    card_text = (tmp_path / "out" / "run.json").read_text()
    again = _run(model, images, labels, tmp_path / "out", store_maps=True)
    assert again.requests == expected and _columns(tmp_path / "out") == rows
    assert (tmp_path / "out" / "run.json").read_text() == card_text
    with pytest.raises(GsalInputError, match=r"holds results of other settings \(differing: explainer.lam\)"):
        explain_dataset(model, images, tmp_path / "out", labels=labels, options={**OPTIONS, "lam": 2.0},
                        policy=RequestPolicy(zone="component", min_pixels=4), store_maps=True)

    # A card written before `prune` existed reads as prune=False: it resumes with prune=False and is
    # refused with prune=True.
    card = json.loads(card_text)
    del card["settings"]["explainer"]["prune"]
    (tmp_path / "out" / "run.json").write_text(json.dumps(card))
    assert _run(model, images, labels, tmp_path / "out", store_maps=True, options={**OPTIONS, "prune": False}).requests == expected
    with pytest.raises(GsalInputError, match=r"holds results of other settings \(differing: explainer.prune\)"):
        _run(model, images, labels, tmp_path / "out", store_maps=True, options={**OPTIONS, "prune": True})


def _fixed_prediction_model(prediction: np.ndarray, num_classes: int = 3):
    """A model whose arg-max is ``prediction`` (H,W) on any image, with a small input term so that
    the explanation has gradients."""
    import keras

    logits = 6.0 * np.eye(num_classes, dtype=np.float32)[prediction]
    inp = keras.Input(prediction.shape + (3,))
    small = keras.layers.Conv2D(num_classes, 3, padding="same", kernel_initializer=keras.initializers.Constant(0.01))(inp)
    out = keras.layers.Softmax()(keras.layers.Lambda(lambda x: x + logits)(small))
    return keras.Model(inp, out)


def test_context_classes_from_the_networks_prediction(tmp_path, rng):
    """``context_from="predictions"``: the statistics count the salient context on the network's
    predicted classes (a known map here), not on the labels; the data's ignore label is a network
    class like any other; a run from labels keeps its card as before."""
    prediction = np.zeros((16, 16), np.int64)
    prediction[:, 8:] = 2
    prediction[12:, :] = 1
    model = _fixed_prediction_model(prediction)
    images, labels = make_pairs(tmp_path, rng, n=3)
    policy = RequestPolicy(zone="component", min_pixels=4, context_from="predictions")
    summary = explain_dataset(model, images, tmp_path / "out-pred", labels=labels, options=OPTIONS, policy=policy, store_maps=True)
    card = json.loads((tmp_path / "out-pred" / "run.json").read_text())
    assert card["settings"]["policy"]["context_from"] == "predictions"
    assert card["settings"]["context_classes"] == ["class 0", "class 1", "class 2"]
    rows = _columns(tmp_path / "out-pred")
    assert summary.requests == len(rows["salient"]) == 9
    k = 0
    for part in sorted((tmp_path / "out-pred" / "maps").iterdir()):
        with np.load(part) as maps:
            for i in range(len([n for n in maps.files if n.startswith("saliency_")])):
                saliency = maps[f"saliency_{i}"].astype(np.float64)
                request = np.unpackbits(maps[f"request_{i}"])[:256].reshape(16, 16).astype(np.float64)
                expected = context_stats.request_sums(saliency[None], request[None], prediction[None], 3, None)["salient"][0]
                np.testing.assert_allclose(rows["salient"][k], expected, rtol=1e-3, atol=1e-6)
                k += 1
    assert k == 9
    # The labels put nothing on class 2 left of column 8; the prediction does on the right half:
    # the two runs differ, and the labels run's card has no context_from (older cards match it).
    explain_dataset(model, images, tmp_path / "out-labels", labels=labels, options=OPTIONS, policy=RequestPolicy(zone="component", min_pixels=4))
    label_card = json.loads((tmp_path / "out-labels" / "run.json").read_text())
    assert "context_from" not in label_card["settings"]["policy"]
    assert _columns(tmp_path / "out-labels")["salient"] != rows["salient"]
    # Data whose ignore label (2) is also a network class: no predicted pixel is left out.
    source = open_source(images, "folder", labels=labels)
    source.ignore_label = 2
    explain_dataset(model, source, tmp_path / "out-ignore", options=OPTIONS, policy=policy)
    ignore_rows = _columns(tmp_path / "out-ignore")
    assert ignore_rows["salient"] and all(sum(c) == 256 - n for c, n in zip(ignore_rows["context_pixels"], ignore_rows["request_pixels"]))
    with pytest.raises(GsalInputError, match="context_from"):
        RequestPolicy(context_from="guesses")


def test_killed_run_resumes_to_the_same_results(conv_model_file, tmp_path, rng):
    images, labels = make_pairs(tmp_path, rng, n=9)
    model = gs.loading.load_model(conv_model_file)
    _run(model, images, labels, tmp_path / "whole")
    script = textwrap.dedent(f"""
        import os, signal
        import gsal_tf as gs
        from gsal_tf.scale import RequestPolicy, explain_dataset
        def progress(done, total, requests):
            if requests >= 8:  # two shards committed: SIGKILL the whole process mid-run
                os.kill(os.getpid(), signal.SIGKILL)
        model = gs.loading.load_model({str(conv_model_file)!r})
        explain_dataset(model, {str(images)!r}, {str(tmp_path / 'killed')!r}, labels={str(labels)!r}, options={OPTIONS!r},
                        policy=RequestPolicy(zone="component", min_pixels=4), progress=progress)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "cli")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert json.loads((tmp_path / "killed" / "run.json").read_text())["status"] == "running"
    partial = len(list((tmp_path / "killed" / "requests").glob("part-*.parquet")))
    assert 2 <= partial < 7
    _run(model, images, labels, tmp_path / "killed")
    assert _columns(tmp_path / "killed") == _columns(tmp_path / "whole")
    a, _ = load_stats(tmp_path / "killed")
    b, _ = load_stats(tmp_path / "whole")
    np.testing.assert_array_equal(a.share, b.share)
    np.testing.assert_array_equal(a.inflation_share, b.inflation_share)


def test_unreadable_image_is_skipped_or_stops(conv_model_file, tmp_path, rng):
    model = gs.loading.load_model(conv_model_file)
    images, labels = make_pairs(tmp_path, rng, n=5)
    (images / "img02.png").write_bytes(b"not a png")
    summary = _run(model, images, labels, tmp_path / "skip")
    assert [s["key"] for s in summary.skipped] == ["img02.png"]
    card = json.loads((tmp_path / "skip" / "run.json").read_text())
    assert card["skipped"][0]["index"] == 2 and "cannot read" in card["skipped"][0]["error"]
    assert 2 not in _columns(tmp_path / "skip")["sample_index"]
    with pytest.raises(GsalInputError, match="sample 2: cannot read"):
        _run(model, images, labels, tmp_path / "stop", on_error="stop")
    assert list((tmp_path / "stop" / "requests").glob("part-*.parquet"))  # what was committed stays


def test_bad_inputs_are_one_clear_error(conv_model_file, tmp_path, rng):
    model = gs.loading.load_model(conv_model_file)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GsalInputError, match="holds no images"):
        _run(model, tmp_path / "empty", None, tmp_path / "o1")
    images, labels = make_pairs(tmp_path / "a", rng, n=3)
    with pytest.raises(GsalInputError, match="needs label maps, and the data has none"):
        _run(model, images, None, tmp_path / "o2")
    images, labels = make_pairs(tmp_path / "b", rng, n=5, bad_label=True)
    with pytest.raises(GsalInputError, match=r"img03.png hold ids \[9\] outside the network's classes 0..2"):
        _run(model, images, labels, tmp_path / "o3")
    (tmp_path / "o4").mkdir()
    (tmp_path / "o4" / "x.txt").write_text("mine")
    with pytest.raises(GsalInputError, match="not empty and holds no run.json"):
        _run(model, images, labels, tmp_path / "o4")
    with pytest.raises(GsalInputError, match="unknown engine 'spark'; available: local, ray"):
        _run(model, images, labels, tmp_path / "o5", engine="spark")


def test_cityscapes_run_and_tf_data_give_the_same_rows(tmp_path, rng):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(19, 3, padding="same", activation="softmax")])
    source = open_source(make_cityscapes(tmp_path / "cs", rng))
    policy = RequestPolicy(zone="class", classes=(13,), min_pixels=4)
    summary = explain_dataset(model, source, tmp_path / "cs-out", options=OPTIONS, policy=policy)
    assert summary.requests == 4
    samples = [source.read(i) for i in range(len(source))]
    dataset = tf.data.Dataset.from_tensor_slices({"image": np.stack([s.image for s in samples]), "labels": np.stack([s.labels for s in samples])})
    explain_dataset(model, dataset, tmp_path / "tf-out", options=OPTIONS, policy=policy, label_table=CITYSCAPES)
    a, b = _columns(tmp_path / "cs-out"), _columns(tmp_path / "tf-out")
    for key in ("class_id", "request_pixels", "preserved_score", "salient", "inflation"):
        assert a[key] == b[key], key
    # the salient context never lands on the ignored pixel: 19 context classes, shares over labelled pixels
    assert len(a["salient"][0]) == 19


def test_texture_mnist_run_counts_context_on_textures(mnist, tmp_path):
    import keras

    data = gs.benchmark.TextureMNIST({"n_train": 0, "n_test": 4, "tiles": 2}, mnist=mnist)
    data.generate(tmp_path / "tm", splits={"test": 4})
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((64, 64, 1)), keras.layers.Conv2D(11, 3, padding="same", activation="softmax")])
    summary = explain_dataset(model, tmp_path / "tm", tmp_path / "out", options=OPTIONS, policy=RequestPolicy(exclude=(10,)))
    rows = _columns(tmp_path / "out")
    assert summary.requests == 4 and sorted(rows["class_id"]) == sorted(data.samples("test", 4)["digit"].tolist())
    card = json.loads((tmp_path / "out" / "run.json").read_text())
    assert card["settings"]["context_classes"] == data.texture_names
    assert all(len(v) == len(data.texture_names) for v in rows["salient"])


def test_pixel_scale_reads_files_for_a_network_that_takes_0_255(conv_model_file, tmp_path, rng):
    import keras

    from typer.testing import CliRunner

    from gsal_cli.main import app

    model = gs.loading.load_model(conv_model_file)
    inputs = keras.Input((16, 16, 3))
    wrapped = keras.Model(inputs, model(keras.layers.Rescaling(1 / 255)(inputs)), name="takes_0_255")  # the same network on 0-255
    images, labels = make_pairs(tmp_path, rng, n=3)
    for folder in (images, labels):  # 12x16 frames: letterboxed to the 16x16 network, the bars mid-grey at either scale
        for path in folder.iterdir():
            cv2.imwrite(str(path), cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[2:14])
    plain = _run(model, images, labels, tmp_path / "plain")
    scaled = _run(wrapped, images, labels, tmp_path / "scaled", pixel_scale=1)
    a, b = _columns(tmp_path / "plain"), _columns(tmp_path / "scaled")
    assert plain.requests == scaled.requests == 9 and a["class_id"] == b["class_id"]
    np.testing.assert_allclose(b["preserved_score"], a["preserved_score"], atol=1e-4)
    np.testing.assert_allclose(np.array(b["salient"]), np.array(a["salient"]), atol=1e-3)
    read = lambda folder: json.loads((folder / "run.json").read_text())  # noqa: E731
    assert read(tmp_path / "scaled")["settings"]["data"]["pixel_scale"] == 1 and read(tmp_path / "plain")["settings"]["data"]["pixel_scale"] == 1 / 255
    # Fed [0, 1], the 0-255 network sees near-black images: another prediction.
    _run(wrapped, images, labels, tmp_path / "unscaled")
    assert not np.allclose(_columns(tmp_path / "unscaled")["preserved_score"], a["preserved_score"], atol=1e-3)

    # A card written before pixel_scale existed reads as 1/255: it resumes at 1/255, refused at 1.
    card = read(tmp_path / "plain")
    del card["settings"]["data"]["pixel_scale"]
    (tmp_path / "plain" / "run.json").write_text(json.dumps(card))
    assert _run(model, images, labels, tmp_path / "plain").requests == 9
    with pytest.raises(GsalInputError, match=r"other settings \(differing: data.pixel_scale\)"):
        _run(model, images, labels, tmp_path / "plain", pixel_scale=1)

    for bad, phrase in ((0, "got 0 "), (float("nan"), "got nan"), ("1", "got '1'"), (True, "got True")):
        with pytest.raises(GsalInputError, match=phrase):
            open_source(images, pixel_scale=bad)
    import tensorflow as tf

    with pytest.raises(GsalInputError, match="tf.data.Dataset's images are taken as they are"):
        open_source(tf.data.Dataset.from_tensor_slices(np.zeros((2, 4, 4, 3), np.float32)), pixel_scale=1)
    (tmp_path / "tm").mkdir()
    (tmp_path / "tm" / "card.json").write_text("{}")
    with pytest.raises(GsalInputError, match="TextureMNIST folder: its images are stored in"):
        open_source(tmp_path / "tm", pixel_scale=1)
    with pytest.raises(GsalInputError, match="give it to the Source itself"):
        open_source(open_source(images), pixel_scale=1)

    # The command line: the 0-255 network read at [0, 1] is warned about, with the fix.
    path = tmp_path / "takes_0_255.keras"
    wrapped.save(path)
    runner = CliRunner()
    args = ["explain-dataset", str(images), "--labels", str(labels), "--model", str(path), "--grid", "4,4", "--iterations", "3",
            "--target", "0", "--zone", "component", "--min-pixels", "4"]
    warned = runner.invoke(app, [*args, "-o", str(tmp_path / "cli-unscaled")])
    assert warned.exit_code == 0 and "pass --pixel-scale 1" in " ".join(warned.output.split()), warned.output
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "cli-scaled"), "--pixel-scale", "1"])
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    np.testing.assert_allclose(_columns(tmp_path / "cli-scaled")["preserved_score"], a["preserved_score"], atol=1e-4)
    bad = runner.invoke(app, [*args, "-o", str(tmp_path / "cli-bad"), "--pixel-scale", "0"])  # refused while parsing (Typer's box)
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "'--pixel-scale': 0.0 is not a number > 0.0" in " ".join(bad.output.replace("│", " ").split())
    assert not (tmp_path / "cli-bad").exists()


def test_cli_explain_dataset_and_stats(conv_model_file, tmp_path, rng, saved_figures):
    from typer.testing import CliRunner

    from gsal_cli.main import app

    images, labels = make_pairs(tmp_path, rng, n=4)
    runner = CliRunner()
    args = ["explain-dataset", str(images), "--labels", str(labels), "--model", str(conv_model_file), "--out", str(tmp_path / "out"),
            "--grid", "4,4", "--iterations", "3", "--batch-size", "4", "--zone", "component", "--min-pixels", "4"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "12 requests of 4 samples" in " ".join(result.output.split())
    result = runner.invoke(app, ["stats", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "salient context by class" in result.output and "infl." in result.output and "area-like" in " ".join(result.output.split())
    assert sorted(p.name for p in (tmp_path / "out" / "stats").iterdir()) == ["difference.png", "distance.png", "share.png", "size.png"]
    assert any("grid saliency − inflation baseline" in t for fig, _ in saved_figures for ax in fig.axes for t in [ax.get_title()])
    bad = runner.invoke(app, args[:-4] + ["--iterations", "5"])
    assert bad.exit_code == 2 and "holds results of other settings" in " ".join(bad.output.split())
    assert bad.output.count("error:") == 1 and "Traceback" not in bad.output
    empty = tmp_path / "none"
    empty.mkdir()
    bad = runner.invoke(app, ["explain-dataset", str(empty), "--model", str(conv_model_file), "--out", str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "holds no images" in " ".join(bad.output.split())
    pred_args = [*args[:7], str(tmp_path / "out-pred"), *args[8:], "--context-from", "predictions"]
    result = runner.invoke(app, pred_args)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out-pred" / "run.json").read_text())["settings"]["policy"]["context_from"] == "predictions"
    bad = runner.invoke(app, [*args[:7], str(tmp_path / "o3"), *args[8:], "--context-from", "guesses"])
    assert bad.exit_code == 2 and "'--context-from': 'guesses' is not one of labels, predictions" in " ".join(bad.output.replace("│", " ").split())
    assert not (tmp_path / "o3").exists()


def test_any_explainer_gives_context_statistics(conv_model_file, tmp_path, rng):
    model = gs.loading.load_model(conv_model_file)
    images, labels = make_pairs(tmp_path, rng, n=3)
    explain_dataset(model, images, tmp_path / "vg", labels=labels, method="vanilla_gradients", options={"batch_size": 4},
                    policy=RequestPolicy(zone="component", min_pixels=4))
    rows = _columns(tmp_path / "vg")
    assert np.all(np.isnan(rows["preserved_score"])) and np.all(np.isfinite(rows["original_score"]))
    stats, card = load_stats(tmp_path / "vg")
    assert card["settings"]["explainer"]["method"] == "vanilla_gradients"
    np.testing.assert_allclose(np.nansum(stats.share, axis=1), 1)


def test_local_engine_keeps_at_most_two_batches_off_disk():
    """While batch k is explained, every batch before k-1 is written; a kill loses at most the
    batch being explained and the one being written."""
    import threading
    import time

    from gsal_tf.scale.engine import LocalEngine
    from gsal_tf.scale.store import ResumePoint

    class FakeJob:
        def __init__(self):
            self.committed, self.lag, self.lock = [], [], threading.Lock()

        def plan(self, start):
            yield from range(12)

        def explain(self, batch):
            with self.lock:
                self.lag.append(batch - len(self.committed))  # explained batches not yet on disk, before this one
            time.sleep(0.002)
            return batch * 10

        def commit(self, shard, batch, result):
            time.sleep(0.02)  # writing is slower than explaining here: the worst case for the bound
            with self.lock:
                self.committed.append((shard, batch, result))

    job = FakeJob()
    LocalEngine(prefetch=3).run(job, ResumePoint(shard=5))
    assert job.committed == [(5 + k, k, 10 * k) for k in range(12)]
    assert max(job.lag) <= 1


def test_engine_options_and_a_missing_ray_are_one_clear_error(conv_model_file, tmp_path, rng, monkeypatch):
    from typer.testing import CliRunner

    from gsal_cli.main import app
    from gsal_tf.scale.ray_engine import default_actors

    model = gs.loading.load_model(conv_model_file)
    images, labels = make_pairs(tmp_path, rng, n=2)
    with pytest.raises(GsalInputError, match=r"engine 'local' has no option 'actors'; its options: prefetch"):
        _run(model, images, labels, tmp_path / "o1", engine_options={"actors": 2})
    with pytest.raises(GsalInputError, match="engine_options must be a dict"):
        _run(model, images, labels, tmp_path / "o2", engine_options=["ray"])
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(GsalInputError, match=r'engine="ray" needs Ray: install it with pip install "gsal-tf\[ray\]"'):
        _run(model, images, labels, tmp_path / "o3", engine="ray")
    assert not (tmp_path / "o3").exists()  # refused before anything is written
    bad = CliRunner().invoke(app, ["explain-dataset", str(images), "--labels", str(labels), "--model", str(conv_model_file),
                                   "--out", str(tmp_path / "o4"), "--actors", "2"])
    assert bad.exit_code == 2 and "--actors is a Ray option: add --engine ray" in " ".join(bad.output.split())
    # one actor per CPU share, or per GPU when actors take GPUs
    assert default_actors({"CPU": 8.0}, 1, 0) == 8 and default_actors({"CPU": 8.0}, 3, 0) == 2
    assert default_actors({"CPU": 8.0, "GPU": 2.0}, 1, 1) == 2 and default_actors({"CPU": 1.0}, 2, 0) == 1
