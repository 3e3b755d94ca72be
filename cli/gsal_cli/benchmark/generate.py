"""``gsal benchmark generate``: a TextureMNIST dataset folder from a benchmark config."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gsal_cli.console import console, fail, staged_outputs
from gsal_tf.benchmark.classes import DIGITS

def _texture_choice(text: Optional[str]):
    """--bias-texture: an index when it is a number, else a texture name."""
    return None if text is None else int(text) if text.strip().isdigit() else text


def generate(
    config: Path = typer.Option(..., "--config", help="Benchmark TOML, e.g. configs/benchmark/strong.toml."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder for the shards and card.json."),
    mnist: Optional[Path] = typer.Option(None, "--mnist", help="MNIST .npz in Keras' layout (x_train, y_train, x_test, y_test); default: download via Keras."),
    textures: Optional[Path] = typer.Option(None, "--textures", help="Folder of texture images (default: the built-in procedural pool)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Training split seed (default: the config's). The test split keeps its own test_seed."),
    n_train: Optional[int] = typer.Option(None, "--n-train", help="Training samples (default: the config's n_train)."),
    n_test: Optional[int] = typer.Option(None, "--n-test", help="Test samples (default: the config's n_test)."),
    bias_digit: Optional[int] = typer.Option(None, "--bias-digit", help="Digit tied to the bias texture (default: the config's)."),
    bias_texture: Optional[str] = typer.Option(None, "--bias-texture", help="Bias texture: a name in the pool (with --textures: a file stem) or an index (default: the config's)."),
) -> None:
    """Generate a TextureMNIST dataset: compressed .npz shards plus card.json (config and counts).

    Load it with gsal_tf.benchmark.load_dataset(OUT, "train") or load_samples(OUT, "test").
    """
    from gsal_tf import benchmark
    from gsal_tf.errors import GsalError

    overrides = {k: v for k, v in (("seed", seed), ("n_train", n_train), ("n_test", n_test)) if v is not None}
    bias = {k: v for k, v in (("digit", bias_digit), ("texture", _texture_choice(bias_texture))) if v is not None}
    if bias:
        overrides["bias"] = bias
    if textures is not None:  # recorded in the config (and the data card), so reuse and resumption see it
        overrides["textures"] = {"folder": str(textures.resolve())}
    try:
        cfg = benchmark.load_config(config, **overrides)
        data = benchmark.TextureMNIST(cfg, mnist=mnist, textures=textures)
    except GsalError as exc:
        raise fail(str(exc)) from None

    splits = {"train": cfg.n_train, "test": cfg.n_test}
    if not any(splits.values()):
        raise fail("nothing to generate: --n-train and --n-test are both 0")
    start = time.perf_counter()
    columns = (TextColumn("{task.description:>5}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks = {split: progress.add_task(split, total=n) for split, n in splits.items() if n}

        def advance(split: str, done: int, total: int) -> None:
            progress.update(tasks[split], completed=done)

        # Shards are written to a scratch folder, then handed to the stage that moves everything
        # into OUT at once: an interrupted run leaves no partial dataset behind. A folder that
        # cannot be written (read-only, full) is one error line.
        try:
            with staged_outputs(out) as stage, tempfile.TemporaryDirectory(prefix=".gsal-work-", dir=out.parent) as work:
                card = data.generate(work, splits=splits, progress=advance)
                for name in card["files"]:
                    os.replace(Path(work) / name, stage.path(name))
        except GsalError as exc:
            raise fail(str(exc)) from None
    seconds = time.perf_counter() - start

    console.print(_summary_table(card))
    total = sum(s["n"] for s in card["splits"].values())
    console.print(f"wrote [bold]{total}[/] samples in {seconds:.1f} s to [bold]{out}/[/] ({len(card['files'])} files, card.json)")


def _summary_table(card: dict) -> Table:
    """Counts per digit and split; the bias digit's row is marked."""
    cfg = card["config"]
    bias = card["bias_texture"]
    title = f"TextureMNIST, {cfg['bias']['strength']} bias"
    if bias["name"] is not None:
        title += f" (* digit {cfg['bias']['digit']} ~ {bias['name']})"
    table = Table(title=title)
    table.add_column("digit", justify="right")
    splits = card["splits"]
    for split in splits:
        table.add_column(split, justify="right")
        table.add_column(f"{split} biased", justify="right")
    for digit in DIGITS:
        marker = " *" if bias["name"] is not None and digit == cfg["bias"]["digit"] else ""
        row = [f"{digit}{marker}"]
        for split, info in splits.items():
            row += [str(info["per_digit"][digit]), str(info["biased"]) if marker else ""]
        table.add_row(*row)
    total = ["all"]
    for info in splits.values():
        total += [str(info["n"]), str(info["biased"])]
    table.add_row(*total, style="bold")
    if bias["name"] is not None:
        elsewhere = ["bias texture, other"] + [v for info in splits.values() for v in (str(info["bias_texture_elsewhere"]), "")]
        table.add_row(*elsewhere, style="dim")
    return table

