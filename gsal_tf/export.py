"""SavedModel exports that run without gsal_tf: the segmentation model and its explainer.

``export_model(model, path)``
    The segmentation network as a SavedModel (Keras ``model.export``, or a module of its own for
    keras-hub segmenters and other callables): signature ``serving_default``, images (N,H,W,C)
    float32 -> the network's scores (N,h,w,K) as it returns them.
``export_explainer(explainer, path, image_shape)``
    The whole grid-saliency optimisation as a SavedModel whose ``serving_default`` signature
    takes ``images`` (N,H,W,C) float32, ``request_masks`` (N,H,W) float32 0/1 and ``class_ids``
    (N,) int32 and returns ``saliency`` (N,H,W), ``grid`` (N,gh,gw), ``preserved_score`` and
    ``no_context_score`` (N,). Hyper-parameters are frozen at export; with ``moments="auto"`` the
    graph also explains the masks that came back uniform again, as ``GridSaliency.explain`` does.
    Load it anywhere, no gsal_tf import needed: ``loaded = tf.saved_model.load(path)``, then
    ``loaded.signatures["serving_default"](images=..., request_masks=..., class_ids=...)``. Keep
    ``loaded`` alive while you use the signature: it owns the network's variables, and a signature
    taken from a temporary (``tf.saved_model.load(path).signatures[...]``) fails once it is collected.
    Inputs are not validated inside the graph: check them before serving.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gsal_tf.saliency import GridSaliency
from gsal_tf.saliency.grid_saliency import is_uniform, take_smaller_kept
from gsal_tf.saliency.perturbation import baseline_function

__all__ = ["EXPLAINER_OUTPUTS", "export_model", "export_explainer"]

EXPLAINER_OUTPUTS = ("saliency", "grid", "preserved_score", "no_context_score")


def export_model(model, path, image_shape=None) -> Path:
    """Write a segmentation model as a SavedModel at ``path``.

    A Keras model is exported by Keras (``model.export``). Any other model gsal explains — a
    keras-hub segmenter with its preprocessor, a SavedModel, a one-channel segmenter — is saved
    with one ``serving_default`` signature ``images`` (N,H,W,C) float32 -> its scores, for images of
    ``image_shape`` (H,W,C) (required then).
    """
    import keras

    from gsal_tf.models.keras_hub import as_segmentation_model

    path = Path(path)
    if isinstance(model, keras.Model) and as_segmentation_model(model) is model:
        model.export(str(path), format="tf_saved_model", verbose=False)
        return path
    model = as_segmentation_model(model)
    if image_shape is None or len(tuple(image_shape)) != 3:
        from gsal_tf.errors import GsalInputError

        raise GsalInputError(f"export_model of a {type(model).__name__} needs image_shape=(H,W,C): the images its signature takes")
    height, width, channels = (int(v) for v in image_shape)
    module = tf.Module(name="segmentation")
    module.network = model  # tracked: its variables are saved with the module

    @tf.function(input_signature=[tf.TensorSpec([None, height, width, channels], tf.float32, name="images")])
    def serve(images):
        return {"scores": tf.cast(model(images), tf.float32)}

    module.serve = serve
    tf.saved_model.save(module, str(path), signatures={"serving_default": serve})
    return path


class _ExplainerModule(tf.Module):
    def __init__(self, explainer: GridSaliency, image_shape):
        super().__init__(name="grid_saliency")
        height, width, channels = (int(v) for v in image_shape)
        self.model = explainer.model  # tracked: its variables are saved with the module
        optimise = explainer.compiled_graph((height, width, channels), disk_cache=False)
        make_baseline = baseline_function(
            explainer.baseline, (height, width, channels), blur_sigma=explainer.blur_sigma, seed=explainer.seed
        )
        hyper = explainer.hyper_tensors()
        # moments="auto": the masks that came back uniform are explained again with the moments
        # kept, inside the exported graph as in GridSaliency.explain.
        auto = explainer.reexplains_uniform
        keeping = explainer.keeping_moments().compiled_graph((height, width, channels), disk_cache=False) if auto else None

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, height, width, channels], tf.float32, name="images"),
                tf.TensorSpec([None, height, width], tf.float32, name="request_masks"),
                tf.TensorSpec([None], tf.int32, name="class_ids"),
            ]
        )
        def explain(images, request_masks, class_ids):
            baseline = make_baseline(images)
            out = {k: v for k, v in optimise(images, request_masks, class_ids, baseline, *hyper).items() if k in EXPLAINER_OUTPUTS}
            if auto:
                rows = tf.cast(tf.where(is_uniform(out["grid"]))[:, 0], tf.int32)

                def again():
                    part = keeping(*(tf.gather(v, rows) for v in (images, request_masks, class_ids, baseline)), *hyper)
                    return take_smaller_kept(out, rows, {k: part[k] for k in EXPLAINER_OUTPUTS}, explainer.target)

                out = tf.cond(tf.size(rows) > 0, again, lambda: out)
            return out

        self.explain = explain


def export_explainer(explainer: GridSaliency, path, image_shape) -> Path:
    """Write ``explainer`` (model included) as a SavedModel for images of ``image_shape`` (H,W,C)."""
    path = Path(path)
    module = _ExplainerModule(explainer, image_shape)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.explain})
    return path
