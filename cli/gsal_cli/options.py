"""What several commands read from their options: value pairs, models, the image, the request."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from gsal_tf.errors import GsalInputError
from gsal_tf.model_calls import OUTPUT_KINDS


class FigureFormat(str, Enum):
    """File format of the figures a command writes (:data:`gsal_tf.viz.FIGURE_FORMATS`)."""

    png = "png"
    svg = "svg"
    pdf = "pdf"


def figure_format_option():
    """The shared ``--figure-format`` option: PNG by default, SVG or PDF for vector figures."""
    return typer.Option(FigureFormat.png, "--figure-format", help="Format of the written figures: png, or svg / pdf (vector).",
                        case_sensitive=False)


def threads_option():
    """The shared ``--threads`` option: TensorFlow's intra-op threads for a one-image job."""
    return typer.Option(None, "--threads", help="Threads each TensorFlow op uses (default: 1 for networks with inputs up to 200x200 pixels, "
                        "where it is up to twice as fast for one image; all cores for larger ones; 0 = all cores).")


def configure_threads(threads: int | None, models: list) -> None:
    """Fix TensorFlow's intra-op threads before a model loads: ``--threads`` if given, else
    :func:`gsal_tf.threads.threads_for` the largest input the ``models`` (zoo names or paths)
    declare. Models that declare no input size keep TensorFlow's default."""
    from gsal_tf import threads as thread_rules
    from gsal_tf.loading import declared_input_shape

    if threads is not None and threads < 0:
        raise GsalInputError(f"--threads {threads}: give a number of threads, or 0 for all cores")
    if threads is None:
        shapes = [declared_input_shape(m) for m in models]
        if not shapes or any(s is None for s in shapes):
            return
        threads = thread_rules.threads_for(max(shapes, key=lambda s: (s[0] or 0) * (s[1] or 0)))
    thread_rules.use_threads(threads)


def parse_pair(text: str, option: str, allow_single: bool = False, minimum: int = 1) -> tuple[int, int]:
    """``"Y,X"`` -> (Y, X) ints, each at least ``minimum`` (sizes and grids: 1; a point: 0);
    with ``allow_single``, ``"8"`` -> (8, 8)."""
    from gsal_tf.validation import check_int_pair

    try:
        values = [int(v) for v in text.replace("x", ",").split(",")]
    except ValueError:
        values = []
    if allow_single and len(values) == 1:
        values = values * 2
    if len(values) != 2:
        form = "N or ROWS,COLS" if allow_single else "two integers Y,X"
        raise GsalInputError(f"{option} {text!r}: expected {form}")
    return check_int_pair(option, values, minimum, form="ROWS,COLS" if allow_single else "Y,X", shown=repr(text))


#: ``--custom-module``: the user's code that registers custom Keras objects, imported before a model loads.
CustomModules = Annotated[Optional[list[str]], typer.Option(
    "--custom-module", help="Import this module (a name such as my_pkg.layers, or a .py file) before loading the model, so the "
    "custom layers it registers resolve. Repeat for several.")]
#: Grid saliency's main settings, one definition for every command; unset means the explainer's
#: own default (``gs.GridSaliency``'s signature, where the defaults and their measurements live).
def explainer_default(name: str) -> str:
    """GridSaliency's default of option ``name`` as a help text shows it (from its signature: the
    CLI never writes a default of its own)."""
    import inspect

    from gsal_tf.saliency import GridSaliency

    value = inspect.signature(GridSaliency.__init__).parameters[name].default
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else str(value)


def paper_option(name: str) -> str:
    """The paper's setting of option ``name`` (``GridSaliency.PAPER_OPTIONS``) as a help text shows it."""
    from gsal_tf.saliency import GridSaliency

    return str(GridSaliency.PAPER_OPTIONS[name])


def choice(values: tuple[str, ...]):
    """A callback that refuses an option value outside ``values`` while the command line is parsed
    (before any model loads), naming the option."""
    def check(value):
        if value is not None and value not in values:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(values)}")
        return value

    return check


def number_range(minimum: float, maximum: float | None = None, strict: bool = False):
    """A callback that refuses, while the command line is parsed, a number outside [minimum,
    maximum] (``strict``: above ``minimum``), NaN and infinity included."""
    import math

    def check(value):
        if value is None:
            return value
        low = value > minimum if strict else value >= minimum
        if not (math.isfinite(value) and low and (maximum is None or value <= maximum)):
            bound = f"> {minimum}" if strict else f">= {minimum}"
            raise typer.BadParameter(f"{value} is not a number {bound}" + (f" and <= {maximum}" if maximum is not None else ""))
        return value

    return check


def _grid_help() -> str:
    from gsal_tf.loading import PHOTO_GRID_CELLS

    return (f"Grid size ROWS,COLS or one number (default: {explainer_default('grid_size')} at the network's input size; "
            f"for a photo of another size, square cells, {PHOTO_GRID_CELLS} along its long side).")


def _values(name: str) -> tuple[str, ...]:
    from gsal_tf.saliency.grid_saliency import MOMENTS
    from gsal_tf.saliency.masks import UPSAMPLINGS
    from gsal_tf.saliency.perturbation import MODES

    return tuple({"mode": MODES, "upsampling": UPSAMPLINGS, "moments": MOMENTS}[name])


def _choices(name: str) -> str:
    return " | ".join(_values(name))


# Grid saliency's options, shared by every command that builds one; unset = the explainer's default.
# Choices and ranges are checked while the command line is parsed, before a model loads.
Iterations = Annotated[Optional[int], typer.Option(
    "--iterations", min=1, help=f"Grid saliency optimisation steps, at most (default: {explainer_default('iterations')}).")]
Lam = Annotated[Optional[float], typer.Option("--lam", callback=number_range(0.0), help=f"Grid saliency mask size weight (default: {explainer_default('lam')}).")]
LearningRate = Annotated[Optional[float], typer.Option(
    "--learning-rate", callback=number_range(0.0, strict=True), help=f"Grid saliency step size of the optimiser (default: {explainer_default('learning_rate')}; "
    f"the paper's formulation: {paper_option('learning_rate')}).")]
Target = Annotated[Optional[float], typer.Option(
    "--target", callback=number_range(0.0, 1.0),
    help=f"Keep at least this share of the prediction with the smallest context (default: {explainer_default('target')}); "
    f"0 = no target: the paper's fixed-lam objective (its settings: --lam {paper_option('lam')} --iterations {paper_option('iterations')} "
    f"--learning-rate {paper_option('learning_rate')}).")]
Grid = Annotated[Optional[str], typer.Option("--grid", help=_grid_help())]
Baseline = Annotated[Optional[str], typer.Option(
    "--baseline", help=f"What removed pixels become: a number | R,G,B | mean | blur | noise (default: {explainer_default('baseline')}).")]
Mode = Annotated[Optional[str], typer.Option("--mode", callback=choice(_values("mode")),
                                             help=f"{_choices('mode')} (default: {explainer_default('mode')}).")]
Upsampling = Annotated[Optional[str], typer.Option("--upsampling", callback=choice(_values("upsampling")),
                                                   help=f"{_choices('upsampling')} (default: {explainer_default('upsampling')}).")]
Moments = Annotated[Optional[str], typer.Option(
    "--moments", callback=choice(_values("moments")),
    help=f"{_choices('moments')}: Adam's moments when a mask goes back to its last one that kept the target "
    f"(default: {explainer_default('moments')}: a mask that stayed uniform is explained again with them kept).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help=f"Seed of the noise baseline (default: {explainer_default('seed')}).")]
#: What the model returns, on the commands that explain with it (an explainer's ``output``).
OutputKind = Annotated[Optional[str], typer.Option(
    "--output", callback=choice(OUTPUT_KINDS),
    help="What the model returns: probabilities | logits (default: what the model declares, else probabilities).")]


def grid_option(grid: Optional[str]) -> dict:
    """``{"grid_size": (rows, cols)}`` for a given ``--grid``, else nothing (the explainer's default,
    or the photo grid)."""
    return {} if grid is None else {"grid_size": parse_pair(grid, "--grid", allow_single=True)}


def baseline_option(baseline: Optional[str]) -> dict:
    """``{"baseline": value}`` for a given ``--baseline`` (a number, R,G,B, or a name), else nothing."""
    if baseline is None:
        return {}
    try:
        values = tuple(float(v) for v in baseline.split(","))
    except ValueError:
        if baseline not in ("mean", "blur", "noise"):
            raise GsalInputError(f"--baseline {baseline!r}: use a number, R,G,B numbers, mean, blur or noise") from None
        return {"baseline": baseline}
    return {"baseline": values[0] if len(values) == 1 else values}


def given(**options) -> dict:
    """The options given on the command line (not None), as explainer keyword arguments."""
    return {name: value for name, value in options.items() if value is not None}


#: ``--unsafe-deserialization``: allow what Keras safe mode refuses (a Lambda layer's Python code).
UnsafeDeserialization = Annotated[bool, typer.Option(
    "--unsafe-deserialization", help="UNSAFE: load a .keras file's Python code (Lambda layers), which Keras safe mode refuses; "
    "only for files you trust.")]

#: ``--pixel-scale``: the multiplier of 8-bit image pixels (None: 1/255, images as [0, 1]).
PixelScale = Annotated[Optional[float], typer.Option(
    "--pixel-scale", callback=number_range(0.0, strict=True),
    help="Multiplier for 8-bit image pixels (default 1/255 → [0,1]; 1 for a network that takes 0-255, e.g. one that starts with Rescaling(1/255)).")]


def pixel_scale_of(pixel_scale: Optional[float]) -> float:
    """The ``--pixel-scale`` in force: the one given, else 1/255."""
    from gsal_tf.datasets.sources import PIXEL_SCALE

    return PIXEL_SCALE if pixel_scale is None else pixel_scale


def resolve_model(name_or_path: str, custom_modules: list[str] | None = None, unsafe: bool = False):
    """A model from a path (.keras/.tflite file or SavedModel folder) or a zoo name: (model,
    display name); ``custom_modules`` are imported first, ``unsafe`` turns Keras safe mode off."""
    from gsal_tf import loading

    return loading.load_model(name_or_path, custom_modules=custom_modules or (), safe_mode=not unsafe), str(name_or_path)


def image_input(image: Path | None, demo: bool, pixel_scale: Optional[float]) -> np.ndarray | None:
    """The image (H,W,C) to explain: None with ``--demo`` (the demo brings its own), else IMAGE read
    with 8-bit pixels times ``pixel_scale`` (None: 1/255); exactly one of the two must be given."""
    from gsal_tf import loading

    if demo and image is not None:
        raise GsalInputError("--demo uses the bundled image; drop IMAGE or drop --demo")
    if demo:
        return None
    if image is None:
        raise GsalInputError("give an IMAGE (or use --demo)")
    return loading.load_image(image, scale=pixel_scale_of(pixel_scale))


def class_names_of(model) -> tuple | None:
    """The class names of a zoo model (:func:`gsal_tf.viz.class_names`); None for other models."""
    from gsal_tf.viz import class_names

    return tuple(class_names(model)) or None


def build_request(predict, picture, request, request_class, request_point, class_id, class_names=None):
    """The :class:`gsal_tf.pictures.PictureRequest` of exactly one of the request options
    (``--request`` mask file, ``--request-class`` C, ``--request-point`` Y,X, all in the image's
    pixels) on ``picture`` (:func:`gsal_tf.pictures.picture_request`). Class names are resolved
    with ``class_names`` (:func:`gsal_tf.requests.class_id`) before the model runs."""
    from gsal_tf import pictures, requests

    given = [name for name, v in (("--request", request), ("--request-class", request_class), ("--request-point", request_point)) if v is not None]
    if len(given) != 1:
        raise GsalInputError("give exactly one of --request MASK, --request-class C or --request-point Y,X" + (f" (got {', '.join(given)})" if given else ""))
    request_class = None if request_class is None else requests.class_id(request_class, class_names)
    class_id = None if class_id is None else requests.class_id(class_id, class_names)
    mask = None if request is None else requests.mask_from_image(request, shape=picture.fit.source)
    point = None if request_point is None else parse_pair(request_point, "--request-point", minimum=0)
    return pictures.picture_request(picture, predict, mask=mask, point=point, predicted_class=request_class, class_id=class_id)
