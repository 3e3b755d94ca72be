"""Did a network trained on biased data take the bias? The paired reliance test of a protocol run.

A benchmark of explanation methods on biased networks tests nothing when a "biased" network
ignores the bias: whether a network takes the shortcut varies from run to run. Each protocol run
therefore measures its network with the paired test of
:func:`gsal_tf.benchmark.evaluation.bias_reliance` — the same test digits textured at random and
with the run's bias texture in one tile — and calls the bias *taken* when the gain in the share
of the bias digit's pixels predicted as that digit reaches :data:`TAKEN_GAIN` for its strength
(0.3 strong, 0.15 weak). :func:`uptake_summary` reports, per backbone and
strength, the uptake rate and every method's CBL over all networks (the paper's way) and over the
networks that took the bias.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from gsal_tf.benchmark.config import BenchmarkConfig, load_config, unbiased_counterpart
from gsal_tf.benchmark.evaluation import bias_reliance

__all__ = ["TAKEN_GAIN", "paired_configs", "measure", "uptake_summary"]

#: Reliance gain from which a network counts as having taken the bias, per bias strength.
TAKEN_GAIN = {"strong": 0.3, "weak": 0.15}


def paired_configs(data_config: BenchmarkConfig, digit: int, texture) -> tuple[BenchmarkConfig, BenchmarkConfig]:
    """(without, with_bias): the test split of ``data_config``'s image law with the bias off, and
    with the bias texture in one tile of every sample of ``digit`` (strong placement; the same
    test digits, sizes and positions, since both keep ``test_seed``)."""
    with_bias = load_config(data_config, bias={"strength": "strong", "digit": int(digit), "texture": texture}, n_train=0)
    return unbiased_counterpart(with_bias), with_bias


def measure(model, data_config: BenchmarkConfig, digit: int, texture, strength: str, mnist, n_test: int | None = None) -> dict:
    """The paired reliance test of a network trained on ``data_config`` biased to (digit, texture).

    Returns :func:`~gsal_tf.benchmark.evaluation.bias_reliance`'s dict plus ``threshold`` (the
    gain that counts as taken for ``strength``) and ``taken`` (bool).
    """
    from gsal_tf.benchmark.texture_mnist import TextureMNIST

    without_cfg, with_cfg = paired_configs(data_config, digit, texture)
    n = n_test or data_config.n_test
    without = TextureMNIST(without_cfg, mnist=mnist).samples("test", n=n)
    with_bias = TextureMNIST(with_cfg, mnist=mnist).samples("test", n=n)
    result = bias_reliance(model, without, with_bias, int(digit))
    threshold = TAKEN_GAIN[strength]
    return {**result, "threshold": threshold, "taken": bool(result["gain"] >= threshold)}


def uptake_summary(reports: list[Mapping]) -> dict:
    """Per ``backbone/strength``: uptake rate and CBL over all networks and over those that took
    the bias, for every method.

    Returns ``{"<backbone>/<strength>": {"runs": n, "measured": m, "taken": t, "uptake": t / m,
    "gain": [mean, std], "methods": {method: {"cbl_all": [mean, std, n], "cbl_taken": [mean, std, n]}}}}``.
    Runs without a reliance measurement count in ``runs`` only.
    """
    groups: dict = {}
    for r in reports:
        if r.get("strength") not in TAKEN_GAIN:
            continue
        g = groups.setdefault(f"{r['backbone']}/{r['strength']}", {"runs": 0, "gains": [], "taken": [], "cbl": {}})
        g["runs"] += 1
        reliance = r.get("reliance")
        taken = None if reliance is None else bool(reliance["taken"])
        if reliance is not None:
            g["gains"].append(reliance["gain"])
            g["taken"].append(taken)
        for method, row in r["explanations"]["methods"].items():
            g["cbl"].setdefault(method, []).append((row.get("cbl_mean"), taken))
    out = {}
    for key, g in groups.items():
        measured, taken = len(g["taken"]), int(sum(g["taken"]))
        out[key] = {
            "runs": g["runs"],
            "measured": measured,
            "taken": taken,
            "uptake": taken / measured if measured else None,
            "gain": _mean_std_n(g["gains"])[:2],
            "methods": {
                m: {"cbl_all": _mean_std_n([v for v, _ in rows]), "cbl_taken": _mean_std_n([v for v, t in rows if t])}
                for m, rows in g["cbl"].items()
            },
        }
    return out


def _mean_std_n(values) -> list:
    v = np.array([np.nan if x is None else x for x in values], np.float64)
    v = v[np.isfinite(v)]
    return [float(v.mean()), float(v.std()), int(v.size)] if v.size else [None, None, 0]
