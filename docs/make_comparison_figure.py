"""Regenerate docs/comparison.png, the README picture of `gsal compare-backbones --demo`.

Usage (from the repository root): python docs/make_comparison_figure.py [OUT]
OUT defaults to docs/comparison.png; its suffix (.png, .svg, .pdf) picks the format.
The demo's biased 9 explained by the zoo's strongly biased MobileNetV2 and Xception with the same
grid-saliency settings as the command (8x8 grid, the explainer's defaults): the image with the request,
then a column per model with its prediction and its saliency. It is the figure the command writes
as comparison.png.
"""

import sys
from pathlib import Path

import gsal_tf as gs
from gsal_tf import viz
from gsal_tf.compare import compare_models
from gsal_tf.zoo.demo import demo_comparison


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("comparison.png")
    case = demo_comparison()
    nets = {name: gs.zoo.load(name) for name in case["models"]}
    result = compare_models(nets, case["image"], case["request"], case["class_id"], {"grid_size": (8, 8)})
    shown = {name: {**result["models"][name], "prediction": result["prediction"][name], "saliency": result["saliency"][name]} for name in nets}
    figure = viz.comparison_figure(case["image"], case["request"], case["class_id"], shown,
                                   class_names=viz.class_names(next(iter(nets.values()))))
    written = viz.save_figure(figure, out)
    scores = ", ".join(f"{name} preserved {row['preserved_score']:.3f}" for name, row in result["models"].items())
    print(f"{written}: class {case['class_id']}; {scores}")


if __name__ == "__main__":
    main()
