"""Zoo entries imported from TensorFlow Lite releases (``gsal zoo build --plan configs/zoo/real.toml``).

A plan entry with ``tflite = FILE`` (instead of ``data`` / ``train``) names a pretrained
segmentation network published as a TFLite flatbuffer, with where it comes from (``repository``,
``commit``, ``path``, ``url``, ``sha256``, ``licence``), what it was trained on (``dataset``,
``classes``: a list of names, or the key of one in the plan's ``[classes]`` table), ``backbone``,
``description``, optionally ``float_input_range`` (a float32-input file), ``weights_dtype``
(``"float16"``, the default, or ``"float32"`` for a network whose arg-max float16 storage
measurably changes), ``images`` (photos to measure the agreement on: file names, or paths
relative to an image folder) and ``source_note`` (where the file is published when that is not
a repository path; recorded with the source). For each entry :func:`build_tflite_model`:

1. finds the file: ``tflite_dir/FILE`` if given, else the URL downloaded once with
   ``keras.utils.get_file`` into ``$GSAL_HOME/zoo/tflite``; the sha256 must match either way;
2. imports it with :func:`gsal_tf.models.from_tflite` (probabilities, float32);
3. writes ``<name>.model.npz`` (architecture + weights in ``weights_dtype``,
   :mod:`gsal_tf.models.model_file`);
4. loads that file back as users do (:func:`gsal_tf.zoo.load`'s reader) and writes the arg-max of
   its prediction on the plan's ``[sample]`` photo to ``samples/<name>.reference.png``: the check,
   on any machine, that the shipped weights still compute what they computed here;
5. measures on each photo of ``images`` found in ``image_dirs`` (or, if none is found, on the
   sample) the share of pixels whose class (:func:`labels_of`) agrees between the float16 model,
   the float32 import and ``tf.lite.Interpreter`` running the original file, and, when the file
   outputs scores (no ARG_MAX), the largest difference of the class probabilities (float32 import
   vs the file's output through softmax, or sigmoid for a one-channel logit);
6. writes the manifest record (``kind = "tflite"``, see :mod:`gsal_tf.models.presets`).

A one-channel (binary) network names two classes, ``[background, foreground]`` (e.g.
``["background", "person"]``): its output ``p`` is the foreground's probability, explained as
class 1 with ``p`` and class 0 with ``1 − p``; a pixel's class is 1 where ``p > 0.5``.

Photos enter every network the same way: read as 8-bit RGB, resized to the network input with
``cv2.INTER_AREA``, divided by 255 (so the interpreter's 8-bit input ``q = 255·x`` is exact).
The ``[sample]`` photo is shipped once (``samples/…png``, lossless, at its ``size``), written from
the original photo (local in ``image_dirs`` or downloaded from its URL, sha256-checked) when it is
not in the zoo yet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError
from gsal_tf.models import presets
from gsal_tf.models.model_file import DTYPES, read_model_file, write_model_file

__all__ = [
    "REQUIRED", "WEIGHTS_DTYPE", "OUTPUT", "is_tflite_entry", "check_entry", "build_tflite_model",
    "manifest_record", "measure_agreement", "labels_of", "file_probabilities", "photo_input",
    "tflite_output", "tflite_labels", "write_sample",
]

#: Keys a ``tflite`` plan entry must have.
REQUIRED = ("name", "tflite", "sha256", "url", "repository", "commit", "path", "licence", "dataset", "classes", "backbone")
WEIGHTS_DTYPE = "float16"
OUTPUT = "probabilities"


def is_tflite_entry(entry: dict) -> bool:
    return "tflite" in entry


def check_entry(entry: dict, plan: dict, where) -> dict:
    """The plan entry with its ``classes`` resolved to a list and the plan's ``[sample]`` attached;
    a missing key or an unknown class list is a GsalInputError."""
    missing = [k for k in REQUIRED if k not in entry]
    if missing:
        raise GsalInputError(f"zoo plan {where}: entry {entry.get('name', '?')!r} lacks {', '.join(missing)}")
    classes = entry["classes"]
    if isinstance(classes, str):
        tables = plan.get("classes", {})
        if classes not in tables:
            raise GsalInputError(f"zoo plan {where}: entry {entry['name']!r} names the class list {classes!r}, "
                                 f"which is not in [classes] ({', '.join(tables) or 'empty'})")
        classes = tables[classes]
    dtype = entry.get("weights_dtype", WEIGHTS_DTYPE)
    if dtype not in DTYPES:
        raise GsalInputError(f"zoo plan {where}: entry {entry['name']!r} has weights_dtype {dtype!r}; "
                             f"use one of {', '.join(DTYPES)}")
    return {**entry, "classes": [str(c) for c in classes], "sample": plan.get("sample"), "weights_dtype": dtype}


def build_tflite_model(entry: dict, zoo_dir, tflite_dir=None, image_dirs=(), force: bool = False,
                       log: Callable[[str], None] = print, plan: str = "configs/zoo/real.toml") -> dict | None:
    """Build one imported zoo entry (see module docstring); its manifest record, or None if skipped."""
    from gsal_tf.models.tflite_import import from_tflite

    zoo_dir = Path(zoo_dir)
    name = entry["name"]
    weights = zoo_dir / f"{name}.model.npz"
    if not force and name in presets.manifest_records(zoo_dir) and weights.is_file():
        log(f"{name}: already in the zoo, skipped (use force to rebuild)")
        return None
    tflite = _fetch(entry["tflite"], entry["url"], entry["sha256"], tflite_dir, "tflite", log)
    float_range = tuple(entry.get("float_input_range", (-1.0, 1.0)))
    log(f"{name}: importing {tflite.name}")
    imported = from_tflite(tflite, output=OUTPUT, float_input_range=float_range)
    info = imported.tflite_info
    if max(info.num_classes, 2) != len(entry["classes"]):
        expected = "2 (background, foreground) for its one output channel" if info.num_classes == 1 \
            else info.num_classes
        raise GsalInputError(f"{name}: {tflite.name} needs {expected} class names, "
                             f"the plan names {len(entry['classes'])}")
    write_model_file(imported, weights, entry.get("weights_dtype", WEIGHTS_DTYPE),
                     metadata={"tflite_info": _jsonable(info), "source": _source(entry)})
    shipped, _ = read_model_file(weights)

    sample = write_sample(entry.get("sample"), zoo_dir, image_dirs, log)
    reference = zoo_dir / "samples" / f"{name}.reference.png"
    labels = labels_of(_predict(shipped, photo_input(zoo_dir / sample["file"], info.input_size)))[0]
    cv2.imwrite(str(reference), labels.astype(np.uint8))

    found = [p for p in (_find(image, image_dirs) for image in entry.get("images", [])) if p is not None]
    measured = found or [zoo_dir / sample["file"]]
    agreement = measure_agreement(shipped, imported, tflite, measured, info.input_size, float_range,
                                  file_output_is_probability=info.logistic_dropped)
    for image, row in agreement.items():
        difference = row.get("max_probability_difference_float32_vs_tflite")
        log(f"{name} {image}: arg-max agreement float16 vs float32 {row['float16_vs_float32']:.5f}, "
            f"float16 vs tflite {row['float16_vs_tflite']:.5f}, float32 vs tflite {row['float32_vs_tflite']:.5f}"
            + (f", max probability difference float32 vs tflite {difference:.2e}" if difference is not None else ""))
    record = manifest_record(entry, info, shipped, weights, agreement, sample, reference, zoo_dir, plan)
    presets.write_manifest(zoo_dir / presets.MANIFEST, {**presets.manifest_records(zoo_dir), name: record})
    return record


def manifest_record(entry: dict, info, model, weights: Path, agreement: dict, sample: dict, reference: Path,
                    zoo_dir: Path, plan: str = "configs/zoo/real.toml") -> dict:
    """The manifest record of an imported entry (fields: :mod:`gsal_tf.models.presets`)."""
    height, width = info.input_size

    def per_image(key):
        return {image: row[key] for image, row in agreement.items() if key in row}

    binary = info.num_classes == 1
    probability_difference = per_image("max_probability_difference_float32_vs_tflite")

    dtype = entry.get("weights_dtype", WEIGHTS_DTYPE)
    build = {"backbone": entry["backbone"], "tflite": entry["tflite"], "output": OUTPUT, "weights_dtype": dtype}
    if info.input_type == "float32":
        build["float_input_range"] = [float(v) for v in info.input_range]
    return {
        "name": entry["name"],
        "kind": "tflite",
        "description": entry.get("description", ""),
        "dataset": entry["dataset"],
        "licence": entry["licence"],
        "input_shape": [height, width, info.channels],
        "class_names": list(entry["classes"]),
        "preprocessing": f"RGB float32 in [0, 1] at {height}x{width} (resize the photo first); the model maps x to "
                         f"the network input itself: {info.preprocessing}",
        "weights": weights.name,
        "sha256": presets.sha256_of(weights),
        "url": "",
        "build": build,
        "metrics": {
            "parameters": int(model.count_params()),
            "weights_mb": round(weights.stat().st_size / 1e6, 2),
            "argmax_agreement_float16_vs_float32": per_image("float16_vs_float32"),
            "argmax_agreement_float16_vs_tflite": per_image("float16_vs_tflite"),
            "argmax_agreement_float32_vs_tflite": per_image("float32_vs_tflite"),
            **({"max_probability_difference_float32_vs_tflite": probability_difference}
               if probability_difference else {}),
            "measured_on": _measured_on(entry, info, dtype),
        },
        "training": {
            "trained_by": f"the publisher of {entry['repository']} (not retrained by gsal)",
            "imported_with": f"gsal_tf.models.from_tflite(output={OUTPUT!r}); weights stored as {dtype} "
                             "(gsal_tf.models.model_file)",
            "operators": ", ".join(f"{op} {n}" for op, n in info.operators),
            "command": f"gsal zoo build --plan {plan} --tflite-dir DIR --only {entry['name']}",
        },
        "source": _source(entry),
        "reference": {
            "image": sample["file"],
            "image_licence": sample.get("licence", ""),
            "image_credit": sample.get("credit", ""),
            "argmax": reference.relative_to(zoo_dir).as_posix(),
        },
    }


def _measured_on(entry: dict, info, dtype: str) -> str:
    """What the agreement metrics of an entry compare, as one sentence."""
    height, width = info.input_size
    activations = "8-bit" if info.input_type != "float32" else "float"
    text = (f"photos resized to {height}x{width} (cv2.INTER_AREA, exact 8-bit values); float32 = from_tflite's import, "
            f"tflite = tf.lite.Interpreter on {entry['tflite']} ({info.input_type} input, activations {activations})")
    if dtype != "float16":
        text += f"; float16 = the shipped file, whose weights are {dtype}"
    if info.num_classes == 1:
        text += "; one output channel p: the arg-max of (1 − p, p), i.e. p > 0.5"
    return text


def measure_agreement(shipped, imported, tflite: Path, images, size, float_range,
                      file_output_is_probability: bool = False) -> dict:
    """{image stem: {float16_vs_float32, float16_vs_tflite, float32_vs_tflite[,
    max_probability_difference_float32_vs_tflite]}}: the share of pixels whose class
    (:func:`labels_of`) agrees, per photo (resized to ``size``), and, when the file outputs scores,
    ``max |p_float32 − p_tflite|`` over pixels and classes (:func:`file_probabilities`).
    ``shipped`` and ``imported`` output probabilities."""
    rows = {}
    for path in images:
        x = photo_input(path, size)
        p16, p32 = _predict(shipped, x), _predict(imported, x)
        output = tflite_output(tflite, x, float_range)
        ours16, ours32 = labels_of(p16)[0], labels_of(p32)[0]
        theirs = labels_of(output, threshold=0.5 if file_output_is_probability else 0.0)[0]
        row = {
            "float16_vs_float32": round(float((ours16 == ours32).mean()), 5),
            "float16_vs_tflite": round(float((ours16 == theirs).mean()), 5),
            "float32_vs_tflite": round(float((ours32 == theirs).mean()), 5),
        }
        if output.ndim == 4:
            difference = np.abs(p32 - file_probabilities(output, file_output_is_probability)).max()
            row["max_probability_difference_float32_vs_tflite"] = float(f"{difference:.3g}")
        rows[Path(path).stem] = row
    return rows


def labels_of(scores: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(N,H,W) int64 classes from scores (N,H,W,K): the arg-max over K for K ≥ 2; for one channel
    (a binary segmenter, classes 0 = background, 1 = foreground) 1 where the score exceeds
    ``threshold`` (0.5 for a probability, 0 for a logit); (N,H,W) class ids pass through."""
    scores = np.asarray(scores)
    if scores.ndim == 3:
        return scores.astype(np.int64)
    if scores.shape[-1] == 1:
        return (scores[..., 0] > threshold).astype(np.int64)
    return scores.argmax(-1).astype(np.int64)


def file_probabilities(output: np.ndarray, is_probability: bool = False) -> np.ndarray:
    """Class probabilities (N,H,W,K) from a file's score output: as they are when the file ends
    with a sigmoid (``is_probability``), else the softmax over K of its logits, or the sigmoid of
    a one-channel logit (from_tflite's reading of a file's output)."""
    output = np.asarray(output, np.float64)
    if is_probability:
        return output
    if output.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-output))
    exp = np.exp(output - output.max(-1, keepdims=True))
    return exp / exp.sum(-1, keepdims=True)


def photo_input(path, size) -> np.ndarray:
    """A photo as the zoo's networks take it: (1, H, W, 3) float32 in [0, 1], read as 8-bit RGB and
    resized to ``size = (H, W)`` with ``cv2.INTER_AREA`` (values stay exact multiples of 1/255)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise GsalInputError(f"cannot read the photo {path}")
    image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), tuple(size)[::-1], interpolation=cv2.INTER_AREA)
    return (image / 255.0).astype(np.float32)[None]


def tflite_output(path: Path, images: np.ndarray, float_range=(-1.0, 1.0)) -> np.ndarray:
    """The output of ``tf.lite.Interpreter`` running the file on images in [0, 1] (N, H, W, C), fed
    as from_tflite's convention says: uint8 ``q = 255·x``, int8 ``q = 255·x − 128``, float
    ``lo + (hi − lo)·x``; (N, H, W) class ids (a final ARG_MAX) or (N, H, W, K) scores."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(str(path))
    interpreter.allocate_tensors()
    source, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    low, high = float_range
    outputs = []
    for image in images:
        q = np.round(image * 255.0)
        feed = {np.uint8: q, np.int8: q - 128, np.float32: low + (high - low) * image}[source["dtype"]]
        interpreter.set_tensor(source["index"], feed[None].astype(source["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output["index"])[0])
    return np.stack(outputs)


def tflite_labels(path: Path, images: np.ndarray, float_range=(-1.0, 1.0), threshold: float = 0.5) -> np.ndarray:
    """(N, H, W) classes of the file's output on images in [0, 1] (:func:`tflite_output`,
    :func:`labels_of`; ``threshold`` for a one-channel output: 0.5 if it is a probability)."""
    return labels_of(tflite_output(path, images, float_range), threshold)


def write_sample(sample: dict | None, zoo_dir: Path, image_dirs, log) -> dict:
    """The plan's ``[sample]`` table; its shipped PNG written from the original photo if missing."""
    if not sample or "file" not in sample or "size" not in sample:
        raise GsalInputError("the zoo plan needs a [sample] table (image, url, sha256, file, size) for the "
                             "reference prediction of imported networks")
    target = Path(zoo_dir) / sample["file"]
    if not target.is_file():
        photo = _fetch(sample["image"], sample.get("url", ""), sample["sha256"], None, "samples", log,
                       local=_find(sample["image"], image_dirs))
        image = cv2.resize(cv2.imread(str(photo), cv2.IMREAD_COLOR), tuple(sample["size"])[::-1],
                           interpolation=cv2.INTER_AREA)
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), image)
        log(f"sample photo: {target} (from {photo.name})")
    return sample


def _predict(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False), np.float64)


def _find(name: str, folders) -> Path | None:
    for folder in folders or ():
        if (Path(folder) / name).is_file():
            return Path(folder) / name
    return None


def _fetch(file_name: str, url: str, sha256: str, folder, cache_subdir: str, log, local: Path | None = None) -> Path:
    """``folder/file_name`` (or ``local``) if it exists, else ``url`` downloaded once into the cache;
    checked against ``sha256`` either way."""
    path = local or (Path(folder) / file_name if folder else None)
    if path is not None and path.is_file():
        presets.verify(path, sha256)
        return path
    if path is not None and folder:
        raise GsalInputError(f"{file_name} is not in {folder}")
    if not url:
        raise GsalInputError(f"{file_name}: not on disk and no url to download it from")
    import keras

    log(f"downloading {url}")
    cache = presets.cache_dir() / cache_subdir
    cache.mkdir(parents=True, exist_ok=True)
    try:
        fetched = keras.utils.get_file(fname=file_name, origin=url, file_hash=sha256, hash_algorithm="sha256",
                                       cache_dir=str(cache.parent), cache_subdir=cache.name)
    except Exception as exc:
        raise GsalInputError(f"cannot download {file_name} from {url}: {exc}") from None
    presets.verify(Path(fetched), sha256)
    return Path(fetched)


def _source(entry: dict) -> dict:
    source = {"repository": entry["repository"], "commit": entry["commit"], "path": entry["path"],
              "url": entry["url"], "sha256": entry["sha256"], "licence": entry["licence"]}
    return {**source, "note": entry["source_note"]} if "source_note" in entry else source


def _jsonable(info) -> dict:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(info)))
