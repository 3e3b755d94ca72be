"""Training DeepLabv3+ on a generated TextureMNIST folder (the models of the zoo).

Recipe (every value is a field of the ``[train]`` table of a TOML config, see ``configs/train``):

- loss: pixel-wise cross-entropy, each pixel weighted by its class weight
  ``w_k = (f_median / f_k) ** class_weight_power`` from the class frequencies ``f_k`` of the
  training split (power 0.5 by default: the background, ~80% of the pixels, would otherwise
  dominate and digits would be under-segmented), normalised so the mean pixel weight is 1;
- optimiser: AdamW with a linear warm-up then a cosine decay of the learning rate to 1% of its
  peak, over all steps of all epochs. The peak matters most: for the small DeepLabs of the zoo
  on TextureMNIST (8,000 samples, 3 epochs) 3e-3 reached 0.21 validation mIoU, 1e-2 reached 0.68;
- batch norm momentum 0.9 (see :mod:`gsal_tf.models.layers`): the moving statistics must settle
  within a short from-scratch run, or inference-mode predictions are wrong;
- validation: the last ``val_fraction`` of the training split is held out (never trained on);
  the checkpoint with the best validation mean IoU is kept — the test split is not looked at
  while training;
- the final metrics (mean IoU over the 11 classes, per-class IoU) are measured on the test split
  of an evaluation folder (by default the training folder; the zoo uses the unbiased test set).

- order: epoch ``e`` visits the training samples in the permutation
  ``numpy.random.default_rng([seed, e]).permutation(n)`` (the last ``n % batch_size`` dropped),
  a pure function of the seed and the epoch — not of how often a data pipeline was iterated;
- resumable: after every epoch the state needed to continue (current weights, optimizer
  variables, dropout seed states, history, best so far) is written to ``out_dir/resume/``; a
  repeated call with the same config and data continues after the last finished epoch and ends
  with the same weights as an uninterrupted run (``tests/test_training_resume.py``). A folder
  whose saved state came from another config or data starts over.

Outputs in ``out_dir``: ``model.keras`` (best checkpoint), ``model.weights.h5`` (same weights),
``history.json`` (per-epoch logs), ``metrics.json``; ``resume/`` exists only while training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
import time
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from gsal_tf import metrics
from gsal_tf.benchmark.classes import NUM_CLASSES
from gsal_tf.benchmark.evaluation import segmentation_confusion
from gsal_tf.benchmark.storage import load_samples, read_card
from gsal_tf.config import keyword_options, read_toml
from gsal_tf.errors import GsalInputError
from gsal_tf.models import ARCHITECTURES, build_architecture

__all__ = ["TrainConfig", "class_weights", "cosine_schedule", "evaluate_segmentation", "train", "epoch_order"]


@dataclasses.dataclass
class TrainConfig:
    """Training settings (see module docstring).

    ``architecture`` names an entry of :data:`gsal_tf.models.ARCHITECTURES` (the ``[model]``
    table's ``architecture`` key; ``preset``, its name before version 0.2, is read too) and
    ``model`` holds overrides of its :func:`gsal_tf.models.build_architecture` arguments.
    """

    architecture: str = "mobilenetv2-tiny"
    model: dict = dataclasses.field(default_factory=dict)
    epochs: int = 12
    batch_size: int = 32
    learning_rate: float = 1e-2
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.5
    class_weight_power: float = 0.5
    val_fraction: float = 0.05
    seed: int = 0
    expected_minutes: float = 0.0

    @classmethod
    def from_toml(cls, path, **overrides) -> "TrainConfig":
        raw = read_toml(path)
        table = dict(raw.get("train", {}))
        table["model"] = dict(raw.get("model", {}))
        for key in ("architecture", "preset"):
            if key in table["model"]:
                table["architecture"] = table["model"].pop(key)
        table.update({k: v for k, v in overrides.items() if v is not None})
        options = keyword_options(table, cls, f"[train] of {path}")
        return cls(**{**options, "model": table["model"]}).checked()

    def checked(self) -> "TrainConfig":
        if self.architecture not in ARCHITECTURES:
            raise GsalInputError(f"unknown architecture {self.architecture!r}; choose one of {sorted(ARCHITECTURES)}")
        for name, low in (("epochs", 1), ("batch_size", 1)):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < low:
                raise GsalInputError(f"{name} must be an integer >= {low}, got {getattr(self, name)!r}")
        if not self.learning_rate > 0:
            raise GsalInputError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.val_fraction < 0.5:
            raise GsalInputError(f"val_fraction must be in (0, 0.5), got {self.val_fraction}")
        return self


def class_weights(segmentation: np.ndarray, power: float, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Per-class pixel weights ``(f_median / f_k) ** power`` normalised to a mean pixel weight of 1.

    ``segmentation`` (N,H,W) int; returns float32 (K,). Classes absent from the data get weight 1.
    """
    counts = np.bincount(segmentation.reshape(-1).astype(np.int64), minlength=num_classes).astype(np.float64)
    freq = counts / counts.sum()
    present = freq > 0
    weights = np.ones(num_classes)
    weights[present] = (np.median(freq[present]) / freq[present]) ** power
    weights /= (weights * freq).sum()  # mean weight over pixels = 1
    return weights.astype(np.float32)


def cosine_schedule(peak: float, total_steps: int, warmup_steps: int):
    """Linear warm-up to ``peak`` then cosine decay to ``peak/100`` at ``total_steps``."""
    warmup_steps = max(1, min(warmup_steps, total_steps - 1))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / 100.0,
        decay_steps=max(1, total_steps - warmup_steps),
        alpha=0.01,
        warmup_target=peak,
        warmup_steps=warmup_steps,
    )


def evaluate_segmentation(model, images: np.ndarray, segmentation: np.ndarray, batch_size: int = 64) -> dict:
    """Mean IoU, per-class IoU and pixel accuracy of ``model`` on images (N,H,W,C), labels (N,H,W)."""
    confusion = segmentation_confusion(model, images, segmentation, batch_size)
    iou = metrics.iou_per_class(confusion)
    return {
        "mean_iou": float(np.nanmean(iou)),
        "iou_per_class": [None if np.isnan(v) else float(v) for v in iou],
        "pixel_accuracy": float(np.trace(confusion) / confusion.sum()),
        "samples": int(len(images)),
    }


def train(
    data_dir,
    out_dir,
    config: TrainConfig,
    eval_dir=None,
    on_epoch_end: Callable[[int, dict], None] | None = None,
    on_batch_end: Callable[[int], None] | None = None,
) -> dict:
    """Train a DeepLabv3+ on ``data_dir`` (a TextureMNIST folder); return the final metrics.

    ``on_epoch_end(epoch, logs)`` and ``on_batch_end(batch)`` let a caller display progress.
    """
    config.checked()
    out_dir = Path(out_dir)
    keras.utils.set_random_seed(config.seed)
    card = read_card(data_dir)
    split = _training_split(data_dir, config)
    weights = class_weights(split.y_train, config.class_weight_power)
    steps_per_epoch = len(split.x_train) // config.batch_size
    schedule = cosine_schedule(config.learning_rate, steps_per_epoch * config.epochs, int(config.warmup_epochs * steps_per_epoch))

    model = build_architecture(config.architecture, input_shape=split.x_train.shape[1:], num_classes=NUM_CLASSES, **config.model)
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=schedule, weight_decay=config.weight_decay),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        weighted_metrics=[],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    best_weights = out_dir / "model.weights.h5"
    checkpoint = _BestByValidation(split.x_val, split.y_val, schedule, best_weights, on_epoch_end, on_batch_end,
                                   _fingerprint(config, split), accepted=(_card_fingerprint(config, card, split),))
    first_epoch = checkpoint.resume(model)
    if first_epoch < config.epochs:
        dataset = _epoch_batches(split.x_train, split.y_train, weights, config, first_epoch)
        model.fit(dataset, epochs=config.epochs, initial_epoch=first_epoch, steps_per_epoch=steps_per_epoch,
                  verbose=0, shuffle=False, callbacks=[checkpoint])  # the order is epoch_order's

    model.load_weights(best_weights)
    model.save(out_dir / "model.keras")
    eval_dir = Path(eval_dir) if eval_dir else Path(data_dir)
    test = load_samples(eval_dir, "test")
    result = evaluate_segmentation(model, test["image"], test["segmentation"].astype(np.int32))
    metrics = {
        "architecture": config.architecture,
        "model": config.model,
        "parameters": int(model.count_params()),
        "train_data": str(data_dir),
        "train_card": card.get("config", card),
        "train_samples": int(len(split.x_train)),
        "val_samples": int(len(split.x_val)),
        "eval_data": str(eval_dir),
        "best_epoch": checkpoint.best_epoch,
        "best_val_mean_iou": checkpoint.best_val_mean_iou,
        "test": result,
        "class_weights": weights.tolist(),
        "train_seconds": round(checkpoint.seconds, 1),
        "config": dataclasses.asdict(config),
    }
    (out_dir / "history.json").write_text(json.dumps(checkpoint.history, indent=2))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    for name in ("resume", "resume.old", "resume.part"):
        shutil.rmtree(out_dir / name, ignore_errors=True)
    return metrics


@dataclasses.dataclass
class _Split:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def _training_split(data_dir, config: TrainConfig) -> _Split:
    """The training split of ``data_dir``, its last ``val_fraction`` held out for validation."""
    samples = load_samples(data_dir, "train")
    n_total = len(samples["image"])
    n_val = max(1, int(round(n_total * config.val_fraction)))
    if n_total - n_val < config.batch_size:
        raise GsalInputError(f"{data_dir} has {n_total} training samples: too few for batch_size {config.batch_size}")
    labels = samples["segmentation"].astype(np.int32)
    return _Split(samples["image"][:-n_val], labels[:-n_val], samples["image"][-n_val:], labels[-n_val:])


def epoch_order(n: int, batch_size: int, seed: int, epoch: int) -> np.ndarray:
    """Sample indices of one epoch, (n // batch_size, batch_size) int64: the permutation
    ``default_rng([seed, epoch]).permutation(n)`` cut into batches, the last ``n % batch_size``
    dropped. A pure function: a resumed run visits the samples in the order an uninterrupted run would."""
    steps = n // batch_size
    return np.random.default_rng([seed, epoch]).permutation(n)[: steps * batch_size].reshape(steps, batch_size)


def _epoch_batches(images: np.ndarray, labels: np.ndarray, weights: np.ndarray, config: TrainConfig, first_epoch: int):
    """Batches ``(x, y, per-pixel weight)`` of epochs ``first_epoch .. config.epochs - 1`` in
    :func:`epoch_order`, from images (N,H,W,C) and labels (N,H,W) held in memory."""
    order = np.concatenate([epoch_order(len(images), config.batch_size, config.seed, e) for e in range(first_epoch, config.epochs)])
    x, y, table = tf.constant(images), tf.constant(labels), tf.constant(weights)

    def batch(indices):
        labels_batch = tf.gather(y, indices)
        return tf.gather(x, indices), labels_batch, tf.gather(table, labels_batch)

    return tf.data.Dataset.from_tensor_slices(order).map(batch, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _fingerprint(config: TrainConfig, split: "_Split") -> str:
    """What a saved training state must match to be resumed: the training config and the data
    itself (sha256 of the training and validation arrays: 0.46 s for 24,000 64x64 images). Not the data
    card: it holds the generation time, the MNIST path and shard hashes of zip files stamped with
    their write time, so the same data regenerated on another machine would not match."""
    data = hashlib.sha256()
    for array in (split.x_train, split.y_train, split.x_val, split.y_val):
        data.update(str((array.shape, array.dtype.str)).encode())
        data.update(np.ascontiguousarray(array).data)
    text = json.dumps({"config": dataclasses.asdict(config), "data": data.hexdigest()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _card_fingerprint(config: TrainConfig, card: dict, split: "_Split") -> str:
    """The fingerprint of states saved by earlier versions (config, data card, split ends): still
    resumed on the machine that wrote them; the next saved state carries :func:`_fingerprint`."""
    text = json.dumps({"config": dataclasses.asdict(config), "card": card, "train": len(split.x_train), "val": len(split.x_val),
                       "first": float(split.x_train[0].sum()), "last": float(split.x_train[-1].sum())}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class _BestByValidation(keras.callbacks.Callback):
    """Keras callback: validation mean IoU after every epoch; saves the best weights to ``path``.

    Keeps ``history`` (one row per epoch; also written to ``history.json`` beside ``path`` after
    every epoch), ``best_epoch``, ``best_val_mean_iou`` and the training time ``seconds`` (summed
    over resumed sessions); forwards progress to ``on_epoch_end(epoch, row)`` / ``on_batch_end(batch)``.
    After every epoch it saves the state to continue from (``resume_dir``, see :meth:`resume`).
    """

    def __init__(self, x_val, y_val, schedule, path: Path, on_epoch_end=None, on_batch_end=None, fingerprint: str = "",
                 accepted: tuple = ()):
        super().__init__()
        self.x_val, self.y_val, self.schedule, self.path = x_val, y_val, schedule, path
        self.on_epoch, self.on_batch = on_epoch_end, on_batch_end
        self.fingerprint = fingerprint  # written with every saved state
        self.accepted = {fingerprint, *accepted}  # resumed from
        self.resume_dir = path.parent / "resume"
        self.history: list[dict] = []
        self.best_epoch, self.best_val_mean_iou = -1, -math.inf
        self.seconds = 0.0
        self._before = 0.0  # seconds trained in earlier sessions of a resumed run

    def resume(self, model) -> int:
        """Restore a saved state of the same run into ``model`` (compiled); return the first epoch
        still to train (0 without a usable state)."""
        # A kill between the two renames of _save_state leaves only the previous state, as resume.old.
        folder = next((f for f in (self.resume_dir, self.resume_dir.with_name("resume.old")) if (f / "state.json").is_file()), None)
        if folder is None:
            return 0
        state = json.loads((folder / "state.json").read_text())
        if state.get("fingerprint") not in self.accepted or not self.path.is_file():
            shutil.rmtree(folder)  # another config or data, or the best epoch's weights are missing: start over
            return 0
        # Built first, the optimizer takes its saved variables from the weights file too (else
        # Keras warns that it skips them); optimizer.npz then sets them and the dropout seeds.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(folder / "model.weights.h5")
        saved = np.load(folder / "optimizer.npz")
        for i, variable in enumerate(_state_variables(model)):
            variable.assign(saved[f"v{i}"])
        self.history = state["history"]
        self.best_epoch, self.best_val_mean_iou = state["best_epoch"], state["best_val_mean_iou"]
        self._before = self.seconds = state["seconds"]
        return int(state["next_epoch"])

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_end(self, logs=None):
        self.seconds = self._elapsed()

    def _elapsed(self) -> float:
        return self._before + time.perf_counter() - self._start

    def _save_state(self, next_epoch: int) -> None:
        """The weights, optimizer and dropout-seed variables and the history, written to a fresh
        folder then swapped in: a kill leaves the previous state or the new one, never half of one."""
        tmp = self.resume_dir.with_name("resume.part")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        self.model.save_weights(tmp / "model.weights.h5")
        np.savez(tmp / "optimizer.npz", **{f"v{i}": np.asarray(v) for i, v in enumerate(_state_variables(self.model))})
        state = {"fingerprint": self.fingerprint, "next_epoch": next_epoch, "history": self.history,
                 "best_epoch": self.best_epoch, "best_val_mean_iou": self.best_val_mean_iou, "seconds": self._elapsed()}
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        old = self.resume_dir.with_name("resume.old")
        shutil.rmtree(old, ignore_errors=True)
        if self.resume_dir.exists():
            self.resume_dir.rename(old)
        tmp.rename(self.resume_dir)
        shutil.rmtree(old, ignore_errors=True)

    def on_train_batch_end(self, batch, logs=None):
        if self.on_batch:
            self.on_batch(batch)

    def on_epoch_end(self, epoch, logs=None):
        val = evaluate_segmentation(self.model, self.x_val, self.y_val)
        row = {"epoch": epoch + 1, "loss": float(logs["loss"]), "val_mean_iou": val["mean_iou"], "seconds": self._elapsed()}
        row["learning_rate"] = float(self.schedule(self.model.optimizer.iterations))
        if val["mean_iou"] > self.best_val_mean_iou:
            self.best_epoch, self.best_val_mean_iou = epoch + 1, val["mean_iou"]
            self.model.save_weights(self.path)
        row["best"] = self.best_epoch == epoch + 1
        self.history.append(row)
        # The history so far, on disk after every epoch: a long run can be watched, and what a
        # killed run learnt is not lost (the best weights are saved beside it).
        history = self.path.with_name("history.json")
        history.with_suffix(".part").write_text(json.dumps(self.history, indent=2))
        history.with_suffix(".part").replace(history)
        self._save_state(epoch + 1)
        if self.on_epoch:
            self.on_epoch(epoch + 1, row)


def _state_variables(model) -> list:
    """Training state beyond the layer weights: the optimizer's variables (step count, moments)
    and the dropout layers' seed-generator states, in a fixed order."""
    seeds = [layer.seed_generator.state for layer in model._flatten_layers() if getattr(layer, "seed_generator", None) is not None]
    return list(model.optimizer.variables) + seeds
