"""Faults of dataset runs and their results folders: every one is one clear error (exit code 2 in
the CLI) and leaves a folder that is a run or nothing — failed starts, bad sizes, read-only and
full disks, damaged shards, foreign run cards, user text that looks like rich markup.

Read-only and full disks are real where the test may mount a tmpfs (root or CAP_SYS_ADMIN; skipped
with the reason otherwise); each also has a monkeypatched twin (the OSError raised where the
writer would meet it) so runs without mount rights still cover the path.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.errors import GsalInputError
from gsal_tf.scale import RequestPolicy, explain_dataset, read_results, store
from conftest import one_error
from test_dataset_scale import OPTIONS, ROOT, _columns, _run, make_cityscapes, make_pairs

pytest.importorskip("pyarrow")


@pytest.fixture(scope="module")
def model(conv_model_file):
    return gs.loading.load_model(conv_model_file)


@pytest.fixture(scope="module")
def clean(model, tmp_path_factory):
    """9 image/label pairs and their uninterrupted run (27 requests, 7 shards): the reference."""
    root = tmp_path_factory.mktemp("clean")
    images, labels = make_pairs(root, np.random.default_rng(0), n=9)
    _run(model, images, labels, root / "whole")
    return images, labels, root / "whole"


def cli(*args):
    from typer.testing import CliRunner

    from gsal_cli.main import app

    return CliRunner().invoke(app, [str(a) for a in args])


def cli_args(images, labels, out, conv_model_file, *extra):
    return ["explain-dataset", images, "--labels", labels, "--model", conv_model_file, "--out", out, "--grid", "4,4",
            "--iterations", "3", "--target", "0", "--batch-size", "4", "--zone", "component", "--min-pixels", "4", *extra]


def shard_files(folder) -> list:
    return sorted(p.name for p in (Path(folder) / "requests").glob("part-*.parquet"))


def temp_files(folder) -> list:
    return sorted(p.name for p in Path(folder).rglob(".*.tmp"))


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    """A real tmpfs mounted at ``path`` (``options`` such as "size=1m" or "ro"); skips the test
    when this process may not mount."""
    path.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command: the real-disk variant needs one (the monkeypatched variant covers the path)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode}): needs root or CAP_SYS_ADMIN; "
                    "the monkeypatched variant covers the path")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(disk: Path) -> Path:
    """Fill the file system of ``disk`` with one file, to the last byte; the file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


# -- a failed start leaves nothing ---------------------------------------------------------------


def test_bad_labels_in_the_first_shard_leave_no_folder(model, tmp_path, rng):
    images, labels = make_pairs(tmp_path, rng, n=4)
    good = cv2.imread(str(labels / "img00.png"), cv2.IMREAD_UNCHANGED)
    bad = good.copy()
    bad[0, 0] = 9
    cv2.imwrite(str(labels / "img00.png"), bad)
    with pytest.raises(GsalInputError, match=r"labels of img00.png hold ids \[9\] outside the network's classes 0..2"):
        _run(model, images, labels, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    (tmp_path / "given").mkdir()  # a folder the user made stays, empty
    with pytest.raises(GsalInputError, match="outside the network's classes"):
        _run(model, images, labels, tmp_path / "given")
    assert list((tmp_path / "given").iterdir()) == []
    # fixed labels and other settings: a new run in the same folders
    cv2.imwrite(str(labels / "img00.png"), good)
    for out in ("out", "given"):
        summary = explain_dataset(model, images, tmp_path / out, labels=labels, options={**OPTIONS, "lam": 2.0},
                                  policy=RequestPolicy(zone="component", min_pixels=4))
        assert summary.requests == 12 and store.read_card(tmp_path / out)["status"] == "complete"


def test_cli_bad_labels_then_a_rerun_of_other_settings(conv_model_file, tmp_path, rng):
    images, labels = make_pairs(tmp_path, rng, n=4)
    good = cv2.imread(str(labels / "img01.png"), cv2.IMREAD_UNCHANGED)
    bad = good.copy()
    bad[0, 0] = 7
    cv2.imwrite(str(labels / "img01.png"), bad)
    out = tmp_path / "out"
    one_error(cli(*cli_args(images, labels, out, conv_model_file)), "labels of img01.png hold ids [7]", "give the label table")
    assert not out.exists()
    cv2.imwrite(str(labels / "img01.png"), good)
    result = cli(*cli_args(images, labels, out, conv_model_file, "--lam", "2"))
    assert result.exit_code == 0, result.output
    assert "12 requests of 4 samples" in " ".join(result.output.split())


def test_explainer_error_before_the_first_shard_leaves_no_folder(model, clean, tmp_path):
    """An error only the explainer can find (a grid finer than the 16x16 images) comes after the
    card is written: the start is removed all the same."""
    images, labels, _ = clean
    with pytest.raises(GsalInputError, match="finer than the image"):
        explain_dataset(model, images, tmp_path / "out", labels=labels, options={**OPTIONS, "grid_size": (32, 32)},
                        policy=RequestPolicy(zone="component", min_pixels=4))
    assert not (tmp_path / "out").exists()


def test_cityscapes_raw_id_outside_the_table_leaves_no_folder(tmp_path, rng):
    import keras

    keras.utils.set_random_seed(1)
    net = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(19, 3, padding="same", activation="softmax")])
    root = make_cityscapes(tmp_path / "cs", rng)
    label = root / "gtFine" / "val" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png"
    good = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    bad = good.copy()
    bad[3, 3] = 40
    cv2.imwrite(str(label), bad)
    policy = RequestPolicy(zone="class", classes=(13,), min_pixels=4)
    with pytest.raises(GsalInputError, match=r"raw label ids \[40\] are not in the cityscapes label table"):
        explain_dataset(net, root, tmp_path / "out", options=OPTIONS, policy=policy)
    assert not (tmp_path / "out").exists()
    cv2.imwrite(str(label), good)
    summary = explain_dataset(net, root, tmp_path / "out", options={**OPTIONS, "iterations": 2}, policy=policy)
    assert summary.requests == 4


def test_folder_of_a_failed_start_is_reused(model, clean, tmp_path):
    """What earlier versions or a kill before the first shard left — a card without shards of
    other settings, an empty requests/, a dead writer's temporary file — is no run."""
    images, labels, whole = clean
    poisoned = tmp_path / "poisoned"
    (poisoned / "requests").mkdir(parents=True)
    card = {**store.read_card(whole), "status": "running"}
    card["settings"] = {**card["settings"], "input_size": [32, 32]}
    (poisoned / "run.json").write_text(json.dumps(card))
    killed = tmp_path / "killed"
    (killed / "requests").mkdir(parents=True)
    (killed / "requests" / ".part-00000.parquet.999999999.abcd1234.tmp").write_bytes(b"half a shard")
    for folder in (poisoned, killed):
        _run(model, images, labels, folder)
        assert _columns(folder) == _columns(whole) and temp_files(folder) == []
    # a complete run of other settings is still refused, with or without rows
    with pytest.raises(GsalInputError, match="holds results of other settings"):
        explain_dataset(model, images, poisoned, labels=labels, options={**OPTIONS, "lam": 3.0},
                        policy=RequestPolicy(zone="component", min_pixels=4))


def test_unreadable_first_image_is_skipped(model, clean, tmp_path):
    """The context classes come from the first readable sample, not from a corrupt first one."""
    images, labels, _ = clean
    shutil.copytree(images, tmp_path / "images")
    (tmp_path / "images" / "img00.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    summary = _run(model, tmp_path / "images", labels, tmp_path / "out")
    assert [s["key"] for s in summary.skipped] == ["img00.png"] and summary.requests == 3 * 8
    rows = _columns(tmp_path / "out")
    assert 0 not in rows["sample_index"] and all(len(v) == 3 for v in rows["salient"])
    assert store.read_card(tmp_path / "out")["settings"]["context_classes"] == ["class 0", "class 1", "class 2"]
    with pytest.raises(GsalInputError, match="sample 0: cannot read"):
        _run(model, tmp_path / "images", labels, tmp_path / "stop", on_error="stop")
    assert not (tmp_path / "stop").exists()


# -- sizes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("option, value, phrase", [
    ("--input-size", "-64,64", "--input-size must be two positive integers ROWS,COLS; got '-64,64'"),
    ("--input-size", "0", "--input-size must be two positive integers ROWS,COLS; got '0'"),
    ("--grid", "4,-1", "--grid must be two positive integers ROWS,COLS; got '4,-1'"),
    ("--input-size", "64,big", "--input-size '64,big': expected N or ROWS,COLS"),
])
def test_negative_or_malformed_sizes_are_one_line(conv_model_file, tmp_path, rng, option, value, phrase):
    images, labels = make_pairs(tmp_path, rng, n=2)
    args = cli_args(images, labels, tmp_path / "out", conv_model_file)
    args[args.index("--grid"):args.index("--grid") + 2] = []
    one_error(cli(*args, option, value), phrase)
    assert not (tmp_path / "out").exists()


def test_an_option_the_method_lacks_is_one_line(conv_model_file, tmp_path, rng):
    """Grid saliency's --iterations (given by cli_args) with --method smoothgrad: named, nothing written."""
    images, labels = make_pairs(tmp_path, rng, n=2)
    one_error(cli(*cli_args(images, labels, tmp_path / "out", conv_model_file), "--method", "smoothgrad"),
              "--grid, --iterations, --target are not options of --method smoothgrad; drop them or choose --method grid_saliency")
    assert not (tmp_path / "out").exists()
    plain = ["explain-dataset", images, "--labels", labels, "--model", conv_model_file, "--out", tmp_path / "out", "--limit", "1"]
    one_error(cli(*plain, "--method", "vanilla_gradients", "--baseline", "mean"), "--baseline is not an option of --method vanilla_gradients")
    assert not (tmp_path / "out").exists()
    # an old method name still works (it warns), with the options of the method it names
    with pytest.warns(DeprecationWarning, match="'grid'"):
        result = cli(*cli_args(images, labels, tmp_path / "old", conv_model_file), "--method", "grid", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "old" / "run.json").read_text())["settings"]["explainer"]["method"] == "grid_saliency"
    with pytest.raises(GsalInputError, match=r"unknown option\(s\) iterations in the options of smoothgrad; known: "):
        gs.make_explainer("smoothgrad", gs.loading.load_model(conv_model_file), iterations=3)


def test_cli_passes_the_perturbation_options(conv_model_file, tmp_path, rng):
    images, labels = make_pairs(tmp_path, rng, n=2)
    result = cli(*cli_args(images, labels, tmp_path / "out", conv_model_file), "--baseline", "blur", "--mode", "full",
                 "--upsampling", "bilinear", "--limit", "1")
    assert result.exit_code == 0, result.output
    explainer = json.loads((tmp_path / "out" / "run.json").read_text())["settings"]["explainer"]
    assert (explainer["baseline"], explainer["mode"], explainer["upsampling"]) == ("blur", "full", "bilinear")


def test_library_checks_input_size(model, tmp_path, rng):
    images, labels = make_pairs(tmp_path, rng, n=2)
    with pytest.raises(GsalInputError, match=r"input_size must be two positive integers H,W; got \(-64, 64\)"):
        _run(model, images, labels, tmp_path / "out", input_size=(-64, 64))
    assert not (tmp_path / "out").exists()


# -- read-only and full disks --------------------------------------------------------------------


def test_read_only_file_system_real_mount(conv_model_file, clean, tmp_path):
    images, labels, _ = clean
    with tmpfs(tmp_path / "ro", "ro") as disk:
        one_error(cli(*cli_args(images, labels, disk / "out", conv_model_file)), f"cannot write {disk / 'out'}: the file system is read-only")
        assert list(disk.iterdir()) == []


def test_results_on_a_disk_turned_read_only(conv_model_file, clean, tmp_path):
    """A complete run on a disk remounted read-only: a rerun reads it back (it writes nothing, not
    even its card); a run with another folder there and `gsal stats` writing next to it are one
    line each; the rows are untouched and still read."""
    images, labels, whole = clean
    with tmpfs(tmp_path / "disk", "size=8m") as disk:
        assert cli(*cli_args(images, labels, disk / "out", conv_model_file)).exit_code == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        again = cli(*cli_args(images, labels, disk / "out", conv_model_file))
        assert again.exit_code == 0 and "27 requests of 9 samples" in " ".join(again.output.split()), again.output
        one_error(cli(*cli_args(images, labels, disk / "other", conv_model_file)), "the file system is read-only")
        one_error(cli("stats", disk / "out"), "the file system is read-only; give --out on a writable disk")
        assert _columns(disk / "out") == _columns(whole)
        assert cli("stats", disk / "out", "--out", tmp_path / "figures").exit_code == 0


def test_read_only_file_system_monkeypatched(conv_model_file, clean, tmp_path, monkeypatch):
    images, labels, _ = clean
    ro = tmp_path / "ro"
    real_mkdir = os.mkdir

    def mkdir(path, *args, **kwargs):
        if Path(path).is_relative_to(ro):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", mkdir)
    one_error(cli(*cli_args(images, labels, ro / "out", conv_model_file)), f"cannot write {ro / 'out'}: the file system is read-only")
    assert not ro.exists()


def test_full_disk_real_mount_then_resume(model, clean, tmp_path):
    """A tmpfs of 1 MiB filled up after two shards: one clear error, the two shards intact and no
    partial file; after freeing the space the same run resumes to the clean run's rows."""
    images, labels, whole = clean
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        filled = []

        def progress(done, total, requests):
            if requests >= 8 and not filled:
                filled.append(fill(disk))

        with pytest.raises(GsalInputError, match=r"no space left on the device; the shards already written are kept: free some space"):
            _run(model, images, labels, disk / "out", progress=progress)
        assert shard_files(disk / "out")[:2] == ["part-00000.parquet", "part-00001.parquet"]
        assert len(shard_files(disk / "out")) < 7 and temp_files(disk / "out") == []
        for name in shard_files(disk / "out"):
            store.read_shard(disk / "out" / "requests" / name)
        assert store.read_card(disk / "out")["status"] == "running"
        filled[0].unlink()
        _run(model, images, labels, disk / "out")
        assert _columns(disk / "out") == _columns(whole) and store.read_card(disk / "out")["status"] == "complete"


def test_cli_full_disk_real_mount(conv_model_file, clean, tmp_path):
    """A disk full from the start: one line, exit 2, nothing left; after freeing space the run works."""
    images, labels, whole = clean
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        filler = fill(disk)
        one_error(cli(*cli_args(images, labels, disk / "out", conv_model_file)), "no space left on the device")
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
        filler.unlink()
        result = cli(*cli_args(images, labels, disk / "out", conv_model_file))
        assert result.exit_code == 0, result.output
        assert _columns(disk / "out") == _columns(whole)


@pytest.mark.parametrize("full_at", [0, 2])
def test_full_disk_monkeypatched_then_resume(model, clean, tmp_path, monkeypatch, full_at):
    """ENOSPC from the shard writer at shard ``full_at`` (after half the bytes): at 0 nothing is
    left; at 2 shards 0 and 1 stay intact; either way the rerun gives the clean run's rows."""
    images, labels, whole = clean
    write = store._write_file

    def write_until_full(path, data):
        if path.name.startswith(f".part-{full_at:05d}.parquet."):
            store._write_file = write  # the disk is freed after this failure
            write(path, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, data)

    monkeypatch.setattr(store, "_write_file", write_until_full)
    out = tmp_path / "out"
    with pytest.raises(GsalInputError, match="no space left on the device"):
        _run(model, images, labels, out)
    if full_at == 0:
        assert not out.exists()
    else:
        assert shard_files(out) == ["part-00000.parquet", "part-00001.parquet"] and temp_files(out) == []
        assert _columns(out) == {k: v[:8] for k, v in _columns(whole).items()}
    _run(model, images, labels, out)
    assert _columns(out) == _columns(whole)


def test_a_first_shard_whose_table_fails_after_its_maps_leaves_a_reusable_folder(model, tmp_path, rng, monkeypatch):
    """With --maps, shard 0's map file is written before its table: a full disk between the two
    leaves no folder behind, and a folder holding such a map is reused by the next run."""
    images, labels = make_pairs(tmp_path, rng, n=4)
    write = store._write_file

    def full_at_the_table(path, data):
        if path.name.startswith(".part-00000.parquet."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write(path, data)

    monkeypatch.setattr(store, "_write_file", full_at_the_table)
    out = tmp_path / "out"
    with pytest.raises(GsalInputError, match="no space left on the device"):
        explain_dataset(model, images, out, labels=labels, options=OPTIONS, store_maps=True, policy=RequestPolicy(zone="component", min_pixels=4))
    assert not out.exists()
    # a folder left with an orphan map (e.g. by a killed process) does not block the next run
    (out / "maps").mkdir(parents=True)
    (out / "maps" / "part-00000.npz").write_bytes(b"orphan")
    monkeypatch.setattr(store, "_write_file", write)
    summary = explain_dataset(model, images, out, labels=labels, options={**OPTIONS, "lam": 2.0}, store_maps=True,
                              policy=RequestPolicy(zone="component", min_pixels=4))
    assert summary.requests == 12 and store.read_card(out)["status"] == "complete"


# -- damaged shards and foreign cards ------------------------------------------------------------


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if how == "truncated" else np.random.default_rng(5).bytes(len(data)))


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_stats_on_a_damaged_shard_names_it(clean, tmp_path, how):
    _, _, whole = clean
    shutil.copytree(whole, tmp_path / "out")
    damage(tmp_path / "out" / "requests" / "part-00003.parquet", how)
    one_error(cli("stats", tmp_path / "out"), "part-00003.parquet is damaged", "delete it and run the same explain-dataset command again")
    with pytest.raises(GsalInputError, match="part-00003.parquet is damaged"):
        read_results(tmp_path / "out")


@pytest.mark.parametrize("how", ["truncated", "random"])
def test_resume_redoes_a_damaged_shard(model, clean, tmp_path, how):
    images, labels, whole = clean
    shutil.copytree(whole, tmp_path / "out")
    damage(tmp_path / "out" / "requests" / "part-00003.parquet", how)
    summary = _run(model, images, labels, tmp_path / "out")
    assert summary.redone == ["part-00003.parquet"] and summary.requests == 27
    assert _columns(tmp_path / "out") == _columns(whole)
    # the advice of the error message: delete the shard and run again
    damage(tmp_path / "out" / "requests" / "part-00001.parquet", how)
    (tmp_path / "out" / "requests" / "part-00001.parquet").unlink()
    _run(model, images, labels, tmp_path / "out")
    assert _columns(tmp_path / "out") == _columns(whole)


def test_cli_resume_reports_a_redone_shard(conv_model_file, clean, tmp_path):
    images, labels, whole = clean
    assert cli(*cli_args(images, labels, tmp_path / "out", conv_model_file)).exit_code == 0
    damage(tmp_path / "out" / "requests" / "part-00005.parquet", "truncated")
    result = cli(*cli_args(images, labels, tmp_path / "out", conv_model_file))
    assert result.exit_code == 0, result.output
    assert "redid damaged shard part-00005.parquet" in " ".join(result.output.split())
    assert _columns(tmp_path / "out") == _columns(whole)


def test_run_card_of_another_version_is_one_line(model, clean, tmp_path):
    images, labels, whole = clean
    shutil.copytree(whole, tmp_path / "out")
    card = json.loads((tmp_path / "out" / "run.json").read_text())
    (tmp_path / "out" / "run.json").write_text(json.dumps({**card, "version": 2, "versions": {"gsal_tf": "9.0"}}))
    one_error(cli("stats", tmp_path / "out"), "is a results card of format version 2, written by gsal-tf 9.0",
              "read it with the gsal-tf that wrote it, or explain the dataset again into a new results folder")
    with pytest.raises(GsalInputError, match="format version 2"):
        _run(model, images, labels, tmp_path / "out")
    assert shard_files(tmp_path / "out") == shard_files(whole)  # nothing touched
    (tmp_path / "out" / "run.json").write_text(json.dumps({k: v for k, v in card.items() if k != "settings"}))
    one_error(cli("stats", tmp_path / "out"), "holds no run settings")


# -- user text is data -------------------------------------------------------------------------------


def test_markup_in_paths_and_class_names_is_printed_as_text(model, conv_model_file, clean, tmp_path):
    images, labels, _ = clean
    out = tmp_path / "out[/]"
    result = cli(*cli_args(images, labels, out, conv_model_file))
    assert result.exit_code == 0, result.output
    assert "".join(f"wrote {out}/".split()) in "".join(result.output.split())
    names = ("[bold]road", "[/]", "car[/red]")
    explain_dataset(model, images, tmp_path / "named", labels=labels, options=OPTIONS, class_names=names,
                    policy=RequestPolicy(zone="component", min_pixels=4), limit=3)
    result = cli("stats", tmp_path / "named", "--out", tmp_path / "figs[/]")
    assert result.exit_code == 0, result.output
    for name in names:
        assert name in result.output
    assert str(tmp_path / "figs[/]") in "".join(result.output.split())


# -- concurrent runs -----------------------------------------------------------------------------------


def test_two_concurrent_runs_into_one_folder(conv_model_file, clean, tmp_path):
    images, labels, whole = clean
    script = textwrap.dedent(f"""
        import gsal_tf as gs
        from gsal_tf.scale import RequestPolicy, explain_dataset
        model = gs.loading.load_model({str(conv_model_file)!r})
        explain_dataset(model, {str(images)!r}, {str(tmp_path / 'out')!r}, labels={str(labels)!r}, options={OPTIONS!r},
                        policy=RequestPolicy(zone="component", min_pixels=4))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "cli")])}
    runs = [subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err[-2000:]
    assert _columns(tmp_path / "out") == _columns(whole) and temp_files(tmp_path / "out") == []
    assert store.read_card(tmp_path / "out")["status"] == "complete"


# -- CamVid trees and label mappings -------------------------------------------------------------------


def camvid_cli(root, out, conv_model_file, mapping, *extra):
    return cli("explain-dataset", root, "--model", conv_model_file, "--out", out, "--mapping", mapping, "--zone", "class",
               "--min-pixels", "4", "--grid", "4,4", "--iterations", "3", "--target", "0", "--batch-size", "2", *extra)


def test_cli_bad_camvid_trees_and_mappings_are_one_line_and_write_nothing(conv_model_file, tmp_path, rng):
    from test_camvid import make_camvid, tiny_mapping_toml

    mapping = tiny_mapping_toml(tmp_path / "tiny.toml")
    missing = make_camvid(tmp_path / "missing", rng, n=3)
    (missing / "testannot" / "0001TP_000002.png").unlink()
    other_size = make_camvid(tmp_path / "size", rng, n=3)
    cv2.imwrite(str(other_size / "testannot" / "0001TP_000000.png"), np.zeros((12, 16), np.uint8))  # in the first shard
    outside = make_camvid(tmp_path / "ids", rng, n=3, layout="list")
    label = cv2.imread(str(outside / "testannot" / "testannot_00000.png"), cv2.IMREAD_UNCHANGED)
    label[5, 5] = 12
    cv2.imwrite(str(outside / "testannot" / "testannot_00000.png"), label)
    good = make_camvid(tmp_path / "good", rng, n=3)
    lacking = tiny_mapping_toml(tmp_path / "lacking.toml", extra='bicyclist = ["rider"]\n')
    cases = [
        (missing, mapping, ("1 CamVid frames of split 'test' have no annotation (first: 0001TP_000002.png",)),
        (other_size, mapping, ("0001TP_000000.png is 12x16; its image is 16x16: they must match",)),
        (outside, mapping, ("testannot_00000.png: label ids [12] are outside the camvid classes 0..10 (and 11 = ignore)",)),
        (good, "cityscapes-camvid", ("mapping cityscapes-camvid is for a network of 19 classes", "this network has 3 and no class names")),
        (good, lacking, ("[classes] bicyclist names 'rider', which is not one of the network's classes (3 classes: background, person, vehicle)",)),
        (good, "kitti-camvid", ("mapping 'kitti-camvid' is neither a shipped mapping",)),
    ]
    for root, given, phrases in cases:
        out = tmp_path / f"out-{root.name}"
        one_error(camvid_cli(root, out, conv_model_file, given), *phrases)
        assert not out.exists(), root


def test_cli_a_zoo_network_lacking_a_class_of_the_mapping(tmp_path, rng):
    from test_camvid import make_camvid

    root = make_camvid(tmp_path / "CamVid", rng, n=1)
    result = cli("explain-dataset", root, "--model", "pascal-mobilenetv2-0.5", "--out", tmp_path / "out", "--mapping", "cityscapes-camvid")
    one_error(result, "mapping cityscapes-camvid names network classes this network lacks: sky, building, pole, road",
              "(its 21 classes: background, aeroplane")
    assert not (tmp_path / "out").exists()


def test_a_bad_camvid_frame_after_the_first_shard_keeps_the_committed_ones(model, conv_model_file, tmp_path, rng):
    """Frames 0-1 and 2-3 are committed before frame 4's annotation is found to be of another size:
    the run stops with that error (one line in the CLI), the shards stay, and once the annotation
    is fixed the run resumes to the rows of a clean run."""
    from test_camvid import camvid_labels, make_camvid, tiny_mapping_toml

    mapping = tiny_mapping_toml(tmp_path / "tiny.toml")
    policy = RequestPolicy(zone="class", classes=(8,), min_pixels=4, mapping=mapping)
    options = {**OPTIONS, "batch_size": 2}
    root = make_camvid(tmp_path / "CamVid", rng, n=6)
    clean_root = tmp_path / "clean"
    shutil.copytree(root, clean_root)
    explain_dataset(model, clean_root, tmp_path / "whole", options=options, policy=policy)
    annotation = root / "testannot" / "0001TP_000004.png"
    cv2.imwrite(str(annotation), np.zeros((12, 16), np.uint8))
    with pytest.raises(GsalInputError, match="0001TP_000004.png is 12x16; its image is 16x16"):
        explain_dataset(model, root, tmp_path / "out", options=options, policy=policy)
    one_error(camvid_cli(root, tmp_path / "cli-out", conv_model_file, mapping, "--classes", "8"), "0001TP_000004.png is 12x16")
    for out in ("out", "cli-out"):
        assert shard_files(tmp_path / out) == ["part-00000.parquet", "part-00001.parquet"] and temp_files(tmp_path / out) == []
    cv2.imwrite(str(annotation), camvid_labels((16, 16), 4))
    summary = explain_dataset(model, root, tmp_path / "out", options=options, policy=policy)
    assert summary.requests == 6 and _columns(tmp_path / "out") == _columns(tmp_path / "whole")
    result = camvid_cli(root, tmp_path / "cli-out", conv_model_file, mapping, "--classes", "8")
    assert result.exit_code == 0, result.output
    assert "6 requests of 6 samples" in " ".join(result.output.split())
    assert _columns(tmp_path / "cli-out")["class_id"] == [2] * 6
