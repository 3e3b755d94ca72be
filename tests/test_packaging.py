"""The wheel holds every module of the library and the CLI, and the zoo (a non-editable install works)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import gsal_tf as gs

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_every_package_and_the_zoo(tmp_path):
    # An editable install serves modules straight from the source tree, so a package left out of
    # pyproject.toml's list only shows after `pip install .`: build the wheel and look inside.
    # Built from a copy of the sources, so no build/ folder is left in (or reused from) the checkout.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("gsal_tf", "cli", "zoo"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("gsal_tf-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for source_root, installed_as in ((ROOT / "gsal_tf", "gsal_tf"), (ROOT / "cli" / "gsal_cli", "gsal_cli")):
        for module in source_root.rglob("*.py"):
            wanted = f"{installed_as}/{module.relative_to(source_root).as_posix()}"
            assert wanted in names, f"{wanted} missing from the wheel (add its package to pyproject.toml)"
    entries = gs.zoo.list_models()
    tmnist = {f"tmnist-{b}-{s}" for b in ("mobilenetv2", "xception") for s in ("unbiased", "weak", "strong")}
    real = {"pascal-mobilenetv2", "pascal-mobilenetv2-0.5", "pascal-mobilenetv2-0.5-257", "cityscapes-mobilenet-edgetpu", "ade20k-mobilenetv2",
            "mediapipe-selfie"}
    assert {e.name for e in entries} == tmnist | real
    for entry in entries:
        assert f"gsal_tf/zoo_files/{entry.weights}" in names
        for shipped in entry.reference.get("image"), entry.reference.get("argmax"):  # imported entries' check
            assert shipped is None or f"gsal_tf/zoo_files/{shipped}" in names
    assert {"gsal_tf/zoo_files/models.toml", "gsal_tf/zoo_files/samples/demo.npz"} <= names
    assert not [n for n in names if "cityscapes_" in n], "Cityscapes frames must never ship"
