"""Measure the convergence criterion of grid saliency's optimisation (``Explanation.converged``).

For each zoo model's held-out biased requests (test_seed 4242, never the evaluation split), run
the optimisation for T iterations and for a long reference (``--reference``, default 400) and
report, per T: how many requests the criterion calls converged, and how far their grids still are
from the reference grid (max |grid_T - grid_ref| over cells). A good criterion calls a request
converged only when its grid is near where a longer run ends.

    python benchmarks/convergence.py MNIST.npz [--models tmnist-mobilenetv2-strong ...] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np

import gsal_tf as gs
from gsal_tf.benchmark import tuning
from gsal_tf.saliency.loop import settle_window

from _common import finish, machine


def objective_settled(result, tolerance: float = 0.05) -> np.ndarray:
    """The criterion on the objective, for comparison: over the last window (``settle_window``)
    the objective fell by at most ``tolerance`` of its fall over the whole run."""
    history, final = result.loss_history.astype(np.float64), result.final_loss.astype(np.float64)
    k = settle_window(history.shape[1])
    total, recent = history[:, 0] - final, history[:, -k] - final
    return np.where(total > 1e-6, np.maximum(recent, 0) / np.maximum(total, 1e-6), 0.0) <= tolerance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist")
    parser.add_argument("--models", nargs="+", default=["tmnist-mobilenetv2-strong", "tmnist-xception-strong"])
    parser.add_argument("--iterations", nargs="+", type=int, default=[20, 35, 50, 100, 200])
    parser.add_argument("--reference", type=int, default=400)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--json")
    args = parser.parse_args()

    report = {"machine": machine(), "rows": []}
    for name in args.models:
        model = gs.zoo.load(name)
        entry = model.zoo_entry
        samples = tuning.held_out_samples(entry.training["data_config"], args.mnist)
        chosen = tuning.held_out_requests(samples, entry.bias.digit, args.requests)
        images, masks = samples["image"][chosen], samples["digit_mask"][chosen].astype(np.float32)
        classes = samples["digit"][chosen]
        reference = gs.GridSaliency(model, iterations=args.reference).explain(images, masks, classes)
        print(f"\n{name}: {len(chosen)} held-out biased requests; reference {args.reference} iterations")
        print("| iterations | criterion | converged | max cell gap to reference, converged (median / max) | not converged (median) |")
        print("|---|---|---|---|---|")
        for iterations in args.iterations:
            result = gs.GridSaliency(model, iterations=iterations).explain(images, masks, classes)
            gap = np.abs(result.grid - reference.grid).max(axis=(1, 2))
            for criterion, ok in (("mask (shipped)", result.converged), ("objective", objective_settled(result))):
                row = {"model": name, "iterations": iterations, "criterion": criterion, "converged": int(ok.sum()), "requests": len(ok),
                       "gap_converged_median": float(np.median(gap[ok])) if ok.any() else None,
                       "gap_converged_max": float(gap[ok].max()) if ok.any() else None,
                       "gap_not_converged_median": float(np.median(gap[~ok])) if (~ok).any() else None}
                report["rows"].append(row)
                fmt = lambda v: "—" if v is None else f"{v:.3f}"  # noqa: E731
                print(f"| {iterations} | {criterion} | {row['converged']}/{row['requests']} | {fmt(row['gap_converged_median'])} / "
                      f"{fmt(row['gap_converged_max'])} | {fmt(row['gap_not_converged_median'])} |")
    finish(report, args.json)


if __name__ == "__main__":
    main()
