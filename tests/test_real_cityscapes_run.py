"""A Cityscapes-layout dataset run end to end on a real frame (``../shared/data/real/research-only``;
skipped cleanly without it). The tree is built in a temporary folder — Cityscapes frames never
enter the repository: ``leftImg8bit/val/<city>/<name>_leftImg8bit.png`` and
``gtFine/val/<city>/<name>_gtFine_labelIds.png`` (raw ids; here from the reference segmentation
that comes with the frame, converted from train ids to the official raw ids)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from gsal_tf.datasets import CITYSCAPES, CITYSCAPES_LABELS
from gsal_tf.scale import RequestPolicy, explain_dataset, load_stats, read_results

pytest.importorskip("pyarrow")

FRAMES = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "research-only"
needs_frames = pytest.mark.skipif(not (FRAMES / "cityscapes_segmentation.png").is_file(), reason="needs ../shared/data/real/research-only")


def raw_ids(train_ids: np.ndarray) -> np.ndarray:
    """Train ids (H,W) -> the official raw label ids of ``*_gtFine_labelIds.png`` (0 = unlabeled)."""
    first_raw = {}
    for _, raw, train, _, _ in CITYSCAPES_LABELS:
        if 0 <= train < 255 and train not in first_raw:
            first_raw[train] = raw
    out = np.zeros(train_ids.shape, np.uint8)
    for train, raw in first_raw.items():
        out[train_ids == train] = raw
    return out


def make_tree(root: Path) -> Path:
    image = cv2.imread(str(FRAMES / "cityscapes_segmentation.png"), cv2.IMREAD_COLOR)
    train = cv2.imread(str(FRAMES / "cityscapes_segmentation_mask.png"), cv2.IMREAD_UNCHANGED)
    if train.ndim == 3:
        train = train[..., 0]
    name = "frankfurt_000000_000294"
    (root / "leftImg8bit" / "val" / "frankfurt").mkdir(parents=True)
    (root / "gtFine" / "val" / "frankfurt").mkdir(parents=True)
    cv2.imwrite(str(root / "leftImg8bit" / "val" / "frankfurt" / f"{name}_leftImg8bit.png"), image)
    cv2.imwrite(str(root / "gtFine" / "val" / "frankfurt" / f"{name}_gtFine_labelIds.png"), raw_ids(train))
    return root


def test_raw_ids_round_trip_through_the_label_table():
    train = np.arange(19, dtype=np.uint8).reshape(1, 19)
    assert np.array_equal(CITYSCAPES.to_class_ids(raw_ids(train)), train)


@needs_frames
def test_cityscapes_tree_of_a_real_frame_end_to_end(tmp_path):
    from gsal_tf.models import presets

    tree = make_tree(tmp_path / "cityscapes")
    model = presets.load("cityscapes-mobilenet-edgetpu")
    car, road = CITYSCAPES.names.index("car"), CITYSCAPES.names.index("road")
    summary = explain_dataset(model, tree, tmp_path / "out", split="val", options={"iterations": 10, "batch_size": 2},
                              policy=RequestPolicy(zone="class", zones_from="labels", classes=(car, road), min_pixels=500),
                              model_name="cityscapes-mobilenet-edgetpu")
    assert summary.requests == 2 and summary.samples == 1 and not summary.skipped
    stats, card = load_stats(tmp_path / "out")
    assert card["settings"]["context_classes"] == list(CITYSCAPES.names) and card["settings"]["data"]["layout"] == "cityscapes"
    assert sorted(stats.classes) == sorted([car, road])
    rows = read_results(tmp_path / "out")
    # shares over the context classes sum to 1, or are NaN when no context was kept — which the
    # defaults do only when the prediction keeps their target (0.9) without context
    no_context = dict(zip(rows.column("class_id").to_pylist(), rows.column("no_context_score").to_pylist()))
    for c, share in zip(stats.classes, stats.share):
        if np.isnan(share).all():
            assert no_context[int(c)] >= 0.9
        else:
            assert np.nansum(share) == pytest.approx(1.0, abs=1e-6)
    assert rows.column("sample_key").to_pylist()[0].endswith("_leftImg8bit.png")
    assert all(s > 0.3 for s in rows.column("original_score").to_pylist())  # the network sees road and car there
