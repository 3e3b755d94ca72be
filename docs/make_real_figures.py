"""Regenerate the README's real-photo figures (development script: it reads ../shared/data/real).

Usage (from the repository root): python docs/make_real_figures.py [SHARED_REAL_DIR [FIGURE ...]]
(FIGURE: only these, e.g. dog_errors.png)
Writes, by running the CLI as a user would:
- docs/cow_comparison.png — `gsal compare-backbones cow.jpg --models pascal-mobilenetv2,pascal-mobilenetv2-0.5
  --request-class cow`: the paper's architecture comparison on a CC0 photo (Pixabay);
- docs/cityscapes.png — `gsal explain cityscapes_frame.jpg --model cityscapes-mobilenet-edgetpu
  --request-class car`: a street scene (figure credit: Cityscapes dataset, Cordts et al., CVPR 2016;
  the frame itself never enters the repository);
- docs/dog_errors.png — error analysis on the one photo here with a human annotation (a Samoyed
  from Oxford-IIIT Pet, CC BY-SA 4.0; trimap 0 = pet, 1 = background, 2 = border): the request is
  every pixel annotated background that the network calls "dog"
  (`gs.requests.error_request(prediction, labels, background, predicted_as=dog, ignore_label=border)`),
  written as a mask and explained with `gsal explain dog.png --request errors.png --class dog`
  (the defaults).
Prints each command's scores.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
CASES = [
    ("cow_comparison.png", "comparison.png", "comparison.json",
     ["compare-backbones", "images/cow.jpg", "--models", "pascal-mobilenetv2,pascal-mobilenetv2-0.5", "--request-class", "cow"]),
    ("cityscapes.png", "overlay.png", "summary.json",
     ["explain", "research-only/cityscapes_frame.jpg", "--model", "cityscapes-mobilenet-edgetpu", "--request-class", "car"]),
]


ERROR_MODEL = "pascal-mobilenetv2"


def error_case(real: Path, work: Path) -> list[str]:
    """Write the dog's error request (annotated background called "dog") as a mask; return the
    `gsal explain` arguments that explain it."""
    import cv2
    import numpy as np

    import gsal_tf as gs
    from gsal_tf import loading

    photo = real / "images" / "dog_segmentation.png"
    trimap = cv2.imread(str(real / "images" / "dog_segmentation_mask.png"), cv2.IMREAD_UNCHANGED)
    net = loading.load_model(ERROR_MODEL)
    names = list(net.zoo_entry.class_names)
    dog, background, ignore = names.index("dog"), names.index("background"), 255
    labels = np.select([trimap == 0, trimap == 1], [dog, background], ignore)  # PASCAL ids; border ignored
    image, fit = loading.fit_to_model(loading.load_image(photo), net)
    prediction = fit.to_image(gs.GridSaliency(net).predict(image[None])[0].argmax(-1), nearest=True)
    errors = gs.requests.error_request(prediction, labels, background, predicted_as=dog, ignore_label=ignore)
    cv2.imwrite(str(work / "errors.png"), errors.astype(np.uint8) * 255)
    print(f"dog: {int(errors.sum())} background pixels called dog "
          f"({errors.sum() / (labels == background).sum():.1%} of the annotated background)")
    # The defaults: with restarted moments this thin band's mask never left its searched start
    # (0.97 of the context everywhere); moments="auto" explains it again with them kept
    # (docs/defaults.md, "Masks that do not move").
    return ["explain", str(photo), "--model", ERROR_MODEL, "--request", str(work / "errors.png"), "--class", "dog"]


def main() -> None:
    real = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS.parents[1] / "shared" / "data" / "real"
    with tempfile.TemporaryDirectory() as work:
        CASES.append(("dog_errors.png", "overlay.png", "summary.json", error_case(real, Path(work))))
        only = set(sys.argv[2:])
        for target, figure, summary, args in CASES:
            if only and target not in only:
                continue
            out = Path(work) / target
            args = [str(real / a) if "/" in a else a for a in args]
            subprocess.run([sys.executable, "-m", "gsal_cli.main", *args, "--out", str(out)], check=True)
            (DOCS / target).write_bytes((out / figure).read_bytes())
            data = json.loads((out / summary).read_text())
            rows = data.get("models", {"": data})
            print(target, {name: (round(r["preserved_score"], 3), round(r["no_context_score"], 3)) for name, r in rows.items()})


if __name__ == "__main__":
    main()
