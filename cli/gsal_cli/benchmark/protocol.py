"""``gsal benchmark protocol``: generate → train → evaluate over bias digits, textures, strengths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from gsal_cli.console import compact_table, console, fail
from gsal_cli.options import FigureFormat, figure_format_option


def protocol(
    config: Path = typer.Option(..., "--config", help="Protocol TOML (see configs/protocol/)."),
    out: Path = typer.Option(..., "--out", "-o", help="Work and results folder; finished runs in it are not redone (only re-tuned when the tuning space changed)."),
    mnist: Optional[Path] = typer.Option(None, "--mnist", help="MNIST in Keras' mnist.npz layout (default: keras.datasets download)."),
    figure_format: FigureFormat = figure_format_option(),
) -> None:
    """Run the bias protocol and report CBL, CBD and IoU drop averaged over runs, with their spread."""
    import gsal_tf as gs
    from gsal_tf import viz
    from gsal_tf.benchmark.classes import DIGITS
    from gsal_tf.benchmark.protocol import Protocol, run_protocol

    try:
        plan = Protocol.from_toml(config)
        total = len(plan.runs())
        console.print(f"protocol {config}: {total} runs ({', '.join(plan.backbones)}; digits {plan.bias_digits}; textures {plan.textures}; {', '.join(plan.strengths)})")
        done = {"n": 0}

        def on_event(kind, info):
            if kind in ("done", "skip"):
                done["n"] += 1
            label = info.get("name") or info.get("run") or info.get("data")
            console.print(f"[{done['n']}/{total}] {kind} {label}")

        summary = run_protocol(plan, mnist, out, on_event)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        fmt = figure_format.value
        bars = {}
        for group, g in summary["groups"].items():
            for method, m in g["methods"].items():
                bars[f"{group}\n{method}"] = tuple(m["cbl"])
        if bars:
            viz.save_figure(viz.bar_figure(bars, "CBL over the protocol's runs", ylabel="CBL (share of context saliency on the biased tile)",
                                           subtitle=f"{config.name}: backbone/strength and method; bars: mean ± std over runs"),
                            out / f"cbl.{fmt}")
        for key, matrix in summary["cbd_matrix"].items():
            values = np.array(matrix["values"], np.float64)
            name = key.replace("/", "_")
            viz.save_figure(viz.matrix_figure(values, [str(d) for d in matrix["bias_digits"]], [str(d) for d in DIGITS],
                                              f"CBD of {key}: mean context saliency per digit explained",
                                              subtitle="one row per bias digit (mean over its runs); the bias digit framed",
                                              highlight_cells=[(i, d) for i, d in enumerate(matrix["bias_digits"])],
                                              colorbar_label="CBD (mean saliency on the context)", xlabel="digit explained",
                                              ylabel="bias digit of the run"),
                            out / f"cbd_{name}.{fmt}")
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    _print(summary)
    console.print(f"wrote [bold]{out}/[/] summary.json, cbl.{fmt}, cbd_*.{fmt}; per-run results in {out}/results/")


def _print(summary):
    """One table per backbone/strength: the IoU drop in the title, a row per method."""
    for group, g in summary["groups"].items():
        table = compact_table(
            title=f"{group}: {g['runs']} runs, mean ± std; IoU drop on the bias digit {_ms(g['iou_drop_bias_digit'], 2)}, "
            f"on the others {_ms(g['iou_drop_other_digits'], 2)}",
        )
        table.add_column("method", overflow="fold")
        for col in ("CBL\n(share on biased tile)", "inflation CBL\n(baseline)", "CBD ratio\n(bias / others)"):
            table.add_column(col, justify="right", no_wrap=True)
        for method, m in g["methods"].items():
            table.add_row(method, _ms(m["cbl"]), _ms(m["inflation_cbl"]), _ms(m["cbd_ratio"], 1))
        console.print(table)
    for group, u in summary.get("uptake", {}).items():
        if not u["measured"]:
            continue
        table = compact_table(
            title=f"{group}: {u['taken']} of {u['measured']} networks took the bias (reliance gain mean "
            f"{_ms(u['gain'])}); CBL over all networks and over those that took it",
        )
        table.add_column("method", overflow="fold")
        for col in ("CBL, all\n(networks)", "CBL, took\nthe bias"):
            table.add_column(col, justify="right", no_wrap=True)
        for method, m in u["methods"].items():
            table.add_row(method, _msn(m["cbl_all"]), _msn(m["cbl_taken"]))
        console.print(table)


def _msn(triple):
    mean, std, n = triple
    return "—" if mean is None else f"{mean:.3f} ± {std:.3f} ({n})"


def _ms(pair, digits=3):
    mean, std = pair
    return "—" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
