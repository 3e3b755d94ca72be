"""The Ray engine of ``explain_dataset``: same rows as the local engine, resume, a killed actor."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("pyarrow")
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

import gsal_tf as gs  # noqa: E402
from gsal_tf.scale import ENGINES, RequestPolicy, explain_dataset, load_stats, read_results  # noqa: E402
from gsal_tf.scale.ray_engine import RayEngine, _ExplainActor  # noqa: E402
from test_dataset_scale import make_pairs  # noqa: E402

OPTIONS = {"grid_size": (4, 4), "iterations": 3, "batch_size": 4}
RAY = {"actors": 2, "cpus_per_actor": 1}
FLOATS = ("original_score", "preserved_score", "no_context_score", "salient_mass", "context_area", "salient", "inflation",
          "context_pixels", "salient_by_distance", "pixels_by_distance")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray (2 CPUs) for the module; workers import gsal_tf from this checkout (PYTHONPATH)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with pytest.MonkeyPatch.context() as patch:  # restored after the module: later subprocesses see the usual environment
        patch.setenv("PYTHONPATH", os.pathsep.join([root, os.path.join(root, "cli"), os.environ.get("PYTHONPATH", "")]))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        yield
        ray.shutdown()


@pytest.fixture(scope="module")
def local_run(conv_model_file, tmp_path_factory):
    """7 images (21 requests, 6 shards) explained by the local engine: the reference."""
    root = tmp_path_factory.mktemp("data")
    images, labels = make_pairs(root, np.random.default_rng(0), n=7)
    model = gs.loading.load_model(conv_model_file)
    _run(model, images, labels, root / "local")
    return model, images, labels, root / "local"


def _crash_once_actor(shard: int, marker: str) -> type:
    """An actor class that ends its process (``os._exit``) on ``shard`` the first time: the marker
    file, created atomically, says it has crashed. Built in a function so Ray ships it by value
    (the workers need not import this test module)."""

    class CrashOnceActor(_ExplainActor):
        def __call__(self, rows: dict) -> dict:
            if shard in (int(k) for k in rows["shard"]):
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    pass
                else:
                    os.close(fd)
                    os._exit(1)
            return super().__call__(rows)

    return CrashOnceActor


class CrashOnceRayEngine(RayEngine):
    """The Ray engine whose actors crash once on ``crash_shard`` (fault injection, tests only)."""

    def __init__(self, crash_shard: int, marker: str, actors=None, cpus_per_actor=1, retries=3):
        super().__init__(actors=actors, cpus_per_actor=cpus_per_actor, retries=retries)
        self.actor_class = _crash_once_actor(crash_shard, marker)


@pytest.fixture
def crash_once_engine(monkeypatch):
    """Registers :class:`CrashOnceRayEngine` as ``engine="ray-crash-once"`` for one test."""
    monkeypatch.setitem(ENGINES, "ray-crash-once", f"{__name__}:CrashOnceRayEngine")
    return "ray-crash-once"


def _run(model, images, labels, out, **kw):
    return explain_dataset(model, images, out, labels=labels, options=OPTIONS, policy=RequestPolicy(zone="component", min_pixels=4),
                           store_maps=True, **kw)


def _columns(folder) -> dict:
    table = read_results(folder)
    return {name: table.column(name).to_pylist() for name in table.column_names}


def assert_same_results(a, b) -> None:
    """Same request keys in the same order and shards; float columns within 1e-6; same statistics and maps."""
    ca, cb = _columns(a), _columns(b)
    assert sorted(ca) == sorted(cb)
    for key in ca:
        if key in FLOATS:
            np.testing.assert_allclose(np.asarray(ca[key], float), np.asarray(cb[key], float), rtol=0, atol=1e-6, err_msg=key)
        else:
            assert ca[key] == cb[key], key
    assert sorted(p.name for p in (a / "requests").iterdir()) == sorted(p.name for p in (b / "requests").iterdir())
    for path in sorted((a / "maps").glob("part-*.npz")):
        with np.load(path) as ma, np.load(b / "maps" / path.name) as mb:
            for name in ma.files:
                if name.startswith("saliency"):  # float16 maps: to their precision near 1
                    np.testing.assert_allclose(ma[name].astype(np.float64), mb[name].astype(np.float64), rtol=0, atol=1e-3, err_msg=name)
                else:
                    np.testing.assert_array_equal(ma[name], mb[name])
    sa, _ = load_stats(a)
    sb, _ = load_stats(b)
    np.testing.assert_array_equal(sa.classes, sb.classes)
    for field in ("share", "inflation_share", "difference", "mean_fraction", "profile"):
        np.testing.assert_allclose(getattr(sa, field), getattr(sb, field), rtol=0, atol=1e-6, err_msg=field)


def _keys(folder) -> list:
    rows = _columns(folder)
    return list(zip(rows["sample_index"], rows["request_index"]))


def test_ray_engine_gives_the_local_engines_results(local_ray, local_run, tmp_path):
    model, images, labels, local = local_run
    summary = _run(model, images, labels, tmp_path / "ray", engine="ray", engine_options=RAY)
    assert summary.requests == 21
    assert_same_results(local, tmp_path / "ray")
    card = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert card["engine"] == "ray" and card["engine_options"]["actors"] == 2 and card["engine_options"]["cpus_per_actor"] == 1
    assert card["status"] == "complete"


def test_ray_engine_resumes_from_committed_shards(local_ray, local_run, tmp_path):
    """A local run cut after 3 of its 6 shards (as a kill leaves it), resumed by Ray: the whole run."""
    import shutil

    model, images, labels, local = local_run
    shutil.copytree(local, tmp_path / "cut")
    for k in range(3, 6):
        (tmp_path / "cut" / "requests" / f"part-{k:05d}.parquet").unlink()
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cut" / "requests").glob("part-*.parquet")}
    summary = _run(model, images, labels, tmp_path / "cut", engine="ray", engine_options=RAY)
    assert summary.requests == 21
    assert len(kept) == 3 and all((tmp_path / "cut" / "requests" / name).stat().st_mtime_ns == t for name, t in kept.items())  # not redone
    assert_same_results(local, tmp_path / "cut")


def test_killed_actor_is_restarted_and_nothing_is_lost_or_doubled(local_ray, local_run, crash_once_engine, tmp_path):
    """The actor explaining shard 2 ends its process (os._exit) the first time: Ray restarts it and
    retries the batch; the results equal the uninterrupted run, each request once."""
    model, images, labels, local = local_run
    marker = tmp_path / "crashed"
    _run(model, images, labels, tmp_path / "ray", engine=crash_once_engine,
         engine_options={**RAY, "crash_shard": 2, "marker": str(marker)})
    assert marker.is_file()  # the actor did die
    keys = _keys(tmp_path / "ray")
    assert len(keys) == len(set(keys)) == 21
    assert_same_results(local, tmp_path / "ray")


def test_cli_runs_on_ray(local_ray, local_run, conv_model_file, tmp_path):
    from typer.testing import CliRunner

    from gsal_cli.main import app

    _, images, labels, local = local_run
    args = ["explain-dataset", str(images), "--labels", str(labels), "--model", str(conv_model_file), "--out", str(tmp_path / "out"),
            "--grid", "4,4", "--iterations", "3", "--batch-size", "4", "--zone", "component", "--min-pixels", "4", "--maps"]
    result = CliRunner().invoke(app, args + ["--engine", "ray", "--actors", "2"])
    assert result.exit_code == 0, result.output
    assert "21 requests of 7 samples" in " ".join(result.output.split())
    card = json.loads((tmp_path / "out" / "run.json").read_text())
    assert card["engine"] == "ray" and card["engine_options"]["actors"] == 2
    assert_same_results(local, tmp_path / "out")


def test_failed_ray_run_keeps_committed_shards_and_resumes(local_ray, local_run, crash_once_engine, tmp_path):
    """Without retries an actor's death stops the run: the shards committed before it stay, in
    order, and a rerun resumes from them to the whole run."""
    model, images, labels, local = local_run
    marker = tmp_path / "crashed"
    with pytest.raises(Exception) as failure:
        _run(model, images, labels, tmp_path / "ray", engine=crash_once_engine,
             engine_options={**RAY, "retries": 0, "crash_shard": 3, "marker": str(marker)})
    assert marker.is_file() and "died" in str(failure.value).lower() + type(failure.value).__name__.lower()
    committed = sorted(p.name for p in (tmp_path / "ray" / "requests").glob("part-*.parquet"))
    assert committed == [f"part-{k:05d}.parquet" for k in range(len(committed))] and len(committed) <= 3
    assert json.loads((tmp_path / "ray" / "run.json").read_text())["status"] == "running"
    _run(model, images, labels, tmp_path / "ray", engine="ray", engine_options=RAY)
    keys = _keys(tmp_path / "ray")
    assert len(keys) == len(set(keys)) == 21
    assert_same_results(local, tmp_path / "ray")


def test_ray_run_failing_before_its_first_shard_leaves_nothing_and_redoes_damaged_shards(local_ray, local_run, tmp_path):
    """The run-or-nothing folder and the damaged-shard resume live in the job and the store, shared
    by both engines: on Ray too, bad labels in the first shard leave no folder, and a truncated
    shard is redone to the local engine's results."""
    import shutil

    import cv2

    from gsal_tf.errors import GsalInputError

    model, images, labels, local = local_run
    shutil.copytree(labels, tmp_path / "labels")
    bad = cv2.imread(str(tmp_path / "labels" / "img00.png"), cv2.IMREAD_UNCHANGED)
    bad[0, 0] = 9
    cv2.imwrite(str(tmp_path / "labels" / "img00.png"), bad)
    with pytest.raises(GsalInputError, match=r"img00.png hold ids \[9\]"):
        _run(model, images, tmp_path / "labels", tmp_path / "bad", engine="ray", engine_options=RAY)
    assert not (tmp_path / "bad").exists()
    shutil.copytree(local, tmp_path / "damaged")
    shard = tmp_path / "damaged" / "requests" / "part-00002.parquet"
    shard.write_bytes(shard.read_bytes()[:200])
    summary = _run(model, images, labels, tmp_path / "damaged", engine="ray", engine_options=RAY)
    assert summary.redone == ["part-00002.parquet"] and summary.requests == 21
    assert_same_results(local, tmp_path / "damaged")
