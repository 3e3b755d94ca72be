"""One image, one vs all intra-op threads: where does splitting each op over the cores pay?

For zoo networks of several input sizes, times one forward + backward pass of one image (the
work of one grid-saliency step) in fresh processes with ``TF_NUM_INTRAOP_THREADS=1`` and with
TensorFlow's default (all cores), interleaved; and the demo's 100-step explanation (warm) both
ways, with the largest saliency difference. The rule it backs: :data:`gsal_tf.threads.SMALL_INPUT_PIXELS`.

Run: python benchmarks/bench_threads.py [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import finish, machine  # noqa: E402

# Zoo names; NAME@S is that zoo network's architecture built for SxS inputs (untrained: the time
# of a pass does not depend on the weights), to fill the sizes between the zoo's.
NETWORKS = ["tmnist-mobilenetv2-strong", "tmnist-xception-strong", "tmnist-mobilenetv2-strong@128", "tmnist-mobilenetv2-strong@192",
            "pascal-mobilenetv2-0.5-257", "pascal-mobilenetv2-0.5", "pascal-mobilenetv2"]

# One process: one network, one image; print milliseconds per forward + backward pass.
PASS = """
import sys, time, numpy as np, tensorflow as tf
from gsal_tf.models import presets
from gsal_tf.models.deeplab import deeplabv3plus
name, _, size = sys.argv[1].partition("@")
if size:
    entry = presets.get(name); build = dict(entry.build)
    model = deeplabv3plus(build.pop("backbone"), (int(size), int(size), entry.input_shape[2]), entry.num_classes, **build)
else:
    model = presets.load(name)
x = tf.constant(np.random.default_rng(0).random((1,) + tuple(model.input_shape[1:]), dtype=np.float32))
@tf.function
def step(x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(model(x, training=False)[..., 1])
    return tape.gradient(y, x)
step(x); step(x)
n = int(sys.argv[2]); t = time.perf_counter()
for _ in range(n):
    step(x)
print(1000 * (time.perf_counter() - t) / n)
"""

# One process: the demo explained twice; print the warm seconds, save the saliency.
DEMO = """
import sys, time, numpy as np
import gsal_tf as gs
from gsal_tf.zoo.demo import load_demo
case = load_demo()
explainer = gs.GridSaliency(case["model"])
args = (case["image"][None], case["request"][None], [case["class_id"]])
explainer.explain(*args)
t = time.perf_counter(); result = explainer.explain(*args); print(time.perf_counter() - t)
np.save(sys.argv[1], result.saliency)
"""


def run(code: list[str], threads: int | None) -> float:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_NUM_INTRAOP_THREADS", None)
    if threads:
        env["TF_NUM_INTRAOP_THREADS"] = str(threads)
    done = subprocess.run([sys.executable, "-c", *code], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from gsal_tf.models import presets

    rows = {}
    for name in NETWORKS:
        base, _, size = name.partition("@")
        h, w = (int(size), int(size)) if size else presets.get(base).input_shape[:2]
        calls = 50 if h * w <= 300 * 300 else 10
        times = {"1": [], "all": []}
        for _ in range(args.reps):
            times["1"].append(run([PASS, name, str(calls)], 1))
            times["all"].append(run([PASS, name, str(calls)], None))
        med = {k: statistics.median(v) for k, v in times.items()}
        rows[name] = {"input": [h, w], "ms_per_pass": times, "median_ms": med, "all_over_one": med["all"] / med["1"]}
        print(f"{name:28s} {h}x{w}: one thread {med['1']:7.1f} ms, all cores {med['all']:7.1f} ms  (all/one {med['all'] / med['1']:.2f})")

    work = Path(tempfile.mkdtemp(prefix="gsal-threads-"))
    demo = {"1": [], "all": []}
    for _ in range(args.reps):
        demo["1"].append(run([DEMO, str(work / "one.npy")], 1))
        demo["all"].append(run([DEMO, str(work / "all.npy")], None))
    import numpy as np

    diff = float(np.abs(np.load(work / "one.npy") - np.load(work / "all.npy")).max())
    med = {k: statistics.median(v) for k, v in demo.items()}
    print(f"demo explanation (warm, 100 steps): one thread {med['1']:.2f} s, all cores {med['all']:.2f} s; saliency max abs difference {diff:.1e}")
    finish({"networks": rows, "demo_warm_s": demo, "demo_median_s": med, "demo_max_abs_saliency_diff": diff, "reps": args.reps,
            "machine": machine()}, args.json)


if __name__ == "__main__":
    main()
