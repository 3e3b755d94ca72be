"""The ``gsal`` command-line application (Typer + rich). Imports gsal_tf; never the other way."""
