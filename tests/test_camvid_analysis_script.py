"""benchmarks/camvid_analysis.py: what a stage keeps of earlier invocations (no CamVid, no network)."""

import json
from pathlib import Path
from types import SimpleNamespace

from conftest import load_benchmark_script


def _script():
    return load_benchmark_script("camvid_analysis")


def _run_folder(out: Path, name: str) -> Path:
    folder = out / "runs" / name
    folder.mkdir(parents=True)
    (folder / "run.json").write_text("{}")
    return folder


def test_a_context_stage_for_one_zone_keeps_the_other_zones_tables(tmp_path):
    ca = _script()
    class_run, gone = _run_folder(tmp_path, "cityscapes-class"), tmp_path / "runs" / "cityscapes-gone"
    earlier = {"runs": {"cityscapes-class": {"run": str(class_run), "requests": 7},
                        "cityscapes-component": {"run": "stale", "requests": 1},
                        "cityscapes-gone": {"run": str(gone), "requests": 3}}}
    (tmp_path / "context.json").write_text(json.dumps(earlier))
    merged = ca._with_other_zones(tmp_path / "context.json", {"cityscapes-component": {"run": "new", "requests": 5}})
    # the class zones first; this invocation's component entry wins; a run whose folder is gone is dropped
    assert list(merged) == ["cityscapes-class", "cityscapes-component"]
    assert merged["cityscapes-class"]["requests"] == 7 and merged["cityscapes-component"]["requests"] == 5
    assert ca._with_other_zones(tmp_path / "missing.json", {"x": {"run": "y"}}) == {"x": {"run": "y"}}


def test_a_read_back_finds_the_wall_time_recorded_for_its_run(tmp_path):
    ca = _script()
    folder = _run_folder(tmp_path, "cityscapes-errors")
    other = _run_folder(tmp_path, "cityscapes-class")
    (tmp_path / "context.json").write_text(json.dumps({"runs": {"a": {"run": str(other), "wall_seconds_this_session": 5.0}}}))
    (tmp_path / "errors.json").write_text(json.dumps({"run": {"run": str(folder), "wall_seconds_this_session": 3711.45}}))
    analysis = ca.Analysis(SimpleNamespace(out=str(tmp_path)))
    assert analysis.recorded_wall(folder) == 3711.45
    assert analysis.recorded_wall(other) == 5.0
    assert analysis.recorded_wall(tmp_path / "runs" / "never-recorded") is None
