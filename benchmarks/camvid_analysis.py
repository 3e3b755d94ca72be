"""The paper's real-world analysis on CamVid: nine stages, each a call of the library.

Stages (``--stage NAME``; default: all but ``settings`` and ``moments``, in this order):

``miou``           mIoU of every network on the split through its label mapping
                   (:func:`gsal_tf.datasets.dataset_confusion`, :func:`~gsal_tf.datasets.mapped_iou`,
                   :func:`~gsal_tf.datasets.mapped_mean_iou`).
``context``        context statistics of the Cityscapes network (:func:`gsal_tf.explain_dataset`,
                   :func:`gsal_tf.scale.load_stats`): class zones and connected components (at
                   least ``--min-component`` pixels, of the ``--component-classes``) from the CamVid labels, per request class ×
                   context class the share of the salient context vs the inflation baseline, the
                   three largest per request class; the HTML report (``gsal stats RUN --html``);
                   with both kinds of zone, the components beside the class zones (top-3 context,
                   median score without context).
``errors``         error analysis: confusion zones of pavement, pedestrian and bicyclist split by
                   the predicted Cityscapes class (mapping ``settings/cityscapes-camvid-errors.toml``),
                   each explained for the class predicted there: wrong and right predictions of
                   the same frames side by side; the share of the salient context on the CamVid
                   *bicyclist* label (the bicycle, once the rider is the request) per pair.
``generalisation`` the score without any context (grid saliency's ``no_context_score``, relative
                   to f_c(x)) per request class: quantiles, from the ``context`` runs (no new run;
                   a run stopped part-way is left out, or with ``--report-only`` marked).
``architectures``  the same requests (class zones from the labels) by two networks: Cityscapes
                   MobileNet-EdgeTPU vs ADE20K MobileNetV2 on the classes both mean alike (all but
                   bicyclist: Cityscapes explains rider, ADE20K bicycle), PASCAL MobileNetV2 1.0 vs
                   0.5 on pedestrian and car; one table per pair (:func:`gsal_tf.scale.compare_runs`,
                   ``gsal stats RUN_A RUN_B``) and the difference of the shares as a figure;
                   ``--pairs`` chooses the pairs and the order they run in.
``bicycle``        the paper's bicycle question where it can be asked: the confusion zones of the
                   *bicyclist* label on every frame of the split with at least 500 bicyclist pixels.
``bicycle-own``    the same requests with the network's own prediction as the context classes
                   (``RequestPolicy(context_from="predictions")``): the share of the salient
                   context on what the network predicts as *bicycle* and *rider*, which CamVid's
                   one *bicyclist* label does not separate.
``settings``       the two explainer settings on the same requests: the class-zone context run of
                   ``--explainer pinned`` (``--pinned-out``, the sampled tables) against this
                   ``--out``'s (``--explainer defaults``) on the frames both explained
                   (:func:`gsal_tf.scale.compare_runs`): whether the faster defaults tell the same
                   story, and what each cost per request (no new run).
``moments``        the optimiser's moments when a mask goes back to its last one that kept the target:
                   the class zones of the first ``--limit`` frames explained with ``--explainer``'s
                   settings twice, ``moments="restart"`` and ``"auto"`` (a mask that stayed uniform
                   explained again with them kept): how many masks ``auto`` changes and by how much,
                   whether they keep the target, the area-like counts, and the cost.

Every network is its ``.tflite`` file imported by :func:`gsal_tf.models.from_tflite` (8-bit
activations simulated: 100 % arg-max agreement with ``tf.lite.Interpreter`` on the Coral files; the
ADE20K file is a hybrid float file, rebuilt in float). The explainer is grid saliency with the
settings of :data:`EXPLAINERS` (``--explainer``): ``pinned``, the library's defaults when the first
runs began (50 iterations, without pruning), which every sampled table used; ``defaults``, the
defaults of gsal-tf 0.2.0+ before ``moments="auto"`` (40 pruned iterations; a request whose
prediction holds without context takes no step; the optimiser's moments restart at every return,
so a mask that never leaves its start stays uniform), which the full-split runs use. Both are written out, not read from the
library, so that a run resumes whatever the defaults become; the run cards record every setting.

Resume: every dataset run is a results folder ``OUT/runs/<name>/`` (card + Parquet shards, no
pixels); rerunning the same command continues after the last committed shard, and a finished run
is read back, not redone. The mIoU stage writes one JSON per network and skips the networks whose
JSON holds the same split and limit. Each stage writes ``OUT/<stage>.json`` (+ CSV / Markdown) with
requests, the wall time of the last invocation that explained something (one that only reads
finished runs back keeps it) and requests/s. ``--stage context`` for one zone keeps the other
zone's tables in ``OUT/context.{md,json}``.

Run (2 CPU cores: a small smoke run first)::

    PYTHONPATH=.:cli TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 python benchmarks/camvid_analysis.py \
        --limit 3 --out benchmarks/results/camvid/smoke
    PYTHONPATH=.:cli TF_CPP_MIN_LOG_LEVEL=2 nice -n 10 python benchmarks/camvid_analysis.py --stage context

Data: CamVid (Brostow et al., 2009), SegNet version -- research use only: only statistics are
written, never frames, labels or overlays.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "real"
if not SHARED.exists():
    SHARED = Path("/work/shared/data/real")

STAGES = ("miou", "context", "errors", "generalisation", "architectures", "bicycle", "bicycle-own", "settings", "moments")
#: Stages that "all" leaves out: they compare settings on runs of their own.
COMPARISONS = ("settings", "moments")
#: Stage bicycle: the frames whose labels hold at least this many bicyclist pixels.
BICYCLIST_PIXELS = 500

#: network key -> (file, mapping, label)
NETWORKS = {
    "cityscapes": ("deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite", "cityscapes-camvid", "Cityscapes MobileNet-EdgeTPU (8-bit)"),
    "ade20k": ("deeplabv3_mnv2_ade20k.tflite", "ade20k-camvid", "ADE20K MobileNetV2 (hybrid float)"),
    "pascal-1.0": ("deeplabv3_mnv2_pascal_quant.tflite", "pascal-camvid", "PASCAL MobileNetV2 1.0 (8-bit)"),
    "pascal-0.5": ("deeplabv3_mnv2_dm05_pascal_quant.tflite", "pascal-camvid", "PASCAL MobileNetV2 0.5 (8-bit)"),
}
#: Stage miou also measures these 8-bit networks with their activations in float32 (the file's
#: dequantised weights, ``from_tflite(..., quantize_activations=False)``): how far the network a
#: user deploys is from its float rebuild.
FLOAT_ACTIVATIONS = ("cityscapes", "pascal-1.0", "pascal-0.5")
FLOAT_LABEL = ", activations in float"
FLOAT_NOTE = ("Rows ending in \"activations in float\": the same 8-bit file imported with its activations in float32 "
              "(`from_tflite(..., quantize_activations=False)`); the other rows simulate the file's 8-bit activations, as deployed.")

CAMVID_CLASSES = ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian", "bicyclist")
PAVEMENT, CAR, PEDESTRIAN, BICYCLIST = 4, 8, 9, 10
ERROR_CLASSES = (PAVEMENT, PEDESTRIAN, BICYCLIST)
ERROR_MAPPING = HERE / "settings" / "cityscapes-camvid-errors.toml"
CITYSCAPES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain", "sky",
              "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: Grid saliency's settings of every CamVid run (the grid: ``explain_dataset``'s choice for the frame, 12x12).
EXPLAINERS = {
    "pinned": {"iterations": 50, "lam": 16.0, "learning_rate": 0.02, "target": 0.9, "backoff": 0.5, "init": "auto", "prune": False,
               "moments": "restart"},
    "defaults": {"iterations": 40, "lam": 16.0, "learning_rate": 0.025, "target": 0.9, "backoff": 0.5, "init": "auto", "prune": True,
                 "moments": "restart"},
}


def _settings_text(options: dict) -> str:
    """The settings of one of :data:`EXPLAINERS` as the tables name them."""
    return (f"τ {options['target']:g}, lam {options['lam']:g}, learning rate {options['learning_rate']:g}, "
            f"{options['iterations']} iterations, {'pruned' if options['prune'] else 'unpruned'}, moments {options['moments']}")


SETTINGS = {"pinned": _settings_text(EXPLAINERS["pinned"]),
            "defaults": "the defaults of gsal-tf 0.2.0+ before moments=\"auto\": " + _settings_text(EXPLAINERS["defaults"])}
CREDIT = "CamVid (Brostow et al., 2009), SegNet version"


# -- helpers (bookkeeping only: every number comes from a library call) ------------------------------


def component_class_ids(spec: str) -> tuple | None:
    """CamVid class names, comma-separated, or "all", as sorted class ids (None: all); one clear
    error for a name CamVid lacks."""
    if spec.strip() == "all":
        return None
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in CAMVID_CLASSES]
    if unknown or not names:
        raise SystemExit(f"--component-classes: {', '.join(unknown) or 'nothing'} is not a CamVid class; "
                         f"give 'all' or names from: {', '.join(CAMVID_CLASSES)}")
    return tuple(sorted(CAMVID_CLASSES.index(n) for n in names))


class Analysis:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._models: dict = {}
        self.worked = False  # whether an invocation explained or measured anything (else it only read results back)

    def model(self, key: str, float_activations: bool = False):
        """The network ``key`` imported from its TFLite file as deployed (8-bit activations simulated);
        ``float_activations``: the same file with its activations run in float32 (stage ``miou``)."""
        import gsal_tf as gs

        if (key, float_activations) not in self._models:
            path = Path(self.args.models) / NETWORKS[key][0]
            # probabilities, as the zoo imports its TFLite networks (gsal_tf/zoo/build_tflite.py OUTPUT): grid saliency
            # explains softmax scores, and a model imported with output="logits" does not declare it (see README)
            self._models[key, float_activations] = gs.models.from_tflite(
                path, output="probabilities", name=key.replace(".", "_") + ("_float" if float_activations else ""),
                quantize_activations=False if float_activations else None)
        return self._models[key, float_activations]

    def write(self, name: str, payload: dict) -> Path:
        path = self.out / name
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1, default=_plain) + "\n")
        tmp.replace(path)
        return path

    def data(self) -> dict:
        return {"dataset": CREDIT, "split": self.args.split, "limit": self.args.limit, "every": self.args.every,
                "frames_explained": self.frames()}

    def component_classes(self) -> tuple | None:
        """``--component-classes`` as CamVid class ids (None: all)."""
        return component_class_ids(self.args.component_classes)

    def frames(self) -> str:
        """What the explanation stages read, for the titles of the tables."""
        k = self.args.every
        suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
        every = f"every {k}{suffix} frame" if k > 1 else "all frames"
        return f"CamVid {self.args.split}, {every}" + (f", at most {self.args.limit}" if self.args.limit else "")

    def explained_tree(self) -> tuple[str, str]:
        """(root, split) for the explanation stages. With ``--every K`` a pair list of every K-th
        frame of the split (from its first), in a folder of symbolic links outside the repository
        (the same path on every machine, so a run resumes): consecutive CamVid frames are one
        second apart in a few video sequences, and a spread-out sample covers all of them."""
        if self.args.every <= 1:
            return self.args.camvid, self.args.split
        return self._pair_list(f"{self.args.split}-every{self.args.every}", lambda pairs: pairs[::self.args.every])

    def tree_with(self, class_id: int, min_pixels: int) -> tuple[str, str]:
        """(root, split) of the split's frames whose labels hold at least ``min_pixels`` pixels of
        ``class_id``: a pair list beside the links of :meth:`explained_tree`."""
        import cv2

        def keep(pairs):
            return [(image, label) for image, label in pairs
                    if int((cv2.imread(str(label), cv2.IMREAD_UNCHANGED) == class_id).sum()) >= min_pixels]

        return self._pair_list(f"{self.args.split}-{CAMVID_CLASSES[class_id]}{min_pixels}", keep)

    def _pair_list(self, split: str, choose) -> tuple[str, str]:
        """(root, split): ``choose`` applied to the split's (image, label) pairs, written as the pair
        list ``<split>.txt`` in a folder of symbolic links to the CamVid image and label folders."""
        import tempfile

        from gsal_tf.datasets.camvid import CamVidSource

        full = CamVidSource(self.args.camvid, self.args.split)
        tree = Path(tempfile.gettempdir()) / "gsal-camvid-sample"
        tree.mkdir(exist_ok=True)
        for folder in {full.files[0].parent, full.label_files[0].parent}:
            link = tree / folder.name
            if not link.exists():
                link.symlink_to(folder.resolve(), target_is_directory=True)
        lines = [f"{image.parent.name}/{image.name} {label.parent.name}/{label.name}"
                 for image, label in choose(list(zip(full.files, full.label_files)))]
        (tree / f"{split}.txt").write_text("\n".join(lines) + "\n")
        return str(tree), split

    def run(self, name: str, key: str, policy, tree: tuple[str, str] | None = None, options: dict | None = None) -> dict:
        """One ``explain_dataset`` run into OUT/runs/<name> (resumed if interrupted, read back if
        done); with ``--report-only`` the run as far as its committed shards go (nothing explained).
        ``options``: grid saliency's settings (default: ``--explainer``'s)."""
        import gsal_tf as gs

        folder = self.out / "runs" / name
        if self.args.report_only:
            if not (folder / "run.json").is_file():
                raise SystemExit(f"--report-only: {folder} holds no run; run the stage without --report-only first")
            return self.read_run(name, key)
        before = gs.scale.store.read_card(folder).get("finished") if (folder / "run.json").is_file() else None
        root, split = tree or self.explained_tree()
        summary = gs.explain_dataset(self.model(key), root, folder, layout="camvid", split=split, options=options or EXPLAINERS[self.args.explainer],
                                     policy=policy, limit=None if tree else self.args.limit, engine=self.args.engine, model_name=NETWORKS[key][2],
                                     progress=_progress(name))
        # a finished run read back keeps its card, and so the wall time of the invocation that explained it
        self.worked = self.worked or summary.card.get("finished") != before or bool(summary.redone)
        return _rates({**_record(folder, key), "requests": summary.requests, "samples": summary.samples})

    def read_run(self, name: str, key: str) -> dict:
        """The run OUT/runs/<name> as far as its committed shards go, explaining nothing."""
        return _rates({**_record(self.out / "runs" / name, key), **_partial_summary(self.out / "runs" / name)})


def _record(folder: Path, key: str) -> dict:
    """What every stage records of a run: its network, status, settings and the explaining time
    summed over its shards (so it survives a resume); the rates come from :func:`_rates`."""
    import gsal_tf as gs

    card = gs.scale.store.read_card(folder)
    shards = sorted((folder / "requests").glob("part-*.parquet"))
    return {"run": str(folder), "network": NETWORKS[key][2], "status": card.get("status"),
            "explainer_seconds_all_sessions": round(float(sum(gs.scale.store.shard_meta(p)["seconds"] for p in shards)), 2),
            "explainer": card["settings"]["explainer"], "policy": _policy_summary(card["settings"]["policy"]),
            # the wall time of the last invocation that explained something in it (a read-back keeps it)
            "wall_seconds_this_session": card.get("seconds_this_session"),
            "folder_bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())}


def _rates(run: dict) -> dict:
    """``run`` with requests per second and seconds per request of its explaining time."""
    seconds = run["explainer_seconds_all_sessions"]
    return {**run, "requests_per_second": _rate(run["requests"], seconds), "seconds_per_request": _rate(seconds, run["requests"])}


def _partial_summary(folder: Path) -> dict:
    """Requests and frames of a results folder as far as its shards go."""
    import gsal_tf as gs

    table = gs.scale.store.read_results(folder)
    return {"requests": table.num_rows, "samples": len(set(table.column("sample_index").to_pylist()))}


def _extent(run: dict) -> str:
    """"N frames, M requests", and whether the run stopped part-way (``--report-only``)."""
    text = f"{run['samples']} frames, {run['requests']} requests"
    return text + (" (the run stopped part-way; the same command without --report-only continues it)" if run.get("status") == "running" else "")


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value))


def _clean(value):
    """NaN -> None recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return None if not math.isfinite(value) else round(value, 6)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, (np.floating, np.integer)):
        return _clean(value.item())
    return value


def _rate(a, b):
    return round(a / b, 4) if b else None


def _policy_summary(policy: dict) -> dict:
    out = {k: v for k, v in policy.items() if k != "mapping"}
    if "mapping" in policy:
        out["mapping"] = policy["mapping"]["name"]
    return out


def _requests_in_labels(a: Analysis, policy: dict, **changes) -> int:
    """How many requests the policy ``policy`` (a run card's, with ``changes``) makes of the labels of
    the frames the explanation stages read: zones from the labels only, no network called."""
    import cv2

    import gsal_tf as gs
    from gsal_tf.datasets.camvid import CamVidSource

    policy = {**policy, **changes}
    mapping = policy.get("mapping")
    rule = gs.scale.RequestPolicy(zone=policy["zone"], zones_from=policy["zones_from"], classes=policy["classes"],
                                  exclude=tuple(policy["exclude"]), min_pixels=policy["min_pixels"],
                                  mapping=None if mapping is None else gs.datasets.LabelMapping.from_dict(mapping))
    source = CamVidSource(*a.explained_tree())
    return sum(len(rule.requests(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), None, source.ignore_label))
               for path in source.label_files[:a.args.limit])


def _progress(name: str):
    def report(done, total, requests):
        print(f"  {name}: {done}/{total} frames, {requests} requests", file=sys.stderr, flush=True)
    return report


def _markdown(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _csv(path: Path, header, rows) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _fmt(value, digits=3) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _name(card: dict, class_id: int) -> str:
    from gsal_tf.scale.report import class_label

    return class_label(card, int(class_id))


def _stats(folder):
    import gsal_tf as gs

    return gs.scale.load_stats(folder)


def _area_distance(table) -> np.ndarray:
    """(N,) :func:`gsal_tf.context_stats.area_distance` of each request of a results table (NaN: no salient context)."""
    from gsal_tf import context_stats

    return context_stats.area_distance(np.asarray(table.column("salient").to_pylist(), np.float64),
                                       np.asarray(table.column("context_pixels").to_pylist(), np.float64))


def _stats_not_area_like(folder):
    """The statistics of ``folder``'s requests that are not area-like (their salient context does
    not lie on the context classes as the classes' areas do; :func:`gsal_tf.context_stats.area_distance`)."""
    import gsal_tf as gs
    from gsal_tf import context_stats

    table = gs.scale.store.read_results(folder)
    keep = ~(_area_distance(table) < context_stats.AREA_LIKE_DISTANCE)  # NaN (no salient context) stays: counted as empty
    return gs.scale.load_stats(folder, table.filter(keep))[0]


def _top_context(stats, card, top=3, focused=None) -> list:
    """Per request class: count, empty, area-like, and the ``top`` context classes by share
    (share, baseline, difference; with ``focused``, the statistics of the requests that are not
    area-like, also their share and difference there)."""
    context = card["settings"]["context_classes"]
    out = []
    for row, c in enumerate(stats.classes):
        order = np.argsort(-np.nan_to_num(stats.share[row], nan=-1))[:top]
        there = None if focused is None else np.flatnonzero(focused.classes == c)
        f_row = int(there[0]) if there is not None and len(there) else None
        out.append({"request_class": _name(card, c), "class_id": int(c), "requests": int(stats.count[row]), "empty": int(stats.empty[row]),
                    "area_like": int(stats.area_like[row]), "mean_salient_fraction": stats.mean_fraction[row],
                    "top": [{"context": context[k], "share": stats.share[row, k], "inflation": stats.inflation_share[row, k],
                             "difference": stats.difference[row, k],
                             **({} if focused is None else {
                                 "share_not_area_like": None if f_row is None else focused.share[f_row, k],
                                 "difference_not_area_like": None if f_row is None else focused.difference[f_row, k]})}
                            for k in order]})
    return out


def _matrix_csv(path: Path, stats, card) -> None:
    context = card["settings"]["context_classes"]
    rows = []
    for row, c in enumerate(stats.classes):
        for k, name in enumerate(context):
            rows.append([_name(card, c), int(stats.count[row]), name, _fmt(stats.share[row, k], 4), _fmt(stats.inflation_share[row, k], 4),
                         _fmt(stats.difference[row, k], 4)])
    _csv(path, ["request_class", "requests", "context_class", "share", "inflation_share", "difference"], rows)


#: A row of the context figure needs this many requests with salient context; fewer are shown
#: grey ("—"): on the full test split one road zone of 233 keeps context, and its shares alone
#: would set the colour scale.
FIGURE_MIN_REQUESTS = 10


def _difference_figure(path: Path, stats, card, title: str) -> Path:
    """The paper's context figure (Δ = share − inflation share per request class × context class,
    :func:`gsal_tf.scale.report.figures`), rows with fewer than :data:`FIGURE_MIN_REQUESTS`
    requests keeping salient context grey, written to ``path``."""
    from gsal_tf import viz
    from gsal_tf.scale import report

    figure = report.figures(stats, card, min_requests=FIGURE_MIN_REQUESTS, title=title,
                            context_label="context class (CamVid labels)")["difference"]
    return viz.save_figure(figure, path)


def _columns(folder, *names) -> list:
    """The columns ``names`` of the results of the run in ``folder`` as arrays, read once."""
    import gsal_tf as gs

    table = gs.scale.store.read_results(folder)
    return [np.asarray(table.column(name).to_pylist()) for name in names]


def _no_context_quantiles(folder) -> dict:
    """Per request class of the run in ``folder``: requests, the :data:`QUANTILES` of
    ``no_context_score`` over its requests and the mean ``original_score``."""
    import gsal_tf as gs

    card = gs.scale.store.read_card(folder)
    classes, no_context, original = _columns(folder, "class_id", "no_context_score", "original_score")
    no_context, original = no_context.astype(np.float64), original.astype(np.float64)
    out = {}
    for c in np.unique(classes):
        values = no_context[(classes == c) & np.isfinite(no_context)]
        q = np.quantile(values, QUANTILES) if len(values) else [float("nan")] * len(QUANTILES)
        out[_name(card, c)] = {"requests": int((classes == c).sum()), "quantiles": dict(zip(map(str, QUANTILES), q)),
                               "mean_original_score": float(np.mean(original[classes == c]))}
    return out


def _paired_with_zones(component_folder, class_folder) -> dict:
    """Per request class (name): each component's score without context divided by that of the
    class zone of the same class in the same frame — the median ratio, the fraction of components
    below their zone (ratio < 1) and how many components have such a zone."""
    import gsal_tf as gs

    card = gs.scale.store.read_card(component_folder)
    names = ("sample_key", "class_id", "no_context_score")
    zone_score = {(key, int(c)): float(s) for key, c, s in zip(*_columns(class_folder, *names))}
    ratios: dict = {}
    for key, c, s in zip(*_columns(component_folder, *names)):
        zone = zone_score.get((key, int(c)))
        if zone is not None and zone > 0 and np.isfinite(s):
            ratios.setdefault(int(c), []).append(float(s) / zone)
    return {_name(card, c): {"paired": len(r), "median_ratio": float(np.median(r)), "fraction_below": float(np.mean(np.asarray(r) < 1))}
            for c, r in ratios.items()}


def _zones_table(runs: dict) -> str | None:
    """Markdown: per request class of the component run, its requests (those keeping no salient
    context), the three largest context classes (share and inflation share), the median score
    without context of the components beside that of the class zones, and, paired by frame, the
    median ratio of a component's score without context to its frame's class zone's and the
    fraction of components below their zone; None unless ``runs`` holds both kinds of zone."""
    if not {"cityscapes-class", "cityscapes-component"} <= set(runs):
        return None
    medians = {}
    for zone in ("class", "component"):
        folder = runs[f"cityscapes-{zone}"]["run"]
        medians[zone] = {name: q["quantiles"]["0.5"] for name, q in _no_context_quantiles(folder).items()}
    paired = _paired_with_zones(runs["cityscapes-component"]["run"], runs["cityscapes-class"]["run"])
    rows = []
    for entry in runs["cityscapes-component"]["top3"]:
        name, pair = entry["request_class"], paired.get(entry["request_class"])
        rows.append([name, f"{entry['requests']} ({entry['empty']})",
                     "; ".join(f"{t['context']} {_fmt(t['share'], 2)} ({_fmt(t['inflation'], 2)})" for t in entry["top"]),
                     f"{_fmt(medians['component'].get(name))} ({_fmt(medians['class'].get(name))})",
                     "–" if pair is None else f"{_fmt(pair['median_ratio'], 2)} ({_fmt(pair['fraction_below'], 2)} of {pair['paired']})"])
    return _markdown(["request class (network)", "n (no salient context)", "top-3 context: share (inflation)",
                      "median no-context: component (class zone)", "component ÷ its frame's zone: median (fraction < 1 of n)"], rows)


# -- stages --------------------------------------------------------------------------------------


def stage_miou(a: Analysis) -> dict:
    from gsal_tf.datasets import dataset_confusion, load_mapping, mapped_iou, mapped_mean_iou

    folder = a.out / "miou"
    folder.mkdir(exist_ok=True)
    rows, timings = [], {}
    variants = [(key, False) for key in NETWORKS] + [(key, True) for key in FLOAT_ACTIVATIONS]
    for key, float_activations in variants:
        _file, mapping_name, label = NETWORKS[key]
        label += FLOAT_LABEL if float_activations else ""
        name = f"{key}-float" if float_activations else key
        path = folder / f"{name}.json"
        done = json.loads(path.read_text()) if path.is_file() else None
        if done is None or done.get("split") != a.args.split or done.get("limit") != a.args.limit:
            mapping = load_mapping(mapping_name)
            model = a.model(key, float_activations)
            began = time.perf_counter()
            confusion = dataset_confusion(model, a.args.camvid, mapping, layout="camvid", split=a.args.split, limit=a.args.limit)
            seconds = time.perf_counter() - began
            iou = mapped_iou(confusion, mapping)
            done = _clean({"network": label, "file": NETWORKS[key][0], "mapping": mapping_name, "split": a.args.split, "limit": a.args.limit,
                           "miou": mapped_mean_iou(confusion, mapping), "classes_covered": [CAMVID_CLASSES[d] for d in range(len(iou)) if np.isfinite(iou[d])],
                           "iou": {CAMVID_CLASSES[d]: iou[d] for d in range(len(iou))},
                           "pixel_accuracy": float(np.trace(confusion[:, :len(iou)]) / confusion.sum()),
                           "confusion": confusion, "confusion_columns": list(CAMVID_CLASSES) + ["no CamVid class"],
                           "wall_seconds": seconds, "seconds_per_frame": seconds / (a.args.limit or 233 if a.args.split == "test" else a.args.limit or 101)})
            a.write(f"miou/{name}.json", done)
            a.worked = True
        timings[name] = done["wall_seconds"]
        rows.append([done["network"], _fmt(done["miou"]), f"{len(done['classes_covered'])}/11"]
                    + [_fmt(done["iou"][c], 2) for c in CAMVID_CLASSES] + [f"{done['wall_seconds']:.1f}"])
    header = ["network", "mIoU", "classes"] + list(CAMVID_CLASSES) + ["seconds"]
    (a.out / "miou.md").write_text(f"# mIoU on CamVid {a.args.split} (limit {a.args.limit}) through the label mappings\n\n"
                                   + _markdown(header, rows) + f"\n{FLOAT_NOTE}\n\n{CREDIT}.\n")
    return {"stage": "miou", "requests": None, "frames_per_network": a.args.limit, "wall_seconds": timings}


def stage_context(a: Analysis) -> dict:
    import gsal_tf as gs

    from gsal_tf.scale import report

    runs = {}
    asked = a.args.context_zones.split(",")
    for zone in ("class", "component"):
        name = f"cityscapes-{zone}"
        figure = a.out / f"context-{zone}.png"
        if zone in asked:
            policy = gs.scale.RequestPolicy(zone=zone, zones_from="labels", min_pixels=a.args.min_component if zone == "component" else 16,
                                            mapping="cityscapes-camvid", classes=a.component_classes() if zone == "component" else None)
            runs[name] = a.run(name, "cityscapes", policy)
            stats, card = _stats(runs[name]["run"])
            _matrix_csv(a.out / f"context-{zone}.csv", stats, card)
            runs[name]["figure"] = _difference_figure(figure, stats, card,
                                                      f"Cityscapes MobileNet-EdgeTPU on {a.frames()}: {zone} zones, grid saliency − inflation").name
            report.write_html_report(runs[name]["run"], Path(runs[name]["run"]) / "stats" / "report.html", min_requests=FIGURE_MIN_REQUESTS)
        elif (a.out / "runs" / name / "run.json").is_file():
            # the other kind of zone, when OUT holds its run: read back into the tables, its figure not redrawn
            runs[name] = a.read_run(name, "cityscapes")
            stats, card = _stats(runs[name]["run"])
            runs[name]["figure"] = figure.name if figure.is_file() else None
        else:
            continue
        runs[name]["top3"] = _top_context(stats, card, focused=_stats_not_area_like(runs[name]["run"]))
        if zone == "component" and card["settings"]["policy"].get("classes") is not None:
            runs[name]["components_of_every_class"] = _requests_in_labels(a, card["settings"]["policy"], classes=None)
    lines = [f"# Context statistics, Cityscapes MobileNet-EdgeTPU on {a.frames()}\n",
             f"Grid saliency, {SETTINGS[a.args.explainer]}. share = mean share of the salient context on the context class (CamVid labels); "
             "infl. = the inflation baseline's share with the same amount of context; Δ = share − infl. "
             "area-like = requests whose salient context lies on the context classes as their areas do (a mask that stayed "
             "uniform; `gsal_tf.context_stats.area_distance` < 0.05); the last two columns leave them out.\n"]
    for name, run in runs.items():
        lines.append(f"\n## {name}: {_extent(run)}, {run['explainer_seconds_all_sessions']} s explaining, "
                     f"{run['requests_per_second']} requests/s\n")
        rows = []
        for entry in run["top3"]:
            for rank, t in enumerate(entry["top"]):
                rows.append([entry["request_class"] if rank == 0 else "", f"{entry['requests']} ({entry['empty']}, {entry['area_like']})" if rank == 0 else "",
                             t["context"], _fmt(t["share"]), _fmt(t["inflation"]), _fmt(t["difference"]),
                             _fmt(t.get("share_not_area_like")), _fmt(t.get("difference_not_area_like"))])
        lines.append(_markdown(["request class (network)", "n (no salient context, area-like)", "context class", "share", "infl.", "Δ",
                                "share, not area-like", "Δ, not area-like"], rows))
        if "components_of_every_class" in run:
            lines.append(f"\nThe run explains the components of {len(run['top3'])} classes; the same frames' labels hold "
                         f"{run['components_of_every_class']:,} components of every class under the same policy.\n")
        if run["figure"]:
            lines.append(f"\n![Δ per request class and context class]({run['figure']})\n")
    zones = _zones_table(runs)
    if zones is not None:
        lines.append(f"\n## Components beside class zones\n\n{_extent(runs['cityscapes-component'])}; the score without context "
                     "relative to f_c(x), median over each class's requests (1 = no drop); the last column pairs each "
                     "component with the class zone of its class in its frame: the median of their ratio and the fraction of "
                     "components holding less without context than their zone.\n")
        lines.append(zones)
    (a.out / "context.md").write_text("\n".join(lines) + f"\n{CREDIT}.\n")
    return {"stage": "context", "runs": _clean(runs)}


def stage_errors(a: Analysis) -> dict:
    import gsal_tf as gs

    policy = gs.scale.RequestPolicy(zone="confusion", classes=ERROR_CLASSES, mapping=str(ERROR_MAPPING), min_pixels=16)
    run = a.run("cityscapes-errors", "cityscapes", policy)
    return _confusion_report(a, run, ERROR_CLASSES, "errors", f"Error analysis, Cityscapes MobileNet-EdgeTPU on {a.frames()}")


def stage_bicycle(a: Analysis) -> dict:
    """The paper's bicycle question on the frames that show a bicyclist: the confusion zones of the
    CamVid *bicyclist* label only, on every frame of the split whose labels hold at least
    :data:`BICYCLIST_PIXELS` bicyclist pixels (``--every`` and ``--limit`` do not apply)."""
    import gsal_tf as gs

    policy = gs.scale.RequestPolicy(zone="confusion", classes=(BICYCLIST,), mapping=str(ERROR_MAPPING), min_pixels=16)
    root, split = a.tree_with(BICYCLIST, BICYCLIST_PIXELS)
    run = a.run("cityscapes-bicyclists", "cityscapes", policy, tree=(root, split))
    title = f"The bicycle question, Cityscapes MobileNet-EdgeTPU on CamVid {a.args.split}: the frames with ≥ {BICYCLIST_PIXELS} bicyclist pixels"
    return _confusion_report(a, run, (BICYCLIST,), "bicycle", title)


#: The context columns a confusion report singles out: (heading, key, context class name). With
#: context from the labels: the CamVid bicyclist label (rider and bicycle in one class); with
#: context from the network's prediction: its own bicycle and rider.
LABEL_FOCUS = (("bicyclist label", "bicyclist_label", "bicyclist"),)
OWN_FOCUS = (("predicted bicycle", "predicted_bicycle", "bicycle"), ("predicted rider", "predicted_rider", "rider"))


def stage_bicycle_own(a: Analysis) -> dict:
    """The bicycle question with the network's own prediction as the context classes
    (``RequestPolicy(context_from="predictions")``): the same requests as ``bicycle``; the share
    of the salient context on what the network itself predicts as *bicycle* (and *rider*), which
    CamVid's labels do not separate from the rider."""
    import gsal_tf as gs

    policy = gs.scale.RequestPolicy(zone="confusion", classes=(BICYCLIST,), mapping=str(ERROR_MAPPING), min_pixels=16,
                                    context_from="predictions")
    root, split = a.tree_with(BICYCLIST, BICYCLIST_PIXELS)
    run = a.run("cityscapes-bicyclists-own", "cityscapes", policy, tree=(root, split))
    title = (f"The bicycle question with the network's own prediction as context, Cityscapes MobileNet-EdgeTPU on CamVid "
             f"{a.args.split}: the frames with ≥ {BICYCLIST_PIXELS} bicyclist pixels")
    return _confusion_report(a, run, (BICYCLIST,), "bicycle-own", title, focus=OWN_FOCUS,
                             context_note="Context classes: the network's own prediction (its 19 Cityscapes classes).")


def _confusion_report(a: Analysis, run: dict, classes, stage: str, title: str, focus=LABEL_FOCUS,
                      context_note: str = "Context classes: the CamVid labels.") -> dict:
    """Per (label class, predicted class) pair of a confusion-zone run: requests, f_c(x), score
    without context, the share of the salient context on the ``focus`` context classes (by
    name; the bicyclist label by default) against their inflation baseline, the three largest
    context shares; written to OUT/<stage>.{md,csv} (the JSON by ``main``)."""
    import gsal_tf as gs

    table = gs.scale.store.read_results(run["run"])
    card = gs.scale.store.read_card(run["run"])
    zone_class = np.asarray(table.column("zone_class").to_pylist())
    class_id = np.asarray(table.column("class_id").to_pylist())
    pixels = np.asarray(table.column("request_pixels").to_pylist())
    salient = np.asarray(table.column("salient").to_pylist(), np.float64)
    inflation = np.asarray(table.column("inflation").to_pylist(), np.float64)
    original = np.asarray(table.column("original_score").to_pylist(), np.float64)
    no_context = np.asarray(table.column("no_context_score").to_pylist(), np.float64)
    context = card["settings"]["context_classes"]
    focus = [(heading, key, context.index(name)) for heading, key, name in focus]  # the run card's column of each
    shares = gs.context_stats.per_request_shares(salient)
    baseline = gs.context_stats.per_request_shares(inflation)
    pairs = []
    for k in classes:
        for p in sorted(set(class_id[zone_class == k].tolist())):
            mine = (zone_class == k) & (class_id == p)
            # per pair: the library's aggregate over its requests (one request class = the pair)
            stats = gs.context_stats.aggregate(np.zeros(mine.sum(), np.int64), {key: np.asarray(table.column(key).to_pylist(), np.float64)[mine]
                                                                                 for key in gs.context_stats.SUM_FIELDS})
            order = np.argsort(-np.nan_to_num(stats.share[0], nan=-1))[:3]
            named = mine & ~np.isnan(shares).any(axis=1)
            pairs.append({"label": CAMVID_CLASSES[k], "predicted": CITYSCAPES[p], "correct": _correct(k, p), "requests": int(mine.sum()),
                          "pixels": int(pixels[mine].sum()), "mean_original_score": float(np.mean(original[mine])),
                          "median_no_context_score": float(np.nanmedian(no_context[mine])) if np.isfinite(no_context[mine]).any() else None,
                          **{f"share_on_{key}": float(np.mean(shares[named, c])) if named.any() else None for _, key, c in focus},
                          **{f"inflation_on_{key}": float(np.mean(np.nan_to_num(baseline[named, c]))) if named.any() else None
                             for _, key, c in focus},
                          **{f"share_values_on_{key}": shares[named, c].tolist() for _, key, c in focus},
                          "mean_salient_fraction": float(stats.mean_fraction[0]),
                          "top3": [{"context": context[c], "share": stats.share[0, c], "inflation": stats.inflation_share[0, c],
                                    "difference": stats.difference[0, c]} for c in order]})
    rows = [[p["label"], p["predicted"], "yes" if p["correct"] else "**no**", p["requests"], p["pixels"], _fmt(p["mean_original_score"]),
             _fmt(p["median_no_context_score"]), *[_fmt(p[f"{kind}_on_{key}"]) for _, key, _ in focus for kind in ("share", "inflation")],
             "; ".join(f"{t['context']} {_fmt(t['share'], 2)} ({_fmt(t['inflation'], 2)})" for t in p["top3"])] for p in pairs]
    header = ["label", "predicted (explained)", "correct", "requests", "pixels", "f_c(x)", "median no-context",
              *[f"{kind} on {heading}" for heading, _, _ in focus for kind in ("share", "infl.")], "top-3 context: share (inflation)"]
    answer = _bicycle_answer(pairs, focus[0][1], "the rest of the bicyclist label" if focus[0][1] == "bicyclist_label" else "the predicted bicycle")
    (a.out / f"{stage}.md").write_text(f"# {title}\n\n{_extent(run)}.\n\n"
                                     "Confusion zones: the pixels of a CamVid label class predicted as one Cityscapes class, explained for "
                                     f"that class (grid saliency, {SETTINGS[a.args.explainer]}). {context_note}\n\n"
                                     + _markdown(header, rows) + f"\n**Bicycle question.** {answer}\n\n{CREDIT}.\n")
    _csv(a.out / f"{stage}.csv", header, rows)
    return {"stage": stage, "run": _clean(run), "pairs": _clean(pairs), "bicycle_question": answer}


def _correct(k: int, p: int) -> bool:
    from gsal_tf.datasets import load_mapping

    return int(load_mapping("cityscapes-camvid").to_dataset[p]) == k


def _bicycle_answer(pairs, key: str = "bicyclist_label", where: str = "the rest of the bicyclist label") -> str:
    def pick(predicted):
        return next((p for p in pairs if p["label"] == "bicyclist" and p["predicted"] == predicted), None)

    wrong, right = pick("person"), pick("rider")
    if wrong is None or right is None or wrong[f"share_on_{key}"] is None or right[f"share_on_{key}"] is None:
        return ("not answerable on these frames: " + ", ".join(f"bicyclist->{n}: {p['requests'] if p else 0} requests"
                                                                for n, p in (("person", wrong), ("rider", right))))
    a, b = np.asarray(wrong[f"share_values_on_{key}"]), np.asarray(right[f"share_values_on_{key}"])
    difference = wrong[f"share_on_{key}"] - right[f"share_on_{key}"]
    if min(len(a), len(b)) < MIN_GROUP:
        return (f"bicyclist called person: {len(a)} requests with salient context, called rider: {len(b)} "
                f"(shares {wrong[f'share_on_{key}']:.3f} and {right[f'share_on_{key}']:.3f} on {where}, difference {difference:+.3f}) "
                f"-> too few requests to tell (fewer than {MIN_GROUP} in a group).")
    low, high = _bootstrap_difference(a, b)
    verdict = ("less" if high < 0 else "more" if low > 0 else "not distinguishably less (the interval holds 0)")
    return (f"bicyclist called person ({wrong['requests']} requests): {wrong[f'share_on_{key}']:.3f} of the salient context on "
            f"{where} (inflation {wrong[f'inflation_on_{key}']:.3f}); bicyclist called rider "
            f"({right['requests']} requests): {right[f'share_on_{key}']:.3f} (inflation {right[f'inflation_on_{key}']:.3f}); "
            f"difference {difference:+.3f}, 95 % bootstrap interval [{low:+.3f}, {high:+.3f}] "
            f"-> the bicycle is {verdict} salient when the bicyclist is called a pedestrian.")


#: The fewest requests (with salient context) per group for a bootstrap interval of the bicycle question.
MIN_GROUP = 5


def _bootstrap_difference(a: np.ndarray, b: np.ndarray, draws: int = 10000, seed: int = 0) -> tuple[float, float]:
    """The 95 % interval of mean(a) − mean(b) over bootstrap resamples of each group's requests."""
    rng = np.random.default_rng(seed)
    d = rng.choice(a, (draws, len(a))).mean(axis=1) - rng.choice(b, (draws, len(b))).mean(axis=1)
    low, high = np.quantile(d, [0.025, 0.975])
    return float(low), float(high)


def stage_generalisation(a: Analysis) -> dict:
    import gsal_tf as gs

    out, rows, part_way = {}, [], []
    for zone in ("class", "component"):
        folder = a.out / "runs" / f"cityscapes-{zone}"
        if not (folder / "run.json").is_file():
            print(f"  generalisation: {folder} is missing (run --stage context first); left out", file=sys.stderr)
            continue
        card = gs.scale.store.read_card(folder)
        if card.get("status") != "complete" and not a.args.report_only:
            print(f"  generalisation: {folder} stopped part-way (continue it with --stage context); left out "
                  "(--report-only includes it, marked)", file=sys.stderr)
            continue
        partial = "" if card.get("status") == "complete" else " (part-way)"
        part_way += [zone] if partial else []
        out[zone] = _no_context_quantiles(folder)
        rows += [[zone + partial, name, q["requests"]] + [_fmt(v) for v in q["quantiles"].values()] + [_fmt(q["mean_original_score"])]
                 for name, q in out[zone].items()]
    header = ["zone", "request class", "n"] + [f"q{int(q * 100)}" for q in QUANTILES] + ["mean f_c(x)"]
    (a.out / "generalisation.md").write_text(f"# Score without context, Cityscapes MobileNet-EdgeTPU on {a.frames()}\n\n"
                                             "no_context_score of grid saliency (the request's mean score with all context replaced by the "
                                             "baseline, relative to f_c(x); 1 = no drop), quantiles over requests.\n\n"
                                             + _markdown(header, rows) + f"\n{CREDIT}.\n")
    _csv(a.out / "generalisation.csv", header, rows)
    return {"stage": "generalisation", "requests": None, "quantiles": _clean(out), **({"zones_part_way": part_way} if part_way else {})}


#: the CamVid classes the Cityscapes and ADE20K networks mean alike: all but bicyclist (Cityscapes
#: explains rider, ADE20K bicycle)
SHARED_CLASSES = tuple(range(10))
#: the pairs of stage architectures, by ``--pairs`` name: (left run, right run, CamVid classes compared)
ARCHITECTURE_PAIRS = {"cityscapes-ade20k": ("cityscapes-class", "ade20k-shared", SHARED_CLASSES),
                      "pascal": ("pascal-1.0-people-cars", "pascal-0.5-people-cars", (CAR, PEDESTRIAN))}
#: the runs of stage architectures: name -> (network key, label mapping, CamVid classes explained; None: all).
#: The Cityscapes side is the class-zone run of stage context (all classes; bicyclist left out of the table), not a second run.
ARCHITECTURE_RUNS = {"cityscapes-class": ("cityscapes", "cityscapes-camvid", None),
                     "ade20k-shared": ("ade20k", "ade20k-camvid", SHARED_CLASSES),
                     "pascal-1.0-people-cars": ("pascal-1.0", "pascal-camvid", (CAR, PEDESTRIAN)),
                     "pascal-0.5-people-cars": ("pascal-0.5", "pascal-camvid", (CAR, PEDESTRIAN))}


def architecture_plan(names: str) -> tuple[list, list]:
    """``--pairs`` (comma-separated names of :data:`ARCHITECTURE_PAIRS`, in the order they run, or
    "all") as (runs to do: [(name, network key, mapping, classes)], pairs: [(left, right, classes)])."""
    chosen = list(ARCHITECTURE_PAIRS) if names == "all" else [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in ARCHITECTURE_PAIRS]
    if unknown or not chosen:
        raise SystemExit(f"--pairs: unknown pair {', '.join(map(repr, unknown)) or '(none given)'}; "
                         f"choose from {', '.join(ARCHITECTURE_PAIRS)} or all")
    pairs = [ARCHITECTURE_PAIRS[n] for n in dict.fromkeys(chosen)]
    names_in_order = dict.fromkeys(name for left, right, _ in pairs for name in (left, right))
    return [(name, *ARCHITECTURE_RUNS[name]) for name in names_in_order], pairs


def stage_architectures(a: Analysis) -> dict:
    import gsal_tf as gs
    from gsal_tf import viz
    from gsal_tf.scale import comparison

    plan, pairs = architecture_plan(a.args.pairs)
    runs, sections, pair_records = {}, [], []
    for name, key, mapping, classes in plan:
        if a.args.report_only and not (a.out / "runs" / name / "run.json").is_file():
            continue  # --report-only: the pairs whose runs exist
        policy = gs.scale.RequestPolicy(zone="class", zones_from="labels", classes=classes, mapping=mapping,
                                        **({"min_pixels": 16} if classes is None else {}))
        runs[name] = a.run(name, key, policy)
    header = ["CamVid class", "network", "explained class", "requests", "with context", "f_c(x)", "median no-context", "salient fraction",
              "top-3 context: share (inflation)"]
    for left, right, classes in pairs:
        if left not in runs or right not in runs:
            continue
        # the same requests: the frames and zones both runs hold (gsal stats RUN_A RUN_B)
        cmp = gs.scale.compare_runs([runs[left]["run"], runs[right]["run"]])
        wanted = [CAMVID_CLASSES[c] for c in classes]
        rows = []
        for z, zone in enumerate(cmp.zone_classes):
            if zone not in wanted:
                continue
            for r, run in enumerate(cmp.runs):
                rows.append([zone, run, cmp.explained[r][z], int(cmp.count[r, z]), int(cmp.with_context[r, z]), _fmt(cmp.original[r, z]), _fmt(cmp.no_context[r, z]),
                             _fmt(cmp.salient_fraction[r, z]),
                             "; ".join(f"{name} {_fmt(share, 2)} ({_fmt(infl, 2)})" for name, share, infl in cmp.top(r, z))])
        frames = cmp.shared_samples
        # rows where either network kept context in fewer than FIGURE_MIN_REQUESTS requests are grey
        figure = comparison.difference_figure(cmp, 1, [zone for zone in cmp.zone_classes if zone in wanted], min_requests=FIGURE_MIN_REQUESTS,
                                              subtitle=f"share of the salient context, the same requests ({a.frames()}; {frames} explained by both)",
                                              xlabel="CamVid context class", ylabel="CamVid class (request)")
        png = viz.save_figure(figure, a.out / f"architectures-{left}-vs-{right}.png")
        comparison.write_csv(cmp, a.out / f"architectures-{left}-vs-{right}.csv")
        part_way = [name for name in (left, right) if runs[name].get("status") != "complete"]
        stopped = "".join(f" The run `{name}` stopped part-way ({runs[name]['samples']} frames, {runs[name]['requests']} requests; "
                          "the same command without --report-only continues it)." for name in part_way)
        sections.append(f"## {cmp.runs[0]} vs {cmp.runs[1]}\n\n{frames} frames both runs explained.{stopped} "
                        f"Difference of the shares: `{png.name}` (grey: rows where either network kept context in fewer than "
                        f"{FIGURE_MIN_REQUESTS} requests). *with context*: the requests that kept salient context, the ones the "
                        "shares are means over.\n\n" + _markdown(header, rows))
        pair_records.append({"runs": [left, right], "frames": frames, "part_way": part_way, "requests": [int(v) for v in cmp.count.sum(axis=1)],
                             "figure": png.name})
    (a.out / "architectures.md").write_text(f"# Architecture comparison on {a.frames()}\n\n"
                                            "The same requests (class zones from the CamVid labels, on the frames both networks explained) "
                                            f"by two networks each (grid saliency, {SETTINGS[a.args.explainer]}; `gsal stats RUN_A RUN_B`); context classes: "
                                            "the CamVid labels.\n\n" + "\n\n".join(sections) + f"\n\n{CREDIT}.\n")
    return {"stage": "architectures", "runs": _clean(runs), "pairs": pair_records}


def stage_settings(a: Analysis) -> dict:
    import gsal_tf as gs

    name = "cityscapes-class"
    folders = [Path(a.args.pinned_out) / "runs" / name, a.out / "runs" / name]
    labels = ["pinned", "defaults"]
    for folder in folders:
        if not (folder / "run.json").is_file():
            raise SystemExit(f"--stage settings: {folder} holds no run; run --stage context --context-zones class there first")
    if folders[0].resolve() == folders[1].resolve():
        raise SystemExit("--stage settings compares two results folders: give --out the run of --explainer defaults")
    cmp = gs.scale.compare_runs(folders)
    runs = {label: _rates({**_record(folder, "cityscapes"), **_partial_summary(folder)}) for label, folder in zip(labels, folders)}
    rows, records = [], []
    for z, zone in enumerate(cmp.zone_classes):
        for r, label in enumerate(labels):
            top = cmp.top(r, z)
            rows.append([zone if r == 0 else "", label, int(cmp.count[r, z]), _fmt(cmp.no_context[r, z]), _fmt(cmp.salient_fraction[r, z]),
                         "; ".join(f"{n} {_fmt(share, 2)} ({_fmt(infl, 2)})" for n, share, infl in top)])
        difference = np.abs(cmp.share[1, z] - cmp.share[0, z])
        records.append({"zone_class": zone, "requests": int(cmp.count[0, z]),
                        "largest_share_difference": float(np.nanmax(difference)) if np.isfinite(difference).any() else None,
                        "same_top_context": [n for n, _, _ in cmp.top(0, z, 1)] == [n for n, _, _ in cmp.top(1, z, 1)]})
    header = ["CamVid class (request)", "settings", "requests", "median no-context", "salient fraction", "top-3 context: share (inflation)"]
    same = sum(r["same_top_context"] for r in records)
    spread = [r["largest_share_difference"] for r in records if r["largest_share_difference"] is not None]
    cost = "; ".join(f"{label}: {runs[label]['seconds_per_request']} s per request over its whole run ({runs[label]['requests']} requests)"
                     for label in labels)
    (a.out / "settings.md").write_text(
        f"# The two explainer settings on the same requests\n\n"
        f"Class zones of the CamVid labels on the {cmp.shared_samples} frames both runs explained, Cityscapes MobileNet-EdgeTPU; "
        f"pinned = {SETTINGS['pinned']}; defaults = {SETTINGS['defaults']} (`gsal stats RUN_A RUN_B`). "
        f"The largest context class is the same for {same} of {len(records)} request classes; the largest difference of a "
        f"share is {_fmt(max(spread)) if spread else '–'}. Cost: {cost}.\n\n" + _markdown(header, rows) + f"\n{CREDIT}.\n")
    return {"stage": "settings", "frames": cmp.shared_samples, "runs": _clean(runs), "classes": records}


def moments_comparison(restart: dict, auto: dict, original, target: float, tolerance: float = 1e-6) -> dict:
    """What ``moments="auto"`` changed against ``"restart"`` on the same requests (arrays in one order).

    ``restart``, ``auto``: per request ``salient_mass`` (sum of the saliency over the context) and
    ``preserved_score``; ``area_distance`` (NaN: no salient context); ``original``: f_c(x). A mask
    changed when its salient mass moved by more than ``tolerance`` relative to the larger of the two;
    it keeps the target when ``preserved_score >= target * original``.
    """
    from gsal_tf.context_stats import AREA_LIKE_DISTANCE

    a, b = np.asarray(restart["salient_mass"], np.float64), np.asarray(auto["salient_mass"], np.float64)
    changed = np.abs(b - a) > tolerance * np.maximum(np.maximum(a, b), 1e-12)
    smaller, larger = changed & (b < a), changed & (b > a)
    less = 1.0 - b[smaller] / a[smaller]
    keeps = np.asarray(auto["preserved_score"], np.float64) >= target * np.asarray(original, np.float64)
    area_like = {name: int(np.sum(np.asarray(run["area_distance"], np.float64) < AREA_LIKE_DISTANCE)) for name, run in (("restart", restart), ("auto", auto))}
    return {"requests": int(a.size), "keep_context_restart": int(np.sum(a > 0)), "keep_context_auto": int(np.sum(b > 0)),
            "changed": int(changed.sum()), "smaller": int(smaller.sum()), "larger": int(larger.sum()),
            "less_salient_mass_min": float(less.min()) if less.size else None, "less_salient_mass_max": float(less.max()) if less.size else None,
            "changed_keep_target": int(np.sum(keeps & changed)), "area_like": area_like}


def stage_moments(a: Analysis) -> dict:
    import gsal_tf as gs
    from gsal_tf import context_stats

    if not a.args.limit:
        raise SystemExit("--stage moments explains the first --limit frames twice: give --limit N (e.g. 8)")
    policy = gs.scale.RequestPolicy(zone="class", zones_from="labels", min_pixels=16, mapping="cityscapes-camvid")
    runs, columns = {}, {}
    for moments in ("restart", "auto"):
        name = f"cityscapes-class-moments-{moments}"
        runs[moments] = a.run(name, "cityscapes", policy, options={**EXPLAINERS[a.args.explainer], "moments": moments})
        table = gs.scale.store.read_results(runs[moments]["run"]).sort_by([("sample_index", "ascending"), ("request_index", "ascending")])
        columns[moments] = {c: np.asarray(table.column(c).to_pylist())
                            for c in ("sample_key", "request_index", "salient_mass", "preserved_score", "original_score")}
        columns[moments]["area_distance"] = _area_distance(table)
    same = all(np.array_equal(columns["restart"][c], columns["auto"][c]) for c in ("sample_key", "request_index"))
    if not same:
        raise SystemExit("--stage moments: the two runs explained different requests; remove OUT/runs/cityscapes-class-moments-* and run again")
    result = moments_comparison(columns["restart"], columns["auto"], columns["restart"]["original_score"], EXPLAINERS[a.args.explainer]["target"])
    seconds = {m: runs[m]["explainer_seconds_all_sessions"] for m in runs}
    result["seconds"] = seconds
    result["time_ratio_auto_over_restart"] = round(seconds["auto"] / seconds["restart"], 3) if seconds["restart"] else None
    r = result
    rows = [[m, r["requests"], r[f"keep_context_{m}"], r["area_like"][m], f"{seconds[m]:.1f}"] for m in ("restart", "auto")]
    less = ("–" if r["less_salient_mass_min"] is None
            else f"{100 * r['less_salient_mass_min']:.0f}–{100 * r['less_salient_mass_max']:.0f} % less salient mass")
    (a.out / "moments.md").write_text(
        f"# The optimiser's moments: restart vs auto on the same requests\n\n"
        f"Class zones of the CamVid labels on {a.frames()}, Cityscapes MobileNet-EdgeTPU, grid saliency with {SETTINGS[a.args.explainer]} "
        f"(restart: every return to the last mask that kept the target restarts Adam's moments), and the same with moments auto "
        f"(a mask that stayed uniform is explained again with them kept). auto changed {r['changed']} of {r['requests']} masks: "
        f"{r['smaller']} smaller ({less}), {r['larger']} larger; {r['changed_keep_target']} of the changed keep the target "
        f"(preserved ≥ τ·f_c(x)). Time: auto {r['time_ratio_auto_over_restart']}× restart. area-like = salient context spread "
        f"as the context classes' areas (`area_distance` < {context_stats.AREA_LIKE_DISTANCE:g}).\n\n"
        + _markdown(["moments", "requests", "keep context", "area-like", "seconds explaining"], rows) + f"\n{CREDIT}.\n")
    return {"stage": "moments", "runs": _clean(runs), "comparison": _clean(result)}


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (``argv``; default ``sys.argv[1:]``), a bad class name refused."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camvid", default=str(SHARED / "research-only" / "camvid"), help="the SegNet CamVid tree")
    parser.add_argument("--models", default=str(SHARED / "models"), help="the folder of the .tflite networks")
    parser.add_argument("--split", default="test", choices=("test", "val"))
    parser.add_argument("--limit", type=int, default=None, help="only the first N frames of the split")
    parser.add_argument("--every", type=int, default=1,
                        help="explanation stages: every K-th frame of the split (a spread-out sample; mIoU reads every frame)")
    parser.add_argument("--out", default=str(HERE / "results" / "camvid"), help="results folder")
    parser.add_argument("--stage", choices=STAGES + ("all",), default="all")
    parser.add_argument("--min-component", type=int, default=64, help="smallest connected component explained (pixels)")
    parser.add_argument("--component-classes", default="all",
                        help="CamVid classes whose connected components are explained, comma-separated (e.g. "
                             "'car,pedestrian,bicyclist,pole,sign symbol,fence'), or 'all'")
    parser.add_argument("--context-zones", default="class,component", choices=("class,component", "class", "component"),
                        help="zones of stage context (and generalisation): class zones, connected components, or both")
    parser.add_argument("--pairs", default="all",
                        help="stage architectures: the pairs to run and report, comma-separated, in this order "
                             f"({', '.join(ARCHITECTURE_PAIRS)}), or 'all'")
    parser.add_argument("--report-only", action="store_true",
                        help="write the tables from the runs as far as their shards go, explaining nothing (a run still going, or stopped)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local")
    parser.add_argument("--pinned-out", default=str(HERE / "results" / "camvid"),
                        help="stage settings: the results folder of the --explainer pinned runs")
    parser.add_argument("--explainer", choices=tuple(EXPLAINERS), default="pinned",
                        help="grid saliency's settings: pinned (the sampled tables) or defaults (the full-split runs); "
                             "give each its own --out, as a run resumes only with its own settings")
    args = parser.parse_args(argv)
    component_class_ids(args.component_classes)  # a bad name stops here, before anything is written
    architecture_plan(args.pairs)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    analysis = Analysis(args)
    # "all": every stage that explains or reads one results folder (settings reads two)
    stages = tuple(stage for stage in STAGES if stage not in COMPARISONS) if args.stage == "all" else (args.stage,)
    for stage in stages:
        began = time.perf_counter()
        print(f"stage {stage} ...", file=sys.stderr, flush=True)
        result = globals()[f"stage_{stage.replace('-', '_')}"](analysis)
        result["wall_seconds_stage"] = round(time.perf_counter() - began, 2)
        took = result["wall_seconds_stage"]
        previous = analysis.out / f"{stage}.json"
        if not analysis.worked and previous.is_file():  # only read back: keep the time of the invocation that did the work
            result["wall_seconds_stage"] = json.loads(previous.read_text()).get("wall_seconds_stage", took)
        analysis.worked = False
        result.update(analysis.data())
        result["explainer_options"] = EXPLAINERS[args.explainer]
        analysis.write(f"{stage}.json", _clean(result))
        print(f"stage {stage}: {took} s", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
