"""Label tables: how the ids stored in label files become class ids, with names and colours.

A label file stores *raw ids* (Cityscapes' ``*_gtFine_labelIds.png``: 0-33); networks predict
*class ids* (Cityscapes' 19 "train ids"). A :class:`LabelTable` maps one to the other with a
lookup table, names each class id and gives it a colour; raw ids that are not evaluated map to
``ignore_label`` (255 for Cityscapes), and a raw id that is not in the table at all is an error
(the label files belong to another dataset, or were saved as colour images).

:data:`CITYSCAPES` is the official table of ``cityscapesscripts/helpers/labels.py``
(cityscapesScripts, MIT licence), copied row by row so the library needs no extra package;
``tests/test_datasets.py`` checks it against that package.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from gsal_tf.errors import GsalInputError

__all__ = ["LabelTable", "plain_table", "CITYSCAPES_LABELS", "CITYSCAPES"]


@dataclasses.dataclass(frozen=True)
class LabelTable:
    """Class ids of a dataset: their names and colours, and the raw ids of its label files.

    Attributes
    ----------
    name : str — the dataset ("cityscapes").
    names : tuple of str — the name of class id k is ``names[k]``.
    colours : tuple of (R, G, B) 0-255 — the colour of class id k.
    ignore_label : int or None — the class id of pixels that are not evaluated (255).
    raw_to_class : dict {raw id: class id} or None — None when label files hold class ids.
    """

    name: str
    names: tuple
    colours: tuple
    ignore_label: Optional[int] = None
    raw_to_class: Optional[dict] = None

    @property
    def num_classes(self) -> int:
        return len(self.names)

    def to_class_ids(self, raw: np.ndarray, where: str = "labels") -> np.ndarray:
        """(H,W) raw ids -> (H,W) int32 class ids (``ignore_label`` where not evaluated).

        A raw id outside the table (or, without ``raw_to_class``, a class id outside
        0..K-1 that is not ``ignore_label``) is a GsalInputError naming ``where``.
        """
        raw = np.asarray(raw)
        if not np.issubdtype(raw.dtype, np.integer):
            raise GsalInputError(f"{where}: label maps must hold integer ids, got {raw.dtype}")
        values = np.unique(raw)
        if self.raw_to_class is None:
            bad = [int(v) for v in values if not (0 <= v < self.num_classes or v == self.ignore_label)]
            if bad:
                raise GsalInputError(f"{where}: label ids {bad[:5]} are outside the {self.name} classes 0..{self.num_classes - 1}"
                                     f"{'' if self.ignore_label is None else f' (and {self.ignore_label} = ignore)'}; "
                                     "give label maps of this label table")
            return raw.astype(np.int32)
        bad = [int(v) for v in values if int(v) not in self.raw_to_class]
        if bad:
            raise GsalInputError(f"{where}: raw label ids {bad[:5]} are not in the {self.name} label table "
                                 f"(ids {min(self.raw_to_class)}..{max(self.raw_to_class)}); use *_labelIds.png files, not colour or instance images")
        lookup = np.full(int(values.max()) + 1, -1, np.int64)
        for v in values:
            lookup[int(v)] = self.raw_to_class[int(v)]
        return lookup[raw.astype(np.int64)].astype(np.int32)


def plain_table(num_classes: int, names: Optional[Sequence[str]] = None, ignore_label: Optional[int] = None, name: str = "labels") -> LabelTable:
    """A table for label files that already hold class ids 0..K-1 (``names`` default "class k")."""
    from gsal_tf.viz import class_colours

    names = tuple(names) if names is not None else tuple(f"class {k}" for k in range(num_classes))
    if len(names) != num_classes:
        raise GsalInputError(f"{len(names)} class names for {num_classes} classes")
    colours = tuple(tuple(int(round(255 * c)) for c in row[:3]) for row in class_colours(num_classes, names))
    return LabelTable(name, names, colours, ignore_label, None)


#: The official Cityscapes labels (cityscapesscripts/helpers/labels.py):
#: (name, id, trainId, category, color). trainId 255 and -1 are not evaluated.
CITYSCAPES_LABELS = (
    ("unlabeled", 0, 255, "void", (0, 0, 0)),
    ("ego vehicle", 1, 255, "void", (0, 0, 0)),
    ("rectification border", 2, 255, "void", (0, 0, 0)),
    ("out of roi", 3, 255, "void", (0, 0, 0)),
    ("static", 4, 255, "void", (0, 0, 0)),
    ("dynamic", 5, 255, "void", (111, 74, 0)),
    ("ground", 6, 255, "void", (81, 0, 81)),
    ("road", 7, 0, "flat", (128, 64, 128)),
    ("sidewalk", 8, 1, "flat", (244, 35, 232)),
    ("parking", 9, 255, "flat", (250, 170, 160)),
    ("rail track", 10, 255, "flat", (230, 150, 140)),
    ("building", 11, 2, "construction", (70, 70, 70)),
    ("wall", 12, 3, "construction", (102, 102, 156)),
    ("fence", 13, 4, "construction", (190, 153, 153)),
    ("guard rail", 14, 255, "construction", (180, 165, 180)),
    ("bridge", 15, 255, "construction", (150, 100, 100)),
    ("tunnel", 16, 255, "construction", (150, 120, 90)),
    ("pole", 17, 5, "object", (153, 153, 153)),
    ("polegroup", 18, 255, "object", (153, 153, 153)),
    ("traffic light", 19, 6, "object", (250, 170, 30)),
    ("traffic sign", 20, 7, "object", (220, 220, 0)),
    ("vegetation", 21, 8, "nature", (107, 142, 35)),
    ("terrain", 22, 9, "nature", (152, 251, 152)),
    ("sky", 23, 10, "sky", (70, 130, 180)),
    ("person", 24, 11, "human", (220, 20, 60)),
    ("rider", 25, 12, "human", (255, 0, 0)),
    ("car", 26, 13, "vehicle", (0, 0, 142)),
    ("truck", 27, 14, "vehicle", (0, 0, 70)),
    ("bus", 28, 15, "vehicle", (0, 60, 100)),
    ("caravan", 29, 255, "vehicle", (0, 0, 90)),
    ("trailer", 30, 255, "vehicle", (0, 0, 110)),
    ("train", 31, 16, "vehicle", (0, 80, 100)),
    ("motorcycle", 32, 17, "vehicle", (0, 0, 230)),
    ("bicycle", 33, 18, "vehicle", (119, 11, 32)),
    ("license plate", -1, -1, "vehicle", (0, 0, 142)),
)


def _cityscapes() -> LabelTable:
    evaluated = sorted((train, name, colour) for name, _, train, _, colour in CITYSCAPES_LABELS if 0 <= train < 255)
    raw = {raw_id: (train if 0 <= train < 255 else 255) for _, raw_id, train, _, _ in CITYSCAPES_LABELS if raw_id >= 0}
    return LabelTable("cityscapes", tuple(n for _, n, _ in evaluated), tuple(c for _, _, c in evaluated), 255, raw)


#: Cityscapes: raw ids 0-33 of ``*_gtFine_labelIds.png`` -> the 19 train ids, 255 = ignore.
CITYSCAPES = _cityscapes()
