"""What every explainer shares: the base class, the result interface, calling the model, class
probabilities, probing the model's output, the per-model cache of compiled graphs, running a graph
batch by batch, and the registry of method names.

Grid saliency (:mod:`gsal_tf.saliency`) and the comparison methods (:mod:`gsal_tf.attributions`)
derive from :class:`Explainer`, so they treat models, logits, resolutions and batches identically
and share one call::

    explainer = Method(model, ...)                                   # any name of METHODS
    result = explainer.explain(images, request_masks, class_ids)     # (N,H,W,C), (N,H,W), (N,)
    result.saliency, result.params["method"], result.seconds         # every result has these

A method has one name everywhere — in ``params["method"]``, in reports, in CLI options and in the
README tables: :data:`METHODS`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import weakref
from typing import Any, Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from gsal_tf import graph_cache
from gsal_tf.errors import GsalInputError, first_line
from gsal_tf.validation import check_choice, check_images, check_model_output, check_number

OUTPUT_KINDS = ("probabilities", "logits")

# Compiled graphs per model (weakly held: a deleted model frees its graphs) and structural key.
_GRAPHS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def call_model(model, x: tf.Tensor) -> tf.Tensor:
    """``model(x)``; Keras layers and models are called in inference mode."""
    if isinstance(model, keras.layers.Layer):
        return model(x, training=False)
    return model(x)


def declared_output(model) -> str | None:
    """The output kind a model declares — its ``gsal_output`` attribute ("logits" or
    "probabilities"; keras-hub segmenters through :class:`gsal_tf.models.keras_hub.KerasHubSegmenter`),
    "probabilities" for a zoo model — or None when it declares nothing."""
    declared = getattr(model, "gsal_output", None)
    if isinstance(declared, str) and declared in OUTPUT_KINDS:
        return declared
    return "probabilities" if getattr(model, "zoo_entry", None) is not None else None


def detect_output(model, image_shape, seed: int = 0) -> str | None:
    """Whether ``model`` returns probabilities or logits, read from its scores on probe images of
    ``image_shape`` (H,W,C): uniform noise in [0,1] and a smooth ramp (never a constant image,
    on which an untrained network's logits can all be 0 and pass for probabilities).

    "logits" when any score lies outside [0,1] (tolerance 1e-3) or, with K >= 2 classes, the
    scores of some pixel do not sum to 1 (tolerance 1e-3); "probabilities" when, with K >= 2,
    every pixel's scores lie in [0,1] and sum to 1; None when it cannot tell: a one-channel
    output inside [0,1] (a sigmoid probability, or logits that happen to lie there).
    """
    height, width, channels = (int(v) for v in image_shape)
    noise = np.random.default_rng(seed).random((height, width, channels), dtype=np.float32)
    ramp = np.broadcast_to(np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None], (height, width, channels))
    scores = np.asarray(tf.cast(checked_call(model, np.stack([noise, ramp]), "logits"), tf.float32))
    if scores.min() < -1e-3 or scores.max() > 1 + 1e-3:
        return "logits"
    if scores.shape[-1] == 1:
        return None
    return "probabilities" if np.all(np.abs(scores.sum(axis=-1) - 1.0) <= 1e-3) else "logits"


def resolve_output(model, image_shape, output: str | None = None) -> str:
    """The output kind to explain ``model`` with, for images of ``image_shape`` (H,W,C): ``output``
    when given, else what the model declares (:func:`declared_output`), else what a probe shows
    (:func:`detect_output`); a GsalInputError naming the option when none of them can tell."""
    if output is not None:
        check_choice("output", output, OUTPUT_KINDS)
        return output
    from gsal_tf.models.keras_hub import as_segmentation_model

    model = as_segmentation_model(model)
    kind = declared_output(model) or detect_output(model, image_shape)
    if kind is None:
        raise GsalInputError("cannot tell whether the model returns probabilities or logits (one output channel, every "
                             "score in [0, 1]); say which: --output probabilities or --output logits (Python: output=...)")
    return kind


def loss_scale(model) -> float:
    """A constant loss scale for gradients through a float16-compute model, else 1.

    Under a float16 compute policy, small gradients (~1e-3 and below) can underflow in the
    backward pass: scale the objective by this constant and divide the gradient by it (exact in
    float32 arithmetic).
    """
    policy = getattr(model, "dtype_policy", None)
    compute = getattr(policy, "compute_dtype", None) or keras.config.dtype_policy().compute_dtype
    return 2.0**12 if compute == "float16" else 1.0


def to_probabilities(scores: tf.Tensor, output: str) -> tf.Tensor:
    """Per-pixel class probabilities (N,h,w,K) float32 from a model's scores (N,h,w,K_out).

    K_out >= 2: softmax over the classes for ``output="logits"``, the scores as they are for
    ``"probabilities"``.

    K_out = 1 (a binary segmenter: person, road, lesion): the one channel is the foreground's
    probability ``p`` (``"probabilities"``) or logit ``z`` with ``p = sigmoid(z)`` (``"logits"``),
    explained as two classes, **0 = background** with ``1 - p`` and **1 = foreground** with ``p``
    (K = 2). ``softmax([0, z]) = [1 - sigmoid(z), sigmoid(z)]``, so a logit channel is the
    two-class softmax with the background's logit fixed at 0.
    """
    scores = tf.cast(scores, tf.float32)
    if scores.shape[-1] == 1:
        foreground = tf.sigmoid(scores) if output == "logits" else scores
        return tf.concat([1.0 - foreground, foreground], axis=-1)
    return tf.nn.softmax(scores, axis=-1) if output == "logits" else scores


def probabilities(model, x: tf.Tensor, output: str) -> tf.Tensor:
    """f(x) (N,h,w,K) float32 class probabilities at the model's resolution (:func:`to_probabilities`)."""
    return to_probabilities(call_model(model, x), output)


def class_probability(model, x: tf.Tensor, class_ids: tf.Tensor, output: str, size: Sequence[int]) -> tf.Tensor:
    """f_c(x) (N,H,W) float32 at ``size`` = (H,W): softmax of logits, bilinear resize if needed."""
    scores = probabilities(model, x, output)
    picked = tf.reduce_sum(scores * tf.one_hot(class_ids, tf.shape(scores)[-1])[:, None, None, :], -1)
    if picked.shape[1] != size[0] or picked.shape[2] != size[1]:
        picked = tf.image.resize(picked[..., None], tuple(size), method="bilinear")[..., 0]
    return picked


# K of each model per (image shape, output kind), weakly held: a deleted model frees its entry.
_NUM_CLASSES: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def checked_call(model, images: np.ndarray, output: str) -> tf.Tensor:
    """``model(images)`` checked to be per-pixel class scores (N,h,w,K) (one clear GsalInputError
    otherwise); K is remembered for the model, so :func:`num_classes` need not call it again."""
    try:
        out = call_model(model, tf.constant(images))
    except Exception as exc:  # a model that cannot take this input is a user error
        raise GsalInputError(f"the model cannot take images of shape {images.shape[1:]} (H,W,C): {first_line(exc)}") from None
    _, _, k = check_model_output(out, images.shape[1:], output)
    try:
        _NUM_CLASSES.setdefault(model, {})[(tuple(images.shape[1:]), output)] = k
    except TypeError:  # not weakly referenceable: nothing remembered
        pass
    return out


def num_classes(model, images: np.ndarray, output: str) -> int:
    """K of ``model``'s output for images like ``images`` (N,H,W,C) — 2 for a one-channel
    (binary) output (:func:`to_probabilities`) — remembered from an earlier checked call, else one
    image is run through the model and checked."""
    try:
        known = _NUM_CLASSES.get(model, {}).get((tuple(images.shape[1:]), output))
    except TypeError:
        known = None
    if known is None:
        known = int(checked_call(model, images[:1], output).shape[-1])
    return max(known, 2)


def predict(model, images, output: str = "probabilities") -> np.ndarray:
    """The model's class probabilities (N,H,W,K) float32 at the input resolution (softmax of
    logits; outputs at another resolution resized bilinearly), after :func:`checked_call`."""
    images = check_images(images)
    scores = to_probabilities(checked_call(model, images, output), output)
    if scores.shape[1:3] != images.shape[1:3]:
        scores = tf.image.resize(scores, images.shape[1:3], method="bilinear")
    return scores.numpy()


def cached_graph(owner, model, key: tuple, build: Callable[[Callable[[], Any]], Any]):
    """The compiled graph for (``model``, ``key``), built once with ``build(get_model)``.

    ``get_model()`` returns the model; the graph must read the model through it, so the cache
    holds the model only weakly. Models that cannot be weakly referenced are cached on ``owner``.
    """
    try:
        per_model = _GRAPHS.setdefault(model, {})
        get_model = weakref.ref(model)
    except TypeError:
        per_model = owner.__dict__.setdefault("_own_graphs", {})
        get_model = lambda: model  # noqa: E731
    if key not in per_model:
        per_model[key] = build(get_model)
    return per_model[key]


def run_batched(graph, per_request: Sequence, shared: Sequence, batch_size: int) -> tuple[dict, float]:
    """Call ``graph(*per_request[lo:hi], *shared)`` batch by batch; concatenate its dict outputs.

    Returns (outputs as NumPy arrays, seconds spent in the graph calls). The calls run without
    grappler's graph optimisation (:func:`without_graph_optimizer`).
    """
    n = len(per_request[0])
    parts = []
    start = time.perf_counter()
    first = np.shape(per_request[0])
    pixels = min(n, batch_size) * int(np.prod(first[1:3])) if len(first) >= 3 else None
    with without_graph_optimizer(remapper=pixels is None or pixels > REMAPPER_MIN_PIXELS):
        for lo in range(0, n, batch_size):
            hi = min(n, lo + batch_size)
            out = graph(*[tf.convert_to_tensor(v[lo:hi]) for v in per_request], *shared)
            parts.append({k: v.numpy() for k, v in out.items()})
    seconds = time.perf_counter() - start
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}, seconds


#: Grappler passes switched off while explainer graphs run: every pass that is on by default but
#: the remapper, whose fused convolution kernels are what makes the optimised graph faster
#: (measured, see :func:`without_graph_optimizer`). Passes that are off by default are not touched.
SKIPPED_GRAPH_PASSES = (
    "layout_optimizer", "constant_folding", "shape_optimization", "arithmetic_optimization",
    "dependency_optimization", "loop_optimization", "function_optimization", "implementation_selector",
)


#: Batches (requests x H x W) smaller than this run without grappler's remapper. On the demo
#: (64x64, one request) the remapper fused 3 of 5,300 nodes (a gradient graph keeps the
#: activations it would fuse away), cost 0.36 s of the first call and nothing warm (0.87-0.92 s
#: with and 0.83-0.91 s without); on a 513x513 PASCAL MobileNetV2 it makes the warm explanation
#: 10 % faster (3.63 s vs 4.05 s, 20 iterations). Same saliency either way (bit-identical).
REMAPPER_MIN_PIXELS = 300 * 300


@contextlib.contextmanager
def without_graph_optimizer(remapper: bool = True):
    """Run graphs inside the block with grappler's slow passes off, then restore the settings.

    Grappler rewrites a graph the first time a process runs it: about 2.3 s of the first
    explanation on the zoo's DeepLabv3+ (64x64), more than the whole warm explanation (1.6 s).
    Measured on the 2-core CPU (`mobilenetv2-tiny`, batch 8, 50 iterations; warm medians of 5,
    interleaved): all passes off saves most of it but runs 6 % slower warm (8-19 % in
    ``bench_explain``: the remapper's fused convolution kernels matter); every pass but the
    remapper off (:data:`SKIPPED_GRAPH_PASSES`) keeps warm speed within 1.5 % and still saves
    about a second of the first call. TensorFlow keeps one instantiation per setting, so explainer
    graphs always run with it. The setting is process-wide: another thread running graphs at
    the same moment runs them with the same passes off (results are the same; only speed differs).

    On top of that, this thread's function calls run grappler's loop of passes once instead of
    twice and, without a GPU, skip the memory optimizer (:func:`_lean_function_calls`); with
    ``remapper=False`` (small batches, :data:`REMAPPER_MIN_PIXELS`) they skip the remapper too.
    """
    saved = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({name: False for name in SKIPPED_GRAPH_PASSES})
    try:
        with _lean_function_calls(remapper):
            yield
    finally:
        # An unset pass is on by default, so True restores its behaviour.
        tf.config.optimizer.set_experimental_options({name: saved.get(name, True) for name in SKIPPED_GRAPH_PASSES})


@contextlib.contextmanager
def _lean_function_calls(remapper: bool = True):
    """This thread's graph functions: one round of grappler passes; no memory optimizer on CPU;
    no remapper unless ``remapper``.

    Grappler runs its passes twice by default (``meta_optimizer_iterations``); on the zoo's
    DeepLabv3+ explainer graph (5,300 nodes) the second round changed nothing (same node and edge
    count) and cost 0.55 s of the first call, and the memory optimizer — swapping and recomputation
    heuristics for accelerator memory — changed nothing on CPU and cost 0.32 s (TF 2.21, 2-core
    CPU, ``TF_CPP_VMODULE=meta_optimizer=1``). Neither option is in ``tf.config.optimizer``; they
    are set on the thread's function-call configuration. If a TensorFlow version moves that
    internal, the block runs with TensorFlow's defaults (slower first call, same results).
    """
    try:
        from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
        from tensorflow.python.eager import context

        ctx = context.context()
        saved = ctx.function_call_options
        config = config_pb2.ConfigProto.FromString(saved.config_proto_serialized)
        rewrite = config.graph_options.rewrite_options
        rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
        if not tf.config.list_logical_devices("GPU"):
            rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
        if not remapper:
            rewrite.remapping = rewriter_config_pb2.RewriterConfig.OFF
        ctx.function_call_options = context.FunctionCallOptions(executor_type=saved.executor_type, config_proto=config)
    except (ImportError, AttributeError, TypeError, ValueError):
        yield
        return
    try:
        yield
    finally:
        ctx.function_call_options = saved


# -- the explainer base -------------------------------------------------------------------------

_TRACES: dict[str, int] = {}


def trace_count(method: str | None = None) -> int:
    """How many optimisation/attribution graphs were traced in this process, of one method (a
    name of :data:`METHODS`) or of all; for tests and benchmarks."""
    return _TRACES.get(method, 0) if method else sum(_TRACES.values())


def count_trace(method: str) -> None:
    """Called by a graph body each time it is traced."""
    _TRACES[method] = _TRACES.get(method, 0) + 1


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

    def __init__(self, model, output: str | None, batch_size: int, jit_compile: bool):
        if not callable(model):
            raise GsalInputError(f"model must be a Keras model or a callable, got {type(model).__name__}")
        from gsal_tf.models.keras_hub import as_segmentation_model

        model = as_segmentation_model(model)
        output = (declared_output(model) or "probabilities") if output is None else output
        check_choice("output", output, OUTPUT_KINDS)
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
        return predict(self.model, images, self.output)

    def num_classes(self, images: np.ndarray) -> int:
        """K of the model's output for images like ``images`` (checked once per model and shape)."""
        return num_classes(self.model, images, self.output)

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

        return cached_graph(self, self.model, (*key, disk_cache), build)

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


# -- one name per method ---------------------------------------------------------------------

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
#: Names used before version 0.2 (reports, CLI options), still accepted.
METHOD_ALIASES = {"grid": "grid_saliency", "gradients": "vanilla_gradients", "integrated-gradients": "integrated_gradients"}


def method_name(name: str) -> str:
    """The one name of a method (accepts :data:`METHOD_ALIASES`); an unknown name is a GsalInputError."""
    canonical = METHOD_ALIASES.get(name, name)
    if canonical not in METHOD_CLASSES:
        raise GsalInputError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    return canonical


def method_class(name: str) -> type:
    """The explainer class of method ``name``."""
    import importlib

    module, cls = METHOD_CLASSES[method_name(name)].split(":")
    return getattr(importlib.import_module(module), cls)


def make_explainer(name: str, model, **options) -> Explainer:
    """``method_class(name)(model, **options)``: an explainer by its method name."""
    return method_class(name)(model, **options)
