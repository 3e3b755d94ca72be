"""Counting the traces of explainer graphs in tests, with TensorFlow's own per-function count
(``tf.function.experimental_get_tracing_count``): every graph an explainer takes from
``gsal_tf._graphs.cached_graph`` is recorded (with its count when first seen, if it was built
before), and the counter reports the traces since."""

from __future__ import annotations


class TraceCounter:
    def __init__(self):
        self._seen: dict[int, tuple[object, int]] = {}

    def install(self, setattr_) -> "TraceCounter":
        """Wrap ``gsal_tf._graphs.cached_graph`` through ``setattr_`` (pytest's
        ``monkeypatch.setattr``, or plain ``setattr`` in a subprocess)."""
        from gsal_tf import _graphs

        original = _graphs.cached_graph

        def recording(owner, model, key, build):
            try:
                built_before = key in _graphs._GRAPHS.get(model, {})
            except TypeError:  # a model that cannot be weakly referenced: cached on its explainer
                built_before = key in owner.__dict__.get("_own_graphs", {})
            graph = original(owner, model, key, build)
            if id(graph) not in self._seen:
                # A graph built in this call counts all its traces; one built earlier, those after now.
                self._seen[id(graph)] = (graph, _count(graph) if built_before else 0)
            return graph

        setattr_(_graphs, "cached_graph", recording)
        return self

    def __call__(self) -> int:
        """Traces of the recorded graphs since each was first seen."""
        return sum(_count(graph) - first for graph, first in self._seen.values())


def _count(graph) -> int:
    """A ``tf.function``'s trace count; 0 for a graph loaded from the disk cache (never traced)."""
    get = getattr(graph, "experimental_get_tracing_count", None)
    return get() if get else 0
