"""Every ``gsal`` command line the README, the docs and CONTRIBUTING.md show runs a command that
exists, with options that command has: a renamed option or command cannot leave a page behind.

Command lines are read from fenced code blocks and inline code spans that start with ``gsal``
(continuation backslashes joined; ``&&``, ``;``, ``|`` and ``#`` end a command). Only the command
path and the option names are checked, not their values.
"""

import re
import shlex
from pathlib import Path

import typer.main

from gsal_cli.main import app
from test_docs import ROOT, pages

#: Pages whose command lines describe the current CLI (CHANGELOG.md and its docs copy are history).
PAGES = [*pages(), ROOT / "CONTRIBUTING.md", ROOT / "benchmarks" / "results" / "camvid" / "README.md"]
SKIP = {"docs/changelog.md"}


def command_lines(text: str) -> list[tuple[int, str]]:
    """(line number, command) of every ``gsal ...`` command in ``text``'s code."""
    found = []
    for m in re.finditer(r"^(```|~~~)[^\n]*\n(.*?)^\1", text, flags=re.MULTILINE | re.DOTALL):
        start = text.count("\n", 0, m.start(2)) + 1
        block = re.sub(r"\s*\\\n\s*", " ", m.group(2))  # join continuation lines (numbers shift; fine for a report)
        for offset, line in enumerate(block.splitlines()):
            found += [(start + offset, c) for c in _commands(line)]
    for m in re.finditer(r"(?<!`)`(gsal [^`\n]+)`(?!`)", text):
        found += [(text.count("\n", 0, m.start()) + 1, c) for c in _commands(m.group(1))]
    return found


def _commands(line: str) -> list[str]:
    line = re.split(r"\s#", " " + line)[0]
    parts = re.split(r"&&|;|\|\||(?<![\[{])\|(?![^\[{]*[\]}])", line)
    return [p.strip() for p in parts if re.match(r"gsal(\s|$)", p.strip())]


def check(command: str, root) -> str | None:
    """None if ``command`` names an existing command with options it has, else what is wrong."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        tokens = command.split()
    node, path = root, ["gsal"]
    words = tokens[1:]
    while words and hasattr(node, "commands") and not words[0].startswith("-"):
        name = words[0].strip("[]{}")
        if name not in node.commands:
            if re.fullmatch(r"[A-Z_.…]+|COMMAND", name):
                return None  # a placeholder: gsal COMMAND --help
            return f"{' '.join(path)} has no command {name!r}"
        node, path, words = node.commands[name], [*path, name], words[1:]
    known = {"--help"}
    for param in getattr(node, "params", []):
        known.update(getattr(param, "opts", []), getattr(param, "secondary_opts", []))
    for word in words:
        option = word.strip("[](){}.,'\"").split("=")[0]
        if re.fullmatch(r"--?[a-z][\w-]*", option) and option not in known:
            return f"{' '.join(path)} has no option {option}"
    return None


def test_every_documented_command_line_exists():
    root = typer.main.get_command(app)
    problems, checked = [], 0
    for page in PAGES:
        where = page.relative_to(ROOT).as_posix()
        if where in SKIP or not page.is_file():
            continue
        for line, command in command_lines(page.read_text(encoding="utf-8")):
            checked += 1
            problem = check(command, root)
            if problem:
                problems.append(f"{where}:{line}: `{command}`: {problem}")
    assert not problems, "documented command lines the CLI does not have:\n" + "\n".join(problems)
    assert checked > 50, f"only {checked} command lines found: is the reader broken?"


def test_the_reader_finds_commands_and_the_check_catches_what_it_should():
    text = "Run `gsal explain --demo` or\n\n```bash\ngsal stats runs/x \\\n    --html   # report\npip install . && gsal zoo list\n```\n"
    assert [c for _, c in command_lines(text)] == ["gsal stats runs/x --html", "gsal zoo list", "gsal explain --demo"]
    root = typer.main.get_command(app)
    assert check("gsal explain --demo", root) is None
    assert check("gsal explain --request-class car [--grid 8,8]", root) is None
    assert "no option --grids" in check("gsal explain --grids 8,8", root)
    assert "no command 'lists'" in check("gsal zoo lists", root)
    assert check("gsal COMMAND --help", root) is None
