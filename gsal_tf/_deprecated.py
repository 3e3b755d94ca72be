"""Every old name gsal-tf still accepts, in one place. Each use warns (``DeprecationWarning``) and
names what to use instead; the CHANGELOG's migration entries list them with the release that
removes them (the release after next).
"""

from __future__ import annotations

import importlib
import warnings

#: Method names of gsal-tf 0.1 (reports, ``--methods``, ``[evaluate] methods``) -> :data:`gsal_tf.METHODS`.
METHOD_ALIASES = {"grid": "grid_saliency", "gradients": "vanilla_gradients", "integrated-gradients": "integrated_gradients"}

#: Names of ``gsal_tf.models`` before 0.2 (an architecture used to be called a preset).
MODELS_NAMES = {"PRESETS": ("gsal_tf.models", "ARCHITECTURES"), "build_preset": ("gsal_tf.models", "build_architecture")}

#: Names ``gsal_tf.explainer`` held up to 0.2, and where they live now.
_MODEL_CALLS = ("OUTPUT_KINDS", "call_model", "declared_output", "detect_output", "resolve_output", "loss_scale",
                "to_probabilities", "probabilities", "class_probability", "checked_call", "num_classes", "predict")
_METHODS = ("METHODS", "METHOD_CLASSES", "method_name", "method_class", "make_explainer")
_GRAPHS = ("cached_graph", "run_batched", "without_graph_optimizer", "SKIPPED_GRAPH_PASSES")
EXPLAINER_NAMES = {
    **{name: ("gsal_tf.model_calls", name) for name in _MODEL_CALLS},
    **{name: ("gsal_tf.methods", name) for name in _METHODS},
    **{name: ("gsal_tf._graphs", name) for name in _GRAPHS},
    "METHOD_ALIASES": ("gsal_tf._deprecated", "METHOD_ALIASES"),
    "REMAPPER_MIN_PIXELS": ("gsal_tf._graphs", "FULL_GRAPPLER_MIN_PIXELS"),
}

#: Names ``gsal_tf.models.presets`` held up to 0.2: the TextureMNIST bias metadata of the zoo,
#: now the benchmark's (``gs.zoo.Bias`` etc. unchanged).
PRESETS_NAMES = {name: ("gsal_tf.benchmark.zoo_bias", name) for name in ("Bias", "unbiased_reference", "bias_digit_ious")}

#: Names ``gsal_tf.datasets.sources`` held before choosing a reader by layout became
#: :mod:`gsal_tf.datasets.layouts` (``gs.datasets.open_source`` and ``LAYOUTS`` unchanged).
SOURCES_NAMES = {name: ("gsal_tf.datasets.layouts", name) for name in ("open_source", "LAYOUTS")}

#: Names ``gsal_tf.saliency.grid_saliency`` held before the compiled optimisation became its own
#: module, :mod:`gsal_tf.saliency.loop` (some of them came after 0.2).
GRID_SALIENCY_NAMES = {name: ("gsal_tf.saliency.loop", name) for name in (
    "SETTLE_WINDOW", "SETTLE_MIN_STEPS", "SETTLE_TOLERANCE", "SEARCH_STEPS", "PRUNE_STEPS", "REMOVE_STEPS", "pruned",
    "least_needed_removed", "settle_window")}

#: Every module with moved names: {module: {old name: (new module, new name)}}.
MOVED = {"gsal_tf.explainer": EXPLAINER_NAMES, "gsal_tf.models": MODELS_NAMES, "gsal_tf.models.presets": PRESETS_NAMES,
         "gsal_tf.datasets.sources": SOURCES_NAMES, "gsal_tf.saliency.grid_saliency": GRID_SALIENCY_NAMES}


def warn(old: str, new: str, stacklevel: int = 3) -> None:
    """One DeprecationWarning: ``old`` is deprecated, use ``new``."""
    warnings.warn(f"{old} is deprecated and will be removed in gsal-tf 0.5; use {new}", DeprecationWarning, stacklevel=stacklevel)


def moved(module: str, name: str):
    """``module.name`` for a module's ``__getattr__``: the object at its new place, with a warning;
    an AttributeError for a name that never existed."""
    target = MOVED.get(module, {}).get(name)
    if target is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new_module, new_name = target
    where = f"{new_module}.{new_name}" if not new_module.startswith("gsal_tf._") else f"{new_name} (internal: {new_module})"
    warn(f"{module}.{name}", where, stacklevel=4)
    return getattr(importlib.import_module(new_module), new_name)


def method_alias(name: str) -> str:
    """The method name for an old one (:data:`METHOD_ALIASES`, with a warning); other names unchanged."""
    if name in METHOD_ALIASES:
        warn(f"the method name {name!r}", repr(METHOD_ALIASES[name]), stacklevel=4)
        return METHOD_ALIASES[name]
    return name


def trace_count(method: str | None = None) -> int:
    """Traces of the explainer graphs this process holds (TensorFlow's own count per
    ``tf.function``); the per-method argument of 0.2 is ignored."""
    from gsal_tf import _graphs

    warn("trace_count", "tf.function.experimental_get_tracing_count() on explainer.compiled_graph(shape)")
    return sum(getattr(graph, "experimental_get_tracing_count", lambda: 0)()
               for graphs in list(_graphs._GRAPHS.values()) for graph in graphs.values())
