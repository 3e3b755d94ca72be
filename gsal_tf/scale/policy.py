"""Which requests a dataset run explains in each image: a :class:`RequestPolicy`.

Zones (each one request, explained for one class):

- ``"class"`` — every class zone: all pixels of class k (one request per class present);
- ``"component"`` — every connected component (8-connectivity) of one class;
- ``"error"`` — the pixels of true class k that the network predicts as another class
  (labels ≠ prediction, ignore pixels excluded), explained for the class predicted most often
  there (:func:`gsal_tf.requests.predicted_class`): which context made the network err.

- ``"confusion"`` — the pixels of true class k that the network predicts as class p, one
  request per p ≠ k, explained for p: "label pedestrian, network rider" on its own.

``zones_from`` says where class and component zones come from: ``"labels"`` (the ground truth;
the class explained is the true class) or ``"predictions"`` (the network's arg-max). Error and
confusion zones need both. Zones smaller than ``min_pixels`` pixels are skipped; ``classes``
keeps only zones of those (true or predicted) class ids; ``exclude`` drops some (e.g. a
background class).

With a ``mapping`` (:class:`gsal_tf.datasets.mapping.LabelMapping`, a shipped name or a TOML
path) the labels are *dataset* classes and the network predicts its own: zone classes (and
``classes`` / ``exclude``) are dataset classes, the class explained is a network class.

- zones from labels explain the network class the mapping lists first for the zone's class
  (CamVid car -> Cityscapes car); a dataset class no network class means gets no request;
- zones from predictions are zones of the dataset class the predicted network classes mean
  (Cityscapes car, truck, bus -> one CamVid car zone), explained for the network class predicted
  most often in the zone;
- a pixel is in an error or confusion zone of dataset class k when its predicted network class
  does not mean k (a network class that means none counts as wrong).

``context_from`` says what the *context classes* of the statistics are: ``"labels"`` (the
default: the data's label map, or its own context map) or ``"predictions"`` (the network's
arg-max on the image, in the network's own classes — not merged through a mapping, so a
Cityscapes network's *bicycle* and *rider* stay apart where CamVid has one *bicyclist*). With
predictions, "how much of the salient context lies on what the network itself sees as a
bicycle" can be asked on data whose labels do not separate it, or have no labels at all.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Union

import cv2
import numpy as np

from gsal_tf.datasets.mapping import UNMAPPED, LabelMapping, load_mapping
from gsal_tf.errors import GsalInputError
from gsal_tf.requests import predicted_class
from gsal_tf.validation import check_choice, check_int

__all__ = ["ZONES", "ZONE_SOURCES", "CONTEXT_SOURCES", "Request", "RequestPolicy"]

ZONES = ("class", "component", "error", "confusion")
ZONE_SOURCES = ("labels", "predictions")
CONTEXT_SOURCES = ("labels", "predictions")


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
    mapping: Optional[Union[LabelMapping, str]] = None
    context_from: str = "labels"

    def __post_init__(self):
        check_choice("zone", self.zone, ZONES)
        check_choice("zones_from", self.zones_from, ZONE_SOURCES)
        check_choice("context_from", self.context_from, CONTEXT_SOURCES)
        check_int("min_pixels", self.min_pixels)
        if self.classes is not None:
            object.__setattr__(self, "classes", tuple(int(c) for c in self.classes))
        object.__setattr__(self, "exclude", tuple(int(c) for c in self.exclude))
        if self.mapping is not None:
            object.__setattr__(self, "mapping", load_mapping(self.mapping))

    @property
    def needs_labels(self) -> bool:
        return self.zone in ("error", "confusion") or self.zones_from == "labels"

    @property
    def needs_predictions(self) -> bool:
        return self.zone in ("error", "confusion") or self.zones_from == "predictions" or self.context_from == "predictions"

    def to_dict(self) -> dict:
        out = {"zone": self.zone, "zones_from": self.zones_from, "classes": None if self.classes is None else list(self.classes),
               "exclude": list(self.exclude), "min_pixels": int(self.min_pixels)}
        if self.mapping is not None:  # only then: cards of runs without a mapping stay as they were
            out["mapping"] = self.mapping.to_dict()
        if self.context_from != "labels":  # likewise
            out["context_from"] = self.context_from
        return out

    def requests(self, labels: Optional[np.ndarray], prediction: Optional[np.ndarray], ignore_label: Optional[int] = None) -> list[Request]:
        """The requests of one image, in a fixed order (by class id, then component by first pixel).

        ``labels`` and ``prediction`` are (H,W) int maps (either may be None when not needed).
        """
        from_labels = self.zones_from == "labels" or self.zone in ("error", "confusion")
        zone_map = labels if from_labels else prediction
        if zone_map is None:
            raise GsalInputError(f"the request policy ({self.zone} zones from {self.zones_from}) needs label maps; give data with labels")
        if self.mapping is not None and not from_labels:
            zone_map = self.mapping.dataset_prediction(prediction)
        out = []
        for k in np.unique(zone_map):
            k = int(k)
            if k == ignore_label or k in self.exclude or (self.classes is not None and k not in self.classes):
                continue
            if self.mapping is not None and self._unexplained(k, from_labels):
                continue
            zone = zone_map == k
            if self.zone in ("error", "confusion"):
                zone = zone & ~self._means(prediction, k)
                if self.zone == "error":
                    if zone.sum() >= self.min_pixels:
                        out.append(Request(zone, k, predicted_class(prediction, zone), "error"))
                    continue
                for p in np.unique(prediction[zone]):
                    part = zone & (prediction == p)
                    if part.sum() >= self.min_pixels:
                        out.append(Request(part, k, int(p), "confusion"))
            elif self.zone == "class":
                if zone.sum() >= self.min_pixels:
                    out.append(Request(zone, k, self._explained(k, from_labels, prediction, zone), "class"))
            else:
                count, components, stats, _ = cv2.connectedComponentsWithStats(zone.astype(np.uint8), connectivity=8)
                for j in range(1, count):  # numbered in raster order of their first pixel
                    if stats[j, cv2.CC_STAT_AREA] >= self.min_pixels:
                        part = components == j
                        out.append(Request(part, k, self._explained(k, from_labels, prediction, part), "component"))
        return out

    def _unexplained(self, k: int, from_labels: bool) -> bool:
        """Zones of class k get no request under the mapping: predictions that mean no dataset
        class, and class/component zones of a dataset class no network class means."""
        if not from_labels:
            return k == UNMAPPED
        if not 0 <= k < len(self.mapping.dataset_classes):
            raise GsalInputError(f"labels hold id {k}, outside the {len(self.mapping.dataset_classes)} {self.mapping.dataset_set} classes "
                                 f"of mapping {self.mapping.name}; give the ignore label or labels of those classes")
        return self.zone in ("class", "component") and self.mapping.explained[k] == UNMAPPED

    def _means(self, prediction: np.ndarray, k: int) -> np.ndarray:
        """(H,W) bool: the predicted class means (zone) class k."""
        return prediction == k if self.mapping is None else self.mapping.dataset_prediction(prediction) == k

    def _explained(self, k: int, from_labels: bool, prediction: Optional[np.ndarray], zone: np.ndarray) -> int:
        """The class a class or component zone of class k explains (module docstring)."""
        if self.mapping is None:
            return k
        if from_labels:
            return int(self.mapping.explained[k])
        return predicted_class(prediction, zone)
