"""Collect `gsal benchmark evaluate` reports into the README's markdown tables.

Usage: python benchmarks/collect_reports.py REPORTS_DIR   (or --zoo for the zoo table,
       or --protocol DIR for the protocol's averaged and per-run tables; DIR = a protocol's --out
       folder or a folder of its results/<run>.json; add --current-space for only the runs tuned
       on today's candidate space)
"""

import json
import shutil
import sys
import tempfile
from pathlib import Path

from gsal_tf.benchmark.protocol import read_report, read_results


def fmt(v, digits=3):
    return "—" if v is None else f"{v:.{digits}f}"


def main(folder: Path) -> None:
    reports = {p.parent.name: read_report(p) for p in sorted(folder.glob("*/report.json"))}
    print("| model | bias digit IoU (model / unbiased) | other digits' mean IoU drop | method | CBL | inflation CBL | CBD bias digit | CBD others | CBD ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in reports.items():
        iou, d = r["iou"], r["bias_digit"]
        first = True
        tuned = r.get("tuning", {}).get("chosen", {})
        for method, m in r["explanations"]["methods"].items():
            if tuned.get(method):  # the held-out choice, e.g. "smoothgrad (noise=0.2, averaging=signed)"
                method = f"{method} ({', '.join(f'{k}={v}' for k, v in tuned[method].items())})"
            lead = f"| {r['model']} | {fmt(iou['iou'][d])} / {fmt(iou['reference_iou'][d])} | {fmt(iou.get('other_digits_mean_drop'))} " if first else "| | | "
            print(lead + f"| {method} | {fmt(m.get('cbl_mean'))} (n={m.get('cbl_n')}) | {fmt(m.get('inflation_cbl_mean'))} | "
                  f"{fmt(m.get('cbd_bias_digit'))} | {fmt(m.get('cbd_other_digits'))} | {fmt(m.get('cbd_ratio'), 1)} |")
            first = False




def zoo_table() -> None:
    """The README's zoo table, from the shipped manifest (run from the repository root)."""
    import gsal_tf as gs
    from gsal_tf.benchmark.training import TrainConfig

    entries = gs.zoo.list_models()
    digit = next(e.bias.digit for e in entries if e.bias is not None)
    print(f"| name | backbone | bias | mean IoU (11 classes) | IoU of digit {digit} (model / unbiased) | best epoch | train samples | train time | weights |")
    print("|---|---|---|---|---|---|---|---|---|")
    for e in entries:
        m = e.metrics
        bias = "none" if e.bias is None else f"{e.bias.strength}: digit {e.bias.digit} on {e.bias.texture}"
        own, ref = gs.zoo.bias_digit_ious(e, entries, digit)
        pair = fmt(own) + (f" / {fmt(ref)}" if e.bias is not None and ref is not None else "")
        epochs = TrainConfig.from_toml(e.training["train_config"], **e.training.get("train_overrides", {})).epochs
        size = (gs.zoo.zoo_dir() / e.weights).stat().st_size / 1e6
        print(f"| `{e.name}` | {e.backbone} | {bias} | {m['mean_iou']:.3f} | {pair} | "
              f"{m['best_epoch']} of {epochs} | {e.training['train_samples']} | {m['train_minutes']} min | {size:.1f} MB |")


PICKED_UP_DROP = 0.05


def pm(pair, digits=3):
    mean, std = pair
    return "—" if mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _msn(triple) -> str:
    mean, std, n = triple
    return "—" if mean is None else f"{mean:.3f} ± {std:.3f} ({n})"


def space_counts(runs) -> str:
    """How many runs were tuned on which candidate space, e.g. '8 tuned on the first space'."""
    from gsal_tf.benchmark import tuning_space

    labels = []
    for r in runs:
        name = tuning_space.space_name(r.get("tuning"), list(r["explanations"]["methods"]))
        labels.append({"untuned": "untuned", "another": "tuned on another space"}.get(name, f"tuned on the {name} space"))
    return ", ".join(f"{labels.count(label)} {label}" for label in dict.fromkeys(labels))


def protocol_tables(out_dir: Path, current_only: bool = False) -> None:
    """The README's protocol tables: mean ± std over runs, then one row per run."""
    from gsal_tf.benchmark.protocol import summarise

    results = out_dir / "results" if (out_dir / "results").is_dir() else out_dir  # a protocol folder or its results
    if current_only:  # only the runs tuned on today's candidate space (a re-tune in progress mixes spaces)
        from gsal_tf.benchmark import tuning_space

        reports = {f: json.loads(f.read_text()) for f in sorted(results.glob("*.json"))}
        results = Path(tempfile.mkdtemp())
        for f, r in reports.items():
            if tuning_space.tuned_on(r.get("tuning", {}), r["explanations"]["methods"]):
                shutil.copy2(f, results / f.name)
    summary = summarise(results)
    print(f"{summary['runs']} runs ({space_counts(read_results(results))}). Mean ± std over runs:\n")
    print("| backbone / bias | runs | IoU drop, bias digit | IoU drop, other digits | method | CBL | inflation CBL | CBD ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for key, g in sorted(summary["groups"].items()):
        first = True
        for method, m in g["methods"].items():
            lead = f"| {key} | {g['runs']} | {pm(g['iou_drop_bias_digit'])} | {pm(g['iou_drop_other_digits'])} " if first else "| | | | "
            print(lead + f"| {method} | {pm(m['cbl'])} | {pm(m['inflation_cbl'])} | {pm(m['cbd_ratio'], 1)} |")
            first = False
    runs = read_results(results)
    methods = list(dict.fromkeys(m for r in runs for m in r["explanations"]["methods"]))
    if any("reliance" in r for r in runs):
        # Uptake by the paired reliance test (gsal_tf.benchmark.uptake), CBL over all networks and
        # over those that took the bias.
        from gsal_tf.benchmark.uptake import uptake_summary

        print("\nUptake (paired reliance test) and CBL, mean ± std (n), over all networks / over those that took the bias:\n")
        print("| backbone / bias | took the bias | reliance gain | " + " | ".join(methods) + " |")
        print("|---|---|---|" + "---|" * len(methods))
        for key, g in sorted(uptake_summary(runs).items()):
            cells = []
            for m in methods:
                row = g["methods"].get(m)
                cells.append("—" if row is None else f"{_msn(row['cbl_all'])} / {_msn(row['cbl_taken'])}")
            print(f"| {key} | {g['taken']} of {g['measured']} | {pm(g['gain'])} | " + " | ".join(cells) + " |")
    else:
        # Reports from before runs measured uptake: judged by the IoU drop alone (not by any explanation).
        picked: dict = {}
        for r in runs:
            drop = r["iou"].get("bias_digit_drop")
            if drop is not None and drop >= PICKED_UP_DROP:
                for method, m in r["explanations"]["methods"].items():
                    if m.get("cbl_mean") is not None:
                        picked.setdefault(r["strength"], {}).setdefault(method, []).append(m["cbl_mean"])
        print(f"\nRuns that picked the bias up (bias-digit IoU drop ≥ {PICKED_UP_DROP}), mean CBL:\n")
        print("| bias | runs | " + " | ".join(methods) + " |")
        print("|---|---|" + "---|" * len(methods))
        for strength, by_method in sorted(picked.items()):
            n = max(len(v) for v in by_method.values())
            print(f"| {strength} | {n} | " + " | ".join(fmt(sum(by_method[m]) / len(by_method[m])) if by_method.get(m) else "—" for m in methods) + " |")
    tuned = [r for r in runs if r.get("settings", {}).get("tune")]
    if tuned:
        print("\nSettings chosen on held-out samples (per run):\n")
        print("| run | " + " | ".join(methods) + " |")
        print("|---|" + "---|" * len(methods))
        for r in tuned:
            chosen = r.get("tuning", {}).get("chosen", {})
            print(f"| {r['name']} | " + " | ".join(", ".join(f"{k}={v}" for k, v in chosen.get(m, {}).items()) or "—" for m in methods) + " |")
    print("\nPer run (grid saliency):\n")
    print("| run | bias-digit IoU (model / unbiased) | grid CBL (n) | grid CBD ratio | best other method's CBL |")
    print("|---|---|---|---|---|")
    for r in runs:
        d, iou, methods = r["digit"], r["iou"], r["explanations"]["methods"]
        g = methods["grid_saliency"]
        others = {k: v.get("cbl_mean") for k, v in methods.items() if k != "grid_saliency" and v.get("cbl_mean") is not None}
        best = max(others, key=others.get) if others else None
        print(f"| {r['name']} | {fmt(iou['iou'][d])} / {fmt(iou['reference_iou'][d])} | {fmt(g.get('cbl_mean'))} ({g.get('cbl_n')}) | "
              f"{fmt(g.get('cbd_ratio'), 1)} | {best}: {fmt(others.get(best))} |" if best else "| — |")


if __name__ == "__main__":
    if sys.argv[1] == "--zoo":
        zoo_table()
    elif sys.argv[1] == "--protocol":
        protocol_tables(Path(sys.argv[2]), current_only="--current-space" in sys.argv[3:])
    else:
        main(Path(sys.argv[1]))
