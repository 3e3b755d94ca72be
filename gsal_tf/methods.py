"""One name per explanation method: :data:`METHODS`, the class behind each, and
:func:`make_explainer`. The same names are used in ``params["method"]``, reports, CLI options and
the documentation's tables.
"""

from __future__ import annotations

import importlib

from gsal_tf.errors import GsalInputError

__all__ = ["METHODS", "METHOD_CLASSES", "method_name", "method_class", "method_parameters", "make_explainer"]

#: Every explanation method by its one name, and the class that implements it.
METHOD_CLASSES = {
    "grid_saliency": "gsal_tf.saliency.grid_saliency:GridSaliency",
    "vanilla_gradients": "gsal_tf.attributions.gradients:VanillaGradients",
    "smoothgrad": "gsal_tf.attributions.smoothgrad:SmoothGrad",
    "integrated_gradients": "gsal_tf.attributions.integrated_gradients:IntegratedGradients",
    "occlusion": "gsal_tf.attributions.occlusion:Occlusion",
    "rise": "gsal_tf.attributions.rise:RISE",
}
METHODS = tuple(METHOD_CLASSES)


def method_name(name: str) -> str:
    """The one name of a method (the names of 0.1 with a DeprecationWarning:
    :data:`gsal_tf._deprecated.METHOD_ALIASES`); an unknown name is a GsalInputError."""
    from gsal_tf._deprecated import method_alias

    canonical = method_alias(name)
    if canonical not in METHOD_CLASSES:
        raise GsalInputError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return canonical


def method_class(name: str) -> type:
    """The explainer class of method ``name``."""
    module, cls = METHOD_CLASSES[method_name(name)].split(":")
    return getattr(importlib.import_module(module), cls)


def method_parameters(name: str) -> tuple[str, ...]:
    """The keyword options of method ``name``'s explainer (its constructor's, without the model)."""
    import inspect

    return tuple(p for p in inspect.signature(method_class(name).__init__).parameters if p not in ("self", "model"))


def make_explainer(name: str, model, **options):
    """``method_class(name)(model, **options)``: an explainer by its method name; an option the
    method does not have (``iterations`` for SmoothGrad) is a GsalInputError naming it."""
    unknown = sorted(set(options) - set(method_parameters(name)))
    if unknown:
        raise GsalInputError(f"unknown option(s) {', '.join(unknown)} in the options of {method_name(name)}; "
                             f"known: {', '.join(sorted(method_parameters(name)))}")
    return method_class(name)(model, **options)
