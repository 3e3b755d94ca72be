"""Where dataset explanations read their samples: folders, Cityscapes trees, TextureMNIST
folders and ``tf.data`` datasets, all behind one small interface (:class:`Source`).

A source is an ordered list of samples. ``iter_from(start)`` yields ``(index, Sample)`` from
sample ``start`` on — folders skip without reading anything, a ``tf.data.Dataset`` with
``skip`` — which is how a resumed run continues where it stopped. A sample that cannot be read
is yielded as ``(index, UnreadableSample)``; the caller decides to skip it or stop.

A :class:`Sample` carries the image (H,W,C) float32: 8-bit files times ``pixel_scale`` (by
default 1/255, so [0, 1]), ``.npy`` files and ``tf.data`` images as they are; and
optionally its ``labels`` (H,W) int32 class ids (``ignore_label`` where not evaluated) and its
``context`` (H,W) int32: the *context classes* the statistics count salient context on. By
default the context classes are the label classes; on TextureMNIST they are the background
textures (``texture_map``), so the statistics say which texture the network looks at.

Layouts (:func:`gsal_tf.datasets.layouts.open_source` picks one with ``layout="auto"``):

- ``tf.data.Dataset`` of images, ``(image, labels)`` pairs or dicts with ``image`` and optional
  ``labels`` / ``segmentation`` and ``context`` / ``texture_map`` (batched datasets are unbatched);
- an image folder (PNG/JPEG/BMP/TIFF/WebP/.npy, sorted by name), optionally with a label folder
  holding a single-channel label map of the same stem for every image (class ids, or raw ids
  with a ``label_table``);
- a Cityscapes tree: ``leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png`` and
  ``gtFine/<split>/<city>/<stem>_gtFine_labelIds.png`` (raw ids -> 19 train ids, 255 ignore);
- a CamVid tree (SegNet version, :mod:`gsal_tf.datasets.camvid`): ``<split>/`` + ``<split>annot/``
  or the ``<split>.txt`` pair list (11 classes, 11 ignore);
- a TextureMNIST folder written by ``gsal benchmark generate`` (``card.json``): labels are the
  digit segmentation (0-9, 10 background), context classes the textures.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np

from gsal_tf.datasets.labels import CITYSCAPES, LabelTable
from gsal_tf.errors import GsalInputError, first_line
from gsal_tf.loading import IMAGE_SUFFIXES, letterbox_grey, load_image
from gsal_tf.validation import check_number

#: The default multiplier of 8-bit pixel values: images are read as [0, 1]. A network that takes
#: 0-255 (its own ``Rescaling`` first) is read with ``pixel_scale=1``.
PIXEL_SCALE = 1.0 / 255.0

__all__ = [
    "LABEL_SUFFIXES", "UnreadableSample", "Sample", "Source", "FolderSource",
    "CityscapesSource", "TextureMNISTSource", "TFDataSource",
]

LABEL_SUFFIXES = IMAGE_SUFFIXES + (".npy",)


class UnreadableSample(GsalInputError):
    """A sample whose file cannot be read (a run may skip it and go on)."""


@dataclasses.dataclass
class Sample:
    """One image with its optional label and context-class maps (see the module docstring)."""

    key: str
    image: np.ndarray
    labels: Optional[np.ndarray] = None
    context: Optional[np.ndarray] = None

    @property
    def context_map(self) -> Optional[np.ndarray]:
        """The context classes of every pixel: ``context`` if given, else ``labels``."""
        return self.context if self.context is not None else self.labels


class Source:
    """An ordered list of samples (see the module docstring).

    Attributes
    ----------
    layout : str — one of :data:`gsal_tf.datasets.layouts.LAYOUTS` (not "auto").
    has_labels : bool — every sample has a label map.
    class_names : tuple of str or None — names of the label class ids.
    context_names : tuple of str or None — names of the context classes (default: class_names).
    ignore_label : int or None — label of pixels that are not evaluated.
    grey : float — the padding of an image letterboxed to the network: mid-grey of the images'
        range (0.5 for [0, 1]; image files read with another ``pixel_scale``: 127.5 × it).
    """

    layout = ""
    has_labels = False
    class_names: Optional[tuple] = None
    ignore_label: Optional[int] = None

    grey = 0.5

    @property
    def context_names(self) -> Optional[tuple]:
        return self.class_names

    def __len__(self) -> int:
        raise NotImplementedError

    def describe(self) -> dict:
        """What the data is, for the run card (plain JSON values)."""
        raise NotImplementedError

    def read(self, index: int) -> Sample:
        raise NotImplementedError

    def iter_from(self, start: int = 0) -> Iterator[tuple[int, Union[Sample, UnreadableSample]]]:
        for index in range(start, len(self)):
            try:
                yield index, self.read(index)
            except UnreadableSample as exc:
                yield index, exc


class FolderSource(Source):
    """Images of one folder (sorted by file name), with label maps from ``labels`` of the same stem."""

    layout = "folder"
    pixel_scale = PIXEL_SCALE  # the multiplier of 8-bit pixel values (set by the constructors)

    @property
    def grey(self) -> float:
        return letterbox_grey(self.pixel_scale)

    def __init__(self, images, labels=None, label_table: Optional[LabelTable] = None, pixel_scale: Optional[float] = None):
        self.pixel_scale = checked_pixel_scale(pixel_scale)
        self.root = Path(images)
        if not self.root.is_dir():
            raise GsalInputError(f"image folder not found: {self.root}")
        self.files = sorted(p for p in self.root.iterdir() if p.suffix.lower() in LABEL_SUFFIXES and p.is_file())
        if not self.files:
            raise GsalInputError(f"{self.root} holds no images (PNG, JPEG, BMP, TIFF, WebP or .npy); give a folder of images")
        self.label_table = label_table
        self.label_root = None if labels is None else Path(labels)
        self.label_files: list = []
        if self.label_root is not None:
            if not self.label_root.is_dir():
                raise GsalInputError(f"label folder not found: {self.label_root}")
            by_stem = {p.stem: p for p in sorted(self.label_root.iterdir()) if p.suffix.lower() in LABEL_SUFFIXES}
            missing = [p.name for p in self.files if p.stem not in by_stem]
            if missing:
                raise GsalInputError(f"{len(missing)} images in {self.root} have no label map of the same name in {self.label_root} "
                                     f"(first: {missing[0]}); add them or leave out --labels")
            self.label_files = [by_stem[p.stem] for p in self.files]
            self.has_labels = True
        if label_table is not None:
            self.class_names = label_table.names
            self.ignore_label = label_table.ignore_label

    def __len__(self) -> int:
        return len(self.files)

    def describe(self) -> dict:
        return {"layout": self.layout, "images": str(self.root.resolve()), "labels": None if self.label_root is None else str(self.label_root.resolve()),
                "label_table": None if self.label_table is None else self.label_table.name, "samples": len(self),
                "pixel_scale": self.pixel_scale}

    def read(self, index: int) -> Sample:
        path = self.files[index]
        image = _read_image(path, self.pixel_scale)
        labels = None
        if self.label_files:
            labels = _read_label_map(self.label_files[index], self.label_table, image_path=path, image_shape=image.shape[:2])
            if labels.shape != image.shape[:2]:
                raise GsalInputError(f"label map {self.label_files[index]} is {labels.shape[0]}x{labels.shape[1]}; its image is "
                                     f"{image.shape[0]}x{image.shape[1]}: they must match")
        return Sample(path.name, image, labels)


class CityscapesSource(FolderSource):
    """A Cityscapes tree: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` (+ ``gtFine`` labelIds)."""

    layout = "cityscapes"

    def __init__(self, root, split: str = "val", pixel_scale: Optional[float] = None):
        self.pixel_scale = checked_pixel_scale(pixel_scale)
        self.root = Path(root)
        self.split = split
        image_dir = self.root / "leftImg8bit" / split
        if not image_dir.is_dir():
            raise GsalInputError(f"{self.root} is not a Cityscapes tree with split {split!r}: no {image_dir}")
        self.files = sorted(image_dir.glob("*/*_leftImg8bit.png"))
        if not self.files:
            raise GsalInputError(f"{image_dir} holds no <city>/*_leftImg8bit.png images")
        self.label_table = CITYSCAPES
        self.class_names = CITYSCAPES.names
        self.ignore_label = CITYSCAPES.ignore_label
        label_dir = self.root / "gtFine" / split
        self.label_root = label_dir if label_dir.is_dir() else None
        self.label_files = []
        if self.label_root is not None:
            self.label_files = [label_dir / p.parent.name / p.name.replace("_leftImg8bit.png", "_gtFine_labelIds.png") for p in self.files]
            missing = [p for p in self.label_files if not p.is_file()]
            if missing:
                raise GsalInputError(f"{len(missing)} Cityscapes images have no gtFine labelIds file (first: {missing[0]}); "
                                     "complete the gtFine folder or remove it to run without labels")
            self.has_labels = True

    def describe(self) -> dict:
        return {**super().describe(), "layout": self.layout, "split": self.split, "images": str(self.root.resolve())}

    def read(self, index: int) -> Sample:
        sample = super().read(index)
        sample.key = f"{self.files[index].parent.name}/{self.files[index].name}"
        return sample


class TextureMNISTSource(Source):
    """A generated TextureMNIST folder: labels = digit segmentation, context = texture ids."""

    layout = "texture-mnist"
    has_labels = True

    def __init__(self, root, split: str = "test", n: Optional[int] = None):
        from gsal_tf.benchmark import classes, storage

        self.root, self.split = Path(root), split
        card = storage.read_card(self.root)
        self.compact = storage.load_compact(self.root, split, n)
        self.class_names = classes.CLASS_NAMES
        self.textures = tuple(card["textures"]["names"])
        if not len(self.compact["digit"]):
            raise GsalInputError(f"split {split!r} of {self.root} holds no samples")

    @property
    def context_names(self) -> tuple:
        return self.textures

    def __len__(self) -> int:
        return len(self.compact["digit"])

    def describe(self) -> dict:
        return {"layout": self.layout, "images": str(self.root.resolve()), "split": self.split, "samples": len(self)}

    def read(self, index: int) -> Sample:
        from gsal_tf.benchmark import storage

        one = storage.to_public({k: v[index:index + 1] for k, v in self.compact.items()})
        return Sample(f"{self.split}/{index}", one["image"][0], one["segmentation"][0], one["texture_map"][0])


class TFDataSource(Source):
    """A ``tf.data.Dataset`` (see the module docstring for the element layouts it takes)."""

    layout = "tf.data"

    def __init__(self, dataset, class_names: Optional[Sequence[str]] = None, context_names: Optional[Sequence[str]] = None,
                 ignore_label: Optional[int] = None, name: str = "tf.data.Dataset"):
        import tensorflow as tf

        spec = dataset.element_spec
        first = spec[0] if isinstance(spec, tuple) else spec["image"] if isinstance(spec, dict) else spec
        if not isinstance(first, tf.TensorSpec) or first.shape.rank not in (3, 4):
            raise GsalInputError(f"a tf.data.Dataset of images (H,W,C), (image, labels) pairs or dicts with 'image' is needed; got elements {spec}")
        self.dataset = dataset.unbatch() if first.shape.rank == 4 else dataset
        self.name = name
        self.class_names = None if class_names is None else tuple(class_names)
        self._context_names = None if context_names is None else tuple(context_names)
        self.ignore_label = ignore_label
        self.has_labels = (isinstance(spec, tuple) and len(spec) > 1) or (isinstance(spec, dict) and ("labels" in spec or "segmentation" in spec))
        count = int(self.dataset.cardinality())
        self.count = count if count >= 0 else None

    @property
    def context_names(self) -> Optional[tuple]:
        return self._context_names or self.class_names

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("a tf.data.Dataset of unknown length")
        return self.count

    def describe(self) -> dict:
        return {"layout": self.layout, "name": self.name, "samples": self.count, "element_spec": str(self.dataset.element_spec)}

    def iter_from(self, start: int = 0):
        for offset, element in enumerate(self.dataset.skip(start).as_numpy_iterator()):
            index = start + offset
            if isinstance(element, tuple):
                image, labels, context = element[0], element[1] if len(element) > 1 else None, None
            elif isinstance(element, dict):
                image = element["image"]
                labels = element.get("labels", element.get("segmentation"))
                context = element.get("context", element.get("texture_map"))
            else:
                image, labels, context = element, None, None
            image = np.asarray(image, np.float32)
            if image.ndim == 2:
                image = image[..., None]
            as_map = lambda a: None if a is None else np.asarray(a).reshape(image.shape[:2]).astype(np.int32)  # noqa: E731
            yield index, Sample(str(index), image, as_map(labels), as_map(context))


def __getattr__(name: str):
    # open_source, LAYOUTS: gsal_tf.datasets.layouts (gsal_tf._deprecated warns).
    from gsal_tf import _deprecated

    return _deprecated.moved(__name__, name)


def checked_pixel_scale(pixel_scale: Optional[float]) -> float:
    """``pixel_scale`` (the multiplier of 8-bit pixel values), :data:`PIXEL_SCALE` when None; a
    scale that is not a finite number > 0 is a GsalInputError."""
    if pixel_scale is None:
        return PIXEL_SCALE
    try:
        check_number("pixel_scale", pixel_scale, 0, strict=True)
    except GsalInputError as exc:
        raise GsalInputError(f"{exc} (1/255 reads 8-bit pixels as [0, 1], 1 as 0-255)") from None
    return float(pixel_scale)


def _read_image(path: Path, pixel_scale: float = 1 / 255) -> np.ndarray:
    try:
        return load_image(path, scale=pixel_scale)
    except GsalInputError as exc:
        raise UnreadableSample(first_line(exc)) from None


def _read_label_map(path: Path, table: Optional[LabelTable], image_path: Optional[Path] = None, image_shape=None) -> np.ndarray:
    """A label map (H,W) of class ids, turned as its image is shown.

    Images are read as displayed (their EXIF orientation applied). A label map with an
    orientation of its own is turned by it; one without (a PNG or .npy from an annotation export)
    is taken to be aligned with the image's stored pixels and gets the image's orientation, unless
    it already has the displayed shape ``image_shape`` while the stored shape differs.
    """
    from gsal_tf.loading import exif_orientation, orient

    if path.suffix.lower() == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except Exception as exc:
            raise UnreadableSample(f"cannot read the label map {path}: {first_line(exc)}") from None
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise UnreadableSample(f"cannot read the label map {path} as an image")
    if raw.ndim == 3:
        raise GsalInputError(f"label map {path} has {raw.shape[2]} channels; give single-channel maps of class ids (not colour images)")
    own = exif_orientation(path) if path.suffix.lower() != ".npy" else 1
    if own != 1:
        raw = orient(raw, own)
    elif image_path is not None:
        turn = exif_orientation(image_path)
        already_displayed = image_shape is not None and tuple(raw.shape[:2]) == tuple(image_shape) and turn >= 5
        if turn != 1 and not already_displayed:
            raw = orient(raw, turn)
    return table.to_class_ids(raw, str(path)) if table is not None else raw.astype(np.int32)
