"""One-image jobs on small networks: the thread rule, the declared input size read without
TensorFlow, the CLI's --threads, and the remapper switch (same saliency either way)."""

import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from typer.testing import CliRunner

import gsal_tf as gs
from gsal_cli.main import app
from gsal_tf import _graphs
from gsal_tf.loading import declared_input_shape
from gsal_tf.models.known_context import known_context_image, known_context_model
from gsal_tf.threads import SMALL_INPUT_PIXELS, threads_for, use_threads

SHAPE = (32, 32, 3)
PATCHES = [(0, 0, 8, 8)]
TARGET = (12, 12, 20, 20)


@pytest.mark.parametrize(
    "shape, batch, expected",
    [((64, 64, 1), 1, 1), ((200, 200, 3), 1, 1), ((257, 257, 3), 1, None), ((513, 513, 3), 1, None),
     ((64, 64, 1), 16, None), ((None, None, 3), 1, None), (None, 1, None), ((64,), 1, None)],
)
def test_one_thread_for_small_jobs_only(shape, batch, expected):
    assert threads_for(shape, batch) == expected
    assert SMALL_INPUT_PIXELS == 200 * 200


def test_use_threads_changes_nothing_once_tensorflow_runs():
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # TensorFlow runs in this process: its thread pool is fixed
    before = tf.config.threading.get_intra_op_parallelism_threads()
    other = 1 if before != 1 else 2
    assert use_threads(other) is False
    assert tf.config.threading.get_intra_op_parallelism_threads() == before
    assert use_threads(None) is False and use_threads(0) is False


def test_use_threads_sets_the_pool_before_the_first_op():
    script = ("import tensorflow as tf, gsal_tf as gs; ok = gs.threads.use_threads(1); tf.constant(1.0) + 1.0; "
              "print(ok, tf.config.threading.get_intra_op_parallelism_threads())")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_NUM_INTRAOP_THREADS", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["True", "1"]


def test_declared_input_shape_without_building_the_model(tmp_path):
    model = known_context_model(SHAPE, PATCHES, TARGET, num_classes=3)
    model.save(tmp_path / "m.keras")
    assert declared_input_shape(tmp_path / "m.keras") == SHAPE
    assert declared_input_shape("tmnist-mobilenetv2-strong") == (64, 64, 1)
    assert declared_input_shape(tmp_path / "missing.keras") is None  # not a file, not a zoo name
    (tmp_path / "broken.keras").write_text("not a zip")
    assert declared_input_shape(tmp_path / "broken.keras") is None
    with zipfile.ZipFile(tmp_path / "noconfig.keras", "w") as archive:
        archive.writestr("metadata.json", "{}")
    assert declared_input_shape(tmp_path / "noconfig.keras") is None
    (tmp_path / "saved").mkdir()
    assert declared_input_shape(tmp_path / "saved") is None
    free = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(2, 1, activation="softmax")])
    free.save(tmp_path / "free.keras")
    assert declared_input_shape(tmp_path / "free.keras") == (None, None, 3)
    assert threads_for(declared_input_shape(tmp_path / "free.keras")) is None


def test_cli_threads_option(tmp_path):
    model = known_context_model(SHAPE, PATCHES, TARGET, num_classes=3)
    model.save(tmp_path / "m.keras")
    np.save(tmp_path / "image.npy", known_context_image(SHAPE, PATCHES, seed=1))
    runner = CliRunner()
    args = ["explain", str(tmp_path / "image.npy"), "--model", str(tmp_path / "m.keras"), "--request-point", "15,15", "--iterations", "5"]
    ok = runner.invoke(app, [*args, "--threads", "1", "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "out" / "saliency.npy").is_file()
    bad = runner.invoke(app, [*args, "--threads", "-1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--threads" in bad.output
    assert not (tmp_path / "bad").exists()


def test_lean_and_default_graph_optimisation_give_the_same_saliency(monkeypatch):
    """Small batches run with grappler's slow passes and remapper off (a first-call saving), large
    ones with TensorFlow's defaults; the answer is the same."""
    model = known_context_model(SHAPE, PATCHES, TARGET, num_classes=3)
    image = known_context_image(SHAPE, PATCHES, seed=1)[None]
    request = np.zeros((1,) + SHAPE[:2], np.float32)
    request[0, TARGET[0]:TARGET[2], TARGET[1]:TARGET[3]] = 1
    results, lean = [], []
    original = _graphs.without_graph_optimizer

    def recorded(*args, **kwargs):
        lean.append(len(results))  # which run entered the lean setting
        return original(*args, **kwargs)

    monkeypatch.setattr(_graphs, "without_graph_optimizer", recorded)
    for threshold in (0, 10**9):  # TensorFlow's defaults, then lean
        monkeypatch.setattr(_graphs, "FULL_GRAPPLER_MIN_PIXELS", threshold)
        results.append(gs.GridSaliency(model, grid_size=(4, 4), iterations=20).explain(image, request, [1]).saliency)
    assert lean and set(lean) == {1}  # only the second run was lean
    np.testing.assert_allclose(results[0], results[1], atol=1e-6)
    assert results[0][0, :8, :8].mean() > 0.5  # the context the model reads is kept
