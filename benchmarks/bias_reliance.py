"""Paired test "does the network read the bias texture?" on the zoo (README, "The zoo").

The same test digits (test_seed of the configs) are textured twice: at random (unbiased config)
and with the bias texture in one tile for every bias digit (strongly biased config: same digits,
sizes and positions; the bias texture moved into one tile of each bias digit and out of every
other sample). For each model: the share of the bias digit's
pixels it calls that digit, without and with the texture (gsal_tf.benchmark.evaluation.bias_reliance).

Usage: python benchmarks/bias_reliance.py MNIST.npz [MODEL ...]   (zoo names or .keras files;
       default: every zoo model)  [--n-test 2000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gsal_tf as gs
from gsal_tf import loading
from gsal_tf.benchmark.evaluation import bias_reliance

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "benchmark"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist", help="MNIST in Keras' mnist.npz layout")
    parser.add_argument("models", nargs="*", help="zoo names or .keras files (default: the whole zoo)")
    parser.add_argument("--n-test", type=int, default=2000)
    args = parser.parse_args()

    biased_cfg = gs.benchmark.load_config(CONFIGS / "strong.toml", n_test=args.n_test)
    plain_cfg = gs.benchmark.unbiased_counterpart(biased_cfg)
    without = gs.benchmark.TextureMNIST(plain_cfg, mnist=args.mnist).samples("test", n=args.n_test)
    with_bias = gs.benchmark.TextureMNIST(biased_cfg, mnist=args.mnist).samples("test", n=args.n_test)
    digit, texture = biased_cfg.bias.digit, biased_cfg.bias.texture

    names = args.models or [e.name for e in gs.zoo.list_models()]
    print(f"| model | pixels of {digit} called {digit}: without `{texture}` | with `{texture}` | gain |")
    print("|---|---|---|---|")
    for name in names:
        model = loading.load_model(name)
        r = bias_reliance(model, without, with_bias, digit)
        print(f"| {name} | {r['called_without']:.3f} | {r['called_with']:.3f} | {r['gain']:+.3f} |", flush=True)
    print(f"\n{int((without['digit'] == digit).sum())} test samples of digit {digit}, each textured both ways.")


if __name__ == "__main__":
    main()
