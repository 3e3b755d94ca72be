"""TextureMNIST: the synthetic context-bias benchmark of the grid saliency paper.

``TextureMNIST(config, mnist=...)`` makes samples (``samples``) or a dataset folder (``generate``);
``load_dataset`` / ``load_samples`` read such a folder back. See ``texture_mnist`` for the recipe.
"""

from gsal_tf.benchmark import textures
from gsal_tf.benchmark.config import BenchmarkConfig, BiasConfig, load_config, unbiased_counterpart
from gsal_tf.benchmark.storage import generated_from, load_dataset, load_samples, read_card
from gsal_tf.benchmark.texture_mnist import TextureMNIST, tile_boxes, tile_map
from gsal_tf.benchmark.textures import texture_names

__all__ = [
    "BenchmarkConfig",
    "BiasConfig",
    "TextureMNIST",
    "load_config",
    "load_dataset",
    "load_samples",
    "read_card",
    "generated_from",
    "texture_names",
    "textures",
    "tile_boxes",
    "tile_map",
    "unbiased_counterpart",
]
