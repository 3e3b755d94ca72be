"""Shared rich console, error reporting and all-or-nothing output files for the CLI commands."""

from __future__ import annotations

import contextlib
import errno
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

from gsal_tf.errors import GsalInputError

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


#: Why the output folder cannot be written and what to do, by errno.
_WRITE_FIXES = {
    errno.EROFS: "read-only file system; give --out a folder on a writable disk",
    errno.EACCES: "permission denied; give --out a folder you can write to",
    errno.EPERM: "operation not permitted; give --out a folder you can write to",
    errno.ENOSPC: "no space left on the disk; free some space or give --out a folder on another disk, then run again",
    errno.EDQUOT: "disk quota exceeded; free some space or give --out a folder on another disk, then run again",
    errno.ENOTDIR: "a file is in the way; give --out a folder",
    errno.EEXIST: "a file is in the way; give --out a folder",
}


def output_error(out_dir, exc: OSError) -> GsalInputError:
    """The one-line user error for an OSError met while writing the outputs to ``out_dir``: the
    reason and the fix (``raise output_error(out, exc) from None``)."""
    fix = _WRITE_FIXES.get(exc.errno) or f"{exc.strerror or type(exc).__name__}; check that --out names a folder you can write to"
    return GsalInputError(f"cannot write the outputs to {out_dir}: {fix}")


def _make_dirs(path: Path) -> list[Path]:
    """Create the folder ``path`` and its missing parents; returns the folders created, outermost
    first (none of them is left behind when creating one fails). Raises OSError (NotADirectoryError
    when ``path`` is a file)."""
    missing = []
    while not path.exists() and not path.is_symlink() and path != path.parent:
        missing.append(path)
        path = path.parent
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
    except OSError:
        _remove_empty(created)
        raise
    target = missing[0] if missing else path
    if not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(target))
    return created


def _remove_empty(folders: list[Path]) -> None:
    """Remove the ``folders`` (outermost first) that are empty, innermost first."""
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


class StagedOutputs:
    """Files written under a hidden staging folder and moved into place together at the end.

    ``path(name)`` gives where to write ``name``; nothing appears in the output folder unless the
    whole block succeeds, so a failure never leaves a partial output file behind. The staging
    folder (``.gsal-stage-*``) sits inside the output folder, so the final moves are renames on
    one file system (an output folder that is a mount point of its own works). A failed block
    leaves nothing behind: the stage, the files this commit had moved and the folders made for
    the outputs are removed (:meth:`abandon`). OSErrors come through as they are;
    :func:`staged_outputs` turns them into one user error line.
    """

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self._names: list[str] = []
        self._moved: list[Path] = []
        self._created = _make_dirs(self.out_dir)
        try:
            self._stage = Path(tempfile.mkdtemp(prefix=".gsal-stage-", dir=self.out_dir))
        except OSError:
            _remove_empty(self._created)
            raise

    def path(self, name: str) -> Path:
        self._names.append(name)
        return self._stage / name

    def commit(self) -> list[Path]:
        final = []
        for name in self._names:
            target = self.out_dir / name
            new = not target.exists()
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(self._stage / name, target)
            if new:
                self._moved.append(target)
            final.append(target)
        return final

    def discard(self) -> None:
        shutil.rmtree(self._stage, ignore_errors=True)

    def abandon(self) -> None:
        """Undo a failed block: the stage, the new files a failed commit had moved, the folders
        made for the outputs (when empty)."""
        self.discard()
        for target in self._moved:
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    target.unlink()
        _remove_empty(self._created)


@contextlib.contextmanager
def staged_outputs(out_dir: Path) -> Iterator[StagedOutputs]:
    """``with staged_outputs(out) as stage:`` write to ``stage.path(name)``; all files appear in
    ``out`` when the block ends, or none. An OSError while making the folder, writing into the
    stage or moving the files (read-only or full disk, no permission, a file in the way) is raised
    as one :class:`GsalInputError` (:func:`output_error`) after everything is cleaned up."""
    try:
        stage = StagedOutputs(out_dir)
    except OSError as exc:
        raise output_error(out_dir, exc) from None
    try:
        yield stage
        stage.commit()
    except OSError as exc:
        stage.abandon()
        raise output_error(out_dir, exc) from None
    except BaseException:
        stage.abandon()
        raise
    stage.discard()
