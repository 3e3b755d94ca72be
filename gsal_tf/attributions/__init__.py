"""Attribution methods to compare grid saliency against, one module per method.

Gradient methods (vanilla gradients, SmoothGrad, integrated gradients; shared parts in
:mod:`.base`) and perturbation methods (occlusion, RISE; shared parts in :mod:`.masking`, which
perturbs only the context by default, as grid saliency does). Every method explains the mean
probability of a class over a request mask and shares grid saliency's call, so swapping methods
is one line::

    explainer = gs.attributions.IntegratedGradients(model, steps=32)   # or VanillaGradients, SmoothGrad, Occlusion, RISE
    result = explainer.explain(images, request_masks, class_ids)       # (N,H,W,C), (N,H,W), (N,)
    result.saliency                                                    # (N,H,W) in [0,1]
"""

from gsal_tf.attributions.base import Attribution, GradientExplainer
from gsal_tf.attributions.gradients import VanillaGradients
from gsal_tf.attributions.integrated_gradients import IntegratedGradients, IntegratedGradientsAttribution
from gsal_tf.attributions.masking import PerturbationExplainer
from gsal_tf.attributions.occlusion import Occlusion
from gsal_tf.attributions.rise import RISE
from gsal_tf.attributions.smoothgrad import SmoothGrad

__all__ = [
    "Attribution",
    "GradientExplainer",
    "IntegratedGradients",
    "IntegratedGradientsAttribution",
    "Occlusion",
    "PerturbationExplainer",
    "RISE",
    "SmoothGrad",
    "VanillaGradients",
]


def __getattr__(name: str):
    # trace_count: a test helper up to 0.2 (gsal_tf._deprecated warns when it is called).
    if name == "trace_count":
        from gsal_tf._deprecated import trace_count

        return trace_count
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
