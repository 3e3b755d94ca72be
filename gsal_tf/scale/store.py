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

Crash safety: every file is written under a temporary name and renamed (atomic on POSIX); a
shard's Parquet file is renamed last, so a shard exists only when complete. A rerun continues
after the last shard of an unbroken sequence 0..k; a run killed at any point loses only the
batches it had not committed. A folder holding results of other settings is refused.

pyarrow is the one extra dependency (``pip install "gsal-tf[dataset]"``): it is imported only here.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from gsal_tf.errors import GsalInputError

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
    """Where a run continues: the next shard number and stream position, what was done before."""

    shard: int = 0
    sample: int = 0
    request: int = 0
    requests_done: int = 0
    skipped: list = dataclasses.field(default_factory=list)


def shard_name(index: int) -> str:
    return f"part-{index:05d}"


def read_card(folder) -> dict:
    path = Path(folder) / CARD_NAME
    if not path.is_file():
        raise GsalInputError(f"{folder} is not a gsal results folder (no {CARD_NAME}); run `gsal explain-dataset` first")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise GsalInputError(f"{path} is not valid JSON ({exc})") from None
    if card.get("format") != RESULTS_FORMAT:
        raise GsalInputError(f"{path} is not a gsal results card (format {card.get('format')!r})")
    return card


def write_card(folder, card: dict) -> None:
    _atomic_write_bytes(Path(folder) / CARD_NAME, (json.dumps(card, indent=2, default=_plain) + "\n").encode())


def open_run(folder, card: dict) -> ResumePoint:
    """Start or resume the run of ``card`` (its ``settings``) in ``folder``.

    A new or empty folder gets the card; a folder whose card has the same settings resumes after
    its last complete shard; any other folder is refused with a GsalInputError.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise GsalInputError(f"{folder} is a file; give a folder for the results")
    if (folder / CARD_NAME).is_file():
        old = read_card(folder)
        if old.get("settings") != json.loads(json.dumps(card["settings"], default=_plain)):
            differ = sorted(k for k in set(old.get("settings", {})) | set(card["settings"])
                            if old.get("settings", {}).get(k) != json.loads(json.dumps(card["settings"].get(k), default=_plain)))
            raise GsalInputError(f"{folder} holds results of other settings (differing: {', '.join(differ)}); "
                                 "give another results folder, or delete this one to start again")
        point = _resume_point(folder)
        card = {**card, "started": old.get("started", card.get("started")), "status": "running"}
    elif folder.is_dir() and any(folder.iterdir()):
        raise GsalInputError(f"{folder} is not empty and holds no {CARD_NAME}; give a new or empty results folder")
    else:
        point = ResumePoint()
    (folder / SHARD_DIR).mkdir(parents=True, exist_ok=True)
    write_card(folder, card)
    return point


def _resume_point(folder: Path) -> ResumePoint:
    pa = pyarrow()
    for leftover in list((folder / SHARD_DIR).glob(".*.tmp")) + list((folder / MAP_DIR).glob(".*.tmp")):
        leftover.unlink()
    point = ResumePoint()
    index = 0
    while (path := folder / SHARD_DIR / f"{shard_name(index)}.parquet").is_file():
        meta = shard_meta(path, pa)
        point = ResumePoint(index + 1, meta["next_sample"], meta["next_request"], point.requests_done + meta["rows"], point.skipped + meta["skipped"])
        index += 1
    # Shards after a gap (cannot happen with the in-order writer, but a folder can be edited) are
    # dropped: the stream is recomputed from the last unbroken shard.
    for stray in (folder / SHARD_DIR).glob("part-*.parquet"):
        if int(stray.stem.split("-")[1]) >= index:
            stray.unlink()
    return point


def shard_meta(path: Path, pa=None) -> dict:
    pa = pa or pyarrow()
    metadata = pa.parquet.read_schema(path).metadata or {}
    return json.loads(metadata[META_KEY])


def write_shard(folder, index: int, columns: dict, meta: dict, maps: Optional[dict] = None) -> Path:
    """Write shard ``index``: ``columns`` {name: list/array of one value per row}; ``meta`` goes
    into the Parquet metadata; ``maps`` {name: array} into ``maps/`` first (then the Parquet file,
    the shard's commit)."""
    pa = pyarrow()
    folder = Path(folder)
    if maps is not None:
        (folder / MAP_DIR).mkdir(exist_ok=True)
        target = folder / MAP_DIR / f"{shard_name(index)}.npz"
        tmp = target.with_name(f".{target.name}.tmp")
        with open(tmp, "wb") as handle:
            np.savez(handle, **maps)
        os.replace(tmp, target)
    table = pa.table(columns)
    table = table.replace_schema_metadata({META_KEY: json.dumps({**meta, "rows": table.num_rows}, default=_plain).encode()})
    target = folder / SHARD_DIR / f"{shard_name(index)}.parquet"
    tmp = target.with_name(f".{target.name}.tmp")
    pa.parquet.write_table(table, tmp)
    os.replace(tmp, target)
    return target


def read_results(folder):
    """All rows of a results folder as one ``pyarrow.Table``, shards in order (``.to_pandas()``)."""
    pa = pyarrow()
    read_card(folder)
    paths = sorted((Path(folder) / SHARD_DIR).glob("part-*.parquet"))
    if not paths:
        raise GsalInputError(f"{folder} holds no results yet (no {SHARD_DIR}/part-*.parquet)")
    tables = [pa.parquet.read_table(p) for p in paths]
    return pa.concat_tables([t.replace_schema_metadata(None) for t in tables])


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


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
