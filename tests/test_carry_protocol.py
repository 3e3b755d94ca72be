"""benchmarks/carry_protocol.py: what it carries of a protocol folder, unfinished trainings included."""

import json
import sys
from pathlib import Path

from conftest import load_benchmark_script


def _carry():
    return load_benchmark_script("carry_protocol")


def _state(folder: Path, next_epoch: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps({"next_epoch": next_epoch}))
    (folder / "model.weights.h5").write_bytes(b"weights")
    (folder / "optimizer.npz").write_bytes(b"optimizer")
    return folder


def test_copy_state_returns_the_next_epoch_and_none_once_the_training_finished(tmp_path):
    carry = _carry()
    source = _state(tmp_path / "run" / "resume", 5)
    assert carry.copy_state(source, tmp_path / "dest" / "resume") == 5
    assert (tmp_path / "dest" / "resume" / "optimizer.npz").read_bytes() == b"optimizer"
    gone = tmp_path / "finished" / "resume"
    assert carry.copy_state(gone, tmp_path / "dest2" / "resume") is None
    assert not (tmp_path / "dest2" / "resume").exists()


def test_unfinished_trainings_are_carried_only_when_asked(tmp_path, monkeypatch):
    carry = _carry()
    out, dest = tmp_path / "out", tmp_path / "dest"
    (out / "results").mkdir(parents=True)
    _state(out / "models" / "mobilenetv2-strong-digit7-stripes_d45" / "resume", 3)
    (out / "models" / "mobilenetv2-strong-digit7-stripes_d45" / "model.weights.h5").write_bytes(b"best")
    monkeypatch.setattr(sys, "argv", ["carry_protocol.py", str(out), str(dest)])
    carry.main()
    assert not (dest / "models" / "mobilenetv2-strong-digit7-stripes_d45").exists()
    monkeypatch.setattr(sys, "argv", ["carry_protocol.py", str(out), str(dest), "--unfinished"])
    carry.main()
    carried = dest / "models" / "mobilenetv2-strong-digit7-stripes_d45" / "resume"
    assert json.loads((carried / "state.json").read_text())["next_epoch"] == 3
    assert sorted(p.name for p in carried.iterdir()) == ["model.weights.h5", "optimizer.npz", "state.json"]
    assert (carried.parent / "model.weights.h5").read_bytes() == b"best"  # the best epoch's weights too


def test_finished_runs_keep_their_network_only_with_keep_finished(tmp_path, monkeypatch):
    """A finished run's network leaves DEST unless --keep-finished; kept, it is the optimizer-free copy."""
    import keras

    carry = _carry()
    monkeypatch.setattr(carry, "pending", lambda out, name, settings: False)  # every run finished
    out, dest = tmp_path / "out", tmp_path / "dest"
    run = out / "models" / "mobilenetv2-weak-digit0-checker_coarse"
    run.mkdir(parents=True)
    (out / "results").mkdir()
    (out / "results" / f"{run.name}.json").write_text("{}")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.save(run / "model.keras")
    (run / "tuning-journal.json").write_text("{}")
    stale = dest / "models" / run.name
    stale.mkdir(parents=True)  # carried earlier, while the run was pending
    monkeypatch.setattr(sys, "argv", ["carry_protocol.py", str(out), str(dest)])
    carry.main()
    assert not stale.exists() and (dest / "results" / f"{run.name}.json").is_file()
    _state(stale / "resume", 14)  # carried earlier with --unfinished, while the run was still training
    (stale / "model.weights.h5").write_bytes(b"best")
    monkeypatch.setattr(sys, "argv", ["carry_protocol.py", str(out), str(dest), "--keep-finished"])
    carry.main()
    kept = dest / "models" / run.name
    assert (kept / "tuning-journal.json").is_file() and carry.is_slim_copy(kept / "model.keras", run / "model.keras")
    assert sorted(p.name for p in kept.iterdir()) == ["model.keras", "tuning-journal.json"]  # no training state left
    weights = keras.saving.load_model(kept / "model.keras").get_weights()
    assert all((a == b).all() for a, b in zip(weights, model.get_weights()))
