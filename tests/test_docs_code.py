"""The code the pages show exists: a renamed command, option, function or argument cannot leave
a page behind.

- Every ``gsal`` command line of the README, the docs and CONTRIBUTING.md names a command that
  exists, with options that command has. Command lines are read from fenced code blocks and inline
  code spans that start with ``gsal`` (continuation backslashes joined; ``&&``, ``;``, ``|`` and
  ``#`` end a command); only the command path and the option names are checked, not the values.
- Every ```` ```python ```` block parses, its ``gsal_tf`` imports resolve, every attribute path
  from a ``gsal_tf`` module (``gs.zoo.load``, ``requests.class_request``) exists, and a call of
  such a function passes only keywords its signature has. Blocks of a page share their imports
  (a later block may use the ``gs`` an earlier one imported).
"""

import ast
import importlib
import inspect
import re
import shlex
from pathlib import Path

import typer.main

from gsal_cli.main import app
from test_docs import ROOT, pages, without_fences

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
    for m in re.finditer(r"(?<!`)`(gsal[ \n][^`]+?)`(?!`)", without_fences(text)):  # a span may wrap onto the next line
        if "\n\n" not in m.group(1):
            found += [(text.count("\n", 0, m.start()) + 1, c) for c in _commands(" ".join(m.group(1).split()))]
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
    text = "Run `gsal explain\n--demo` or\n\n```bash\ngsal stats runs/x \\\n    --html   # report\npip install . && gsal zoo list\n```\n"
    assert [c for _, c in command_lines(text)] == ["gsal stats runs/x --html", "gsal zoo list", "gsal explain --demo"]
    root = typer.main.get_command(app)
    assert check("gsal explain --demo", root) is None
    assert check("gsal explain --request-class car [--grid 8,8]", root) is None
    assert "no option --grids" in check("gsal explain --grids 8,8", root)
    assert "no command 'lists'" in check("gsal zoo lists", root)
    assert check("gsal COMMAND --help", root) is None


# --- Python blocks ---------------------------------------------------------------------------------


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line, code) of every ```python block of ``text``."""
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1))
            for m in re.finditer(r"^```python[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)]


def _resolve(env: dict, node):
    """The object an attribute path (``gs.zoo.load``) rooted at a name of ``env`` names; None when
    the root is not a gsal_tf object; raises AttributeError when a step does not exist."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in env:
        return None
    obj = env[node.id]
    for name in reversed(parts):
        obj = getattr(obj, name)
    return obj


def check_python(code: str, env: dict) -> list[str]:
    """What is wrong with ``code`` (imports, gsal_tf attribute paths, keywords); updates ``env``
    with the names it imports from gsal_tf."""
    try:
        tree = ast.parse(code)
    except SyntaxError as exc:
        return [f"line {exc.lineno}: does not parse: {exc.msg}"]
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "gsal_tf":
                    try:
                        module = importlib.import_module(alias.name)
                    except ImportError as exc:
                        problems.append(f"line {node.lineno}: import {alias.name}: {exc}")
                        continue
                    env[alias.asname or alias.name.split(".")[0]] = module if alias.asname else importlib.import_module("gsal_tf")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "gsal_tf":
            try:
                module = importlib.import_module(node.module)
            except ImportError as exc:
                problems.append(f"line {node.lineno}: from {node.module}: {exc}")
                continue
            for alias in node.names:
                try:
                    env[alias.asname or alias.name] = getattr(module, alias.name)
                except AttributeError:
                    try:
                        env[alias.asname or alias.name] = importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        problems.append(f"line {node.lineno}: {node.module} has no {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            try:
                _resolve(env, node)
            except AttributeError as exc:
                problems.append(f"line {node.lineno}: {ast.unparse(node)}: {exc}")
        if isinstance(node, ast.Call) and node.keywords:
            try:
                func = _resolve(env, node.func)
            except AttributeError:
                continue  # reported above
            if func is None or not callable(func):
                continue
            try:
                signature = inspect.signature(func)
            except (TypeError, ValueError):
                continue
            if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
                continue
            for keyword in node.keywords:
                if keyword.arg is not None and keyword.arg not in signature.parameters:
                    problems.append(f"line {node.lineno}: {ast.unparse(node.func)}() has no argument {keyword.arg}=")
    return problems


def test_every_python_block_uses_the_api_that_exists():
    problems, checked = [], 0
    for page in PAGES:
        where = page.relative_to(ROOT).as_posix()
        if where in SKIP or not page.is_file():
            continue
        env = {"gs": importlib.import_module("gsal_tf")}  # the pages' convention: import gsal_tf as gs
        for line, code in python_blocks(page.read_text(encoding="utf-8")):
            checked += 1
            problems += [f"{where}:{line}: {p}" for p in check_python(code, env)]
    assert not problems, "Python on the pages that the API does not have:\n" + "\n".join(problems)
    assert checked >= 10, f"only {checked} Python blocks found: is the reader broken?"


def test_the_python_check_catches_what_it_should():
    env = {}
    assert check_python("import gsal_tf as gs\nexplainer = gs.GridSaliency(model, iterations=40)", env) == []
    assert "no argument iteratons=" in " ".join(check_python("gs.GridSaliency(model, iteratons=40)", env))
    assert "zoo.lode" in " ".join(check_python("gs.zoo.lode('x')", env))
    assert "has no nothing_here" in " ".join(check_python("from gsal_tf.requests import nothing_here", env))
    assert check_python("result.saliency  # not a gsal_tf name: not checked", env) == []
