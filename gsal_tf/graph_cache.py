"""A disk cache of explainers' compiled graphs: a new process explains without tracing again.

Why: the first ``explain()`` of a process traces the whole optimisation — the network three times,
its gradient, the loop — in Python; on the zoo's DeepLabv3+ (64×64) that costs about 3-5 s, several
times a warm explanation (measured with ``python benchmarks/bench_first_call.py``). A one-shot CLI
call or a per-file batch job pays it every time.

What is stored: the traced graph of :meth:`gsal_tf.explainer.Explainer.compiled_graph` as a
``GraphDef`` protocol buffer (``<key>.pb``) and a JSON card (``<key>.json``: inputs, outputs, which
model variable feeds which captured input, versions, the ``.pb``'s sha256), under
``$GSAL_HOME/graphs`` (default ``~/.cache/gsal/graphs``). No pickle. Loading imports the graph
(``tf.graph_util.import_graph_def`` inside ``tf.compat.v1.wrap_function``, public API) and binds
its captured inputs to the model's variables **by variable path**: the weights are read from the
model at every call, never from the cache, so new weights (fine-tuning, another zoo entry of the
same architecture) are always the ones used.

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

from gsal_tf._version import __version__
from gsal_tf.config import gsal_home

FORMAT = 1
#: gsal modules whose code builds explainer graphs (their source is part of every key).
GRAPH_MODULES = (
    "gsal_tf.explainer",
    "gsal_tf.saliency.grid_saliency",
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
    try:
        graph_def = tf.compat.v1.GraphDef.FromString(data)
    except DecodeError:
        return None
    if any(list(v.shape) != shape for v, shape in zip(variables, card["capture_shapes"])):
        return None
    return _import(graph_def, card, variables)


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
    card = {
        "format": FORMAT,
        "key": key,
        "inputs": [t.name for t in concrete.inputs[:n_args]],
        "input_specs": [[t.shape.as_list() if t.shape.rank is not None else None, t.dtype.name] for t in concrete.inputs[:n_args]],
        "capture_inputs": [t.name for t in concrete.inputs[n_args:]],
        "captures": [v.path for v in captured],
        "capture_shapes": [list(v.shape) for v in captured],
        "outputs": {name: t.name for name, t in outputs.items()},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "gsal_tf": __version__},
    }
    data = concrete.graph.as_graph_def().SerializeToString()
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


def _import(graph_def, card: dict, variables: list) -> Callable:
    """The graph as a callable over its explicit inputs; captured inputs read the variables."""
    specs = [tf.TensorSpec(shape, tf.as_dtype(dtype)) for shape, dtype in card["input_specs"]]
    names = list(card["outputs"])

    def body(*args):
        input_map = dict(zip(card["inputs"], args))
        # tf.identity of an eager handle inside the graph captures it: the variable itself is read.
        input_map.update({name: tf.identity(_resource(v).handle) for name, v in zip(card["capture_inputs"], variables)})
        outs = tf.graph_util.import_graph_def(graph_def, input_map=input_map, return_elements=[card["outputs"][n] for n in names], name="")
        return dict(zip(names, outs))

    return tf.compat.v1.wrap_function(body, specs)


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
