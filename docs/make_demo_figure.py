"""Regenerate docs/demo.png, the README picture: `gsal explain --demo` as one figure.

Usage (from the repository root): python docs/make_demo_figure.py [OUT]
OUT defaults to docs/demo.png; its suffix (.png, .svg, .pdf) picks the format.
Panels: the demo image with the request (the digit) outlined, the model's prediction with a
legend of the predicted classes, the grid saliency with its colour bar and the preserved score
and the score without context. It is the figure `gsal explain --demo` writes as overlay.png.
"""

import sys
from pathlib import Path

import gsal_tf as gs
from gsal_tf import viz
from gsal_tf.requests import label_map
from gsal_tf.zoo.demo import load_demo


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("demo.png")
    demo = load_demo()
    explainer = gs.GridSaliency(demo["model"])
    result = explainer.explain(demo["image"][None], demo["request"][None], [demo["class_id"]])
    figure = viz.explanation_figure(
        demo["image"], demo["request"], result.saliency[0], demo["class_id"],
        prediction=label_map(explainer.predict(demo["image"][None])[0]), class_names=viz.class_names(demo["model"]),
        model_name=demo["name"], preserved_score=float(result.preserved_score[0]), no_context_score=float(result.no_context_score[0]),
    )
    written = viz.save_figure(figure, out)
    print(f"{written}: {demo['name']}, class {demo['class_id']}, preserved {result.preserved_score[0]:.3f}, "
          f"without context {result.no_context_score[0]:.3f}")


if __name__ == "__main__":
    main()
