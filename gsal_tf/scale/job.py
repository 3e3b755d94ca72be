"""``explain_dataset``: explain every request of a dataset, in batches across images, into a
resumable results folder (:mod:`gsal_tf.scale.store`) with per-request context statistics
(:mod:`gsal_tf.context_stats`).

Stream. Samples are read in order (:mod:`gsal_tf.datasets`), fitted to the network
(:class:`gsal_tf.loading.Fit`: letterboxed to its fixed input size or ``input_size``), and
turned into requests by a :class:`~gsal_tf.scale.policy.RequestPolicy`. Requests of consecutive
images are packed into batches of the explainer's ``batch_size`` (a batch is closed early only
when the network input shape changes, or at the end); each batch is one explainer call and one
shard. Statistics are computed at the image's resolution (the saliency mapped back by the Fit).

Columns of ``requests/part-*.parquet`` (one row per request):

==========================  =======================================================================
sample_index, sample_key    the sample (position in the stream, file name or index)
request_index               the request's number within its sample (policy order)
zone, zone_class, class_id  the zone kind, its (true or predicted) class, the class explained (with a
                            label mapping: a dataset class, and the network class explained)
request_pixels              pixels of the request at the image resolution
original_score              mean f_c(x) over the request (the network's confidence there)
preserved_score             grid saliency: the same with the kept context, / original (NaN: other methods)
no_context_score            grid saliency: the same without context (NaN: other methods)
salient_mass, context_area  Σ S·(1−R) and Σ (1−R), pixels
salient, inflation,         per context class (lists of Kc floats): salient context mass, inflation
context_pixels              ring at the same mass, labelled context pixels (context_stats)
salient_by_distance,        per distance bin (lists of B floats): saliency mass and context pixels
pixels_by_distance
==========================  =======================================================================

For explainers other than grid saliency the saliency is their normalised map (absolute values
of a signed one), so the shares compare where each method puts its mass.

Resume. A rerun with the same settings continues after the last shard; the batches are packed
identically, so an interrupted and resumed run gives exactly the rows of an uninterrupted one.
A damaged shard found on resume is redone with the ones after it.

Failure. Before a new run writes its card, the samples of its first shard are planned once
(read, labels checked against the label table and the network's classes, requests built), so
bad data fails with nothing written. A start that fails with a GsalError before its first shard
is committed (a full or read-only disk, an explainer error) is removed
(:func:`gsal_tf.scale.store.discard_unstarted`). After that, the committed shards stay and a
rerun of the same settings resumes from them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import platform
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from gsal_tf import context_stats
from gsal_tf._version import __version__
from gsal_tf.datasets.layouts import open_source
from gsal_tf.datasets.sources import PIXEL_SCALE, Source, UnreadableSample
from gsal_tf.errors import GsalError, GsalInputError
from gsal_tf.methods import make_explainer
from gsal_tf.explainer import Explainer
from gsal_tf.pictures import fit_picture, method_takes_grid, picture_grid
from gsal_tf.scale import store
from gsal_tf.scale.engine import make_engine
from gsal_tf.scale.policy import RequestPolicy
from gsal_tf.validation import check_choice, check_int, check_int_pair

__all__ = [
    "ON_ERROR", "Batch", "RunSummary", "DatasetJob", "model_fingerprint", "versions", "explain_dataset",
    "check_first_shard", "load_stats",
]

ON_ERROR = ("skip", "stop")

#: ``progress(samples_done, samples_total or None, requests_done)`` after every committed shard.
Progress = Callable[[int, Optional[int], int], None]


@dataclasses.dataclass
class Batch:
    """Requests packed for one explainer call (model resolution) and what the statistics need."""

    images: np.ndarray
    masks: np.ndarray
    class_ids: np.ndarray
    rows: list  # per request: dict of sample_index, sample_key, request_index, zone, zone_class, class_id
    fits: list
    image_masks: list  # (H,W) bool at the image resolution
    contexts: list  # (H,W) int context map at the image resolution, or None
    next_sample: int
    next_request: int
    skipped: list
    samples_done: int


@dataclasses.dataclass
class RunSummary:
    """What :func:`explain_dataset` did: the folder, counts and the run card."""

    folder: Path
    requests: int
    samples: int
    skipped: list
    seconds: float
    card: dict
    redone: list = dataclasses.field(default_factory=list)  # damaged shards found on resume and redone


class DatasetJob:
    """The three stages an engine runs (:mod:`gsal_tf.scale.engine`); built by :func:`explain_dataset`."""

    def __init__(self, explainer: Explainer, source: Source, policy: RequestPolicy, folder: Path, num_context: int,
                 input_size=None, store_maps: bool = False, on_error: str = "skip", limit: Optional[int] = None,
                 progress: Optional[Progress] = None, edges=context_stats.DISTANCE_EDGES):
        self.explainer, self.source, self.policy, self.folder = explainer, source, policy, Path(folder)
        self.num_context, self.input_size, self.store_maps = num_context, input_size, store_maps
        # Predicted context classes are the network's ids: the data's ignore label is one of them.
        self.context_ignore = None if policy.context_from == "predictions" else source.ignore_label
        self.on_error, self.limit, self.progress, self.edges = on_error, limit, progress, tuple(edges)
        self.requests_done = 0
        self.samples_done = 0
        self.skipped: list = []
        self._classes: Optional[int] = None

    # -- plan -----------------------------------------------------------------------------------

    def _fit(self, image: np.ndarray):
        """(network input (H,W,C), Fit) of a sample's image: the library's picture pipeline
        (:func:`gsal_tf.pictures.fit_picture`), as ``gsal explain`` fits a photo."""
        picture = fit_picture(image, self.explainer.model, self.input_size, pad_value=self.source.grey)
        return picture.network_input, picture.fit

    def plan(self, start: store.ResumePoint):
        """Batches from ``start`` on (see the module docstring)."""
        size = self.explainer.batch_size
        pending: list = []  # (model image, model mask, class, row, fit, image mask, context)
        skipped: list = []
        position = (start.sample, start.request)
        samples_done = start.sample
        stream = self.source.iter_from(start.sample)
        for index, sample in stream:
            if self.limit is not None and index >= self.limit:
                break
            if isinstance(sample, UnreadableSample):
                if self.on_error == "stop":
                    raise GsalInputError(f"sample {index}: {sample} (run with on_error='skip' to skip unreadable samples)")
                skipped.append({"index": index, "key": self._key(index), "error": str(sample)})
                samples_done = index + 1
                continue
            image, fit = self._fit(sample.image)
            if pending and pending[0][0].shape != image.shape:  # one graph call takes one input shape
                yield self._pack(pending, position, skipped, index)
                pending, skipped = [], []
            labels = sample.labels
            if labels is not None:
                self._check_labels(labels, image, sample.key)
            prediction = None
            if self.policy.needs_predictions:
                prediction = fit.to_image(self.explainer.predict(image[None])[0].argmax(-1).astype(np.int32), nearest=True)
            requests = self.policy.requests(labels, prediction, self.source.ignore_label)
            first = start.request if index == start.sample else 0
            context = prediction if self.policy.context_from == "predictions" else sample.context_map
            for j, request in enumerate(requests[first:], start=first):
                row = {"sample_index": index, "sample_key": sample.key, "request_index": j, "zone": request.zone,
                       "zone_class": request.zone_class, "class_id": request.class_id}
                pending.append((image, fit.mask_to_model(request.mask.astype(np.float32)), request.class_id, row, fit, request.mask, context))
                position = (index, j + 1) if j + 1 < len(requests) else (index + 1, 0)
                if len(pending) == size:
                    yield self._pack(pending, position, skipped, index + (j + 1 == len(requests)))
                    pending, skipped = [], []
            samples_done = index + 1
        if pending:
            yield self._pack(pending, position, skipped, samples_done)
        elif skipped:
            self.skipped.extend(skipped)

    def _pack(self, pending, position, skipped, samples_done) -> Batch:
        shapes = {p[0].shape for p in pending}
        if len(shapes) > 1:
            raise GsalInputError(f"images of one run must fit one network input size; got {sorted(shapes)}: give input_size (--input-size H,W)")
        return Batch(np.stack([p[0] for p in pending]), np.stack([p[1] for p in pending]), np.array([p[2] for p in pending], np.int32),
                     [p[3] for p in pending], [p[4] for p in pending], [p[5] for p in pending], [p[6] for p in pending],
                     position[0], position[1], skipped, samples_done)

    def _key(self, index: int) -> str:
        files = getattr(self.source, "files", None)
        return files[index].name if files is not None else str(index)

    def _check_labels(self, labels: np.ndarray, image: np.ndarray, key: str) -> None:
        mapping = self.policy.mapping  # labels are the mapping's dataset classes, else the network's
        if self._classes is None:
            self._classes = len(mapping.dataset_classes) if mapping is not None else self.explainer.num_classes(image[None])
        ignore = self.source.ignore_label
        bad = (labels >= self._classes) | (labels < 0)
        if ignore is not None:
            bad &= labels != ignore
        if bad.any():
            values = np.unique(labels[bad])[:5].tolist()
            classes = "the network's classes" if mapping is None else f"the {mapping.dataset_set} classes of mapping {mapping.name}"
            raise GsalInputError(f"labels of {key} hold ids {values} outside {classes} 0..{self._classes - 1}"
                                 f"{'' if ignore is None else f' and the ignore label {ignore}'}; give the label table of the data")

    # -- explain --------------------------------------------------------------------------------

    def explain(self, batch: Batch):
        return self.explainer.explain(batch.images, batch.masks, batch.class_ids)

    # -- commit ---------------------------------------------------------------------------------

    def commit(self, shard: int, batch: Batch, result) -> None:
        n = len(batch.rows)
        columns: dict = {key: [row[key] for row in batch.rows] for key in batch.rows[0]}
        columns["request_pixels"] = [int(m.sum()) for m in batch.image_masks]
        for name in ("original_score", "preserved_score", "no_context_score"):
            value = getattr(result, name, None)
            columns[name] = np.asarray(value, np.float64).tolist() if value is not None else [float("nan")] * n
        sums = {key: [] for key in context_stats.SUM_FIELDS}
        saliency_maps = []
        for i in range(n):
            saliency = np.abs(batch.fits[i].to_image(result.saliency[i]))
            saliency_maps.append(saliency)
            mask = batch.image_masks[i].astype(np.float64)
            context = batch.contexts[i]
            if context is None:  # no context classes: everything on one unnamed class
                context = np.zeros(mask.shape, np.int32)
            one = context_stats.request_sums(saliency[None], mask[None], context[None], self.num_context, self.context_ignore, self.edges)
            for key in sums:
                sums[key].append(one[key][0])
        for key, values in sums.items():
            columns[key] = [v.tolist() for v in values] if np.ndim(values[0]) else [float(v) for v in values]
        maps = None
        if self.store_maps:
            maps = {}
            for i, (saliency, mask) in enumerate(zip(saliency_maps, batch.image_masks)):
                maps[f"saliency_{i}"] = saliency.astype(np.float16)
                maps[f"request_{i}"] = np.packbits(mask)
                maps[f"shape_{i}"] = np.array(mask.shape)
        meta = {"shard": shard, "next_sample": batch.next_sample, "next_request": batch.next_request, "skipped": batch.skipped,
                "seconds": float(result.seconds)}
        store.write_shard(self.folder, shard, columns, meta, maps)
        self.requests_done += n
        self.samples_done = batch.samples_done
        self.skipped.extend(batch.skipped)
        if self.progress is not None:
            self.progress(self.samples_done, _length(self.source, self.limit), self.requests_done)


def _length(source: Source, limit: Optional[int]) -> Optional[int]:
    try:
        total = len(source)
    except TypeError:
        total = None
    if limit is not None:
        total = limit if total is None else min(total, limit)
    return total


def model_fingerprint(model) -> str:
    """sha256 of a Keras model's weights (architecture changes change the shapes), else its type."""
    digest = hashlib.sha256()
    weights = getattr(model, "weights", None)
    if not weights:
        return f"{type(model).__name__} (weights not fingerprinted)"
    for w in weights:
        value = np.asarray(w.numpy() if hasattr(w, "numpy") else w)
        digest.update(str(value.shape).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def versions() -> dict:
    import keras
    import tensorflow as tf

    pa = store.pyarrow()
    return {"gsal_tf": __version__, "tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "pyarrow": pa.__version__, "python": platform.python_version()}


def explain_dataset(model, data, out, *, method: str = "grid_saliency", options: Optional[dict] = None,
                    policy: Optional[RequestPolicy] = None, layout: str = "auto", labels=None, split: Optional[str] = None,
                    label_table=None, class_names=None, pixel_scale: Optional[float] = None, input_size=None, limit: Optional[int] = None,
                    store_maps: bool = False, on_error: str = "skip", engine: str = "local",
                    engine_options: Optional[dict] = None, model_name: Optional[str] = None, progress: Optional[Progress] = None) -> RunSummary:
    """Explain the requests of every sample of ``data`` into the results folder ``out``.

    Parameters
    ----------
    model : keras.Model or callable, or an :class:`~gsal_tf.explainer.Explainer` (then ``method``
        and ``options`` are not used).
    data : tf.data.Dataset, folder path or :class:`~gsal_tf.datasets.Source` (see :func:`gsal_tf.datasets.open_source`
        for ``layout``, ``labels``, ``split``, ``label_table``, ``class_names`` and ``pixel_scale``:
        the multiplier of image files' 8-bit pixels, default 1/255 → [0, 1]; 1 for a network
        that takes 0-255).
    out : path — the results folder (:mod:`gsal_tf.scale.store`): created, or resumed when it
        holds a run of the same settings; refused when it holds another run. A run that fails
        with a GsalError before its first shard is committed leaves no folder (one that existed
        is left empty); a folder left by a start that was killed is reused by the next run.
    method, options : the explainer (a name of :data:`gsal_tf.METHODS`) and its keyword options
        (``batch_size`` sets how many requests go into one call and one shard).
    policy : RequestPolicy, default class zones from labels (``RequestPolicy()``). With a label
        ``mapping`` (labels of another label set than the network's, e.g. CamVid for a Cityscapes
        network) the mapping is checked against the data and the network before anything is written.
        ``RequestPolicy(context_from="predictions")``: the context classes are the network's own
        predicted classes (named by the mapping or the model when known) instead of the labels.
    input_size : (H, W), optional — fit every image to this size (default: the network's fixed
        input size, else each image as it is; all images of a run must then share one size).
    limit : int, optional — only the first ``limit`` samples.
    store_maps : bool, default False — also write the per-pixel saliency and request maps.
    on_error : "skip" (default) or "stop" — what an unreadable sample does: skipped and listed
        in the run card, or the run stops with a GsalInputError (committed shards are kept).
    engine : "local" (default) or "ray" — where the job runs (:data:`gsal_tf.scale.engine.ENGINES`):
        in this process, or as a Ray Data pipeline of actors each holding one explainer
        (:mod:`gsal_tf.scale.ray_engine`; ``pip install "gsal-tf[ray]"``). Both give the same rows.
    engine_options : dict, optional — the engine's options, e.g. ``{"address": "auto", "actors": 4,
        "cpus_per_actor": 1, "gpus_per_actor": 0}`` for Ray (:class:`~gsal_tf.scale.ray_engine.RayEngine`).
    model_name : str, optional — how the run card names the model.
    progress : callable, optional — ``progress(samples_done, total or None, requests_done)``.

    Returns
    -------
    RunSummary
    """
    check_choice("on_error", on_error, ON_ERROR)
    limit = check_int("limit", limit, optional=True)
    store.pyarrow()
    if engine_options is not None and not isinstance(engine_options, dict):
        raise GsalInputError(f"engine_options must be a dict of the engine's options, got {type(engine_options).__name__}")
    runner = make_engine(engine, **(engine_options or {}))
    source = open_source(data, layout, labels=labels, split=split, label_table=label_table, class_names=class_names,
                         pixel_scale=pixel_scale)
    if input_size is not None:
        input_size = check_int_pair("input_size", input_size)
    explainer = model if isinstance(model, Explainer) else _explainer(model, method, dict(options or {}), source, limit, input_size)
    policy = policy or RequestPolicy()
    if policy.needs_labels and not source.has_labels:
        raise GsalInputError(f"the request policy ({policy.zone} zones from {policy.zones_from}) needs label maps, and the data has none; "
                             "give labels (--labels) or build zones from predictions")
    if policy.mapping is not None:
        policy = _bind_mapping(policy, source, explainer, limit, input_size, Path(out))
    context_names = source.context_names if policy.context_from == "labels" else _network_class_names(policy, explainer)
    if context_names is None:  # unnamed context classes: the network's classes
        first = _first_readable(source, limit)
        num_context = 1
        if first is not None:
            image = DatasetJob(explainer, source, policy, Path(out), 1, input_size)._fit(first.image)[0]
            num_context = explainer.num_classes(image[None])
        context_names = tuple(f"class {k}" for k in range(num_context))
    settings = {
        "model": {"name": model_name or getattr(explainer.model, "name", type(explainer.model).__name__), "weights_sha256": model_fingerprint(explainer.model)},
        "explainer": explainer.params,
        "policy": policy.to_dict(),
        "data": {**source.describe(), "limit": limit, "ignore_label": source.ignore_label,
                 "class_names": None if source.class_names is None else list(source.class_names)},
        "context_classes": list(context_names),
        "input_size": None if input_size is None else list(input_size),
        "distance_edges": [float(e) for e in context_stats.DISTANCE_EDGES],
        "store_maps": bool(store_maps),
    }
    card = {"format": store.RESULTS_FORMAT, "version": store.RESULTS_VERSION, "settings": settings, "versions": versions(),
            "engine": runner.name, "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "status": "running"}
    folder = Path(out)
    existed = folder.exists()
    job = DatasetJob(explainer, source, policy, folder, len(context_names), input_size, store_maps, on_error, limit, progress)
    if not store.holds_card(folder):
        check_first_shard(job)
    began = time.perf_counter()
    try:
        # Settings added after runs were written: an old card without them resumes as their default.
        added = {"explainer": explainer.ADDED_PARAMS}
        if "pixel_scale" in settings["data"]:
            added["data"] = {"pixel_scale": PIXEL_SCALE}
        start = store.open_run(folder, card, added=added)
        job.requests_done, job.samples_done, job.skipped = start.requests_done, start.sample, list(start.skipped)
        runner.run(job, start)
    except GsalError:
        store.discard_unstarted(folder, remove_folder=not existed)
        raise
    card = start.card
    seconds = time.perf_counter() - began
    if start.finished and job.requests_done == start.requests_done and job.samples_done == start.sample:
        # A finished run read back: nothing new was explained, its card is not rewritten.
        return RunSummary(folder, job.requests_done, card["totals"]["samples"], job.skipped, seconds, card, [])
    card = {**card, "status": "complete", "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "totals": {"requests": job.requests_done, "samples": _length(source, limit) if _length(source, limit) is not None else job.samples_done,
                       "skipped": len(job.skipped)},
            "skipped": job.skipped, "seconds_this_session": round(seconds, 3), "engine": runner.name,
            "engine_options": runner.describe() if hasattr(runner, "describe") else {}}
    store.write_card(folder, card)
    return RunSummary(folder, job.requests_done, card["totals"]["samples"], job.skipped, seconds, card, list(start.redone))


def check_first_shard(job: DatasetJob) -> None:
    """Plan the first shard of ``job`` once and drop it: its samples are read, their labels
    checked and their requests built, so bad data fails before the run card is written. Looks
    at most ``batch_size`` samples ahead (the samples of a first shard, unless some have no
    request); the job itself is not changed."""
    size = max(1, int(job.explainer.batch_size))
    probe = DatasetJob(job.explainer, job.source, job.policy, job.folder, job.num_context, job.input_size,
                       on_error=job.on_error, limit=size if job.limit is None else min(job.limit, size))
    plan = probe.plan(store.ResumePoint())
    try:
        next(plan, None)
    finally:
        plan.close()


def _explainer(model, method: str, options: dict, source: Source, limit: Optional[int], input_size) -> Explainer:
    """The run's explainer. A grid method without a ``grid_size`` gets the grid ``gsal explain``
    gives the run's first image (:func:`gsal_tf.pictures.picture_grid`: 8x8 at the network's own
    size, else square cells along the image's long side), so a photo gets the same explanation
    alone and in a dataset; every image of the run is explained on that grid."""
    if method_takes_grid(method) and options.get("grid_size") is None:
        first = _first_readable(source, limit)
        if first is not None:
            options["grid_size"] = picture_grid(fit_picture(first.image, model, input_size).fit)
    return make_explainer(method, model, **options)


def _bind_mapping(policy: RequestPolicy, source: Source, explainer: Explainer, limit: Optional[int], input_size, folder: Path) -> RequestPolicy:
    """``policy`` with its label mapping checked against the data (its class names and ignore
    label; data without them take the mapping's) and bound to the network's classes
    (:meth:`~gsal_tf.datasets.mapping.LabelMapping.for_network`), before anything is written."""
    from gsal_tf.viz import class_names

    mapping = policy.mapping
    mapping.check_dataset(source.class_names, source.ignore_label)
    if source.class_names is None:
        source.class_names = tuple(mapping.dataset_classes)
    if source.ignore_label is None:
        source.ignore_label = mapping.ignore_label
    first = _first_readable(source, limit)
    if first is None:
        return policy
    image = DatasetJob(explainer, source, policy, folder, 1, input_size)._fit(first.image)[0]
    bound = mapping.for_network(explainer.num_classes(image[None]), class_names(explainer.model) or None)
    return dataclasses.replace(policy, mapping=bound)


def _network_class_names(policy: RequestPolicy, explainer: Explainer) -> Optional[tuple]:
    """The network's class names, for context classes from its predictions: the bound mapping's,
    else the model's own (:func:`gsal_tf.viz.class_names`); None when unknown ("class k")."""
    from gsal_tf.viz import class_names

    if policy.mapping is not None:
        return tuple(policy.mapping.network_classes)
    names = class_names(explainer.model)
    return tuple(names) if names else None


def _first_readable(source: Source, limit: Optional[int]):
    """The first sample of ``source`` that can be read (within ``limit``), or None."""
    for index, sample in source.iter_from(0):
        if limit is not None and index >= limit:
            return None
        if not isinstance(sample, UnreadableSample):
            return sample
    return None


def load_stats(folder, table=None) -> tuple[context_stats.ContextStats, dict]:
    """The :class:`~gsal_tf.context_stats.ContextStats` of a results folder and its run card
    (``table``: its rows, :func:`gsal_tf.scale.store.read_results`, when already read)."""
    card = store.read_card(folder)
    table = store.read_results(folder) if table is None else table
    edges = tuple(card["settings"]["distance_edges"])
    # the widths of the per-request rows, for a table without rows (no request left after a filter)
    widths = {"salient": len(card["settings"]["context_classes"]), "inflation": len(card["settings"]["context_classes"]),
              "context_pixels": len(card["settings"]["context_classes"]), "salient_by_distance": len(edges) - 1,
              "pixels_by_distance": len(edges) - 1}
    sums = {}
    for key in context_stats.SUM_FIELDS:
        column = table.column(key).to_pylist()
        values = np.asarray(column, np.float64)
        sums[key] = values.reshape(0, widths[key]) if key in widths and not column else values
    return context_stats.aggregate(np.asarray(table.column("class_id").to_pylist()), sums, edges), card
