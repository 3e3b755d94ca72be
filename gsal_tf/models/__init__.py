"""Segmentation networks to explain: DeepLabv3+ with MobileNetV2 or aligned Xception backbones.

``deeplabv3plus(backbone, input_shape, num_classes, output_stride=16, ...)`` builds a model;
``PRESETS`` / ``build_preset(name, ...)`` give the small configurations of the model zoo.
"""

from gsal_tf.models.deeplab import BACKBONES, PRESETS, build_preset, deeplabv3plus
from gsal_tf.models.known_context import PatchContextReadout, known_context_model

__all__ = ["BACKBONES", "PRESETS", "build_preset", "deeplabv3plus", "known_context_model", "PatchContextReadout"]
