"""The tuning space of the benchmark: each method's candidate settings, and what a report says
about where a setting came from, and whether a report was tuned on this space (:func:`tuned_on`).
:mod:`gsal_tf.benchmark.tuning` runs the search, and
:mod:`gsal_tf.benchmark.evaluation` checks that options tuning chooses are not also fixed by hand.
"""

from __future__ import annotations

import itertools

__all__ = [
    "THIRD_CANDIDATES", "CANDIDATES", "TARGET_GRID_CANDIDATES", "TARGET_CANDIDATES", "paper_formulation",
    "candidates_for", "SECOND_CANDIDATES", "FIRST_CANDIDATES", "PAST_SPACES", "space_name", "SOURCE_TUNED",
    "SOURCE_DEFAULT", "SOURCE_NOTHING", "tuned_keys", "plain", "tuned_on",
]


def _grid(**axes) -> list[dict]:
    """Every combination of the axes, the first value of each axis first."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*axes.values())]


#: The third space (the first five paper-law protocol runs until the fourth space), kept to read
#: old reports. On the second space
#: (:data:`SECOND_CANDIDATES`, all 12 paper-law protocol runs) the winners were: grid saliency lam
#: 4.0 in 10 of 12 (2.0 in 2; 1.0, the default, never) and learning rate 0.03 in 10; SmoothGrad
#: noise 0.30 in 10 (0.20 in 2), signed averaging 12 of 12; integrated gradients 128 steps in 9
#: (64 in 2, 32 in 1), blur baseline 12 of 12; RISE keep probability 0.25 in 7 (0.5 in 5), cells
#: of 16 px in 9 and 8 px in 3 (32 px never); occlusion window 32 px in 12 of 12. Hence lam 8.0
#: (2.0 goes), noise 0.50 (0.20 goes), 256 steps (64 goes), keep probability 0.125 (32-px cells
#: go). Occlusion is unchanged: its next step, a 64-px window, is the whole 64-px image, a single
#: window whose map is constant over the context and cannot localise anything.
THIRD_CANDIDATES: dict[str, list[dict]] = {
    "grid_saliency": _grid(lam=(1.0, 4.0, 8.0), learning_rate=(0.03, 0.1)),
    "vanilla_gradients": [{}],
    "smoothgrad": _grid(noise=(0.15, 0.30, 0.50), averaging=("absolute", "signed")),
    "integrated_gradients": _grid(baseline=(0.0, "blur"), steps=(32, 128, 256)),
    "occlusion": [{"window": w, "stride": s} for w in (8, 16, 32) for s in (w // 2, w)],
    "rise": _grid(cell_size=(8, 16), keep_probability=(0.5, 0.25, 0.125)),
}

#: Candidate settings per method: the same number (6) for every method that has a setting, the
#: method's default first. Keyword arguments of the method's class (see the module docstring).
#:
#: The fourth space. Each space follows from the one before by one rule, the same for every method
#: (stated here as every step so far applied it): keep the default's value on each axis; extend
#: each range whose edge value won in most runs one step past that edge (not onto a value an
#: earlier space tried and that never won there); when that exceeds the budget of 6, drop the
#: non-default value that won least on the longest axis. Values that never won stay while there is
#: room (occlusion's 16-px window). On the third space (:data:`THIRD_CANDIDATES`, the first five
#: paper-law protocol runs: four weak, one strong) the winners were: grid saliency lam 8.0 in 4 of
#: 5 (4.0 in 1; 1.0, the default, never), learning rate 0.03 in 5 of 5; SmoothGrad noise 0.50 in 4
#: (0.30 in 1), signed averaging 5 of 5; integrated gradients 128 steps in 4 (256 in 1), blur
#: baseline in 4; occlusion window 32 px in 5 of 5; RISE cells of 16 px in 3 (8 px in 2), keep
#: probability 0.5 in 3 (0.25 in 1, 0.125 in 1). Hence lam 16.0 (4.0 goes) and noise 0.80 (0.30
#: goes). Integrated gradients and RISE are unchanged (256 steps and keep probability 0.125 won
#: once each; 32-px RISE cells never won on the second space); occlusion is unchanged: its next
#: step, a 64-px window, is the whole 64-px image, a single window whose map is constant over the
#: context and cannot localise anything.
CANDIDATES: dict[str, list[dict]] = {
    **THIRD_CANDIDATES,
    "grid_saliency": _grid(lam=(1.0, 8.0, 16.0), learning_rate=(0.03, 0.1)),
    "smoothgrad": _grid(noise=(0.15, 0.50, 0.80), averaging=("absolute", "signed")),
}

#: Grid saliency's candidates in its default formulation (a ``target``, ``init="auto"``; the
#: space above is the paper formulation's, ``target=0``). The same budget of six, by the same
#: rule from the held-out choice of the defaults (``GridSaliency``'s docstring): the default
#: first (lam 16, learning rate 0.025), the neighbours measured there on each axis (lam 8 and 32,
#: learning rate 0.02). (Up to the pruned defaults: learning rate 0.02 and 0.03.)
TARGET_GRID_CANDIDATES: list[dict] = _grid(lam=(16.0, 8.0, 32.0), learning_rate=(0.025, 0.02))
#: :data:`CANDIDATES` with grid saliency's space for the default formulation.
TARGET_CANDIDATES: dict[str, list[dict]] = {**CANDIDATES, "grid_saliency": TARGET_GRID_CANDIDATES}


def paper_formulation(grid_options) -> bool:
    """Whether grid saliency options (keyword arguments) select the paper's fixed-lam
    formulation (``target`` 0) rather than the default's target."""
    return float(grid_options.get("target", _default("target"))) == 0.0


def _default(name):
    import inspect

    from gsal_tf.saliency.grid_saliency import GridSaliency

    return inspect.signature(GridSaliency.__init__).parameters[name].default


def candidates_for(grid_options) -> dict[str, list[dict]]:
    """:data:`CANDIDATES` with grid saliency's space for its formulation in ``grid_options``."""
    return CANDIDATES if paper_formulation(grid_options) else TARGET_CANDIDATES


#: The second space (the paper-law protocol's 12 runs until the third space), kept to read old
#: reports. It came from the first (:data:`FIRST_CANDIDATES`), whose winners all sat at the edge
#: of a range on the first eight paper-law runs: grid saliency lam 2.0 (of 0.5/1/2) in 8 of 8,
#: SmoothGrad noise 0.20 (of 0.15/0.20) 8 of 8, integrated gradients 64 steps (of 32/64) 7 of 8,
#: occlusion window 16 px (of 4/8/16) 8 of 8, RISE cells of 16 px (of 8/16) 6 of 8; SmoothGrad's
#: "squared" (1 of 8) and integrated gradients' "mean" (0 of 8) made room.
SECOND_CANDIDATES: dict[str, list[dict]] = {
    "grid_saliency": _grid(lam=(1.0, 2.0, 4.0), learning_rate=(0.03, 0.1)),
    "vanilla_gradients": [{}],
    "smoothgrad": _grid(noise=(0.15, 0.20, 0.30), averaging=("absolute", "signed")),
    "integrated_gradients": _grid(baseline=(0.0, "blur"), steps=(32, 64, 128)),
    "occlusion": [{"window": w, "stride": s} for w in (8, 16, 32) for s in (w // 2, w)],
    "rise": _grid(cell_size=(8, 16, 32), keep_probability=(0.5, 0.25)),
}

#: The first space (gsal-tf 0.2 and the first eight paper-law protocol runs), kept to read old reports.
FIRST_CANDIDATES: dict[str, list[dict]] = {
    "grid_saliency": _grid(lam=(1.0, 0.5, 2.0), learning_rate=(0.03, 0.1)),
    "vanilla_gradients": [{}],
    "smoothgrad": _grid(noise=(0.15, 0.20), averaging=("absolute", "signed", "squared")),
    "integrated_gradients": _grid(baseline=(0.0, "mean", "blur"), steps=(32, 64)),
    "occlusion": [{"window": w, "stride": s} for w in (8, 4, 16) for s in (w // 2, w)],
    "rise": _grid(cell_size=(8, 16), keep_probability=(0.5, 0.25, 0.75)),
}

#: The earlier spaces by name, newest first, to say which one a report was tuned on.
PAST_SPACES: tuple[tuple[str, dict], ...] = (
    ("third", THIRD_CANDIDATES), ("second", SECOND_CANDIDATES), ("first", FIRST_CANDIDATES))


def space_name(record: dict, methods) -> str:
    """Which candidate space a report's tuning record was tuned on: 'current', 'third', 'second',
    'first', 'another' or 'untuned'."""
    if not record:
        return "untuned"
    if tuned_on(record, methods):
        return "current"
    return next((name for name, space in PAST_SPACES if tuned_on(record, methods, space)), "another")


#: Where a method's setting in a report came from.
SOURCE_TUNED = "tuned on held-out"
SOURCE_DEFAULT = "default"
SOURCE_NOTHING = "nothing to tune"


def tuned_keys(method: str) -> set:
    """The options of ``method`` that tuning chooses."""
    return set().union(*(c.keys() for c in CANDIDATES.get(method, [{}])))


def plain(setting) -> dict:
    """A setting as JSON stores it (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in setting.items()}


def tuned_on(record: dict, methods, space: dict | None = None) -> bool:
    """Whether a report's tuning record (``TuningResult.record()``) tried exactly the candidates of
    ``space`` for each of ``methods``, in order (default: today's, :data:`CANDIDATES` with grid
    saliency's space of either formulation)."""
    tried = record.get("candidates", {})
    if space is None:  # today's space: grid saliency's for either formulation
        return any(tuned_on(record, methods, one) for one in (CANDIDATES, TARGET_CANDIDATES))
    return all([row["setting"] for row in tried.get(m, [])] == [plain(c) for c in space.get(m, [{}])] for m in methods)
