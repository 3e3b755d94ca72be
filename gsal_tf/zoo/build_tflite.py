"""Zoo entries imported from TensorFlow Lite releases (``gsal zoo build --plan configs/zoo/real.toml``).

A plan entry with ``tflite = FILE`` (instead of ``data`` / ``train``) names a pretrained
segmentation network published as a TFLite flatbuffer, with where it comes from (``repository``,
``commit``, ``path``, ``url``, ``sha256``, ``licence``), what it was trained on (``dataset``,
``classes``: a list of names, or the key of one in the plan's ``[classes]`` table), ``backbone``,
``description``, optionally ``float_input_range`` (a float32-input file) and ``images`` (photos
to measure the agreement on). For each entry :func:`build_tflite_model`:

1. finds the file: ``tflite_dir/FILE`` if given, else the URL downloaded once with
   ``keras.utils.get_file`` into ``$GSAL_HOME/zoo/tflite``; the sha256 must match either way;
2. imports it with :func:`gsal_tf.models.from_tflite` (probabilities, float32);
3. writes ``<name>.model.npz`` (architecture + float16 weights, :mod:`gsal_tf.models.model_file`);
4. loads that file back as users do (:func:`gsal_tf.zoo.load`'s reader) and writes the arg-max of
   its prediction on the plan's ``[sample]`` photo to ``samples/<name>.reference.png``: the check,
   on any machine, that the shipped weights still compute what they computed here;
5. measures on each photo of ``images`` found in ``image_dirs`` (or, if none is found, on the
   sample) the share of pixels whose arg-max agrees between the float16 model, the float32 import
   and ``tf.lite.Interpreter`` running the original file;
6. writes the manifest record (``kind = "tflite"``, see :mod:`gsal_tf.models.presets`).

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
from gsal_tf.models.model_file import read_model_file, write_model_file

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
    return {**entry, "classes": [str(c) for c in classes], "sample": plan.get("sample")}


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
    if info.num_classes != len(entry["classes"]):
        raise GsalInputError(f"{name}: {tflite.name} has {info.num_classes} classes, the plan names {len(entry['classes'])}")
    write_model_file(imported, weights, WEIGHTS_DTYPE,
                     metadata={"tflite_info": _jsonable(info), "source": _source(entry)})
    shipped, _ = read_model_file(weights)

    sample = write_sample(entry.get("sample"), zoo_dir, image_dirs, log)
    reference = zoo_dir / "samples" / f"{name}.reference.png"
    labels = _argmax(shipped, photo_input(zoo_dir / sample["file"], info.input_size))[0]
    cv2.imwrite(str(reference), labels.astype(np.uint8))

    found = [p for p in (_find(image, image_dirs) for image in entry.get("images", [])) if p is not None]
    measured = found or [zoo_dir / sample["file"]]
    agreement = measure_agreement(shipped, imported, tflite, measured, info.input_size, float_range)
    for image, row in agreement.items():
        log(f"{name} {image}: arg-max agreement float16 vs float32 {row['float16_vs_float32']:.5f}, "
            f"float16 vs tflite {row['float16_vs_tflite']:.5f}, float32 vs tflite {row['float32_vs_tflite']:.5f}")
    record = manifest_record(entry, info, shipped, weights, agreement, sample, reference, zoo_dir, plan)
    presets.write_manifest(zoo_dir / presets.MANIFEST, {**presets.manifest_records(zoo_dir), name: record})
    return record


def manifest_record(entry: dict, info, model, weights: Path, agreement: dict, sample: dict, reference: Path,
                    zoo_dir: Path, plan: str = "configs/zoo/real.toml") -> dict:
    """The manifest record of an imported entry (fields: :mod:`gsal_tf.models.presets`)."""
    height, width = info.input_size

    def per_image(key):
        return {image: row[key] for image, row in agreement.items()}

    build = {"backbone": entry["backbone"], "tflite": entry["tflite"], "output": OUTPUT, "weights_dtype": WEIGHTS_DTYPE}
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
            "measured_on": f"photos resized to {height}x{width} (cv2.INTER_AREA, exact 8-bit values); float32 = "
                           f"from_tflite's import, tflite = tf.lite.Interpreter on {entry['tflite']} "
                           f"({info.input_type} input, activations {'8-bit' if info.input_type != 'float32' else 'float'})",
        },
        "training": {
            "trained_by": f"the publisher of {entry['repository']} (not retrained by gsal)",
            "imported_with": f"gsal_tf.models.from_tflite(output={OUTPUT!r}); weights stored as {WEIGHTS_DTYPE} "
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


def measure_agreement(shipped, imported, tflite: Path, images, size, float_range) -> dict:
    """{image stem: {float16_vs_float32, float16_vs_tflite, float32_vs_tflite}}: the share of pixels
    whose arg-max class agrees, per photo (resized to ``size``)."""
    rows = {}
    for path in images:
        x = photo_input(path, size)
        ours16, ours32 = _argmax(shipped, x)[0], _argmax(imported, x)[0]
        theirs = tflite_labels(tflite, x, float_range)[0]
        rows[Path(path).stem] = {
            "float16_vs_float32": round(float((ours16 == ours32).mean()), 5),
            "float16_vs_tflite": round(float((ours16 == theirs).mean()), 5),
            "float32_vs_tflite": round(float((ours32 == theirs).mean()), 5),
        }
    return rows


def photo_input(path, size) -> np.ndarray:
    """A photo as the zoo's networks take it: (1, H, W, 3) float32 in [0, 1], read as 8-bit RGB and
    resized to ``size = (H, W)`` with ``cv2.INTER_AREA`` (values stay exact multiples of 1/255)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise GsalInputError(f"cannot read the photo {path}")
    image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), tuple(size)[::-1], interpolation=cv2.INTER_AREA)
    return (image / 255.0).astype(np.float32)[None]


def tflite_labels(path: Path, images: np.ndarray, float_range=(-1.0, 1.0)) -> np.ndarray:
    """(N, H, W) arg-max classes of ``tf.lite.Interpreter`` running the file on images in [0, 1]
    (N, H, W, C), fed as from_tflite's convention says: uint8 ``q = 255·x``, int8 ``q = 255·x − 128``,
    float ``lo + (hi − lo)·x``."""
    import tensorflow as tf

    interpreter = tf.lite.Interpreter(str(path))
    interpreter.allocate_tensors()
    source, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    low, high = float_range
    labels = []
    for image in images:
        q = np.round(image * 255.0)
        feed = {np.uint8: q, np.int8: q - 128, np.float32: low + (high - low) * image}[source["dtype"]]
        interpreter.set_tensor(source["index"], feed[None].astype(source["dtype"]))
        interpreter.invoke()
        out = interpreter.get_tensor(output["index"])[0]
        labels.append(out.argmax(-1) if out.ndim == 3 else out)
    return np.stack(labels).astype(np.int64)


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


def _argmax(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False)).argmax(-1)


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
    return {"repository": entry["repository"], "commit": entry["commit"], "path": entry["path"],
            "url": entry["url"], "sha256": entry["sha256"], "licence": entry["licence"]}


def _jsonable(info) -> dict:
    import dataclasses

    return json.loads(json.dumps(dataclasses.asdict(info)))
