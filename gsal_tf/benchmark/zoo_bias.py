"""The TextureMNIST bias of the zoo's networks: what a zoo entry was biased with, and the IoU pair
that shows the bias (the biased network beside the unbiased one of its backbone).

A network that ``gsal zoo build`` trained on a biased TextureMNIST records the bias of its data
config (:class:`gsal_tf.benchmark.BiasConfig`) as the ``[model.bias]`` table of its manifest
entry; the zoo reads it as :class:`Bias` (``entry.bias``; None for unbiased and imported
networks)::

    [model.bias]
    digit = 9              # the biased digit, 0-9
    texture = "bricks"     # the texture it is tied to (a name of the texture pool)
    strength = "strong"    # "weak" or "strong" (see BiasConfig)
    tiles = 2              # background tiles of the data (1, 2 or 4)

The comparison reads the per-class IoU the manifest recorded (``metrics.iou_per_class``, 11
values: digits 0-9, then background). For an entry ``e`` of the zoo's ``entries`` and a digit
``d`` (default: ``e.bias.digit``)::

    u = unbiased_reference(e, entries)    # first entry with bias None and e's backbone, kind, dataset
    bias_digit_ious(e, entries, d) == (e.metrics["iou_per_class"][d], u.metrics["iou_per_class"][d])

with None for what is unknown (no digit, no unbiased entry, no recorded IoU).

>>> import gsal_tf as gs
>>> entries = gs.zoo.list_models()
>>> strong = gs.zoo.get("tmnist-mobilenetv2-strong")
>>> strong.bias.digit, strong.bias.texture
>>> gs.zoo.bias_digit_ious(strong, entries)         # (IoU of the biased network, of the unbiased one)

The manifest, its entries and their loading are :mod:`gsal_tf.models.presets` (``gs.zoo``),
which knows nothing of TextureMNIST beyond building this class from the table.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Bias", "bias_digit_ious", "unbiased_reference"]


@dataclasses.dataclass(frozen=True)
class Bias:
    """The context bias a zoo network was trained with: ``digit`` always on ``texture`` (``strength``).

    Parameters
    ----------
    digit : int
        The biased digit, 0-9.
    texture : str
        The bias texture's name.
    strength : str
        ``"weak"`` or ``"strong"`` (:class:`gsal_tf.benchmark.BiasConfig`).
    tiles : int, default 2
        Background tiles of the training data (1, 2 or 4).
    """

    digit: int
    texture: str
    strength: str  # "weak" or "strong"
    tiles: int = 2


def unbiased_reference(entry, entries):
    """The unbiased entry of ``entry``'s backbone: what a biased network's IoU is compared with.

    Parameters
    ----------
    entry : gsal_tf.zoo.ZooEntry
        A zoo entry, biased or not.
    entries : list of gsal_tf.zoo.ZooEntry
        The entries to search (``gs.zoo.list_models()``).

    Returns
    -------
    gsal_tf.zoo.ZooEntry or None
        The first of ``entries`` with no bias and ``entry``'s backbone, kind and dataset; None
        when there is none.
    """
    return next((e for e in entries if e.bias is None and e.backbone == entry.backbone
                 and e.kind == entry.kind and e.dataset == entry.dataset), None)


def bias_digit_ious(entry, entries, digit: int | None = None) -> tuple:
    """The IoU of ``entry`` and of its unbiased reference on one digit, from the recorded
    per-class IoU (``metrics.iou_per_class``).

    Parameters
    ----------
    entry : gsal_tf.zoo.ZooEntry
        A zoo entry.
    entries : list of gsal_tf.zoo.ZooEntry
        The entries holding its unbiased reference (:func:`unbiased_reference`).
    digit : int, optional
        The digit, 0-9; default: ``entry.bias.digit``.

    Returns
    -------
    tuple of (float or None, float or None)
        (IoU of ``entry``, IoU of the unbiased reference) on ``digit``; None where unknown (an
        unbiased entry without ``digit``, no reference, no recorded IoU).
    """
    digit = entry.bias.digit if digit is None and entry.bias is not None else digit
    if digit is None:
        return None, None
    reference = unbiased_reference(entry, entries)
    own = entry.metrics.get("iou_per_class", [None] * 10)[digit]
    return own, reference.metrics.get("iou_per_class", [None] * 10)[digit] if reference else None
