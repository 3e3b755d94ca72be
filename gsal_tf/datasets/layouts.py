"""Which reader a dataset needs: :func:`open_source` turns a ``tf.data.Dataset``, a folder or an
existing :class:`~gsal_tf.datasets.sources.Source` into the Source of its layout (the readers are
in :mod:`.sources` and :mod:`.camvid`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from gsal_tf.datasets.camvid import CamVidSource, is_camvid_tree
from gsal_tf.datasets.labels import LabelTable
from gsal_tf.datasets.sources import CityscapesSource, FolderSource, Source, TextureMNISTSource, TFDataSource
from gsal_tf.errors import GsalInputError
from gsal_tf.validation import check_choice

__all__ = ["LAYOUTS", "open_source"]

LAYOUTS = ("auto", "tf.data", "folder", "cityscapes", "camvid", "texture-mnist")


def open_source(data, layout: str = "auto", labels=None, split: Optional[str] = None, label_table: Optional[LabelTable] = None,
                n: Optional[int] = None, class_names: Optional[Sequence[str]] = None, pixel_scale: Optional[float] = None) -> Source:
    """The :class:`Source` of ``data``: a ``tf.data.Dataset``, a folder, or an existing Source.

    ``layout="auto"`` picks: a dataset -> "tf.data"; a folder with ``card.json`` ->
    "texture-mnist"; with ``leftImg8bit/`` -> "cityscapes"; with ``<split>annot/`` or a
    ``<split>.txt`` pair list -> "camvid"; else "folder" (with ``labels``, a label folder).
    ``split`` defaults to "val" (Cityscapes) / "test" (CamVid, TextureMNIST); ``n`` limits
    TextureMNIST to its first n samples. ``pixel_scale`` (default 1/255: [0, 1]) multiplies the
    8-bit pixel values of image files (folder, Cityscapes, CamVid); ``tf.data`` images and
    TextureMNIST samples are taken as they are, so a scale given for them is an error.
    """
    if isinstance(data, Source):
        if pixel_scale is not None:
            raise GsalInputError("pixel_scale is read with the images: give it to the Source itself, not beside one")
        return data
    check_choice("layout", layout, LAYOUTS)
    if not isinstance(data, (str, Path)):
        if layout not in ("auto", "tf.data"):
            raise GsalInputError(f"layout {layout!r} needs a folder; got a {type(data).__name__}")
        if pixel_scale is not None:
            raise GsalInputError("pixel_scale applies to image files; a tf.data.Dataset's images are taken as they are "
                                 "(scale them in the dataset: dataset.map(...))")
        # The elements hold class ids already: a label table only names them and sets the ignore label.
        names = class_names if class_names is not None else (label_table.names if label_table is not None else None)
        return TFDataSource(data, class_names=names, ignore_label=None if label_table is None else label_table.ignore_label)
    root = Path(data)
    if not root.is_dir():
        raise GsalInputError(f"data folder not found: {root}")
    if layout == "auto":
        layout = ("texture-mnist" if (root / "card.json").is_file() else "cityscapes" if (root / "leftImg8bit").is_dir()
                  else "camvid" if is_camvid_tree(root) else "folder")
    if layout == "texture-mnist":
        if pixel_scale is not None:
            raise GsalInputError(f"{root} is a TextureMNIST folder: its images are stored in [0, 1], so a pixel scale does not apply; leave it out")
        return TextureMNISTSource(root, split or "test", n)
    if layout == "cityscapes":
        return CityscapesSource(root, split or "val", pixel_scale)
    if layout == "camvid":
        return CamVidSource(root, split or "test", pixel_scale)
    if layout == "folder":
        source = FolderSource(root, labels, label_table, pixel_scale)
        if class_names is not None and label_table is None:
            source.class_names = tuple(class_names)
        return source
    raise GsalInputError(f"layout {layout!r} needs a tf.data.Dataset, not a folder")
