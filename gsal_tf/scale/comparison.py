"""Dataset runs side by side: the same requests explained by different networks.

Runs of the same data and request zones (e.g. CamVid's class zones from its labels, explained
by a Cityscapes and an ADE20K network through their label mappings) are joined on the *zone
class*, the label class of the request's zone, which every run shares, and not on the explained
class, whose ids are each network's own. With ``paired=True`` (the default) only the requests
every run holds are kept: the same sample, zone kind and zone class (the n-th such zone of a
sample, for component zones), so a difference between the columns is a difference between the
networks, not between the frames they saw.

For each zone class z and run r (rows: the requests of z in r):

- ``count[r, z]``: requests; ``explained[r][z]``: the network class(es) explained;
- ``with_context[r, z]``: the requests that kept salient labelled context, the ones the shares
  are means over (:attr:`gsal_tf.context_stats.ContextStats.with_context`): a share over a
  handful of masks is no statistic (CamVid: 1 of 233 road zones keeps context for the
  Cityscapes network), so tables print it and figures grey the rows below ``min_requests``;
- ``original[r, z]``: mean f_c(x) over R — how confidently the network predicts it at all;
- ``no_context[r, z]``: median preserved score without any context (``no_context_score``);
- ``salient_fraction[r, z]``: mean share of the context pixels kept salient;
- ``share[r, z, k]`` / ``inflation[r, z, k]``: mean share of the salient context on context
  class k and its inflation baseline (the share a mask growing evenly around R would give),
  as :mod:`gsal_tf.context_stats` defines them.

Example
-------
>>> cmp = gs.scale.compare_runs(["runs/cityscapes-class", "runs/ade20k-shared"])
>>> cmp.top(0, cmp.zone_classes.index("pedestrian"))   # [(context class, share, inflation), ...]
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from gsal_tf import context_stats
from gsal_tf.errors import GsalInputError
from gsal_tf.scale import store

__all__ = ["RunComparison", "compare_runs", "comparison_figures", "difference_figure", "write_csv"]


@dataclasses.dataclass
class RunComparison:
    """Runs × zone classes (module docstring). Arrays are indexed ``[run, zone class(, context class)]``;
    ``shared_samples``: the samples (frames) every run explained."""

    runs: list
    folders: list
    zone_classes: list
    context_classes: list
    explained: list
    count: np.ndarray
    with_context: np.ndarray
    original: np.ndarray
    no_context: np.ndarray
    salient_fraction: np.ndarray
    share: np.ndarray
    inflation: np.ndarray
    paired: bool
    shared_samples: int

    def top(self, run: int, zone: int, k: int = 3) -> list:
        """The ``k`` context classes with the largest (non-zero) share for ``zone`` in ``run``:
        ``[(name, share, inflation share), ...]`` (empty when the run has no such request)."""
        share = self.share[run, zone]
        order = [c for c in np.argsort(-np.nan_to_num(share, nan=-1.0))[:k] if share[c] > 0]
        return [(self.context_classes[c], float(share[c]), float(self.inflation[run, zone, c])) for c in order]

    def readable(self, min_requests: int = 1) -> np.ndarray:
        """(runs, zone classes) bool: the cells whose shares rest on at least ``min_requests``
        requests that kept context."""
        from gsal_tf.scale.report import _check_min_requests

        _check_min_requests(min_requests)
        return self.with_context >= min_requests

    def rows(self, k: int = 3) -> list:
        """One dict per zone class and run (for a CSV or a table): the columns of the module docstring
        and the ``k`` largest context shares."""
        out = []
        for z, zone in enumerate(self.zone_classes):
            for r, run in enumerate(self.runs):
                top = self.top(r, z, k)
                out.append({"zone_class": zone, "run": run, "explained": self.explained[r][z], "requests": int(self.count[r, z]),
                            "with_context": int(self.with_context[r, z]),
                            "original_score": _float(self.original[r, z]), "no_context_median": _float(self.no_context[r, z]),
                            "salient_fraction": _float(self.salient_fraction[r, z]),
                            **{f"context_{i + 1}": name for i, (name, _, _) in enumerate(top)},
                            **{f"share_{i + 1}": share for i, (_, share, _) in enumerate(top)},
                            **{f"inflation_{i + 1}": infl for i, (_, _, infl) in enumerate(top)}})
        return out


def _float(value) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def _zone_names(card: dict) -> list:
    """Names of the zone class ids of a run: the dataset classes of its label mapping, else the
    data's class names (zones from labels), else the network's (zones from predictions)."""
    from gsal_tf.scale.report import class_label

    settings = card["settings"]
    mapping = settings.get("policy", {}).get("mapping") or {}
    if mapping.get("dataset_classes"):
        return list(mapping["dataset_classes"])
    names = settings["data"].get("class_names")
    if names:
        return list(names)
    size = len(settings.get("context_classes", []))
    return [class_label(card, k) for k in range(size)]


def _run_name(card: dict, folder: Path) -> str:
    return card["settings"].get("model", {}).get("name") or folder.name


def _keys(table, zone_names) -> list:
    """(sample, zone kind, zone class name, n-th such zone of the sample) per row."""
    samples = table.column("sample_key").to_pylist()
    kinds = table.column("zone").to_pylist()
    zones = table.column("zone_class").to_pylist()
    seen: dict = {}
    keys = []
    for sample, kind, zone in zip(samples, kinds, zones):
        base = (sample, kind, zone_names[zone] if 0 <= zone < len(zone_names) else f"class {zone}")
        seen[base] = seen.get(base, -1) + 1
        keys.append((*base, seen[base]))
    return keys


def compare_runs(folders: Sequence, paired: bool = True) -> RunComparison:
    """Two or more results folders of :func:`gsal_tf.explain_dataset` side by side (module docstring).

    Parameters
    ----------
    folders : paths of the runs (at least two), on the same data's label classes.
    paired : keep only the requests every run holds (default), else every request of each run.

    Raises
    ------
    GsalInputError : fewer than two runs, a folder that is no run, runs whose context classes
        differ (runs of different data), or no request shared by every run with ``paired``.
    """
    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise GsalInputError(f"give two or more results folders to compare, got {len(folders)}")
    cards, tables = [], []
    for folder in folders:
        cards.append(store.read_card(folder))
        tables.append(store.read_results(folder))
    context = cards[0]["settings"]["context_classes"]
    for folder, card in zip(folders[1:], cards[1:]):
        if card["settings"]["context_classes"] != context:
            raise GsalInputError(f"{folder} names other context classes than {folders[0]}: compare runs on the same data's labels")
    names = [_zone_names(card) for card in cards]
    keys = [_keys(table, zone_names) for table, zone_names in zip(tables, names)]
    if paired:
        common = set(keys[0]).intersection(*map(set, keys[1:]))
        if not common:
            raise GsalInputError("the runs share no request (same sample, zone and zone class): compare runs of the same data and "
                                 "request policy, or pass paired=False (--unpaired)")
        keep = [np.array([k in common for k in run_keys]) for run_keys in keys]
    else:
        keep = [np.ones(len(run_keys), bool) for run_keys in keys]
    zones = sorted({k[2] for run_keys, mask in zip(keys, keep) for k, m in zip(run_keys, mask) if m},
                   key=lambda name: (names[0].index(name) if name in names[0] else len(names[0]), name))
    shape = (len(folders), len(zones))
    out = RunComparison(
        runs=[_run_name(card, folder) for card, folder in zip(cards, folders)], folders=folders, zone_classes=zones,
        context_classes=list(context), explained=[[""] * len(zones) for _ in folders], count=np.zeros(shape, np.int64),
        with_context=np.zeros(shape, np.int64),
        original=np.full(shape, np.nan), no_context=np.full(shape, np.nan), salient_fraction=np.full(shape, np.nan),
        share=np.full((*shape, len(context)), np.nan), inflation=np.full((*shape, len(context)), np.nan), paired=paired,
        shared_samples=len(set.intersection(*({k[0] for k in run_keys} for run_keys in keys))))
    from gsal_tf.scale.report import class_label

    for r, (card, table, run_keys, mask) in enumerate(zip(cards, tables, keys, keep)):
        zone_of = np.array([zones.index(k[2]) if m else -1 for k, m in zip(run_keys, mask)], np.int64)
        sums = {key: np.asarray(table.column(key).to_pylist(), np.float64)[mask] for key in context_stats.SUM_FIELDS}
        if not mask.any():
            continue
        stats = context_stats.aggregate(zone_of[mask], sums, tuple(card["settings"]["distance_edges"]))
        explained = np.asarray(table.column("class_id").to_pylist())[mask]
        original = np.asarray(table.column("original_score").to_pylist(), np.float64)[mask]
        no_context = np.asarray(table.column("no_context_score").to_pylist(), np.float64)[mask]
        for row, z in enumerate(stats.classes):
            mine = zone_of[mask] == z
            out.count[r, z] = stats.count[row]
            out.with_context[r, z] = stats.with_context[row]
            out.explained[r][z] = ", ".join(class_label(card, int(c)) for c in np.unique(explained[mine]))
            out.original[r, z] = float(np.mean(original[mine]))
            with np.errstate(all="ignore"):
                finite = no_context[mine][np.isfinite(no_context[mine])]
                out.no_context[r, z] = float(np.median(finite)) if finite.size else np.nan
            out.salient_fraction[r, z] = stats.mean_fraction[row]
            out.share[r, z] = stats.share[row]
            out.inflation[r, z] = stats.inflation_share[row]
    return out


def comparison_figures(comparison: RunComparison, min_requests: int = 1) -> dict:
    """{name: matplotlib Figure}: each run's share matrix (zone classes × context classes) and,
    for every later run, its share minus the first run's (``share-minus-1-<k>``, see
    :func:`difference_figure`).

    Rows of a run's shares read ``zone (k/n)``: k of the zone class's n requests kept salient
    labelled context; rows with k < ``min_requests`` are grey, as in
    :func:`gsal_tf.scale.report.figures` (a difference: see :func:`difference_figure`).
    """
    from gsal_tf import viz

    readable = comparison.readable(min_requests)
    figures = {}
    for r, run in enumerate(comparison.runs):
        labels = [f"{zone} ({k}/{n})" for zone, k, n in zip(comparison.zone_classes, comparison.with_context[r], comparison.count[r])]
        figures[f"share-{r + 1}"] = viz.matrix_figure(
            np.where(readable[r][:, None], comparison.share[r], np.nan), labels, comparison.context_classes,
            f"share of the salient context: {run}", vmax=1.0, colorbar_label="share of salient context", xlabel="context class",
            ylabel="zone class (with salient context / all)")
    for r in range(1, len(comparison.runs)):
        figures[f"share-minus-1-{r + 1}"] = difference_figure(
            comparison, r, min_requests=min_requests,
            subtitle="share of the salient context, same requests" if comparison.paired else None)
    return figures


def difference_figure(comparison: RunComparison, run: int = 1, zones: Sequence[str] | None = None, *, min_requests: int = 1,
                      subtitle: str | None = None, xlabel: str = "context class", ylabel: str = "zone class"):
    """Run ``run``'s share of the salient context minus the first run's, zone classes × context
    classes (``zones``: the rows shown, in that order; default all). Rows read
    ``zone (k1/n1 · k/n)``: the requests that kept salient labelled context of all, in the first
    run and in ``run``; a row where either has fewer than ``min_requests`` is grey. Returns the
    Figure. Raises GsalInputError for a ``run`` that is not a later run or an unknown zone class."""
    from gsal_tf import viz

    if isinstance(run, bool) or not isinstance(run, (int, np.integer)) or not 1 <= run < len(comparison.runs):
        raise GsalInputError(f"run must be a later run, 1 to {len(comparison.runs) - 1}, got {run!r}")
    unknown = [z for z in (zones or ()) if z not in comparison.zone_classes]
    if unknown:
        raise GsalInputError(f"no zone class {', '.join(map(repr, unknown))} in the comparison; it has {', '.join(comparison.zone_classes)}")
    rows = [comparison.zone_classes.index(z) for z in zones] if zones is not None else list(range(len(comparison.zone_classes)))
    both = comparison.readable(min_requests)[[0, run]].all(axis=0)[rows]
    (k1, k), (n1, n) = comparison.with_context[[0, run]][:, rows], comparison.count[[0, run]][:, rows]
    labels = [f"{comparison.zone_classes[z]} ({a}/{b} · {c}/{d})" for z, a, b, c, d in zip(rows, k1, n1, k, n)]
    difference = (comparison.share[run] - comparison.share[0])[rows]
    return viz.matrix_figure(np.where(both[:, None], difference, np.nan), labels, comparison.context_classes,
                             f"{comparison.runs[run]} − {comparison.runs[0]}", colorbar_label="difference of shares", xlabel=xlabel,
                             ylabel=f"{ylabel} (with salient context / all: run 1 · run {run + 1})", diverging=True, subtitle=subtitle)


def write_csv(comparison: RunComparison, path, k: int = 3) -> Path:
    """:meth:`RunComparison.rows` as a CSV file (written whole, or not at all)."""
    import csv
    import io

    rows = comparison.rows(k)
    header = ["zone_class", "run", "explained", "requests", "with_context", "original_score", "no_context_median", "salient_fraction"]
    header += [f"{name}_{i + 1}" for i in range(k) for name in ("context", "share", "inflation")]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path = Path(path)
    store.write_text(path, buffer.getvalue())
    return path
