"""Choose grid saliency's defaults on real networks and real photos (the second kind of user).

Each setting explains the README's real-photo requests as ``gsal explain`` does (the photo
letterboxed into the network, the photo grid of square cells, request = every pixel predicted as
the class; the dog error request as in ``docs/make_real_figures.py``) and reports per request:

- preserved score (should stay ≥ 0.9) and the score without context;
- kept share: the mean saliency over the photo's context pixels (how much context is kept);
- cell spread: max − min over the grid's cells (0: a uniform mask, which localises nothing);
- iterations and wall time of the warm explanation.

Development script: it reads the photos and networks of ``../shared/data/real`` (the Cityscapes
frame is research-only; only numbers leave this machine).

    python benchmarks/defaults_real.py --settings SETTINGS.toml [--real DIR] [--json out.json]

SETTINGS.toml as for ``benchmarks/defaults.py``.
"""

from __future__ import annotations

import argparse
import time
import tomllib
from pathlib import Path

import cv2
import numpy as np

import gsal_tf as gs
from gsal_tf import loading

from _common import finish, machine

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
#: (name, photo under the real folder, zoo model, class name or "errors")
CASES = [
    ("bike riders", "images/bike_riders.jpg", "pascal-mobilenetv2-0.5-257", "person"),
    ("aeroplane", "images/airplane.jpg", "pascal-mobilenetv2-0.5-257", "aeroplane"),
    ("cow", "images/cow.jpg", "pascal-mobilenetv2", "cow"),
    ("cow", "images/cow.jpg", "pascal-mobilenetv2-0.5", "cow"),
    ("Cityscapes frame", "research-only/cityscapes_frame.jpg", "cityscapes-mobilenet-edgetpu", "car"),
    ("Cityscapes frame", "research-only/cityscapes_frame.jpg", "ade20k-mobilenetv2", "car"),
    ("dog errors", "images/dog_segmentation.png", "pascal-mobilenetv2", "errors"),
]


def request_of(case, real: Path):
    """(network input (1,H,W,C), request (1,H,W), class (1,), photo-content mask (H,W), grid)."""
    name, photo, model_name, class_name = case
    net = loading.load_model(model_name)
    image, fit = loading.fit_to_model(loading.load_image(real / photo), net)
    names = [n.lower() for n in net.zoo_entry.class_names]
    prediction = gs.GridSaliency(net).predict(image[None])[0].argmax(-1)
    if class_name == "errors":  # annotated background that the network calls dog (border ignored)
        trimap = cv2.imread(str(real / "images" / "dog_segmentation_mask.png"), cv2.IMREAD_UNCHANGED)
        dog, background = names.index("dog"), names.index("background")
        labels = np.select([trimap == 0, trimap == 1], [dog, background], 255)
        in_photo = fit.to_image(prediction, nearest=True)
        errors = gs.requests.error_request(in_photo, labels, background, predicted_as=dog, ignore_label=255)
        request = fit.mask_to_model(errors.astype(np.uint8))
        class_id = dog
    else:
        class_id = names.index(class_name)
        request = gs.requests.class_request(prediction, class_id)
    content = np.zeros(image.shape[:2], bool)
    content[fit.top:fit.top + fit.size[0], fit.left:fit.left + fit.size[1]] = True
    return net, image[None], request[None].astype(np.float32), np.array([class_id], np.int32), content, fit.grid()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", required=True)
    parser.add_argument("--real", default=str(REAL))
    parser.add_argument("--json")
    args = parser.parse_args()
    with open(args.settings, "rb") as fh:
        settings = tomllib.load(fh)["setting"]
    real = Path(args.real)

    report = {"machine": machine(), "rows": []}
    print("| case | model | setting | preserved | without context | kept share | cell spread | iterations | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for case in CASES:
        net, image, request, class_id, content, grid = request_of(case, real)
        context = content & (request[0] < 0.5)
        for setting in settings:
            options = {"grid_size": grid, **{k: v for k, v in setting.items() if k != "name"}}
            explainer = gs.GridSaliency(net, **options)
            explainer.explain(image, request, class_id)  # trace: time the warm explanation
            start = time.perf_counter()
            result = explainer.explain(image, request, class_id)
            seconds = time.perf_counter() - start
            row = {"case": case[0], "model": case[2], "setting": setting["name"], "options": options,
                   "preserved": float(result.preserved_score[0]), "no_context": float(result.no_context_score[0]),
                   "kept_share": float(result.saliency[0][context].mean()),
                   # max - min over the grid's cells: 0 for a uniform mask, which keeps context
                   # everywhere alike and so localises nothing, whatever its kept share
                   "cell_spread": float(np.ptp(result.grid[0])),
                   "iterations": explainer.iterations,
                   "seconds": seconds, "request_pixels": int(request.sum())}
            report["rows"].append(row)
            print(f"| {row['case']} | {row['model']} | {row['setting']} | {row['preserved']:.3f} | {row['no_context']:.3f} | "
                  f"{row['kept_share']:.3f} | {row['cell_spread']:.2f} | {row['iterations']} | {seconds:.1f} |", flush=True)
    finish(report, args.json)


if __name__ == "__main__":
    main()
