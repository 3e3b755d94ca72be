"""The disk cache of compiled explainer graphs (gsal_tf.graph_cache): a graph loaded from disk
gives the traced graph's explanation, reads the model's current weights (never stale ones), and
any mismatch falls back to tracing."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf import graph_cache

from conftest import TINY_DEEPLAB

SHAPE = (64, 64, 1)


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    monkeypatch.setenv("GSAL_GRAPH_CACHE", "1")
    monkeypatch.setenv("GSAL_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "graphs"


def tiny(seed=0, **overrides):
    keras.utils.set_random_seed(seed)
    return gs.models.deeplabv3plus("mobilenetv2", SHAPE, 11, **{**TINY_DEEPLAB, **overrides})


@pytest.fixture(scope="module")
def trained():
    """The zoo's strongly biased MobileNetV2 and its demo sample: a model whose explanation is not trivial."""
    from gsal_tf.zoo.demo import demo_sample

    sample = demo_sample()
    return gs.zoo.load("tmnist-mobilenetv2-strong"), sample["image"][None], sample["digit_mask"][None], [int(sample["digit"])]


def twin(model):
    """Another model object with the same architecture and weights (as a new process would build)."""
    other = keras.Model.from_config(model.get_config())
    other.set_weights(model.get_weights())
    return other


def explain(model, images, requests, classes, **options):
    return gs.GridSaliency(model, grid_size=(8, 8), iterations=30, **options).explain(images, requests, classes)


def test_a_graph_loaded_from_disk_gives_the_traced_explanation(cache_on, trained, traces):
    model, *inputs = trained
    model = twin(model)  # not yet in this process's memory cache (other tests use the fixture's)
    traced = explain(model, *inputs)
    assert len(list(cache_on.glob("*.pb"))) == 1 and len(list(cache_on.glob("*.json"))) == 1
    before = traces()
    loaded = explain(twin(model), *inputs)  # a new model object: not in this process's memory cache
    assert traces() == before, "the graph came from disk, no trace"
    assert traced.grid.max() - traced.grid.min() > 0.25  # a non-trivial mask is compared (not uniform)
    np.testing.assert_allclose(loaded.grid, traced.grid, atol=1e-6)
    np.testing.assert_allclose(loaded.saliency, traced.saliency, atol=1e-6)
    np.testing.assert_allclose(loaded.preserved_score, traced.preserved_score, atol=1e-6)
    # Hyper-parameters are graph inputs: another lam reuses the cached graph.
    other = explain(twin(model), *inputs, lam=0.3, learning_rate=0.05)
    assert traces() == before
    np.testing.assert_allclose(other.saliency, explain(model, *inputs, lam=0.3, learning_rate=0.05).saliency, atol=1e-6)


def test_a_changed_weight_is_read_never_a_stale_copy(cache_on, trained, monkeypatch, traces):
    model, *inputs = trained
    model = twin(model)
    original = explain(model, *inputs)
    changed = twin(model)
    bias = changed.get_layer("logits").bias
    bias.assign(bias.numpy() + np.where(np.arange(11) == inputs[2][0], -2.0, 0.0).astype(np.float32))
    before = traces()
    from_disk = explain(changed, *inputs)
    assert traces() == before
    monkeypatch.setenv("GSAL_GRAPH_CACHE", "0")  # the reference: the changed model traced afresh
    fresh = explain(twin(changed), *inputs)
    np.testing.assert_allclose(from_disk.saliency, fresh.saliency, atol=1e-6)
    np.testing.assert_allclose(from_disk.original_score, fresh.original_score, atol=1e-6)
    assert from_disk.original_score[0] < original.original_score[0] - 0.05  # the new weight was read


def test_keys_follow_architecture_settings_and_layer_code(cache_on):
    a, b = tiny(), tiny(seed=3)
    structure = ("GridSaliency", SHAPE, (4, 4))
    assert graph_cache.graph_key(structure, a) == graph_cache.graph_key(structure, b)  # weights are not in it
    assert graph_cache.graph_key(structure, a) != graph_cache.graph_key(structure, tiny(decoder_filters=4))
    assert graph_cache.graph_key(structure, a) != graph_cache.graph_key(("GridSaliency", SHAPE, (8, 8)), a)
    assert graph_cache.model_fingerprint(lambda x: x) is None  # a plain callable is never cached
    readout = gs.models.known_context_model(SHAPE, [(0, 0, 8, 8)], (24, 24, 40, 40))
    assert "PatchContextReadout" in graph_cache._class_source(type(readout.layers[-1]))


def test_a_corrupt_or_foreign_entry_is_retraced(cache_on, trained, traces):
    model, *inputs = trained
    model = twin(model)
    reference = explain(model, *inputs)
    (graph,) = cache_on.glob("*.pb")
    graph.write_bytes(graph.read_bytes()[:1000])  # truncated: its sha256 no longer matches the card
    before = traces()
    again = explain(twin(model), *inputs)
    assert traces() == before + 1
    np.testing.assert_allclose(again.saliency, reference.saliency, atol=1e-6)


def test_switched_off_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("GSAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GSAL_GRAPH_CACHE", "0")
    model = tiny()
    gs.GridSaliency(model, grid_size=(4, 4), iterations=2).explain(np.zeros((1, *SHAPE), np.float32), np.pad(np.ones((1, 8, 8)), ((0, 0), (28, 28), (28, 28))), [1])
    assert not (tmp_path / "home" / "graphs").exists()


def test_a_new_process_explains_the_demo_from_the_cache_with_the_same_saliency(cache_on):
    """The use the cache exists for: `gsal explain --demo` in one process, then in another."""
    script = textwrap.dedent("""
        import sys, numpy as np
        import gsal_tf as gs
        sys.path.insert(0, sys.argv[2])
        from tracing import TraceCounter
        from gsal_tf.zoo.demo import load_demo
        traces = TraceCounter().install(setattr)
        case = load_demo()
        r = gs.GridSaliency(case["model"]).explain(case["image"][None], case["request"][None], [case["class_id"]])
        np.save(sys.argv[1], r.saliency)
        print("traces", traces())
    """)
    env = {**os.environ, "GSAL_GRAPH_CACHE": "1", "GSAL_HOME": str(cache_on.parent), "TF_CPP_MIN_LOG_LEVEL": "3"}
    outputs = []
    for run in ("first", "second"):
        out = cache_on.parent / f"{run}.npy"
        done = subprocess.run([sys.executable, "-c", script, str(out), str(Path(__file__).parent)], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs.append((done.stdout.split()[-1], np.load(out)))
    assert outputs[0][0] == "1" and outputs[1][0] == "0"  # traced once, then loaded
    np.testing.assert_allclose(outputs[1][1], outputs[0][1], atol=1e-6)
    assert outputs[0][1].max() > 0


def test_explainer_graphs_run_one_round_of_grappler_and_the_thread_gets_its_settings_back():
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.eager import context

    from gsal_tf._graphs import SKIPPED_GRAPH_PASSES, without_graph_optimizer

    ctx = context.context()
    outside = ctx.function_call_options
    options_before = tf.config.optimizer.get_experimental_options()
    with without_graph_optimizer():
        inside = config_pb2.ConfigProto.FromString(ctx.function_call_options.config_proto_serialized)
        rewrite = inside.graph_options.rewrite_options
        assert rewrite.meta_optimizer_iterations == rewriter_config_pb2.RewriterConfig.ONE
        assert rewrite.memory_optimization == rewriter_config_pb2.RewriterConfig.NO_MEM_OPT  # no GPU here
        assert rewrite.remapping != rewriter_config_pb2.RewriterConfig.OFF  # the remapper stays on
        assert all(getattr(rewrite, name) == rewriter_config_pb2.RewriterConfig.OFF for name in SKIPPED_GRAPH_PASSES)
    after = config_pb2.ConfigProto.FromString(ctx.function_call_options.config_proto_serialized)
    assert after.graph_options.rewrite_options.meta_optimizer_iterations == \
        config_pb2.ConfigProto.FromString(outside.config_proto_serialized).graph_options.rewrite_options.meta_optimizer_iterations
    assert {k: v for k, v in tf.config.optimizer.get_experimental_options().items() if k in SKIPPED_GRAPH_PASSES} == \
        {k: options_before.get(k, True) for k in SKIPPED_GRAPH_PASSES}
