"""A training run killed after an epoch resumes where it stopped and ends where an uninterrupted run ends."""

import json

import numpy as np
import pytest

from conftest import TINY_DEEPLAB, generate_strong
from gsal_tf.benchmark.training import TrainConfig, epoch_order, train


@pytest.fixture(autouse=True)
def small_network(monkeypatch):
    """Resuming does not depend on the network: train() builds a three-convolution net with batch
    norm and two dropouts here (trainable weights, moving statistics, AdamW's moments and two
    dropout seeds, restored by position, all carried across a kill). It traces in seconds where
    the MobileNetV2 of TINY_DEEPLAB takes about a minute per train() call;
    tests/test_training_and_evaluation.py trains the real architecture."""
    import keras

    from gsal_tf.benchmark import training

    def build(architecture, input_shape, num_classes, **overrides):
        inputs = keras.Input(input_shape)
        x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
        x = keras.layers.Dropout(0.1)(keras.layers.ReLU()(keras.layers.BatchNormalization()(x)))
        x = keras.layers.Dropout(0.2)(keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x))
        outputs = keras.layers.Conv2D(num_classes, 1, activation="softmax")(x)
        return keras.Model(inputs, outputs)

    monkeypatch.setattr(training, "build_architecture", build)


class Stop(Exception):
    """Stands for a kill at the end of an epoch."""


def _config(**overrides):
    options = dict(epochs=3, batch_size=16, learning_rate=5e-3, warmup_epochs=0.2, val_fraction=0.1)
    return TrainConfig(architecture="mobilenetv2-tiny", model=dict(TINY_DEEPLAB), **{**options, **overrides})


def _train_killed_after(epoch, data_dir, run_dir, config):
    """Train until killed at the end of ``epoch``."""
    def kill(finished, row):
        if finished == epoch:
            raise Stop

    with pytest.raises(Stop):
        train(data_dir, run_dir, config, on_epoch_end=kill)


def _weights(run_dir):
    import keras

    return keras.saving.load_model(run_dir / "model.keras").get_weights()


def test_epoch_order_is_a_pure_permutation_per_epoch():
    a, b = epoch_order(50, 16, seed=0, epoch=2), epoch_order(50, 16, seed=0, epoch=2)
    assert a.shape == (3, 16) and np.array_equal(a, b)
    assert len(set(a.ravel().tolist())) == 48 and a.max() < 50
    assert not np.array_equal(a, epoch_order(50, 16, seed=0, epoch=3))
    assert not np.array_equal(a, epoch_order(50, 16, seed=1, epoch=2))


def test_a_killed_run_resumes_after_its_last_epoch_and_ends_identical(strong_dir, tmp_path):
    whole = train(strong_dir, tmp_path / "whole", _config())

    _train_killed_after(2, strong_dir, tmp_path / "cut", _config())
    state = json.loads((tmp_path / "cut" / "resume" / "state.json").read_text())
    assert state["next_epoch"] == 2 and not (tmp_path / "cut" / "metrics.json").exists()

    trained_epochs = []
    resumed = train(strong_dir, tmp_path / "cut", _config(), on_epoch_end=lambda epoch, row: trained_epochs.append(epoch))
    assert trained_epochs == [3]  # only the missing epoch ran
    for a, b in zip(_weights(tmp_path / "whole"), _weights(tmp_path / "cut")):
        np.testing.assert_array_equal(a, b)
    history_whole = json.loads((tmp_path / "whole" / "history.json").read_text())
    history_cut = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert [r["epoch"] for r in history_cut] == [1, 2, 3]
    assert [r["loss"] for r in history_cut] == [r["loss"] for r in history_whole]
    assert resumed["best_epoch"] == whole["best_epoch"] and resumed["test"] == whole["test"]
    assert not (tmp_path / "cut" / "resume").exists()  # gone once the run is complete


def test_a_saved_state_of_another_config_is_not_resumed(strong_dir, tmp_path):
    _train_killed_after(1, strong_dir, tmp_path / "run", _config())
    trained_epochs = []
    train(strong_dir, tmp_path / "run", _config(learning_rate=1e-3), on_epoch_end=lambda epoch, row: trained_epochs.append(epoch))
    assert trained_epochs == [1, 2, 3]  # another learning rate: started over


def test_a_kill_between_the_state_swaps_resumes_from_the_previous_state(strong_dir, tmp_path):
    _train_killed_after(1, strong_dir, tmp_path / "run", _config(epochs=2))
    (tmp_path / "run" / "resume").rename(tmp_path / "run" / "resume.old")  # as if killed after the first rename
    trained_epochs = []
    metrics = train(strong_dir, tmp_path / "run", _config(epochs=2), on_epoch_end=lambda epoch, row: trained_epochs.append(epoch))
    assert trained_epochs == [2] and metrics["train_seconds"] > 0
    assert not any((tmp_path / "run" / name).exists() for name in ("resume", "resume.old", "resume.part"))


def test_a_state_carried_to_another_machine_resumes_on_the_same_data_regenerated(strong_dir, mnist, tmp_path):
    import shutil

    _train_killed_after(1, strong_dir, tmp_path / "here", _config(epochs=2))
    elsewhere = generate_strong(mnist, tmp_path / "data-elsewhere")  # same law and seed, new folder and card

    def carry(target, with_best_weights=True):
        shutil.copytree(tmp_path / "here" / "resume", tmp_path / target / "resume")
        if with_best_weights:
            shutil.copy2(tmp_path / "here" / "model.weights.h5", tmp_path / target / "model.weights.h5")
        return tmp_path / target

    def epochs_trained(data, run):
        trained = []
        train(data, run, _config(epochs=2), on_epoch_end=lambda epoch, row: trained.append(epoch))
        return trained

    assert epochs_trained(elsewhere, carry("there")) == [2]
    # the state without the best epoch's weights: started over rather than end without them
    assert epochs_trained(elsewhere, carry("lost", with_best_weights=False)) == [1, 2]
    other = generate_strong(mnist, tmp_path / "data-other", seed=5)  # other samples: the state must not be used
    assert epochs_trained(other, carry("other")) == [1, 2]


def test_a_state_saved_with_the_earlier_card_fingerprint_still_resumes(strong_dir, tmp_path):
    from gsal_tf.benchmark import training
    from gsal_tf.benchmark.storage import read_card

    _train_killed_after(1, strong_dir, tmp_path / "run", _config(epochs=2))
    state_file = tmp_path / "run" / "resume" / "state.json"
    state = json.loads(state_file.read_text())
    split = training._training_split(strong_dir, _config(epochs=2))
    # the earlier versions' formula, written out here: if the library's copy drifts, old states stop resuming and this fails
    import dataclasses
    import hashlib

    text = json.dumps({"config": dataclasses.asdict(_config(epochs=2)), "card": read_card(strong_dir), "train": len(split.x_train),
                       "val": len(split.x_val), "first": float(split.x_train[0].sum()), "last": float(split.x_train[-1].sum())},
                      sort_keys=True, default=str)
    state["fingerprint"] = hashlib.sha256(text.encode()).hexdigest()
    state_file.write_text(json.dumps(state))
    trained_epochs = []
    train(strong_dir, tmp_path / "run", _config(epochs=2), on_epoch_end=lambda epoch, row: trained_epochs.append(epoch))
    assert trained_epochs == [2]
