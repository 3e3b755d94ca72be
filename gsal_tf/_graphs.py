"""The compiled graphs of explainers (internal): one per model and structural key, held weakly so a
deleted model frees its graphs, run batch by batch (small batches with grappler's slow passes off).

Explainer graphs are traced once per (model, image shape, structural options); every
hyper-parameter is a graph input. :func:`cached_graph` keeps them; :func:`run_batched` calls one
over a dataset of requests in batches; :func:`without_graph_optimizer` is the grappler setting
small batches run under (measured: see its docstring and :data:`FULL_GRAPPLER_MIN_PIXELS`).
"""

from __future__ import annotations

import contextlib
import time
import weakref
from typing import Any, Callable, Sequence

import numpy as np
import tensorflow as tf

# Compiled graphs per model (weakly held: a deleted model frees its graphs) and structural key.
_GRAPHS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


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

    Returns (outputs as NumPy arrays, seconds spent in the graph calls). Batches of fewer than
    :data:`FULL_GRAPPLER_MIN_PIXELS` pixels run with grappler's slow passes off
    (:func:`without_graph_optimizer`), larger ones with TensorFlow's default optimisation.
    """
    n = len(per_request[0])
    parts = []
    start = time.perf_counter()
    first = np.shape(per_request[0])
    pixels = min(n, batch_size) * int(np.prod(first[1:3])) if len(first) >= 3 else None
    full = pixels is None or pixels > FULL_GRAPPLER_MIN_PIXELS
    with contextlib.nullcontext() if full else without_graph_optimizer(remapper=False):
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


#: Batches (requests x H x W) of at most this many pixels run with grappler's slow passes and its
#: remapper off (:func:`without_graph_optimizer`, ``remapper=False``); larger ones run with
#: TensorFlow's default graph optimisation. Small graphs: on the demo (64x64, one request) the
#: remapper fused 3 of 5,300 nodes (a gradient graph keeps the activations it would fuse away),
#: cost 0.36 s of the first call and nothing warm (0.87-0.92 s with and 0.83-0.91 s without).
#: Large graphs: on the 8-bit PASCAL MobileNetV2 at 513x513 (batch 1, 40 iterations, 2-core CPU,
#: 6 interleaved rounds) the warm explanation took 13.2 s with TensorFlow's defaults and 14.6 s
#: with the slow passes off (1.16 and 1.29 of the compiled step loop alone, 11.3 s), and the
#: first call was no slower (21.7 s vs 24.2 s): the saving is for small graphs only. The
#: saliency is the same either way.
FULL_GRAPPLER_MIN_PIXELS = 300 * 300


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
