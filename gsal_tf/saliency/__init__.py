"""Grid saliency (the method) and its parts: masks, perturbations, objective, optimisers."""

from gsal_tf.explainer import trace_count
from gsal_tf.saliency.grid_saliency import Explanation, GridSaliency
from gsal_tf.saliency.masks import upsample_grid
from gsal_tf.saliency.perturbation import gaussian_blur, make_baseline, perturb

__all__ = ["GridSaliency", "Explanation", "trace_count", "upsample_grid", "perturb", "make_baseline", "gaussian_blur"]
