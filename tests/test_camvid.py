"""CamVid (SegNet version) and label-set mappings: the reader on tiny trees built on the fly (both
layouts), the shipped mappings, requests from labels, error and confusion zones, the mIoU through a
mapping against a NumPy reference, runs and the CLI, and one end-to-end run on two real CamVid
frames (``../shared/data/real/research-only/camvid``; skipped cleanly without it). CamVid pixels
never enter the repository: real frames are copied into a temporary tree only."""

from __future__ import annotations

import json
import shutil
import tomllib
from pathlib import Path

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.datasets import (CAMVID, CITYSCAPES, UNMAPPED, available_mappings, dataset_confusion, load_mapping, mapped_confusion,
                              mapped_iou, mapped_mean_iou, open_source)
from gsal_tf.datasets.mapping import LabelMapping, parse_mapping
from gsal_tf.errors import GsalInputError
from gsal_tf.scale import RequestPolicy, explain_dataset, load_stats, read_card, read_results

ROOT = Path(__file__).resolve().parents[1]
CAMVID_DATA = ROOT.parent / "shared" / "data" / "real" / "research-only" / "camvid"
OPTIONS = {"grid_size": (4, 4), "iterations": 3, "batch_size": 4, "target": 0.0}
SKY, BUILDING, ROAD, CAR, PEDESTRIAN = 0, 1, 3, 8, 9


def camvid_labels(size=(16, 16), variant: int = 0) -> np.ndarray:
    """A street of CamVid ids (H,W) uint8: sky on top, road below, a building, a car (16 px), a
    pedestrian (12 px) on even variants, one unlabelled pixel (11)."""
    labels = np.full(size, ROAD, np.uint8)
    labels[: size[0] // 2 - 2] = SKY
    labels[2:5, 10:14] = BUILDING
    labels[8:12, 2:6] = CAR
    if variant % 2 == 0:
        labels[8:12, 10:13] = PEDESTRIAN
    labels[0, 0] = 11
    return labels


def make_camvid(root: Path, rng, n: int = 3, split: str = "test", layout: str = "folders", size=(16, 16)) -> Path:
    """A SegNet CamVid tree of ``n`` random frames with :func:`camvid_labels`: ``folders``
    (``test/`` + ``testannot/``, same names) or ``list`` (``test.txt`` with SegNet's absolute paths,
    annotations named ``testannot_k.png`` as in the SegNet repository)."""
    (root / split).mkdir(parents=True)
    (root / f"{split}annot").mkdir()
    lines = []
    for k in range(n):
        image_name = f"0001TP_{k:06d}.png" if layout == "folders" else f"{split}_{k:05d}.png"
        label_name = image_name if layout == "folders" else f"{split}annot_{k:05d}.png"
        cv2.imwrite(str(root / split / image_name), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        cv2.imwrite(str(root / f"{split}annot" / label_name), camvid_labels(size, k))
        lines.append(f"/SegNet/CamVid/{split}/{image_name} /SegNet/CamVid/{split}annot/{label_name}")
    if layout == "list":
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def net19():
    """An untrained 16x16 network with the 19 Cityscapes outputs (no class names)."""
    import keras

    keras.utils.set_random_seed(3)
    return keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(19, 3, padding="same", activation="softmax")])


def tiny_mapping_toml(path: Path, network=("background", "person", "vehicle"), extra: str = "") -> Path:
    """What a user with their own network writes: its 3 classes -> CamVid."""
    path.write_text(f"""name = "tiny-camvid"
[network]
classes = {json.dumps(list(network))}
[dataset]
label_set = "camvid"
[classes]
pedestrian = ["person"]
car = ["vehicle"]
{extra}""")
    return path


# -- the label table and the reader --------------------------------------------------------------


def test_camvid_table_names_colours_and_ignore():
    assert CAMVID.names == ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian", "bicyclist")
    assert CAMVID.ignore_label == 11 and len(CAMVID.colours) == 11 and len(set(CAMVID.colours)) == 11
    assert CAMVID.colours[CAR] == (64, 0, 128) and CAMVID.colours[ROAD] == (128, 64, 128)  # SegNet's colours
    assert CAMVID.to_class_ids(np.array([[0, 10, 11]], np.uint8)).tolist() == [[0, 10, 11]]
    with pytest.raises(GsalInputError, match=r"label ids \[12\] are outside the camvid classes 0..10 \(and 11 = ignore\)"):
        CAMVID.to_class_ids(np.array([[3, 12]], np.uint8))


@pytest.mark.parametrize("layout", ["folders", "list"])
def test_camvid_tree_reader(tmp_path, rng, layout):
    root = make_camvid(tmp_path / "CamVid", rng, n=3, layout=layout)
    source = open_source(root)  # auto: a <split>annot/ folder or a <split>.txt pair list
    assert source.layout == "camvid" and len(source) == 3 and source.has_labels and source.ignore_label == 11
    assert source.class_names == CAMVID.names and source.describe()["pairs"] == ("test.txt" if layout == "list" else "test/ + testannot/")
    sample = source.read(1)
    assert sample.key == ("0001TP_000001.png" if layout == "folders" else "test_00001.png")
    assert sample.image.shape == (16, 16, 3) and 0 <= sample.image.min() and sample.image.max() <= 1
    np.testing.assert_array_equal(sample.labels, camvid_labels((16, 16), 1))
    assert sample.labels.dtype == np.int32 and sample.context_map is sample.labels
    # pixel_scale: the frames' 8-bit values times it, recorded for the run card; mid-grey letterbox.
    raw = open_source(root, pixel_scale=1)
    np.testing.assert_allclose(raw.read(1).image, sample.image * 255, atol=1e-3)
    assert raw.describe()["pixel_scale"] == 1 and source.describe()["pixel_scale"] == 1 / 255
    assert raw.grey == 127.5 and source.grey == 0.5


def test_pair_list_wins_and_keeps_its_order(tmp_path, rng):
    root = make_camvid(tmp_path / "CamVid", rng, n=3, layout="list")
    lines = (root / "test.txt").read_text().splitlines()
    (root / "test.txt").write_text("\n".join(reversed(lines[1:])) + "\n\n")  # two frames, reversed, a blank line
    source = open_source(root, layout="camvid", split="test")
    assert [source.read(i).key for i in range(len(source))] == ["test_00002.png", "test_00001.png"]
    np.testing.assert_array_equal(source.read(1).labels, camvid_labels((16, 16), 1))


def test_camvid_tree_faults_are_one_clear_error(tmp_path, rng):
    root = make_camvid(tmp_path / "a", rng, n=3)
    with pytest.raises(GsalInputError, match=r"is not a CamVid tree with split 'val': no val.txt and no .*val \(splits found: \['test'\]\)"):
        open_source(root, layout="camvid", split="val")
    (root / "testannot" / "0001TP_000001.png").unlink()
    with pytest.raises(GsalInputError, match=r"1 CamVid frames of split 'test' have no annotation \(first: 0001TP_000001.png"):
        open_source(root)
    listed = make_camvid(tmp_path / "b", rng, n=2, layout="list")
    (listed / "testannot" / "testannot_00000.png").unlink()
    with pytest.raises(GsalInputError, match="have no annotation"):
        open_source(listed)
    (listed / "test.txt").write_text("test/test_00001.png\n")
    with pytest.raises(GsalInputError, match=r"test.txt, line 1: a pair list line is '<image> <annotation>'"):
        open_source(listed, layout="camvid")
    other = make_camvid(tmp_path / "c", rng, n=2)
    cv2.imwrite(str(other / "testannot" / "0001TP_000001.png"), np.zeros((8, 16), np.uint8))
    with pytest.raises(GsalInputError, match=r"label map .*0001TP_000001.png is 8x16; its image is 16x16: they must match"):
        open_source(other).read(1)
    cv2.imwrite(str(other / "testannot" / "0001TP_000000.png"), np.full((16, 16), 12, np.uint8))
    with pytest.raises(GsalInputError, match=r"0001TP_000000.png: label ids \[12\] are outside the camvid classes"):
        open_source(other).read(0)
    cv2.imwrite(str(other / "testannot" / "0001TP_000000.png"), np.zeros((16, 16, 3), np.uint8))
    with pytest.raises(GsalInputError, match="has 3 channels; give single-channel maps of class ids"):
        open_source(other).read(0)


# -- the mappings ----------------------------------------------------------------------------------


def zoo_names(name: str) -> tuple:
    return next(e for e in gs.zoo.list_models() if e.name == name).class_names


def test_shipped_mappings_name_classes_of_their_label_sets():
    assert set(available_mappings()) >= {"cityscapes-camvid", "ade20k-camvid", "pascal-camvid"}
    networks = {"cityscapes-camvid": ["cityscapes-mobilenet-edgetpu"], "ade20k-camvid": ["ade20k-mobilenetv2"],
                "pascal-camvid": ["pascal-mobilenetv2", "pascal-mobilenetv2-0.5", "pascal-mobilenetv2-0.5-257"]}
    for name, zoo_models in networks.items():
        mapping = load_mapping(name)
        assert mapping.name == name and mapping.dataset_classes == CAMVID.names and mapping.ignore_label == 11
        for model in zoo_models:  # the zoo network's names, same ids: binding to it changes nothing
            assert mapping.network_classes == zoo_names(model), model
            assert mapping.for_network(len(mapping.network_classes), zoo_names(model)).groups == mapping.groups
        ids = [n for group in mapping.groups for n in group]
        assert len(ids) == len(set(ids)) and all(0 <= n < len(mapping.network_classes) for n in ids)
        assert mapping.notes and mapping.description
    assert load_mapping("cityscapes-camvid").network_classes == CITYSCAPES.names


def test_a_mapping_comes_back_from_its_run_card_form():
    for name in available_mappings():
        mapping = load_mapping(name)
        back = LabelMapping.from_dict(json.loads(json.dumps(mapping.to_dict())))  # as a run card holds it
        assert back.to_dict() == mapping.to_dict() and back.groups == mapping.groups, name
        assert back.to_dataset.tolist() == mapping.to_dataset.tolist() and back.explained.tolist() == mapping.explained.tolist()


def meaning(mapping) -> dict:
    """{network class name: dataset class name} of a mapping."""
    return {mapping.network_classes[n]: mapping.dataset_classes[d] for d, group in enumerate(mapping.groups) for n in group}


def test_cityscapes_to_camvid_is_the_table_of_the_issue():
    mapping = load_mapping("cityscapes-camvid")
    assert meaning(mapping) == {
        "person": "pedestrian", "rider": "bicyclist", "bicycle": "bicyclist", "motorcycle": "bicyclist", "vegetation": "tree",
        "terrain": "tree", "traffic light": "sign symbol", "traffic sign": "sign symbol", "wall": "fence", "fence": "fence",
        "car": "car", "truck": "car", "bus": "car", "train": "car", "road": "road", "sidewalk": "pavement",
        "building": "building", "pole": "pole", "sky": "sky"}
    explained = [mapping.network_classes[n] for n in mapping.explained]
    assert dict(zip(CAMVID.names, explained)) == {
        "sky": "sky", "building": "building", "pole": "pole", "road": "road", "pavement": "sidewalk", "tree": "vegetation",
        "sign symbol": "traffic sign", "fence": "fence", "car": "car", "pedestrian": "person", "bicyclist": "rider"}
    assert mapping.to_dataset.tolist() == [CAMVID.names.index(meaning(mapping)[n]) for n in CITYSCAPES.names]  # every class means one


def test_pascal_and_ade20k_to_camvid_shared_classes():
    pascal = meaning(load_mapping("pascal-camvid"))
    assert pascal == {"person": "pedestrian", "car": "car", "bus": "car", "train": "car", "bicycle": "bicyclist", "motorbike": "bicyclist"}
    assert load_mapping("pascal-camvid").explained[[CAMVID.names.index(c) for c in ("sky", "road", "building")]].tolist() == [UNMAPPED] * 3
    ade = load_mapping("ade20k-camvid")
    m = meaning(ade)
    assert {m[c] for c in ("person", "car", "truck", "bus", "van", "bicycle", "minibike", "road", "sidewalk", "sky", "tree", "building")} == \
        {"pedestrian", "car", "bicyclist", "road", "pavement", "sky", "tree", "building"}
    assert (m["traffic"], m["signboard"], m["streetlight"], m["wall"], m["railing"]) == ("sign symbol", "sign symbol", "pole", "building", "fence")
    assert "other" not in m and "bed" not in m and ade.to_dataset[0] == UNMAPPED
    assert all(group for group in ade.groups)  # every CamVid class has an ADE20K class


def test_a_mapping_naming_a_class_the_network_lacks_is_an_error():
    cityscapes = load_mapping("cityscapes-camvid")
    with pytest.raises(GsalInputError, match=r"mapping cityscapes-camvid names network classes this network lacks: sky, building, pole, road, … \(10 more\) \(its 21 classes: background"):
        cityscapes.for_network(21, zoo_names("pascal-mobilenetv2"))
    with pytest.raises(GsalInputError, match="is for a network of 19 classes .*this network has 3 and no class names"):
        cityscapes.for_network(3)
    assert cityscapes.for_network(19) is cityscapes
    # a network with the same names in another order: ids come from the network
    shuffled = list(reversed(CITYSCAPES.names))
    bound = cityscapes.for_network(19, shuffled)
    assert bound.network_classes == tuple(shuffled) and meaning(bound) == meaning(cityscapes)
    assert shuffled[bound.explained[CAR]] == "car"


def test_bad_mapping_files_are_one_clear_error(tmp_path):
    def parse(text):
        return parse_mapping(tomllib.loads(text), "m", "m.toml")

    head = '[network]\nclasses = ["bg", "person", "car"]\n[dataset]\nlabel_set = "camvid"\n'
    assert parse(head + '[classes]\npedestrian = ["Person"]\n"Car" = 2\n').groups[CAR] == (2,)  # names: any case; ids
    cases = [
        (head + '[classes]\npedestrian = ["rider"]\n', r"m.toml: \[classes\] pedestrian names 'rider', which is not one of the network's classes \(3 classes: bg, person, car\)"),
        (head + '[classes]\nhuman = ["person"]\n', r"\[classes\] 'human' is not one of the dataset's classes"),
        (head + '[classes]\npedestrian = ["person"]\nbicyclist = ["person"]\n', "network class 'person' is listed under 'pedestrian' and 'bicyclist'"),
        (head + '[classes]\npedestrian = ["person"]\ncar = [7]\n', r"names 7, which is not one of the network's classes \(ids 0..2\)"),
        (head + '[classes]\npedestrian = []\n', "must be a list of network classes"),
        (head, r"\[classes\] must list dataset class"),
        (head + '[classes]\ncar = ["car"]\n[extra]\n', r"unknown keys \['extra'\]"),
        ('[network]\nlabel_set = "coco"\n[dataset]\nlabel_set = "camvid"\n[classes]\ncar = ["car"]\n', "label_set 'coco' is not a label table of gsal"),
        ('[network]\nclasses = ["a"]\n[dataset]\nclasses = ["x"]\nignore = 0\n[classes]\nx = ["a"]\n', "ignore must be an integer id outside the classes 0..0"),
    ]
    for text, message in cases:
        with pytest.raises(GsalInputError, match=message):
            parse(text)
    with pytest.raises(GsalInputError, match="neither a shipped mapping .*cityscapes-camvid.* nor a TOML file"):
        load_mapping("cityscapes-kitti")
    broken = tmp_path / "broken.toml"
    broken.write_text("[classes\n")
    with pytest.raises(GsalInputError, match="broken.toml is not valid TOML"):
        load_mapping(broken)
    mine = load_mapping(tiny_mapping_toml(tmp_path / "tiny.toml"))
    assert mine.name == "tiny-camvid" and mine.explained[[PEDESTRIAN, CAR, ROAD]].tolist() == [1, 2, UNMAPPED]


# -- uses: requests, error regions, mIoU ------------------------------------------------------------

#: network classes 0 bg, 1 person, 2 rider, 3 car, 4 truck -> dataset classes 0 road, 1 pedestrian,
#: 2 bicyclist, 3 car (9 = ignore); road has no network class, bg means none.
SMALL = parse_mapping({"name": "small", "network": {"classes": ["bg", "person", "rider", "car", "truck"]},
                       "dataset": {"classes": ["road", "pedestrian", "bicyclist", "car"], "ignore": 9},
                       "classes": {"pedestrian": ["person"], "bicyclist": ["rider"], "car": ["car", "truck"]}})


def small_scene():
    labels = np.zeros((6, 6), np.int32)       # road
    labels[0:2, 0:2] = 1                      # a pedestrian (4 px) ...
    labels[0:2, 3:6] = 3                      # a car (6 px) ...
    labels[4:6, 0:3] = 2                      # a bicyclist (6 px) ...
    labels[5, 5] = 9                          # ignore
    prediction = np.zeros((6, 6), np.int32)   # bg everywhere ...
    prediction[0:2, 0:2] = 2                  # ... the pedestrian called rider but one pixel person
    prediction[0, 0] = 1
    prediction[0:2, 3:6] = 4                  # ... the car called truck (which means car)
    prediction[4:6, 0:3] = 1                  # ... the bicyclist called person
    return labels, prediction


def summary(requests) -> list:
    return [(r.zone, r.zone_class, r.class_id, int(r.mask.sum())) for r in requests]


def test_requests_from_labels_explain_the_mapped_network_class():
    labels, prediction = small_scene()
    zones = RequestPolicy(zone="class", min_pixels=1, mapping=SMALL).requests(labels, None, ignore_label=9)
    # road has no network class: no request; car is explained as car (the first of car, truck)
    assert summary(zones) == [("class", 1, 1, 4), ("class", 2, 2, 6), ("class", 3, 3, 6)]
    assert np.array_equal(zones[2].mask, labels == 3)
    two_cars = labels.copy()
    two_cars[3, 3:5] = 3  # a second car (2 px) below the first, not touching it
    comps = RequestPolicy(zone="component", classes=(3,), min_pixels=1, mapping=SMALL).requests(two_cars, None, 9)
    assert summary(comps) == [("component", 3, 3, 6), ("component", 3, 3, 2)]
    assert summary(RequestPolicy(zone="component", classes=(3,), min_pixels=3, mapping=SMALL).requests(two_cars, None, 9)) == [("component", 3, 3, 6)]
    assert RequestPolicy(zone="class", exclude=(1, 2, 3), min_pixels=1, mapping=SMALL).requests(labels, None, 9) == []
    with pytest.raises(GsalInputError, match="labels hold id 9, outside the 4 dataset classes of mapping small"):
        RequestPolicy(zone="class", min_pixels=1, mapping=SMALL).requests(labels, None, ignore_label=None)


def test_error_and_confusion_zones_through_the_mapping():
    labels, prediction = small_scene()
    errors = RequestPolicy(zone="error", min_pixels=1, mapping=SMALL).requests(labels, prediction, ignore_label=9)
    # road predicted bg (means no dataset class: wrong); pedestrian: 3 px rider (+1 right); bicyclist: all person;
    # the car predicted truck is right (truck means car); the ignored pixel is in no zone
    assert summary(errors) == [("error", 0, 0, 36 - 4 - 6 - 6 - 1), ("error", 1, 2, 3), ("error", 2, 1, 6)]
    assert not errors[1].mask[0, 0] and errors[1].mask[1, 1]
    mixed = prediction.copy()
    mixed[1, 0:2] = 3  # two pedestrian pixels called car: the pedestrian's errors are now rider 1, car 2
    errors = RequestPolicy(zone="error", classes=(1,), min_pixels=1, mapping=SMALL).requests(labels, mixed, 9)
    assert summary(errors) == [("error", 1, 3, 3)]  # one zone, explained for the class predicted most often there
    confusions = RequestPolicy(zone="confusion", classes=(1,), min_pixels=1, mapping=SMALL).requests(labels, mixed, 9)
    assert summary(confusions) == [("confusion", 1, 2, 1), ("confusion", 1, 3, 2)]  # one per (true, predicted) pair
    assert summary(RequestPolicy(zone="confusion", classes=(1,), min_pixels=2, mapping=SMALL).requests(labels, mixed, 9)) == [("confusion", 1, 3, 2)]
    # without a mapping, confusion zones pair label and prediction ids directly
    plain = RequestPolicy(zone="confusion", min_pixels=1).requests(labels, mixed, ignore_label=9)
    assert ("confusion", 3, 4, 6) in summary(plain) and ("confusion", 1, 2, 1) in summary(plain)


def test_zones_from_predictions_are_dataset_classes_of_the_prediction():
    _, prediction = small_scene()
    zones = RequestPolicy(zone="class", zones_from="predictions", min_pixels=1, mapping=SMALL).requests(None, prediction)
    # bg means nothing: no zone; person -> pedestrian (1 + 6 px), rider -> bicyclist, truck -> car (explained as truck, what is predicted)
    assert summary(zones) == [("class", 1, 1, 7), ("class", 2, 2, 3), ("class", 3, 4, 6)]


def reference_iou(labels, prediction, to_dataset, num_classes, ignore, mapped) -> np.ndarray:
    """IoU per dataset class, pixel by pixel in plain Python."""
    tp, fp, fn = np.zeros(num_classes), np.zeros(num_classes), np.zeros(num_classes)
    for truth, predicted in zip(labels.ravel().tolist(), prediction.ravel().tolist()):
        if truth == ignore:
            continue
        means = to_dataset[predicted]
        if means == truth:
            tp[truth] += 1
        else:
            fn[truth] += 1
            if means >= 0:
                fp[means] += 1
    out = np.full(num_classes, np.nan)
    for d in range(num_classes):
        if mapped[d] and tp[d] + fp[d] + fn[d] > 0:
            out[d] = tp[d] / (tp[d] + fp[d] + fn[d])
    return out


def test_mapped_iou_matches_a_numpy_reference(rng):
    labels, prediction = small_scene()
    confusion = mapped_confusion(labels, prediction, SMALL)
    assert confusion.shape == (4, 5) and confusion.sum() == 35  # the ignored pixel is not counted
    assert confusion[1].tolist() == [0, 1, 3, 0, 0] and confusion[0].tolist() == [0, 0, 0, 0, 19] and confusion[3, 3] == 6
    iou = mapped_iou(confusion, SMALL)
    assert np.isnan(iou[0])  # road: no network class means it
    np.testing.assert_allclose(iou[1:], [1 / (4 + 6 + 1 - 1), 0 / (6 + 3), 6 / 6])
    for mapping in (SMALL, load_mapping("cityscapes-camvid"), load_mapping("pascal-camvid")):
        kd, kn = len(mapping.dataset_classes), len(mapping.network_classes)
        labels = rng.integers(0, kd + 1, (3, 20, 24))
        labels[labels == kd] = mapping.ignore_label
        prediction = rng.integers(0, kn, labels.shape)
        confusion = mapped_confusion(labels, prediction, mapping)
        mapped = [bool(g) for g in mapping.groups]
        expected = reference_iou(labels, prediction, mapping.to_dataset, kd, mapping.ignore_label, mapped)
        np.testing.assert_allclose(mapped_iou(confusion, mapping), expected)
        assert mapped_mean_iou(confusion, mapping) == pytest.approx(np.nanmean(expected))
    with pytest.raises(GsalInputError, match=r"labels hold ids \[7\] outside the dataset classes 0..3 and the ignore label 9"):
        mapped_confusion(np.array([[7]]), np.array([[0]]), SMALL)
    with pytest.raises(GsalInputError, match="outside the 5 network classes of mapping small"):
        mapped_confusion(np.array([[0]]), np.array([[5]]), SMALL)


def test_dataset_confusion_sums_the_frames(tmp_path, rng, net19):
    root = make_camvid(tmp_path / "CamVid", rng, n=3)
    mapping = load_mapping("cityscapes-camvid")
    confusion = dataset_confusion(net19, root, mapping)
    expected = np.zeros_like(confusion)
    source = open_source(root)
    for i in range(len(source)):
        sample = source.read(i)
        prediction = np.asarray(net19(sample.image[None]))[0].argmax(-1)
        expected += mapped_confusion(sample.labels, prediction, mapping)
    np.testing.assert_array_equal(confusion, expected)
    assert confusion.sum() == 3 * (16 * 16 - 1)
    with pytest.raises(GsalInputError, match="mapping pascal-camvid is for a network of 21 classes .* this network has 19"):
        dataset_confusion(net19, root, "pascal-camvid")


# -- runs and the CLI ------------------------------------------------------------------------------


def test_camvid_run_through_a_mapping(tmp_path, rng, net19):
    root = make_camvid(tmp_path / "CamVid", rng, n=3, layout="list")
    policy = RequestPolicy(zone="class", classes=(CAR, PEDESTRIAN), min_pixels=4, mapping="cityscapes-camvid")
    summary = explain_dataset(net19, root, tmp_path / "out", options=OPTIONS, policy=policy)
    assert summary.requests == 3 + 2  # a car in every frame, a pedestrian in frames 0 and 2
    rows = read_results(tmp_path / "out")
    assert rows.column("zone_class").to_pylist() == [CAR, PEDESTRIAN, CAR, CAR, PEDESTRIAN]
    assert rows.column("class_id").to_pylist() == [13, 11, 13, 13, 11]  # Cityscapes car, person
    card = read_card(tmp_path / "out")
    settings = card["settings"]
    assert settings["context_classes"] == list(CAMVID.names) and settings["data"]["layout"] == "camvid"
    assert settings["policy"]["mapping"]["name"] == "cityscapes-camvid" and settings["data"]["ignore_label"] == 11
    assert all(len(v) == 11 for v in rows.column("salient").to_pylist())
    stats, card = load_stats(tmp_path / "out")
    from gsal_tf.scale.report import class_label

    assert [class_label(card, int(c)) for c in stats.classes] == ["person", "car"]  # network names
    # the same run is read back, not redone; another mapping is another run
    shards = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "requests").glob("part-*.parquet")}
    again = explain_dataset(net19, root, tmp_path / "out", options=OPTIONS, policy=policy)
    assert again.requests == 5 and shards
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "requests").glob("part-*.parquet")} == shards
    trucks = tmp_path / "trucks.toml"
    trucks.write_text('[network]\nlabel_set = "cityscapes"\n[dataset]\nlabel_set = "camvid"\n[classes]\ncar = ["truck", "car"]\n')
    other = RequestPolicy(zone="class", classes=(CAR, PEDESTRIAN), min_pixels=4, mapping=trucks)
    with pytest.raises(GsalInputError, match=r"holds results of other settings \(differing: policy.mapping\)"):
        explain_dataset(net19, root, tmp_path / "out", options=OPTIONS, policy=other)
    summary = explain_dataset(net19, root, tmp_path / "trucks", options=OPTIONS, policy=other)
    assert summary.requests == 3 and read_results(tmp_path / "trucks").column("class_id").to_pylist() == [14, 14, 14]


def test_a_run_with_a_mapping_the_network_lacks_writes_nothing(tmp_path, rng, conv_model_file):
    model = gs.loading.load_model(conv_model_file)  # 3 classes, no names
    root = make_camvid(tmp_path / "CamVid", rng, n=2)
    with pytest.raises(GsalInputError, match="mapping cityscapes-camvid is for a network of 19 classes"):
        explain_dataset(model, root, tmp_path / "out", options=OPTIONS, policy=RequestPolicy(mapping="cityscapes-camvid"))
    assert not (tmp_path / "out").exists()
    # the user's own table for this network: its person and vehicle
    policy = RequestPolicy(zone="component", min_pixels=4, mapping=tiny_mapping_toml(tmp_path / "tiny.toml"))
    summary = explain_dataset(model, root, tmp_path / "out", options=OPTIONS, policy=policy)
    rows = read_results(tmp_path / "out")
    assert summary.requests == 3 and rows.column("class_id").to_pylist() == [2, 1, 2]  # car, pedestrian, car (frame 1 has no pedestrian)


def cli(*args):
    from typer.testing import CliRunner

    from gsal_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def test_cli_reads_a_camvid_tree_through_a_mapping(tmp_path, rng, conv_model_file):
    root = make_camvid(tmp_path / "CamVid", rng, n=2)
    mapping = tiny_mapping_toml(tmp_path / "tiny.toml")
    out = tmp_path / "out"
    result = cli("explain-dataset", root, "--model", conv_model_file, "--out", out, "--layout", "camvid", "--split", "test",
                 "--mapping", mapping, "--zone", "class", "--classes", f"{CAR},{PEDESTRIAN}", "--min-pixels", "4",
                 "--grid", "4,4", "--iterations", "3", "--target", "0", "--batch-size", "4")
    assert result.exit_code == 0, result.output
    assert "3 requests of 2 samples" in " ".join(result.output.split())
    assert read_card(out)["settings"]["policy"]["mapping"]["network_classes"] == ["background", "person", "vehicle"]
    result = cli("stats", out)
    assert result.exit_code == 0, result.output
    assert "vehicle" in result.output and "person" in result.output and "pedestrian" in result.output  # request and context classes


@pytest.mark.skipif(not (CAMVID_DATA / "test.txt").is_file(), reason="needs ../shared/data/real/research-only/camvid")
def test_two_real_camvid_frames_end_to_end(tmp_path):
    """The Cityscapes network on two real CamVid test frames: the reader (pair list), the mapping,
    requests from labels, the mIoU through the mapping."""
    from gsal_tf.models import presets

    root = tmp_path / "CamVid"
    (root / "test").mkdir(parents=True)
    (root / "testannot").mkdir()
    pairs = [line.split() for line in (CAMVID_DATA / "test.txt").read_text().splitlines()[:2]]
    for image, label in pairs:
        shutil.copy(CAMVID_DATA / image, root / image)
        shutil.copy(CAMVID_DATA / label, root / label)
    (root / "test.txt").write_text("".join(f"/SegNet/CamVid/{i} /SegNet/CamVid/{a}\n" for i, a in pairs))
    model = presets.load("cityscapes-mobilenet-edgetpu")
    mapping = load_mapping("cityscapes-camvid")
    confusion = dataset_confusion(model, root, mapping)
    iou = mapped_iou(confusion, mapping)
    assert confusion.sum() == sum(int((cv2.imread(str(root / a), cv2.IMREAD_UNCHANGED) != 11).sum()) for _, a in pairs)
    # the network sees these streets (measured with the 8-bit activations simulated, as deployed:
    # road 0.59, sky 0.79, building 0.85, car 0.79; the float rebuild gave 0.80 / 0.85 / 0.87 / 0.85)
    assert min(iou[ROAD], iou[SKY], iou[BUILDING], iou[CAR]) > 0.5 and mapped_mean_iou(confusion, mapping) > 0.4
    summary = explain_dataset(model, root, tmp_path / "out", options={"iterations": 10, "batch_size": 2},
                              policy=RequestPolicy(zone="class", classes=(CAR,), min_pixels=500, mapping=mapping),
                              model_name="cityscapes-mobilenet-edgetpu")
    assert summary.requests == 2 and summary.samples == 2 and not summary.skipped
    rows = read_results(tmp_path / "out")
    assert rows.column("zone_class").to_pylist() == [CAR, CAR] and rows.column("class_id").to_pylist() == [13, 13]  # Cityscapes car
    assert all(s > 0.3 for s in rows.column("original_score").to_pylist())
    stats, card = load_stats(tmp_path / "out")
    assert card["settings"]["context_classes"] == list(CAMVID.names)
    assert all(len(v) == 11 for v in rows.column("salient").to_pylist())
    for share in stats.share:  # shares of the 11 CamVid classes: sum to 1, or NaN when no context was kept
        assert np.isnan(share).all() or np.nansum(share) == pytest.approx(1.0, abs=1e-6)
