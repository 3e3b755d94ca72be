"""``gsal explain``: one grid-saliency context explanation from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from gsal_cli.console import console, fail, staged_outputs
from gsal_cli.options import (OutputKind, PixelScale, pixel_scale_of, Baseline, CustomModules, FigureFormat, Grid, Iterations, Lam, LearningRate, Mode, Moments, Seed, Target, UnsafeDeserialization, Upsampling,
                              baseline_option, build_request, class_names_of, configure_threads, figure_format_option, given, grid_option,
                              image_input, resolve_model, threads_option)


def explain(
    image: Optional[Path] = typer.Argument(None, metavar="IMAGE", help="Image file (PNG/JPEG/… or .npy). With --demo: a demo name (textures, cyclists) or nothing."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="A .keras or .tflite file, a SavedModel folder or a zoo model name (gsal zoo list)."),
    request: Optional[Path] = typer.Option(None, "--request", help="Request mask image: pixels > 127 are explained. Give exactly one of --request, --request-class, --request-point."),
    request_class: Optional[str] = typer.Option(None, "--request-class", help="Request = all pixels the model predicts as this class (id, or name for a zoo model)."),
    request_point: Optional[str] = typer.Option(None, "--request-point", help="Request = the predicted component under pixel Y,X."),
    class_id: Optional[str] = typer.Option(None, "--class", "-c", help="Class to explain: id, or name for a zoo model (default: the request's predicted class)."),
    demo: bool = typer.Option(False, "--demo", help="Explain a bundled demo: `--demo` (TextureMNIST bias) or `--demo cyclists` (a real network on a real photo)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML config with an \\[explain] table (see configs/explain/)."),
    grid: Grid = None,
    iterations: Iterations = None,
    lam: Lam = None,
    learning_rate: LearningRate = None,
    target: Target = None,
    baseline: Baseline = None,
    mode: Mode = None,
    upsampling: Upsampling = None,
    output_kind: OutputKind = None,
    seed: Seed = None,
    moments: Moments = None,
    pixel_scale: PixelScale = None,
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default: `gsal-out/<image name>`)."),
    figure_format: FigureFormat = figure_format_option(),
    threads: Optional[int] = threads_option(),
    custom_modules: CustomModules = None,
    unsafe: UnsafeDeserialization = False,
) -> None:
    """Explain which context makes the model predict CLASS inside the request.

    An image of another size than the network's fixed input (e.g. a photo for a 513x513 DeepLab)
    is letterboxed to it (scaled to fit, aspect ratio kept, padded); the outputs are mapped back
    to the image, and a --request mask or --request-point is given in the image's pixels. Its
    default grid has square cells, 12 along the photo's long side (8x8 for images at the
    network's size).

    Writes saliency.npy (H,W float32, at the image's resolution), overlay.png (the image, the
    model's prediction with a class legend and the saliency with its colour bar and scores;
    request outlined; drawn at screen resolution; --figure-format svg or pdf for vector) and
    summary.json (parameters, scores, timing) to the output folder.

    Examples: gsal explain --demo; gsal explain photo.jpg --model pascal-mobilenetv2
    --request-class person --class bicycle; gsal explain image.png --model my.keras --request
    mask.png --class 3 --config configs/explain/paper.toml
    """
    import gsal_tf as gs
    from gsal_tf import loading, pictures, viz

    try:
        options = gs.GridSaliency.options_from_toml(config) if config else {}
        options.update(_cli_options(grid, baseline, mode, upsampling, output_kind, seed))
        options.update(given(iterations=iterations, lam=lam, learning_rate=learning_rate, target=target, moments=moments))
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("loading model and image", total=None)
            if demo and model is not None:
                raise gs.GsalInputError("--demo uses the bundled model; drop --model or drop --demo")
            ignored = [flag for flag, value in (("--request", request), ("--request-class", request_class),
                                                ("--request-point", request_point), ("--class", class_id),
                                                ("--pixel-scale", pixel_scale)) if value is not None]
            if demo and ignored:
                raise gs.GsalInputError(f"--demo explains its own image, request and class; drop {', '.join(ignored)} or drop --demo")
            if not demo and model is None:
                raise gs.GsalInputError("give an IMAGE and --model PATH (or use --demo)")
            demo_name = _demo_name(image) if demo else None
            if demo:
                from gsal_tf.zoo.demo import demo_model

                configure_threads(threads, [demo_model(demo_name)])
            else:
                configure_threads(threads, [model])
            img = image_input(None if demo else image, demo, pixel_scale)
            if demo:
                from gsal_tf.zoo.demo import load_demo

                case = load_demo(demo_name)
                net, model_name, img = case["model"], case["name"], case["image"]
                req, cls, stem = case.get("request"), case["class_id"], "demo" if demo_name == "textures" else f"demo-{demo_name}"
                labels = case.get("prediction")
                request_class = case.get("request_class", request_class)
                console.print(f"[bold]demo[/]: {case['description']}")
            else:
                net, model_name = resolve_model(model, custom_modules, unsafe)
                hint = loading.pixel_range_hint(net, pixel_scale_of(pixel_scale))
                if hint:
                    console.print(f"[yellow]warning:[/] {escape(hint)}")
                req, cls, stem, labels = None, class_id, image.stem, None
            # The library's picture pipeline: the image letterboxed to the network, the photo grid,
            # the request in the image's pixels; outputs are mapped back to the image.
            photo = pictures.matched_channels(img, net)
            img = None
            picture = pictures.fit_picture(photo, net, pad_value=loading.letterbox_grey(pixel_scale_of(pixel_scale)))
            fit = picture.fit
            # The figure shows the photo at screen resolution: only that copy is kept, so a 48 MP
            # photo costs its decoding and one saliency map at its size, nothing per panel.
            screen = viz.screen_shape(fit.source)
            photo = viz.to_screen(photo, screen)
            explainer = pictures.explainer_for(net, picture, **options)
            if req is None:
                progress.update(task, description="predicting")
                asked = build_request(explainer.predict, picture, request, request_class, request_point, class_id, class_names_of(net))
            else:
                asked = pictures.picture_request(picture, explainer.predict, mask=req, class_id=cls)
            req, cls, labels = asked.mask, asked.class_id, asked.prediction if labels is None else labels
            progress.update(task, description=f"optimising the {explainer.grid_size[0]}x{explainer.grid_size[1]} grid mask (at most {explainer.iterations} iterations)")
            start = time.perf_counter()
            result = pictures.explain_picture(explainer, picture, asked).result
            seconds = time.perf_counter() - start

        out_dir = out or Path("gsal-out") / stem
        summary = pictures.summary(result, req, model_name, image, seconds, class_names_of(net), fit=fit)
        with staged_outputs(out_dir) as stage:
            np.save(stage.path("saliency.npy"), fit.to_image(result.saliency[0]))  # (H,W) float32 at the image's resolution
            figure = viz.explanation_figure(photo, fit.to_image(req, nearest=True, size=screen), fit.to_image(result.saliency[0], size=screen), cls,
                                            prediction=fit.to_image(labels, nearest=True, size=screen), class_names=viz.class_names(net),
                                            model_name=model_name, preserved_score=summary["preserved_score"],
                                            no_context_score=summary["no_context_score"])
            viz.save_figure(figure, stage.path(f"overlay.{figure_format.value}"))
            stage.path("summary.json").write_text(json.dumps(summary, indent=2))
    except gs.GsalError as exc:
        raise fail(str(exc)) from None

    _print_table(summary)
    for line in summary_warnings(summary):
        console.print(f"[yellow]warning:[/] {escape(line)}")
    console.print(f"wrote [bold]{escape(str(out_dir))}/[/] saliency.npy, overlay.{figure_format.value}, summary.json")


def summary_warnings(summary: dict) -> list[str]:
    """What a user should know about an explanation's ``summary.json``, one line each."""
    lines = []
    if not summary["converged"]:
        lines.append(f"the mask was still changing over its last iterations (a cell moved by {summary['mask_change']:.2f}): "
                     "more --iterations may give another answer")
    if summary["preserved_score"] < 0.9:
        lines.append("the kept context preserves less than 90% of the prediction; try more --iterations or a smaller --lam")
    if summary.get("uniform_mask"):
        hint = '; try --moments keep (docs/defaults.md, "Masks that do not move")' if summary["parameters"].get("moments") == "restart" else ""
        lines.append(f"every grid cell kept about the same level (spread {summary['cell_spread']:.2f}): the mask dims the whole "
                     f"context evenly and localises nothing{hint}")
    return lines


def _demo_name(image: Optional[Path]) -> str:
    """With --demo the IMAGE argument names the demo (``gsal explain --demo cyclists``)."""
    from gsal_tf.zoo.demo import DEMOS

    name = "textures" if image is None else str(image)
    if name not in DEMOS:
        raise fail(f"--demo uses a bundled image: give no IMAGE, or a demo name: {', '.join(DEMOS)} (got {name!r})")
    return name


def _cli_options(grid, baseline, mode, upsampling, output_kind, seed) -> dict:
    """Only the options given on the command line (they override a --config file)."""
    return {**grid_option(grid), **baseline_option(baseline), **given(mode=mode, upsampling=upsampling, output=output_kind, seed=seed)}


def _print_table(summary: dict) -> None:
    table = Table(title="grid saliency", show_header=True, header_style="bold")
    table.add_column("quantity", no_wrap=True)
    table.add_column("value", justify="right", overflow="fold")  # a long model path wraps, never "…"
    # Model paths and class names are the user's text: escaped, or rich reads "[bold]" as markup.
    table.add_row("model", escape(str(summary["model"])))
    name = summary.get("class_name")
    named = f" ({escape(name)})" if name and name not in (str(summary["class_id"]), f"class {summary['class_id']}") else ""
    table.add_row("class explained", f"{summary['class_id']}{named}")
    table.add_row("request pixels", str(summary["request_pixels"]))
    table.add_row("mean f_c in request", f"{summary['original_score']:.3f}")
    table.add_row("preserved score (kept context)", f"{summary['preserved_score']:.3f}")
    table.add_row("score without any context", f"{summary['no_context_score']:.3f}")
    share = summary["salient_context_share"]
    table.add_row("salient context share", "— (no context)" if share is None else f"{share:.3f}")
    table.add_row("final loss", f"{summary['final_loss']:.4f}")
    table.add_row("time", f"{summary['seconds']:.2f} s")
    console.print(table)
