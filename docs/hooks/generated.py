"""MkDocs hook: the pages' generated parts, written at build time so they never drift.

A page asks for a generated block with an HTML comment on a line of its own:

- ``<!-- gsal:cli-reference -->`` — every ``gsal`` command with its arguments and options, from
  Typer's own documentation generator (``python -m typer gsal_cli.main utils docs``), so the page
  says what ``gsal COMMAND --help`` says;
- ``<!-- gsal:zoo-trained -->``, ``<!-- gsal:zoo-imported -->``, ``<!-- gsal:zoo-agreement -->`` —
  the zoo's tables, read from the shipped manifest ``zoo/models.toml`` (the file
  ``gsal zoo list`` reads).

A block that cannot be generated stops the build (``PluginError``) rather than leaving a stale or
empty table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- gsal:([a-z-]+) -->$", re.MULTILINE)
_cache: dict[str, str] = {}


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise PluginError(f"{page.file.src_path}: unknown generated block <!-- gsal:{name} -->")
        if name not in _cache:
            _cache[name] = GENERATORS[name]()
        return _cache[name]

    return MARKER.sub(replace, markdown)


def on_startup(command, dirty) -> None:
    _cache.clear()


# --- the CLI ------------------------------------------------------------------------------------


def cli_reference() -> str:
    """Typer's markdown for the ``gsal`` app, every heading one level down (the page has its own)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "cli"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cli.md"
        run = subprocess.run([sys.executable, "-m", "typer", "gsal_cli.main", "utils", "docs", "--name", "gsal",
                              "--output", str(out)], env=env, cwd=ROOT, capture_output=True, text=True)
        if run.returncode != 0 or not out.is_file():
            raise PluginError(f"could not generate the CLI reference (python -m typer gsal_cli.main utils docs):\n{run.stderr[-2000:]}")
        text = out.read_text(encoding="utf-8")
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("#"):
            line = "#" + line
        lines.append(line)
    return "\n".join(lines) + "\n"


# --- the zoo ------------------------------------------------------------------------------------


def _manifest() -> list[dict]:
    path = ROOT / "zoo" / "models.toml"
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)["model"]
    except (OSError, KeyError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(f"could not read the zoo manifest {path}: {exc}") from exc


def _weights_mb(entry: dict) -> str:
    path = ROOT / "zoo" / entry["weights"]
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "—"


def _epochs(entry: dict) -> str:
    training = entry.get("training", {})
    epochs = training.get("train_overrides", {}).get("epochs")
    if epochs is None and training.get("train_config"):
        config = ROOT / training["train_config"]
        if config.is_file():
            with config.open("rb") as fh:
                epochs = tomllib.load(fh).get("train", {}).get("epochs")
    return "—" if epochs is None else str(epochs)


def zoo_trained() -> str:
    """TextureMNIST DeepLabv3+ entries: what they measured on the unbiased test split."""
    entries = [e for e in _manifest() if e["kind"] == "deeplabv3plus"]
    digit = next((e["bias"]["digit"] for e in entries if "bias" in e), None)
    unbiased = {e["build"]["backbone"]: e for e in entries if "bias" not in e}
    rows = [f"| name | backbone | bias | mean IoU ({len(entries[0]['class_names'])} classes) | "
            f"IoU of digit {digit} (model / unbiased) | best epoch | train samples | train time | weights |",
            "|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        m, bias = e["metrics"], e.get("bias")
        own = m["iou_per_class"][digit]
        if bias is None:
            bias_text, pair = "none", f"{own:.3f}"
        else:
            ref = unbiased.get(e["build"]["backbone"])
            bias_text = f"{bias['strength']}: digit {bias['digit']} on {bias['texture']}"
            pair = f"{own:.3f}" + (f" / {ref['metrics']['iou_per_class'][digit]:.3f}" if ref else "")
        rows.append(f"| {e['name']} | {e['build']['backbone']} | {bias_text} | {m['mean_iou']:.3f} | {pair} | "
                    f"{m['best_epoch']} of {_epochs(e)} | {e['training']['train_samples']} | "
                    f"{m['train_minutes']} min | {_weights_mb(e)} |")
    return "\n".join(rows) + "\n"


def _first_clause(text: str) -> str:
    """``text`` up to its first comma outside parentheses (the network's name in a description)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            return text[:i]
    return text


def zoo_imported() -> str:
    """Networks imported from TFLite: architecture, data, input, weights and where they come from."""
    rows = ["| name | network | dataset, classes | input | weights | source (licence) |", "|---|---|---|---|---|---|"]
    for e in _manifest():
        if e["kind"] != "tflite":
            continue
        h, w, _ = e["input_shape"]
        source = e.get("source", {})
        origin = f"{source.get('repository', '—')}: `{Path(source.get('path', '')).name}`"
        weights = f"{e['metrics'].get('weights_mb', 0):.1f} MB ({e['build'].get('weights_dtype', 'float16')})"
        rows.append(f"| {e['name']} | {_first_clause(e['description'])} | {e['dataset']}, {len(e['class_names'])} | "
                    f"{h}×{w} | {weights} | {origin} ({source.get('licence', e.get('licence', '—'))}) |")
    return "\n".join(rows) + "\n"


def _span(values: dict | None) -> str:
    if not values:
        return "—"
    lo, hi = min(values.values()), max(values.values())
    return f"{lo:.4f}" if lo == hi else f"{lo:.4f}–{hi:.4f}"


def zoo_agreement() -> str:
    """Share of pixels whose arg-max class agrees: shipped weights vs the import vs the TFLite file."""
    rows = ["| name | images | float16 vs float32 | float16 vs TFLite | float32 vs TFLite |", "|---|---|---|---|---|"]
    for e in _manifest():
        if e["kind"] != "tflite":
            continue
        m = e["metrics"]
        images = m.get("argmax_agreement_float16_vs_tflite") or {}
        rows.append(f"| {e['name']} | {len(images)} | {_span(m.get('argmax_agreement_float16_vs_float32'))} | "
                    f"{_span(images)} | {_span(m.get('argmax_agreement_float32_vs_tflite'))} |")
    return "\n".join(rows) + "\n"


GENERATORS = {
    "cli-reference": cli_reference,
    "zoo-trained": zoo_trained,
    "zoo-imported": zoo_imported,
    "zoo-agreement": zoo_agreement,
}
