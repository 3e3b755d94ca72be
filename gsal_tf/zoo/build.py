"""Building the zoo: generate data, train, measure, and record each model in the manifest.

A zoo plan (``configs/zoo/zoo.toml``) lists ``[[model]]`` entries: ``name``, ``data`` (a
benchmark config), ``train`` (a training config), ``description``, and optionally ``epochs`` /
``seed`` overriding the training config. For each entry
:func:`build_model`:

1. generates its TextureMNIST folder and the folder of its unbiased counterpart (the same
   config with ``bias.strength = "none"``: same image law, sizes and test seed) — each once per
   distinct config, in a folder named by its hash, reused by later entries
   (:func:`gsal_tf.benchmark.generate_once`);
2. trains the network (:func:`gsal_tf.benchmark.training.train`, best checkpoint by validation mIoU);
3. measures mean IoU over the 11 classes and the bias digit's IoU on the *unbiased* test split;
4. copies the weights into the zoo folder and writes the entry (with sha256, the configs and the
   command that reproduces it) into ``models.toml``.

An entry whose weights are already in the zoo is skipped unless ``force``.

A plan entry with ``tflite = FILE`` instead of ``data`` / ``train`` is a pretrained network
imported from a TensorFlow Lite release: :mod:`gsal_tf.zoo.build_tflite` builds it
(``configs/zoo/real.toml``).

A plan may also name the demo sample (``[demo] data = "<benchmark config>"``):
:func:`write_demo_sample` writes ``samples/demo.npz`` (the sample ``gsal explain --demo``
explains) from that config's test split, so the shipped sample is reproducible too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from gsal_tf import benchmark
from gsal_tf.benchmark.classes import CLASS_NAMES
from gsal_tf.benchmark.training import TrainConfig, train
from gsal_tf.config import read_toml
from gsal_tf.errors import GsalInputError
from gsal_tf.models import ARCHITECTURES, deeplabv3plus
from gsal_tf.models import presets
from gsal_tf.zoo import demo

__all__ = [
    "PREPROCESSING", "TRAIN_OVERRIDES", "read_plan", "build_model", "manifest_record", "export_weights",
    "demo_config", "write_demo_sample",
]

PREPROCESSING = "grayscale 64x64 float32 in [0, 1] (the model rescales to [-1, 1] itself)"


#: Keys a plan entry may set to override its training config (recorded in the manifest).
TRAIN_OVERRIDES = ("epochs", "seed")


def read_plan(path) -> list[dict]:
    """The ``[[model]]`` entries of a zoo plan: trained ones with name, data, train and
    description; imported ones (``tflite = FILE``) checked by
    :func:`gsal_tf.zoo.build_tflite.check_entry` (class list resolved, ``[sample]`` attached)."""
    from gsal_tf.zoo import build_tflite

    raw = read_toml(path)
    plan = []
    for entry in raw.get("model", []):
        if build_tflite.is_tflite_entry(entry):
            plan.append(build_tflite.check_entry(entry, raw, path))
            continue
        missing = {"name", "data", "train"} - set(entry)
        if missing:
            raise GsalInputError(f"zoo plan {path}: entry {entry.get('name', '?')!r} lacks {', '.join(sorted(missing))}")
        plan.append(entry)
    return plan


def build_model(
    entry: dict,
    mnist,
    work_dir,
    zoo_dir,
    root=".",
    n_train: int | None = None,
    force: bool = False,
    on_epoch: Callable[[int, dict], None] | None = None,
    log: Callable[[str], None] = print,
    plan: str = "configs/zoo/zoo.toml",
) -> dict | None:
    """Build one zoo entry (see module docstring); return its manifest record, or None if skipped.

    ``plan`` is the plan file as the user named it: the record's rebuild command cites it.
    """
    root, work_dir, zoo_dir = Path(root), Path(work_dir), Path(zoo_dir)
    weights_name = f"{entry['name']}.weights.h5"
    if not force and entry["name"] in presets.manifest_records(zoo_dir) and (zoo_dir / weights_name).is_file():
        log(f"{entry['name']}: already in the zoo, skipped (use force to rebuild)")
        return None

    data_cfg = benchmark.load_config(root / entry["data"], **({"n_train": n_train} if n_train else {}))
    data_dir = _generate(data_cfg, mnist, work_dir, log)
    eval_dir = _generate(benchmark.unbiased_counterpart(data_cfg), mnist, work_dir, log)
    overrides = {k: entry[k] for k in TRAIN_OVERRIDES if k in entry}
    train_cfg = TrainConfig.from_toml(root / entry["train"], **overrides)
    run_dir = work_dir / entry["name"]
    log(f"{entry['name']}: training {train_cfg.architecture} for {train_cfg.epochs} epochs on {data_dir.name}")
    metrics = train(data_dir, run_dir, train_cfg, eval_dir=eval_dir, on_epoch_end=on_epoch)

    zoo_dir.mkdir(parents=True, exist_ok=True)
    export_weights(_build_args(train_cfg), (data_cfg.image_size, data_cfg.image_size, 1), run_dir / "model.keras", zoo_dir / weights_name)
    record = manifest_record(entry, data_cfg, train_cfg, metrics, zoo_dir / weights_name, data_dir, n_train, plan)
    (run_dir / "zoo_record.json").write_text(json.dumps(record, indent=2))
    # Re-read the manifest: another build may have finished while this one trained.
    presets.write_manifest(zoo_dir / presets.MANIFEST, {**presets.manifest_records(zoo_dir), entry["name"]: record})
    return record


def manifest_record(entry: dict, data_cfg, train_cfg, metrics: dict, weights: Path, data_dir: Path, n_train: int | None,
                    plan: str = "configs/zoo/zoo.toml") -> dict:
    """The manifest record of a trained zoo entry: how to rebuild it, what it measured, how it was
    trained (configs, overrides, command) and, for a biased model, its bias."""
    test = metrics["test"]
    overrides = {k: entry[k] for k in TRAIN_OVERRIDES if k in entry}
    record = {
        "name": entry["name"],
        "kind": "deeplabv3plus",
        "description": entry.get("description", ""),
        "dataset": "TextureMNIST",
        "input_shape": [data_cfg.image_size, data_cfg.image_size, 1],
        "class_names": list(CLASS_NAMES),
        "preprocessing": PREPROCESSING,
        "weights": weights.name,
        "sha256": presets.sha256_of(weights),
        "url": "",
        "build": _build_args(train_cfg),
        "metrics": {
            "mean_iou": round(test["mean_iou"], 4),
            "iou_per_class": [round(v, 4) if v is not None else -1.0 for v in test["iou_per_class"]],
            "measured_on": f"unbiased test split ({test['samples']} samples, test_seed {data_cfg.test_seed})",
            "best_val_mean_iou": round(metrics["best_val_mean_iou"], 4),
            "best_epoch": metrics["best_epoch"],
            "train_minutes": round(metrics["train_seconds"] / 60, 1),
            "parameters": metrics["parameters"],
        },
        "training": {
            "data_config": entry["data"],
            "train_config": entry["train"],
            **({"train_overrides": overrides} if overrides else {}),
            "train_samples": metrics["train_samples"],
            "mnist": "MNIST in Keras' mnist.npz layout (10,000 digits: 8,000 train / 2,000 test)",
            "command": f"gsal zoo build --plan {plan} --mnist MNIST.npz --only {entry['name']}"
            + (f" --n-train {n_train}" if n_train else ""),
        },
    }
    bias = data_cfg.bias
    if bias.strength != "none":  # an unbiased model has no bias digit (its config's digit is unused)
        digit_iou = test["iou_per_class"][bias.digit]
        record["metrics"]["bias_digit_iou"] = round(digit_iou, 4) if digit_iou is not None else -1.0
        texture = benchmark.read_card(data_dir)["bias_texture"]["name"]
        record["bias"] = {"digit": bias.digit, "texture": texture, "strength": bias.strength, "tiles": data_cfg.tiles}
    return record


def export_weights(build: dict, input_shape, trained, target: Path) -> None:
    """Write only the model's weights (no optimiser state) of ``trained`` to ``target``.

    A checkpoint saved during training also holds AdamW's two moment buffers (3x the size);
    the zoo ships a fresh, uncompiled copy of the network with the trained weights loaded.
    """
    args = dict(build)
    model = deeplabv3plus(args.pop("backbone"), input_shape, len(CLASS_NAMES), **args)
    model.load_weights(trained)
    model.save_weights(target)


def _generate(cfg, mnist, work_dir: Path, log) -> Path:
    """The dataset of ``cfg`` under ``work_dir``, generated once (folder named by the config's hash)."""
    folder = work_dir / benchmark.data_dir_name(cfg)
    return benchmark.generate_once(cfg, folder, mnist=mnist, on_generate=lambda f: log(f"generating {f.name}"))


def _build_args(train_cfg) -> dict:
    args = {**ARCHITECTURES[train_cfg.architecture], **train_cfg.model}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in args.items()}


def demo_config(plan_path) -> str | None:
    """The benchmark config named by the plan's ``[demo]`` table, or None."""
    demo = read_toml(plan_path).get("demo", {})
    if demo and "data" not in demo:
        raise GsalInputError(f"zoo plan {plan_path}: [demo] needs data = \"<benchmark config>\"")
    return demo.get("data")


def write_demo_sample(data_config, mnist, zoo_dir, root=".") -> Path:
    """Write ``zoo_dir/samples/demo.npz``: the first biased test sample of the config's bias digit
    whose bias texture lies in the top tile.

    Keys: ``image`` (H,W,1) float32 in [0,1], ``digit_mask`` and ``biased_tile_mask`` (H,W)
    float32, ``digit`` and ``biased_tile`` (0 = top) int64. Deterministic: the test split depends
    only on the config (its ``test_seed``) and MNIST.
    """
    cfg = benchmark.load_config(Path(root) / data_config)
    if cfg.bias.strength == "none":
        raise GsalInputError(f"{data_config}: the demo sample needs a biased config (bias.strength weak or strong)")
    samples = benchmark.TextureMNIST(cfg, mnist=mnist).samples("test")
    half = cfg.image_size // 2
    top = samples["biased_tile_mask"][:, :half].mean(axis=(1, 2)) > 0.5
    candidates = np.flatnonzero((samples["digit"] == cfg.bias.digit) & samples["is_biased"] & top)
    if not len(candidates):
        raise GsalInputError(f"{data_config}: no biased test sample of digit {cfg.bias.digit} with the bias texture on top")
    i = int(candidates[0])
    target = Path(zoo_dir) / demo.SAMPLE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.stem + ".part.npz")
    np.savez_compressed(
        tmp,
        image=samples["image"][i].astype(np.float32),
        digit_mask=samples["digit_mask"][i].astype(np.float32),
        biased_tile_mask=samples["biased_tile_mask"][i].astype(np.float32),
        digit=np.int64(samples["digit"][i]),
        biased_tile=np.int64(0),
    )
    tmp.replace(target)
    return target
