"""Grid saliency (the method) and its parts: masks, perturbations, objective, optimisers, the
compiled loop (:mod:`.loop`)."""

from gsal_tf.saliency.grid_saliency import Explanation, GridSaliency, cell_spread, uniform_masks
from gsal_tf.saliency.masks import upsample_grid
from gsal_tf.saliency.perturbation import gaussian_blur, make_baseline, perturb

__all__ = ["GridSaliency", "Explanation", "cell_spread", "uniform_masks", "upsample_grid", "perturb", "make_baseline", "gaussian_blur"]


def __getattr__(name: str):
    # trace_count: a test helper up to 0.2 (gsal_tf._deprecated warns when it is called).
    if name == "trace_count":
        from gsal_tf._deprecated import trace_count

        return trace_count
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
