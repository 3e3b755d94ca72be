"""``gsal explain-dataset`` and ``gsal stats``: dataset-scale context explanations and their
statistics (library: :mod:`gsal_tf.scale`, :mod:`gsal_tf.context_stats`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from gsal_cli.console import compact_table, console, fail
from gsal_tf.datasets.layouts import LAYOUTS
from gsal_tf._deprecated import METHOD_ALIASES
from gsal_tf.methods import METHODS, method_name, method_parameters
from gsal_tf.scale.engine import ENGINES
from gsal_tf.scale.job import ON_ERROR
from gsal_tf.scale.policy import CONTEXT_SOURCES, ZONE_SOURCES, ZONES
from gsal_cli.options import Baseline, PixelScale, pixel_scale_of, Mode, OutputKind, Seed, Upsampling, baseline_option, choice, Grid, grid_option, CustomModules, FigureFormat, Iterations, Lam, LearningRate, Moments, Target, given, UnsafeDeserialization, figure_format_option, parse_pair, resolve_model


def explain_dataset(
    data: Path = typer.Argument(..., metavar="DATA", help="A folder: images (with --labels), a Cityscapes tree, a CamVid tree (SegNet version) or a TextureMNIST folder."),
    model: str = typer.Option(..., "--model", "-m", help="A .keras or .tflite file, a SavedModel folder or a zoo model name (gsal zoo list)."),
    out: Path = typer.Option(..., "--out", "-o", help="Results folder (resumed when it holds a run of the same settings)."),
    layout: str = typer.Option("auto", "--layout", callback=choice(tuple(lay for lay in LAYOUTS if lay != "tf.data")), help="auto | folder | cityscapes | camvid | texture-mnist."),
    labels: Optional[Path] = typer.Option(None, "--labels", help="Folder of label maps (same file stems as the images)."),
    split: Optional[str] = typer.Option(None, "--split", help="Cityscapes split (default val), CamVid split (default test) or TextureMNIST split (default test)."),
    mapping: Optional[str] = typer.Option(None, "--mapping", help="Which network class means which dataset class: a shipped mapping (cityscapes-camvid, ade20k-camvid, pascal-camvid) or a TOML file. Then --classes/--exclude are dataset class ids."),
    zone: str = typer.Option("class", "--zone", callback=choice(ZONES), help="class | component | error | confusion: one request per class zone, connected component, error region, or (true, predicted) class pair."),
    zones_from: str = typer.Option("labels", "--zones-from", callback=choice(ZONE_SOURCES), help="labels | predictions."),
    context_from: str = typer.Option("labels", "--context-from", callback=choice(CONTEXT_SOURCES), help="labels | predictions: the context classes of the statistics are the labels, or the network's own predicted classes."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Only these class ids, comma-separated."),
    exclude: Optional[str] = typer.Option(None, "--exclude", help="Never these class ids, comma-separated."),
    min_pixels: int = typer.Option(16, "--min-pixels", help="Smallest zone explained (pixels)."),
    method: str = typer.Option("grid_saliency", "--method", callback=choice(METHODS + tuple(METHOD_ALIASES)),
                               help=f"{' | '.join(METHODS)}; the explainer options below that it lacks are refused."),
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
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Requests per explainer call and per shard."),
    pixel_scale: PixelScale = None,
    input_size: Optional[str] = typer.Option(None, "--input-size", help="Fit every image to H,W (default: the network's input size)."),
    limit: Optional[int] = typer.Option(None, "--limit", help="Only the first N samples."),
    maps: bool = typer.Option(False, "--maps", help="Also store per-pixel saliency and request maps (maps/)."),
    on_error: str = typer.Option("skip", "--on-error", callback=choice(ON_ERROR), help="skip | stop: what an unreadable image does."),
    engine: str = typer.Option("local", "--engine", callback=choice(tuple(ENGINES)), help="local | ray: in this process, or on Ray actors (pip install \"gsal-tf\\[ray]\")."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to use (auto, ray://host:10001); default: a local Ray started for the run."),
    actors: Optional[int] = typer.Option(None, "--actors", help="Ray actors, one explainer each (default: CPUs / --cpus-per-actor, or GPUs / --gpus-per-actor)."),
    cpus_per_actor: Optional[int] = typer.Option(None, "--cpus-per-actor", help="CPUs (TensorFlow threads) per Ray actor (default 1)."),
    gpus_per_actor: Optional[float] = typer.Option(None, "--gpus-per-actor", help="GPUs per Ray actor (e.g. 1: one actor per GPU)."),
    output_kind: OutputKind = None,
    custom_modules: CustomModules = None,
    unsafe: UnsafeDeserialization = False,
) -> None:
    """Explain every request of a dataset into Parquet shards plus a run card (resumable).

    Open the results with pandas: pandas.read_parquet("OUT/requests"). `gsal stats OUT` prints
    and draws the context statistics.

    Examples: gsal explain-dataset images/ --labels labels/ -m model.keras -o runs/x; gsal
    explain-dataset CamVid/ --layout camvid -m cityscapes-mobilenet-edgetpu --mapping
    cityscapes-camvid --zone component -o runs/camvid
    """
    import gsal_tf as gs

    given_flags = {"--grid": ("grid_size", grid), "--iterations": ("iterations", iterations), "--lam": ("lam", lam),
                   "--learning-rate": ("learning_rate", learning_rate), "--target": ("target", target), "--moments": ("moments", moments),
                   "--baseline": ("baseline", baseline), "--mode": ("mode", mode), "--upsampling": ("upsampling", upsampling),
                   "--seed": ("seed", seed)}
    method = method_name(method)  # an old name warns and is translated
    unknown = [flag for flag, (param, value) in given_flags.items() if value is not None and param not in method_parameters(method)]
    if unknown:
        raise fail(f"{', '.join(unknown)} {'is not an option' if len(unknown) == 1 else 'are not options'} of --method {method}; "
                   f"drop {'it' if len(unknown) == 1 else 'them'} or choose --method grid_saliency")
    try:
        source = gs.datasets.open_source(data, layout, labels=labels, split=split, pixel_scale=pixel_scale)
        net, model_name = resolve_model(model, custom_modules, unsafe)
        # Only image files are read at a pixel scale (tf.data and TextureMNIST samples are taken as they are).
        hint = gs.loading.pixel_range_hint(net, pixel_scale_of(pixel_scale)) if isinstance(source, gs.datasets.FolderSource) else None
        if hint:
            console.print(f"[yellow]warning:[/] {escape(hint)}")
        options = {} if output_kind is None else {"output": output_kind}
        options.update({**grid_option(grid), **baseline_option(baseline)})
        options.update(given(iterations=iterations, lam=lam, learning_rate=learning_rate, target=target, moments=moments, mode=mode,
                             upsampling=upsampling, seed=seed, batch_size=batch_size))
        policy = gs.scale.RequestPolicy(zone=zone, zones_from=zones_from, classes=_ids(classes, "--classes"),
                                        exclude=_ids(exclude, "--exclude") or (), min_pixels=min_pixels, mapping=mapping,
                                        context_from=context_from)
        size = parse_pair(input_size, "--input-size", allow_single=True) if input_size else None
        engine_options = _engine_options(engine, address=address, actors=actors, cpus_per_actor=cpus_per_actor, gpus_per_actor=gpus_per_actor)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[requests]} requests"),
                      TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("samples", total=None, requests=0)

            def report(done, total, requests):
                progress.update(task, completed=done, total=total, requests=requests)

            summary = gs.explain_dataset(net, source, out, method=method, options=options, policy=policy, input_size=size, limit=limit,
                                         store_maps=maps, on_error=on_error, engine=engine, engine_options=engine_options, model_name=model_name, progress=report)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    if summary.redone:
        console.print(f"redid damaged {'shard' if len(summary.redone) == 1 else 'shards'} {escape(', '.join(summary.redone))} and the ones after")
    console.print(f"wrote [bold]{escape(str(out))}/[/]: {summary.requests} requests of {summary.samples} samples"
                  f"{f', {len(summary.skipped)} skipped (listed in run.json)' if summary.skipped else ''}")


def stats(
    results: list[Path] = typer.Argument(..., metavar="RESULTS", help="A results folder of `gsal explain-dataset`; two or more: the runs side by side (same data, e.g. two networks)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where the figures go (default: RESULTS/stats; with several runs FIRST/stats/compare)."),
    top: int = typer.Option(5, "--top", help="Context classes listed per request class."),
    figure_format: FigureFormat = figure_format_option(),
    html_report: bool = typer.Option(False, "--html", help="Also write one self-contained HTML report (tables, heat maps, a gallery of the most and least context-dependent requests) to OUT/report.html."),
    gallery: int = typer.Option(6, "--gallery", help="Requests shown at each end of the context-dependence ranking in the HTML report."),
    min_requests: int = typer.Option(1, "--min-requests", help="Grey the heat-map rows of request classes (with several runs: zone classes) with fewer requests that kept salient context (their shares rest on too few masks)."),
    unpaired: bool = typer.Option(False, "--unpaired", help="With several runs: every request of each run, not only the requests all runs hold."),
) -> None:
    """Context statistics of a run: tables, heat maps and an optional HTML report.

    Per request class, the share of the salient context on each context class, against the
    inflation baseline with the same amount of context. With two or more runs: the same requests
    side by side, per zone class."""
    import gsal_tf as gs
    from gsal_tf import viz
    from gsal_tf.scale import report

    for option, value in (("--gallery", gallery), ("--min-requests", min_requests)):
        if value < 0:
            raise fail(f"{option} {value}: give a number of requests (0 or more)")
    if len(results) > 1:
        if html_report:
            raise fail("--html reports one run: give one results folder, or drop --html")
        return _compare(results, out, top, figure_format, not unpaired, min_requests)
    results = results[0]
    try:
        result, card = gs.scale.load_stats(results)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    settings = card["settings"]
    context = settings["context_classes"]
    label, _fmt = report.class_label, report.format_share
    table = compact_table(title=f"salient context by class ({escape(str(settings['explainer']['method']))})",
                          caption="n: requests; ctx: those that kept salient labelled context (the shares are means over them; dim: fewer than --min-requests); "
                                  "share: of the salient context on that class; infl.: the inflation baseline's share; Δ = share − infl.; "
                                  "area-like: requests whose salient context lies on the classes as their areas do (a uniform mask)")
    for column in ("request class", "n", "ctx", "area-\nlike", "size\npx", "context class", "share", "infl.", "Δ"):
        table.add_column(column, overflow="fold" if "class" in column else "ellipsis", no_wrap="class" not in column,
                         justify="left" if "class" in column else "right")
    kept = result.with_context
    for row, c in enumerate(result.classes):
        order = np.argsort(-np.nan_to_num(result.share[row], nan=-1))[:top]
        for k, ctx in enumerate(order):
            first = k == 0
            table.add_row(escape(label(card, int(c))) if first else "", str(result.count[row]) if first else "",
                          str(kept[row]) if first else "", str(result.area_like[row]) if first else "",
                          f"{result.mean_size[row]:.0f}" if first else "",
                          escape(str(context[ctx])), _fmt(result.share[row, ctx]), _fmt(result.inflation_share[row, ctx]), _fmt(result.difference[row, ctx], signed=True),
                          style="dim" if kept[row] < min_requests else None)
    console.print(table)
    folder = out or Path(results) / "stats"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = [viz.save_figure(fig, folder / f"{name}.{figure_format.value}") for name, fig in report.figures(result, card, min_requests=min_requests).items()]
        if html_report:
            written.append(report.write_html_report(results, folder / "report.html", gallery=gallery, top=top, min_requests=min_requests))
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(str(gs.scale.store.write_failure(exc, exc.filename or folder, what="--out"))) from None
    console.print(f"wrote {escape(', '.join(str(p) for p in written))}")


def _compare(results: list[Path], out: Optional[Path], top: int, figure_format: FigureFormat, paired: bool, min_requests: int) -> None:
    """``gsal stats RUN_A RUN_B ...``: :func:`gsal_tf.scale.compare_runs`, printed and written."""
    import gsal_tf as gs
    from gsal_tf import viz
    from gsal_tf.scale import comparison
    from gsal_tf.scale.report import format_share

    try:
        result = gs.scale.compare_runs(results, paired=paired)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    table = compact_table(title=f"the same requests, {len(result.runs)} runs{' (paired)' if paired else ''}",
                          caption="ctx: requests that kept salient labelled context (the shares are means over them; dim: fewer than "
                                  "--min-requests); f_c(x): mean score in R; "
                                  "no ctx: median preserved score without context; salient: mean salient share of the context; "
                                  "top context: share (inflation baseline)")
    for column in ("zone class", "run", "explained", "n", "ctx", "f_c(x)", "no ctx", "salient", f"top-{top} context"):
        table.add_column(column, overflow="fold", justify="right" if column in ("run", "n", "ctx", "f_c(x)", "no ctx", "salient") else "left")
    for z, zone in enumerate(result.zone_classes):
        for r, run in enumerate(result.runs):
            tops = "\n".join(f"{escape(name)} {format_share(share)} ({format_share(infl)})" for name, share, infl in result.top(r, z, top))
            table.add_row(escape(zone) if r == 0 else "", str(r + 1), escape(result.explained[r][z]), str(result.count[r, z]), str(result.with_context[r, z]),
                          format_share(result.original[r, z]), format_share(result.no_context[r, z]), format_share(result.salient_fraction[r, z]), tops,
                          end_section=r == len(result.runs) - 1, style="dim" if result.with_context[r, z] < min_requests else None)
    console.print(table)
    folder = out or Path(results[0]) / "stats" / "compare"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        written = [comparison.write_csv(result, folder / "comparison.csv", top)]
        written += [viz.save_figure(fig, folder / f"{name}.{figure_format.value}") for name, fig in comparison.comparison_figures(result, min_requests).items()]
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(str(gs.scale.store.write_failure(exc, exc.filename or folder, what="--out"))) from None
    for k, (run, path) in enumerate(zip(result.runs, results)):
        console.print(f"run {k + 1}: {escape(run)} ({escape(str(path))})")
    console.print(f"wrote {escape(', '.join(str(p) for p in written))}")


def _engine_options(engine: str, **given) -> dict:
    """The engine's options from the CLI's (unset ones left out); Ray options with another engine are an error."""
    from gsal_tf.errors import GsalInputError

    options = {name: value for name, value in given.items() if value is not None}
    if options and engine != "ray":
        flags = ", ".join("--" + name.replace("_", "-") for name in options)
        raise GsalInputError(f"{flags} {'is a Ray option' if len(options) == 1 else 'are Ray options'}: add --engine ray, or drop {flags}")
    return options


def _ids(text: Optional[str], option: str):
    from gsal_tf.errors import GsalInputError

    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise GsalInputError(f"{option} takes class ids separated by commas, got {text!r}") from None
