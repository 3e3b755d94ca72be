"""The documentation: the site builds with warnings as errors, the README stays a front page, every
relative link resolves, and no page reads as a development diary."""

import functools
import importlib.util
import os
import re
import unicodedata
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 150


def pages() -> list[Path]:
    """The README and every Markdown page of the site (docs/, any depth)."""
    return [README, *sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)]


def without_fences(text: str) -> str:
    """``text`` with its fenced code blocks blanked (line numbers kept)."""
    return re.sub(r"^(```|~~~).*?^\1", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.MULTILINE | re.DOTALL)


def without_code(text: str) -> str:
    """``text`` with fenced code blocks and inline code spans blanked (line numbers kept)."""
    return re.sub(r"`[^`\n]*`", "``", without_fences(text))


def line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


# --- (a) the site --------------------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason='mkdocs is not installed: pip install -e ".[docs]" (the test extra includes it)')
def test_site_builds_with_warnings_as_errors(tmp_path):
    site = tmp_path / "site"
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                         cwd=ROOT, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # Material's banner about MkDocs 2
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    # The generated parts were written: the CLI reference from the Typer app, the zoo tables
    # from the manifest, the API from the docstrings.
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "gsal explain-dataset" in cli and "--request-class" in cli
    zoo = (site / "zoo" / "index.html").read_text(encoding="utf-8")
    assert "tmnist-xception-weak" in zoo and "mediapipe-selfie" in zoo and "gsal:zoo" not in zoo
    api = (site / "methods" / "grid-saliency" / "index.html").read_text(encoding="utf-8")
    assert 'id="gsal_tf.GridSaliency"' in api and "learning_rate" in api
    changelog = (site / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Unreleased" in changelog  # CHANGELOG.md itself, included


# --- (b) the README is a front page --------------------------------------------------------------


def test_readme_is_a_front_page():
    text = README.read_text(encoding="utf-8")
    lines = text.count("\n") + (not text.endswith("\n"))
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail into docs/"
    for command in ('pip install . && gsal explain --demo', 'pip install -e ".[test]" && python -m pytest -q'):
        assert command in text, f"the README lost its command {command!r}"


# --- (c) links -----------------------------------------------------------------------------------

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def slug(heading: str) -> str:
    """The anchor Python-Markdown's toc extension gives a heading (its default slugify)."""
    heading = re.sub(r"[`*]|<[^>]+>", "", heading)
    heading = unicodedata.normalize("NFKD", heading).encode("ascii", "ignore").decode("ascii")
    heading = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", heading)


def anchors(page: Path) -> set[str]:
    """Heading anchors of a Markdown page, plus the identifiers it renders with ``::: name``."""
    text = page.read_text(encoding="utf-8")
    found = {slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", without_fences(text), re.MULTILINE)}
    for m in re.finditer(r"^:::\s+([\w.]+)", text, re.MULTILINE):
        parts = m.group(1).split(".")
        found |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return found


def resolves(anchor: str, known: set[str]) -> bool:
    """A heading's anchor, or an API object's: one rendered by ``:::`` or a member of one."""
    return anchor in known or ("." in anchor and any(anchor.startswith(k + ".") for k in known if "." in k))


def test_relative_links_resolve():
    broken, checked = [], 0
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for m in LINK.finditer(without_code(text)):
            target = m.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            checked += 1
            where = f"{page.relative_to(ROOT)}:{line_of(text, m.start())}: {target}"
            file = page if not path else (page.parent / path).resolve()
            if not file.exists():
                broken.append(f"{where} (no such file)")
            elif anchor and file.suffix == ".md" and not resolves(anchor, anchors(file)):
                broken.append(f"{where} (no heading #{anchor})")
    assert checked > 50, f"only {checked} relative links found: is the link pattern still right?"
    assert not broken, "broken relative links:\n" + "\n".join(broken)


# --- (d) no development diary ----------------------------------------------------------------------

DIARY = {
    "tried and dropped": re.compile(r"tried and dropped", re.IGNORECASE),
    "this session": re.compile(r"\bthis session\b", re.IGNORECASE),
    "last session": re.compile(r"\blast session\b", re.IGNORECASE),
    '"before:"': re.compile(r"\bbefore:", re.IGNORECASE),
    # 7-40 hex characters with at least one digit and one letter, standing alone: a commit hash
    # (not a word such as "decade", not a number, not a sha256 of 64 characters)
    "a commit hash": re.compile(r"(?<![0-9A-Za-z])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![0-9A-Za-z])"),
}


def test_no_development_diary():
    found = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        for what, pattern in DIARY.items():
            for m in pattern.finditer(text):
                found.append(f"{page.relative_to(ROOT)}:{line_of(text, m.start())}: {what}: {m.group(0)!r}")
    assert not found, ("pages describe the software as it is (history goes to CHANGELOG.md; a result names "
                       "its command and version, not an earlier run):\n" + "\n".join(found))


def test_diary_patterns_catch_what_they_should():
    assert DIARY["a commit hash"].search("the weights are in commit d552c3a")
    assert DIARY["a commit hash"].search("before (a6f2dd1c0ffee): 2.1 s")
    for fine in ("a decade of defaced walls", "2097013 parameters", "sha256 " + "ab12" * 16, "0001TP_008550"):
        assert not DIARY["a commit hash"].search(fine), fine
    assert slug("Two formulations") == "two-formulations" and slug("Migration (0.1 → 0.2)") == "migration-01-02"


# --- (e) result tables match the results they quote ------------------------------------------------
#
# A table of results on a page is a rounded copy of a table a benchmark script wrote under
# benchmarks/results/. The line before it (blank lines aside) names that file:
#     <!-- results: benchmarks/results/camvid/full-test/context.md -->
# and every row of the page's table must read as a row of the file's tables: the row's numbers,
# in order, are a subsequence of the file row's numbers, each equal to the file's number rounded
# to the digits the page shows (a page may leave columns out, merge them, or round; it may not
# change a number). `<!-- results: derived from PATH[, PATH]: how -->` marks a table computed from
# results (sums, counts) that no file holds row by row; its paths must exist.
# A JSON report has no rows: a table copying JSON results (paths may be globs,
# `benchmarks/results/zoo-eval/*/report.json`) must show, after its first cell (the row's name; an
# empty one repeats the name above), only numbers that round from some number of the row's
# reports — the files whose path below benchmarks/results/ has a folder or a name the row's name
# contains (`mobilenetv2-strong/` for "tmnist-mobilenetv2-strong"); all of them only when no row
# of the table names one — and, inside them, of the objects that hold the row's name as a value
# (`{"model": "tmnist-mobilenetv2-strong", ...}`) when there are such.

RESULTS_MARK = re.compile(r"^<!--\s*results:\s*(?P<derived>derived from\s+)?(?P<paths>[^:>]+?)\s*(?::.*)?-->\s*$")
NUMBER = re.compile(r"[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
#: Pages whose every table of numbers must name its results file.
RESULT_PAGES = ("docs/camvid.md",)


def numbers(text: str) -> list[tuple[float, int]]:
    """The numbers of ``text`` as (value, digits after the point); "2,224" is one number, "−" a minus."""
    found = []
    for m in NUMBER.finditer(text.replace("**", "")):
        s = m.group(0).replace("−", "-").replace(",", "").lstrip("+")
        found.append((float(s), len(s.split(".")[1]) if "." in s else 0))
    return found


def tables(text: str) -> list[tuple[int, list[str]]]:
    """The Markdown tables of ``text`` outside code fences: (line of the header, body rows)."""
    lines, found, i = without_fences(text).splitlines(), [], 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|\s*$", lines[i + 1]):
            header, i = i, i + 2
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            found.append((header + 1, rows))
        else:
            i += 1
    return found


def rounds_to(shown: tuple[float, int], value: float) -> bool:
    """``value`` rounded to the digits of ``shown`` gives ``shown`` (within half a unit of its last digit)."""
    number, digits = shown
    return abs(value - number) <= 0.5 * 10 ** -digits + 1e-9


def reads_as(row: list[tuple[float, int]], source: list[float]) -> bool:
    """Every number of ``row``, in order, rounds from a later number of ``source`` (earliest match first,
    which finds a subsequence whenever one exists)."""
    j = 0
    for shown in row:
        while j < len(source) and not rounds_to(shown, source[j]):
            j += 1
        if j == len(source):
            return False
        j += 1
    return True


def _leaves(node):
    """The numbers of a JSON value (its leaves; booleans are not numbers)."""
    if isinstance(node, dict):
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            yield from _leaves(item)
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield float(node)


def row_names(rows: list[str]) -> list[str]:
    """Each row's name: its first cell, or for an empty one the name of the row above (a table
    that lists several rows under one model)."""
    names, last = [], ""
    for row in rows:
        first = row.strip().strip("|").split("|")[0].strip()
        last = first or last
        names.append(last)
    return names


def row_reports(name: str, reports: list[Path]) -> list[Path]:
    """The reports of a row named ``name``: those with a folder or a file name (below
    benchmarks/results/) that ``name`` contains."""
    results = ROOT / "benchmarks" / "results"
    return [r for r in reports if any(part.lower() in name.lower() for part in r.with_suffix("").relative_to(results).parts)]


def _records(node, name: str):
    """The JSON objects below ``node`` that hold ``name`` as a string value (a row's record)."""
    if isinstance(node, dict):
        if any(isinstance(v, str) and v == name for v in node.values()):
            yield node
            return
        node = list(node.values())
    if isinstance(node, list):
        for item in node:
            yield from _records(item, name)


@functools.lru_cache(maxsize=None)
def _report(path: Path):
    """A JSON report, read once however many rows quote it."""
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def report_numbers(name: str, reports: list[Path]) -> list[float]:
    """The numbers a row named ``name`` may show: those of the records of ``reports`` that hold its
    name as a value (``"model": "tmnist-mobilenetv2-strong"``), else of the whole reports."""
    plain = name.replace("`", "").replace("*", "").strip()
    pool = []
    for report in reports:
        data = _report(report)
        records = list(_records(data, plain)) if plain else []
        pool += [v for record in (records or [data]) for v in _leaves(record)]
    return pool


def standalone_numbers(text: str) -> list[tuple[float, int]]:
    """The numbers of ``text`` that stand alone: not the digits of a name such as
    ``pascal-mobilenetv2-0.5-257`` or a size such as ``513×513`` (glued to a letter, digit, ``-``,
    ``_``, ``.`` or ``×`` before, or to a letter, ``-``, ``_`` or ``×`` after)."""
    text = text.replace("**", "")
    found = []
    for m in NUMBER.finditer(text):
        before, after = text[m.start() - 1:m.start()], text[m.end():m.end() + 1]
        if re.match(r"[\w.×-]", before) or re.match(r"[^\W\d]|[-_×]", after):
            continue
        found += numbers(m.group(0))
    return found


def report_row_problem(row: str, name: str, reports: list[Path], scoped: bool) -> str | None:
    """Why ``row`` (named ``name``) does not read from its reports, or None. ``scoped``: other rows
    of the table have reports of their own, so this one must too."""
    own = row_reports(name, reports)
    if scoped and not own:
        return f"no report of the mark is named in {name!r}"
    cells = row.strip().strip("|").split("|")
    shown = standalone_numbers("|".join(cells[1:]))
    if not shown and numbers("|".join(cells[1:])):
        return "none of its numbers stands alone to compare"
    pool = report_numbers(name, own or reports)
    wrong = [f"{v:.{d}f}" for v, d in shown if not any(rounds_to((v, d), x) for x in pool)]
    return f"{', '.join(wrong)} in no number of its reports" if wrong else None


def result_sources(paths: str) -> tuple[list[Path], list[str]]:
    """The files a mark names (globs expanded, sorted) and the names that match no file."""
    files, missing = [], []
    for name in (p.strip() for p in paths.split(",")):
        found = sorted(p for p in ROOT.glob(name) if p.is_file())
        files += found
        if not found:
            missing.append(name)
    return files, missing


def marked_tables(page: Path):
    """(header line, body rows, mark or None) for each table of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    for header, rows in tables("\n".join(lines)):
        before = [line for line in lines[:header - 1] if line.strip()]
        yield header, rows, RESULTS_MARK.match(before[-1].strip()) if before else None


def test_result_tables_read_as_rows_of_their_results_files():
    problems, checked = [], 0
    for page in pages():
        where = page.relative_to(ROOT).as_posix()
        for header, rows, mark in marked_tables(page):
            if mark is None:
                if where in RESULT_PAGES and any(numbers(r) for r in rows):
                    problems.append(f"{where}:{header}: a table of numbers without <!-- results: PATH -->")
                continue
            paths, missing = result_sources(mark["paths"])
            if missing:
                problems.append(f"{where}:{header}: names {', '.join(missing)}, which matches no file")
                continue
            if mark["derived"]:
                continue
            reports = [p for p in paths if p.suffix == ".json"]
            source = [[v for v, _ in numbers(r)] for p in paths if p.suffix != ".json"
                      for _, body in tables(p.read_text(encoding="utf-8")) for r in body]
            names = row_names(rows)
            scoped = len(reports) > 1 and any(row_reports(n, reports) for n in names)
            for offset, (row, name) in enumerate(zip(rows, names), 1):
                checked += 1
                if source and any(reads_as(numbers(row), s) for s in source):
                    continue
                problem = report_row_problem(row, name, reports, scoped) if reports else "no row of the file has its numbers"
                if problem:
                    problems.append(f"{where}:{header + 1 + offset}: {problem} ({mark['paths'].strip()}): {row}")
    assert not problems, "result tables that differ from the results they quote:\n" + "\n".join(problems)
    assert checked, "no page names the results file of a table"


def test_result_rows_are_matched_by_value_order_and_rounding():
    source = numbers("| car | PASCAL 1.0 | 223 | 0.454 | 0.370 | -0.016 | road 0.29 (0.48) |")
    values = [v for v, _ in source]
    assert reads_as(numbers("| car | 1.0: car | 223 | 0.45 | **0.37** | −0.02 | road 0.29 (0.48) |"), values)
    assert reads_as(numbers("| 223 | 0.37 |"), values)                  # columns left out
    assert not reads_as(numbers("| 223 | 0.46 |"), values)              # 0.454 is not 0.46
    assert not reads_as(numbers("| 0.37 | 223 |"), values)              # not in the file's order
    assert not reads_as(numbers("| 223 | 0.02 |"), values)              # the sign counts
    assert reads_as(numbers("| 0.00 |"), [-0.001]) and numbers("2,224 (3, 52)") == [(2224, 0), (3, 0), (52, 0)]
    assert standalone_numbers("pascal-mobilenetv2-0.5-257 | lam 1, 100 it. | −0.02 | 0.974 (n=60) | 513×513") == [
        (1, 0), (100, 0), (-0.02, 2), (0.974, 3), (60, 0)]
    mark = RESULTS_MARK.match("<!-- results: derived from a.md, b.md: sums -->")
    assert mark["derived"] and mark["paths"] == "a.md, b.md"
    assert RESULTS_MARK.match("<!-- results: benchmarks/results/x.md -->")["paths"] == "benchmarks/results/x.md"


@pytest.mark.parametrize("tables, args", [
    ("benchmarks/results/zoo-eval/tables.md", ["benchmarks/results/zoo-eval"]),
    ("benchmarks/results/protocol-paper/tables.md", ["--protocol", "benchmarks/results/protocol-paper"]),
])
def test_collected_tables_are_what_collect_reports_writes(tables, args):
    """The tables the benchmark page's marks name are `collect_reports.py`'s output on the committed
    reports (its first line names the command), not a hand-edited copy."""
    run = subprocess.run([sys.executable, "benchmarks/collect_reports.py", *args], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode == 0, run.stderr[-2000:]
    written = (ROOT / tables).read_text(encoding="utf-8")
    assert written.splitlines()[0] == f"<!-- written by: python benchmarks/collect_reports.py {' '.join(args)} -->"
    assert written.split("\n", 2)[2] == run.stdout
