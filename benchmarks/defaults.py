"""Choose grid saliency's defaults on held-out data: settings x the zoo's biased models.

For each zoo model with a bias, its held-out biased requests (the benchmark config's test split
regenerated with test_seed 4242 — never the evaluation split 1907; request = the digit's mask,
class = the digit) are explained with each setting, and reported:

- CBL over all requests, a request whose map keeps no context counting as chance (0.5), as the
  paper averages and as the held-out tuning scores (``tuning.tuning_score``);
- collapsed masks: no context kept while the score without context is below the target (the
  prediction needs context, the optimiser lost it);
- median preserved score, masks settled, iterations (and the mean a request ran: a settled
  request stops), and wall time of the batch.

    python benchmarks/defaults.py MNIST.npz --settings SETTINGS.toml [--requests 40] [--json out.json]

SETTINGS.toml holds ``[[setting]]`` tables of GridSaliency keyword options with a ``name``; with
no file, the defaults and the paper's formulation at lam 1 and 8 are compared.
"""

from __future__ import annotations

import argparse
import time
import tomllib

import numpy as np

import gsal_tf as gs
from gsal_tf import metrics
from gsal_tf.benchmark import tuning

from _common import finish, machine

MODELS = ["tmnist-mobilenetv2-strong", "tmnist-xception-strong", "tmnist-mobilenetv2-weak", "tmnist-xception-weak"]
DEFAULT_SETTINGS = [{"name": "defaults"}, {"name": "paper, lam 1, 100 iterations", **gs.GridSaliency.PAPER_OPTIONS},
                    {"name": "paper, lam 8, 100 iterations", **gs.GridSaliency.PAPER_OPTIONS, "lam": 8.0}]
#: A mask "collapsed" when it keeps less than this share of the context's cells...
EMPTY = 1e-3
#: ...while the prediction without any context keeps less than this share of the score.
NEEDS_CONTEXT = 0.9


def held_out(name: str, mnist: str, requests: int, split: str = "held-out"):
    model = gs.zoo.load(name)
    entry = model.zoo_entry
    if split == "held-out":
        samples = tuning.held_out_samples(entry.training["data_config"], mnist)
    else:  # the evaluation split, for the final check of chosen defaults only
        from gsal_tf.benchmark.config import load_config
        from gsal_tf.benchmark.texture_mnist import TextureMNIST

        samples = TextureMNIST(load_config(entry.training["data_config"]), mnist=mnist).samples("test", n=2000)
    chosen = tuning.held_out_requests(samples, entry.bias.digit, requests)
    return (model, samples["image"][chosen], samples["digit_mask"][chosen].astype(np.float32),
            samples["digit"][chosen].astype(np.int32), samples["biased_tile_mask"][chosen])


def score(model, images, masks, digits, tiles, options: dict) -> dict:
    explainer = gs.GridSaliency(model, **options)
    explainer.explain(images[:1], masks[:1], digits[:1])  # trace once: time the warm explanation
    start = time.perf_counter()
    result = explainer.explain(images, masks, digits)
    seconds = time.perf_counter() - start
    cbl = metrics.cbl(result.saliency, masks, tiles)
    context = (1 - masks)
    kept = (result.saliency * context).sum(axis=(1, 2)) / context.sum(axis=(1, 2))
    empty = kept < EMPTY
    collapsed = empty & (result.no_context_score < NEEDS_CONTEXT)
    finite = np.isfinite(cbl)
    return {
        "cbl_all": tuning.tuning_score(cbl),
        "cbl_nonempty": float(cbl[finite].mean()) if finite.any() else None,
        "empty": int(empty.sum()),
        "collapsed": int(collapsed.sum()),
        "preserved_median": float(np.median(result.preserved_score)),
        "preserved_min": float(result.preserved_score.min()),
        "converged": int(result.converged.sum()),
        "iterations": explainer.iterations,
        "steps_mean": float(result.steps.mean()),
        "seconds": seconds,
        "requests": len(cbl),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist")
    parser.add_argument("--settings")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--split", choices=["held-out", "evaluation"], default="held-out")
    parser.add_argument("--json")
    args = parser.parse_args()
    settings = DEFAULT_SETTINGS
    if args.settings:
        with open(args.settings, "rb") as fh:
            settings = tomllib.load(fh)["setting"]

    report = {"machine": machine(), "split": args.split, "rows": []}
    print("| model | setting | CBL all | CBL non-empty | empty | collapsed | preserved median / min | converged | iterations (mean run) | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        model, images, masks, digits, tiles = held_out(name, args.mnist, args.requests, args.split)
        for setting in settings:
            options = {k: v for k, v in setting.items() if k != "name"}
            row = {"model": name, "setting": setting["name"], "options": options,
                   **score(model, images, masks, digits, tiles, options)}
            report["rows"].append(row)
            nonempty = "—" if row["cbl_nonempty"] is None else f"{row['cbl_nonempty']:.3f}"
            print(f"| {name} | {row['setting']} | {row['cbl_all']:.3f} | {nonempty} | {row['empty']}/{row['requests']} | "
                  f"{row['collapsed']} | {row['preserved_median']:.3f} / {row['preserved_min']:.3f} | {row['converged']} | "
                  f"{row['iterations']} ({row['steps_mean']:.0f}) | {row['seconds']:.1f} |", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
