"""Grid size for photos (README, "Grid size for photos"): 8x8 vs 12 and 16 cells on the long side.

Four CC0 photos letterboxed into the 257x257 PASCAL network, request = every pixel predicted as
the class, 100 iterations, lam 1. Per photo and grid: preserved score, score without context, the
kept share (mean saliency over the photo's context pixels: how much context the explanation
keeps) and seconds. Development script: it reads the photos of ../shared/data/real.

Usage: python benchmarks/photo_grid.py [REAL_DIR] [--json out.json]
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

import gsal_tf as gs
from gsal_tf import loading

OUT = sys.argv[sys.argv.index("--json") + 1] if "--json" in sys.argv else None
ARGS = [a for a in sys.argv[1:] if not a.startswith("--") and a != OUT]
REAL = ARGS[0] if ARGS else str(Path(__file__).resolve().parents[2] / "shared" / "data" / "real")
CASES = [("bike_riders", f"{REAL}/images/bike_riders.jpg", "pascal-mobilenetv2-0.5-257", "person"),
         ("cow", f"{REAL}/images/cow.jpg", "pascal-mobilenetv2-0.5-257", "cow"),
         ("sheep", f"{REAL}/images/sheep.jpg", "pascal-mobilenetv2-0.5-257", "person"),
         ("airplane", f"{REAL}/images/airplane.jpg", "pascal-mobilenetv2-0.5-257", "aeroplane")]
GRIDS = [(8, 8), (12, 12), (16, 16)]
rows = []
for name, path, model_name, cls_name in CASES:
    net = loading.load_model(model_name)
    photo = loading.load_image(path)
    image, fit = loading.fit_to_model(photo, net)
    names = list(net.zoo_entry.class_names); c = names.index(cls_name)
    pred = gs.GridSaliency(net).predict(image[None])[0].argmax(-1)
    req = (pred == c).astype(np.float32)
    content = np.zeros(image.shape[:2], bool); content[fit.top:fit.top + fit.size[0], fit.left:fit.left + fit.size[1]] = True
    for g in GRIDS:
        ex = gs.GridSaliency(net, grid_size=g)
        t = time.perf_counter(); r = ex.explain(image[None], req[None], [c]); sec = time.perf_counter() - t
        s = r.saliency[0]
        ctx = content & (req < 0.5)
        kept = float(s[ctx].mean())          # mean kept fraction over the photo's context pixels
        cells_on_photo = float(content.mean() * g[0] * g[1])
        rows.append(dict(case=name, grid=f"{g[0]}x{g[1]}", preserved=float(r.preserved_score[0]) if hasattr(r, 'preserved_score') else None,
                         no_context=float(getattr(r, 'no_context_score', [np.nan])[0]) if hasattr(r, 'no_context_score') else None,
                         kept_share=kept, cells_on_photo=round(cells_on_photo, 1), seconds=round(sec, 2)))
        print(json.dumps(rows[-1]), flush=True)
if OUT:
    Path(OUT).write_text(json.dumps(rows, indent=1))
