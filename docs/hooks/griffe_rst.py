"""Griffe extension: the reStructuredText bits of gsal_tf's numpy-style docstrings, as Markdown.

The docstrings are read by ``help()`` and editors as well as by this site, so they keep their
Sphinx habits; mkdocstrings renders docstring text as Markdown. Before griffe parses a docstring
this extension rewrites, outside code examples:

- cross-reference roles (``:func:`name```, ``:class:`~pkg.mod.Name```, ``:mod:`.masks```,
  ``:data:``, ``:meth:``, ``:attr:``) into code spans (``~`` keeps the last dotted part, as
  Sphinx shows it), or into the bare name on a line of its own (a type, which is shown as code);
- simple tables (rows between ``=====  =====`` borders) into Markdown tables.

Loaded by mkdocstrings (``extensions`` in ``mkdocs.yml``).
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|class|mod|data|meth|attr|obj|exc|const):`(~?)([^`]+)`")
#: A line that is nothing but a role: a type (e.g. a Returns section), which the parser shows as code itself.
ROLE_LINE = re.compile(r"^([ \t]*)" + ROLE.pattern + r"[ \t]*$", re.MULTILINE)
BORDER = re.compile(r"^(\s*)(=+)((?: +=+)+)\s*$")


def _role(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def _columns(border: str) -> list[tuple[int, int]]:
    """(start, end) of each column, from a border line of ``=`` runs."""
    return [(m.start(), m.end()) for m in re.finditer(r"=+", border)]


def _cells(line: str, columns: list[tuple[int, int]]) -> list[str]:
    cells = []
    for i, (start, _) in enumerate(columns):
        end = columns[i + 1][0] if i + 1 < len(columns) else len(line)
        cells.append(line[start:end].strip())
    return cells


def simple_tables_to_markdown(text: str) -> str:
    """Every reST simple table (border, header, border, rows, border) as a Markdown table."""
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        head = BORDER.match(lines[i])
        # a table: border, one header line, border, rows, closing border
        if head and i + 2 < len(lines) and BORDER.match(lines[i + 2]):
            end = next((j for j in range(i + 3, len(lines)) if BORDER.match(lines[j])), None)
            if end is not None:
                indent, columns = head.group(1), _columns(lines[i])
                header = _cells(lines[i + 1], columns)
                out.append(indent + "| " + " | ".join(header) + " |")
                out.append(indent + "|" + "---|" * len(header))
                for row in lines[i + 3:end]:
                    if row.strip():
                        out.append(indent + "| " + " | ".join(_cells(row, columns)) + " |")
                out.append("")
                i = end + 1
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _prose(text: str) -> str:
    text = ROLE_LINE.sub(lambda m: m.group(1) + _role(re.match(ROLE, m.group(0).strip())).strip("`"), text)
    return ROLE.sub(_role, text)


def rst_to_markdown(text: str) -> str:
    parts = re.split(r"(^\s*>>>.*$)", text, flags=re.MULTILINE)  # leave doctest lines alone
    return simple_tables_to_markdown("".join(p if p.lstrip().startswith(">>>") else _prose(p) for p in parts))


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring as it is loaded (before mkdocstrings parses it)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
