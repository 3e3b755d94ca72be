"""gsal_tf.metrics on tiny arrays with hand-computed answers."""

import numpy as np
import pytest

from gsal_tf import metrics
from gsal_tf.errors import GsalInputError


def test_confusion_iou_and_mean_iou_by_hand():
    labels = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1], [0, 0, 1, 0]])
    conf = metrics.confusion_matrix(pred, labels, num_classes=3)
    # true 0: 3 pixels predicted 0, 1 predicted 1; true 1: 1 predicted 0, 3 predicted 1; class 2 absent.
    np.testing.assert_array_equal(conf, [[3, 1, 0], [1, 3, 0], [0, 0, 0]])
    iou = metrics.iou_per_class(conf)
    # IoU_0 = 3 / (4 + 4 - 3) = 0.6, IoU_1 = 3 / (4 + 4 - 3) = 0.6, class 2 absent from both -> NaN.
    np.testing.assert_allclose(iou[:2], [0.6, 0.6])
    assert np.isnan(iou[2])
    assert metrics.mean_iou(conf) == pytest.approx(0.6)


def test_iou_of_class_only_predicted_is_zero_and_ignore_label():
    labels = np.array([0, 0, 255, 1])
    pred = np.array([0, 2, 1, 1])
    conf = metrics.confusion_matrix(pred, labels, num_classes=3, ignore_label=255)
    np.testing.assert_array_equal(conf.sum(), 3)
    iou = metrics.iou_per_class(conf)
    np.testing.assert_allclose(iou, [0.5, 1.0, 0.0])  # class 2: FP only -> 0, not NaN
    assert metrics.mean_iou(conf) == pytest.approx(0.5)
    assert np.isnan(metrics.mean_iou(np.zeros((2, 2))))


def test_confusion_rejects_bad_ids_and_shapes():
    with pytest.raises(GsalInputError, match="outside"):
        metrics.confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
    with pytest.raises(GsalInputError, match="same shape"):
        metrics.confusion_matrix(np.zeros(3, int), np.zeros(4, int), 3)
    with pytest.raises(GsalInputError, match="integer"):
        metrics.confusion_matrix(np.zeros(3), np.zeros(3, int), 3)


def _case():
    """One 4×4 request: R = the centre 2×2, B = the bottom two rows, a hand-set saliency."""
    r = np.zeros((1, 4, 4))
    r[0, 1:3, 1:3] = 1
    b = np.zeros((1, 4, 4))
    b[0, 2:, :] = 1
    s = np.zeros((1, 4, 4))
    s[0, 0, 0] = 1.0  # context, top tile
    s[0, 3, 3] = 0.5  # context, biased tile
    s[0, 3, 0] = 0.5  # context, biased tile
    s[0, 1, 1] = 1.0  # inside R: ignored by both statistics
    return s, r, b


def test_cbd_and_cbl_by_hand():
    s, r, b = _case()
    # context has 16 - 4 = 12 pixels; salient context mass = 1 + 0.5 + 0.5 = 2
    np.testing.assert_allclose(metrics.cbd(s, r), [2 / 12])
    # biased part of the salient context = 0.5 + 0.5 = 1
    np.testing.assert_allclose(metrics.cbl(s, r, b), [0.5])
    np.testing.assert_allclose(metrics.context_area(s, r), [2.0])


def test_cbl_is_nan_without_salient_context_and_cbd_nan_without_context():
    s, r, b = _case()
    s_only_request = s * r
    assert np.isnan(metrics.cbl(s_only_request, r, b)[0])
    assert metrics.cbd(s_only_request, r)[0] == 0.0
    full = np.ones((1, 4, 4))
    assert np.isnan(metrics.cbd(np.ones((1, 4, 4)) * 0.3, full)[0])
    # a batch mixes finite and NaN values; nanmean is the documented aggregation
    values = metrics.cbl(np.concatenate([s, s_only_request]), np.concatenate([r, r]), np.concatenate([b, b]))
    assert values[0] == 0.5 and np.isnan(values[1]) and np.nanmean(values) == 0.5


def test_cbd_by_class_and_matrix():
    values = np.array([0.2, 0.4, 0.9, np.nan])
    digits = np.array([1, 1, 3, 3])
    by_class = metrics.cbd_by_class(values, digits, num_classes=4)
    np.testing.assert_allclose(by_class[[1, 3]], [0.3, 0.9])
    assert np.isnan(by_class[0]) and np.isnan(by_class[2])
    matrix = metrics.cbd_matrix({3: (values, digits)}, num_classes=4)
    np.testing.assert_allclose(matrix[3, [1, 3]], [0.3, 0.9])
    assert np.isnan(matrix[0]).all()
    with pytest.raises(GsalInputError, match="class ids"):
        metrics.cbd_by_class(values, np.array([0, 1, 2, 9]), num_classes=4)


def test_metric_inputs_are_checked():
    s, r, b = _case()
    with pytest.raises(GsalInputError, match=r"\[0, 1\]"):
        metrics.cbd(s * 3, r)
    with pytest.raises(GsalInputError, match="only 0 and 1"):
        metrics.cbl(s, r * 0.5, b)
    with pytest.raises(GsalInputError, match="must match"):
        metrics.cbl(s, r[:, :3], b)


def test_inflation_baseline_square_and_cross_rings():
    r = np.zeros((3, 7, 7))
    r[:, 3, 3] = 1
    # square kernel: step 1 ring = 8 pixels, step 2 ring = 24 pixels (5x5 - 1)
    rings = metrics.inflation_baseline(r, np.array([0.0, 5.5, 9.0]), kernel="square")
    assert rings.shape == (3, 7, 7) and rings.dtype == np.float32
    np.testing.assert_array_equal(rings.sum(axis=(1, 2)), [0, 8, 24])
    expected = np.zeros((7, 7))
    expected[2:5, 2:5] = 1
    expected[3, 3] = 0
    np.testing.assert_array_equal(rings[1], expected)
    assert not np.any(rings * r)  # the ring never includes the request
    # cross kernel: rings of city-block radius 1 (4 pixels) and 2 (12 pixels)
    cross = metrics.inflation_baseline(r, np.array([1.0, 4.0, 4.5]), kernel="cross")
    np.testing.assert_array_equal(cross.sum(axis=(1, 2)), [4, 4, 12])
    # a target above the whole context gives the whole context
    whole = metrics.inflation_baseline(r[:1], np.array([1000.0]))
    np.testing.assert_array_equal(whole[0], 1 - r[0])
    with pytest.raises(GsalInputError, match="kernel"):
        metrics.inflation_baseline(r, np.zeros(3), kernel="disk")
    with pytest.raises(GsalInputError, match="target_context_area"):
        metrics.inflation_baseline(r, np.array([-1.0, 0, 0]))


def test_inflation_cbl_matches_hand_count():
    # 4x4, request = centre 2x2, saliency mass 2 in context -> first ring (12 pixels = whole context)
    s, r, b = _case()
    # the 1-step square ring is the whole 12-pixel context; B covers 6 of its pixels
    np.testing.assert_allclose(metrics.inflation_cbl(r, b, s), [0.5])
    # bigger image: request at the top, tile B = bottom half; a small ring stays in the top half
    r2 = np.zeros((1, 8, 8))
    r2[0, 0:2, 3:5] = 1
    b2 = np.zeros((1, 8, 8))
    b2[0, 4:, :] = 1
    s2 = np.zeros((1, 8, 8))
    s2[0, 7, :] = 1.0  # saliency of mass 8, all on the biased tile -> CBL 1
    assert metrics.cbl(s2, r2, b2)[0] == 1.0
    # square ring 1 around a 2x2 block at the top edge: 4x3 - 4 = 8 pixels, all in rows 0..2
    assert metrics.inflation_cbl(r2, b2, s2)[0] == 0.0
    assert np.isnan(metrics.inflation_cbl(r2, b2, np.zeros_like(s2))[0])
