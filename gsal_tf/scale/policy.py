"""Which requests a dataset run explains in each image: a :class:`RequestPolicy`.

Zones (each one request, explained for one class):

- ``"class"`` — every class zone: all pixels of class k (one request per class present);
- ``"component"`` — every connected component (8-connectivity) of one class;
- ``"error"`` — the pixels of true class k that the network predicts as another class
  (labels ≠ prediction, ignore pixels excluded), explained for the class predicted most often
  there (:func:`gsal_tf.requests.predicted_class`): which context made the network err.

``zones_from`` says where class and component zones come from: ``"labels"`` (the ground truth;
the class explained is the true class) or ``"predictions"`` (the network's arg-max). Error
zones need both. Zones smaller than ``min_pixels`` pixels are skipped; ``classes`` keeps only
zones of those (true or predicted) class ids; ``exclude`` drops some (e.g. a background class).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError
from gsal_tf.requests import predicted_class

ZONES = ("class", "component", "error")
ZONE_SOURCES = ("labels", "predictions")


@dataclasses.dataclass(frozen=True)
class Request:
    """One request of an image: ``mask`` (H,W) bool, the zone's class, the class explained."""

    mask: np.ndarray
    zone_class: int
    class_id: int
    zone: str


@dataclasses.dataclass(frozen=True)
class RequestPolicy:
    """How requests are built per image (module docstring)."""

    zone: str = "class"
    zones_from: str = "labels"
    classes: Optional[tuple] = None
    exclude: tuple = ()
    min_pixels: int = 16

    def __post_init__(self):
        if self.zone not in ZONES:
            raise GsalInputError(f"zone must be one of {', '.join(ZONES)}; got {self.zone!r}")
        if self.zones_from not in ZONE_SOURCES:
            raise GsalInputError(f"zones_from must be one of {', '.join(ZONE_SOURCES)}; got {self.zones_from!r}")
        if isinstance(self.min_pixels, bool) or not isinstance(self.min_pixels, (int, np.integer)) or self.min_pixels < 1:
            raise GsalInputError(f"min_pixels must be a positive integer, got {self.min_pixels!r}")
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        object.__setattr__(self, "exclude", tuple(int(c) for c in self.exclude))

    @property
    def needs_labels(self) -> bool:
        return self.zone == "error" or self.zones_from == "labels"

    @property
    def needs_predictions(self) -> bool:
        return self.zone == "error" or self.zones_from == "predictions"

    def to_dict(self) -> dict:
        return {"zone": self.zone, "zones_from": self.zones_from, "classes": None if self.classes is None else list(self.classes),
                "exclude": list(self.exclude), "min_pixels": int(self.min_pixels)}

    def requests(self, labels: Optional[np.ndarray], prediction: Optional[np.ndarray], ignore_label: Optional[int] = None) -> list[Request]:
        """The requests of one image, in a fixed order (by class id, then component by first pixel).

        ``labels`` and ``prediction`` are (H,W) int maps (either may be None when not needed).
        """
        zone_map = labels if (self.zones_from == "labels" or self.zone == "error") else prediction
        if zone_map is None:
            raise GsalInputError(f"the request policy ({self.zone} zones from {self.zones_from}) needs label maps; give data with labels")
        out = []
        for k in np.unique(zone_map):
            k = int(k)
            if k == ignore_label or k in self.exclude or (self.classes is not None and k not in self.classes):
                continue
            zone = zone_map == k
            if self.zone == "error":
                zone = zone & (prediction != k)
                if zone.sum() < self.min_pixels:
                    continue
                out.append(Request(zone, k, predicted_class(prediction, zone), "error"))
            elif self.zone == "class":
                if zone.sum() >= self.min_pixels:
                    out.append(Request(zone, k, k, "class"))
            else:
                count, components, stats, _ = cv2.connectedComponentsWithStats(zone.astype(np.uint8), connectivity=8)
                for j in range(1, count):  # numbered in raster order of their first pixel
                    if stats[j, cv2.CC_STAT_AREA] >= self.min_pixels:
                        out.append(Request(components == j, k, k, "component"))
        return out
