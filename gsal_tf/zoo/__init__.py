"""The pretrained model zoo: trained and imported networks with their manifest, their build and the demo.

- the manifest (``models.toml``) and its entries, sha256-checked weights, ``load(name)`` —
  :mod:`gsal_tf.models.presets`, next to the networks (keras-hub's convention: a model family's
  presets sit beside it; ``gsal_tf.models.from_preset(name)`` is the same as ``load(name)``);
- ``Bias``, ``unbiased_reference``, ``bias_digit_ious`` — the TextureMNIST bias an entry was
  trained with and the IoU pair beside its backbone's unbiased entry:
  :mod:`gsal_tf.benchmark.zoo_bias`, the benchmark's metadata;
- :mod:`.build` — ``gsal zoo build``: data → training → measurement → manifest record;
- :mod:`.build_tflite` — ``gsal zoo build`` of pretrained networks imported from TFLite releases:
  file (local or downloaded, sha256-checked) → import → float16 model file → agreement with the
  file → manifest record (``configs/zoo/real.toml``);
- :mod:`.demo` — the bundled sample behind ``gsal explain --demo``.

>>> import gsal_tf as gs
>>> gs.zoo.names()
>>> model = gs.zoo.load("tmnist-mobilenetv2-strong")      # a keras.Model; entry: model.zoo_entry
>>> model = gs.zoo.load("pascal-mobilenetv2")             # DeepLabv3 on PASCAL VOC, 513x513 RGB in [0, 1]
"""

from gsal_tf.benchmark.zoo_bias import Bias, bias_digit_ious, unbiased_reference
from gsal_tf.models.presets import (
    MANIFEST,
    ZooEntry,
    cache_dir,
    get,
    list_models,
    load,
    names,
    sha256_of,
    verify,
    weights_path,
    zoo_dir,
)

__all__ = [
    "MANIFEST",
    "Bias",
    "ZooEntry",
    "bias_digit_ious",
    "cache_dir",
    "get",
    "list_models",
    "load",
    "names",
    "sha256_of",
    "unbiased_reference",
    "verify",
    "weights_path",
    "zoo_dir",
]
