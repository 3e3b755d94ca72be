"""Where grid saliency's CBL is lost on the zoo's biased networks, and what removing kept cells buys.

Two measurements on the biased requests of ``benchmarks/defaults.py`` (held-out split, test_seed
4242, or the evaluation split; request = the digit, class = the digit), each explained with the
defaults (or ``--iterations N``):

1. **Diagnosis.** Per request, the preserved score (``sum(R f_c(x')) / sum(R f_c(x))``, baseline 0,
   the request never perturbed) of three contexts: the whole bias tile alone; the explanation's
   mask cut to the bias tile; the mask cut to the rest of the context. A request whose mask cut
   to the bias tile still keeps the target holds context off the tile that the prediction does
   not need: the mask is not the smallest one the method asks for.
2. **Cell removal** (a candidate refinement, not in the library): after the explanation, order
   the kept cells by how little the preserved score needs them — first-order (``g * dP/dg``, one
   backward pass) or leave-one-out (one forward pass per candidate cell; ``--candidates L``: only
   the L kept cells of smallest first-order importance are tried) — and remove the largest number
   ``k`` of the least needed cells that still keeps the target (bisection on ``k``, 5 forward
   passes). CBL as ``benchmarks/defaults.py`` counts it (a request without salient context = 0.5).

    python benchmarks/cbl_diagnosis.py MNIST.npz [--split held-out|evaluation] [--iterations 40]
        [--order loo|grad] [--candidates 64] [--json OUT.json]

The contexts are applied at the pixel level with the grid upsampled by repetition (nearest), as
the defaults do; the script checks that it reproduces the library's CBL of the unrefined masks.
"""

from __future__ import annotations

import argparse

import numpy as np
import tensorflow as tf

import gsal_tf as gs
from gsal_tf import metrics
from gsal_tf.benchmark import tuning

from _common import finish, machine
from defaults import MODELS, held_out

TARGET = 0.9
SEARCH_STEPS = 5


def preserved_fn(model, images, masks, digits):
    """P(M) for pixel masks M (N,H,W) in [0,1]: x' = x*M + x*R*(1-M) (baseline 0, context mode)."""
    x, r = tf.constant(images), tf.constant(masks)[..., None]
    onehot = tf.one_hot(digits, model.output_shape[-1])[:, None, None, :]
    score = lambda images_: tf.reduce_sum(model(images_, training=False) * onehot, -1)
    base = tf.reduce_sum(score(x) * r[..., 0], [1, 2])

    def preserved(pixel_mask):
        m = tf.convert_to_tensor(pixel_mask, tf.float32)[..., None]
        return tf.reduce_sum(score(x * m + x * r * (1 - m)) * r[..., 0], [1, 2]) / base

    return preserved


def upsample(grid: np.ndarray, size: int) -> np.ndarray:
    """(N,gh,gw) -> (N,size,size) by repetition (nearest)."""
    cell = size // grid.shape[1]
    return np.repeat(np.repeat(grid, cell, axis=1), cell, axis=2)


def removal_order(preserved, grid: np.ndarray, size: int, order: str, candidates: int) -> np.ndarray:
    """Importance (N, gh*gw) of each kept cell (inf: never removed), small = least needed."""
    n, cells = grid.shape[0], grid.shape[1] * grid.shape[2]
    g = tf.constant(grid)
    with tf.GradientTape() as tape:
        tape.watch(g)
        cell = size // grid.shape[1]
        p = preserved(tf.repeat(tf.repeat(g, cell, axis=1), cell, axis=2))
    first = (grid * tape.gradient(p, g).numpy()).reshape(n, -1)
    first = np.where(grid.reshape(n, -1) > 0, first, np.inf)
    if order == "grad":
        return first
    chosen = np.argsort(first, axis=1)[:, :min(candidates, cells)]
    p0 = p.numpy()
    importance = np.full((n, cells), np.inf)
    rows = np.arange(n)
    for j in range(chosen.shape[1]):
        trial = grid.reshape(n, -1).copy()
        trial[rows, chosen[:, j]] = 0
        drop = p0 - preserved(upsample(trial.reshape(grid.shape), size)).numpy()
        valid = np.isfinite(first[rows, chosen[:, j]])
        importance[rows[valid], chosen[valid, j]] = drop[valid]
    return importance


def remove_cells(preserved, grid: np.ndarray, size: int, importance: np.ndarray) -> np.ndarray:
    """The grid with the largest k of its least needed cells removed that keeps the target."""
    n = grid.shape[0]
    order = np.argsort(importance, axis=1)
    kept = np.isfinite(importance).sum(axis=1)

    def without(k):
        out = grid.reshape(n, -1).copy()
        for b in range(n):
            out[b, order[b, :k[b]]] = 0
        return out.reshape(grid.shape)

    lo, hi, best = np.zeros(n, int), kept.copy(), np.zeros(n, int)
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi + 1) // 2
        ok = preserved(upsample(without(mid), size)).numpy() >= TARGET
        best = np.where(ok, np.maximum(best, mid), best)
        lo, hi = np.where(ok, mid, lo), np.where(ok, hi, mid - 1)
    return without(best)


def measure(name: str, mnist: str, requests: int, split: str, iterations: int, order: str, candidates: int) -> dict:
    model, images, masks, digits, tiles = held_out(name, mnist, requests, split)
    result = gs.GridSaliency(model, iterations=iterations).explain(images, masks, digits)
    size = images.shape[1]
    preserved = preserved_fn(model, images, masks, digits)
    grid = result.grid.astype(np.float32)
    saliency = upsample(grid, size)
    cbl = metrics.cbl(result.saliency, masks, tiles)
    if not np.allclose(saliency, result.saliency, atol=1e-6):
        raise SystemExit("the nearest upsampling here differs from the library's: the script needs updating")
    tile = tiles.astype(np.float32) * (1 - masks)
    rest = (1 - tiles.astype(np.float32)) * (1 - masks)
    on_tile = preserved(saliency * tile).numpy()
    off_tile = preserved(saliency * rest).numpy()
    tile_alone = preserved(tile).numpy()
    refined = remove_cells(preserved, grid, size, removal_order(preserved, grid, size, order, candidates))
    refined_cbl = metrics.cbl(upsample(refined, size), masks, tiles)
    refined_preserved = preserved(upsample(refined, size)).numpy()
    below = np.isfinite(cbl) & (cbl < 0.8)
    return {
        "model": name, "split": split, "iterations": iterations, "requests": len(cbl),
        "cbl_all": tuning.tuning_score(cbl),
        "bias_tile_alone_keeps_target": int((tile_alone >= TARGET).sum()),
        "mask_cut_to_tile_keeps_target": int((on_tile >= TARGET).sum()),
        "mask_off_tile_alone_keeps_target": int((off_tile >= TARGET).sum()),
        "cbl_below_0.8": int(below.sum()),
        "cbl_below_0.8_cut_to_tile_keeps_target": int((below & (on_tile >= TARGET)).sum()),
        "cells_kept_mean": float((grid > 0).sum(axis=(1, 2)).mean()),
        "removal": {"order": order, "candidates": candidates, "cbl_all": tuning.tuning_score(refined_cbl),
                    "cells_kept_mean": float((refined > 0).sum(axis=(1, 2)).mean()),
                    "preserved_min": float(refined_preserved.min()), "preserved_median": float(np.median(refined_preserved))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist")
    parser.add_argument("--split", choices=["held-out", "evaluation"], default="held-out")
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--order", choices=["loo", "grad"], default="loo")
    parser.add_argument("--candidates", type=int, default=64, help="leave-one-out: the most kept cells tried per request")
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--json")
    args = parser.parse_args()
    report = {"machine": machine(), "target": TARGET, "rows": []}
    print("| model | split | it. | CBL | tile alone keeps τ | mask cut to tile keeps τ | CBL < 0.8 (of them: cut keeps τ) | cells | removal: CBL | cells | preserved min / median |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name in args.models:
        row = measure(name, args.mnist, args.requests, args.split, args.iterations, args.order, args.candidates)
        report["rows"].append(row)
        rm = row["removal"]
        print(f"| {name} | {row['split']} | {row['iterations']} | {row['cbl_all']:.3f} | {row['bias_tile_alone_keeps_target']}/{row['requests']} | "
              f"{row['mask_cut_to_tile_keeps_target']}/{row['requests']} | {row['cbl_below_0.8']} ({row['cbl_below_0.8_cut_to_tile_keeps_target']}) | "
              f"{row['cells_kept_mean']:.1f} | {rm['cbl_all']:.3f} ({rm['order']}, {rm['candidates']}) | {rm['cells_kept_mean']:.1f} | "
              f"{rm['preserved_min']:.3f} / {rm['preserved_median']:.3f} |", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
