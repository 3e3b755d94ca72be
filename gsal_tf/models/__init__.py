"""Segmentation networks to explain: DeepLabv3+ with MobileNetV2 or aligned Xception backbones.

``deeplabv3plus(backbone, input_shape, num_classes, output_stride=16, ...)`` builds a model;
``ARCHITECTURES`` / ``build_architecture(name, ...)`` give the small untrained configurations of
the model zoo, and ``from_preset(name)`` a trained one (keras-hub's convention: a preset is an
architecture with its weights; the presets are the zoo's entries, ``gsal_tf.zoo.list_models()``).
``from_tflite(path)`` imports a TensorFlow Lite segmentation network (e.g. a DeepLab release) as
a differentiable Keras model; ``adapt(model, ...)`` wraps networks with other output
conventions (dicts, ``.logits`` objects, channels-first maps, other input scaling).
:mod:`.model_file` stores a functional model as one ``.npz`` (architecture JSON + float16
weights, no pickle): how the zoo ships the networks it imports from TFLite.
"""

from gsal_tf.models.deeplab import ARCHITECTURES, BACKBONES, build_architecture, deeplabv3plus
from gsal_tf.models import presets
from gsal_tf.models.adapters import SegmentationAdapter, adapt
from gsal_tf.models.known_context import PatchContextReadout, known_context_model
from gsal_tf.models.tflite_import import from_tflite, inspect_tflite


def __getattr__(name: str):
    # PRESETS / build_preset: the names before 0.2 (gsal_tf._deprecated warns).
    from gsal_tf import _deprecated

    return _deprecated.moved(__name__, name)


def from_preset(name: str, manifest=None):
    """The trained model of zoo entry ``name`` (a ``keras.Model``, sha256-checked weights; the
    entry as ``model.zoo_entry``); the same as :func:`gsal_tf.zoo.load`. Names: ``gsal zoo list``
    or ``gsal_tf.zoo.names()``."""
    return presets.load(name, manifest)


__all__ = [
    "ARCHITECTURES",
    "SegmentationAdapter",
    "adapt",
    "BACKBONES",
    "build_architecture",
    "deeplabv3plus",
    "from_preset",
    "from_tflite",
    "inspect_tflite",
    "known_context_model",
    "PatchContextReadout",
]
