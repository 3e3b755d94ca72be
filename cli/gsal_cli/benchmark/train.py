"""``gsal benchmark train``: train a DeepLabv3+ on a generated TextureMNIST folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from gsal_cli.console import console, fail


def train(
    data: Path = typer.Option(..., "--data", help="Folder written by `gsal benchmark generate`."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (model.keras, model.weights.h5, history.json, metrics.json)."),
    backbone: Optional[str] = typer.Option(None, "--backbone", help="mobilenetv2 | xception (uses its '-tiny' architecture) (default: from --config)."),
    config: Optional[Path] = typer.Option(None, "--config", help="TOML with \\[model] and \\[train] tables (see configs/train/)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the config's epochs."),
    eval_data: Optional[Path] = typer.Option(None, "--eval-data", help="Folder whose test split gives the final metrics (default: --data)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Override the config's seed."),
) -> None:
    """Train with Keras fit; keep the best checkpoint by validation mean IoU; report test metrics."""
    import gsal_tf as gs
    from gsal_tf.benchmark.classes import CLASS_NAMES
    from gsal_tf.benchmark.training import TrainConfig, train as run_training

    try:
        overrides = {"epochs": epochs, "seed": seed}
        if backbone is not None:
            if backbone not in gs.models.BACKBONES:
                raise gs.GsalInputError(f"--backbone {backbone!r}: choose one of {', '.join(gs.models.BACKBONES)}")
            overrides["architecture"] = f"{backbone}-tiny"
            if config is not None:  # a recipe's [model] options belong to its own backbone
                own = gs.models.ARCHITECTURES[TrainConfig.from_toml(config).architecture]["backbone"]
                if own != backbone:
                    raise gs.GsalInputError(
                        f"--backbone {backbone} does not match {config}, a {own} recipe; drop --backbone "
                        f"or give a {backbone} config (e.g. configs/train/{backbone}.toml)"
                    )
        if config is not None:
            cfg = TrainConfig.from_toml(config, **overrides)
        else:
            cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None}).checked()
        card = gs.benchmark.read_card(data)
        n_train = int(card.get("splits", {}).get("train", {}).get("n", 0))
        steps = max(1, int(n_train * (1 - cfg.val_fraction)) // cfg.batch_size) if n_train else None

        table = Table(title=f"training {cfg.architecture} on {data}", header_style="bold")
        for col in ("epoch", "loss", "val mean IoU", "lr", "time"):
            table.add_column(col, justify="right")

        with Progress(TextColumn("epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as progress:
            task = progress.add_task("train", total=steps, epoch=1)

            def on_batch(batch):
                progress.update(task, completed=batch + 1)

            def on_epoch(epoch, row):
                mark = " *" if row["best"] else ""
                console.print(f"epoch {epoch:>3}/{cfg.epochs}  loss {row['loss']:.4f}  val mIoU {row['val_mean_iou']:.4f}{mark}  lr {row['learning_rate']:.2e}  {row['seconds']:.0f}s")
                table.add_row(str(epoch), f"{row['loss']:.4f}", f"{row['val_mean_iou']:.4f}{mark}", f"{row['learning_rate']:.1e}", f"{row['seconds']:.0f}s")
                progress.update(task, completed=0, epoch=epoch + 1)

            metrics = run_training(data, out, cfg, eval_dir=eval_data, on_epoch_end=on_epoch, on_batch_end=on_batch)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None

    console.print(table)
    test = metrics["test"]
    result = Table(title="test split", header_style="bold")
    result.add_column("class")
    result.add_column("IoU", justify="right")
    for k, v in enumerate(test["iou_per_class"]):
        result.add_row(CLASS_NAMES[k] if CLASS_NAMES[k] == "background" else f"digit {k}", "—" if v is None else f"{v:.3f}")
    result.add_row("[bold]mean[/]", f"[bold]{test['mean_iou']:.3f}[/]")
    console.print(result)
    console.print(f"best epoch {metrics['best_epoch']}, {metrics['train_seconds']:.0f}s; wrote [bold]{out}/[/] model.keras, model.weights.h5, history.json, metrics.json")
