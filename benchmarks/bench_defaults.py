"""Time of the default explanation against the paper's 100-iteration one, on the same batch.

    python benchmarks/bench_defaults.py MNIST.npz [--real ../shared/data/real] [--repeats 3] [--set KEY=VALUE ...] [--json out.json]

Rows:
- each strongly biased zoo model on 16 held-out biased requests (test_seed 4242), batch 16;
- ``pascal-mobilenetv2`` at 513x513 on the cow photo (request = every pixel predicted as cow, the
  photo grid), batch 1 — when the real photos are there.

Each row times ``gs.GridSaliency(model)`` (the defaults) and ``gs.GridSaliency.paper(model)``
(100 iterations, the defaults up to 0.2) alternately after one warm-up each (tracing excluded),
and reports the medians of ``--repeats`` runs and their ratio (target ≤ 0.5). ``--set KEY=VALUE``
(a TOML value, repeatable) changes an option of the first explainer, e.g. ``--set remove_cells=true``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import tomllib
from pathlib import Path

import numpy as np

import gsal_tf as gs

from _common import finish, machine
from defaults import held_out
from defaults_real import request_of

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


def zoo_batch(name: str, mnist: str, n: int = 16):
    model, images, masks, digits, _ = held_out(name, mnist, n)
    return model, images, masks, digits, None


def photo_batch(real: Path):
    net, image, request, class_id, _, grid = request_of(("cow", "images/cow.jpg", "pascal-mobilenetv2", "cow"), real)
    return net, image, request, class_id, grid


def time_pair(model, images, masks, classes, grid, repeats: int, options: dict | None = None) -> dict:
    grid_options = {} if grid is None else {"grid_size": grid}
    explainers = {"defaults": gs.GridSaliency(model, **grid_options, **(options or {})), "paper": gs.GridSaliency.paper(model, **grid_options)}
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
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the first explainer (TOML value), e.g. remove_cells=true")
    parser.add_argument("--json")
    args = parser.parse_args()
    options = tomllib.loads("\n".join(args.set))
    cases = [(name, lambda name=name: zoo_batch(name, args.mnist)) for name in ("tmnist-mobilenetv2-strong", "tmnist-xception-strong")]
    if (Path(args.real) / "images" / "cow.jpg").is_file():
        cases.append(("pascal-mobilenetv2 513x513, cow", lambda: photo_batch(Path(args.real))))
    report = {"machine": machine(), "options": options, "rows": []}
    print("| batch | defaults (s) | paper, 100 it. (s) | ratio | preserved median, defaults / paper |")
    print("|---|---|---|---|---|")
    for name, load in cases:
        row = {"case": name, **time_pair(*load(), args.repeats, options)}
        report["rows"].append(row)
        s, p = row["seconds"], row["preserved_median"]
        print(f"| {name} ({row['requests']} requests) | {s['defaults']:.2f} | {s['paper']:.2f} | **{row['ratio']:.3f}** | "
              f"{p['defaults']:.3f} / {p['paper']:.3f} |", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
