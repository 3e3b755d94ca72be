"""SavedModel folders as gsal's segmentation model: images (N,H,W,C) float32 -> scores (N,h,w,K).

PyTorch users reach gsal this way too: convert the network to a SavedModel in an environment of its
own (e.g. ``onnx2tf``, which pins its TensorFlow version) and bring the folder.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from gsal_tf.errors import GsalInputError

__all__ = ["SavedModelSegmenter"]


class SavedModelSegmenter(tf.Module):
    """A SavedModel's image signature as a segmentation model: images (N,H,W,C) float32 ->
    scores (N,h,w,K), callable like a Keras model by every explainer.

    It holds the loaded object for as long as it lives: the object owns the network's variables,
    and a signature whose object has been collected fails ("Called a function referencing
    variables which have been deleted"). Both kinds of SavedModel load this way: Keras 3
    ``model.export(path)`` (endpoint ``serve``, signature ``serving_default``) and
    ``tf.saved_model.save(model, path)``.

    Attributes
    ----------
    loaded : the object ``tf.saved_model.load`` returned.
    signature : the ``serving_default`` concrete function.
    input_name : the keyword of its one image input.
    input_shape : (None, H, W, C) as the signature declares it (None for free axes), so photos are
        fitted to a fixed input size as for a Keras model (:func:`fit_to_model`).
    output_name : the key of its one rank-4 output, None when it returns a tensor.
    """

    def __init__(self, loaded, path):
        super().__init__(name="saved_model_segmenter")  # a tf.Module: re-exports track the loaded variables
        self.loaded = loaded
        self.path = Path(path)
        signatures = getattr(loaded, "signatures", None) or {}
        fn = signatures.get("serving_default")
        if fn is None:
            raise GsalInputError(f"the SavedModel {path} has no serving_default signature; export it with "
                                 "model.export(path) (Keras) or tf.saved_model.save(model, path, signatures=...)")
        args, kwargs = fn.structured_input_signature
        specs = {**{f"arg{i}": spec for i, spec in enumerate(args)}, **kwargs}
        images = {name: spec for name, spec in specs.items()
                  if getattr(spec, "shape", None) is not None and spec.shape.rank == 4 and spec.dtype.is_floating}
        if len(specs) != 1 or len(images) != 1:
            described = ", ".join(f"{name} {getattr(spec, 'shape', '?')} {getattr(getattr(spec, 'dtype', None), 'name', '?')}"
                                  for name, spec in specs.items()) or "nothing"
            raise GsalInputError(f"the SavedModel {path} has no image signature: serving_default takes {described}; "
                                 "gsal needs one float input of images (N,H,W,C)")
        (self.input_name, spec), = images.items()
        self.signature = fn
        self.input_shape = tuple(spec.shape.as_list())
        self._dtype = spec.dtype
        outputs = fn.structured_outputs
        if isinstance(outputs, dict):
            rank4 = [key for key, value in outputs.items() if getattr(value, "shape", None) is not None and value.shape.rank == 4]
            if len(rank4) != 1:
                raise GsalInputError(f"the SavedModel {path} returns {sorted(outputs)} ({len(rank4)} of rank 4); "
                                     "gsal needs exactly one (N,h,w,K) output")
            self.output_name = rank4[0]
        else:
            self.output_name = None

    def __call__(self, images):
        x = tf.cast(images, self._dtype)
        out = self.signature(**{self.input_name: x})
        return out[self.output_name] if self.output_name is not None else out

    def __repr__(self) -> str:
        return f"SavedModelSegmenter({str(self.path)!r}, input {self.input_shape})"
