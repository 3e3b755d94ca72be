"""Shared rich console, error reporting and all-or-nothing output files for the CLI commands."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True)

def compact_table(title: str | None = None, caption: str | None = None) -> Table:
    """A results table that fits 80 columns: one rule under the header, no outer border, one
    space of padding between columns. Give name columns ``overflow="fold"`` (a long name wraps,
    never "…") and number columns ``no_wrap=True`` with short headers split by newlines."""
    return Table(title=title, caption=caption, header_style="bold", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                 collapse_padding=True, caption_justify="left")


#: Exit code for a user's mistake (bad input); 1 stays for unexpected failures.
EXIT_USAGE = 2


def fail(message: str) -> typer.Exit:
    """Print one red error line and return the Exit to raise: ``raise fail("...")``."""
    # Messages name config tables ("[bias] texture"): escape them, or rich reads them as markup.
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code=EXIT_USAGE)


class StagedOutputs:
    """Files written under a hidden staging folder and moved into place together at the end.

    ``path(name)`` gives where to write ``name``; nothing appears in the output folder unless the
    whole block succeeds, so a failure never leaves a partial output file behind.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self._names: list[str] = []
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self._stage = Path(tempfile.mkdtemp(prefix=".gsal-stage-", dir=self.out_dir.parent))

    def path(self, name: str) -> Path:
        self._names.append(name)
        return self._stage / name

    def commit(self) -> list[Path]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        final = []
        for name in self._names:
            target = self.out_dir / name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(self._stage / name, target)
            final.append(target)
        return final

    def discard(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)


@contextlib.contextmanager
def staged_outputs(out_dir: Path) -> Iterator[StagedOutputs]:
    stage = StagedOutputs(out_dir)
    try:
        yield stage
        stage.commit()
    finally:
        stage.discard()
