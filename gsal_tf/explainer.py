"""What every explainer shares: the base class :class:`Explainer` and the result interface
:class:`ExplanationResult`.

Grid saliency (:mod:`gsal_tf.saliency`) and the comparison methods (:mod:`gsal_tf.attributions`)
derive from :class:`Explainer`, so they treat models, logits, resolutions and batches identically
and share one call::

    explainer = Method(model, ...)                                   # any name of METHODS
    result = explainer.explain(images, request_masks, class_ids)     # (N,H,W,C), (N,H,W), (N,)
    result.saliency, result.params["method"], result.seconds         # every result has these

How the model is called: :mod:`gsal_tf.model_calls`; method names: :mod:`gsal_tf.methods`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from gsal_tf import _graphs, graph_cache
from gsal_tf.errors import GsalInputError
from gsal_tf import model_calls as _calls
from gsal_tf.validation import check_choice, check_number

__all__ = ["Explainer", "ExplanationResult", "describe_baseline"]


@dataclasses.dataclass
class ExplanationResult:
    """What every explainer's result has, for N requests (a method's result adds its own fields).

    Attributes
    ----------
    saliency : float32 (N,H,W) — the explanation map at the image resolution.
    original_score : float32 (N,) — mean f_c(x) over the request: how confidently the class is
        predicted there at all.
    class_ids : int32 (N,) — the class explained for each request.
    params : dict — the settings used; ``params["method"]`` is one of :data:`METHODS`.
    seconds : float — wall time of the graph calls.
    """

    saliency: np.ndarray
    original_score: np.ndarray
    class_ids: np.ndarray
    params: dict
    seconds: float

    def __len__(self) -> int:
        return len(self.saliency)


class Explainer:
    """Base of every explanation method: the model, its output kind, batching and compiled graphs.

    A method sets ``method`` (its name in :data:`METHODS`), implements :meth:`explain` and
    ``_method_params`` (its own settings) and, for :meth:`compiled_graph`, ``_graph_key`` (the
    structural options a graph depends on) and ``_build_graph(get_model, image_shape)``.

    Parameters
    ----------
    model : keras.Model or callable
        Maps images (N,H,W,C) float32 to per-pixel class scores (N,h,w,K); h×w is resized
        bilinearly to H×W. Keras models are called with ``training=False``.
    output : "probabilities" or "logits"
        What the model returns; softmax is applied to logits.
    batch_size : int
        Requests explained together in one graph call; more are split into batches.
    jit_compile : bool
        Compile the graph with XLA.
    """

    method = ""
    #: Settings added after results were first written, with the value that reproduces a run made
    #: before them: a dataset run's card without them resumes as if it held these values
    #: (:func:`gsal_tf.scale.store.open_run`).
    ADDED_PARAMS: dict = {}

    def __init__(self, model, output: str | None, batch_size: int, jit_compile: bool):
        if not callable(model):
            raise GsalInputError(f"model must be a Keras model or a callable, got {type(model).__name__}")
        from gsal_tf.models.keras_hub import as_segmentation_model

        model = as_segmentation_model(model)
        output = (_calls.declared_output(model) or "probabilities") if output is None else output
        check_choice("output", output, _calls.OUTPUT_KINDS)
        check_number("batch_size", batch_size, minimum=1, integer=True)
        self.model = model
        self.output = output
        self.batch_size = int(batch_size)
        self.jit_compile = bool(jit_compile)

    @property
    def params(self) -> dict:
        """The explainer's settings as plain values, ``"method"`` first."""
        return {
            "method": self.method,
            **self._method_params(),
            "output": self.output,
            "batch_size": self.batch_size,
            "jit_compile": self.jit_compile,
        }

    def explain(self, images, request_masks, class_ids) -> ExplanationResult:
        raise NotImplementedError

    def __call__(self, images, request_masks, class_ids) -> ExplanationResult:
        """Alias of :meth:`explain`."""
        return self.explain(images, request_masks, class_ids)

    def predict(self, images) -> np.ndarray:
        """The model's class probabilities (N,H,W,K) float32 at the input resolution.

        Logits are turned into probabilities as in :meth:`explain`; use it to build requests.
        """
        return _calls.predict(self.model, images, self.output)

    def num_classes(self, images: np.ndarray) -> int:
        """K of the model's output for images like ``images`` (checked once per model and shape)."""
        return _calls.num_classes(self.model, images, self.output)

    def compiled_graph(self, image_shape: tuple[int, int, int], disk_cache: bool = True):
        """The method's compiled graph for images of ``image_shape`` (H,W,C): from the per-model
        cache of this process, else from the disk cache of traced graphs
        (:mod:`gsal_tf.graph_cache`), else traced (and stored on disk for the next process).

        ``disk_cache=False`` always gives the traced ``tf.function`` (:mod:`gsal_tf.export`
        saves it).
        """
        image_shape = tuple(int(v) for v in image_shape)
        key = (type(self).__name__, image_shape, *self._graph_key())

        def build(get_model):
            trace = lambda: self._build_graph(get_model, image_shape)  # noqa: E731
            return graph_cache.cached_or_traced(key, get_model(), trace) if disk_cache else trace()

        return _graphs.cached_graph(self, self.model, (*key, disk_cache), build)

    # -- what a method provides ------------------------------------------------------------------

    def _method_params(self) -> dict:
        return {}

    def _graph_key(self) -> tuple:
        """The structural options (beyond the image shape) its graph depends on."""
        return (self.output, self.jit_compile)

    def _build_graph(self, get_model: Callable[[], Any], image_shape: tuple[int, int, int]):
        raise NotImplementedError


def describe_baseline(baseline):
    """A perturbation baseline as a plain value for ``params`` (a custom array or callable by its type name)."""
    if isinstance(baseline, tuple):
        return list(baseline)
    if isinstance(baseline, (int, float, str, list)):
        return baseline
    return type(baseline).__name__


# Names that lived here up to 0.2 (:mod:`gsal_tf._deprecated` warns and says where they are).
def __getattr__(name: str):
    from gsal_tf import _deprecated

    return _deprecated.moved(__name__, name)
