"""DeepLabv3+ builders: shapes, strides, serialisation, layer names, argument checks, precision."""

import keras
import numpy as np
import pytest

from gsal_tf.errors import GsalInputError
from gsal_tf.models import ARCHITECTURES, build_architecture, deeplabv3plus

# Tiny widths keep every build and forward pass well under a second on a CPU.
TINY_HEAD = {"aspp_filters": 8, "decoder_filters": 8, "low_level_filters": 8}
TINY = {
    "mobilenetv2": {"alpha": 0.35, **TINY_HEAD},
    "xception": {"width": 0.1, "middle_blocks": 1, **TINY_HEAD},
}


def tiny(backbone, input_shape=(64, 64, 1), num_classes=5, output_stride=16, **kwargs):
    return deeplabv3plus(backbone, input_shape, num_classes, output_stride,
                         **{**TINY[backbone], **kwargs})


@pytest.mark.parametrize("backbone", ["mobilenetv2", "xception"])
@pytest.mark.parametrize("output_stride", [8, 16])
@pytest.mark.parametrize("input_shape", [(64, 64, 1), (96, 128, 3)])
def test_output_shape_strides_and_softmax(backbone, output_stride, input_shape, rng):
    height, width, _ = input_shape
    model = tiny(backbone, input_shape, num_classes=5, output_stride=output_stride)
    images = rng.random((2, *input_shape), dtype=np.float32)
    probabilities = np.asarray(model(images))
    assert probabilities.shape == (2, height, width, 5)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    assert model.get_layer("aspp_pool").input.shape[1:3] == (height // output_stride,
                                                             width // output_stride)
    assert model.get_layer("decoder_low_level_proj").input.shape[1:3] == (height // 4, width // 4)


def test_numpy_integers_are_accepted_and_serialise():
    shape = tuple(np.array([32, 32, 1]))
    model = tiny("xception", shape, num_classes=np.int64(3), aspp_filters=np.int32(8))
    assert model.output.shape == (None, 32, 32, 3)
    assert "aspp_proj" in model.to_json()


@pytest.mark.parametrize("low_level_stride", [2, 4])
def test_low_level_stride(low_level_stride):
    model = tiny("mobilenetv2", output_stride=8, low_level_stride=low_level_stride)
    low_level = model.get_layer("decoder_low_level_proj").input
    assert low_level.shape[1:3] == (64 // low_level_stride,) * 2
    assert model.output.shape == (None, 64, 64, 5)


@pytest.mark.parametrize("output_stride, dilations", [
    (16, {"block_12_depthwise": 1, "block_13_depthwise": 1, "block_14_depthwise": 2,
          "exit_flow_block1_sepconv1_depthwise": 1, "exit_flow_block2_sepconv1_depthwise": 2}),
    (8, {"block_6_depthwise": 1, "block_7_depthwise": 2, "block_14_depthwise": 4,
         "middle_flow_block1_sepconv1_depthwise": 2, "exit_flow_block2_sepconv1_depthwise": 4}),
])
def test_atrous_rates_follow_output_stride(output_stride, dilations):
    models = [tiny("mobilenetv2", output_stride=output_stride),
              tiny("xception", output_stride=output_stride)]
    names = {layer.name: layer for model in models for layer in model.layers}
    for name, rate in dilations.items():
        assert names[name].dilation_rate == (rate, rate), name
    expected = (6, 12, 18) if output_stride == 16 else (12, 24, 36)
    assert tuple(names[f"aspp_atrous{i}_depthwise"].dilation_rate[0] for i in (1, 2, 3)) == expected


def test_stable_layer_names():
    head = ["image", "rescale", "aspp_pool", "aspp_pool_conv", "aspp_pool_conv_bn",
            "aspp_pool_upsample", "aspp_conv1x1", "aspp_atrous1_depthwise",
            "aspp_atrous3_pointwise_bn", "aspp_concat", "aspp_proj", "aspp_dropout",
            "decoder_low_level_proj", "decoder_upsample", "decoder_concat",
            "decoder_conv1_depthwise", "decoder_conv2_pointwise", "logits", "logits_upsample",
            "softmax"]
    backbone = {
        "mobilenetv2": ["Conv1", "bn_Conv1", "expanded_conv_depthwise", "block_1_expand",
                        "block_2_depthwise_relu", "block_16_project_BN"],
        "xception": ["entry_flow_conv1", "entry_flow_conv2_bn", "entry_flow_block1_sepconv1_preact",
                     "entry_flow_block1_sepconv1_depthwise", "entry_flow_block1_sepconv3_pad",
                     "entry_flow_block2_sepconv2_pointwise_bn", "entry_flow_block3_shortcut",
                     "middle_flow_block1_add", "exit_flow_block1_shortcut_bn",
                     "exit_flow_block2_sepconv3_pointwise_relu"],
    }
    for name, layers in backbone.items():
        present = {layer.name for layer in tiny(name).layers}
        assert set(head + layers) <= present, set(head + layers) - present


@pytest.mark.parametrize("backbone", ["mobilenetv2", "xception"])
def test_keras_round_trip_in_safe_mode(backbone, tmp_path, rng):
    model = tiny(backbone, (32, 48, 3), output_stride=16)
    # Non-trivial batch-norm statistics, so the check covers non-trainable weights too.
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape) * 0.1)
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, size=layer.moving_variance.shape))
    images = rng.random((2, 32, 48, 3), dtype=np.float32)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(np.asarray(loaded(images)), np.asarray(model(images)), atol=1e-5)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("call, hint", [
    (lambda: deeplabv3plus("resnet50", (64, 64, 1), 11), "choose one of"),
    (lambda: tiny("mobilenetv2", output_stride=32), "output_stride must be one of"),
    (lambda: tiny("mobilenetv2", low_level_stride=8), "low_level_stride must be one of"),
    (lambda: tiny("mobilenetv2", input_shape=(64, 64)), "(height, width, channels)"),
    (lambda: tiny("mobilenetv2", input_shape=(64, 64, 0)), "(height, width, channels)"),
    (lambda: tiny("mobilenetv2", input_shape=(None, 64, 1)), "(height, width, channels)"),
    (lambda: tiny("mobilenetv2", input_shape=(60, 64, 1)), "multiples of output_stride=16"),
    (lambda: tiny("xception", num_classes=1), "num_classes must be an integer"),
    (lambda: tiny("xception", depth=3), "accepts ['middle_blocks', 'width']"),
    (lambda: tiny("mobilenetv2", alpha=0), "alpha must be a positive number"),
    (lambda: tiny("mobilenetv2", atrous_rates=(1, 2)), "three positive integers"),
    (lambda: tiny("mobilenetv2", aspp_filters=0), "aspp_filters must be an integer"),
    (lambda: tiny("mobilenetv2", dropout=1.0), "dropout must be in [0, 1)"),
    (lambda: tiny("xception", backbone_weights="imagenet"), "backbone_weights=None"),
    (lambda: tiny("mobilenetv2", alpha=0.3, backbone_weights="imagenet"), "alpha in"),
    (lambda: build_architecture("mobilenetv2-huge"), "choose one of"),
])
def test_bad_arguments_say_what_to_fix(call, hint):
    with pytest.raises(GsalInputError) as error:
        call()
    assert hint in str(error.value)


def test_mixed_float16_gives_float32_probabilities(rng):
    previous = keras.mixed_precision.dtype_policy()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        model = tiny("mobilenetv2", output_stride=8)
        assert model.get_layer("logits").compute_dtype == "float16"
        probabilities = model(rng.random((1, 64, 64, 1), dtype=np.float32))
    finally:
        keras.mixed_precision.set_dtype_policy(previous)
    assert probabilities.dtype == "float32"
    np.testing.assert_allclose(np.asarray(probabilities).sum(axis=-1), 1.0, atol=1e-3)


def test_imagenet_weights_from_a_file_reproduce_the_application(tmp_path, rng):
    reference = keras.applications.MobileNetV2(input_shape=(64, 64, 3), alpha=0.35,
                                               include_top=False, weights=None)
    for layer in reference.layers:  # ImageNet-like, non-trivial statistics
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(size=layer.moving_mean.shape) * 0.1)
    path = tmp_path / "mobilenet_v2_no_top.weights.h5"
    reference.save_weights(path)
    model = tiny("mobilenetv2", num_classes=3, backbone_weights=str(path))
    # Up to block 12 (stride 16) nothing is dilated: a grey image must give the application's
    # features for the same image repeated over RGB, scaled to [-1, 1] by the application's rule.
    grey = rng.random((2, 64, 64, 1), dtype=np.float32)
    ours = keras.Model(model.input, model.get_layer("block_12_add").output)(grey)
    theirs = keras.Model(reference.input, reference.get_layer("block_12_add").output)(
        np.repeat(2.0 * grey - 1.0, 3, axis=-1))
    np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), atol=1e-4)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_architectures_fit_in_five_megabytes(architecture, tmp_path):
    model = build_architecture(architecture, (64, 64, 1), 11)
    path = tmp_path / "architecture.weights.h5"
    model.save_weights(path)
    assert path.stat().st_size <= 5_000_000
    assert model.output.shape == (None, 64, 64, 11)
