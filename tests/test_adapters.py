"""Models with other conventions (dict outputs, `.logits` objects, channels-first, low resolution,
other input scaling, logits) explained through gs.models.adapt: the same answer as the plain model.

Every wrapper here is built around the known-context model, whose right answer is known: the
prediction inside the request reads only the two context patches.
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import gsal_tf as gs
from gsal_tf.models.known_context import demo_case

OPTIONS = {"grid_size": (8, 8), "iterations": 60}


@pytest.fixture(scope="module")
def case():
    c = demo_case()
    c["reference"] = gs.GridSaliency(c["model"], **OPTIONS).explain(c["image"][None], c["request"][None], [c["class_id"]])
    assert c["reference"].preserved_score[0] > 0.9  # a converged, non-trivial reference
    return c


def explain(model, case, **options):
    return gs.GridSaliency(model, **OPTIONS, **options).explain(case["image"][None], case["request"][None], [case["class_id"]])


def test_dict_output_needs_the_key_and_then_matches(case):
    base = case["model"]

    def dict_model(x):
        probs = base(x, training=False)
        return {"logits": tf.math.log(probs + 1e-12), "aux": tf.reduce_mean(probs, axis=[1, 2])}

    with pytest.raises(gs.GsalInputError, match="output_key"):
        explain(dict_model, case)
    res = explain(gs.models.adapt(dict_model, output_key="logits"), case, output="logits")
    np.testing.assert_allclose(res.saliency, case["reference"].saliency, atol=1e-4)


def test_a_dict_with_one_map_is_picked_without_a_key(case):
    base = case["model"]
    res = explain(gs.models.adapt(lambda x: {"probs": base(x, training=False), "n": tf.shape(x)[0]}), case)
    np.testing.assert_allclose(res.saliency, case["reference"].saliency, atol=1e-4)


@dataclasses.dataclass
class HFOutput:  # what a Hugging Face segmentation model returns
    logits: tf.Tensor


def test_hugging_face_style_channels_first_quarter_resolution_logits(case):
    """Takes (N,C,H,W), returns an object whose .logits are (N,K,H/4,W/4): one adapter line."""
    base = case["model"]

    def hf_model(pixel_values):
        x = tf.transpose(pixel_values, [0, 2, 3, 1])
        logits = tf.math.log(base(x, training=False) + 1e-12)
        low = tf.nn.avg_pool2d(logits, 4, 4, "VALID")  # the request box is 4-aligned: exact there
        return HFOutput(logits=tf.transpose(low, [0, 3, 1, 2]))

    seg = gs.models.adapt(hf_model, output_key="logits", channels_first_input=True, channels_first_output=True)
    res = explain(seg, case, output="logits")
    assert res.saliency.shape == case["reference"].saliency.shape
    assert res.preserved_score[0] > 0.9
    # The box's prediction still reads only the two patches: no saliency beyond them (+ half a
    # grid cell: a cell that holds part of a patch is kept whole).
    outside = np.ones((64, 64), bool)
    for y0, x0, y1, x1 in case["true_patches"]:
        outside[max(0, y0 - 4):y1 + 4, max(0, x0 - 4):x1 + 4] = False
    assert res.saliency[0][outside].max() < 0.05
    for y0, x0, y1, x1 in case["true_patches"]:
        assert res.saliency[0][y0:y1, x0:x1].max() > 0.5


def test_channels_first_output_is_named_in_the_error_and_adapted(case):
    base = case["model"]

    def channels_first(x):
        return tf.transpose(base(x, training=False), [0, 3, 1, 2])

    with pytest.raises(gs.GsalInputError, match="channels-first"):
        explain(channels_first, case)
    res = explain(gs.models.adapt(channels_first, channels_first_output=True), case)
    np.testing.assert_allclose(res.saliency, case["reference"].saliency, atol=1e-4)


def test_input_transform_runs_inside_the_graph(case):
    base = case["model"]

    def expects_255(x):  # a network trained on [0, 255] pixels
        return base(x / 255.0, training=False)

    calls = []

    def to_255(x):
        calls.append(1)  # Python runs once per trace; per step only if it ran outside the graph
        return x * 255.0

    res = explain(gs.models.adapt(expects_255, input_transform=to_255), case)
    np.testing.assert_allclose(res.saliency, case["reference"].saliency, atol=1e-4)
    assert 0 < len(calls) < OPTIONS["iterations"], len(calls)


def test_keras_hub_style_segmenter_returning_logits_needs_no_adapter(case):
    """keras-hub's DeepLabV3ImageSegmenter is a keras.Model (N,H,W,3) -> (N,H,W,K) logits."""

    class ImageSegmenter(keras.Model):
        def __init__(self, backbone):
            super().__init__()
            self.backbone = backbone

        def call(self, images, training=False):
            return keras.ops.log(self.backbone(images, training=training) + 1e-12)

    res = explain(ImageSegmenter(case["model"]), case, output="logits")
    np.testing.assert_allclose(res.saliency, case["reference"].saliency, atol=1e-4)


def test_adapter_errors():
    with pytest.raises(gs.GsalInputError, match="callable"):
        gs.models.adapt(3)
    with pytest.raises(gs.GsalInputError, match="no key 'masks'"):
        gs.models.adapters.select_output({"logits": tf.zeros((1, 2, 2, 2))}, "masks")
    with pytest.raises(gs.GsalInputError, match="out of range"):
        gs.models.adapters.select_output((tf.zeros((1, 2, 2, 2)),), 3)
