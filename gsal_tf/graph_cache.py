"""A disk cache of explainers' compiled graphs: a new process explains without tracing again.

Why: the first ``explain()`` of a process traces the whole optimisation — the network three times,
its gradient, the loop — in Python; on the zoo's DeepLabv3+ (64×64) that costs about 3-5 s, several
times a warm explanation (measured with ``python benchmarks/bench_first_call.py``). A one-shot CLI
call or a per-file batch job pays it every time.

What is stored: the traced graph of :meth:`gsal_tf.explainer.Explainer.compiled_graph` as its
``FunctionDef`` and the functions it calls (loop bodies), in one ``FunctionDefLibrary`` protocol
buffer (``<key>.pb``; every function renamed ``gsal_<key>_…`` so that it never collides with a
function of the running process), and a JSON card (``<key>.json``: inputs, outputs, which model
variable feeds which captured input, versions, the ``.pb``'s sha256), under ``$GSAL_HOME/graphs``
(default ``~/.cache/gsal/graphs``). No pickle. Loading adds the functions to TensorFlow's eager
context and calls the main one by name as TensorFlow calls a traced function, its captured inputs
bound to the model's variables **by variable path**: the weights are read from the model at every
call, never from the cache, so new weights (fine-tuning, another zoo entry of the same
architecture) are always the ones used. Loading this way takes 0.03 s for the zoo DeepLabv3+
explainer; rebuilding the graph in Python (``import_graph_def`` in ``wrap_function``, format 1)
took 0.9 s (2-core CPU). Adding a function uses ``tensorflow.python.eager.context`` (not a public
module); where it is missing the cache is off and graphs are traced.

The key (sha256) covers everything that decides the graph's computation except the weights:

- the explainer's structural options (method, image shape, grid, mode, upsampling, optimizer,
  output kind, XLA) — hyper-parameters such as ``lam`` are graph inputs;
- the model's architecture: its Keras config (JSON), dtype policies, variable paths, shapes and
  dtypes, and the source code of every layer class that is not Keras' own (a custom layer whose
  code changes gets a new key);
- the versions of TensorFlow, Keras, Python and gsal_tf, the source of gsal's graph-building
  modules, and the device types TensorFlow sees.

Models that cannot be fingerprinted this way (plain callables, SavedModels, subclassed models
without ``get_config``, layers without source) are never cached: they are traced as before. A
card or graph that does not match (other key, missing variable, wrong shape, corrupt file) is
ignored and replaced by a new trace. Set ``GSAL_GRAPH_CACHE=0`` to switch the cache off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import platform
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf
from google.protobuf.message import DecodeError
from tensorflow.core.framework import function_pb2

try:  # where a TensorFlow version moves it, the cache is off (graphs are traced as without it)
    from tensorflow.python.eager import context
except ImportError:  # pragma: no cover
    context = None

from gsal_tf._version import __version__
from gsal_tf.config import gsal_home

__all__ = [
    "FORMAT", "GRAPH_MODULES", "enabled", "cache_dir", "model_fingerprint", "graph_key", "load", "save",
    "cached_or_traced",
]

FORMAT = 3  # 3: a FunctionDefLibrary added to the eager context (1: a GraphDef)
#: gsal modules whose code builds explainer graphs (their source is part of every key).
GRAPH_MODULES = (
    "gsal_tf.explainer",
    "gsal_tf.model_calls",
    "gsal_tf._graphs",
    "gsal_tf.saliency.grid_saliency",
    "gsal_tf.saliency.loop",
    "gsal_tf.saliency.masks",
    "gsal_tf.saliency.objective",
    "gsal_tf.saliency.optim",
    "gsal_tf.saliency.perturbation",
    "gsal_tf.attributions.base",
    "gsal_tf.attributions.gradients",
    "gsal_tf.attributions.smoothgrad",
    "gsal_tf.attributions.integrated_gradients",
    "gsal_tf.attributions.masking",
    "gsal_tf.attributions.occlusion",
    "gsal_tf.attributions.rise",
)


def enabled() -> bool:
    """False when ``GSAL_GRAPH_CACHE`` is 0, off, false or no."""
    if context is None or not hasattr(context.Context, "add_function_def"):
        return False
    return os.environ.get("GSAL_GRAPH_CACHE", "1").strip().lower() not in ("0", "off", "false", "no")


def cache_dir() -> Path:
    """``$GSAL_HOME/graphs``."""
    return gsal_home() / "graphs"


def model_fingerprint(model) -> str | None:
    """sha256 of a Keras model's architecture (config, dtype policies, weights' paths, shapes and
    dtypes, source of non-Keras layer classes); None for a model that cannot be fingerprinted.

    Weights, not all variables: a dropout layer's random-seed state is named by a per-process
    counter, and inference graphs never read it (a graph that captures it is not cached).
    """
    if not isinstance(model, keras.Model):
        return None
    try:
        config = json.dumps(model.get_config(), sort_keys=True, default=repr)
        sources = sorted({_class_source(type(layer)) for layer in model._flatten_layers(include_self=True, recursive=True)})
    except (NotImplementedError, TypeError, OSError):
        return None
    variables = sorted((v.path, tuple(v.shape), str(v.dtype)) for v in model.weights)
    parts = [config, keras.config.dtype_policy().name, getattr(getattr(model, "dtype_policy", None), "name", ""), repr(variables), *sources]
    return _sha256("\n".join(parts).encode())


def graph_key(structure: tuple, model) -> str | None:
    """The cache key of an explainer graph (see the module docstring); None when not cacheable."""
    fingerprint = model_fingerprint(model)
    if fingerprint is None:
        return None
    devices = sorted({d.device_type for d in tf.config.list_logical_devices()})
    versions = [tf.__version__, keras.__version__, __version__, platform.python_version(), FORMAT]
    text = json.dumps([repr(structure), fingerprint, devices, versions, _gsal_source()])
    return _sha256(text.encode())


def load(key: str, model) -> Callable | None:
    """The cached graph of ``key`` bound to ``model``'s variables, or None (absent or not matching)."""
    card_path, graph_path = _paths(key)
    try:
        card = json.loads(card_path.read_text())
        data = graph_path.read_bytes()
    except (OSError, ValueError):
        return None
    if card.get("key") != key or card.get("format") != FORMAT or _sha256(data) != card.get("sha256"):
        return None
    by_path = {v.path: v for v in model.weights}
    if not all(path in by_path for path in card.get("captures", [None])):
        return None
    variables = [by_path[path] for path in card["captures"]]
    if any(list(v.shape) != shape for v, shape in zip(variables, card["capture_shapes"])):
        return None
    try:
        library = function_pb2.FunctionDefLibrary.FromString(data)
    except DecodeError:
        return None
    if card["function"] not in {f.signature.name for f in library.function}:
        return None
    return _bind(library, card, variables)


def save(key: str, concrete, model) -> bool:
    """Store a traced concrete function (``tf.function(...).get_concrete_function()``) under ``key``.

    Returns False (and stores nothing) when the graph captures anything but ``model``'s variables
    or its outputs are not a flat dict of tensors.
    """
    handles = {id(_resource(v).handle): v for v in model.weights}
    captured = [handles.get(id(c)) for c in concrete.captured_inputs]
    outputs = concrete.structured_outputs
    if any(v is None for v in captured) or not isinstance(outputs, dict) or not all(isinstance(t, tf.Tensor) for t in outputs.values()):
        return False
    n_args = len(concrete.inputs) - len(captured)
    if [id(t) for t in tf.nest.flatten(outputs)] != [id(t) for t in concrete.outputs]:
        return False
    library, main = _renamed_library(concrete, prefix=f"gsal_{key[:16]}_")
    card = {
        "format": FORMAT,
        "key": key,
        "function": main,
        "input_dtypes": [t.dtype.name for t in concrete.inputs[:n_args]],
        "captures": [v.path for v in captured],
        "capture_shapes": [list(v.shape) for v in captured],
        "outputs": sorted(outputs),  # tf.nest order of a dict: sorted keys
        "output_dtypes": [outputs[name].dtype.name for name in sorted(outputs)],
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "gsal_tf": __version__},
    }
    data = library.SerializeToString(deterministic=True)
    card["sha256"] = _sha256(data)
    card_path, graph_path = _paths(key)
    try:
        graph_path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(graph_path, data)
        _write_atomic(card_path, json.dumps(card).encode())  # the card last: it marks a complete entry
    except OSError:
        return False
    return True


def cached_or_traced(structure: tuple, model, trace: Callable[[], Callable]) -> Callable:
    """The graph for ``structure`` on ``model``: from the disk cache, else ``trace()`` (a
    ``tf.function`` with an input signature), stored for the next process."""
    key = graph_key(structure, model) if enabled() else None
    if key is None:
        return trace()
    loaded = load(key, model)
    if loaded is not None:
        return loaded
    function = trace()
    save(key, function.get_concrete_function(), model)
    return function


# -- internals ------------------------------------------------------------------------------------


def _bind(library, card: dict, variables: list) -> Callable:
    """The main function of ``library`` as a callable over its explicit inputs returning the dict
    of outputs; its captured inputs are the variables' handles (their values are read per call)."""
    ctx = context.context()
    for function in library.function:
        if not ctx.has_function(function.signature.name):
            ctx.add_function_def(function)
    handles = [_resource(v).handle for v in variables]
    in_dtypes = [tf.as_dtype(d) for d in card["input_dtypes"]]
    names, function = card["outputs"], card["function"]

    def call(*args):
        if len(args) != len(in_dtypes):
            raise TypeError(f"the cached graph takes {len(in_dtypes)} inputs, got {len(args)}")
        inputs = [tf.convert_to_tensor(a, dtype=d) for a, d in zip(args, in_dtypes)]
        # Called by name exactly as TensorFlow calls a traced function (the thread's function-call
        # options: executor and grappler settings). A StatefulPartitionedCall op around it ran the
        # warm 64x64 demo explanation 2.6x slower (5.8 s vs 2.2 s).
        outs = ctx.call_function(function.encode(), [*inputs, *handles], len(names))
        return dict(zip(names, outs))

    return call


def _renamed_library(concrete, prefix: str):
    """(FunctionDefLibrary of the concrete function and every function it calls, main name), each
    function renamed ``prefix + i`` and every reference to it (op types, function attributes,
    gradient entries) rewritten, so that names are unique to the cache key."""
    main = function_pb2.FunctionDef()
    main.CopyFrom(concrete.function_def)
    library = function_pb2.FunctionDefLibrary()
    library.CopyFrom(concrete.graph.as_graph_def().library)
    functions = [main, *library.function]
    names = {f.signature.name: f"{prefix}{i}" for i, f in enumerate(functions)}

    def rename_attr(value):
        if value.HasField("func") and value.func.name in names:
            value.func.name = names[value.func.name]
        for func in value.list.func:
            if func.name in names:
                func.name = names[func.name]

    for function in functions:
        function.signature.name = names[function.signature.name]
        for value in function.attr.values():
            rename_attr(value)
        for node in function.node_def:
            if node.op in names:
                node.op = names[node.op]
            for value in node.attr.values():
                rename_attr(value)
    for gradient in library.gradient:
        gradient.function_name = names.get(gradient.function_name, gradient.function_name)
        gradient.gradient_func = names.get(gradient.gradient_func, gradient.gradient_func)
    out = function_pb2.FunctionDefLibrary()
    out.function.extend(functions)
    out.gradient.extend(library.gradient)
    return out, names[concrete.function_def.signature.name]


def _resource(variable):
    """The tf.Variable behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _class_source(cls) -> str:
    """'' for Keras' own layers (the Keras version is in the key), else the class's source."""
    module = getattr(cls, "__module__", "")
    if module.split(".")[0] == "keras":
        return ""
    return f"{module}.{cls.__qualname__}\n{inspect.getsource(cls)}"


_SOURCE: dict = {}


def _gsal_source() -> str:
    """sha256 of the source files of :data:`GRAPH_MODULES` (read once per process)."""
    if "digest" not in _SOURCE:
        digest = hashlib.sha256()
        for name in GRAPH_MODULES:
            digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
        _SOURCE["digest"] = digest.hexdigest()
    return _SOURCE["digest"]


def _paths(key: str) -> tuple[Path, Path]:
    return cache_dir() / f"{key}.json", cache_dir() / f"{key}.pb"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
