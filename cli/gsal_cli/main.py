"""Entry point of the ``gsal`` command: one Typer app, one module per command group."""

from __future__ import annotations

import os

# TensorFlow's C++ start-up chatter is noise for a CLI user; real errors still surface.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Optional  # noqa: E402

import typer  # noqa: E402

from gsal_tf._version import __version__  # noqa: E402

app = typer.Typer(
    name="gsal",
    help="Grid saliency: which context made a segmentation network predict this?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
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
    from gsal_cli import explain

    app.command("explain")(explain.explain)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
