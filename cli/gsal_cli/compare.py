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
from rich.table import Table

from gsal_cli.console import console, fail, staged_outputs
from gsal_cli.options import build_request, class_names_of, image_input, parse_pair, resolve_model


def compare_backbones(
    image: Optional[Path] = typer.Argument(None, help="Image file (PNG/JPEG/… or .npy). Omit with --demo."),
    models: Optional[str] = typer.Option(None, "--models", help="Comma-separated zoo names or model paths (default with --demo: the zoo's strongly biased MobileNetV2 and Xception)."),
    request: Optional[Path] = typer.Option(None, "--request", help="Request mask image: pixels > 127 are explained."),
    request_class: Optional[str] = typer.Option(None, "--request-class", help="Request = pixels the first model predicts as this class (id, or name for a zoo model)."),
    request_point: Optional[str] = typer.Option(None, "--request-point", help="Request = the first model's predicted component under pixel Y,X."),
    class_id: Optional[str] = typer.Option(None, "--class", "-c", help="Class to explain: id, or name for a zoo model (default: the first model's prediction in the request)."),
    demo: bool = typer.Option(False, "--demo", help="Use the bundled demo image and request."),
    grid: str = typer.Option("8,8", "--grid", help="Grid size ROWS,COLS."),
    iterations: int = typer.Option(100, "--iterations", help="Optimisation steps."),
    lam: Optional[float] = typer.Option(None, "--lam", help="Mask-size weight (default: GridSaliency's, 1.0)."),
    top_fraction: float = typer.Option(0.2, "--top", help="Fraction of grid cells compared by the top-cell IoU."),
    pixel_scale: float = typer.Option(1 / 255, "--pixel-scale", help="Multiplier for 8-bit image pixels (default 1/255 → [0,1])."),
    out: Path = typer.Option(Path("gsal-out/compare"), "--out", "-o", help="Output folder."),
) -> None:
    """Explain the same request with each model (e.g. MobileNetV2 vs Xception) and compare.

    Writes comparison.png (image with request; per model: prediction and context saliency),
    comparison.json and saliency_<model>.npy.
    """
    import gsal_tf as gs
    from gsal_tf import viz
    from gsal_tf.benchmark.classes import NUM_CLASSES
    from gsal_tf.compare import compare_models

    try:
        names = [m.strip() for m in models.split(",") if m.strip()] if models else []
        img = image_input(image, demo, pixel_scale)
        if demo:
            from gsal_tf.zoo.demo import demo_comparison

            case = demo_comparison()
            names = names or case["models"]
            img, req, cls = case["image"], case["request"], case["class_id"] if class_id is None else class_id
        if len(names) < 2:
            raise gs.GsalInputError("give at least two models: --models A,B")
        nets = {}
        with console.status("loading models"):
            for name in names:
                nets[_short(name)] = resolve_model(name)[0]
        class_names = class_names_of(next(iter(nets.values())))  # classes are the first model's
        if demo:
            cls = gs.requests.class_id(cls, class_names)
        else:
            first = gs.GridSaliency(next(iter(nets.values())))
            req, cls = build_request(first, img, request, request_class, request_point, class_id, class_names)
        grid_options = {"grid_size": parse_pair(grid, "--grid", allow_single=True), "iterations": iterations, **({"lam": lam} if lam is not None else {})}
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
        panels = [viz.outline(viz.upscale(viz.to_display(img)), viz.upscale(req.astype(np.uint8)))]
        for name in nets:
            # One colour per class id; at least the TextureMNIST layout, so the demo's colours are stable.
            num_classes = int(max(result["prediction"][name].max() + 1, cls + 1, NUM_CLASSES))
            pred = viz.outline(viz.upscale(viz.labels_to_colour(result["prediction"][name], num_classes)), viz.upscale(req.astype(np.uint8)))
            panels += [pred, viz.overlay(img, result["saliency"][name], req)]
        with staged_outputs(out) as stage:
            viz.write_png(stage.path("comparison.png"), viz.side_by_side(panels))
            stage.path("comparison.json").write_text(json.dumps(summary, indent=2))
            for name in nets:
                np.save(stage.path(f"saliency_{name}.npy"), result["saliency"][name])
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    _print(summary)
    console.print(f"wrote [bold]{out}/[/] comparison.png (image | per model: prediction, saliency), comparison.json")


def _short(name: str) -> str:
    return Path(name).stem if Path(name).suffix == ".keras" else Path(name).name


def _print(summary):
    table = Table(title=f"class {summary['class_id']} in a request of {summary['request_pixels']} pixels", header_style="bold")
    for col in ("model", "predicted in R", "mean f_c in R", "preserved", "no context", "salient context share", "time"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, row in summary["models"].items():
        table.add_row(
            name,
            f"{row['predicted_class_in_request']} ({row['predicted_share']:.0%})",
            f"{row['original_score']:.3f}",
            f"{row['preserved_score']:.3f}",
            f"{row['no_context_score']:.3f}",
            "—" if row["salient_context_share"] != row["salient_context_share"] else f"{row['salient_context_share']:.3f}",
            f"{row['seconds']:.1f}s",
        )
    console.print(table)
    agree = Table(title="agreement of the saliency grids", header_style="bold")
    for col in ("models", f"top-{summary['settings']['top_fraction']:.0%} cell IoU", "rank correlation"):
        agree.add_column(col, justify="left" if col == "models" else "right")
    for row in summary["agreement"]:
        rho = row["rank_correlation"]
        iou = row["top_cell_iou"]
        agree.add_row(f"{row['a']} vs {row['b']}", "—" if iou != iou else f"{iou:.3f}", "—" if rho != rho else f"{rho:.3f}")
    console.print(agree)
