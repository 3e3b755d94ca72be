"""Benchmark metrics of the paper: segmentation IoU and the two context-bias statistics.

Hoyer et al., *Grid Saliency for Context Explanations of Semantic Segmentation*, NeurIPS 2019
(arXiv:1907.13054), section 4 (TextureMNIST).

Notation, per request (every function is batched over a leading axis N, NumPy only):

- ``S`` saliency (H,W) in [0,1] — from any explainer (grid saliency, gradients, ...);
- ``R`` request mask (H,W) in {0,1} — the pixels whose prediction is explained (the digit);
  ``1 − R`` is the *context*;
- ``B`` biased-tile mask (H,W) in {0,1} — the context pixels that carry the bias texture.

Segmentation
    confusion ``C[i, j]`` = number of pixels of true class i predicted as class j;
    ``IoU_k = C[k,k] / (sum_j C[k,j] + sum_i C[i,k] − C[k,k])``  (TP / (TP + FN + FP));
    ``mIoU = mean_k IoU_k`` over the classes present in labels or predictions.

Context bias detection (CBD) — salient context / context
    ``CBD = sum(S∘(1−R)) / sum(1−R)``: the mean saliency over context pixels. A network that
    uses context gets a high CBD; it is compared between biased and unbiased digits
    (:func:`cbd_by_class`, :func:`cbd_matrix`).

Context bias localisation (CBL) — biased salient context / salient context
    ``CBL = sum(S∘(1−R)∘B) / sum(S∘(1−R))``: the share of the salient context that lies on the
    biased tile. NaN when there is no salient context (``sum(S∘(1−R)) = 0``), since no location
    was named. With two equal tiles a saliency that ignores the bias scores 0.5 on average
    (chance). Aggregate with ``np.nanmean`` and report how many requests were NaN
    (``np.isnan(values).sum()``): dropping them silently hides explainers that often return
    empty masks.

Inflation baseline
    The request mask dilated step by step (``cv2.dilate``, 3×3 square kernel by default: after
    k steps it reaches every pixel within Chebyshev distance k of R; ``kernel="cross"`` gives
    city-block distance) until the ring ``dilate_k(R) − R`` covers at least the saliency's
    context mass ``sum(S∘(1−R))`` pixels. Its CBL (:func:`inflation_cbl`) is what a "saliency"
    that only knows where the object is would score: the paper's reference for CBL.

Example
-------
>>> from gsal_tf import metrics
>>> conf = metrics.confusion_matrix(pred, labels, num_classes=11)
>>> metrics.iou_per_class(conf), metrics.mean_iou(conf)
>>> metrics.cbd(result.saliency, digit_masks)                          # (N,)
>>> np.nanmean(metrics.cbl(result.saliency, digit_masks, biased_tile_masks))
>>> np.nanmean(metrics.inflation_cbl(digit_masks, biased_tile_masks, result.saliency))
"""

from __future__ import annotations

from typing import Mapping

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = [
    "KERNELS", "confusion_matrix", "iou_per_class", "mean_iou", "cbd", "cbl", "context_area",
    "per_class_mean", "cbd_by_class", "cbd_matrix", "inflation_baseline", "inflation_cbl",
]

KERNELS = ("square", "cross")


# -- segmentation ---------------------------------------------------------------------------


def confusion_matrix(pred, labels, num_classes: int, ignore_label: int | None = None) -> np.ndarray:
    """Pixel confusion matrix (K,K) int64: rows are true classes, columns predicted classes.

    Parameters
    ----------
    pred, labels : int arrays of the same shape (any, e.g. (N,H,W)); predicted and true class ids.
    num_classes : int
        K; every id must be in 0..K-1.
    ignore_label : int, optional
        Label value whose pixels are not counted (e.g. 255 for "void").
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise GsalInputError(f"num_classes must be a positive int, got {num_classes!r}")
    pred = np.asarray(pred)
    labels = np.asarray(labels)
    if pred.shape != labels.shape:
        raise GsalInputError(f"pred {pred.shape} and labels {labels.shape} must have the same shape")
    for name, arr in (("pred", pred), ("labels", labels)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise GsalInputError(f"{name} must hold integer class ids, got {arr.dtype}")
    pred = pred.reshape(-1).astype(np.int64)
    labels = labels.reshape(-1).astype(np.int64)
    if ignore_label is not None:
        keep = labels != ignore_label
        pred, labels = pred[keep], labels[keep]
    for name, arr in (("pred", pred), ("labels", labels)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise GsalInputError(f"{name} holds ids outside 0..{num_classes - 1}: [{arr.min()}, {arr.max()}]")
    flat = np.bincount(labels * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def iou_per_class(confusion) -> np.ndarray:
    """IoU (K,) float64 from a confusion matrix (K,K): TP / (TP + FP + FN).

    NaN for a class absent from both labels and predictions (0/0): it has no IoU.
    """
    conf = _check_confusion(confusion)
    tp = np.diag(conf)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def mean_iou(confusion) -> float:
    """Mean IoU over the classes that have one (NaN entries of :func:`iou_per_class` skipped).

    NaN when no class has an IoU (an empty confusion matrix).
    """
    iou = iou_per_class(confusion)
    valid = ~np.isnan(iou)
    return float(iou[valid].mean()) if valid.any() else float("nan")


# -- context bias ---------------------------------------------------------------------------


def cbd(saliency, requests) -> np.ndarray:
    """Context bias detection (N,) float64: ``sum(S∘(1−R)) / sum(1−R)``, mean saliency over context.

    Parameters
    ----------
    saliency : (N,H,W) in [0,1].
    requests : (N,H,W) in {0,1}; 1 marks the request (object), 0 its context.

    Returns
    -------
    (N,) float64 — NaN for a request that covers the whole image (no context).
    """
    s, r = _check_maps(saliency, requests)
    context = 1.0 - r
    area = context.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(area > 0, (s * context).sum(axis=(1, 2)) / np.maximum(area, 1), np.nan)


def cbl(saliency, requests, biased_tile_masks) -> np.ndarray:
    """Context bias localisation (N,) float64: ``sum(S∘(1−R)∘B) / sum(S∘(1−R))``.

    Parameters
    ----------
    saliency : (N,H,W) in [0,1].
    requests : (N,H,W) in {0,1}.
    biased_tile_masks : (N,H,W) in {0,1}; 1 on the biased tile.

    Returns
    -------
    (N,) float64 — NaN where the saliency has no context mass (``sum(S∘(1−R)) = 0``); aggregate
    with ``np.nanmean`` and report the NaN count (see the module docstring).
    """
    s, r, b = _check_maps(saliency, requests, biased_tile_masks)
    salient_context = s * (1.0 - r)
    total = salient_context.sum(axis=(1, 2))
    biased = (salient_context * b).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, biased / np.where(total > 0, total, 1.0), np.nan)


def context_area(saliency, requests) -> np.ndarray:
    """Salient context mass (N,) float64: ``sum(S∘(1−R))`` in pixels — the inflation target."""
    s, r = _check_maps(saliency, requests)
    return (s * (1.0 - r)).sum(axis=(1, 2))


def per_class_mean(values, class_ids, num_classes: int = 10) -> np.ndarray:
    """Mean of ``values`` (N,) per class id (N,) -> (num_classes,) float64.

    NaN values are skipped; NaN for a class with no finite value.
    """
    values = np.asarray(values, np.float64)
    ids = np.asarray(class_ids)
    if values.ndim != 1 or ids.shape != values.shape:
        raise GsalInputError(f"values {values.shape} and class ids {ids.shape} must both be (N,)")
    if not np.issubdtype(ids.dtype, np.integer):
        raise GsalInputError(f"class ids must be integers, got {ids.dtype}")
    if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise GsalInputError(f"class ids must be in 0..{num_classes - 1}, got [{ids.min()}, {ids.max()}]")
    finite = np.isfinite(values)
    sums = np.bincount(ids[finite], weights=values[finite], minlength=num_classes)
    counts = np.bincount(ids[finite], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def cbd_by_class(cbd_values, digits, num_classes: int = 10) -> np.ndarray:
    """Mean CBD (num_classes,) per evaluated digit (N,); NaN for digits with no sample."""
    return per_class_mean(cbd_values, digits, num_classes)


def cbd_matrix(per_model: Mapping[int, tuple], num_classes: int = 10) -> np.ndarray:
    """The paper's CBD matrix (num_classes, num_classes): bias digit of the model × evaluated digit.

    Parameters
    ----------
    per_model : {bias_digit: (cbd_values (N,), evaluated_digits (N,))}
        One entry per model, keyed by the digit it was biased towards.

    Returns
    -------
    (num_classes, num_classes) float64 — row ``b`` is :func:`cbd_by_class` of the model biased
    to digit ``b``; rows without a model, and digits a model was not evaluated on, are NaN. A
    context bias shows as a high diagonal.
    """
    matrix = np.full((num_classes, num_classes), np.nan)
    for bias_digit, (values, digits) in per_model.items():
        if not 0 <= int(bias_digit) < num_classes:
            raise GsalInputError(f"bias digit {bias_digit} is outside 0..{num_classes - 1}")
        matrix[int(bias_digit)] = cbd_by_class(values, digits, num_classes)
    return matrix


# -- inflation baseline ---------------------------------------------------------------------


def inflation_baseline(requests, target_context_area, kernel: str = "square") -> np.ndarray:
    """Context rings (N,H,W) float32 in {0,1}: the request dilated until its ring covers the target.

    Parameters
    ----------
    requests : (N,H,W) in {0,1}.
    target_context_area : (N,) pixels, >= 0 (e.g. :func:`context_area` of a saliency).
    kernel : "square" or "cross", default "square"
        3×3 structuring element of each ``cv2.dilate`` step: 8-neighbourhood (Chebyshev rings)
        or 4-neighbourhood (city-block rings).

    Returns
    -------
    (N,H,W) float32 — for each request, the ring ``dilate_k(R) − R`` for the smallest number of
    steps k >= 0 whose ring area is >= the target. A target of 0 gives an empty ring; a target
    larger than the whole context gives the whole context (dilation stops when the mask no
    longer grows).
    """
    if kernel not in KERNELS:
        raise GsalInputError(f"kernel must be one of {', '.join(map(repr, KERNELS))}; got {kernel!r}")
    (r,) = _check_maps(requests, names=("requests",), binary=(True,))
    target = np.asarray(target_context_area, np.float64)
    if target.ndim == 0:
        target = np.full(len(r), float(target))
    if target.shape != (len(r),) or not np.all(np.isfinite(target)) or np.any(target < 0):
        raise GsalInputError(f"target_context_area must be N={len(r)} finite values >= 0, got shape {target.shape}")
    shape = cv2.MORPH_RECT if kernel == "square" else cv2.MORPH_CROSS
    element = cv2.getStructuringElement(shape, (3, 3))
    rings = np.zeros(r.shape, np.float32)
    for i, (request, goal) in enumerate(zip(r.astype(np.uint8), target)):
        grown = request
        area = 0
        while area < goal:
            bigger = cv2.dilate(grown, element)
            if np.array_equal(bigger, grown):  # reached the whole image (or an empty request)
                break
            grown = bigger
            area = int(grown.sum()) - int(request.sum())
        rings[i] = grown - request
    return rings


def inflation_cbl(requests, biased_tile_masks, saliency, kernel: str = "square") -> np.ndarray:
    """CBL (N,) of the inflation baseline matched to ``saliency``'s context mass.

    ``cbl(ring, R, B)`` with ``ring = inflation_baseline(R, sum(S∘(1−R)), kernel)``. NaN where the
    saliency has no context mass (the ring is empty), like :func:`cbl`.
    """
    s, r, b = _check_maps(saliency, requests, biased_tile_masks)
    rings = inflation_baseline(r, context_area(s, r), kernel=kernel)
    return cbl(rings, r, b)


# -- checks ---------------------------------------------------------------------------------


def _check_maps(*maps, names=("saliency", "requests", "biased_tile_masks"), binary=(False, True, True)):
    """(N,H,W) maps of one shape -> float64 arrays; saliency in [0,1], masks in {0,1}."""
    out = []
    for arr, name, is_binary in zip(maps, names, binary):
        arr = np.asarray(arr)
        if arr.ndim == 4 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim != 3:
            raise GsalInputError(f"{name} must have shape (N,H,W), got {arr.shape}")
        if out and arr.shape != out[0].shape:
            raise GsalInputError(f"{name} has shape {arr.shape}; it must match {names[0]} {out[0].shape}")
        arr = arr.astype(np.float64)
        if is_binary and not np.all((arr == 0) | (arr == 1)):
            raise GsalInputError(f"{name} must hold only 0 and 1")
        if not is_binary and not (np.all(np.isfinite(arr)) and arr.min(initial=0) >= 0 and arr.max(initial=0) <= 1):
            raise GsalInputError(f"{name} must hold finite values in [0, 1] (normalise it first)")
        out.append(arr)
    return out


def _check_confusion(confusion) -> np.ndarray:
    conf = np.asarray(confusion)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise GsalInputError(f"the confusion matrix must be square (K,K), got {conf.shape}")
    if not np.all(np.isfinite(conf)) or np.any(conf < 0):
        raise GsalInputError("the confusion matrix must hold finite counts >= 0")
    return conf.astype(np.float64)
