"""What a dataset run shows a person: the figures of its context statistics and one
self-contained HTML report (``gsal stats RESULTS --html``).

Figures (:func:`figures`, the ones ``gsal stats`` writes): the share of the salient context on
each context class per request class, its difference to the inflation baseline, the mean
saliency by distance to the request, and the mean salient fraction of the context per class.

The HTML report (:func:`write_html_report`) is one file with everything inlined (CSS, PNGs as
data URIs; no script, no network): the run card (model, explainer, data, totals, versions), per
request class the context classes with the largest share (share, inflation share, difference),
the figures, and a gallery of the most and of the least context-dependent requests with their
saliency overlays. Context dependence of a request (:func:`context_dependence`)::

    grid saliency:   d = 1 − no_context_score     (the prediction's drop without any context;
                                                    no_context_score is relative to f_c(x))
    other explainers: d = salient_mass / context_area   (the salient fraction of the context)

Overlays need the per-pixel maps (``explain-dataset --maps``); the image underneath is read
again from the run's data folder when it is still there (grey backdrop otherwise).
"""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from gsal_tf.errors import GsalInputError
from gsal_tf.scale import store

__all__ = ["figures", "context_dependence", "write_html_report", "class_label", "format_share"]


def figures(stats, card: dict, *, min_requests: int = 1, title: Optional[str] = None,
            context_label: str = "context class") -> dict:
    """{name: matplotlib Figure} of the run's context statistics (``share``, ``difference``,
    ``distance``, ``size``), labelled with the run's class names.

    The rows of ``share`` and ``difference`` read ``class (k/n)``: k of the class's n requests
    kept salient labelled context (``stats.with_context``). A row with k < ``min_requests`` is grey
    ("—"): its shares rest on too few masks to read, and a single one can set the colour scale
    (CamVid's full test split: 1 of 233 road zones keeps context). ``title`` replaces the
    ``difference`` figure's title (the paper's context figure); ``context_label`` names the
    columns (e.g. which label set the context classes come from).
    """
    from gsal_tf import viz

    _check_min_requests(min_requests)
    names = [class_label(card, int(c)) for c in stats.classes]
    with_context = stats.with_context
    counted = [f"{r} ({int(k)}/{int(n)})" for r, k, n in zip(names, with_context, stats.count)]
    readable = (with_context >= min_requests)[:, None]
    context = card["settings"]["context_classes"]
    bins = [f">{a:g}" if not np.isfinite(b) else f"≤{b:g}" for a, b in zip(stats.edges[:-1], stats.edges[1:])]
    counted_axis = "request class (with salient context / all)"
    return {
        "share": viz.matrix_figure(np.where(readable, stats.share, np.nan), counted, context, "share of the salient context on each class",
                                   vmax=1.0, colorbar_label="share of salient context", xlabel=context_label, ylabel=counted_axis),
        "difference": viz.matrix_figure(np.where(readable, stats.difference, np.nan), counted, context,
                                        title or "grid saliency − inflation baseline", colorbar_label="share − inflation share",
                                        xlabel=context_label, ylabel=counted_axis, diverging=True),
        "distance": viz.matrix_figure(stats.profile, names, bins, "mean saliency by distance to the request", colorbar_label="mean saliency",
                                      xlabel="distance (px)", ylabel="request class"),
        "size": viz.bar_figure({r: (float(s), None) for r, s in zip(names, stats.mean_fraction)}, "mean salient context per class",
                               chance=None, ylabel="salient fraction of the context"),
    }


def _check_min_requests(min_requests) -> None:
    if isinstance(min_requests, bool) or not isinstance(min_requests, (int, np.integer)) or min_requests < 0:
        raise GsalInputError(f"min_requests must be a number of requests (0 or more), got {min_requests!r}")


def context_dependence(no_context_score: np.ndarray, salient_mass: np.ndarray, context_area: np.ndarray, method: str) -> np.ndarray:
    """(N,) how much each request's prediction depends on context (module docstring)."""
    if method == "grid_saliency":
        return 1.0 - np.asarray(no_context_score, np.float64)
    area = np.asarray(context_area, np.float64)
    return np.divide(np.asarray(salient_mass, np.float64), area, out=np.full(area.shape, np.nan), where=area > 0)


def write_html_report(folder, path=None, *, gallery: int = 6, top: int = 5, min_requests: int = 1) -> Path:
    """Write the HTML report of the results folder ``folder`` to ``path`` (default
    ``folder/stats/report.html``); ``gallery`` requests at each end of the context-dependence
    ranking, ``top`` context classes per request class, heat-map rows with fewer than
    ``min_requests`` requests keeping context grey (:func:`figures`). Written atomically;
    returns the path."""
    from gsal_tf import viz
    from gsal_tf.scale.job import load_stats

    if isinstance(gallery, bool) or not isinstance(gallery, int) or gallery < 0:
        raise GsalInputError(f"gallery must be a non-negative number of requests, got {gallery!r}")
    _check_min_requests(min_requests)
    table = store.read_results(folder)
    stats, card = load_stats(folder, table)
    column = lambda name: np.asarray(table.column(name).to_pylist())  # noqa: E731
    method = card["settings"]["explainer"].get("method", "grid_saliency")
    dependence = context_dependence(column("no_context_score"), column("salient_mass"), column("context_area"), method)
    images = {name: _data_uri(viz.png_bytes(fig)) for name, fig in figures(stats, card, min_requests=min_requests).items()}
    ranked = [i for i in np.argsort(-np.nan_to_num(dependence, nan=-np.inf)) if np.isfinite(dependence[i])]
    most, least = ranked[:gallery], ranked[::-1][:gallery]
    maps = _MapReader(Path(folder))
    source = _reopen_source(card)
    cards = {kind: [_gallery_card(int(i), table, dependence, method, card, maps, source) for i in chosen]
             for kind, chosen in (("most", most), ("least", least))}
    page = _page(card, stats, top, images, cards, maps.available, method, min_requests)
    path = Path(path) if path is not None else Path(folder) / "stats" / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


# -- pieces ---------------------------------------------------------------------------------------


def class_label(card: dict, class_id: int) -> str:
    """The run's name of class ``class_id``: the network's class names of its label mapping,
    else its data's class names, else \"class k\"."""
    mapping = card["settings"].get("policy", {}).get("mapping") or {}
    names = mapping.get("network_classes") or card["settings"]["data"].get("class_names") or []
    return names[class_id] if 0 <= class_id < len(names) else f"class {class_id}"


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class _MapReader:
    """Per-request saliency and request maps of a results folder, by row number (shards in order)."""

    def __init__(self, folder: Path):
        pa = store.pyarrow()
        self.folder = folder
        self.offsets = []  # (first row, shard path)
        first = 0
        for shard in sorted((folder / store.SHARD_DIR).glob("part-*.parquet")):
            self.offsets.append((first, shard))
            first += pa.parquet.read_metadata(shard).num_rows
        self.available = (folder / store.MAP_DIR).is_dir() and any((folder / store.MAP_DIR).glob("part-*.npz"))

    def get(self, row: int):
        """(saliency (H,W) float32, request (H,W) uint8 0/1) of ``row``, or None without maps.

        Reads only this row's three members of its shard's ``.npz`` (a shard of many photo-sized
        maps is never loaded whole)."""
        if not self.available:
            return None
        first, shard = max((o for o in self.offsets if o[0] <= row), key=lambda o: o[0])
        path = self.folder / store.MAP_DIR / f"{shard.stem}.npz"
        if not path.is_file():
            return None
        i = row - first
        with np.load(path) as data:  # lazy: a member is read when it is indexed
            shape = tuple(int(v) for v in data[f"shape_{i}"])
            request = np.unpackbits(data[f"request_{i}"], count=shape[0] * shape[1]).reshape(shape)
            return data[f"saliency_{i}"].astype(np.float32), request


def _reopen_source(card: dict):
    """The run's data source opened again from the card (None when that is not possible)."""
    from gsal_tf.datasets import open_source

    data = card["settings"]["data"]
    images = data.get("images")
    if not images or not Path(images).exists():
        return None
    try:
        return open_source(images, data.get("layout", "auto"), labels=data.get("labels"), split=data.get("split"))
    except Exception:  # the folder changed since the run: overlays go without the image
        return None


def _sample_image(source, index: int) -> Optional[np.ndarray]:
    if source is None:
        return None
    try:
        sample = next(iter(source.iter_from(index)), (None, None))[1]
    except Exception:
        return None
    return getattr(sample, "image", None)


def _gallery_card(row: int, table, dependence, method: str, card: dict, maps: _MapReader, source) -> dict:
    from gsal_tf import viz

    value = lambda name: table.column(name)[row].as_py()  # noqa: E731
    info = {"key": str(value("sample_key")), "request": int(value("request_index")), "class": class_label(card, int(value("class_id"))),
            "dependence": float(dependence[row]), "preserved": value("preserved_score"), "pixels": int(value("request_pixels")), "image": None}
    found = maps.get(row)
    if found is not None:
        saliency, request = found
        image = _sample_image(source, int(value("sample_index")))
        if image is not None and image.shape[:2] != saliency.shape:
            image = None
        # Drawn at screen resolution (viz.thumbnail_figure): a photo-sized card costs its three
        # maps while it is drawn, one card at a time.
        title = f"{info['class']} · d = {info['dependence']:.2f}"
        info["image"] = _data_uri(viz.png_bytes(viz.thumbnail_figure(saliency, request, title, image)))
    return info


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#1d1d1f;padding:0 1rem}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.meta{color:#555;font-size:.9rem}table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}th{background:#f5f5f7}
td.l,th.l{text-align:left}.pos{color:#0a7d32}.neg{color:#b3261e}.few{color:#9e9e9e}
.figs{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1rem;align-items:start}.figs img{width:100%;border:1px solid #eee}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.8rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.4rem;font-size:.8rem;background:#fafafa}
.card img{width:100%}.note{background:#fff7e0;border-left:3px solid #e0a800;padding:.4rem .7rem;font-size:.85rem}
"""


def format_share(value, signed: bool = False) -> str:
    """A share for tables: two decimals (signed: with its sign), '—' when not finite."""
    if value is None or not np.isfinite(value):
        return "—"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def _page(card: dict, stats, top: int, images: dict, cards: dict, have_maps: bool, method: str, min_requests: int = 1) -> str:
    e = html.escape
    settings = card["settings"]
    context = settings["context_classes"]
    totals = card.get("totals", {})
    with_context = stats.with_context
    rows = []
    for r, c in enumerate(stats.classes):
        order = [k for k in np.argsort(-np.nan_to_num(stats.share[r], nan=-1))[:top]]
        few = with_context[r] < min_requests  # the shares rest on too few masks: shown, but grey
        for j, k in enumerate(order):
            diff = stats.difference[r, k]
            sign = "few" if few else "pos" if diff >= 0.005 else "neg" if diff <= -0.005 else ""
            share_class = ' class="few"' if few else ""
            rows.append("<tr>" + (f'<td class="l" rowspan="{len(order)}">{e(class_label(card, int(c)))}</td><td rowspan="{len(order)}">{stats.count[r]}</td>'
                                  f'<td rowspan="{len(order)}">{with_context[r]}</td><td rowspan="{len(order)}">{stats.area_like[r]}</td>'
                                  f'<td rowspan="{len(order)}">{format_share(stats.mean_fraction[r])}</td>' if j == 0 else "")
                        + f'<td class="l">{e(context[k])}</td><td{share_class}>{format_share(stats.share[r, k])}</td>'
                        + f'<td{share_class}>{format_share(stats.inflation_share[r, k])}</td>'
                        + f'<td class="{sign}">{format_share(diff, signed=True)}</td></tr>')
    few_note = (f" Grey: fewer than {min_requests} requests of the class kept salient context, too few masks to read." if min_requests > 1 else "")
    facts = [("model", settings["model"]["name"]), ("explainer", json.dumps(settings["explainer"], sort_keys=True)),
             ("data", json.dumps({k: v for k, v in settings["data"].items() if k != "class_names"}, sort_keys=True)),
             ("requests", totals.get("requests", "?")), ("samples", totals.get("samples", "?")), ("skipped", totals.get("skipped", 0)),
             ("status", card.get("status", "?")), ("versions", json.dumps(card.get("versions", {}), sort_keys=True))]
    dependence = ("1 − score without any context (relative to the original score)" if method == "grid_saliency"
                  else "salient fraction of the context")

    def gallery(kind: str) -> str:
        items = []
        for c in cards[kind]:
            picture = f'<img alt="saliency overlay" src="{c["image"]}">' if c["image"] else ""
            items.append(f'<div class="card">{picture}<div><b>{e(c["class"])}</b> · {e(c["key"])} #{c["request"]}</div>'
                         f'<div>d = {format_share(c["dependence"])} · preserved {format_share(c["preserved"])} · {c["pixels"]} px</div></div>')
        return '<div class="gallery">' + "".join(items) + "</div>" if items else "<p>no requests</p>"

    no_maps = "" if have_maps else ('<p class="note">No per-pixel maps in this run: the gallery lists the requests without '
                                    "overlays. Rerun <code>gsal explain-dataset</code> with <code>--maps</code> to see them.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>gsal context statistics — {e(settings["model"]["name"])}</title><style>{_CSS}</style></head>
<body>
<h1>Which context does the network use?</h1>
<p class="meta">grid-saliency context statistics of a dataset run (gsal-tf). Share: of the salient context of a request class,
the part on each context class; inflation: the same for the request grown to the same amount of context (what proximity
alone gives); Δ = share − inflation. Area-like: requests whose salient context lies on the context classes as their areas
do (a mask that stayed uniform says which classes are large, not which the prediction reads). With context: the
requests whose mask kept salient labelled context; the shares are means over them.{e(few_note)}</p>
<h2>Run</h2>
<table>{"".join(f'<tr><th class="l">{e(str(k))}</th><td class="l">{e(str(v))}</td></tr>' for k, v in facts)}</table>
<h2>Salient context by request class</h2>
<table><tr><th class="l">request class</th><th>n</th><th>with context</th><th>area-like</th><th>salient fraction</th><th class="l">context class</th><th>share</th><th>inflation</th><th>Δ</th></tr>
{"".join(rows)}</table>
<h2>Heat maps</h2>
<div class="figs">{"".join(f'<img alt="{e(name)}" src="{uri}">' for name, uri in images.items())}</div>
<h2>Most context-dependent requests</h2>
<p class="meta">ranked by d = {e(dependence)}</p>{no_maps}
{gallery("most")}
<h2>Least context-dependent requests</h2>
{gallery("least")}
</body></html>
"""
