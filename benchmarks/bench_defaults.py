"""Time of the default explanation against the paper's 100-iteration one, on the same batch.

    python benchmarks/bench_defaults.py MNIST.npz [--real ../shared/data/real] [--repeats 3] [--json out.json]

Rows:
- each strongly biased zoo model on 16 held-out biased requests (test_seed 4242), batch 16;
- ``pascal-mobilenetv2`` at 513x513 on the cow photo (request = every pixel predicted as cow, the
  photo grid), batch 1 — when the real photos are there.

Each row times ``gs.GridSaliency(model)`` (the defaults) and ``gs.GridSaliency.paper(model)``
(100 iterations, the defaults up to 0.2) alternately after one warm-up each (tracing excluded),
and reports the medians of ``--repeats`` runs and their ratio (target ≤ 0.5).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

import gsal_tf as gs
from gsal_tf import loading
from gsal_tf.benchmark import tuning

from _common import finish, machine

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def zoo_batch(name: str, mnist: str, n: int = 16):
    model = gs.zoo.load(name)
    samples = tuning.held_out_samples(model.zoo_entry.training["data_config"], mnist)
    chosen = tuning.held_out_requests(samples, model.zoo_entry.bias.digit, n)
    return model, samples["image"][chosen], samples["digit_mask"][chosen].astype(np.float32), samples["digit"][chosen].astype(np.int32), None


def photo_batch(real: Path):
    model = loading.load_model("pascal-mobilenetv2")
    image, fit = loading.fit_to_model(loading.load_image(real / "images" / "cow.jpg"), model)
    cow = list(model.zoo_entry.class_names).index("cow")
    prediction = gs.GridSaliency(model).predict(image[None])[0].argmax(-1)
    return model, image[None], gs.requests.class_request(prediction, cow)[None].astype(np.float32), np.array([cow], np.int32), fit.grid()


def time_pair(model, images, masks, classes, grid, repeats: int) -> dict:
    grid_options = {} if grid is None else {"grid_size": grid}
    explainers = {"defaults": gs.GridSaliency(model, **grid_options), "paper": gs.GridSaliency.paper(model, **grid_options)}
    results = {name: e.explain(images, masks, classes) for name, e in explainers.items()}  # warm-up (tracing)
    times = {name: [] for name in explainers}
    for _ in range(repeats):
        for name, explainer in explainers.items():
            start = time.perf_counter()
            explainer.explain(images, masks, classes)
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(t) for name, t in times.items()}
    return {"seconds": median, "ratio": median["defaults"] / median["paper"],
            "preserved_median": {name: float(np.median(r.preserved_score)) for name, r in results.items()},
            "requests": len(images)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mnist")
    parser.add_argument("--real", default=str(REAL))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    cases = [(name, lambda name=name: zoo_batch(name, args.mnist)) for name in ("tmnist-mobilenetv2-strong", "tmnist-xception-strong")]
    if (Path(args.real) / "images" / "cow.jpg").is_file():
        cases.append(("pascal-mobilenetv2 513x513, cow", lambda: photo_batch(Path(args.real))))
    report = {"machine": machine(), "rows": []}
    print("| batch | defaults (s) | paper, 100 it. (s) | ratio | preserved median, defaults / paper |")
    print("|---|---|---|---|---|")
    for name, load in cases:
        row = {"case": name, **time_pair(*load(), args.repeats)}
        report["rows"].append(row)
        s, p = row["seconds"], row["preserved_median"]
        print(f"| {name} ({row['requests']} requests) | {s['defaults']:.2f} | {s['paper']:.2f} | **{row['ratio']:.3f}** | "
              f"{p['defaults']:.3f} / {p['paper']:.3f} |", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
