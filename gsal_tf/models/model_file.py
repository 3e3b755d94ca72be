"""A Keras functional model in one ``.npz`` file: its architecture (JSON) and its weights, no pickle.

The zoo stores the networks it imports from TensorFlow Lite this way (``<name>.model.npz``). The
file is a plain NumPy archive, read with ``np.load(path, allow_pickle=False)``:

==================  ==========================================================================
``format``          ``"gsal-model-npz/1"``
``config``          the model's ``get_config()`` as JSON (a 0-d unicode array)
``metadata``        a JSON object (0-d unicode array) the writer chose to keep beside the model
``weights_dtype``   ``"float16"`` or ``"float32"``: how the weights are stored
``w000``, ...       the weights in ``model.get_weights()`` order, in ``weights_dtype``
==================  ==========================================================================

Reading rebuilds the graph with ``keras.Model.from_config`` under Keras' safe mode (no Lambda
code is ever deserialised; gsal's layers are registered on import) and loads the weights as
float32: storage in float16 halves the file, computation stays float32.

Why not ``.keras`` or ``.weights.h5``: a ``.weights.h5`` file needs the Python code that builds
the architecture (an imported TFLite graph has no such builder), and a ``.keras`` file stores
float32 weights (twice the size; the zoo's limit is 5 MB per file). Why float16: the 8-bit DeepLab
releases hold at most 256 distinct values per tensor, which float16 keeps to within 2⁻¹¹
relative; the measured arg-max agreement with the float32 import is in each manifest entry.

The archive is written deterministically (fixed zip timestamps, members in a fixed order): the
same model and weights give the same bytes, hence the same sha256.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import keras
import numpy as np

from gsal_tf.errors import GsalInputError, first_line

__all__ = ["FORMAT", "DTYPES", "write_model_file", "read_model_file"]

FORMAT = "gsal-model-npz/1"
DTYPES = ("float16", "float32")
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def write_model_file(model: keras.Model, path, weights_dtype: str = "float16", metadata: dict | None = None) -> Path:
    """Write ``model`` (a functional ``keras.Model``) to ``path`` (``.npz``); returns the path.

    Weights are cast to ``weights_dtype``; a weight that does not fit float16 (|w| > 65504) is
    an error rather than an infinity.
    """
    if weights_dtype not in DTYPES:
        raise GsalInputError(f"weights_dtype must be one of {DTYPES}, got {weights_dtype!r}")
    arrays = {
        "format": np.array(FORMAT),
        "config": np.array(json.dumps(model.get_config(), sort_keys=True)),
        "metadata": np.array(json.dumps(metadata or {}, sort_keys=True)),
        "weights_dtype": np.array(weights_dtype),
    }
    for i, weight in enumerate(model.get_weights()):
        stored = np.asarray(weight).astype(weights_dtype)
        if not np.all(np.isfinite(stored)):
            raise GsalInputError(f"weight {i} of {model.name} does not fit {weights_dtype}; store float32")
        arrays[f"w{i:03d}"] = stored
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value, allow_pickle=False)
            member = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_DATE)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            archive.writestr(member, buffer.getvalue())
    tmp.replace(path)
    return path


def read_model_file(path, name: str | None = None) -> tuple[keras.Model, dict]:
    """(model, metadata) of a file written by :func:`write_model_file`; weights as float32.

    A file that is not such an archive, or whose weights do not fit its architecture, is a
    GsalInputError.
    """
    import gsal_tf.models.tflite_layers  # noqa: F401  (registers the layers an imported graph uses)

    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["format"]) != FORMAT:
                raise ValueError(f"format {str(data['format'])!r}, expected {FORMAT!r}")
            config = json.loads(str(data["config"]))
            metadata = json.loads(str(data["metadata"]))
            keys = sorted(k for k in data.files if k.startswith("w") and k[1:].isdigit())
            weights = [data[k].astype(np.float32) for k in keys]
    except Exception as exc:
        raise GsalInputError(f"cannot read {path} as a gsal model file: {first_line(exc)}") from None
    if name:
        config["name"] = name
    try:
        with _safe_mode():
            model = keras.Model.from_config(config)
        model.set_weights(weights)
    except Exception as exc:
        raise GsalInputError(f"cannot rebuild the model of {path}: {first_line(exc)}") from None
    return model, metadata


def _safe_mode():
    """Keras' safe-mode scope: deserialising never runs code stored in the config (Lambda layers)."""
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # a Keras without the (private) scope: its deserialisation defaults to safe mode
        import contextlib

        return contextlib.nullcontext()
    return SafeModeScope(True)
