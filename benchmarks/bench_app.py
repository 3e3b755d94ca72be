"""Click-to-overlay time of ``gsal app`` on this machine (``python benchmarks/bench_app.py``).

For each network: the demo photo (cyclists, 513x513, for the PASCAL network) or the TextureMNIST
demo sample (64x64), predicted once; then a click on the largest non-background segment, timed
from the POST of the click to the overlay PNG received (what the page waits for), through the
real HTTP server and its worker thread. The first click includes building the explainer's graphs:
traced, with the disk cache of traced graphs off; with ``--graph-cache`` loaded from the cache
where it holds them (run twice: the first run stores what it traced), as a user's first click of
a later session is. The report counts the graphs each network's clicks took from the cache and
traced. The next clicks reuse the explainer the server keeps (one per model and image size).
Default settings.

Run: python benchmarks/bench_app.py [--clicks 3] [--graph-cache] [--json benchmarks/results/app.json]
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request

import cv2
import numpy as np

from _common import finish, machine
from gsal_tf import __version__, graph_cache
from gsal_tf.app.server import make_server

CASES = [("cyclists", "pascal-mobilenetv2-0.5-257"), ("textures", "tmnist-mobilenetv2-strong")]


def _call(base, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})) as reply:
        return json.load(reply)


def _wait(base, job):
    while True:
        state = _call(base, f"/api/jobs/{job}")
        if state["state"] == "done":
            return state["result"]
        if state["state"] == "error":
            raise RuntimeError(state["error"])
        time.sleep(0.05)


def _click_point(app, prediction_id, image_shape):
    pred = app.predictions[prediction_id]
    labels = pred["labels"]
    keep = np.array([not n.lower().startswith("background") for n in pred["names"]])[labels].astype(np.uint8)
    count, parts = cv2.connectedComponents(keep, connectivity=8)
    largest = 1 + int(np.argmax([(parts == k).sum() for k in range(1, count)]))
    depth = cv2.distanceTransform((parts == largest).astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)  # network-input pixels
    return [int(y * image_shape[0] / labels.shape[0]), int(x * image_shape[1] / labels.shape[1])]


def _count_cache_loads(hits: list) -> None:
    """Record, for each explainer graph asked of the disk cache, whether it came from it."""
    load = graph_cache.load

    def counting(key, model):
        graph = load(key, model)
        hits.append(graph is not None)
        return graph

    graph_cache.load = counting


def main(clicks: int = 3, json_path=None, use_graph_cache: bool = False) -> None:
    os.environ["GSAL_GRAPH_CACHE"] = "1" if use_graph_cache else "0"  # read when an explainer is built
    hits: list = []
    _count_cache_loads(hits)
    server = make_server(0)
    rows = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    for demo, model in CASES:
        info = _call(base, "/api/demo", {"name": demo})
        start = time.perf_counter()
        predicted = _wait(base, _call(base, "/api/predict", {"image_id": info["image_id"], "model": model})["job"])
        load = time.perf_counter() - start
        point = _click_point(server.app, predicted["prediction_id"], (info["height"], info["width"]))
        times, hits[:] = [], []
        for _ in range(clicks):
            start = time.perf_counter()
            result = _wait(base, _call(base, "/api/explain", {"prediction_id": predicted["prediction_id"], "point": point})["job"])
            urllib.request.urlopen(base + result["results"][0]["files"]["overlay.png"]).read()
            times.append(time.perf_counter() - start)
        r = result["results"][0]
        print(f"{model} ({info['height']}x{info['width']} image, click {point}, class {r['class_name']}): "
              f"load+predict {load:.1f} s; click to overlay: first {times[0]:.1f} s, then "
              f"{', '.join(f'{t:.1f}' for t in times[1:])} s (optimisation {r['seconds']:.1f} s)", flush=True)
        rows.append({"model": model, "image": f"{info['height']}x{info['width']} {demo} demo", "click": point,
                     "class": r["class_name"], "load_predict_s": load, "first_click_s": times[0],
                     "next_clicks_s": times[1:], "optimisation_s_last_click": r["seconds"],
                     "graphs_from_disk_cache": sum(hits), "graphs_traced": len(hits) - sum(hits) if use_graph_cache else None})
    finish({"what": "gsal app: POST of a click to the overlay PNG received, through the real HTTP server",
            "command": f"python benchmarks/bench_app.py --clicks {clicks}" + (" --graph-cache" if use_graph_cache else ""),
            "version": __version__, "machine": machine(), "clicks": clicks,
            "graph_cache": "on: a graph the cache holds is loaded, one it lacks is traced and stored" if use_graph_cache
            else "off: the first click traces its graphs",
            "networks": rows}, json_path)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--clicks", type=int, default=3, help="clicks per network (the first compiles)")
    parser.add_argument("--graph-cache", action="store_true", help="use the disk cache of traced graphs (default: off)")
    parser.add_argument("--json", default=None, help="write the report here (benchmarks/results/app.json)")
    args = parser.parse_args()
    main(args.clicks, args.json, args.graph_cache)
