"""A journal of finished work units, so that a long computation killed half-way resumes.

Tuning six methods × six candidates and evaluating every method on a trained network takes an
hour of CPU per protocol run; a session that ends in the middle should not lose the finished
parts. A :class:`Journal` is one JSON file mapping a *key* — a string that names everything the
unit's result depends on (method, its options, the requests) — to the unit's result (plain JSON).
A unit whose key is in the journal is not recomputed; a changed option gives another key, so a
stale result is never reused. Every write replaces the file atomically (write then rename).

Example
-------
>>> journal = Journal("models/run/tuning-journal.json")
>>> row = journal.get(key)
>>> if row is None:
...     row = journal.put(key, compute())
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["unit_key", "Journal"]


def unit_key(**parts) -> str:
    """A journal key: ``parts`` as canonical JSON (sorted keys; tuples as lists)."""
    return json.dumps(parts, sort_keys=True, default=str)


class Journal:
    """Finished units of one computation in one JSON file (``path``); ``None`` keeps nothing."""

    def __init__(self, path=None):
        self.path = Path(path) if path is not None else None
        self._rows: dict = {}
        if self.path is not None and self.path.is_file():
            self._rows = json.loads(self.path.read_text())

    def get(self, key: str):
        """The stored result of ``key``, or None."""
        return self._rows.get(key)

    def put(self, key: str, result):
        """Store ``result`` under ``key`` (on disk at once); return it."""
        self._rows[key] = result
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".part")
            tmp.write_text(json.dumps(self._rows, indent=1))
            tmp.replace(self.path)
        return result

    def __len__(self) -> int:
        return len(self._rows)
