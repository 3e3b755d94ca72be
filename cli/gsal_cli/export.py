"""``gsal export MODEL OUT_DIR``: SavedModels of a segmentation model and of its explainer."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from gsal_cli.console import console, fail, staged_outputs
from gsal_cli.options import OUTPUT_KINDS, choice, Baseline, Grid, baseline_option, grid_option, CustomModules, Iterations, Lam, LearningRate, Moments, Target, given, UnsafeDeserialization, resolve_model


def export(
    model: str = typer.Argument(..., metavar="MODEL", help="A .keras file, a SavedModel folder or a zoo model name."),
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR", help="Folder to write segmentation/ and explainer/ into."),
    image_shape: Optional[str] = typer.Option(None, "--image-shape", help="H,W,C of the explainer's inputs (default: the model's input shape)."),
    grid: Grid = None,
    iterations: Iterations = None,
    lam: Lam = None,
    learning_rate: LearningRate = None,
    target: Target = None,
    moments: Moments = None,
    baseline: Baseline = None,
    output_kind: Optional[str] = typer.Option(None, "--output", callback=choice(OUTPUT_KINDS),
                                              help="What the model returns: probabilities | logits (default: what the model declares, else "
                                                   "read from its scores on probe images; refused when they cannot tell)."),
    custom_modules: CustomModules = None,
    unsafe: UnsafeDeserialization = False,
) -> None:
    """Export MODEL (segmentation/) and its grid-saliency explainer (explainer/) as SavedModels.

    Both load with tf.saved_model.load in a process that never imports gsal_tf; the explainer's
    serving signature takes (images, request_masks, class_ids) and returns saliency maps.

    Example: gsal export tmnist-mobilenetv2-strong exported/ (then tf.saved_model.load("exported/explainer")).
    """
    import gsal_tf as gs
    from gsal_tf.model_calls import resolve_output
    from gsal_tf.export import export_explainer, export_model
    from gsal_tf.validation import check_grid_size

    try:
        net, name = resolve_model(model, custom_modules, unsafe)
        shape = _image_shape(net, image_shape)
        output = resolve_output(net, shape, output_kind)
        explainer = gs.GridSaliency(net, output=output, **grid_option(grid), **baseline_option(baseline),
                                    **given(iterations=iterations, lam=lam, learning_rate=learning_rate, target=target, moments=moments))
        explainer.predict(_probe_batch(shape))  # the model takes this shape and returns (N,h,w,K)
        check_grid_size(explainer.grid_size, shape[:2])
        with console.status("exporting SavedModels"), staged_outputs(out_dir) as stage:
            export_model(net, stage.path("segmentation"), shape)
            export_explainer(explainer, stage.path("explainer"), shape)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote [bold]{escape(str(out_dir))}/segmentation[/] (model) and [bold]{escape(str(out_dir))}/explainer[/] (grid saliency, {shape} images, {output})")


def _image_shape(net, text):
    from gsal_tf.errors import GsalInputError

    if text:
        try:
            shape = tuple(int(v) for v in text.split(","))
        except ValueError:
            shape = ()
        if len(shape) != 3:
            raise GsalInputError(f"--image-shape {text!r}: expected H,W,C")
        return shape
    shape = tuple(getattr(net, "input_shape", None) or (None,))[1:]
    if len(shape) != 3 or None in shape:
        raise GsalInputError("the model has no fixed input shape; give --image-shape H,W,C")
    return shape


def _probe_batch(shape):
    import numpy as np

    return np.zeros((1,) + tuple(shape), np.float32)

