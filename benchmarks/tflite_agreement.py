"""Agreement of imported 8-bit TFLite networks with tf.lite.Interpreter: float vs simulated activations.

For every network of ``REAL/models`` whose activations are 8-bit (``inspect_tflite(...).activation_type``
is uint8 or int8) and every image — the shared photos (``REAL/images``, masks left out), the
Cityscapes frames of ``REAL/research-only`` and evenly spaced CamVid frames of the val and test
splits — the script compares, per pixel:

- ``interpreter``: the file run by ``tf.lite.Interpreter`` with its default settings (XNNPACK);
  its class map is the file's ARG_MAX output, its probabilities the softmax of the dequantised
  input of that ARG_MAX (read from a second interpreter with ``experimental_preserve_all_tensors``);
- ``float_import``: ``from_tflite(path, quantize_activations=False)``, activations in float32
  (the only behaviour up to gsal-tf 0.2.0);
- ``faithful_import``: ``from_tflite(path)``, the file's 8-bit activations simulated
  (:mod:`gsal_tf.models.tflite_quant`);
- ``builtin_kernels``: the interpreter on TFLite's own integer kernels
  (``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``), to show how far two kernel libraries
  running the same file already differ.

Per network × image: the arg-max agreement with the interpreter (share of pixels with the same
class), and for the imports the largest ``|p − p_interpreter|`` over pixels and classes. Images
enter as the zoo builds them: read as 8-bit RGB, resized to the network input with
``cv2.INTER_AREA``, divided by 255 (so the interpreter's input ``q = 255·x`` is exact).

Development script: it reads ``../shared/data/real`` (research-only frames in place). Only
statistics are written — CamVid and Cityscapes pixels never leave that folder.

    python benchmarks/tflite_agreement.py [--real ../shared/data/real] [--camvid 12]
        [--json benchmarks/results/tflite-agreement.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
from _common import machine

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
RESULT = Path(__file__).resolve().parent / "results" / "tflite-agreement.json"
EIGHT_BIT = ("uint8", "int8")


def evenly_spaced(paths: list[Path], n: int) -> list[Path]:
    """``n`` of ``paths`` (sorted) at evenly spaced positions (all of them if there are fewer)."""
    paths = sorted(paths)
    if n >= len(paths):
        return paths
    return [paths[round(i * (len(paths) - 1) / (n - 1))] for i in range(n)] if n > 1 else paths[:1]


def image_set(real: Path, camvid: int) -> list[tuple[str, str, Path]]:
    """(group, name, path) of every image to measure on: photos, Cityscapes frames, CamVid val/test."""
    images = [("photo", p.name, p) for p in sorted((real / "images").iterdir())
              if p.suffix.lower() in (".jpg", ".jpeg", ".png") and not p.stem.endswith("_mask")]
    research = real / "research-only"
    images += [("cityscapes", p.name, p) for p in sorted(research.glob("cityscapes_*"))
               if p.suffix.lower() in (".jpg", ".png") and not p.stem.endswith("_mask")]
    for split in ("val", "test"):
        frames = evenly_spaced(list((research / "camvid" / split).glob("*.png")), camvid)
        images += [(f"camvid-{split}", f"{split}/{p.name}", p) for p in frames]
    return images


def network_input(path: Path, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float32 in [0, 1]: the image as 8-bit RGB resized with INTER_AREA, over 255."""
    image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return (cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA) / 255.0).astype(np.float32)


class Interpreter:
    """The file under ``tf.lite.Interpreter``: class map (default kernels and TFLite's built-in
    kernels) and the probabilities of the dequantised logits."""

    def __init__(self, path: Path):
        import tensorflow as tf

        resolver = tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.default = tf.lite.Interpreter(str(path))
        self.builtin = tf.lite.Interpreter(str(path), experimental_op_resolver_type=resolver)
        self.preserved = tf.lite.Interpreter(str(path), experimental_preserve_all_tensors=True)
        for interpreter in (self.default, self.builtin, self.preserved):
            interpreter.allocate_tensors()
        details = self.default.get_input_details()[0]
        self.input_index, self.input_type = details["index"], details["dtype"]
        self.output_index = self.default.get_output_details()[0]["index"]
        argmax = [op for op in self.preserved._get_ops_details() if op["op_name"] == "ARG_MAX"]
        self.logits_index = argmax[0]["inputs"][0] if argmax else self.output_index
        self.logits_quantization = next(t["quantization"] for t in self.preserved.get_tensor_details()
                                        if t["index"] == self.logits_index)
        self.has_argmax = bool(argmax)

    def _run(self, interpreter, image01: np.ndarray, index: int) -> np.ndarray:
        q = np.round(image01 * 255.0) - (128 if self.input_type == np.int8 else 0)
        interpreter.set_tensor(self.input_index, q[None].astype(self.input_type))
        interpreter.invoke()
        return interpreter.get_tensor(index)[0]

    def classes(self, image01: np.ndarray, builtin: bool = False) -> np.ndarray:
        output = self._run(self.builtin if builtin else self.default, image01, self.output_index)
        return output if self.has_argmax else output.argmax(-1)

    def probabilities(self, image01: np.ndarray) -> np.ndarray:
        raw = self._run(self.preserved, image01, self.logits_index).astype(np.float64)
        scale, zero_point = self.logits_quantization
        logits = scale * (raw - zero_point) if scale else raw
        exp = np.exp(logits - logits.max(-1, keepdims=True))
        return exp / exp.sum(-1, keepdims=True)


def compare(model, image01: np.ndarray, classes: np.ndarray, probabilities: np.ndarray) -> dict:
    """Arg-max agreement and max |probability difference| of a probabilities model with the interpreter."""
    ours = model(image01[None], training=False).numpy()[0].astype(np.float64)
    return {"argmax_agreement": round(float((ours.argmax(-1) == classes).mean()), 6),
            "max_probability_difference": float(f"{np.abs(ours - probabilities).max():.3g}")}


def summary(rows: list[dict], key: str, field: str | None) -> dict:
    """min / median / max of ``row[key][field]`` (``row[key]`` when ``field`` is None) over ``rows``."""
    values = [row[key] if field is None else row[key][field] for row in rows]
    return {"min": min(values), "median": round(statistics.median(values), 6), "max": max(values), "n": len(values)}


def measure_network(path: Path, images, log) -> dict:
    from gsal_tf.models.tflite_import import from_tflite

    faithful = from_tflite(path, output="probabilities")
    float_import = from_tflite(path, output="probabilities", quantize_activations=False)
    info = faithful.tflite_info
    interpreter = Interpreter(path)
    rows, seconds = [], {"float_import": [], "faithful_import": []}
    for group, name, image_path in images:
        image = network_input(image_path, info.input_size)
        classes = interpreter.classes(image)
        probabilities = interpreter.probabilities(image)
        row = {"group": group, "image": name,
               "builtin_kernels": round(float((interpreter.classes(image, builtin=True) == classes).mean()), 6)}
        for key, model in (("float_import", float_import), ("faithful_import", faithful)):
            start = time.perf_counter()
            row[key] = compare(model, image, classes, probabilities)
            seconds[key].append(time.perf_counter() - start)
        rows.append(row)
        log(f"  {group:12s} {name:28s} float {row['float_import']['argmax_agreement']:.4f} "
            f"faithful {row['faithful_import']['argmax_agreement']:.4f} "
            f"(max |dp| {row['faithful_import']['max_probability_difference']:.2g}); "
            f"built-in kernels vs default {row['builtin_kernels']:.4f}")
    groups = sorted({row["group"] for row in rows}, key=[r["group"] for r in rows].index)
    return {
        "input_size": list(info.input_size), "activation_type": info.activation_type,
        "quantized_activations_by_default": info.quantized_activations,
        "seconds_per_image_median": {k: round(statistics.median(v[1:] or v), 3) for k, v in seconds.items()},
        "summary": _summaries(rows, groups),
        "rows": rows,
    }


def _summaries(rows: list[dict], groups: list[str]) -> dict:
    """Per image group (and ``all``): min / median / max of each agreement and of the largest
    probability difference."""
    result = {}
    for group in [*groups, "all"]:
        chosen = [r for r in rows if group in ("all", r["group"])]
        result[group] = {
            **{f"{key}_argmax_agreement": summary(chosen, key, "argmax_agreement")
               for key in ("float_import", "faithful_import")},
            **{f"{key}_max_probability_difference": summary(chosen, key, "max_probability_difference")
               for key in ("float_import", "faithful_import")},
            "builtin_kernels_argmax_agreement": summary(chosen, "builtin_kernels", None),
        }
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", default=str(REAL),
                        help="the shared real data folder (default: ../shared/data/real beside the repository)")
    parser.add_argument("--camvid", type=int, default=12,
                        help="CamVid frames per split (val, test), evenly spaced (default 12)")
    parser.add_argument("--models", nargs="*", help="only these .tflite file names")
    parser.add_argument("--json", default=str(RESULT), help="where to write the results (default %(default)s)")
    args = parser.parse_args(argv)
    real = Path(args.real)
    if not (real / "models").is_dir() or not (real / "images").is_dir():
        print(f"skipped: the shared real data is not at {real} (it needs models/ and images/); "
              "pass --real DIR", file=sys.stderr)
        return 0

    import keras
    import tensorflow as tf

    from gsal_tf.models.tflite_import import inspect_tflite

    warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
    images = image_set(real, args.camvid)
    files = [p for p in sorted((real / "models").glob("*.tflite"))
             if (not args.models or p.name in args.models) and inspect_tflite(p).activation_type in EIGHT_BIT]
    report = {
        "machine": machine(), "tensorflow": tf.__version__, "keras": keras.__version__,
        "command": " ".join(["python benchmarks/tflite_agreement.py", *(argv if argv is not None else sys.argv[1:])]),
        "images": {"photo": "REAL/images (masks left out)", "cityscapes": "REAL/research-only/cityscapes_*",
                   "camvid": f"{args.camvid} evenly spaced frames per split of REAL/research-only/camvid "
                             "(statistics only)"},
        "networks": {},
    }
    started = time.perf_counter()
    for path in files:
        print(f"{path.name}: {len(images)} images", flush=True)
        report["networks"][path.name] = measure_network(path, images, lambda line: print(line, flush=True))
    report["seconds"] = round(time.perf_counter() - started, 1)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"machine: {report['machine']}\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
