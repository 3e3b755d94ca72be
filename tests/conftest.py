import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests count traces and must not read graphs other runs left on disk: the disk cache of compiled
# graphs is off, except in tests/test_graph_cache.py, which switches it on in its own folder; and
# nothing of a test run lands in the user's ~/.cache/gsal.
os.environ["GSAL_GRAPH_CACHE"] = "0"
os.environ["GSAL_HOME"] = tempfile.mkdtemp(prefix="gsal-test-home-")

from pathlib import Path  # noqa: E402


def _read_this_checkouts_zoo() -> None:
    """Tests read the zoo of the checkout they test.

    An editable install maps the data package ``gsal_tf.zoo_files`` to the ``zoo/`` folder of the
    checkout it was made from; run from another checkout (a git worktree, with PYTHONPATH on its
    sources), ``gs.zoo`` would read that other zoo. When gsal_tf comes from this checkout, the zoo
    does too; an installed (non-editable) gsal_tf keeps its own.
    """
    import importlib.util
    import sys

    import gsal_tf

    root = Path(__file__).resolve().parents[1]
    if Path(gsal_tf.__file__).resolve().parent != root / "gsal_tf":
        return
    spec = importlib.util.spec_from_file_location("gsal_tf.zoo_files", root / "zoo" / "__init__.py",
                                                  submodule_search_locations=[str(root / "zoo")])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["gsal_tf.zoo_files"] = module


_read_this_checkouts_zoo()


def _fix_the_thread_pool() -> None:
    """In-process tests run on TensorFlow's default thread pool whichever test comes first: a CLI
    call of a small job asks for one intra-op thread, which TensorFlow takes only before its first
    op, so a subset starting with one would run every test on one thread; and in-process results
    are compared with those of subprocesses (the default pool)."""
    import tensorflow as tf

    tf.constant(0.0) + 0.0


_fix_the_thread_pool()

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def one_error(result, *phrases):
    """The CLI result is exit code 2 with one error line holding every phrase, and no traceback."""
    text = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output, result.output
    for phrase in phrases:
        assert phrase in text, (phrase, result.output)


def load_benchmark_script(name: str):
    """The module of ``benchmarks/<name>.py`` (the benchmark scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def draw_digits(rng: np.random.Generator, per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-like 28x28 uint8 digits: the numeral drawn with a thick font at a jittered position."""
    images, labels = [], []
    for digit in range(10):
        for _ in range(per_class):
            image = np.zeros((28, 28), np.uint8)
            origin = (7 + int(rng.integers(-2, 3)), 22 + int(rng.integers(-2, 3)))
            cv2.putText(image, str(digit), origin, cv2.FONT_HERSHEY_SIMPLEX, 0.8, 255, 2)
            images.append(image)
            labels.append(digit)
    return np.stack(images), np.array(labels, np.uint8)


@pytest.fixture(scope="session")
def mnist(tmp_path_factory) -> Path:
    """A tiny fake MNIST in Keras' mnist.npz layout (80 train, 40 test digits)."""
    rng = np.random.default_rng(0)
    x_train, y_train = draw_digits(rng, 8)
    x_test, y_test = draw_digits(rng, 4)
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="session")
def strong_dir(mnist, tmp_path_factory) -> Path:
    """A small strongly biased TextureMNIST folder (96 train, 60 test samples) of the shipped config."""
    return generate_strong(mnist, tmp_path_factory.mktemp("strong"))


def generate_strong(mnist, out: Path, **overrides) -> Path:
    """Generate the ``strong_dir`` data (shipped strong config, 96 train / 60 test; ``overrides``
    as in ``load_config``) into ``out``."""
    import gsal_tf as gs

    config = Path(__file__).resolve().parents[1] / "configs" / "benchmark" / "strong.toml"
    gs.benchmark.TextureMNIST(gs.benchmark.load_config(config, n_train=96, n_test=60, **overrides), mnist=mnist).generate(out)
    return out


TINY_DEEPLAB = {"alpha": 0.35, "output_stride": 8, "low_level_stride": 4, "aspp_filters": 8,
                "decoder_filters": 8, "low_level_filters": 4, "atrous_rates": (1, 2, 3)}


@pytest.fixture(scope="session")
def tiny_deeplab_file(tmp_path_factory) -> Path:
    """An untrained, very small DeepLabv3+ (MobileNetV2) for 64x64x1 TextureMNIST, saved as .keras."""
    import keras

    import gsal_tf as gs

    keras.utils.set_random_seed(0)  # the same weights whichever tests built models before
    model = gs.models.deeplabv3plus("mobilenetv2", (64, 64, 1), 11, **TINY_DEEPLAB)
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture(scope="session")
def conv_model_file(tmp_path_factory) -> Path:
    """A two-layer convolutional segmentation model (16x16x3 -> 3 classes, softmax), saved as
    .keras: the dataset-scale tests' network (speed, not accuracy)."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
                              keras.layers.Conv2D(3, 5, padding="same", activation="softmax")], name="tiny_conv")
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    model.save(path)
    return path


@pytest.fixture
def tiny_train_config(tmp_path) -> Path:
    """A training TOML for the tiny DeepLab: one epoch, batch 16."""
    import json

    lines = [f"{k} = {json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in TINY_DEEPLAB.items()]
    path = tmp_path / "train.toml"
    path.write_text("[model]\narchitecture = \"mobilenetv2-tiny\"\n" + "\n".join(lines) + "\n[train]\nepochs = 1\nbatch_size = 16\n")
    return path


@pytest.fixture
def saved_figures(monkeypatch):
    """Every figure written through :func:`gsal_tf.viz.save_figure` while the test runs, as
    ``(matplotlib Figure, path written)``: tests read panels, titles, legends and colour bars
    from the Figure objects, not from pixels."""
    from gsal_tf import viz

    saved = []
    write = viz.save_figure

    def record(fig, path, fmt=None):
        written = write(fig, path, fmt)
        saved.append((fig, written))
        return written

    monkeypatch.setattr(viz, "save_figure", record)
    return saved


def figure_parts(fig) -> dict:
    """What a gsal figure shows: ``axes`` {label: Axes}, ``titles`` of every axes, the figure's
    ``suptitle``, ``legend`` texts (figure and axes legends) and ``colorbar`` labels."""
    axes = {ax.get_label(): ax for ax in fig.axes}
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return {
        "axes": axes,
        "labels": [ax.get_label() for ax in fig.axes],
        "titles": [t for ax in fig.axes for t in (ax.get_title(), ax.get_title("left")) if t],
        "suptitle": fig._suptitle.get_text() if fig._suptitle is not None else "",
        "legend": [t.get_text() for legend in legends for t in legend.get_texts()],
        "colorbar": [ax.get_ylabel() for ax in fig.axes if ax.get_label() == "colorbar"],
        "xlabels": [ax.get_xlabel() for ax in fig.axes],
    }


@pytest.fixture
def traces(monkeypatch):
    """``traces()``: how many explainer graphs were traced since the test started (tests/tracing.py)."""
    from tracing import TraceCounter

    return TraceCounter().install(monkeypatch.setattr)
