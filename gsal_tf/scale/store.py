"""The results folder of a dataset run: Parquet shards, optional per-pixel maps, a run card.

Layout::

    RESULTS/
      run.json                     the run card: settings (model, explainer, policy, data), versions,
                                   status ("running" | "complete"), totals, skipped samples
      requests/part-00000.parquet  one row per request; one shard per explained batch, in order
      maps/part-00000.npz          (optional) that batch's saliency (n,H,W) float16 and request
                                   masks (bit-packed) at the image resolution, rows as in the shard

Open the rows with pandas: ``pandas.read_parquet("RESULTS/requests")`` (or
:func:`read_results` for a ``pyarrow.Table`` without pandas). Columns are listed in
:mod:`gsal_tf.scale.job`; each shard's Parquet metadata (key ``gsal``) holds where the stream
stands after it (``next_sample``, ``next_request``) and the samples skipped since the previous
shard.

Crash safety: every file is written under a temporary name (``.NAME.<pid>.<random>.tmp``, one
per writer) and renamed (atomic on POSIX); a shard's Parquet file is renamed last, so a shard
exists only when complete. A rerun continues after the last readable shard of an unbroken
sequence 0..k; a damaged shard (truncated, overwritten) and the shards after it are removed and
redone. A run killed at any point loses only the batches it had not committed. A folder holding
results of other settings is refused.

A run folder is a run or nothing: what can be checked is checked before the card is written
(:func:`gsal_tf.scale.job.explain_dataset`), and a start that fails with a GsalError before its
first shard (a full or read-only disk, an explainer error) is removed by
:func:`discard_unstarted`. A start killed or crashed before its first shard leaves its card and
an empty ``requests/``: that card (no shards, never completed) is no run, and gives way to a
run of any settings. A folder holding only empty ``requests/`` / ``maps/`` and temporary files
is taken as empty.

Write failures (read-only file system, disk full, no permission) are a GsalInputError that says
what to do (:func:`write_failure`); the shards already committed stay intact.

pyarrow is the one extra dependency (``pip install "gsal-tf[dataset]"``): it is imported only here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import io
import json
import os
import uuid
from pathlib import Path
from typing import Optional

import numpy as np

from gsal_tf._version import __version__
from gsal_tf.errors import GsalInputError, first_line

__all__ = [
    "RESULTS_FORMAT", "RESULTS_VERSION", "CARD_NAME", "SHARD_DIR", "MAP_DIR", "META_KEY", "pyarrow",
    "ResumePoint", "DamagedShard", "shard_name", "read_card", "check_card", "write_card", "write_failure",
    "open_run", "holds_card", "write_text", "discard_unstarted", "read_shard", "shard_meta", "write_shard",
    "read_results",
]

RESULTS_FORMAT = "gsal-dataset-results"
RESULTS_VERSION = 1
CARD_NAME = "run.json"
SHARD_DIR = "requests"
MAP_DIR = "maps"
META_KEY = b"gsal"


def pyarrow():
    """The pyarrow module, or a GsalInputError that says how to install it."""
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise GsalInputError('dataset results are Parquet files: install pyarrow (pip install "gsal-tf[dataset]")') from None
    return pa


@dataclasses.dataclass
class ResumePoint:
    """Where a run continues: the next shard number and stream position, what was done before.

    ``card`` is the run card written for it (a resumed run keeps its start time); ``redone``
    names the damaged shards removed to be redone. ``finished``: the folder holds a complete run
    of these settings with every shard readable; ``card`` is then its card, left as it was.
    """

    shard: int = 0
    sample: int = 0
    request: int = 0
    requests_done: int = 0
    skipped: list = dataclasses.field(default_factory=list)
    card: Optional[dict] = None
    redone: list = dataclasses.field(default_factory=list)
    finished: bool = False


class DamagedShard(GsalInputError):
    """A results shard that cannot be read back (truncated or overwritten)."""


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def read_card(folder) -> dict:
    """The run card of a results folder (a GsalInputError for a missing, damaged or foreign one)."""
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise GsalInputError(f"{folder} is not a gsal results folder (no {CARD_NAME}); run `gsal explain-dataset` first")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise GsalInputError(f"{path} is not valid JSON ({first_line(exc)}); delete the results folder and run explain-dataset again") from None
    except OSError as exc:
        raise GsalInputError(f"cannot read {path}: {exc.strerror or first_line(exc)}") from None
    check_card(card, path)
    return card


def check_card(card, path) -> None:
    """A GsalInputError unless ``card`` is a results card of :data:`RESULTS_VERSION`."""
    if not isinstance(card, dict) or card.get("format") != RESULTS_FORMAT:
        found = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise GsalInputError(f"{path} is not a gsal results card (format {found!r})")
    version = card.get("version")
    if version != RESULTS_VERSION:
        versions = card.get("versions") if isinstance(card.get("versions"), dict) else {}
        writer = versions.get("gsal_tf", "an unknown version")
        raise GsalInputError(f"{path} is a results card of format version {version!r}, written by gsal-tf {writer}; this gsal-tf "
                             f"({__version__}) reads version {RESULTS_VERSION}: read it with the gsal-tf that wrote it, "
                             "or explain the dataset again into a new results folder")
    if not isinstance(card.get("settings"), dict):
        raise GsalInputError(f"{path} holds no run settings (the card is damaged); delete the results folder and run explain-dataset again")


def write_card(folder, card: dict) -> None:
    path = Path(folder) / CARD_NAME
    _atomic_write_bytes(path, (json.dumps(card, indent=2, default=_plain) + "\n").encode())


def write_text(path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed; an OSError is a
    GsalInputError)."""
    _atomic_write_bytes(Path(path), text.encode())


def write_failure(exc: OSError, path, what: str = "a results folder") -> GsalInputError:
    """The GsalInputError for an OSError met writing ``path``: what happened and what to do
    (``what``: the output the user should move, e.g. "--out")."""
    code = getattr(exc, "errno", None)
    if code == errno.EROFS:
        return GsalInputError(f"cannot write {path}: the file system is read-only; give {what} on a writable disk")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return GsalInputError(f"cannot write {path}: no space left on the device; the shards already written are kept: "
                              "free some space and run the same command again to resume")
    if code in (errno.EACCES, errno.EPERM):
        return GsalInputError(f"cannot write {path}: permission denied; give {what} you can write to")
    return GsalInputError(f"cannot write {path}: {exc.strerror or first_line(exc)}")


def open_run(folder, card: dict, added: Optional[dict] = None) -> ResumePoint:
    """Start or resume the run of ``card`` (its ``settings``) in ``folder``.

    A new or empty folder (or one holding only what a failed start leaves, see the module
    docstring) gets the card and an empty ``requests/``. A folder whose card has the same
    settings resumes after its last readable shard, with the card marked running again. Any
    other folder is refused with a GsalInputError.

    ``added`` (``{section: {setting: value}}``, e.g. ``{"explainer": {"prune": False}}``): settings
    that did not exist when older cards were written, with the value that reproduces those runs;
    a card without them compares as if it held these values.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GsalInputError(f"{folder} is a file; give a folder for the results")
    try:
        return _open_run(folder, card, added or {})
    except OSError as exc:
        raise write_failure(exc, folder) from None


def _with_added(settings: dict, added: dict) -> dict:
    """``settings`` with the ``added`` settings it lacks (see :func:`open_run`)."""
    out = dict(settings)
    for section, values in added.items():
        if isinstance(out.get(section), dict):
            out[section] = {**values, **out[section]}
    return out


def _differing(old: dict, new: dict) -> list:
    """The settings that differ: ``section.setting`` where both sections are dicts, else ``section``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            out.extend(f"{key}.{k}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
        else:
            out.append(key)
    return out


def _open_run(folder: Path, card: dict, added: dict, retry: bool = True) -> ResumePoint:
    _remove_stale_temps(folder)
    point = ResumePoint()
    if (folder / CARD_NAME).is_file():
        old = read_card(folder)
        wanted = json.loads(json.dumps(card["settings"], default=_plain))
        old["settings"] = _with_added(old["settings"], added)
        if old["settings"] != wanted:
            if _committed(folder) or old.get("status") == "complete":
                differ = _differing(old["settings"], wanted)
                raise GsalInputError(f"{folder} holds results of other settings (differing: {', '.join(differ)}); "
                                     "give another results folder, or delete this one to start again")
            _remove(folder / CARD_NAME)  # the card of a start that never committed a shard: no run
        else:
            point = _resume_point(folder)
            if old.get("status") == "complete" and not point.redone:
                # A finished run read back: its card (finish time, wall time) stays as it is.
                point.card, point.finished = old, True
                return point
            point.card = {**card, "started": old.get("started", card.get("started")), "status": "running"}
    if point.card is None:
        if folder.is_dir() and not _only_leftovers(folder):
            if retry and (folder / CARD_NAME).is_file():  # a concurrent run of this folder started meanwhile
                return _open_run(folder, card, added, retry=False)
            raise GsalInputError(f"{folder} is not empty and holds no {CARD_NAME}; give a new or empty results folder")
        point.card = card
    (folder / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    write_card(folder, point.card)
    return point


def holds_card(folder) -> bool:
    """True when ``folder`` holds a run card (a run to resume, or one to refuse)."""
    return (Path(folder) / CARD_NAME).is_file()


def discard_unstarted(folder, remove_folder: bool) -> None:
    """After a start that failed before its first shard: remove its card (unless complete),
    this writer's temporary files, empty ``requests/`` and ``maps/``, and, with
    ``remove_folder``, the folder itself when it is left empty. A folder with a committed
    shard is a run and is left as it is."""
    folder = Path(folder)
    if not folder.is_dir() or _committed(folder):
        return
    try:
        if holds_card(folder) and read_card(folder).get("status") == "complete":
            return
    except GsalInputError:
        return
    for tmp in _temps(folder):
        if _temp_owner(tmp) == os.getpid():
            _remove(tmp)
    try:
        for orphan in _orphan_maps(folder):
            _remove(orphan)
        _remove(folder / CARD_NAME)
    except OSError:  # a read-only disk: nothing was written there either
        return
    for sub in (folder / SHARD_DIR, folder / MAP_DIR) + ((folder,) if remove_folder else ()):
        try:
            sub.rmdir()
        except OSError:  # not there, or not empty (another writer's files): kept
            pass


def _committed(folder: Path) -> bool:
    return any((folder / SHARD_DIR).glob("part-*.parquet"))


def _orphan_maps(folder: Path) -> list:
    """Map files whose shard never committed (``maps/part-X.npz`` is written before
    ``requests/part-X.parquet``; a write that failed between the two leaves the map alone)."""
    maps = folder / MAP_DIR
    if not maps.is_dir():
        return []
    return [m for m in maps.glob("part-*.npz") if not (folder / SHARD_DIR / f"{m.stem}.parquet").exists()]


def _only_leftovers(folder: Path) -> bool:
    """True when ``folder`` holds nothing but empty ``requests/`` / ``maps/``, temporary files
    of this store and maps of shards that never committed."""
    orphans = set(_orphan_maps(folder))
    for entry in folder.iterdir():
        if entry.name in (SHARD_DIR, MAP_DIR) and entry.is_dir():
            if any(not _is_temp(inner) and inner not in orphans for inner in entry.iterdir()):
                return False
        elif not (_is_temp(entry) and entry.name.startswith(f".{CARD_NAME}.")):
            return False
    return True


def _temps(folder: Path) -> list:
    """The temporary files of this store in ``folder``: any in ``requests/`` and ``maps/``, the
    card's in the folder itself (other files there are not ours)."""
    inside = [p for sub in (folder / SHARD_DIR, folder / MAP_DIR) if sub.is_dir() for p in sub.iterdir() if _is_temp(p)]
    beside = [p for p in folder.glob(f".{CARD_NAME}.*.tmp") if p.is_file()] if folder.is_dir() else []
    return inside + beside


def _remove_stale_temps(folder: Path) -> None:
    """Remove the temporary files of writers that are gone (a concurrent writer's are its own)."""
    for leftover in _temps(folder):
        if not _alive(_temp_owner(leftover)):
            _remove(leftover)


def _is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(".tmp") and path.is_file()


def _temp_owner(path: Path) -> Optional[int]:
    """The process id in a temporary file's name (``.NAME.<pid>.<random>.tmp``), else None."""
    parts = path.name.split(".")
    return int(parts[-3]) if len(parts) >= 5 and parts[-3].isdigit() else None


def _alive(pid: Optional[int]) -> bool:
    """True when process ``pid`` runs on this machine (None: an unknown writer, taken as gone)."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def _resume_point(folder: Path) -> ResumePoint:
    point = ResumePoint()
    index = 0
    damaged = []
    while (path := folder / SHARD_DIR / f"{shard_name(index)}.parquet").is_file():
        try:
            meta = read_shard(path)[1]
        except DamagedShard:
            damaged.append(path.name)
            break
        point = ResumePoint(index + 1, meta["next_sample"], meta["next_request"], point.requests_done + meta["rows"], point.skipped + meta["skipped"])
        index += 1
    # A damaged shard and every shard after it, and shards after a gap (a folder can be edited),
    # are dropped: the stream is recomputed from the last unbroken shard (their maps are
    # rewritten with them).
    for stray in (folder / SHARD_DIR).glob("part-*.parquet"):
        number = stray.stem.split("-")[1]
        if number.isdigit() and int(number) >= index:
            _remove(stray)
    point.redone = damaged
    return point


def read_shard(path: Path):
    """``(table, meta)`` of one shard, read in full (page checksums verified where written); a
    :class:`DamagedShard` when it cannot be read back."""
    pa = pyarrow()
    try:
        table = pa.parquet.read_table(path, page_checksum_verification=True)
        meta = json.loads((table.schema.metadata or {})[META_KEY])
        for key in ("next_sample", "next_request", "rows", "skipped"):
            meta[key]
    except (pa.ArrowException, OSError, ValueError, KeyError, TypeError) as exc:
        detail = first_line(exc).split(f"'{path}': ", 1)[-1]  # pyarrow repeats the path
        raise DamagedShard(f"results shard {path} is damaged ({detail}); delete it and run the same explain-dataset "
                           "command again: the run resumes from there and redoes it") from None
    return table, meta


def shard_meta(path: Path) -> dict:
    """The ``gsal`` metadata of one shard (where the stream stands after it)."""
    return read_shard(path)[1]


def write_shard(folder, index: int, columns: dict, meta: dict, maps: Optional[dict] = None) -> Path:
    """Write shard ``index``: ``columns`` {name: list/array of one value per row}; ``meta`` goes
    into the Parquet metadata; ``maps`` {name: array} into ``maps/`` first, then the Parquet
    file (the shard's commit). An OSError is a GsalInputError (:func:`write_failure`)."""
    pa = pyarrow()
    folder = Path(folder)
    if maps is not None:
        buffer = io.BytesIO()
        np.savez(buffer, **maps)
        _atomic_write_bytes(folder / MAP_DIR / f"{shard_name(index)}.npz", buffer.getvalue())
    table = pa.table(columns)
    table = table.replace_schema_metadata({META_KEY: json.dumps({**meta, "rows": table.num_rows}, default=_plain).encode()})
    sink = pa.BufferOutputStream()
    pa.parquet.write_table(table, sink, write_page_checksum=True)
    target = folder / SHARD_DIR / f"{shard_name(index)}.parquet"
    _atomic_write_bytes(target, sink.getvalue().to_pybytes())
    return target


def read_results(folder):
    """All rows of a results folder as one ``pyarrow.Table``, shards in order (``.to_pandas()``);
    a damaged shard is a GsalInputError naming it and how to recover."""
    pa = pyarrow()
    read_card(folder)
    paths = sorted((Path(folder) / SHARD_DIR).glob("part-*.parquet"))
    if not paths:
        raise GsalInputError(f"{folder} holds no results yet (no {SHARD_DIR}/part-*.parquet)")
    tables = [read_shard(p)[0] for p in paths]
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file of this writer and rename it to ``path``. An OSError
    removes the temporary file and is a GsalInputError."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_file(tmp, data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            _remove(tmp)  # a partial file would hold the space a resume needs
        raise write_failure(exc, path) from None
    except BaseException:
        with contextlib.suppress(OSError):
            _remove(tmp)
        raise


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return str(value)
