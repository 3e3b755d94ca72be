"""Regenerate the README's real-photo figures (development script: it reads ../shared/data/real).

Usage (from the repository root): python docs/make_real_figures.py [SHARED_REAL_DIR]
Writes, by running the CLI as a user would:
- docs/cow_comparison.png — `gsal compare-backbones cow.jpg --models pascal-mobilenetv2,pascal-mobilenetv2-0.5
  --request-class cow`: the paper's architecture comparison on a CC0 photo (Pixabay);
- docs/cityscapes.png — `gsal explain cityscapes_frame.jpg --model cityscapes-mobilenet-edgetpu
  --request-class car`: a street scene (figure credit: Cityscapes dataset, Cordts et al., CVPR 2016;
  the frame itself never enters the repository).
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


def main() -> None:
    real = Path(sys.argv[1]) if len(sys.argv) > 1 else DOCS.parents[1] / "shared" / "data" / "real"
    with tempfile.TemporaryDirectory() as work:
        for target, figure, summary, args in CASES:
            out = Path(work) / target
            args = [str(real / a) if "/" in a else a for a in args]
            subprocess.run([sys.executable, "-m", "gsal_cli.main", *args, "--out", str(out)], check=True)
            (DOCS / target).write_bytes((out / figure).read_bytes())
            data = json.loads((out / summary).read_text())
            rows = data.get("models", {"": data})
            print(target, {name: (round(r["preserved_score"], 3), round(r["no_context_score"], 3)) for name, r in rows.items()})


if __name__ == "__main__":
    main()
