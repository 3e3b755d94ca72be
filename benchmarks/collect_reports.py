"""Collect `gsal benchmark evaluate` reports into the README's markdown tables.

Usage: python benchmarks/collect_reports.py REPORTS_DIR   (or --zoo for the zoo table)
"""

import json
import sys
from pathlib import Path


def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def main(folder: Path) -> None:
    reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(folder.glob("*/report.json"))}
    print("| model | bias digit IoU (model / unbiased) | other digits' mean IoU drop | method | CBL | inflation CBL | CBD bias digit | CBD others | CBD ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in reports.items():
        iou, d = r["iou"], r["bias_digit"]
        first = True
        for method, m in r["explanations"]["methods"].items():
            lead = f"| {r['model']} | {fmt(iou['iou'][d])} / {fmt(iou['reference_iou'][d])} | {fmt(iou.get('other_digits_mean_drop'))} " if first else "| | | "
            print(lead + f"| {method} | {fmt(m.get('cbl_mean'))} (n={m.get('cbl_n')}) | {fmt(m.get('inflation_cbl_mean'))} | "
                  f"{fmt(m.get('cbd_bias_digit'))} | {fmt(m.get('cbd_other_digits'))} | {fmt(m.get('cbd_ratio'), 1)} |")
            first = False




def zoo_table() -> None:
    """The README's zoo table, from the shipped manifest (run from the repository root)."""
    import gsal_tf as gs
    from gsal_tf.training import TrainConfig

    entries = gs.zoo.list_models()
    digit = next(e.bias.digit for e in entries if e.bias is not None)
    unbiased = {e.backbone: e for e in entries if e.bias is None}
    print(f"| name | backbone | bias | mean IoU (11 classes) | IoU of digit {digit} (model / unbiased) | best epoch | train samples | train time | weights |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in entries:
        m = e.metrics
        bias = "none" if e.bias is None else f"{e.bias.strength}: digit {e.bias.digit} on {e.bias.texture}"
        ref = unbiased[e.backbone].metrics["iou_per_class"][digit] if e.backbone in unbiased else None
        pair = f"{m['iou_per_class'][digit]:.3f}" + (f" / {ref:.3f}" if e.bias is not None and ref is not None else "")
        epochs = TrainConfig.from_toml(e.training["train_config"]).epochs
        size = (gs.zoo.zoo_dir() / e.weights).stat().st_size / 1e6
        print(f"| `{e.name}` | {e.backbone} | {bias} | {m['mean_iou']:.3f} | {pair} | "
              f"{m['best_epoch']} of {epochs} | {e.training['train_samples']} | {m['train_minutes']} min | {size:.1f} MB |")


if __name__ == "__main__":
    zoo_table() if sys.argv[1] == "--zoo" else main(Path(sys.argv[1]))
