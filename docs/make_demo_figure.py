"""Regenerate docs/demo.png, the README picture: `gsal explain --demo` as two panels.

Usage (from the repository root): python docs/make_demo_figure.py
Left: the demo image with the request (the digit) outlined. Right: the grid saliency over it.
"""

from pathlib import Path

import numpy as np

import gsal_tf as gs
from gsal_tf import viz
from gsal_tf.zoo.demo import load_demo


def main() -> None:
    demo = load_demo()
    result = gs.GridSaliency(demo["model"]).explain(demo["image"][None], demo["request"][None], [demo["class_id"]])
    image = viz.outline(viz.upscale(viz.to_display(demo["image"])), viz.upscale(np.asarray(demo["request"], np.uint8)))
    figure = viz.side_by_side([image, viz.overlay(demo["image"], result.saliency[0], demo["request"])])
    viz.write_png(Path(__file__).with_name("demo.png"), figure)
    print(f"{demo['name']}: class {demo['class_id']}, preserved {result.preserved_score[0]:.3f}, "
          f"without context {result.no_context_score[0]:.3f}")


if __name__ == "__main__":
    main()
