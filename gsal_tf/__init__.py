"""gsal_tf — grid saliency context explanations for Keras segmentation networks.

The package, one concept per place:

- :mod:`gsal_tf.saliency` — the method (grid saliency: masks, perturbations, objective, optimisers);
- :mod:`gsal_tf.attributions` — the comparison methods (vanilla gradients, SmoothGrad, integrated gradients, occlusion, RISE);
- :mod:`gsal_tf.explainer` — what every method shares (the base class, the result interface); :mod:`gsal_tf.methods` — their names;
  :mod:`gsal_tf.model_calls` — how every method calls a model;
- :mod:`gsal_tf.pictures` — one picture explained: fitted to the network, gridded, requested, mapped back;
- :mod:`gsal_tf.models` — the networks (DeepLabv3+ with MobileNetV2 / aligned Xception, known-context models);
- :mod:`gsal_tf.zoo` — trained networks (manifest, build, demo);
- :mod:`gsal_tf.requests` — which pixels to explain;
- :mod:`gsal_tf.metrics` — IoU, CBD, CBL, the inflation baseline;
- :mod:`gsal_tf.compare` — one request explained by several networks;
- :mod:`gsal_tf.viz` — pictures; :mod:`gsal_tf.export` — SavedModels; :mod:`gsal_tf.loading` — files;
- :mod:`gsal_tf.benchmark` — TextureMNIST: data, training, evaluation, the bias protocol;
- :mod:`gsal_tf.datasets` — dataset readers and label tables; :mod:`gsal_tf.scale` — dataset-scale runs
  (``explain_dataset``); :mod:`gsal_tf.context_stats` — which context classes the salient context lies on.
"""

from gsal_tf._version import __version__
from gsal_tf import attributions, benchmark, models, requests, zoo
from gsal_tf.errors import GsalError, GsalInputError
from gsal_tf.methods import METHODS, make_explainer
from gsal_tf.explainer import Explainer, ExplanationResult
from gsal_tf.saliency import Explanation, GridSaliency
from gsal_tf import context_stats, datasets, pictures, scale, threads  # noqa: E402
from gsal_tf.scale import explain_dataset

__all__ = [
    "__version__",
    "GridSaliency",
    "Explanation",
    "Explainer",
    "ExplanationResult",
    "METHODS",
    "make_explainer",
    "GsalError",
    "GsalInputError",
    "requests",
    "benchmark",
    "models",
    "zoo",
    "attributions",
    "datasets",
    "scale",
    "context_stats",
    "threads",
    "pictures",
    "explain_dataset",
]
