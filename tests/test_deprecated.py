"""Old names keep working for one more release, each with a DeprecationWarning naming the new one
(gsal_tf._deprecated)."""

import pytest

import gsal_tf as gs
from gsal_tf import methods, model_calls
from gsal_tf.benchmark import zoo_bias
from gsal_tf.saliency import loop


@pytest.mark.parametrize("module, name, new", [
    ("gsal_tf.explainer", "make_explainer", methods.make_explainer),
    ("gsal_tf.explainer", "METHODS", methods.METHODS),
    ("gsal_tf.explainer", "predict", model_calls.predict),
    ("gsal_tf.explainer", "resolve_output", model_calls.resolve_output),
    ("gsal_tf.models", "PRESETS", gs.models.ARCHITECTURES),
    ("gsal_tf.models", "build_preset", gs.models.build_architecture),
    ("gsal_tf.models.presets", "Bias", zoo_bias.Bias),
    ("gsal_tf.models.presets", "unbiased_reference", zoo_bias.unbiased_reference),
    ("gsal_tf.models.presets", "bias_digit_ious", zoo_bias.bias_digit_ious),
    ("gsal_tf.datasets.sources", "open_source", gs.datasets.open_source),
    ("gsal_tf.datasets.sources", "LAYOUTS", gs.datasets.LAYOUTS),
    ("gsal_tf.saliency.grid_saliency", "settle_window", loop.settle_window),
    ("gsal_tf.saliency.grid_saliency", "SEARCH_STEPS", loop.SEARCH_STEPS),
])
def test_a_moved_name_warns_and_is_the_new_object(module, name, new):
    import importlib

    with pytest.warns(DeprecationWarning, match="deprecated.*use"):
        old = getattr(importlib.import_module(module), name)
    assert old is new


def test_a_name_that_never_existed_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute"):
        gs.explainer.no_such_name  # noqa: B018
    with pytest.raises(AttributeError):
        gs.saliency.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute"):
        gs.models.presets.no_such_name  # noqa: B018


def test_the_zoo_keeps_the_bias_names_without_a_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert (gs.zoo.Bias, gs.zoo.unbiased_reference, gs.zoo.bias_digit_ious) == \
            (zoo_bias.Bias, zoo_bias.unbiased_reference, zoo_bias.bias_digit_ious)


def test_old_method_names_warn_and_resolve():
    with pytest.warns(DeprecationWarning, match="'grid_saliency'"):
        assert methods.method_name("grid") == "grid_saliency"
    with pytest.warns(DeprecationWarning):
        assert methods.method_class("integrated-gradients").__name__ == "IntegratedGradients"
    with pytest.raises(gs.GsalInputError, match="unknown method"):
        methods.method_name("gradcam")


def test_trace_count_warns_and_counts(monkeypatch):
    import weakref

    import numpy as np

    from gsal_tf import _graphs
    from gsal_tf.models.known_context import brightness_model

    # The count covers the graphs of every live model in the process: start from an empty cache so
    # that earlier tests' models (and when the garbage collector frees them) do not count.
    monkeypatch.setattr(_graphs, "_GRAPHS", weakref.WeakKeyDictionary())
    with pytest.warns(DeprecationWarning, match="experimental_get_tracing_count"):
        assert gs.saliency.trace_count() == 0
    model = brightness_model((16, 16, 1))  # a new model: its explainer graph is traced here
    request = np.zeros((1, 16, 16), np.float32)
    request[0, 4:8, 4:8] = 1
    gs.GridSaliency(model, grid_size=(2, 3), iterations=2).explain(np.full((1, 16, 16, 1), 0.9, np.float32), request, [1])
    with pytest.warns(DeprecationWarning):
        assert gs.attributions.trace_count() > 0  # the new graph's traces are counted
