"""Speed of ``GridSaliency.explain`` against its floor and against an eager loop, in one run.

(a) explain / floor — the floor is ``iterations`` calls of ONE compiled step (perturb, forward,
    backward, Adam update of the mask) of the same model on the same batch: what the
    optimisation cannot avoid. explain also runs the first forward pass f(x), with the default
    target the start-level search (the forward at M = 0 and five bisection forwards) and the
    per-step target check, the final check (one forward of N images), with pruning its threshold
    search (four forwards) and input validation, and stops each request once its mask has settled
    (it may run fewer steps than the floor); target ≤ 1.10. explain and floor run in interleaved
    rounds (explain, floor, explain, floor, ...), so a change in the machine's load hits both;
    the report gives the ratio of their medians, each round's ratio, and the share of the method's
    fixed forward passes (a compiled forward of the batch times their number).
(b) explain / eager — the same optimisation as a plain eager GradientTape loop.
(c) explanations per second at batch 1, 8 and 32.

Run: python benchmarks/bench_explain.py [--architecture mobilenetv2-tiny] [--iterations 50] [--json out.json]
Real networks at real sizes: ``--tflite FILE.tflite`` (imported with ``gs.models.from_tflite``, its
input size), e.g. ``--tflite deeplabv3_mnv2_pascal_quant.tflite --iterations 100 --ratio-batch 1
--batches 1 --repeats 1 --no-eager``; the report adds the process's peak memory after the first
explanation (``ru_maxrss``).
Each figure is the median of ``--repeats`` timed runs after one warm-up (tracing excluded).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

import gsal_tf as gs  # noqa: E402
from _common import finish, machine, make_inputs  # noqa: E402
from gsal_tf.saliency import objective as obj  # noqa: E402
from gsal_tf.saliency import optim  # noqa: E402
from gsal_tf.saliency.masks import upsample_grid  # noqa: E402
from gsal_tf.saliency.perturbation import perturb  # noqa: E402


def step_functions(model, explainer, images, requests, class_ids):
    """One optimisation step (compiled and eager versions) with the explainer's exact math."""
    height, width = images.shape[1:3]
    x = tf.constant(images)
    r = tf.constant(requests)
    base = tf.zeros_like(x)
    c = tf.constant(class_ids)
    lam, lr = tf.constant(explainer.lam), tf.constant(explainer.learning_rate)

    def class_score(inp):
        probs = model(inp, training=False)
        return tf.reduce_sum(probs * tf.one_hot(c, probs.shape[-1])[:, None, None, :], -1)

    score = class_score(x)

    def step(grid, m, v, t):
        with tf.GradientTape() as tape:
            tape.watch(grid)
            xp = perturb(x, upsample_grid(grid, (height, width), explainer.upsampling), r, base, explainer.mode)
            loss = obj.objective(grid, score, class_score(xp), r, lam)
            total = tf.reduce_sum(loss)
        g = tape.gradient(total, grid)
        grid, (m, v) = optim.adam_step(grid, g, (m, v), t, lr)
        return grid, m, v

    return tf.function(step), step


#: The floor's start value: its time does not depend on it (``init="auto"`` is searched in explain).
FLOOR_START = 1.0


def time_loop(step, n, gh, gw, iterations, init):
    grid = tf.fill([n, gh, gw], init)
    m, v = optim.init_state(grid)
    start = time.perf_counter()
    for t in range(1, iterations + 1):
        grid, m, v = step(grid, m, v, tf.constant(t, tf.float32))
    grid.numpy()
    return time.perf_counter() - start


def median_time(fn, repeats):
    fn()  # warm-up: tracing and first-call costs excluded
    return statistics.median(fn_time(fn) for _ in range(repeats))


def interleaved_times(fns, repeats):
    """Median seconds of each function over ``repeats`` rounds that call them in turn (one warm-up
    call each first), and every round's times."""
    for fn in fns:
        fn()
    rounds = [[fn_time(fn) for fn in fns] for _ in range(repeats)]
    return [statistics.median(r[i] for r in rounds) for i in range(len(fns))], rounds


def fixed_forwards(explainer) -> int:
    """Forward passes of the batch that ``explain`` runs besides its steps: f(x), and with a target
    the forward at M = 0, the start-level search, the final check and the pruning search."""
    from gsal_tf.saliency import loop

    if explainer.target <= 0:
        return 2  # f(x); the final mask and M = 0 in one forward of 2N
    return 1 + 1 + (loop.SEARCH_STEPS if explainer.init == "auto" else 0) + 1 + (loop.PRUNE_STEPS if explainer.prune else 0)


def fn_time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architecture", default="mobilenetv2-tiny")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ratio-batch", type=int, default=8, help="batch size for ratios (a) and (b)")
    parser.add_argument("--batches", default="1,8,32")
    parser.add_argument("--json", default=None)
    parser.add_argument("--tflite", default=None, help="a TFLite segmentation network instead of --architecture")
    parser.add_argument("--no-eager", action="store_true", help="skip (b), the slow eager loop")
    args = parser.parse_args()

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.tflite:
        model = gs.models.from_tflite(args.tflite, output="probabilities")
        shape = tuple(model.input_shape[1:])
        name = f"{Path(args.tflite).name} (from_tflite)"
    else:
        shape = (64, 64, 1)
        model = gs.models.build_architecture(args.architecture, input_shape=shape, num_classes=11)
        name = f"DeepLabv3+ {args.architecture}"
    explainer = gs.GridSaliency(model, grid_size=(8, 8), iterations=args.iterations, batch_size=64)
    gh, gw = explainer.grid_size

    images, requests, classes = make_inputs(args.ratio_batch, shape)
    compiled, eager = step_functions(model, explainer, images, requests, classes)
    explainer.explain(images, requests, classes)  # first explanation: tracing, memory high-water mark
    peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    forward = tf.function(lambda x: model(x, training=False))
    x_batch = tf.constant(images)
    (t_explain, t_floor, t_forward), rounds = interleaved_times([
        lambda: explainer.explain(images, requests, classes),
        lambda: time_loop(compiled, args.ratio_batch, gh, gw, args.iterations, FLOOR_START),
        lambda: forward(x_batch).numpy(),
    ], args.repeats)
    n_fixed = fixed_forwards(explainer)
    t_eager = None if args.no_eager else median_time(
        lambda: time_loop(eager, args.ratio_batch, gh, gw, args.iterations, FLOOR_START), max(1, args.repeats - 1))

    throughput = {}
    for b in [int(v) for v in args.batches.split(",")]:
        xi, ri, ci = make_inputs(b, shape, seed=b)
        t = median_time(lambda: explainer.explain(xi, ri, ci), args.repeats)
        throughput[b] = b / t

    report = {
        "model": f"{name}, input {shape}, {model.count_params()} parameters",
        "iterations": args.iterations,
        "grid": [gh, gw],
        "ratio_batch": args.ratio_batch,
        "explain_s": t_explain,
        "floor_s": t_floor,
        "eager_s": t_eager,
        "explain_over_floor": t_explain / t_floor,
        "explain_over_floor_rounds": [r[0] / r[1] for r in rounds],
        "forward_s": t_forward,
        "fixed_forwards": n_fixed,
        "explain_over_floor_plus_fixed_forwards": t_explain / (t_floor + n_fixed * t_forward),
        "explain_over_eager": None if t_eager is None else t_explain / t_eager,
        "explanations_per_s": throughput,
        "peak_rss_increase_mb_after_first_explanation": peak_mb,
        "machine": machine(),
    }
    print(f"model: {report['model']}; {args.iterations} iterations, grid {gh}x{gw}, batch {args.ratio_batch}")
    print(f"(a) explain {t_explain:.3f} s / floor {t_floor:.3f} s = {report['explain_over_floor']:.3f}  (target <= 1.10); "
          f"rounds {', '.join(f'{v:.3f}' for v in report['explain_over_floor_rounds'])}")
    print(f"    the method's {n_fixed} fixed forward passes: {n_fixed * t_forward:.3f} s "
          f"({n_fixed * t_forward / t_floor:.1%} of the floor); explain / (floor + them) = "
          f"{report['explain_over_floor_plus_fixed_forwards']:.3f}")
    if t_eager is not None:
        print(f"(b) explain {t_explain:.3f} s / eager {t_eager:.3f} s = {report['explain_over_eager']:.3f}")
    for b, v in throughput.items():
        print(f"(c) batch {b:>3}: {v:.2f} explanations/s")
    print(f"peak memory: +{peak_mb:.0f} MB (process maximum RSS after the first explanation, over the start)")
    finish(report, args.json)


if __name__ == "__main__":
    main()
