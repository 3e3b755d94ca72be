"""``gsal compare-backbones``: one request explained by several models, side by side.

The paper's architecture comparison (MobileNetV2 vs Xception backbones): the same image, request
and class are explained with each model under the same grid-saliency settings
(:func:`gsal_tf.compare.compare_models`). The command prints what each model predicts in the
request and how much context it needs, and how far the models agree on which context matters;
it writes ``comparison.png`` (the image with the request; per model its prediction and context
saliency), ``comparison.json`` and ``saliency_<model>.npy``. Image, models and request come from
the same options as ``gsal explain`` (the request is built from the first model's prediction).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.markup import escape

from gsal_cli.console import compact_table, console, fail, staged_outputs
from gsal_tf.errors import GsalInputError
from gsal_cli.options import (Baseline, PixelScale, pixel_scale_of, CustomModules, FigureFormat, Grid, Iterations, Lam, LearningRate, Mode, Moments, OUTPUT_KINDS, Seed, choice, number_range, Target, Upsampling, baseline_option, UnsafeDeserialization, build_request, class_names_of,
                              configure_threads, figure_format_option, given, grid_option, image_input, resolve_model, threads_option)


def compare_backbones(
    image: Optional[Path] = typer.Argument(None, metavar="IMAGE", help="Image file (PNG/JPEG/… or .npy). Omit with --demo."),
    models: Optional[str] = typer.Option(None, "--models", help="Comma-separated zoo names or model paths (default with --demo: the zoo's strongly biased MobileNetV2 and Xception)."),
    request: Optional[Path] = typer.Option(None, "--request", help="Request mask image: pixels > 127 are explained."),
    request_class: Optional[str] = typer.Option(None, "--request-class", help="Request = pixels the first model predicts as this class (id, or name for a zoo model)."),
    request_point: Optional[str] = typer.Option(None, "--request-point", help="Request = the first model's predicted component under pixel Y,X."),
    class_id: Optional[str] = typer.Option(None, "--class", "-c", help="Class to explain: id, or name for a zoo model (default: the first model's prediction in the request)."),
    demo: bool = typer.Option(False, "--demo", help="Use the bundled demo image and request."),
    grid: Grid = None,
    iterations: Iterations = None,
    lam: Lam = None,
    learning_rate: LearningRate = None,
    target: Target = None,
    moments: Moments = None,
    baseline: Baseline = None,
    mode: Mode = None,
    upsampling: Upsampling = None,
    seed: Seed = None,
    output_kind: Optional[str] = typer.Option(None, "--output", callback=choice(OUTPUT_KINDS),
                                              help="What every model returns: probabilities | logits (default: what each model declares, "
                                                   "else probabilities)."),
    top_fraction: float = typer.Option(0.2, "--top-fraction", "--top", callback=number_range(0.0, 1.0, strict=True), help="Fraction of grid cells compared by the top-cell IoU (--top: its old name)."),
    pixel_scale: PixelScale = None,
    out: Path = typer.Option(Path("gsal-out/compare"), "--out", "-o", help="Output folder."),
    figure_format: FigureFormat = figure_format_option(),
    threads: Optional[int] = threads_option(),
    custom_modules: CustomModules = None,
    unsafe: UnsafeDeserialization = False,
) -> None:
    """Explain the same request with each model (e.g. MobileNetV2 vs Xception) and compare.

    Writes comparison.png (the image with the request and a legend of the predicted classes; a
    column per model, named on top: its prediction, its context saliency with the preserved score
    and the score without context; one saliency colour bar; --figure-format svg or pdf for
    vector), comparison.json and `saliency_<model>.npy`.

    Examples: gsal compare-backbones --demo; gsal compare-backbones photo.jpg --models
    pascal-mobilenetv2,pascal-mobilenetv2-0.5 --request-class cow
    """
    import gsal_tf as gs
    from gsal_tf import viz
    from gsal_tf.compare import compare_models
    from gsal_tf import loading, pictures
    from gsal_tf.loading import model_input_size

    try:
        names = [m.strip() for m in models.split(",") if m.strip()] if models else []
        if demo and pixel_scale is not None:
            raise gs.GsalInputError("--demo brings its own image; drop --pixel-scale or drop --demo")
        img = image_input(image, demo, pixel_scale)
        if demo:
            from gsal_tf.zoo.demo import demo_comparison

            case = demo_comparison()
            names = names or case["models"]
            img, req, cls = case["image"], case["request"], case["class_id"] if class_id is None else class_id
        if len(names) < 2:
            raise gs.GsalInputError("give at least two models: --models A,B")
        configure_threads(threads, names)  # before a model loads: TensorFlow fixes it at its first op
        nets = {}
        with console.status("loading models"):
            for label, name in zip(_labels(names), names):
                nets[label] = resolve_model(name, custom_modules, unsafe)[0]
        for label, net in nets.items():
            hint = None if demo else loading.pixel_range_hint(net, pixel_scale_of(pixel_scale))
            if hint:
                console.print(f"[yellow]warning:[/] {escape(label)}: {escape(hint)}")
        class_names = class_names_of(next(iter(nets.values())))  # classes are the first model's
        # The image is letterboxed to the models' common fixed input, as `gsal explain` does.
        sizes = {model_input_size(net) for net in nets.values()}
        if len(sizes) > 1:
            raise gs.GsalInputError(f"the models take different input sizes {sorted(s for s in sizes if s)}; compare models of one input size")
        first_net = next(iter(nets.values()))
        photo = pictures.matched_channels(img, first_net)
        img = None
        picture = pictures.fit_picture(photo, first_net, pad_value=loading.letterbox_grey(pixel_scale_of(pixel_scale)))  # as `gsal explain`
        fit = picture.fit
        # The figure shows the photo at screen resolution: only that copy is kept (as in `gsal explain`).
        screen = viz.screen_shape(fit.source)
        photo = viz.to_screen(photo, screen)
        predict = gs.GridSaliency(first_net).predict
        if demo:
            asked = pictures.picture_request(picture, predict, mask=req, class_id=gs.requests.class_id(cls, class_names))
        else:
            asked = build_request(predict, picture, request, request_class, request_point, class_id, class_names)
        img, req, cls = picture.network_input, asked.mask, asked.class_id
        grid_options = {"grid_size": picture.grid, **grid_option(grid), **baseline_option(baseline),
                        **given(iterations=iterations, lam=lam, learning_rate=learning_rate, target=target, moments=moments, mode=mode,
                                upsampling=upsampling, seed=seed, output=output_kind)}
        with console.status(f"explaining with {len(nets)} models"):
            result = compare_models(nets, img, req, cls, grid_options, top_fraction)
        summary = {
            "image": str(image) if image else "demo",
            "class_id": int(cls),
            "class_name": gs.requests.class_name(cls, class_names),
            "request_pixels": int(req.sum()),
            "settings": {**grid_options, "grid_size": list(grid_options["grid_size"]), "top_fraction": top_fraction},
            "models": result["models"],
            "agreement": result["agreement"],
        }
        # Figure maps at screen resolution; each saliency_<model>.npy at the image's, one at a time.
        shown = {name: {**result["models"][name], "prediction": fit.to_image(result["prediction"][name], nearest=True, size=screen),
                        "saliency": fit.to_image(result["saliency"][name], size=screen)} for name in nets}
        figure = viz.comparison_figure(photo, fit.to_image(req, nearest=True, size=screen), cls, shown, class_names=_class_names(nets.values()))
        figure_name = f"comparison.{figure_format.value}"
        with staged_outputs(out) as stage:
            viz.save_figure(figure, stage.path(figure_name))
            stage.path("comparison.json").write_text(json.dumps(summary, indent=2))
            for name in nets:
                np.save(stage.path(f"saliency_{name}.npy"), fit.to_image(result["saliency"][name]))
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    _print(summary)
    console.print(f"wrote [bold]{escape(str(out))}/[/] {figure_name} (image; per model: prediction, saliency), comparison.json, "
                  f"{escape(', '.join(f'saliency_{name}.npy' for name in nets))}")


def _short(name: str) -> str:
    return Path(name).stem if Path(name).suffix == ".keras" else Path(name).name


def _labels(names: list[str]) -> list[str]:
    """One short label per model (figure columns, ``saliency_<label>.npy``): the file's stem, with
    its folder when two stems are alike (``mnv2-model``, ``xception-model``, as `gsal benchmark train`
    names every file model.keras); the same model twice is an error."""
    if len({str(Path(n).resolve()) if Path(n).exists() else n for n in names}) < len(names):
        raise GsalInputError("the same model is given twice in --models; give each model once")
    labels = [_short(n) for n in names]
    if len(set(labels)) < len(labels):
        labels = [f"{Path(n).resolve().parent.name}-{label}" if labels.count(label) > 1 else label for n, label in zip(names, labels)]
    if len(set(labels)) < len(labels):
        raise GsalInputError(f"the models {', '.join(names)} cannot be told apart by their folder and file names; copy one to another name")
    return labels


def _class_names(nets) -> list[str]:
    """Class names from the first model that has them (a zoo entry), else none ("class k")."""
    from gsal_tf import viz

    for net in nets:
        names = viz.class_names(net)
        if names:
            return names
    return []


def _print(summary):
    """Two tables that fit 80 columns: full model names (folded onto more lines if they must be,
    never cut), numbers under short two-line headers; the agreement pairs on two lines."""
    # Model and class names are the user's text: escaped, or rich reads "[bold]" as markup.
    name = summary.get("class_name")
    named = f" ({escape(name)})" if name and name not in (str(summary["class_id"]), f"class {summary['class_id']}") else ""
    table = compact_table(
        title=f"class {summary['class_id']}{named} explained in a request R of {summary['request_pixels']} pixels",
        caption="f_c in R: the model's mean probability of the class in R; preserved / no context: that probability "
                "with the kept context / with no context, relative to f_c in R; context share: mean saliency on the context",
    )
    table.add_column("model", overflow="fold")
    for col in ("predicted\nin R", "f_c\nin R", "preserved", "no\ncontext", "context\nshare", "time\n(s)"):
        table.add_column(col, justify="right", no_wrap=True)
    for name, row in summary["models"].items():
        table.add_row(
            escape(name),
            f"{row['predicted_class_in_request']} ({row['predicted_share']:.0%})",
            f"{row['original_score']:.3f}",
            f"{row['preserved_score']:.3f}",
            f"{row['no_context_score']:.3f}",
            "—" if row["salient_context_share"] != row["salient_context_share"] else f"{row['salient_context_share']:.3f}",
            f"{row['seconds']:.1f}",
        )
    console.print(table)
    agree = compact_table(title="agreement of the saliency grids")
    agree.add_column("models", overflow="fold")
    for col in (f"top-{summary['settings']['top_fraction']:.0%}\ncell IoU", "rank\ncorrelation"):
        agree.add_column(col, justify="right", no_wrap=True)
    for row in summary["agreement"]:
        rho = row["rank_correlation"]
        iou = row["top_cell_iou"]
        agree.add_row(f"{escape(row['a'])}\nvs {escape(row['b'])}", "—" if iou != iou else f"{iou:.3f}", "—" if rho != rho else f"{rho:.3f}")
    console.print(agree)
