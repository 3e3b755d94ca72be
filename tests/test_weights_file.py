"""The fast ``.weights.h5`` loader gives exactly what ``model.load_weights`` gives, or lets Keras do it."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.models import presets
from gsal_tf.models.deeplab import deeplabv3plus
from gsal_tf.models.weights_file import _Mismatch, _plan, load_weights

from conftest import TINY_DEEPLAB

SHAPE = (64, 64, 1)


def _architecture(entry):
    build = dict(entry.build)
    return deeplabv3plus(build.pop("backbone"), entry.input_shape, entry.num_classes, **build)


@pytest.mark.parametrize("name", [e.name for e in presets.list_models() if e.kind != "tflite"])
def test_every_zoo_weights_file_loads_as_keras_loads_it(name):
    entry = presets.get(name)
    path = presets.weights_path(entry)
    by_keras, fast = _architecture(entry), _architecture(entry)
    by_keras.load_weights(path)
    _plan(fast, path)  # the fast path is taken, not the fallback
    load_weights(fast, path)
    assert len(fast.weights) > 300
    for a, b in zip(by_keras.weights, fast.weights, strict=True):
        assert a.path == b.path
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_file_of_another_architecture_falls_back_to_keras_and_its_error(tmp_path):
    keras.utils.set_random_seed(0)
    small = gs.models.deeplabv3plus("mobilenetv2", SHAPE, 11, **TINY_DEEPLAB)
    path = tmp_path / "small.weights.h5"
    small.save_weights(path)
    keras.utils.set_random_seed(1)
    other = gs.models.deeplabv3plus("mobilenetv2", SHAPE, 5, **TINY_DEEPLAB)  # another head
    keras.utils.set_random_seed(1)
    by_keras = gs.models.deeplabv3plus("mobilenetv2", SHAPE, 5, **TINY_DEEPLAB)
    with pytest.raises(_Mismatch):
        _plan(other, path)
    with pytest.raises(ValueError):  # Keras' own error, as model.load_weights gives it
        load_weights(other, path)
    with pytest.raises(ValueError):
        by_keras.load_weights(path)
    # ... and the model as Keras leaves it (Keras assigns the layers it can before it fails)
    for a, b in zip(by_keras.get_weights(), other.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    twin = gs.models.deeplabv3plus("mobilenetv2", SHAPE, 11, **TINY_DEEPLAB)
    load_weights(twin, path)
    for a, b in zip(small.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_model_with_nested_layers_is_loaded_by_keras(tmp_path):
    inner = keras.Sequential([keras.layers.Dense(3, name="d")], name="inner")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inner(inputs)))
    path = tmp_path / "nested.weights.h5"
    model.save_weights(path)
    copy = keras.Model.from_config(model.get_config())
    with pytest.raises(_Mismatch):
        _plan(copy, path)
    load_weights(copy, path)
    for a, b in zip(model.get_weights(), copy.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
