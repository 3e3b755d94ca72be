"""Peak memory and time of the photo commands on 1, 3, 12 and 48 MP photos.

Each command runs as a user runs it, in its own process (``python -m gsal_cli.main ...``); its
peak resident memory is the child's ``ru_maxrss`` (``os.wait4``), its time the wall clock.

- ``gsal explain PHOTO --model M --request-class person --iterations 5`` with the 257x257
  network (``pascal-mobilenetv2-0.5-257``) and the 513x513 one (``pascal-mobilenetv2``);
- ``gsal compare-backbones PHOTO --models pascal-mobilenetv2,pascal-mobilenetv2-0.5 ...`` (the
  zoo's two PASCAL networks of one input size, 513x513; the 257 network has no partner);
- the HTML report's gallery: ``gsal explain-dataset`` of a folder of two photos with label maps
  and ``--maps``, then ``gsal stats RESULTS --html`` (the step that draws the gallery).

Photos: the CC0 photo shipped with the zoo (``zoo/samples/bike_riders_513.png``, two people on
bicycles) enlarged to each size (bicubic) with smooth random colour noise added, written as JPEG
(quality 90) in a scratch folder; nothing is kept. Sizes (H x W): 866x1155, 1500x2000, 3000x4000,
6000x8000. Label maps for the report: the person class (15) on the middle third, background
elsewhere. Every run compiles its graphs afresh (``GSAL_GRAPH_CACHE=0``, a scratch ``GSAL_HOME``),
so the sizes are comparable.

Target: peak RSS of ``gsal explain`` on 48 MP <= 2 x its peak on 1 MP + the decoded
photo (H*W*3 bytes); the table ends with that check per network.

Run: python benchmarks/bench_photo_memory.py [--sizes 1,3,12,48] [--only explain,compare,report]
     [--networks 257,513] [--json benchmarks/results/photo_memory.json]
Times depend on the machine's load; peak RSS is the figure that matters.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "zoo" / "samples" / "bike_riders_513.png"
#: megapixels -> (H, W), 3:4 like most phone photos
SIZES = {1: (866, 1155), 3: (1500, 2000), 12: (3000, 4000), 48: (6000, 8000)}
NETWORKS = {"257": "pascal-mobilenetv2-0.5-257", "513": "pascal-mobilenetv2"}
COMPARE_513 = "pascal-mobilenetv2,pascal-mobilenetv2-0.5"
PERSON = 15
GiB = 2**30


def make_photo(path: Path, height: int, width: int, seed: int = 0) -> None:
    """The shipped CC0 sample enlarged to (height, width) plus smooth colour noise, as a JPEG."""
    sample = cv2.imread(str(SAMPLE), cv2.IMREAD_COLOR).astype(np.float32)
    rng = np.random.default_rng(seed)
    photo = cv2.resize(sample, (width, height), interpolation=cv2.INTER_CUBIC)
    photo += cv2.resize(rng.normal(0.0, 6.0, (max(2, height // 8), max(2, width // 8), 3)).astype(np.float32), (width, height))
    cv2.imwrite(str(path), np.clip(photo, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])


def make_labels(path: Path, height: int, width: int) -> None:
    """A label map (PASCAL ids): person on the middle third, background elsewhere."""
    labels = np.zeros((height, width), np.uint8)
    labels[:, width // 3: 2 * width // 3] = PERSON
    cv2.imwrite(str(path), labels)


def measure(args: list[str], env: dict) -> dict:
    """Run ``gsal ARGS`` in a child process: its exit code, peak RSS (bytes) and wall time (s)."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "gsal_cli.main", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    error = [line for line in stderr.decode(errors="replace").splitlines() if line.startswith("error:")]
    return {"exit": child.returncode, "peak_rss": usage.ru_maxrss * 1024, "seconds": round(seconds, 1), "error": error[:1]}


def run(sizes, networks, only, scratch: Path) -> list[dict]:
    env = {**os.environ, "GSAL_GRAPH_CACHE": "0", "GSAL_HOME": str(scratch / "home"), "COLUMNS": "120"}
    rows = []

    def record(command, network, mp, args):
        result = measure(args, env)
        row = {"command": command, "network": network, "megapixels": mp, "size": list(SIZES[mp]), **result}
        rows.append(row)
        print(f"{command:>8} {network:>16} {mp:>3} MP: peak {row['peak_rss'] / GiB:.2f} GiB, {row['seconds']:.0f} s, exit {row['exit']}"
              + (f" {row['error'][0]}" if row["error"] else ""), flush=True)

    for mp in sizes:
        height, width = SIZES[mp]
        photo = scratch / f"photo_{mp}mp.jpg"
        make_photo(photo, height, width)
        for key in networks:
            if "explain" in only:
                record("explain", key, mp, ["explain", str(photo), "--model", NETWORKS[key], "--request-class", "person",
                                            "--iterations", "5", "--out", str(scratch / f"explain_{key}_{mp}")])
        if "compare" in only and "513" in networks:
            record("compare", COMPARE_513.replace(",", " + "), mp, ["compare-backbones", str(photo), "--models", COMPARE_513, "--request-class", "person",
                                               "--iterations", "5", "--out", str(scratch / f"compare_{mp}")])
        if "report" in only:
            data, labels = scratch / f"data_{mp}" / "images", scratch / f"data_{mp}" / "labels"
            data.mkdir(parents=True)
            labels.mkdir(parents=True)
            for i in range(2):
                make_photo(data / f"p{i}.jpg", height, width, seed=i)
                make_labels(labels / f"p{i}.png", height, width)
            for key in networks:
                results = scratch / f"results_{key}_{mp}"
                record("dataset", key, mp, ["explain-dataset", str(data), "--labels", str(labels), "--model", NETWORKS[key],
                                            "--out", str(results), "--maps", "--iterations", "5", "--classes", str(PERSON)])
                record("report", key, mp, ["stats", str(results), "--html"])
            for path in list(data.iterdir()):
                path.unlink()
        photo.unlink()
    return rows


def table(rows: list[dict]) -> str:
    """The markdown table: a row per command and network, a column pair per photo size."""
    sizes = sorted({r["megapixels"] for r in rows})
    head = "| command | network | " + " | ".join(f"{mp} MP ({SIZES[mp][0]}x{SIZES[mp][1]})" for mp in sizes) + " |"
    lines = [head, "|---|---|" + "---:|" * len(sizes)]
    keys = list(dict.fromkeys((r["command"], r["network"]) for r in rows))
    for command, network in keys:
        cells = []
        for mp in sizes:
            found = [r for r in rows if (r["command"], r["network"], r["megapixels"]) == (command, network, mp)]
            r = found[0] if found else None
            cells.append("—" if r is None else f"{r['peak_rss'] / GiB:.2f} GiB, {r['seconds']:.0f} s" + ("" if r["exit"] == 0 else f" (exit {r['exit']})"))
        lines.append(f"| {command} | {NETWORKS.get(network, network)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def targets(rows: list[dict]) -> list[str]:
    """Issue 24's target per network: explain's peak at 48 MP <= 2 x at 1 MP + the decoded photo."""
    out = []
    for network in dict.fromkeys(r["network"] for r in rows if r["command"] == "explain"):
        peaks = {r["megapixels"]: r["peak_rss"] for r in rows if r["command"] == "explain" and r["network"] == network and r["exit"] == 0}
        if 1 in peaks and 48 in peaks:
            decoded = SIZES[48][0] * SIZES[48][1] * 3
            limit = 2 * peaks[1] + decoded
            out.append(f"explain {NETWORKS[network]}: 48 MP peak {peaks[48] / GiB:.2f} GiB <= 2 x {peaks[1] / GiB:.2f} GiB + "
                       f"{decoded / GiB:.2f} GiB = {limit / GiB:.2f} GiB: {'yes' if peaks[48] <= limit else 'NO'}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,3,12,48", help="megapixels, of 1, 3, 12, 48")
    parser.add_argument("--networks", default="257,513", help="257 and/or 513")
    parser.add_argument("--only", default="explain,compare,report", help="explain, compare, report")
    parser.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    networks = [n for n in args.networks.split(",") if n]
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="gsal-photo-memory-") as scratch:
        rows = run(sizes, networks, only, Path(scratch))
    print()
    print(table(rows))
    print()
    for line in targets(rows):
        print(line)
    print(f"\nmachine: {os.cpu_count()} cores; times depend on the machine's load")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "targets": targets(rows)}, indent=2))


if __name__ == "__main__":
    main()
