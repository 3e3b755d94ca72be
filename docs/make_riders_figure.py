"""Regenerate docs/riders.png: a real network on a real photo, letterboxed, as `gsal explain` does.

Usage (from the repository root): python docs/make_riders_figure.py
The photo is a 400x513 crop of the zoo's CC0 sample (Pixabay, via IBM/MAX-Image-Segmenter-Web-App);
the network is the zoo's `pascal-mobilenetv2-0.5-257`; the request is every pixel it predicts as
person. It is explained with the paper's formulation (``PAPER``): at the defaults (40
iterations) this request keeps 0.22 of the context and its mask is still moving when the
iterations end (docs/photos.md).
"""

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

import gsal_tf as gs


PAPER = ["--target", "0", "--lam", "1", "--iterations", "100", "--learning-rate", "0.03"]


def main() -> None:
    photo = cv2.imread(str(gs.zoo.zoo_dir() / "samples" / "bike_riders_513.png"))[50:450]
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "riders.png"
        cv2.imwrite(str(path), photo)
        subprocess.run([sys.executable, "-m", "gsal_cli.main", "explain", str(path), "--model", "pascal-mobilenetv2-0.5-257",
                        "--request-class", "person", *PAPER, "--out", str(Path(work) / "out")], check=True)
        Path(__file__).with_name("riders.png").write_bytes((Path(work) / "out" / "overlay.png").read_bytes())


if __name__ == "__main__":
    main()
