"""Throughput of ``gs.explain_dataset`` against ``explain()`` on the same arrays in memory.

ratio = (requests/s of explain_dataset reading PNG images + label maps from a folder, building
the requests, computing the context statistics and writing Parquet shards) / (requests/s of one
``explainer.explain(images, masks, class_ids)`` call on the same requests already in memory).
Target ≥ 0.9: decoding, statistics and writing overlap with compute (the local engine's reader
and writer threads). Both runs share one explainer (graph traced in a warm-up, not timed);
figures are the median of ``--repeats`` runs, interleaved.

Run: python benchmarks/bench_dataset.py [--images 48] [--size 64] [--iterations 50] [--batch-size 8] [--json out.json]
The model is the tiny DeepLabv3+ (MobileNetV2, as in tests/conftest.py), untrained: speed only.

``--engine-compare`` measures the Ray engine instead: ratio = (requests/s of ``engine="ray"`` with
``--actors`` single-threaded actors on a local Ray of ``--threads`` CPUs) / (requests/s of the local
engine in this process on ``--threads`` intra-op threads), same folder, same explainer settings,
interleaved, median of ``--repeats``. The Ray figure is end to end: it includes starting the actors
(each imports TensorFlow, loads the model and traces its graph), which the in-process run did in its
warm-up; give enough ``--images`` for that to amortise.
Run: python benchmarks/bench_dataset.py --engine-compare [--actors 2] [--threads 2] [--images 96]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import gsal_tf as gs  # noqa: E402
from _common import finish, machine  # noqa: E402

TINY_DEEPLAB = {"alpha": 0.35, "output_stride": 8, "low_level_stride": 4, "aspp_filters": 8,
                "decoder_filters": 8, "low_level_filters": 4, "atrous_rates": (1, 2, 3)}


def make_folder(root: Path, n: int, size: int, seed: int = 0):
    """n RGB PNGs with label maps: class 1 in one random square per image, class 0 elsewhere."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    images, masks = [], []
    for i in range(n):
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        label = np.zeros((size, size), np.uint8)
        y, x = rng.integers(0, size // 2, 2)
        label[y:y + size // 4, x:x + size // 4] = 1
        cv2.imwrite(str(root / "images" / f"{i:05d}.png"), image)
        cv2.imwrite(str(root / "labels" / f"{i:05d}.png"), label)
        images.append(image[..., ::-1].astype(np.float32) / 255)  # what load_image returns (RGB, [0,1])
        masks.append((label == 1).astype(np.float32))
    return np.stack(images), np.stack(masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--engine-compare", action="store_true", help="Ray engine (--actors x 1 thread) vs local engine (--threads threads)")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.engine_compare:
        return compare_engines(args)

    model = gs.models.deeplabv3plus("mobilenetv2", (args.size, args.size, 3), 2, **TINY_DEEPLAB)
    explainer = gs.GridSaliency(model, grid_size=(8, 8), iterations=args.iterations, batch_size=args.batch_size)
    work = Path(tempfile.mkdtemp(prefix="gsal-bench-dataset-"))
    try:
        images, masks = make_folder(work, args.images, args.size)
        classes = np.ones(len(images), np.int32)
        explainer.explain(images[: args.batch_size], masks[: args.batch_size], classes[: args.batch_size])  # trace (not timed)
        policy = gs.scale.RequestPolicy(zone="class", exclude=(0,), min_pixels=1)
        memory, dataset = [], []
        for k in range(args.repeats):
            start = time.perf_counter()
            explainer.explain(images, masks, classes)
            memory.append(len(images) / (time.perf_counter() - start))
            out = work / f"out{k}"
            start = time.perf_counter()
            summary = gs.explain_dataset(explainer, work / "images", out, labels=work / "labels", policy=policy)
            dataset.append(summary.requests / (time.perf_counter() - start))
            assert summary.requests == len(images)
        report = {
            "machine": machine(),
            "images": args.images, "size": args.size, "iterations": args.iterations, "batch_size": args.batch_size,
            "in_memory_requests_per_s": statistics.median(memory),
            "dataset_requests_per_s": statistics.median(dataset),
            "ratio": statistics.median(dataset) / statistics.median(memory),
            "runs": {"in_memory": memory, "dataset": dataset},
        }
        print(f"explain() in memory: {report['in_memory_requests_per_s']:.2f} requests/s")
        print(f"explain_dataset:     {report['dataset_requests_per_s']:.2f} requests/s")
        print(f"ratio dataset / in-memory: {report['ratio']:.3f} (target >= 0.9)")
        finish(report, args.json)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare_engines(args) -> None:
    """Ray engine (``args.actors`` actors of 1 CPU and 1 thread) vs the local engine on ``args.threads`` threads."""
    import ray

    assert gs.threads.use_threads(args.threads), "TensorFlow ran an op before the thread count was set"
    model = gs.models.deeplabv3plus("mobilenetv2", (args.size, args.size, 3), 2, **TINY_DEEPLAB)
    explainer = gs.GridSaliency(model, grid_size=(8, 8), iterations=args.iterations, batch_size=args.batch_size)
    work = Path(tempfile.mkdtemp(prefix="gsal-bench-engines-"))
    ray.init(address="local", num_cpus=args.threads, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        images, masks = make_folder(work, args.images, args.size)
        classes = np.ones(len(images), np.int32)
        explainer.explain(images[: args.batch_size], masks[: args.batch_size], classes[: args.batch_size])  # trace (not timed)
        policy = gs.scale.RequestPolicy(zone="class", exclude=(0,), min_pixels=1)
        runs = {"local": [], "ray": []}
        for k in range(args.repeats):
            for engine, options in (("local", None), ("ray", {"actors": args.actors, "cpus_per_actor": 1})):
                start = time.perf_counter()
                summary = gs.explain_dataset(explainer, work / "images", work / f"{engine}{k}", labels=work / "labels", policy=policy,
                                             engine=engine, engine_options=options)
                runs[engine].append(summary.requests / (time.perf_counter() - start))
                assert summary.requests == len(images)
        local, remote = statistics.median(runs["local"]), statistics.median(runs["ray"])
        report = {
            "machine": machine(),
            "images": args.images, "size": args.size, "iterations": args.iterations, "batch_size": args.batch_size,
            "actors": args.actors, "threads": args.threads,
            "local_requests_per_s": local, "ray_requests_per_s": remote, "ratio_ray_over_local": remote / local, "runs": runs,
        }
        print(f"local engine, {args.threads} threads:        {local:.2f} requests/s")
        print(f"ray engine, {args.actors} actors x 1 thread:  {remote:.2f} requests/s (actor start-up included)")
        print(f"ratio ray / local: {report['ratio_ray_over_local']:.3f}")
        finish(report, args.json)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
