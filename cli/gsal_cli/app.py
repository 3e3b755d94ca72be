"""``gsal app``: the local explorer in the browser (the server is imported only here)."""

from __future__ import annotations

import typer


def app_command(
    port: int = typer.Option(8765, "--port", "-p", help="Port on 127.0.0.1 (0: any free port)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
) -> None:
    """Start the local explorer: click a predicted segment, see the context it needed.

    Pick a network and an image in the page, click a predicted segment, and see its explanation.

    The page is served on 127.0.0.1 only (never on the network), works offline (nothing is
    fetched from the internet) and sends no telemetry. Stop it with Ctrl+C.
    """
    from gsal_cli.console import console, fail

    try:
        from gsal_tf.app.server import serve
    except ImportError as exc:  # pragma: no cover - the app needs nothing beyond the core
        raise fail(f"gsal app cannot start: {exc}") from None
    try:
        serve(port, open_browser, ready=lambda url: console.print(f"gsal app on [bold]{url}[/] (Ctrl+C to stop)"))
    except OSError as exc:
        raise fail(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}; choose another --port") from None
