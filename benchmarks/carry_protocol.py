"""Carry a protocol folder's progress into the repository, so another machine can resume it.

A protocol spans sessions, and a new session may run on a fresh machine. This copies from
``OUT`` (a ``gsal benchmark protocol --out`` folder) into ``DEST`` (default
``benchmarks/results/protocol-paper``):

- ``results/<run>.json`` of every finished run;
- for every run the protocol has still work on (trained but not yet evaluated, or evaluated with
  another tuning space than today's, which the next command re-tunes) and for the unbiased
  references: ``model.keras`` *without optimizer state* (about 2 MB instead of 4.6 MB; the
  protocol only runs it), ``metrics.json``, ``history.json`` and the tuning / evaluation journals;
- and removes ``DEST/models/<run>`` of runs that need nothing more.

With ``--unfinished``, trainings still in progress are carried too: ``models/<run>/resume/``
(weights, optimizer and dropout-seed state of the last finished epoch) and the best epoch's
``model.weights.h5``, about 9 MB for the protocol's MobileNetV2, which resumes on any machine that regenerates the same data (the state
is matched by a hash of the data, not of its folder). Without it they resume on the same machine
only.

With ``--keep-finished``, finished runs keep their networks (and journals) in ``DEST/models`` too:
while the candidate space may still change (its winners sat at an edge), a new space then re-tunes
the same networks on any machine instead of reporting them stale — retraining costs about 15 min
per run and, across machines, gives other networks (CPU training is not bit-reproducible: the
weak digit-0 checker network retrained on another machine had reliance gain 0.800, not 0.868).

Usage: python benchmarks/carry_protocol.py OUT [DEST] [--config configs/protocol/reduced.toml] [--unfinished] [--keep-finished]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("metrics.json", "history.json", "tuning-journal.json", "evaluation-journal.json")


def slim_copy(source: Path, target: Path) -> None:
    """Save the network of ``source`` (a .keras file) without its optimizer to ``target``."""
    import keras

    model = keras.saving.load_model(source, compile=False)
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    tmp = target.with_suffix(".part.keras")
    twin.save(tmp)
    tmp.replace(target)


def pending(out: Path, name: str, settings) -> bool:
    """Whether the protocol still has work on run ``name`` (see the module docstring)."""
    from gsal_tf.benchmark.protocol import needs_retune

    result = out / "results" / f"{name}.json"
    return not result.is_file() or needs_retune(json.loads(result.read_text()), settings)


def is_slim_copy(target: Path, source: Path) -> bool:
    """Whether ``target`` already is the optimizer-free copy of ``source``: saved after it, and
    without a compile config (a compiled model saves its optimizer state too)."""
    if not target.is_file() or target.stat().st_mtime < source.stat().st_mtime:
        return False
    with zipfile.ZipFile(target) as archive:
        return not json.loads(archive.read("config.json")).get("compile_config")


def copy_state(source: Path, target: Path) -> int | None:
    """Copy a training's ``resume/`` folder; return its next epoch, or None if the training
    finished meanwhile (no state left). Copied again if it saved a newer state while copying (it
    swaps folders after every epoch)."""
    for _ in range(10):
        if target.exists():
            shutil.rmtree(target)
        try:
            before = json.loads((source / "state.json").read_text())["next_epoch"]
            shutil.copytree(source, target)
            if json.loads((source / "state.json").read_text())["next_epoch"] == before:
                return before
        except (FileNotFoundError, shutil.Error):
            if not source.exists() and not source.with_name("resume.part").exists():
                break  # finished: the training removes its state
        time.sleep(1.0)
    if target.exists():
        shutil.rmtree(target)
    return None


def drop_training_state(target: Path) -> None:
    """Remove what an earlier carry kept of a training in progress (``resume/`` and the best
    epoch's ``model.weights.h5``) once the training has finished: ``model.keras`` replaces both."""
    if (target / "resume").exists():
        shutil.rmtree(target / "resume")
    (target / "model.weights.h5").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("dest", type=Path, nargs="?", default=ROOT / "benchmarks/results/protocol-paper")
    parser.add_argument("--config", type=Path, default=ROOT / "configs/protocol/reduced.toml")
    parser.add_argument("--unfinished", action="store_true", help="also carry trainings in progress (resume/)")
    parser.add_argument("--keep-finished", action="store_true",
                        help="carry the networks of finished runs too, so that a later candidate space re-tunes the same networks")
    args = parser.parse_args()
    from gsal_tf.benchmark.protocol import Protocol

    settings = Protocol.from_toml(args.config).evaluate
    (args.dest / "results").mkdir(parents=True, exist_ok=True)
    for result in sorted((args.out / "results").glob("*.json")):
        shutil.copy2(result, args.dest / "results" / result.name)
    for run_dir in sorted((args.out / "models").iterdir()):
        keep = args.keep_finished or run_dir.name.endswith("-unbiased") or pending(args.out, run_dir.name, settings)
        target = args.dest / "models" / run_dir.name
        if args.unfinished and keep and not (run_dir / "model.keras").is_file() and (run_dir / "resume" / "state.json").is_file():
            epoch = copy_state(run_dir / "resume", target / "resume")
            if epoch:  # and the best epoch's weights, which the finished training loads
                shutil.copy2(run_dir / "model.weights.h5", target / "model.weights.h5")
            print(f"{run_dir.name}: " + (f"training carried after epoch {epoch}" if epoch else "training finished meanwhile: carry again"))
            continue
        if not keep or not (run_dir / "model.keras").is_file():
            if not keep and target.exists():
                shutil.rmtree(target)
                print(f"{run_dir.name}: finished, removed from {args.dest / 'models'}")
            continue
        target.mkdir(parents=True, exist_ok=True)
        drop_training_state(target)
        if not is_slim_copy(target / "model.keras", run_dir / "model.keras"):
            slim_copy(run_dir / "model.keras", target / "model.keras")
        for name in FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, target / name)
        size = sum(f.stat().st_size for f in target.iterdir()) / 1e6
        print(f"{run_dir.name}: carried ({size:.1f} MB)")


if __name__ == "__main__":
    main()
