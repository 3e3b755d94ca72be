"""Speed of the gradient comparison methods' ``explain`` against their own floor, in one run.

The floor of a method is ``n`` calls of ONE compiled forward+backward pass (the request score
and its gradient with respect to the input) of the same model on the same batch: ``n = 1`` for
vanilla gradients, ``samples`` for SmoothGrad, ``steps`` for integrated gradients — what the
method cannot avoid. ``explain`` also validates the input, builds the noise or the path, and
runs one extra forward pass for the reported scores (N images for SmoothGrad, 2N for IG); its
samples/steps run in a ``tf.while_loop`` inside one graph, so the ratio can be below 1 (no
Python dispatch per pass).

Run: python benchmarks/bench_attributions.py [--architecture mobilenetv2-tiny] [--batch 8] [--json out.json]
Each figure is the median of ``--repeats`` timed runs after one warm-up (tracing excluded);
explain and its floor are timed alternately, so a change of machine load affects both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import gsal_tf as gs  # noqa: E402
from _common import finish, machine, make_inputs  # noqa: E402


def compiled_pass(model, images, requests, class_ids):
    """One compiled forward+backward pass: the request score's gradient w.r.t. the input."""
    r = tf.constant(requests)
    c = tf.constant(class_ids)

    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            probs = model(x, training=False)
            picked = tf.reduce_sum(probs * tf.one_hot(c, probs.shape[-1])[:, None, None, :], -1)
            score = tf.reduce_sum(picked * r, axis=[1, 2]) / tf.reduce_sum(r, axis=[1, 2])
            total = tf.reduce_sum(score)
        return tape.gradient(total, x)

    return step


def floor_loop(step, x, n):
    start = time.perf_counter()
    out = None
    for _ in range(n):
        out = step(x)
    out.numpy()
    return time.perf_counter() - start


def paired_medians(fn_a, fn_b, repeats):
    """Median times of two functions, timed alternately after one warm-up each (tracing excluded).

    Alternating keeps a change of machine load (other processes) from biasing the ratio.
    """
    fn_a()
    fn_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        for fn, times in ((fn_a, times_a), (fn_b, times_b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(times_a), statistics.median(times_b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mobilenetv2-tiny")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--samples", type=int, default=25, help="SmoothGrad samples")
    parser.add_argument("--steps", type=int, default=32, help="integrated gradients steps")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    shape = (64, 64, 1)
    model = gs.models.build_architecture(args.architecture, input_shape=shape, num_classes=11)
    images, requests, classes = make_inputs(args.batch, shape)
    step = compiled_pass(model, images, requests, classes)
    x = tf.constant(images)

    methods = [
        ("VanillaGradients", gs.attributions.VanillaGradients(model, batch_size=args.batch), 1),
        ("SmoothGrad", gs.attributions.SmoothGrad(model, samples=args.samples, batch_size=args.batch), args.samples),
        ("IntegratedGradients", gs.attributions.IntegratedGradients(model, steps=args.steps, batch_size=args.batch), args.steps),
    ]
    rows = []
    for name, explainer, passes in methods:
        t_explain, t_floor = paired_medians(
            lambda: explainer.explain(images, requests, classes), lambda: floor_loop(step, x, passes), args.repeats
        )
        rows.append(
            {
                "method": name,
                "passes": passes,
                "explain_s": t_explain,
                "floor_s": t_floor,
                "explain_over_floor": t_explain / t_floor,
                "explanations_per_s": args.batch / t_explain,
            }
        )

    report = {
        "model": f"DeepLabv3+ {args.architecture}, input {shape}, {model.count_params()} parameters",
        "batch": args.batch,
        "repeats": args.repeats,
        "methods": rows,
        "machine": machine(),
    }
    print(f"model: {report['model']}; batch {args.batch}, median of {args.repeats}")
    print(f"{'method':<20} {'passes':>6} {'explain s':>10} {'floor s':>10} {'ratio':>7} {'expl/s':>8}")
    for r in rows:
        print(
            f"{r['method']:<20} {r['passes']:>6} {r['explain_s']:>10.3f} {r['floor_s']:>10.3f} "
            f"{r['explain_over_floor']:>7.3f} {r['explanations_per_s']:>8.2f}"
        )
    finish(report, args.json)


if __name__ == "__main__":
    main()
