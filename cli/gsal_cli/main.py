"""Entry point of the ``gsal`` command: one Typer app, one module per command group."""

from __future__ import annotations

import os
from typing import Optional


def _quiet_tensorflow_start() -> None:
    """Import TensorFlow and probe devices with C++ stderr muted.

    TensorFlow's start-up lines (oneDNN notice, "could not find cuda drivers", cuInit errors on
    CPU machines) are printed by its C++ runtime before Python can filter them; for a CLI user
    they are noise. Set GSAL_VERBOSE=1 to see them. Python exceptions are unaffected.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if os.environ.get("GSAL_VERBOSE"):
        return
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_quiet_tensorflow_start()

import typer  # noqa: E402

from gsal_tf._version import __version__  # noqa: E402

app = typer.Typer(
    name="gsal",
    help="Grid saliency: which context made a segmentation network predict this?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    # Docstrings are hard-wrapped at 100 columns: Markdown joins their lines into paragraphs that
    # rich wraps to the terminal ("rich" mode keeps every line break: ragged at 80 columns).
    rich_markup_mode="markdown",
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"gsal {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """Grid saliency (Hoyer et al., NeurIPS 2019) for Keras segmentation networks."""


def _register() -> None:
    from gsal_cli import app as app_cli
    from gsal_cli import benchmark, compare, dataset, explain, export, zoo

    app.command("explain")(explain.explain)
    app.command("compare-backbones")(compare.compare_backbones)
    app.command("export")(export.export)
    app.command("explain-dataset")(dataset.explain_dataset)
    app.command("stats")(dataset.stats)
    app.command("app")(app_cli.app_command)
    app.add_typer(benchmark.app, name="benchmark")
    app.add_typer(zoo.app, name="zoo")


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
