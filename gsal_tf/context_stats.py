"""Context statistics over many requests: *on which classes does the salient context lie?*

The dataset-scale reading of grid saliency (Hoyer et al., NeurIPS 2019, arXiv:1907.13054,
section 5, Cityscapes): for every request class × context class, the share of the salient
context that lies on that context class, compared with the share the inflation baseline (the
request grown by dilation to the same amount of context — what "nearby" alone would give,
:func:`gsal_tf.metrics.inflation_baseline`) puts there. A positive difference means the
network's context reaches that class more than proximity explains.

Notation, per request (NumPy, batched over a leading axis N):

- ``S`` saliency (H,W) ≥ 0 (grid saliency in [0,1]; for another explainer its normalised map,
  absolute values for signed maps), ``R`` request (H,W) in {0,1};
- ``L`` context-class map (H,W) int, ``ignore`` where unlabelled; ``U = (1−R)·[L ≠ ignore]``
  the labelled context;
- ``D`` (H,W) Chebyshev distance of every pixel to the request, in pixels (1 next to it; the
  same rings as the square-kernel dilation of the inflation baseline).

Per-request sums (what a results shard stores, :func:`request_sums`)

- ``salient[k] = Σ S·U·[L=k]`` — salient context mass on class k (pixels × saliency);
- ``inflation[k] = Σ ring·U·[L=k]``, ``ring = inflation_baseline(R, Σ S·(1−R))``;
- ``context_pixels[k] = Σ U·[L=k]`` (pixels);
- ``salient_by_distance[b] = Σ S·(1−R)·[D ∈ bin b]``, ``pixels_by_distance[b] = Σ (1−R)·[D ∈ bin b]``,
  bin b = ``(edges[b], edges[b+1]]`` pixels (:data:`DISTANCE_EDGES`);
- ``salient_mass = Σ S·(1−R)`` and ``context_area = Σ (1−R)`` (pixels; ignore pixels included).

Aggregates over requests of request class c (:func:`aggregate`)

- ``share[c,k] = mean_i salient_i[k] / Σ_k' salient_i[k']`` — each request weighs the same;
  requests without salient labelled context (0/0) are left out and counted (``empty[c]``);
- ``inflation_share[c,k]`` the same with ``inflation``, over the same requests;
  ``difference = share − inflation_share`` (each row of both sums to 1, so a row of the
  difference sums to 0);
- ``mean_size[c] = mean_i salient_mass_i`` (pixels) and ``mean_fraction[c] = mean_i
  salient_mass_i / context_area_i`` (the CBD of :func:`gsal_tf.metrics.cbd`);
- ``profile[c,b] = Σ_i salient_by_distance_i[b] / Σ_i pixels_by_distance_i[b]`` — the mean
  saliency of context pixels at that distance (pixel-weighted; NaN for a bin no pixel reaches);
- ``area_like[c]`` — the requests whose salient context is spread over the context classes like
  the classes' areas: ``area_distance_i = ½ Σ_k |salient_i[k]/Σ salient_i − context_pixels_i[k]/Σ
  context_pixels_i| < AREA_LIKE_DISTANCE`` (0.05). A uniform mask has distance 0: it says which
  classes are large, not which the prediction reads. Grid saliency ends so when its optimisation
  never left its uniform start (on 513×513 photos with the defaults of gsal-tf 0.2.0+, a quarter to
  a third of the CamVid requests with any salient context, docs/camvid.md); their shares
  are the classes' areas, and a reader should weigh a row by how many of its requests are not
  area-like.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import cv2
import numpy as np

from gsal_tf import metrics
from gsal_tf.errors import GsalInputError

__all__ = [
    "DISTANCE_EDGES", "SUM_FIELDS", "distance_to_request", "request_sums", "ContextStats",
    "per_request_shares", "area_distance", "AREA_LIKE_DISTANCE", "aggregate",
]

#: Below this total-variation distance between a request's salient-context shares and its context
#: classes' area shares the request counts as area-like (module docstring): the distance of a mask
#: that is uniform except for a few cells. Set at the trough of the measured distances: of the 901
#: CamVid class-zone requests with salient context in ``benchmarks/results/camvid/full-test``
#: (171 frames), 153 lie below 0.01 (the uniform masks), 22, 23, 16 and 10 in the next four
#: hundredths, and the counts rise again from 0.05 (45 in [0.05, 0.075)).
AREA_LIKE_DISTANCE = 0.05

#: Distance bins (pixels, Chebyshev distance to the request): (0,1], (1,2], (2,4], ... (256, inf).
DISTANCE_EDGES = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, np.inf)

SUM_FIELDS = ("salient", "inflation", "context_pixels", "salient_by_distance", "pixels_by_distance", "salient_mass", "context_area")


def distance_to_request(request: np.ndarray) -> np.ndarray:
    """(H,W) float32 Chebyshev distance (pixels) of each pixel to the nearest request pixel; 0 inside.

    Without any request pixel, every distance is +inf.
    """
    outside = (np.asarray(request) < 0.5).astype(np.uint8)
    if outside.all():
        return np.full(outside.shape, np.inf, np.float32)
    return cv2.distanceTransform(outside, cv2.DIST_C, 3).astype(np.float32)


def request_sums(saliency, requests, context, num_context: int, ignore_label: Optional[int] = None,
                 edges: Sequence[float] = DISTANCE_EDGES) -> dict:
    """The per-request sums of the module docstring for N requests.

    Parameters
    ----------
    saliency : (N,H,W) ≥ 0, finite.
    requests : (N,H,W) in {0,1}.
    context : (N,H,W) int context-class ids in 0..num_context-1, or ``ignore_label``.
    num_context : int, Kc.

    Returns
    -------
    dict of float64 arrays: salient, inflation, context_pixels (N,Kc); salient_by_distance,
    pixels_by_distance (N,B) with B = len(edges) − 1; salient_mass, context_area (N,).
    """
    s = np.asarray(saliency, np.float64)
    r = np.asarray(requests, np.float64)
    labels = np.asarray(context)
    if s.ndim != 3 or r.shape != s.shape or labels.shape != s.shape:
        raise GsalInputError(f"saliency {s.shape}, requests {r.shape} and context {labels.shape} must all be (N,H,W)")
    if not np.all(np.isfinite(s)) or s.min(initial=0) < 0:
        raise GsalInputError("saliency must be finite and >= 0 (take absolute values of a signed map)")
    if not np.all((r == 0) | (r == 1)):
        raise GsalInputError("requests must hold only 0 and 1")
    valid = labels != ignore_label if ignore_label is not None else np.ones(labels.shape, bool)
    if np.any(valid & ((labels < 0) | (labels >= num_context))):
        bad = np.unique(labels[valid & ((labels < 0) | (labels >= num_context))])[:5].tolist()
        raise GsalInputError(f"context class ids {bad} are outside 0..{num_context - 1}")
    n = len(s)
    context_mask = 1.0 - r
    salient_ctx = s * context_mask
    mass = salient_ctx.sum(axis=(1, 2))
    rings = metrics.inflation_baseline(r, mass) if n else np.zeros_like(r)
    ids = np.where(valid, labels, 0).astype(np.int64)
    used = context_mask * valid
    bins = len(edges) - 1
    out = {key: np.zeros((n, num_context)) for key in ("salient", "inflation", "context_pixels")}
    out["salient_by_distance"] = np.zeros((n, bins))
    out["pixels_by_distance"] = np.zeros((n, bins))
    for i in range(n):
        flat = ids[i].ravel()
        out["salient"][i] = np.bincount(flat, (salient_ctx[i] * used[i]).ravel(), num_context)
        out["inflation"][i] = np.bincount(flat, (rings[i] * used[i]).ravel(), num_context)
        out["context_pixels"][i] = np.bincount(flat, used[i].ravel(), num_context)
        distance = distance_to_request(r[i])
        which = np.clip(np.searchsorted(np.asarray(edges, np.float64), distance, side="left") - 1, 0, bins - 1).ravel()
        out["salient_by_distance"][i] = np.bincount(which, salient_ctx[i].ravel(), bins)
        out["pixels_by_distance"][i] = np.bincount(which, context_mask[i].ravel(), bins)
    out["salient_mass"] = mass
    out["context_area"] = context_mask.sum(axis=(1, 2))
    return out


@dataclasses.dataclass
class ContextStats:
    """Aggregated context statistics (module docstring), rows = request classes ``classes``.

    Attributes
    ----------
    classes : (C,) int — the request classes, in increasing order.
    count : (C,) int — requests of each class; ``empty`` (C,) those without salient labelled context.
    share, inflation_share, difference : (C,Kc) float64.
    mean_size : (C,) float64 pixels; mean_fraction : (C,) float64.
    profile : (C,B) float64; edges : the distance bin edges (pixels).
    area_like : (C,) int — requests whose salient context is spread like the context classes'
        areas (:func:`area_distance` < :data:`AREA_LIKE_DISTANCE`).
    """

    classes: np.ndarray
    count: np.ndarray
    empty: np.ndarray
    share: np.ndarray
    inflation_share: np.ndarray
    difference: np.ndarray
    mean_size: np.ndarray
    mean_fraction: np.ndarray
    profile: np.ndarray
    edges: tuple
    area_like: Optional[np.ndarray] = None

    @property
    def with_context(self) -> np.ndarray:
        """(C,) int — the requests that kept salient labelled context (``count − empty``): the
        ones the shares are means over."""
        return np.asarray(self.count) - np.asarray(self.empty)


def per_request_shares(sums: np.ndarray) -> np.ndarray:
    """(N,Kc) sums -> (N,Kc) shares ``sums / row total``; rows with total 0 are NaN."""
    sums = np.asarray(sums, np.float64)
    total = sums.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, sums / np.where(total > 0, total, 1.0), np.nan)


def area_distance(salient, context_pixels) -> np.ndarray:
    """(N,) total-variation distance ``½ Σ_k |s_k/Σs − a_k/Σa|`` between each request's salient
    context shares ``s = salient`` (N,Kc) and its labelled context's area shares ``a =
    context_pixels`` (N,Kc); in [0, 1], 0 for a uniform mask. NaN where a request has no salient
    labelled context or no labelled context."""
    return 0.5 * np.abs(per_request_shares(salient) - per_request_shares(context_pixels)).sum(axis=1)


def aggregate(request_classes, sums: dict, edges: Sequence[float] = DISTANCE_EDGES) -> ContextStats:
    """The per-class statistics (module docstring) of N requests with classes ``request_classes``
    (N,) and per-request ``sums`` (the dict of :func:`request_sums`, rows aligned)."""
    classes_all = np.asarray(request_classes, np.int64)
    classes = np.unique(classes_all)
    shares = per_request_shares(sums["salient"])
    inflation = per_request_shares(sums["inflation"])
    kc = shares.shape[1] if shares.ndim == 2 else 0
    bins = np.asarray(sums["salient_by_distance"]).shape[1]
    rows = len(classes)
    result = ContextStats(classes, np.zeros(rows, np.int64), np.zeros(rows, np.int64), np.full((rows, kc), np.nan),
                          np.full((rows, kc), np.nan), np.full((rows, kc), np.nan), np.full(rows, np.nan), np.full(rows, np.nan),
                          np.full((rows, bins), np.nan), tuple(float(e) for e in edges))
    result.area_like = np.zeros(rows, np.int64)
    with np.errstate(invalid="ignore"):
        area_like = area_distance(sums["salient"], sums["context_pixels"]) < AREA_LIKE_DISTANCE  # NaN: not area-like
    mass = np.asarray(sums["salient_mass"], np.float64)
    area = np.asarray(sums["context_area"], np.float64)
    for row, c in enumerate(classes):
        mine = classes_all == c
        named = mine & ~np.isnan(shares).any(axis=1)
        result.count[row] = int(mine.sum())
        result.area_like[row] = int((mine & area_like).sum())
        result.empty[row] = int(mine.sum() - named.sum())
        if named.any():
            result.share[row] = shares[named].mean(axis=0)
            result.inflation_share[row] = np.nan_to_num(inflation[named]).mean(axis=0)
            result.difference[row] = result.share[row] - result.inflation_share[row]
        result.mean_size[row] = mass[mine].mean()
        with np.errstate(invalid="ignore", divide="ignore"):
            result.mean_fraction[row] = np.nanmean(np.where(area[mine] > 0, mass[mine] / np.maximum(area[mine], 1), np.nan)) if (area[mine] > 0).any() else np.nan
            salient = np.asarray(sums["salient_by_distance"])[mine].sum(axis=0)
            pixels = np.asarray(sums["pixels_by_distance"])[mine].sum(axis=0)
            result.profile[row] = np.where(pixels > 0, salient / np.maximum(pixels, 1), np.nan)
    return result
