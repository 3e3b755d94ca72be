"""The paper's TextureMNIST bias evaluation (Hoyer et al., NeurIPS 2019, section 4).

Three questions about a network trained with a context bias (the bias digit always on the bias
texture, in one background tile):

1. Has the network picked up the bias? Per-digit IoU on the *unbiased* test set, against the
   unbiased network of the same backbone (:func:`iou_comparison`): the bias digit's IoU drops
   when its texture cue is missing.
   A paired test is more sensitive (:func:`bias_reliance`): the same test digits textured without
   and with the bias texture; the share of the bias digit's pixels called that digit rises with
   the texture only if the network reads it.
2. Does an explanation *detect* it? CBD, the mean saliency over the context of each digit's
   ground-truth mask (:func:`bias_statistics`): high on the bias digit, near zero elsewhere.
3. Does it *localise* it? CBL, the share of the context saliency on the biased tile, over biased
   samples of the bias digit (two tiles: chance 0.5), beside the inflation baseline (the request
   dilated to the same context area).

Requests are the digit's ground-truth mask, class = the digit; context = every other pixel.
Every explainer with ``explain(images, request_masks, class_ids) -> .saliency`` fits.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping

import numpy as np

from gsal_tf import metrics
from gsal_tf.benchmark.classes import NUM_CLASSES, NUM_DIGITS
from gsal_tf.benchmark.journal import Journal, unit_key
from gsal_tf.benchmark.tuning_space import SOURCE_DEFAULT, tuned_keys
from gsal_tf.config import keyword_options
from gsal_tf.errors import GsalInputError
from gsal_tf.methods import METHODS, make_explainer, method_name
from gsal_tf.saliency import GridSaliency

__all__ = [
    "predicted_labels", "segmentation_confusion", "segmentation_iou", "iou_comparison", "bias_reliance",
    "select_requests", "bias_statistics", "EvaluationSettings", "settings_record",
]


def predicted_labels(model, images: np.ndarray, batch_size: int = 64):
    """Yield ``(start, labels)`` per batch: ``model``'s argmax class (B,H,W) of images[start:start+B]."""
    for lo in range(0, len(images), batch_size):
        yield lo, np.asarray(model(images[lo:lo + batch_size], training=False)).argmax(-1)


def segmentation_confusion(model, images: np.ndarray, segmentation: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Confusion matrix (11,11) of ``model``'s argmax on images (N,H,W,C) against labels (N,H,W)."""
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for lo, labels in predicted_labels(model, images, batch_size):
        confusion += metrics.confusion_matrix(labels, segmentation[lo:lo + len(labels)], NUM_CLASSES)
    return confusion


def segmentation_iou(model, images: np.ndarray, segmentation: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Per-class IoU (11,) of ``model`` on images (N,H,W,C) with labels (N,H,W); NaN if absent."""
    return metrics.iou_per_class(segmentation_confusion(model, images, segmentation, batch_size))


def iou_comparison(model, reference, samples: Mapping[str, np.ndarray], bias_digit: int | None) -> dict:
    """Per-class IoU of ``model`` and ``reference`` on the same (unbiased) samples, and the drop.

    Returns lists (11,) ``iou``, ``reference_iou``, ``drop`` (reference − model), the mean IoUs,
    and for a bias digit: ``bias_digit_drop`` and ``other_digits_mean_drop``.
    """
    seg = samples["segmentation"].astype(np.int64)
    iou = segmentation_iou(model, samples["image"], seg)
    ref = segmentation_iou(reference, samples["image"], seg) if reference is not None else np.full(NUM_CLASSES, np.nan)
    drop = ref - iou
    out = {
        "iou": _list(iou),
        "reference_iou": _list(ref),
        "drop": _list(drop),
        "mean_iou": _nanmean(iou),
        "reference_mean_iou": _nanmean(ref),
    }
    if bias_digit is not None:
        others = [d for d in range(NUM_DIGITS) if d != bias_digit]
        out["bias_digit_iou"] = float(iou[bias_digit])
        out["bias_digit_drop"] = float(drop[bias_digit])
        out["other_digits_mean_drop"] = _nanmean(drop[others])
    return out


def bias_reliance(model, without: Mapping[str, np.ndarray], with_bias: Mapping[str, np.ndarray], bias_digit: int,
                  batch_size: int = 64) -> dict:
    """How much the network's bias digit depends on the bias texture: a paired test.

    ``without`` and ``with_bias`` are the same test digits (same ``digit`` arrays, e.g. the test
    splits of the unbiased and the strongly biased config, which share ``test_seed``), textured
    at random and with the bias texture in one tile. On the samples of ``bias_digit``, with
    D_i the digit mask of sample i and y_i(p) the predicted class at pixel p::

        called = sum_i sum_{p in D_i} [y_i(p) == bias_digit] / sum_i |D_i|

    Returns ``called_without``, ``called_with`` (both in [0, 1]), ``gain`` (with − without; about
    zero for a network that ignores the texture) and ``samples``.
    """
    if not np.array_equal(without["digit"], with_bias["digit"]):
        raise GsalInputError("bias_reliance needs the same digits in both sample sets (same test_seed and size)")
    keep = np.flatnonzero(without["digit"] == bias_digit)
    if keep.size == 0:
        raise GsalInputError(f"no sample of digit {bias_digit} to measure")

    def called(samples) -> float:
        mask = samples["digit_mask"][keep] > 0.5
        hits = sum(float(((labels == bias_digit) & mask[lo:lo + len(labels)]).sum())
                   for lo, labels in predicted_labels(model, samples["image"][keep], batch_size))
        return hits / float(mask.sum())

    a, b = called(without), called(with_bias)
    return {"called_without": a, "called_with": b, "gain": b - a, "samples": int(keep.size)}


def select_requests(samples: Mapping[str, np.ndarray], per_digit: int, bias_digit: int | None, biased: int) -> np.ndarray:
    """Indices of the evaluated samples: the first ``per_digit`` of each digit, plus up to
    ``biased`` biased samples of the bias digit (for CBL). Sorted, without repeats."""
    digits = samples["digit"]
    chosen = [np.flatnonzero(digits == d)[:per_digit] for d in range(NUM_DIGITS)]
    if bias_digit is not None:
        chosen.append(np.flatnonzero((digits == bias_digit) & samples["is_biased"])[:biased])
    return np.unique(np.concatenate(chosen))


def bias_statistics(
    explainers: Mapping[str, object],
    samples: Mapping[str, np.ndarray],
    bias_digit: int | None,
    per_digit: int | None = None,
    biased: int | None = None,
    on_method: Callable[[str, int], None] | None = None,
    journal=None,
) -> dict:
    """CBD per digit and CBL on the bias digit, for every explainer on the same requests.

    Parameters
    ----------
    explainers : name -> explainer (``GridSaliency``, ``VanillaGradients``, ...).
    samples : a TextureMNIST sample dict (image, digit_mask, digit, is_biased, biased_tile_mask).
    bias_digit : the model's bias digit, or None for an unbiased model (no CBL).
    per_digit : requests per digit for CBD (default :attr:`EvaluationSettings.per_digit`).
    biased : biased requests of the bias digit for CBL (default :attr:`EvaluationSettings.biased`).
    on_method : called with (method name, number of requests) before each method runs.
    journal : optional path of a :class:`gsal_tf.benchmark.journal.Journal`: each method's row is
        recorded there once computed, and a method already recorded (same parameters, requests and
        images) is not run again — an interrupted evaluation resumes.

    Returns
    -------
    dict with ``requests`` (the sample indices) and per method: ``cbd_by_digit`` (10,),
    ``cbd_bias_digit``, ``cbd_other_digits`` (mean over the other digits), ``cbd_ratio``
    (bias / others), ``cbl_mean``, ``cbl_std``, ``cbl_n``, ``cbl_nan`` (requests with no salient
    context), ``inflation_cbl_mean`` — and ``seconds``.
    """
    defaults = EvaluationSettings()
    per_digit = defaults.per_digit if per_digit is None else per_digit
    biased = defaults.biased if biased is None else biased
    idx = select_requests(samples, per_digit, bias_digit, biased)
    images = samples["image"][idx]
    requests = samples["digit_mask"][idx].astype(np.float32)
    digits = samples["digit"][idx].astype(np.int32)
    cbl_rows = (digits == bias_digit) & samples["is_biased"][idx] if bias_digit is not None else np.zeros(len(idx), bool)
    report = {"requests": idx.tolist(), "bias_digit": bias_digit, "methods": {}}
    done = Journal(journal)
    for name, explainer in explainers.items():
        key = unit_key(unit="evaluation", method=name, params=explainer.params, requests=idx.tolist(), bias_digit=bias_digit,
                       images=float(images.sum(dtype=np.float64)))
        if (row := done.get(key)) is not None:
            report["methods"][name] = row
            continue
        if on_method:
            on_method(name, len(idx))
        result = explainer.explain(images, requests, digits)
        saliency = np.asarray(result.saliency, np.float32)
        cbd_values = metrics.cbd(saliency, requests)
        by_digit = metrics.cbd_by_class(cbd_values, digits, NUM_DIGITS)
        row = {"cbd_by_digit": _list(by_digit), "seconds": float(result.seconds)}
        if bias_digit is not None:
            others = np.delete(by_digit, bias_digit)
            row["cbd_bias_digit"] = _list(by_digit[bias_digit:bias_digit + 1])[0]
            row["cbd_other_digits"] = _nanmean(others)
            if row["cbd_other_digits"] is not None and np.isfinite(by_digit[bias_digit]):
                row["cbd_ratio"] = float(by_digit[bias_digit] / max(row["cbd_other_digits"], 1e-12))
        if cbl_rows.any():
            cbl = metrics.cbl(saliency[cbl_rows], requests[cbl_rows], samples["biased_tile_mask"][idx][cbl_rows])
            inflation = metrics.inflation_cbl(requests[cbl_rows], samples["biased_tile_mask"][idx][cbl_rows], saliency[cbl_rows])
            row.update(
                cbl_mean=_nanmean(cbl),
                cbl_std=float(np.nanstd(cbl)) if np.isfinite(cbl).any() else None,
                cbl_n=int(np.isfinite(cbl).sum()),
                cbl_nan=int(np.isnan(cbl).sum()),
                inflation_cbl_mean=_nanmean(inflation),
            )
        report["methods"][name] = done.put(key, row)
    return report


def _nanmean(values) -> float | None:
    values = np.asarray(values, np.float64)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def _list(values) -> list:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, np.float64)]


@dataclasses.dataclass
class EvaluationSettings:
    """What an evaluation runs: ``gsal benchmark evaluate`` options and the ``[evaluate]`` table of
    a protocol config.

    Attributes
    ----------
    methods : names of :data:`gsal_tf.methods.METHODS` (old names are accepted), default all.
    per_digit : int, default 20 — requests per digit for CBD.
    biased : int, default 100 — biased requests of the bias digit for CBL.
    batch_size : int, default 32 — requests per graph call, for every method.
    grid_saliency : dict — keyword arguments of :class:`gsal_tf.GridSaliency` (``grid_size``,
        ``iterations``, ``lam``, ...); its defaults otherwise.
    tune : bool, default False — choose every method's setting on held-out samples first, with
        the same budget and rule for all (:mod:`gsal_tf.benchmark.tuning`); otherwise every
        method runs with its defaults. The options tuning chooses (e.g. grid saliency's ``lam``)
        cannot also be fixed in ``grid_saliency``.
    tune_requests : int, default 40 — held-out biased requests each candidate is scored on.
    """

    methods: tuple = METHODS
    per_digit: int = 20
    biased: int = 100
    batch_size: int = 32
    grid_saliency: dict = dataclasses.field(default_factory=dict)
    tune: bool = False
    tune_requests: int = 40

    def __post_init__(self):
        self.methods = tuple(method_name(m) for m in self.methods)
        for name in ("per_digit", "biased", "batch_size", "tune_requests"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name in ("batch_size", "tune_requests") else 0):
                raise GsalInputError(f"{name} must be a non-negative integer (batch_size, tune_requests >= 1), got {value!r}")
        if not isinstance(self.tune, bool):
            raise GsalInputError(f"tune must be true or false, got {self.tune!r}")
        self.grid_saliency = keyword_options(dict(self.grid_saliency), GridSaliency.__init__, "grid saliency options", exclude=("model",))
        if self.tune:
            fixed = sorted(set(self.grid_saliency) & tuned_keys("grid_saliency"))
            if fixed:
                raise GsalInputError(f"grid saliency's {', '.join(fixed)} is chosen by tuning on held-out data; "
                                     "drop it from the options or switch tuning off")

    @classmethod
    def from_table(cls, table: Mapping, where: str) -> "EvaluationSettings":
        """From a TOML ``[evaluate]`` table: the fields above, any other key is a GridSaliency option."""
        own = {f.name for f in dataclasses.fields(cls)} - {"grid_saliency"}
        fields = {k: v for k, v in table.items() if k in own}
        grid = {k: v for k, v in table.items() if k not in own}
        try:
            return cls(**fields, grid_saliency=grid)
        except GsalInputError as exc:
            raise GsalInputError(f"{where}: {exc}") from None

    def options(self, method: str, setting: Mapping | None = None) -> dict:
        """Keyword options of ``method``'s explainer: the batch size, grid saliency's options, then
        ``setting`` (e.g. a tuned one) on top."""
        base = {"batch_size": self.batch_size, **(self.grid_saliency if method == "grid_saliency" else {})}
        return {**base, **(setting or {})}

    def explainers(self, model, chosen: Mapping[str, Mapping] | None = None) -> dict:
        """One explainer per method, by name, for :func:`bias_statistics`; ``chosen`` (method ->
        setting, e.g. :attr:`gsal_tf.benchmark.tuning.TuningResult.chosen`) overrides the defaults."""
        chosen = chosen or {}
        return {m: make_explainer(m, model, **self.options(m, chosen.get(m))) for m in self.methods}


def settings_record(settings: EvaluationSettings, explainers: Mapping[str, object], tuning=None) -> dict:
    """The ``settings`` block of a report: request counts, every method's parameters as used, and
    where each method's setting came from (``sources``: "tuned on held-out", "nothing to tune" or
    "default"; see :mod:`gsal_tf.benchmark.tuning`)."""
    return {
        "per_digit": settings.per_digit,
        "biased": settings.biased,
        "tune": tuning is not None,
        "methods": {name: explainer.params for name, explainer in explainers.items()},
        "sources": {name: tuning.source(name) if tuning is not None else SOURCE_DEFAULT for name in explainers},
    }
