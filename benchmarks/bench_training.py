"""Training input pipeline: does the resumable epoch order cost training speed?

``gsal_tf.benchmark.training`` feeds each epoch in ``epoch_order`` (a NumPy permutation per seed
and epoch, batches gathered from arrays held in memory) so that a killed run resumes exactly. This
times, in one process and interleaved, ``fit`` on the zoo's MobileNetV2 recipe (64x64, batch 32)
for one epoch of ``--steps`` steps fed three ways:

- ``epoch_order``: the package's pipeline (``training._epoch_batches``);
- ``tf_shuffle``: the pipeline before it (``Dataset.shuffle(reshuffle_each_iteration) .batch .map``);
- ``floor``: the same batches built beforehand, so the pipeline costs nothing.

Target: epoch_order / floor <= 1.05. Run: python benchmarks/bench_training.py [--steps 60] [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import finish, machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    from gsal_tf.benchmark import training
    from gsal_tf.benchmark.classes import NUM_CLASSES
    from gsal_tf.models import build_architecture

    config = training.TrainConfig.from_toml(ROOT / "configs" / "train" / "mobilenetv2.toml", epochs=1)
    n = args.steps * config.batch_size
    rng = np.random.default_rng(0)
    images = rng.random((n, 64, 64, 1), dtype=np.float32)
    labels = rng.integers(0, NUM_CLASSES, (n, 64, 64)).astype(np.int32)
    weights = training.class_weights(labels, config.class_weight_power)
    table = tf.constant(weights)

    def tf_shuffle():
        return (tf.data.Dataset.from_tensor_slices((images, labels))
                .shuffle(n, seed=0, reshuffle_each_iteration=True).batch(config.batch_size, drop_remainder=True)
                .map(lambda x, y: (x, y, tf.gather(table, y)), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    order = training.epoch_order(n, config.batch_size, config.seed, 0)
    ready = (images[order], labels[order], weights[labels[order]])

    feeds = {
        "epoch_order": lambda: training._epoch_batches(images, labels, weights, config, 0),
        "tf_shuffle": tf_shuffle,
        "floor": lambda: tf.data.Dataset.from_tensor_slices(ready),
    }
    model = build_architecture(config.architecture, input_shape=(64, 64, 1), num_classes=NUM_CLASSES, **config.model)
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(), weighted_metrics=[])
    model.fit(feeds["floor"](), epochs=1, steps_per_epoch=args.steps, verbose=0)  # trace once

    times: dict[str, list[float]] = {name: [] for name in feeds}
    for _ in range(args.reps):
        for name, feed in feeds.items():
            dataset = feed()
            start = time.perf_counter()
            model.fit(dataset, epochs=1, steps_per_epoch=args.steps, verbose=0)
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    report = {
        "machine": machine(),
        "steps": args.steps, "batch_size": config.batch_size, "reps": args.reps,
        "seconds": times, "median_seconds": median,
        "ms_per_step": {name: 1000 * m / args.steps for name, m in median.items()},
        "epoch_order_over_floor": median["epoch_order"] / median["floor"],
        "tf_shuffle_over_floor": median["tf_shuffle"] / median["floor"],
    }
    for name, m in median.items():
        print(f"{name:12s} {1000 * m / args.steps:7.1f} ms/step  (median of {args.reps})")
    print(f"epoch_order / floor = {report['epoch_order_over_floor']:.3f} (target <= 1.05); "
          f"tf_shuffle / floor = {report['tf_shuffle_over_floor']:.3f}")
    finish(report, args.json)


if __name__ == "__main__":
    main()
