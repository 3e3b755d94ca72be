"""``gsal zoo list`` / ``gsal zoo info NAME``: the pretrained models shipped with gsal."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from gsal_cli.console import console, fail

app = typer.Typer(help="The pretrained model zoo.", no_args_is_help=True)


def _bias_text(entry) -> str:
    b = entry.bias
    return "none" if b is None else f"{b.strength}: {b.digit} on {b.texture}"


@app.command("list")
def list_models() -> None:
    """List the zoo's models: pretrained real-image networks, and the TextureMNIST models with
    their bias and measured metrics."""
    import gsal_tf as gs

    try:
        entries = gs.zoo.list_models()
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    if not entries:
        console.print("the zoo is empty")
        return
    real = [e for e in entries if e.kind == "tflite"]
    trained = [e for e in entries if e.kind != "tflite"]
    if real:
        table = Table(title="pretrained on real images (imported from TFLite)", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      caption="input: RGB in [0, 1], photos letterboxed; classes: gsal zoo info NAME")
        for column, justify in (("name", "left"), ("dataset", "left"), ("classes", "right"), ("input", "left"), ("licence", "left")):
            table.add_column(column, justify=justify, no_wrap=column == "name")
        for e in real:
            table.add_row(e.name, e.dataset, str(e.num_classes), _shape(e.input_shape[:2]), e.licence)
        console.print(table)
    if trained:
        shapes = sorted({_shape(e.input_shape) for e in trained})
        datasets = ", ".join(sorted({e.dataset for e in trained}))
        table = Table(title=f"trained by gsal on {datasets} ({', '.join(shapes)}, {trained[0].num_classes} classes)",
                      header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                      caption="bias-digit IoU on unbiased test data: this model (same backbone unbiased)")
        table.add_column("name", no_wrap=True)  # says the backbone (gsal zoo info NAME: its build)
        table.add_column("bias")
        table.add_column("mIoU", justify="right")
        table.add_column("bias-digit IoU", justify="right")
        for e in trained:
            table.add_row(e.name, _bias_text(e), _fmt(e.metrics.get("mean_iou")), _bias_digit_iou(e, entries))
        console.print(table)


@app.command("info")
def info(name: str = typer.Argument(..., metavar="NAME", help="Zoo model name (see `gsal zoo list`).")) -> None:
    """Show everything the manifest records about one model."""
    import gsal_tf as gs

    try:
        e = gs.zoo.get(name)
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    table = Table(title=e.name, show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")  # URLs and hashes whole, never cut with an ellipsis
    table.add_row("description", e.description)
    table.add_row("kind", e.kind)
    table.add_row("dataset", e.dataset)
    table.add_row("licence", e.licence or "—")
    table.add_row("backbone", f"{e.backbone}: {e.build}")
    table.add_row("input", f"{tuple(e.input_shape)}; {e.preprocessing}")
    table.add_row("classes", ", ".join(f"{i} {n}" if e.kind == "tflite" else n for i, n in enumerate(e.class_names)))
    if e.kind != "tflite":
        table.add_row("bias", _bias_text(e))
    for k, v in e.metrics.items():
        table.add_row(f"metric: {k}", _fmt(v) if isinstance(v, float) else str(v))
    for k, v in e.training.items():
        table.add_row(f"training: {k}", str(v))
    for k, v in e.source.items():
        table.add_row(f"source: {k}", str(v))
    for k, v in e.reference.items():
        table.add_row(f"reference: {k}", str(v))
    table.add_row("weights", f"{e.weights} (sha256 {e.sha256[:16]}…)")
    if e.url:
        table.add_row("url", e.url)
    console.print(table)


def _shape(shape) -> str:
    return "×".join(str(v) for v in shape)


def _bias_digit_iou(entry, entries) -> str:
    """'0.045 (0.750)': the entry's IoU on its bias digit and the unbiased model's, '—' if unbiased."""
    import gsal_tf as gs

    if entry.bias is None:
        return "—"
    own, ref = gs.zoo.bias_digit_ious(entry, entries)
    return _fmt(own) + (f" ({_fmt(ref)})" if ref is not None else "")


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def _as_given(path: Path) -> str:
    """``path`` relative to the current folder when it lies below it (no machine-specific prefix
    in a manifest), else as given."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


@app.command("build")
def build(
    plan: Path = typer.Option(Path("configs/zoo/zoo.toml"), "--plan", help="Zoo plan: \\[\\[model]] entries with name, data, train (paths relative to the current folder)."),
    mnist: Optional[Path] = typer.Option(None, "--mnist", help="MNIST in Keras' mnist.npz layout (default: keras.datasets download)."),
    work: Path = typer.Option(Path("runs/zoo"), "--work", help="Folder for generated data and training runs."),
    zoo_dir: Optional[Path] = typer.Option(None, "--zoo-dir", help="Where weights and models.toml go (default: the package's zoo)."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma-separated entry names to build."),
    n_train: Optional[int] = typer.Option(None, "--n-train", help="Override the training samples of every data config."),
    force: bool = typer.Option(False, "--force", help="Rebuild entries already in the zoo."),
    tflite_dir: Optional[Path] = typer.Option(None, "--tflite-dir", help="Folder with the TFLite files of imported entries (default: download each from its recorded url, sha256-checked)."),
    image_dirs: Optional[List[Path]] = typer.Option(None, "--image-dir", help="Folder with photos to measure imported entries on (repeatable)."),
) -> None:
    """Build each planned model and record it in the zoo manifest.

    Trained entries (data, train): generate data, train, measure. Imported entries (tflite):
    import the TFLite file, store it as float16, measure its agreement with the file.
    """
    import gsal_tf as gs
    from gsal_tf.zoo.build import build_model, demo_config, read_plan, write_demo_sample
    from gsal_tf.zoo.build_tflite import build_tflite_model, is_tflite_entry
    from gsal_tf.zoo.demo import SAMPLE

    try:
        entries = read_plan(plan)
        if only:
            wanted = {n.strip() for n in only.split(",")}
            unknown = wanted - {e["name"] for e in entries}
            if unknown:
                raise gs.GsalInputError(f"--only: {', '.join(sorted(unknown))} not in {plan}")
            entries = [e for e in entries if e["name"] in wanted]
        demo_data = demo_config(plan)
        shown = _as_given(plan)  # the plan as the manifest's rebuild commands cite it
        for entry in entries:
            if is_tflite_entry(entry):
                record = build_tflite_model(entry, zoo_dir or gs.zoo.zoo_dir(), tflite_dir, image_dirs or (),
                                            force=force, log=console.print, plan=shown)
                if record:
                    console.print(f"[bold]{record['name']}[/]: {record['weights']} ({record['metrics']['weights_mb']} MB)")
                continue
            record = build_model(
                entry, mnist, work, zoo_dir or gs.zoo.zoo_dir(), n_train=n_train, force=force,
                on_epoch=lambda e, row, name=entry["name"]: console.print(
                    f"{name} epoch {e:>2}: loss {row['loss']:.4f} val mIoU {row['val_mean_iou']:.4f}{' *' if row['best'] else ''} {row['seconds']:.0f}s"
                ),
                log=console.print, plan=shown,
            )
            if record:
                m = record["metrics"]
                digit = f", bias-digit IoU {m['bias_digit_iou']:.3f}" if "bias_digit_iou" in m else ""
                console.print(f"[bold]{record['name']}[/]: mean IoU {m['mean_iou']:.3f}{digit} ({m['train_minutes']} min)")
        target = Path(zoo_dir or gs.zoo.zoo_dir())
        if demo_data and (force or not (target / SAMPLE).is_file()):
            console.print(f"demo sample: {write_demo_sample(demo_data, mnist, target)} (from {demo_data})")
    except gs.GsalError as exc:
        raise fail(str(exc)) from None
    console.print(f"zoo: [bold]{escape(str(target))}/[/] (models.toml and the weights files)")
