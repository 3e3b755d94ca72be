"""Figures of explanations: one look for every picture gsal draws (matplotlib, no display needed).

Every figure carries its own meaning, so it reads without a caption:

- **panels** have titles: the image with the request outlined, the model's prediction, the
  grid saliency; a model's name heads its panels (:func:`explanation_figure`,
  :func:`comparison_figure`);
- the **request** R is outlined in one colour (:data:`REQUEST_COLOUR`) in every panel and named
  in the legend;
- the **prediction** is coloured by class with a legend of the classes it shows, by *name*
  (:func:`class_names`: a zoo entry's ``class_names``, else "class k") and colour
  (:func:`class_colours`; a class named "background" is light grey);
- the **saliency** has a colour bar: the kept fraction of each grid cell, 0 (context removed)
  to 1 (context kept), colour map :data:`SALIENCY_CMAP`;
- the **key numbers** are on the figure: the class explained, the preserved score (mean
  f_c(x')/f_c(x) over R with the kept context) and the score without any context.

Benchmark figures use the same fonts and colour maps: :func:`matrix_figure` (a value per cell
with a colour bar, e.g. CBD per method and digit) and :func:`bar_figure` (means with their
spread and a dashed chance line).

Every drawing function returns a :class:`matplotlib.figure.Figure` (tests read its axes, titles,
legend texts and colour bars); :func:`save_figure` writes it as PNG (default), SVG or PDF, chosen
by the file suffix or ``fmt``. Figures are built on the Agg canvas without pyplot, so nothing
needs a display and no global figure state is kept. matplotlib is imported inside the functions:
importing this module costs nothing.

Sizes: panels of 2.3 in, fonts of 8-10 pt, PNG at 150 dpi — a three-panel explanation is about
1100 px wide, legible as a README picture and at the width of a paper's text column.

Images of any size are drawn at screen resolution: before drawing, the image, the saliency, the
prediction and the request are brought to at most :data:`SCREEN_SIDE` pixels along the long side
(:func:`screen_shape`, :func:`to_screen`: area-averaged, labels and masks nearest in their own
dtype), and the request outline is traced on that mask; a figure of a 48 MP photo costs what one
of a 1 MP photo does. Pass screen-sized arrays (e.g. ``Fit.to_image(values, size=...)``) to keep
full-resolution copies out of memory altogether.

Text is data, never markup: mathtext and LaTeX are off in every figure (``text.parse_math``,
``text.usetex``), so class, model and file names containing ``$`` or backslashes are drawn as
written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = [
    "FIGURE_FORMATS", "DPI", "PANEL_INCHES", "SALIENCY_CMAP", "REQUEST_COLOUR", "SALIENCY_LABEL",
    "BACKGROUND_COLOUR", "SALIENCY_ALPHA", "SCREEN_SIDE", "OUTLINE_SIDE", "class_names", "class_label",
    "class_colours", "to_display", "screen_shape", "to_screen", "explanation_figure", "comparison_figure",
    "matrix_figure", "bar_figure", "thumbnail_figure", "png_bytes", "figure_format", "save_figure",
]

#: Formats :func:`save_figure` writes; PNG is the default, SVG and PDF are vector.
FIGURE_FORMATS = ("png", "svg", "pdf")
#: Resolution of PNG figures (dots per inch).
DPI = 150
#: Side of one image panel in inches.
PANEL_INCHES = 2.3
#: Colour map of the saliency (perceptually uniform, dark = context removed, bright = kept).
SALIENCY_CMAP = "inferno"
#: The request outline: white with a black edge, visible on any image, class colour and saliency.
REQUEST_COLOUR = "white"
#: Label of every saliency colour bar.
SALIENCY_LABEL = "saliency: kept fraction of each cell"
#: Colour of a class named "background".
BACKGROUND_COLOUR = "#d9d9d9"
#: Weight of the saliency drawn over the grey image in the saliency panels.
SALIENCY_ALPHA = 0.8

_STYLE = {
    "font.size": 9,
    "axes.titlesize": 9,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 8,
    "figure.titlesize": 10,
    "axes.titlepad": 4,
    "svg.fonttype": "none",  # SVG text stays text (searchable, editable)
    "pdf.fonttype": 42,
    # Class, model and file names come from users and datasets: "$x^2$" is a name, not mathtext
    # (which would fail to parse many names), and a user's matplotlibrc must not send it to LaTeX.
    "text.parse_math": False,
    "text.usetex": False,
}

#: Long side, in pixels, of every image drawn in a figure (images larger than this are
#: area-averaged down first). A panel is PANEL_INCHES x DPI = 345 px in a PNG; 1024 px keeps three
#: times that for zooming into SVG/PDF figures, at 3 MB per float32 RGB image whatever the photo.
SCREEN_SIDE = 1024
#: Resolution, in pixels along the long side, at which the request outline is traced: a smaller
#: mask is upsampled (nearest, at most 8x) so its outline follows pixel edges, not pixel centres.
OUTLINE_SIDE = 1024


# --------------------------------------------------------------------------- names and colours


def class_names(model=None, num_classes: int | None = None, names: Sequence[str] | None = None) -> list[str]:
    """The names of a model's classes: ``names`` if given, else its zoo entry's
    (``model.zoo_entry.class_names``), else "class 0" ... "class K-1".

    For TextureMNIST networks outside the zoo pass
    ``names=gsal_tf.benchmark.classes.CLASS_NAMES``. With ``num_classes`` the list is extended
    with "class k" names (or cut) to that length.
    """
    if names is None:
        entry = getattr(model, "zoo_entry", None)
        names = getattr(entry, "class_names", None)
    names = [str(n) for n in (names or [])]
    if num_classes is None:
        return names
    return names[:num_classes] + [f"class {k}" for k in range(len(names), num_classes)]


def class_label(class_id: int, names: Sequence[str] | None = None) -> str:
    """How a class is named on figures and in tables: 'class 3' when the name is just the id, else
    'person (class 15)' / '9 (class 9)' is shortened to 'class 9'."""
    name = names[class_id] if names is not None and 0 <= class_id < len(names) else None
    if name is None or name in (str(class_id), f"class {class_id}"):
        return f"class {class_id}"
    return f"{name} (class {class_id})"


def class_colours(num_classes: int, names: Sequence[str] | None = None) -> np.ndarray:
    """(K,3) float RGB in [0,1], one fixed colour per class id: Tableau's 20 colours (the ten
    strong ones first), then evenly spread hues; a class named "background" is light grey."""
    from matplotlib import colormaps
    from matplotlib.colors import hsv_to_rgb, to_rgb

    tab20 = colormaps["tab20"].colors
    base = [tab20[i] for i in range(0, 20, 2)] + [tab20[i] for i in range(1, 20, 2)]
    extra = max(num_classes - len(base), 0)
    base += [tuple(hsv_to_rgb((((k * 0.618034) % 1.0), 0.65, 0.85))) for k in range(extra)]
    colours = np.array(base[:max(num_classes, 1)], np.float64)
    for k, name in enumerate(names or []):
        if k < len(colours) and str(name).lower() == "background":
            colours[k] = to_rgb(BACKGROUND_COLOUR)
    return colours


# --------------------------------------------------------------------------- image helpers


def to_display(image: np.ndarray) -> np.ndarray:
    """A float image (H,W,C) of any range as float RGB (H,W,3) in [0,1], min-max stretched."""
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] != 3:
        img = img[..., :3] if img.shape[2] > 3 else np.concatenate([img, img[..., -1:]], axis=2)
    lo, hi = float(img.min()), float(img.max())
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)


def _grey(image: np.ndarray) -> np.ndarray:
    return to_display(image).mean(axis=2)


def screen_shape(shape, side: int = SCREEN_SIDE) -> tuple[int, int]:
    """(h, w) at which an image of ``shape`` (H, W, ...) is drawn: scaled to at most ``side``
    pixels along its long side, aspect ratio kept (each side rounded, at least 1); an image that
    is small enough keeps its size."""
    height, width = (int(v) for v in shape[:2])
    scale = min(1.0, side / max(height, width, 1))
    if scale == 1.0:
        return height, width
    return max(1, round(height * scale)), max(1, round(width * scale))


def to_screen(values: np.ndarray, shape, nearest: bool = False) -> np.ndarray:
    """``values`` (H,W) or (H,W,C) brought to ``shape`` (h,w) for drawing: area-averaged to float32
    when shrinking (images, saliency; bilinear when enlarging), or nearest in their own dtype
    (``nearest=True``: label maps, masks). Returned as they are when already of that size."""
    import cv2

    from gsal_tf.loading import resize_nearest

    values = np.asarray(values)
    h, w = (int(v) for v in shape[:2])
    if values.shape[:2] == (h, w):
        return values
    if nearest:
        return resize_nearest(values, (h, w))
    shrink = h <= values.shape[0] and w <= values.shape[1]
    out = cv2.resize(np.ascontiguousarray(values, np.float32), (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return out.reshape((h, w) + values.shape[2:])


def _on_screen(image, request=None, saliency=None, prediction=None):
    """The arrays of one figure panel set, all (H,W,...) of the image's size, at its screen shape."""
    shape = screen_shape(np.shape(image))
    return (to_screen(image, shape),
            None if request is None else to_screen(request, shape, nearest=True),
            None if saliency is None else to_screen(saliency, shape),
            None if prediction is None else to_screen(prediction, shape, nearest=True))


def _outline(ax, request: np.ndarray) -> None:
    """Draw the outline of the 0/1 ``request`` (H,W) on pixel edges: contours of the mask
    upsampled (nearest) by an integer factor to about :data:`OUTLINE_SIDE` pixels along its long
    side (at most 8x; a mask that is already that large is traced as it is), mapped back to the
    image's pixel coordinates. Memory: one float32 mask of at most max(OUTLINE_SIDE, H) x
    max(OUTLINE_SIDE, W) pixels."""
    mask = np.asarray(request) > 0.5
    if not mask.any() or mask.all():
        return
    upsample = int(min(8, max(1, OUTLINE_SIDE // max(mask.shape))))
    up = mask.astype(np.float32)
    if upsample > 1:
        up = up.repeat(upsample, axis=0).repeat(upsample, axis=1)
    coords_y = (np.arange(up.shape[0]) + 0.5) / upsample - 0.5
    coords_x = (np.arange(up.shape[1]) + 0.5) / upsample - 0.5
    ax.contour(coords_x, coords_y, up, levels=[0.5], colors=[REQUEST_COLOUR], linewidths=1.2).set(path_effects=_OUTLINE_EFFECTS())


def _OUTLINE_EFFECTS():
    from matplotlib import patheffects

    return [patheffects.Stroke(linewidth=2.6, foreground="black"), patheffects.Normal()]


def _image_axes(ax, title: str, label: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    ax.set_label(label)


#: How images are resampled onto a panel: matplotlib's "antialiased" filters when the data has
#: more pixels than the panel (no aliasing of a photo) and draws crisp pixels when it has far
#: fewer (a 16x16 or 64x64 input).
_INTERPOLATION = "antialiased"


def _draw_image(ax, image, request) -> None:
    ax.imshow(to_display(image), interpolation=_INTERPOLATION)
    if request is not None:
        _outline(ax, request)
    _image_axes(ax, "image, request outlined", "image")


def _draw_prediction(ax, labels, request, colours, title) -> None:
    labels = np.clip(np.asarray(labels, np.int64), 0, len(colours) - 1)
    ax.imshow(colours[labels], interpolation=_INTERPOLATION)
    if request is not None:
        _outline(ax, request)
    _image_axes(ax, title, "prediction")


def _draw_saliency(ax, image, saliency, request, title):
    ax.imshow(_grey(image), cmap="gray", vmin=0, vmax=1, interpolation=_INTERPOLATION)
    shown = ax.imshow(np.asarray(saliency, np.float32), cmap=SALIENCY_CMAP, vmin=0.0, vmax=1.0, alpha=SALIENCY_ALPHA,
                      interpolation=_INTERPOLATION)
    if request is not None:
        _outline(ax, request)
    _image_axes(ax, title, "saliency")
    return shown


def _legend_handles(present, colours, names, explained=None):
    """Legend entries: the request outline, then one patch per class in ``present`` by name."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color=REQUEST_COLOUR, linewidth=1.5, path_effects=_OUTLINE_EFFECTS(), label="request R")]
    for k in present:
        label = names[k] if k < len(names) and names[k] != str(k) else f"class {k}"  # digit classes: "class 9", not "9"
        handles.append(Patch(facecolor=colours[k], edgecolor="0.3", linewidth=0.5, label=label + (" (explained)" if k == explained else "")))
    return handles


def _class_legend(host, present, colours, names, explained=None):
    """The legend of predicted classes: in an empty axes ``host``, or under a whole Figure ``host``."""
    handles = _legend_handles(present, colours, names, explained)
    options = {"handles": handles, "frameon": False, "handlelength": 1.4, "title": "predicted classes", "title_fontsize": 8}
    if hasattr(host, "set_axis_off"):
        legend = host.legend(loc="center", ncol=1 if len(handles) <= 8 else 2, **options)
    else:
        legend = host.legend(loc="outside lower center", ncol=min(len(handles), 6), columnspacing=1.2, **options)
    legend.set_label("class legend")
    return legend


def _colourbar(fig, mappable, axes):
    bar = fig.colorbar(mappable, ax=axes, fraction=0.05, pad=0.03, shrink=0.9)
    bar.set_label(SALIENCY_LABEL)
    bar.set_ticks([0.0, 0.25, 0.5, 0.75, 1.0], labels=["0 removed", "0.25", "0.5", "0.75", "1 kept"])
    bar.ax.set_label("colorbar")
    return bar


def _scores_text(preserved: float | None, no_context: float | None) -> str:
    parts = []
    if preserved is not None:
        parts.append(f"preserved score {preserved:.3f}")
    if no_context is not None:
        parts.append(f"score without context {no_context:.3f}")
    return "\n".join(parts)


def _present(labels, request, class_id, limit: int = 12) -> list[int]:
    """Classes to name in the legend: the explained one, those in the request, then the most
    frequent others (at most ``limit``), in id order."""
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels.ravel())
    inside = set(np.unique(labels[np.asarray(request) > 0.5]).tolist()) if request is not None else set()
    chosen = {int(class_id)} | inside
    for k in np.argsort(-counts, kind="stable"):
        if len(chosen) >= limit or counts[k] == 0:
            break
        chosen.add(int(k))
    return sorted(chosen)


# --------------------------------------------------------------------------- explanation figures


def explanation_figure(image: np.ndarray, request: np.ndarray, saliency: np.ndarray, class_id: int, *,
                       prediction: np.ndarray | None = None, class_names: Sequence[str] | None = None,
                       model_name: str | None = None, preserved_score: float | None = None,
                       no_context_score: float | None = None, method: str = "grid saliency"):
    """One explanation: image with the request, the model's prediction (if given), the saliency.

    All maps have the image's size (H,W); they are drawn at screen resolution (:func:`to_screen`,
    at most :data:`SCREEN_SIDE` px along the long side), so the figure's memory does not grow
    with the photo.

    Parameters
    ----------
    image : (H,W,C) float — the explained image (any range; shown min-max stretched).
    request : (H,W) 0/1 — the request mask R (outlined in every panel).
    saliency : (H,W) float in [0,1] — the kept fraction of each pixel's grid cell.
    class_id : int — the class explained.
    prediction : (H,W) int labels, optional — the model's per-pixel classes; adds the prediction
        panel and the class legend.
    class_names : names of the classes (see :func:`class_names`); default "class k".
    model_name : str, optional — shown in the figure title.
    preserved_score, no_context_score : float, optional — written under the saliency panel.
    method : str — the saliency panel's title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    image, request, saliency, prediction = _on_screen(image, request, saliency, prediction)
    with rc_context(_STYLE):
        panels = 3 if prediction is not None else 2
        fig = Figure(figsize=(PANEL_INCHES * panels + 0.9, PANEL_INCHES + (1.6 if prediction is not None else 1.0)), dpi=DPI,
                     layout="constrained")
        axes = fig.subplots(1, panels)
        _draw_image(axes[0], image, request)
        num_classes = max(int(np.max(prediction)) + 1 if prediction is not None else 0, int(class_id) + 1, len(class_names or []))
        names = [str(n) for n in (class_names or [])] + [f"class {k}" for k in range(len(class_names or []), num_classes)]
        if prediction is not None:
            colours = class_colours(num_classes, names)
            _draw_prediction(axes[1], prediction, request, colours, "prediction")
        shown = _draw_saliency(axes[-1], image, saliency, request, method)
        axes[-1].set_xlabel(_scores_text(preserved_score, no_context_score))
        _colourbar(fig, shown, list(axes))
        head = f"{model_name}: " if model_name else ""
        fig.suptitle(f"{head}which context keeps {class_label(int(class_id), names)} in the request?")
        if prediction is not None:
            _class_legend(fig, _present(prediction, request, class_id), colours, names, explained=int(class_id))
    return fig


def comparison_figure(image: np.ndarray, request: np.ndarray, class_id: int, models: Mapping[str, Mapping], *,
                      class_names: Sequence[str] | None = None):
    """The same request explained by several models: a column per model (its name on top) with
    its prediction above its saliency (preserved score and score without context underneath);
    the image with the request and the class legend in the first column.

    ``models`` maps a model's name to ``{"prediction": (H,W) labels, "saliency": (H,W),
    "preserved_score": float, "no_context_score": float}``; all maps have the image's size and are
    drawn at screen resolution (:func:`to_screen`). Returns the Figure.
    """
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    shape = screen_shape(np.shape(image))
    image, request = to_screen(image, shape), None if request is None else to_screen(request, shape, nearest=True)
    models = {name: {**m, "prediction": to_screen(m["prediction"], shape, nearest=True), "saliency": to_screen(m["saliency"], shape)}
              for name, m in models.items()}

    names_in = list(models)
    num_classes = max([int(np.max(m["prediction"])) + 1 for m in models.values()] + [int(class_id) + 1, len(class_names or [])])
    names = [str(n) for n in (class_names or [])] + [f"class {k}" for k in range(len(class_names or []), num_classes)]
    colours = class_colours(num_classes, names)
    cols = 1 + len(names_in)
    with rc_context(_STYLE):
        fig = Figure(figsize=(cols * PANEL_INCHES + 0.9, 2 * PANEL_INCHES + 1.0), dpi=DPI, layout="constrained")
        axes = fig.subplots(2, cols, squeeze=False)
        _draw_image(axes[0, 0], image, request)
        axes[1, 0].set_axis_off()
        shown = None
        for c, name in enumerate(names_in, start=1):
            m = models[name]
            _draw_prediction(axes[0, c], m["prediction"], request, colours, "prediction")
            axes[0, c].set_title(name, loc="center", pad=16, fontweight="bold")
            axes[0, c].text(0.5, 1.02, "prediction", transform=axes[0, c].transAxes, ha="center", va="bottom")
            shown = _draw_saliency(axes[1, c], image, m["saliency"], request, "grid saliency")
            axes[1, c].set_xlabel(_scores_text(m.get("preserved_score"), m.get("no_context_score")))
        _colourbar(fig, shown, list(axes[1, 1:]))
        fig.suptitle(f"Which context keeps {class_label(int(class_id), names)} in the request? {len(names_in)} models, same settings")
        present = sorted(set().union(*[_present(models[n]["prediction"], request, class_id) for n in names_in]))
        _class_legend(axes[1, 0], present, colours, names, explained=int(class_id))
    return fig


# --------------------------------------------------------------------------- benchmark figures


def matrix_figure(values: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], title: str, *,
                  vmax: float | None = None, colorbar_label: str = "value", xlabel: str | None = None,
                  ylabel: str | None = None, highlight_col: int | None = None, highlight_cells: Sequence[tuple[int, int]] = (),
                  subtitle: str | None = None, diverging: bool = False):
    """A (rows, cols) matrix as coloured cells with their values written in (NaN: grey '—').

    ``highlight_col`` frames one column (e.g. the bias digit), ``highlight_cells`` frames single
    cells (row, col) (e.g. each run's own bias digit). The colour scale runs from 0 to
    ``vmax`` (default: the largest finite value) and is explained by the colour bar; with
    ``diverging`` (signed values such as a difference) from −m to m, m = ``vmax`` or the largest
    absolute value, blue below zero and red above. Returns the Figure.
    """
    from matplotlib import colormaps, rc_context
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    values = np.asarray(values, np.float64)
    rows, cols = values.shape
    finite = values[np.isfinite(values)]
    if diverging:
        vmax = vmax if vmax is not None else (float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0)
        vmin, cmap = -vmax, colormaps["RdBu_r"].with_extremes(bad="#bdbdbd")
    else:
        vmax = vmax if vmax is not None else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
        vmin, cmap = 0.0, colormaps["viridis"].with_extremes(bad="#bdbdbd")
    digits = 3 if vmax < 0.5 else 2  # CBD values are often ~0.001-0.1
    longest = max([len(str(r)) for r in row_labels] + [1])
    with rc_context(_STYLE):
        fig = Figure(figsize=(max(0.45 * cols + 0.06 * longest + 1.8, 5.0), 0.42 * rows + 1.9 + (0.2 if subtitle else 0)), dpi=DPI,
                     layout="constrained")
        ax = fig.subplots()
        shown = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
        for i in range(rows):
            for j in range(cols):
                v = values[i, j]
                dark = abs(v) > 0.6 * vmax if diverging else v < 0.6 * vmax
                text, ink = ("—", "0.2") if not np.isfinite(v) else (f"{v:+.{digits}f}" if diverging else f"{v:.{digits}f}", "white" if dark else "black")
                ax.text(j, i, text, ha="center", va="center", color=ink, fontsize=7)
        ax.set_xticks(range(cols), [str(c) for c in col_labels])
        if cols > 4 and max(len(str(c)) for c in col_labels) > 6:  # long names would run into each other
            ax.tick_params(axis="x", labelrotation=40)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
        ax.set_yticks(range(rows), [str(r) for r in row_labels])
        ax.tick_params(length=0)
        if highlight_col is not None and 0 <= highlight_col < cols:
            ax.add_patch(Rectangle((highlight_col - 0.5, -0.5), 1, rows, fill=False, edgecolor="#d62728", linewidth=2, clip_on=False))
            ax.get_xticklabels()[highlight_col].set_color("#d62728")
            ax.get_xticklabels()[highlight_col].set_fontweight("bold")
        for i, j in highlight_cells:
            if 0 <= i < rows and 0 <= j < cols:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="#d62728", linewidth=2))
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        ax.set_title(title if not subtitle else f"{title}\n{subtitle}")
        ax.set_label("matrix")
        bar = fig.colorbar(shown, ax=ax, fraction=0.05, pad=0.02)
        bar.set_label(colorbar_label)
        bar.ax.set_label("colorbar")
    return fig


def bar_figure(bars: Mapping[str, tuple], title: str, *, chance: float | None = 0.5, ymax: float = 1.0,
               ylabel: str = "value", chance_label: str = "chance", subtitle: str | None = None):
    """Vertical bars ``{label: (mean, std or None)}`` on [0, ymax] with their values written on
    top, the spread as an error bar and a dashed line at ``chance`` (in the legend). Labels may
    hold newlines; long ones are wrapped at spaces and underscores. Returns the Figure."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    labels = list(bars)
    colours = class_colours(max(len(labels), 1))
    with rc_context(_STYLE):
        fig = Figure(figsize=(max(1.05 * len(labels) + 1.3, 4.5), 3.4), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        for k, label in enumerate(labels):
            mean, std = (tuple(bars[label]) + (None, None))[:2]
            if mean is None or not np.isfinite(mean):
                ax.text(k, 0.02 * ymax, "—", ha="center", va="bottom")
                continue
            err = std if std is not None and np.isfinite(std) else None
            ax.bar(k, mean, width=0.7, color=colours[k], yerr=err, capsize=3, error_kw={"linewidth": 1})
            ax.text(k, min(mean + (err or 0), ymax) + 0.015 * ymax, f"{mean:.2f}", ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(labels)), [_wrap(label) for label in labels])
        ax.set_ylim(0, ymax * 1.08)
        ax.set_ylabel(ylabel)
        ax.spines[["top", "right"]].set_visible(False)
        handles = []
        if chance is not None:
            ax.axhline(chance, color="0.35", linestyle="--", linewidth=1)
            handles.append(Line2D([], [], color="0.35", linestyle="--", linewidth=1, label=f"{chance_label} ({chance:g})"))
        if any(len(tuple(v)) > 1 and tuple(v)[1] is not None for v in bars.values()):
            handles.append(Line2D([], [], color="black", marker="|", linestyle="none", markersize=8, label="± std"))
        if handles:
            ax.legend(handles=handles, loc="upper right", frameon=False)
        ax.set_title(title if not subtitle else f"{title}\n{subtitle}")
        ax.set_label("bars")
    return fig


def thumbnail_figure(saliency: np.ndarray, request: np.ndarray, title: str, image: np.ndarray | None = None):
    """One small panel: the saliency (H,W) in [0,1] over the image (H,W,C) in grey (black when the
    image is not at hand), the request (H,W) outlined; for galleries. Drawn at screen resolution
    (:func:`to_screen`). Returns the Figure."""
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    shape = screen_shape(np.shape(saliency))
    saliency = to_screen(np.asarray(saliency, np.float32), shape)
    request = None if request is None else to_screen(request, shape, nearest=True)
    backdrop = np.zeros(shape + (1,), np.float32) if image is None else to_screen(image, shape)
    with rc_context(_STYLE):
        fig = Figure(figsize=(PANEL_INCHES * 0.9, PANEL_INCHES * 0.9 + 0.35), dpi=DPI, layout="constrained")
        ax = fig.subplots()
        _draw_saliency(ax, backdrop, saliency, request, title)
        ax.title.set_fontsize(8)
    return fig


def png_bytes(fig) -> bytes:
    """``fig`` as PNG bytes, in the style :func:`save_figure` writes (for embedding in HTML)."""
    import io

    buffer = io.BytesIO()
    _savefig(fig, buffer, "png")
    return buffer.getvalue()


def _savefig(fig, target, fmt: str) -> None:
    """``fig.savefig`` in the house style (file path or binary buffer)."""
    from matplotlib import rc_context

    with rc_context(_STYLE):
        fig.savefig(target, format=fmt, dpi=DPI, facecolor="white", bbox_inches="tight", pad_inches=0.08,
                    metadata={"Software": "gsal-tf"} if fmt == "png" else None)


def _wrap(label: str, width: int = 16) -> str:
    """Break a tick label after spaces and underscores so its lines have about ``width`` characters."""
    lines = []
    for part in str(label).split("\n"):
        line = ""
        for token in re.split(r"(?<=[ _])", part):
            if line and len(line) + len(token.rstrip()) > width:
                lines.append(line.rstrip())
                line = ""
            line += token
        lines.append(line.rstrip())
    return "\n".join(lines)


# --------------------------------------------------------------------------- writing


def figure_format(fmt: str | None) -> str:
    """Check a figure format name (``png``, ``svg`` or ``pdf``; default png)."""
    fmt = (fmt or "png").lower().lstrip(".")
    if fmt not in FIGURE_FORMATS:
        raise GsalInputError(f"figure format {fmt!r}: use one of {', '.join(FIGURE_FORMATS)}")
    return fmt


def save_figure(fig, path, fmt: str | None = None) -> Path:
    """Write ``fig`` to ``path``. The format is ``fmt``, else the path's suffix (.png, .svg,
    .pdf); a path without one of those suffixes gets ``.<fmt>`` appended. Returns the path written
    (raises GsalInputError when the format is unknown or the file cannot be written)."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    if fmt is None and suffix in FIGURE_FORMATS:
        fmt = suffix
    fmt = figure_format(fmt)
    if suffix != fmt:
        path = path.with_name(path.name + f".{fmt}") if suffix not in FIGURE_FORMATS else path.with_suffix(f".{fmt}")
    try:
        _savefig(fig, path, fmt)
    except OSError as exc:
        raise GsalInputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path
