"""The paper's question at dataset scale on the shipped zoo: on which background texture does the
salient context of the bias digit lie, for each TextureMNIST network?

Generates the strongly biased test split of the zoo's data config (the bias digit always on its
texture, in one of the two tiles), explains every bias-digit zone with each of the six zoo
networks (`gs.explain_dataset`, context classes = the background textures), and writes

- ``docs/zoo_context.png``: share of the salient context on each texture (rows: networks), next to
  the inflation baseline's share (what the digit's neighbourhood alone would give);
- ``benchmarks/results/zoo-context.json``: the numbers, with the texture's share of the context area;
- per network a results folder and its HTML report under ``--out`` (not in the repository).

Run: python docs/make_zoo_context.py --mnist MNIST.npz [--n-test 600] [--out runs/zoo-context]  (--figure-only: redraw)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

import gsal_tf as gs
from gsal_tf import viz
from gsal_tf.benchmark.config import load_config
from gsal_tf.benchmark.texture_mnist import generate_once
from gsal_tf.models import presets
from gsal_tf.scale import RequestPolicy, explain_dataset, load_stats
from gsal_tf.scale.report import write_html_report

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ["tmnist-mobilenetv2-strong", "tmnist-xception-strong", "tmnist-mobilenetv2-weak", "tmnist-xception-weak",
            "tmnist-mobilenetv2-unbiased", "tmnist-xception-unbiased"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mnist")
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--out", type=Path, default=Path("runs/zoo-context"))
    parser.add_argument("--figure-only", action="store_true", help="redraw docs/zoo_context.png from the recorded JSON")
    args = parser.parse_args()
    if args.figure_only:
        draw(json.loads((ROOT / "benchmarks" / "results" / "zoo-context.json").read_text()))
        return

    strong = presets.get("tmnist-mobilenetv2-strong")
    digit, texture = strong.bias.digit, strong.bias.texture
    cfg = load_config(ROOT / strong.training["data_config"], n_train=32, n_test=args.n_test)
    data = generate_once(cfg, args.out / "data", mnist=args.mnist)
    policy = RequestPolicy(zone="class", zones_from="labels", classes=(digit,))
    rows, inflation, area, report = [], [], [], {}
    for name in NETWORKS:
        start = time.perf_counter()
        summary = explain_dataset(presets.load(name), data, args.out / name, layout="texture-mnist", split="test", policy=policy,
                                  options={"batch_size": 32}, model_name=name, store_maps=True)
        stats, card = load_stats(args.out / name)
        textures = card["settings"]["context_classes"]
        row = list(stats.classes).index(digit)
        sums = gs.scale.read_results(args.out / name).column("context_pixels").to_pylist()
        area_share = np.mean([np.asarray(s) / np.sum(s) for s in sums], axis=0)
        k = textures.index(texture)
        rows.append(stats.share[row])
        inflation.append(stats.inflation_share[row])
        area.append(area_share)
        write_html_report(args.out / name, gallery=6)
        report[name] = {"requests": summary.requests, "share_on_bias_texture": float(stats.share[row, k]),
                        "inflation_share_on_bias_texture": float(stats.inflation_share[row, k]),
                        "area_share_of_bias_texture": float(area_share[k]), "mean_salient_fraction": float(stats.mean_fraction[row]),
                        "requests_without_salient_context": int(stats.empty[row]), "seconds": round(time.perf_counter() - start, 1)}
        print(f"{name:28s} share on {texture}: {stats.share[row, k]:.3f}  inflation {stats.inflation_share[row, k]:.3f}  "
              f"area {area_share[k]:.3f}  ({summary.requests} requests, {stats.empty[row]} without salient context)")
    (ROOT / "benchmarks" / "results" / "zoo-context.json").write_text(json.dumps(
        {"bias": {"digit": digit, "texture": texture}, "data_config": strong.training["data_config"], "n_test": args.n_test,
         "textures": textures, "share": np.array(rows).tolist(), "inflation_share": np.array(inflation).tolist(),
         "area_share": np.array(area).tolist(), "networks": report}, indent=2))
    draw(json.loads((ROOT / "benchmarks" / "results" / "zoo-context.json").read_text()))


def draw(result: dict, others: int = 5) -> None:
    """docs/zoo_context.png from the recorded numbers: the bias texture, the ``others`` textures
    with the largest share otherwise, and the rest summed; grid saliency next to inflation."""
    textures, texture = result["textures"], result["bias"]["texture"]
    share, inflation = np.array(result["share"]), np.array(result["inflation_share"])
    k = textures.index(texture)
    rest = [j for j in np.argsort(-np.nansum(share, axis=0)) if j != k][:others]
    keep = [k] + rest
    other = [j for j in range(len(textures)) if j not in keep]
    columns = [f"{texture}\n(bias)"] + [textures[j].replace("_", "\n") for j in rest] + [f"{len(other)}\nothers"]
    pick = lambda m: np.column_stack([m[:, keep], np.nansum(m[:, other], axis=1)])  # noqa: E731
    labels = [n.replace("tmnist-", "") for n in result["networks"]]
    n = next(iter(result["networks"].values()))["requests"]
    figures = [viz.matrix_figure(pick(share), labels, columns, f"grid saliency: share of digit {result['bias']['digit']}'s salient context", vmax=1.0,
                                 colorbar_label="share of salient context", xlabel="background texture", ylabel="network", highlight_col=0,
                                 subtitle=f"{n} requests per network: every {result['bias']['digit']} of the strongly biased test split"),
               viz.matrix_figure(pick(inflation), labels, columns, "inflation baseline: the same amount of context around the digit", vmax=1.0,
                                 colorbar_label="share of inflated context", xlabel="background texture", ylabel="network", highlight_col=0,
                                 subtitle=f"area share of {texture} in the context: {np.mean(result['area_share'], axis=0)[k]:.2f}")]
    parts = [cv2.imdecode(np.frombuffer(viz.png_bytes(f), np.uint8), cv2.IMREAD_COLOR) for f in figures]
    height = max(p.shape[0] for p in parts)
    parts = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in parts]
    cv2.imwrite(str(ROOT / "docs" / "zoo_context.png"), np.hstack(parts))


if __name__ == "__main__":
    main()
