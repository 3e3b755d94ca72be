"""User text is data, never markup; outputs are written whole or not at all.

- Class, model and file names are drawn by matplotlib as written (no mathtext: ``$\\foo$``
  crashed its parser) and printed by rich as written (no markup: ``[/]`` crashed it, ``[bold]``
  vanished).
- ``--out`` that cannot be written (read-only file system, full disk, a file in the way): one
  error line, exit 2, no traceback, nothing left behind. The read-only case runs for real on a
  read-only tmpfs mounted in a private mount namespace (``unshare -Urm``; skipped where the kernel
  refuses one); the failures in the middle of writing are OSErrors with the real errno raised by a
  patched ``os.replace`` / ``np.save``, because a disk cannot be made to fail at that moment.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import figure_parts
from gsal_cli import console as console_module
from gsal_cli.console import staged_outputs
from gsal_cli.main import app
from gsal_tf import viz
from gsal_tf.errors import GsalInputError

#: Names that are mathtext or rich markup if read as such: "$\\foo_$" is a mathtext parse error,
#: "[/]" a rich markup error, "[bold]" rich markup.
HOSTILE = ["road[/]", "$x^2$", "a$\\foo_$b", "[bold]sky"]


@pytest.fixture
def wide(monkeypatch):
    """rich prints on one line whatever its length: a path is never wrapped inside an assertion."""
    monkeypatch.setattr(console_module.console, "_width", 400)
    monkeypatch.setattr(console_module.err_console, "_width", 400)


@pytest.fixture
def photo(tmp_path):
    """A 30x40 photo and a request mask over its centre."""
    rng = np.random.default_rng(0)
    cv2.imwrite(str(tmp_path / "photo.png"), rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    mask = np.zeros((30, 40), np.uint8)
    mask[10:20, 12:28] = 255
    cv2.imwrite(str(tmp_path / "request.png"), mask)
    return tmp_path / "photo.png", tmp_path / "request.png"


# ------------------------------------------------------------------------------------- figures


def _case():
    image = np.linspace(0, 1, 16 * 16 * 3, dtype=np.float32).reshape(16, 16, 3)
    request = np.zeros((16, 16), np.float32)
    request[4:10, 4:10] = 1
    labels = np.zeros((16, 16), np.int64)
    labels[4:10, 4:10] = 1
    labels[0, :] = 3
    return image, request, labels, np.full((16, 16), 0.5, np.float32)


def test_figures_draw_class_and_model_names_as_written():
    image, request, labels, saliency = _case()
    fig = viz.explanation_figure(image, request, saliency, 1, prediction=labels, class_names=HOSTILE, model_name="$\\beta$-net")
    parts = figure_parts(fig)
    assert parts["legend"] == ["request R", "road[/]", "$x^2$ (explained)", "[bold]sky"]
    assert parts["suptitle"] == "$\\beta$-net: which context keeps $x^2$ (class 1) in the request?"
    assert viz.png_bytes(fig).startswith(b"\x89PNG")
    svg = io.BytesIO()
    fig.savefig(svg, format="svg")  # text stays text in SVG: the names are there, literally
    assert "$x^2$ (explained)" in svg.getvalue().decode()
    models = {"$m$": {"prediction": labels, "saliency": saliency, "preserved_score": 0.9, "no_context_score": 0.1}}
    assert viz.png_bytes(viz.comparison_figure(image, request, 2, models, class_names=HOSTILE)).startswith(b"\x89PNG")
    # The HTML report's figures: class names as tick labels, gallery titles.
    matrix = viz.matrix_figure(np.eye(4), HOSTILE, HOSTILE, "share of a$\\foo_$b")
    assert [t.get_text() for t in figure_parts(matrix)["axes"]["matrix"].get_yticklabels()] == HOSTILE
    assert viz.png_bytes(matrix) and viz.png_bytes(viz.thumbnail_figure(saliency, request, "a$\\foo_$b · d = 0.50"))


# ------------------------------------------------------------------------------------- the CLI


def test_explain_prints_paths_model_and_class_names_as_written(tmp_path, photo, conv_model_file, monkeypatch, wide):
    monkeypatch.setattr(viz, "class_names", lambda *args, **kwargs: list(HOSTILE))  # as a zoo entry's names would be
    model = tmp_path / "[bold]models[/]" / "net [x].keras"
    model.parent.mkdir(parents=True)  # "[bold]models[" / "]": the path reads "[bold]models[/]"
    shutil.copy(conv_model_file, model)
    out = tmp_path / "out [/] [bold]"
    image, request = photo
    res = CliRunner().invoke(app, ["explain", str(image), "--model", str(model), "--request", str(request), "--class", "1",
                                   "--iterations", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "saliency.npy").is_file() and (out / "overlay.png").is_file()
    assert f"wrote {out}/ saliency.npy" in res.output
    assert str(model) in res.output and "1 ($x^2$)" in res.output


def test_compare_prints_model_names_and_paths_as_written(tmp_path, photo, conv_model_file, monkeypatch, wide):
    monkeypatch.setattr(viz, "class_names", lambda *args, **kwargs: list(HOSTILE))
    models = [tmp_path / "m[/]" / "a [i].keras", tmp_path / "[bold]b.keras"]
    models[0].parent.mkdir(parents=True)
    for m in models:
        shutil.copy(conv_model_file, m)
    out = tmp_path / "cmp [/]"
    image, request = photo
    res = CliRunner().invoke(app, ["compare-backbones", str(image), "--models", ",".join(map(str, models)), "--request", str(request),
                                   "--class", "1", "--iterations", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "a [i]" in res.output and "[bold]b" in res.output and "class 1 ($x^2$)" in res.output
    assert f"wrote {out}/ comparison.png" in res.output
    assert {p.name for p in out.iterdir()} == {"comparison.png", "comparison.json", "saliency_a [i].npy", "saliency_[bold]b.npy"}


# ------------------------------------------------------------------------------------- outputs


def _unshare_works() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o ro none /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _unshare_works(), reason="needs a private mount namespace (unshare -Urm) to mount a read-only tmpfs")
def test_explain_to_a_read_only_file_system_is_one_line(tmp_path, photo, conv_model_file):
    """A real read-only file system (EROFS), in a child process: exit 2, one line, no traceback."""
    ro = tmp_path / "ro"
    ro.mkdir()
    image, request = photo
    script = 'mount -t tmpfs -o ro none "$1" && shift && exec "$@"'
    command = [sys.executable, "-m", "gsal_cli.main", "explain", str(image), "--model", str(conv_model_file), "--request", str(request),
               "--class", "1", "--iterations", "2", "--out", str(ro / "results" / "photo")]
    res = subprocess.run(["unshare", "-Urm", "sh", "-c", script, "sh", str(ro), *command], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "300"})
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert lines == [f"error: cannot write the outputs to {ro / 'results' / 'photo'}: read-only file system; "
                     "give --out a folder on a writable disk"], res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    # (nothing can be left on a read-only file system, and the mount lived in the child's namespace:
    # partial outputs are the subject of the tests with a disk that fills or fails part-way)


def _refuse(errno_code, when):
    """An OSError as the OS raises it, for calls whose first argument ``when`` accepts."""
    def call(real):
        def wrapped(*args, **kwargs):
            if when(*args):
                raise OSError(errno_code, os.strerror(errno_code), str(args[-1]))
            return real(*args, **kwargs)
        return wrapped
    return call


def test_explain_commit_failing_halfway_leaves_nothing(tmp_path, photo, conv_model_file, monkeypatch):
    """The last of the three moves into --out fails (EROFS): the two files already moved, the
    stage and the folders made for the outputs are removed."""
    out = tmp_path / "new" / "out"
    monkeypatch.setattr(os, "replace", _refuse(errno.EROFS, lambda src, dst: str(dst).endswith("summary.json"))(os.replace))
    image, request = photo
    res = CliRunner().invoke(app, ["explain", str(image), "--model", str(conv_model_file), "--request", str(request), "--class", "1",
                                   "--iterations", "2", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert f"cannot write the outputs to {out}: read-only file system" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "new").exists()


def test_compare_full_disk_while_writing_keeps_the_previous_outputs(tmp_path, photo, conv_model_file, monkeypatch):
    """ENOSPC while writing a saliency file into the stage: one line, and an existing output
    folder keeps exactly what it held."""
    out = tmp_path / "cmp"
    out.mkdir()
    (out / "comparison.json").write_text("earlier run")
    models = [tmp_path / "a.keras", tmp_path / "b.keras"]
    for m in models:
        shutil.copy(conv_model_file, m)
    monkeypatch.setattr(np, "save", _refuse(errno.ENOSPC, lambda path, *rest: "saliency_b" in str(path))(np.save))
    image, request = photo
    res = CliRunner().invoke(app, ["compare-backbones", str(image), "--models", ",".join(map(str, models)), "--request", str(request),
                                   "--class", "1", "--iterations", "2", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "no space left on the disk; free some space" in res.output and "Traceback" not in res.output
    assert [p.name for p in out.iterdir()] == ["comparison.json"] and (out / "comparison.json").read_text() == "earlier run"


def test_staged_outputs_errors_are_one_user_error_and_leave_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(GsalInputError, match="a file is in the way"):
        with staged_outputs(blocker):
            pass
    with pytest.raises(GsalInputError, match="a file is in the way"):
        with staged_outputs(blocker / "below"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    with pytest.raises(RuntimeError):  # not an OSError: raised as it is, still cleaned up
        with staged_outputs(tmp_path / "a" / "b") as stage:
            stage.path("x.txt").write_text("x")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    # Success: the files appear together, the stage is gone, an existing folder keeps other files.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("k")
    with staged_outputs(tmp_path / "out") as stage:
        stage.path("x.txt").write_text("x")
        assert not (tmp_path / "out" / "x.txt").exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["keep.txt", "x.txt"]
