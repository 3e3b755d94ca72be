"""``gsal benchmark protocol``: generate → train → evaluate over bias digits, textures, strengths."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from gsal_cli.console import console, fail


def protocol(
    config: Path = typer.Option(..., "--config", help="Protocol TOML (see configs/protocol/)."),
    out: Path = typer.Option(..., "--out", help="Work and results folder; finished runs in it are not redone."),
    mnist: Optional[Path] = typer.Option(None, "--mnist", help="MNIST in Keras' mnist.npz layout (default: keras.datasets download)."),
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
        bars = {}
        for group, g in summary["groups"].items():
            for method, m in g["methods"].items():
                bars[f"{group.split('/')[1]} {method[:8]}"] = tuple(m["cbl"])
        if bars:
            viz.write_png(out / "cbl.png", viz.bar_figure(bars, "CBL over runs (mean, std)"))
        for key, matrix in summary["cbd_matrix"].items():
            values = np.array(matrix["values"], np.float64)
            name = key.replace("/", "_")
            viz.write_png(out / f"cbd_{name}.png", viz.matrix_figure(values, [str(d) for d in matrix["bias_digits"]], [str(d) for d in DIGITS], f"CBD {key}: bias digit x evaluated digit"))
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    _print(summary)
    console.print(f"wrote [bold]{out}/[/] summary.json, cbl.png, cbd_*.png; per-run results in {out}/results/")


def _print(summary):
    """One table per backbone/strength: the IoU drop in the title, a row per method."""
    for group, g in summary["groups"].items():
        table = Table(
            title=f"{group}: {g['runs']} runs, mean ± std; IoU drop on the bias digit {_ms(g['iou_drop_bias_digit'], 2)}, "
            f"on the others {_ms(g['iou_drop_other_digits'], 2)}",
            header_style="bold",
        )
        table.add_column("method", no_wrap=True)
        for col in ("CBL", "inflation CBL", "CBD ratio"):
            table.add_column(col, justify="right", no_wrap=True)
        for method, m in g["methods"].items():
            table.add_row(method, _ms(m["cbl"]), _ms(m["inflation_cbl"]), _ms(m["cbd_ratio"], 1))
        console.print(table)


def _ms(pair, digits=3):
    mean, std = pair
    return "—" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"
