"""The tuning space of the benchmark: each method's candidate settings, and what a report says
about where a setting came from. Data only; :mod:`gsal_tf.benchmark.tuning` runs the search, and
:mod:`gsal_tf.benchmark.evaluation` checks that options tuning chooses are not also fixed by hand.
"""

from __future__ import annotations

import itertools


def _grid(**axes) -> list[dict]:
    """Every combination of the axes, the first value of each axis first."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


#: Candidate settings per method: the same number (6) for every method that has a setting, the
#: method's default first. Keyword arguments of the method's class (see the module docstring).
CANDIDATES: dict[str, list[dict]] = {
    "grid_saliency": _grid(lam=(1.0, 0.5, 2.0), learning_rate=(0.03, 0.1)),
    "vanilla_gradients": [{}],
    "smoothgrad": _grid(noise=(0.15, 0.20), averaging=("absolute", "signed", "squared")),
    "integrated_gradients": _grid(baseline=(0.0, "mean", "blur"), steps=(32, 64)),
    "occlusion": [{"window": w, "stride": s} for w in (8, 4, 16) for s in (w // 2, w)],
    "rise": _grid(cell_size=(8, 16), keep_probability=(0.5, 0.25, 0.75)),
}

#: Where a method's setting in a report came from.
SOURCE_TUNED = "tuned on held-out"
SOURCE_DEFAULT = "default"
SOURCE_NOTHING = "nothing to tune"


def tuned_keys(method: str) -> set:
    """The options of ``method`` that tuning chooses."""
    return set().union(*(c.keys() for c in CANDIDATES.get(method, [{}])))
