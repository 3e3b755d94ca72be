"""Time to the first explanation: one-shot `gsal explain --demo` and the first `explain()` of a process.

Measures, in one run on this machine (ratios are taken within the run, so both sides saw the same
load; runs of the compared commands are interleaved):

(a) CLI: wall time of `gsal explain --demo` / wall time of `python -c "import tensorflow"`
    — with the disk cache of compiled graphs primed by an earlier run (the usual case from the
    second call on) and with an empty cache (the very first call on a machine);
(b) in-process: first `explain()` / warm `explain()` of the same request (the demo), in a fresh
    process, with a primed and with an empty cache;
(c) the same saliency: the demo explained from the cached graph vs traced with the cache off.

Run: python benchmarks/bench_first_call.py [--reps 3] [--checkout DIR] [--json out.json]
``--checkout DIR`` measures another checkout of gsal-tf (e.g. an older commit, for a before/after
table): its ``DIR`` and ``DIR/cli`` go first on the subprocesses' PYTHONPATH.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from _common import finish, machine  # noqa: E402

# One process: load the demo, explain it twice; print the two times and save the saliency.
IN_PROCESS = """
import sys, time, numpy as np
import gsal_tf as gs
try:
    from gsal_tf.zoo.demo import load_demo
except ImportError:  # checkouts before version 0.2
    from gsal_tf.demo import load_demo
case = load_demo()
explainer = gs.GridSaliency(case["model"])
args = (case["image"][None], case["request"][None], [case["class_id"]])
t = time.perf_counter(); first = explainer.explain(*args); t_first = time.perf_counter() - t
t = time.perf_counter(); explainer.explain(*args); t_warm = time.perf_counter() - t
np.save(sys.argv[1], first.saliency)
print(t_first, t_warm)
"""


def run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--checkout", type=Path, default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="gsal-first-call-"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "GSAL_GRAPH_CACHE": "1"}
    if args.checkout:
        root = args.checkout.resolve()
        env["PYTHONPATH"] = os.pathsep.join([str(root), str(root / "cli"), env.get("PYTHONPATH", "")])
    primed = {**env, "GSAL_HOME": str(work / "primed-home")}
    cli = [sys.executable, "-m", "gsal_cli.main", "explain", "--demo", "--out", str(work / "out")]
    import_tf = [sys.executable, "-c", "import tensorflow"]
    script = [sys.executable, "-c", IN_PROCESS]

    run(cli, primed)  # primes the disk cache (and the OS file cache)
    rows = {"import_tf": [], "cli_primed": [], "cli_empty": [], "first_primed": [], "warm_primed": [], "first_empty": [], "warm_empty": []}
    for rep in range(args.reps):
        rows["import_tf"].append(run(import_tf, env))
        rows["cli_primed"].append(run(cli, primed))
        rows["cli_empty"].append(run(cli, {**env, "GSAL_HOME": str(work / f"empty-{rep}")}))
        for kind, home in (("primed", primed["GSAL_HOME"]), ("empty", str(work / f"empty-inproc-{rep}"))):
            out = subprocess.run(script + [str(work / f"saliency-{kind}.npy")], env={**env, "GSAL_HOME": home},
                                 capture_output=True, text=True, check=True).stdout.split()
            rows[f"first_{kind}"].append(float(out[-2]))
            rows[f"warm_{kind}"].append(float(out[-1]))

    traced = work / "saliency-traced.npy"
    subprocess.run(script + [str(traced)], env={**env, "GSAL_GRAPH_CACHE": "0"}, capture_output=True, check=True)
    import numpy as np

    max_diff = float(np.abs(np.load(work / "saliency-primed.npy") - np.load(traced)).max())
    med = {k: statistics.median(v) for k, v in rows.items()}
    report = {
        "checkout": str(args.checkout or Path(__file__).resolve().parents[1]),
        "runs": rows,
        "median_s": med,
        "cli_over_import_tf_primed": med["cli_primed"] / med["import_tf"],
        "cli_over_import_tf_empty": med["cli_empty"] / med["import_tf"],
        "first_over_warm_primed": med["first_primed"] / med["warm_primed"],
        "first_over_warm_empty": med["first_empty"] / med["warm_empty"],
        "max_abs_saliency_diff_cached_vs_traced": max_diff,
        "machine": machine(),
    }
    print(f"medians over {args.reps} interleaved runs (s): " + ", ".join(f"{k} {v:.2f}" for k, v in med.items()))
    print(f"(a) gsal explain --demo / import tensorflow: {report['cli_over_import_tf_primed']:.2f} with a primed cache "
          f"(target <= 2.0), {report['cli_over_import_tf_empty']:.2f} with an empty one")
    print(f"(b) first / warm explain(): {report['first_over_warm_primed']:.2f} primed (target <= 3), "
          f"{report['first_over_warm_empty']:.2f} empty")
    print(f"(c) saliency, cached vs traced: max abs difference {max_diff:.2e} (target <= 1e-6)")
    finish(report, args.json)


if __name__ == "__main__":
    main()
