"""Explaining one request with several models: the paper's backbone comparison (MobileNetV2 vs
Xception on Cityscapes), for any set of segmentation models that take the same image.

For every model the same request R and class c are explained with the same grid-saliency
settings; the table reports what each model predicts inside R, how well the kept context
preserves it, how much context it needs (the salient context share, :func:`gsal_tf.metrics.cbd`:
the mean saliency over the context pixels), and how far the models agree on *which* context matters:

- ``top_cell_iou(a, b, fraction)``: IoU of the top ``fraction`` of grid cells of two grids
  (by value, ties broken by position; NaN when a grid is constant, e.g. a model that keeps no
  context at all, since it then has no top cells);
- ``rank_correlation(a, b)``: Spearman's ρ between two grids' cell values (Pearson correlation
  of their average ranks; NaN when a grid is constant).
"""

from __future__ import annotations

from itertools import combinations
from typing import Mapping

import numpy as np

from gsal_tf import metrics
from gsal_tf.requests import label_map, predicted_class
from gsal_tf.saliency import GridSaliency

__all__ = ["top_cell_iou", "rank_correlation", "compare_models"]


def top_cell_iou(a: np.ndarray, b: np.ndarray, fraction: float = 0.2) -> float:
    """IoU of the ``ceil(fraction * cells)`` highest cells of grids ``a`` and ``b`` (same shape); NaN if one is constant."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if a.min() == a.max() or b.min() == b.max():
        return float("nan")
    k = max(1, int(np.ceil(fraction * a.size)))
    top_a = set(np.argsort(-a, kind="stable")[:k].tolist())
    top_b = set(np.argsort(-b, kind="stable")[:k].tolist())
    return len(top_a & top_b) / len(top_a | top_b)


def _average_ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    for value in np.unique(x):  # ties share their mean rank
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's ρ of two grids' cell values; NaN if either grid is constant."""
    ra = _average_ranks(np.asarray(a, np.float64).ravel())
    rb = _average_ranks(np.asarray(b, np.float64).ravel())
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def compare_models(models: Mapping[str, object], image: np.ndarray, request: np.ndarray, class_id: int, grid_options: Mapping | None = None, top_fraction: float = 0.2) -> dict:
    """Explain ``request``/``class_id`` on ``image`` (H,W,C) with every model.

    Returns ``{"models": {name: {...}}, "agreement": [{a, b, top_cell_iou, rank_correlation}],
    "saliency": {name: (H,W)}, "prediction": {name: (H,W) labels}}``.
    """
    per_model, saliency, prediction, grids = {}, {}, {}, {}
    for name, model in models.items():
        explainer = GridSaliency(model, **dict(grid_options or {}))
        labels = label_map(explainer.predict(image[None])[0])
        result = explainer.explain(image[None], request[None], [class_id])
        inside = labels[request > 0.5]
        predicted = predicted_class(labels, request)
        per_model[name] = {
            "predicted_class_in_request": predicted,
            "predicted_share": float((inside == predicted).mean()),
            "class_share": float((inside == class_id).mean()),
            "original_score": float(result.original_score[0]),
            "preserved_score": float(result.preserved_score[0]),
            "no_context_score": float(result.no_context_score[0]),
            "salient_context_share": float(metrics.cbd(result.saliency, request[None])[0]),
            "seconds": float(result.seconds),
        }
        saliency[name], prediction[name], grids[name] = result.saliency[0], labels, result.grid[0]
    agreement = [
        {"a": a, "b": b, "top_cell_iou": top_cell_iou(grids[a], grids[b], top_fraction), "rank_correlation": rank_correlation(grids[a], grids[b])}
        for a, b in combinations(models, 2)
    ]
    return {"models": per_model, "agreement": agreement, "saliency": saliency, "prediction": prediction, "grids": grids}
