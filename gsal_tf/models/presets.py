"""The presets of the model zoo: a TOML manifest of pretrained models and their checked weights.

The manifest ``models.toml`` and the weights ship inside the package (``gsal_tf.zoo_files``,
the repository's top-level ``zoo/`` folder). Two kinds of ``[[model]]`` entries:

- ``kind = "deeplabv3plus"`` (the default): a DeepLabv3+ trained by gsal on TextureMNIST.
  ``build`` holds the keyword arguments of :func:`gsal_tf.models.deeplabv3plus`; ``bias`` the
  context bias it was trained with (read as :class:`gsal_tf.benchmark.zoo_bias.Bias`, the
  benchmark's metadata; absent when unbiased); ``training`` the data and train configs and the
  command; weights: ``<name>.weights.h5``.
- ``kind = "tflite"``: a pretrained network published as a TensorFlow Lite file (e.g. Google's
  DeepLab releases), imported with :func:`gsal_tf.models.from_tflite`. ``build`` holds the
  import options (``tflite`` file, ``output``, ``weights_dtype``, ``float_input_range``);
  ``source`` where the file comes from (``repository``, ``commit``, ``path``, ``url`` a user who
  is online downloads it from, its ``sha256``, ``licence``); ``training`` how the entry was made
  (the command; the network itself was trained by its publisher); ``reference`` the shipped
  sample photo and the arg-max the shipped weights gave on it at build time. Weights:
  ``<name>.model.npz`` (architecture and float16 weights, :mod:`gsal_tf.models.model_file`).

Every entry records ``name``, ``description``, ``dataset``, ``licence`` (of the weights; empty
when gsal trained them), ``input_shape`` (H, W, C), ``class_names`` (index = output channel),
``preprocessing`` (what the model expects; both kinds take floats in [0, 1] and rescale
themselves), ``metrics`` (what was measured, and on what), ``weights``, ``sha256`` and ``url``.

Weights are looked up, in order: beside the manifest (shipped), then in the cache
``$GSAL_HOME/zoo`` (default ``~/.cache/gsal/zoo``); a model with a ``url`` and no file on disk
is downloaded once into the cache with ``keras.utils.get_file`` and checked against its hash.
Nothing touches the network unless a user asks for a model whose weights are not on disk.
A weights file whose sha256 differs from the manifest is refused, never loaded.

>>> import gsal_tf as gs
>>> [m.name for m in gs.zoo.list_models()]
>>> model = gs.zoo.load("tmnist-mobilenetv2-strong")      # a keras.Model; entry: model.zoo_entry
>>> model = gs.zoo.load("pascal-mobilenetv2")             # 513x513x3 in [0, 1] -> (N,513,513,21)
>>> model.zoo_entry.class_names.index("person")
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from gsal_tf.config import gsal_home, read_toml
from gsal_tf.errors import GsalInputError, IntegrityError
from gsal_tf.models.deeplab import deeplabv3plus
from gsal_tf.models.model_file import read_model_file
from gsal_tf.models.weights_file import load_weights

if TYPE_CHECKING:
    from gsal_tf.benchmark.zoo_bias import Bias

__all__ = [
    "MANIFEST", "KINDS", "ZooEntry", "zoo_dir", "cache_dir", "list_models", "names", "get",
    "weights_path", "load", "sha256_of", "verify", "manifest_records", "write_manifest",
]

MANIFEST = "models.toml"
#: The kinds of zoo entries (see the module docstring).
KINDS = ("deeplabv3plus", "tflite")


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One pretrained model of the zoo (see the module docstring for the manifest fields)."""

    name: str
    backbone: str
    build: dict
    input_shape: tuple
    class_names: tuple
    preprocessing: str
    bias: Bias | None
    metrics: dict
    training: dict
    weights: str
    sha256: str
    url: str = ""
    description: str = ""
    kind: str = "deeplabv3plus"
    dataset: str = "TextureMNIST"
    licence: str = ""
    source: dict = dataclasses.field(default_factory=dict)
    reference: dict = dataclasses.field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def zoo_dir() -> Path:
    """The folder holding the shipped manifest and weights."""
    return Path(str(resources.files("gsal_tf.zoo_files")))


def cache_dir() -> Path:
    """Where downloaded weights go: ``$GSAL_HOME/zoo`` (default ``~/.cache/gsal/zoo``)."""
    return gsal_home() / "zoo"


def list_models(manifest: Path | None = None) -> list[ZooEntry]:
    """All entries of the manifest, in manifest order.

    A missing or unreadable manifest is an error (GsalInputError), never an empty zoo: an
    installation without its zoo is broken, and saying so beats explaining with nothing.
    """
    path = Path(manifest) if manifest else zoo_dir() / MANIFEST
    if not path.is_file():
        raise GsalInputError(f"the zoo manifest {path} is missing; reinstall gsal-tf (or give the path of a manifest)")
    return [_entry(raw, path) for raw in read_toml(path).get("model", [])]


def names(manifest: Path | None = None) -> list[str]:
    """The names of the zoo's models, in manifest order."""
    return [e.name for e in list_models(manifest)]


def get(name: str, manifest: Path | None = None) -> ZooEntry:
    """The entry called ``name``; an unknown name is a GsalInputError listing the known ones."""
    entries = list_models(manifest)
    for entry in entries:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in entries) or "none"
    raise GsalInputError(f"no zoo model named {name!r}; known models: {known}")


def weights_path(entry: ZooEntry, manifest: Path | None = None, download: bool = True) -> Path:
    """The verified weights file of ``entry`` (shipped, cached, or downloaded once)."""
    base = Path(manifest).parent if manifest else zoo_dir()
    for candidate in (base / entry.weights, cache_dir() / entry.weights):
        if candidate.is_file():
            verify(candidate, entry.sha256)
            return candidate
    if not entry.url:
        raise GsalInputError(f"the weights of {entry.name} ({entry.weights}) are not on disk and the manifest gives no URL")
    if not download:
        raise GsalInputError(f"the weights of {entry.name} are not on disk; allow the download")
    import keras

    cache_dir().mkdir(parents=True, exist_ok=True)
    try:
        fetched = keras.utils.get_file(
            fname=entry.weights,
            origin=entry.url,
            file_hash=entry.sha256,
            hash_algorithm="sha256",
            cache_dir=str(cache_dir().parent),
            cache_subdir=cache_dir().name,
        )
    except Exception as exc:
        raise GsalInputError(f"cannot download the weights of {entry.name} from {entry.url}: {exc}") from None
    verify(Path(fetched), entry.sha256)
    return Path(fetched)


def load(name: str, manifest: Path | None = None):
    """Build the model of zoo entry ``name`` and load its verified weights.

    Returns a ``keras.Model`` (inference use: ``model(images, training=False)``) with the entry
    attached as ``model.zoo_entry``.
    """
    entry = get(name, manifest)
    path = weights_path(entry, manifest)
    if entry.kind == "tflite":
        model, metadata = read_model_file(path, name=_model_name(entry.name))
        if "tflite_info" in metadata:
            model.tflite_info = _tflite_info(metadata["tflite_info"])
        model.zoo_entry = entry
        return model
    build = dict(entry.build)
    model = deeplabv3plus(
        build.pop("backbone"), entry.input_shape, entry.num_classes, name=_model_name(entry.name), **build
    )
    load_weights(model, path)
    model.zoo_entry = entry
    return model


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise IntegrityError when ``path``'s sha256 is not ``expected``."""
    actual = sha256_of(path)
    if actual != expected.lower():
        raise IntegrityError(
            f"{path} does not match its recorded sha256 (expected {expected[:12]}…, got {actual[:12]}…): "
            "the file is corrupt or was replaced; it was not loaded. Delete it and reinstall gsal-tf or re-download."
        )


def __getattr__(name: str):
    # Bias, unbiased_reference, bias_digit_ious: gsal_tf.benchmark.zoo_bias since 0.3 (gsal_tf._deprecated warns).
    from gsal_tf import _deprecated

    return _deprecated.moved(__name__, name)


def _model_name(entry_name: str) -> str:
    """A Keras model name for a zoo entry (``-`` and ``.`` are not allowed in every Keras name)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", entry_name)


def _tflite_info(raw: dict):
    """The :class:`~gsal_tf.models.tflite_import.TFLiteInfo` recorded in a model file (JSON lists
    back to tuples)."""
    from gsal_tf.models.tflite_import import TFLiteInfo

    def tuples(value):
        return tuple(tuples(v) for v in value) if isinstance(value, list) else value

    return TFLiteInfo(**{k: tuples(v) for k, v in raw.items()})


def _bias(table: dict) -> Bias:
    """An entry's ``bias`` table as the benchmark's :class:`~gsal_tf.benchmark.zoo_bias.Bias`
    (imported here, not at import time: the benchmark imports the models)."""
    from gsal_tf.benchmark.zoo_bias import Bias

    return Bias(**table)


def _entry(raw: dict, where: Path) -> ZooEntry:
    kind = raw.get("kind", "deeplabv3plus")
    if kind not in KINDS:
        raise GsalInputError(f"zoo entry {raw.get('name', '?')!r} in {where}: kind {kind!r} is not one of {KINDS}")
    try:
        bias = raw.get("bias")
        return ZooEntry(
            name=raw["name"],
            backbone=raw["build"]["backbone"],
            build=dict(raw["build"]),
            input_shape=tuple(raw["input_shape"]),
            class_names=tuple(raw["class_names"]),
            preprocessing=raw.get("preprocessing", ""),
            bias=_bias(bias) if bias else None,
            metrics=dict(raw.get("metrics", {})),
            training=dict(raw.get("training", {})),
            weights=raw["weights"],
            sha256=raw["sha256"],
            url=raw.get("url", ""),
            description=raw.get("description", ""),
            kind=kind,
            # An imported network must say what it was trained on, under which licence, from where.
            dataset=raw["dataset"] if kind == "tflite" else raw.get("dataset", "TextureMNIST"),
            licence=raw["licence"] if kind == "tflite" else raw.get("licence", ""),
            source=dict(raw["source"] if kind == "tflite" else raw.get("source", {})),
            reference=dict(raw.get("reference", {})),
        )
    except (KeyError, TypeError) as exc:
        raise GsalInputError(f"malformed zoo entry {raw.get('name', '?')!r} in {where}: missing or bad field {exc}") from None


# -- writing the manifest (gsal zoo build) ------------------------------------------------------


def manifest_records(zoo_dir: Path) -> dict:
    """The records of the manifest in ``zoo_dir`` by name ({} before the first build)."""
    path = Path(zoo_dir) / MANIFEST
    return {e.name: _record_of(e) for e in list_models(path)} if path.is_file() else {}


def _record_of(entry) -> dict:
    """A ZooEntry back to its manifest record."""
    record = {
        "name": entry.name,
        "kind": entry.kind,
        "description": entry.description,
        "dataset": entry.dataset,
        **({"licence": entry.licence} if entry.licence else {}),
        "input_shape": list(entry.input_shape),
        "class_names": list(entry.class_names),
        "preprocessing": entry.preprocessing,
        "weights": entry.weights,
        "sha256": entry.sha256,
        "url": entry.url,
        "build": entry.build,
        "metrics": entry.metrics,
        "training": entry.training,
        **({"source": entry.source} if entry.source else {}),
        **({"reference": entry.reference} if entry.reference else {}),
    }
    if entry.bias is not None:
        record["bias"] = dataclasses.asdict(entry.bias)
    return record


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _toml_key(key: str) -> str:
    """A bare TOML key, or a quoted one when it has other characters (``"bird.png"``)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def write_manifest(path: Path, records: dict) -> None:
    """Write ``{name: record}`` as the zoo's TOML manifest (one ``[[model]]`` per record)."""
    lines = [
        "# gsal model zoo: DeepLabv3+ models trained on TextureMNIST with this package's pipeline (kind",
        "# \"deeplabv3plus\") and pretrained DeepLab networks imported from TFLite releases (kind \"tflite\").",
        "# Written by `gsal zoo build`; each entry says how it was made and what it measured.",
        "",
    ]
    for record in records.values():
        lines.append("[[model]]")
        tables = {k: v for k, v in record.items() if isinstance(v, dict)}
        for key, value in record.items():
            if key not in tables:
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, table in tables.items():
            lines.append(f"[model.{_toml_key(key)}]")
            lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
        lines.append("")
    tmp = path.with_suffix(".toml.part")
    tmp.write_text("\n".join(lines))
    tmp.replace(path)
