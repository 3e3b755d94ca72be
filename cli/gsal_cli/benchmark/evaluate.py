"""``gsal benchmark evaluate``: has a model picked up the bias, and do explanations find it?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from gsal_cli.console import compact_table, console, fail, staged_outputs
from gsal_cli.options import Grid, grid_option, FigureFormat, Iterations, Lam, LearningRate, Moments, Target, given, figure_format_option, resolve_model
from gsal_tf.benchmark.classes import DIGITS
from gsal_tf.benchmark.evaluation import EvaluationSettings
from gsal_tf.methods import METHODS

DEFAULTS = EvaluationSettings()


def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="The (biased) model: a zoo name, a .keras or .tflite file or a SavedModel folder."),
    data: Path = typer.Option(..., "--data", help="TextureMNIST folder with the model's bias (its test split is evaluated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: report.json, cbd.png, cbl.png, iou.png (titled, with colour bars)."),
    reference: Optional[str] = typer.Option(None, "--reference", help="Unbiased model of the same backbone (default for zoo models: the zoo's unbiased one)."),
    unbiased_data: Optional[Path] = typer.Option(None, "--unbiased-data", help="Unbiased TextureMNIST folder for the IoU comparison (default: regenerated from --data's card when its MNIST file is available)."),
    bias_digit: Optional[int] = typer.Option(None, "--bias-digit", help="The model's bias digit (default: from the zoo entry or the data card)."),
    methods: str = typer.Option(",".join(DEFAULTS.methods), "--methods", help=f"Comma-separated, of: {', '.join(METHODS)}."),
    per_digit: int = typer.Option(DEFAULTS.per_digit, "--per-digit", help="Requests per digit for CBD."),
    biased: int = typer.Option(DEFAULTS.biased, "--biased", help="Biased requests of the bias digit for CBL."),
    grid: Grid = None,
    iterations: Iterations = None,
    lam: Lam = None,
    learning_rate: LearningRate = None,
    target: Target = None,
    moments: Moments = None,
    tune: bool = typer.Option(False, "--tune", help="First choose every method's setting on held-out samples (test_seed 4242), same budget and rule for all."),
    held_out_data: Optional[Path] = typer.Option(None, "--held-out-data", help="Held-out TextureMNIST folder for --tune (default: regenerated from --data's card with test_seed 4242)."),
    tune_requests: int = typer.Option(DEFAULTS.tune_requests, "--tune-requests", help="Held-out biased requests per candidate setting (--tune)."),
    figure_format: FigureFormat = figure_format_option(),
) -> None:
    """Evaluate explanations of a biased TextureMNIST model: CBD, CBL and per-digit IoU.

    CBD (bias detection): the salient context of the bias digit against the other digits'; CBL
    (bias localisation): the share of the salient context on the biased tile; per-digit IoU
    against the unbiased model. For grid saliency and the comparison methods; --tune first gives
    every method the same held-out tuning budget.

    Example: gsal benchmark evaluate -m tmnist-mobilenetv2-strong --data data/strong -o reports/m --tune
    """
    import gsal_tf as gs
    from gsal_tf.benchmark import evaluation, tuning

    try:
        net, model_name = resolve_model(model)
        entry = getattr(net, "zoo_entry", None)
        card = gs.benchmark.read_card(data)
        digit = _bias_digit(bias_digit, entry, card)
        ref, ref_name = _reference(reference, entry)
        samples = gs.benchmark.load_samples(data, "test")
        unbiased, unbiased_source = _unbiased_samples(unbiased_data, data, card)
        settings = EvaluationSettings(
            methods=[m.strip() for m in methods.split(",") if m.strip()], per_digit=per_digit, biased=biased,
            grid_saliency={**grid_option(grid), **given(iterations=iterations, lam=lam, learning_rate=learning_rate, target=target, moments=moments)},
            tune=tune, tune_requests=tune_requests,
        )
        tuned = None
        if tune:
            held_out = _held_out_samples(held_out_data, card, data)
            status = console.status("tuning on held-out samples")
            with status:
                tuned = tuning.tune(net, held_out, digit, settings,
                                    on_candidate=lambda name, setting: status.update(f"tuning {name}: {_setting(setting) or 'its one setting'}"))
        explainers = settings.explainers(net, tuned.chosen if tuned else None)
        with console.status("per-digit IoU"):
            iou = evaluation.iou_comparison(net, ref, unbiased, digit)
        status = console.status("explaining")
        with status:
            stats = evaluation.bias_statistics(
                explainers, samples, digit, per_digit=settings.per_digit, biased=settings.biased,
                on_method=lambda name, n: status.update(f"{name}: explaining {n} requests"),
            )
        report = {
            "model": model_name,
            "reference": ref_name,
            "data": str(data),
            "unbiased_data": unbiased_source,
            "bias_digit": digit,
            "bias": card.get("config", {}).get("bias"),
            "iou": iou,
            "explanations": stats,
            "settings": evaluation.settings_record(settings, explainers, tuned),
        }
        if tuned is not None:
            report["tuning"] = tuned.record()
        with staged_outputs(out) as stage:
            stage.path("report.json").write_text(json.dumps(report, indent=2))
            figures = _figures(stage, report, figure_format.value)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    _print(report)
    console.print(f"wrote [bold]{out}/[/] report.json, {', '.join(figures)}")


def _bias_digit(given, entry, card):
    if given is not None:
        return given
    if entry is not None and entry.bias is not None:
        return entry.bias.digit
    bias = card.get("config", {}).get("bias", {})
    return bias.get("digit") if bias.get("strength", "none") != "none" else None


def _reference(reference, entry):
    import gsal_tf as gs

    if reference:
        net, name = resolve_model(reference)
        return net, name
    if entry is not None and entry.bias is not None:
        candidate = gs.zoo.unbiased_reference(entry, gs.zoo.list_models())
        if candidate is not None:
            return gs.zoo.load(candidate.name), candidate.name
    return None, None


def _unbiased_samples(unbiased_data, data, card):
    """Unbiased test samples: given, regenerated from the card's MNIST, or the data itself."""
    import gsal_tf as gs

    if unbiased_data is not None:
        return gs.benchmark.load_samples(unbiased_data, "test"), str(unbiased_data)
    config = card.get("config", {})
    if config.get("bias", {}).get("strength", "none") == "none":
        return gs.benchmark.load_samples(data, "test"), str(data)
    mnist = card.get("mnist")
    if mnist and Path(mnist).is_file():
        cfg = gs.benchmark.load_config(config, bias={"strength": "none"})
        n = card["splits"]["test"]["n"]
        return gs.benchmark.TextureMNIST(cfg, mnist=mnist).samples("test", n=n), f"regenerated unbiased test split (MNIST {mnist})"
    console.print("[yellow]warning:[/] no unbiased data; the IoU comparison uses the biased test split (give --unbiased-data)")
    return gs.benchmark.load_samples(data, "test"), str(data)


def _held_out_samples(held_out_data, card, data):
    """Held-out samples for --tune: the given folder (checked not to be the evaluation split), or
    --data's config regenerated with the held-out test seed from the card's MNIST file."""
    import gsal_tf as gs
    from gsal_tf.benchmark import tuning

    config = card.get("config", {})
    if held_out_data is not None:
        held_card = gs.benchmark.read_card(held_out_data)
        seed = held_card.get("config", {}).get("test_seed")
        if seed is not None and seed == config.get("test_seed"):
            raise gs.GsalInputError(f"--held-out-data has the evaluation data's test_seed {seed}: generate it from a config with "
                                    f"test_seed = {tuning.HELD_OUT_TEST_SEED} so tuning never sees evaluated samples")
        return gs.benchmark.load_samples(held_out_data, "test")
    mnist = card.get("mnist")
    if not (mnist and Path(mnist).is_file()):
        raise gs.GsalInputError(f"--tune needs held-out samples: give --held-out-data (a TextureMNIST folder with test_seed "
                                f"{tuning.HELD_OUT_TEST_SEED}) or keep the MNIST file named in {data}/card.json")
    return tuning.held_out_samples(config, mnist)


def _setting(setting: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items())


def _figures(stage, report, fmt="png") -> list[str]:
    """cbd, cbl and iou figures in ``fmt``; returns the file names written."""
    from gsal_tf import viz
    from gsal_tf.benchmark.classes import CLASS_NAMES

    methods = report["explanations"]["methods"]
    names = list(methods)
    digit = report["bias_digit"]
    model = report["model"]
    written = []

    def save(figure, name):
        written.append(viz.save_figure(figure, stage.path(f"{name}.{fmt}")).name)

    matrix = np.array([[np.nan if v is None else v for v in methods[m]["cbd_by_digit"]] for m in names])
    save(viz.matrix_figure(matrix, names, [str(d) for d in DIGITS], "CBD: mean context saliency of each digit's requests",
                           subtitle=f"{model}; bias digit {digit} framed" if digit is not None else model,
                           colorbar_label="CBD (mean saliency on the context)", xlabel="digit explained", ylabel="method",
                           highlight_col=digit), "cbd")
    bars = {m: (methods[m].get("cbl_mean"), methods[m].get("cbl_std")) for m in names}
    if names and "inflation_cbl_mean" in methods[names[0]]:
        bars["inflation\nbaseline"] = (methods[names[0]]["inflation_cbl_mean"], None)
    n = report["settings"]["biased"]
    save(viz.bar_figure(bars, "CBL: share of the context saliency on the biased tile", ylabel="CBL (mean over requests)",
                        subtitle=f"{model}; up to {n} biased requests of digit {digit}; bars: mean ± std"), "cbl")
    rows = [report["iou"]["iou"]] + ([report["iou"]["reference_iou"]] if report["reference"] else [])
    labels = [f"explained: {model}"] + ([f"reference: {report['reference']}"] if report["reference"] else [])
    iou = np.array([[np.nan if v is None else v for v in r] for r in rows])
    save(viz.matrix_figure(iou, labels, list(CLASS_NAMES), "IoU per class on unbiased test data", vmax=1.0,
                           colorbar_label="IoU", xlabel="class", highlight_col=digit,
                           subtitle=f"bias digit {digit} framed" if digit is not None else None), "iou")
    return written


def _print(report):
    iou = report["iou"]
    table = Table(title="Has the network picked up the bias? IoU on unbiased data", header_style="bold")
    table.add_column("class")
    table.add_column("IoU\nexplained", justify="right")
    if report["reference"]:
        table.add_column("IoU\nreference", justify="right")
        table.add_column("drop\n(ref. − expl.)", justify="right")
    rows = [(str(d) + (" *" if d == report["bias_digit"] else ""), d) for d in DIGITS] + [("mean", None)]
    for label, d in rows:
        ours = iou["mean_iou"] if d is None else iou["iou"][d]
        cells = [_f(ours)]
        if report["reference"]:
            ref = iou["reference_mean_iou"] if d is None else iou["reference_iou"][d]
            cells += [_f(ref), _f(None if ours is None or ref is None else ref - ours)]
        table.add_row(label, *cells, style="bold" if d == report["bias_digit"] else None)
    console.print(table)
    methods = report["explanations"]["methods"]
    console.print(f"explained: {report['model']}\nreference: {report['reference'] or 'none'}\n* = bias digit")
    stats = compact_table(title="Context bias detection (CBD) and localisation (CBL)",
                          caption="CBD: mean context saliency of the bias digit's / the other digits' requests; ratio = bias / others. "
                                  "CBL: share of the context saliency on the biased tile (chance 0.5); n: CBL requests with "
                                  "salient context; inflation CBL: the inflation baseline")
    stats.add_column("method", overflow="fold")
    for col in ("CBD\nbias digit", "CBD\nothers", "CBD\nratio", "CBL", "n", "inflation\nCBL", "time\n(s)"):
        stats.add_column(col, justify="right", no_wrap=True)
    for name, row in methods.items():
        stats.add_row(
            name, _f(row.get("cbd_bias_digit")), _f(row.get("cbd_other_digits")), _f(row.get("cbd_ratio"), 1),
            _f(row.get("cbl_mean")), str(row.get("cbl_n", "—")), _f(row.get("inflation_cbl_mean")), f"{row['seconds']:.0f}",
        )
    console.print(stats)
    settings = report.get("settings", {})
    sources = settings.get("sources", {})
    tuned = report.get("tuning", {}).get("chosen", {})
    if tuned:
        held = report["tuning"]["held_out"]
        console.print(f"settings (tuned on {held['requests']} held-out requests, test_seed {held['test_seed']}):")
        for name in methods:
            if name in tuned:
                console.print(f"  {name}: {_setting(tuned[name]) or '—'} ({sources.get(name, 'default')})")


def _f(value, digits=3):
    return "—" if value is None else f"{value:.{digits}f}"
