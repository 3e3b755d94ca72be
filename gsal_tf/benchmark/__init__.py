"""TextureMNIST: the synthetic context-bias benchmark of the grid saliency paper, end to end.

The pipeline, one module per step (and one ``gsal benchmark`` command per step):

- data — ``TextureMNIST(config, mnist=...)`` makes samples (``samples``) or a dataset folder
  (``generate``, ``generate_once``); ``load_dataset`` / ``load_samples`` read such a folder back
  (:mod:`.texture_mnist`, :mod:`.config`, :mod:`.textures`, :mod:`.digits`, :mod:`.storage`);
  the class layout (digits 0-9, background 10) is :mod:`.classes`;
- training — :mod:`.training` (``gsal benchmark train``);
- evaluation — :mod:`.evaluation`: IoU drop, bias reliance, CBD and CBL (``gsal benchmark evaluate``);
- the protocol — :mod:`.protocol`: generate → train → evaluate over bias digits, textures and
  strengths (``gsal benchmark protocol``).
- the zoo's biased networks — :mod:`.zoo_bias`: the bias a zoo entry was trained with and the IoU
  of its bias digit beside the unbiased entry of its backbone (``gs.zoo.Bias``,
  ``gs.zoo.bias_digit_ious``).

Training, evaluation and the protocol import Keras models; import them explicitly
(``from gsal_tf.benchmark import training``).
"""

from gsal_tf.benchmark import classes, textures
from gsal_tf.benchmark.classes import BACKGROUND, CLASS_NAMES, NUM_CLASSES, NUM_DIGITS
from gsal_tf.benchmark.config import BenchmarkConfig, BiasConfig, load_config, unbiased_counterpart
from gsal_tf.benchmark.storage import generated_from, load_dataset, load_samples, read_card
from gsal_tf.benchmark.texture_mnist import TextureMNIST, data_dir_name, generate_once
from gsal_tf.benchmark.tiles import tile_boxes, tile_map
from gsal_tf.benchmark.textures import texture_names

__all__ = [
    "BACKGROUND",
    "BenchmarkConfig",
    "BiasConfig",
    "CLASS_NAMES",
    "NUM_CLASSES",
    "NUM_DIGITS",
    "TextureMNIST",
    "classes",
    "data_dir_name",
    "generate_once",
    "generated_from",
    "load_config",
    "load_dataset",
    "load_samples",
    "read_card",
    "texture_names",
    "textures",
    "tile_boxes",
    "tile_map",
    "unbiased_counterpart",
]
