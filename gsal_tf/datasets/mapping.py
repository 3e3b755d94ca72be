"""Label-set mappings: which class of a network corresponds to which class of a dataset.

A network trained on one label set (Cityscapes' 19 classes, ADE20K's 150, PASCAL VOC's 21) is
explained on a dataset labelled with another (CamVid's 11). A :class:`LabelMapping` says, for
every dataset class ``d``, which network classes mean ``d``:

- ``to_dataset`` (Kn,) int: the dataset class of network class ``n``, or :data:`UNMAPPED` (-1)
  for a network class that means none of them (PASCAL's background, ADE20K's bed);
- ``explained`` (Kd,) int: the network class a request on dataset class ``d`` explains — the
  first one listed for ``d`` — or -1 when no network class means ``d`` (PASCAL has no sky).

It is used by the request policy (:class:`gsal_tf.scale.RequestPolicy` with ``mapping=``:
"explain the network's *car* on every CamVid car", error and confusion zones where the network
predicts a class that means another dataset class) and for the segmentation quality of a network
on the dataset (:func:`mapped_confusion`, :func:`mapped_iou`, :func:`dataset_confusion`).

Mappings are data: TOML files, one per (network label set, dataset label set). The shipped ones
(:func:`available_mappings`) are ``cityscapes-camvid``, ``ade20k-camvid`` and
``pascal-camvid``; a user with another network or dataset writes one such file and passes its path
(:func:`load_mapping`, ``gsal explain-dataset --mapping FILE``). Format::

    name = "cityscapes-camvid"                 # optional (default: the file name)
    description = "Cityscapes (19 train ids) -> CamVid (11 classes)"

    [network]                                  # the network's classes, in id order:
    label_set = "cityscapes"                   #   a label table of gsal_tf.datasets (cityscapes, camvid) ...
    # classes = ["road", "sidewalk", ...]      #   ... or the names of ids 0..K-1 (then label_set only names them)

    [dataset]                                  # the dataset's classes, the same way
    label_set = "camvid"                       #   (its ignore label comes with it)
    # classes = [...]; ignore = 11             #   a dataset of your own: its names, and the ignore id if any

    [classes]                                  # dataset class = [network classes]; the FIRST is the one
    car = ["car", "truck", "bus", "train"]     #   a request on that dataset class explains
    "sign symbol" = ["traffic sign", "traffic light"]
    # a dataset class left out has no network class; a network class named nowhere maps to none

    [notes]                                    # optional: why, for the ambiguous cases (text)
    wall = "a free-standing wall: fence"

Class names match without regard to case, spaces, ``_`` and ``-``; an integer entry is a class
id. Every named class must exist in its label set, and a network class may mean only one
dataset class: anything else is a :class:`~gsal_tf.errors.GsalInputError` naming the file.

A mapping is checked against the network it is used with (:meth:`LabelMapping.for_network`):
a network with class names (a zoo model: ``model.zoo_entry.class_names``) must have every
network class the mapping names, matched by name (ids are taken from the network); a network
without names must have exactly as many classes as the mapping lists.

Segmentation quality through a mapping (``C`` of :func:`mapped_confusion`, (Kd, Kd+1), rows
the dataset's labels, columns the dataset class of the network's prediction, the last column
"no dataset class"; pixels labelled ``ignore_label`` are not counted)::

    IoU_d = C[d,d] / (sum_j C[d,j] + sum_i C[i,d] - C[d,d])      mIoU = mean of IoU_d

A pixel predicted as a network class that maps to nothing is a miss of its true class (never a
false positive of another). IoU_d is NaN for a dataset class that no network class means (the
network cannot predict it: PASCAL and sky) and for one absent from both labels and predictions;
the mIoU is the mean over the others, so report which classes it covers beside it.

Example
-------
>>> import gsal_tf as gs
>>> from gsal_tf.datasets import dataset_confusion, load_mapping, mapped_iou, mapped_mean_iou
>>> mapping = load_mapping("cityscapes-camvid")
>>> model = gs.zoo.load("cityscapes-mobilenet-edgetpu")
>>> confusion = dataset_confusion(model, "CamVid", mapping, split="test")      # (11, 12)
>>> mapped_iou(confusion, mapping), mapped_mean_iou(confusion, mapping)
>>> policy = gs.scale.RequestPolicy(zone="confusion", mapping=mapping)       # label pedestrian, network rider ...
>>> gs.explain_dataset(model, "CamVid", "runs/camvid-confusions", split="test", policy=policy)
"""

from __future__ import annotations

import dataclasses
import tomllib
from importlib import resources
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from gsal_tf import metrics
from gsal_tf.errors import GsalInputError, first_line

__all__ = [
    "UNMAPPED", "LabelMapping", "available_mappings", "load_mapping", "parse_mapping", "mapped_confusion",
    "mapped_iou", "mapped_mean_iou", "dataset_confusion",
]

#: The dataset class of a network class that means none of them.
UNMAPPED = -1

_KEYS = {"name", "description", "network", "dataset", "classes", "notes"}


@dataclasses.dataclass(frozen=True)
class LabelMapping:
    """Which network classes mean which dataset class (module docstring).

    Attributes
    ----------
    name : str — e.g. "cityscapes-camvid".
    network_set, dataset_set : str — the label sets' names ("cityscapes", "camvid").
    network_classes : tuple of str (Kn,) — names of the network's class ids.
    dataset_classes : tuple of str (Kd,) — names of the dataset's class ids.
    groups : tuple (Kd,) of tuples of int — the network ids meaning dataset class d, the
        explained one first; empty when none does.
    ignore_label : int or None — the dataset's label of pixels that are not evaluated.
    description : str; notes : dict of str — why, for the ambiguous cases.
    """

    name: str
    network_set: str
    dataset_set: str
    network_classes: tuple
    dataset_classes: tuple
    groups: tuple
    ignore_label: Optional[int] = None
    description: str = ""
    notes: dict = dataclasses.field(default_factory=dict, compare=False)

    @property
    def to_dataset(self) -> np.ndarray:
        """(Kn,) int64: the dataset class of each network class, :data:`UNMAPPED` for none."""
        out = np.full(len(self.network_classes), UNMAPPED, np.int64)
        for d, group in enumerate(self.groups):
            out[list(group)] = d
        return out

    @property
    def explained(self) -> np.ndarray:
        """(Kd,) int64: the network class a request on dataset class d explains (first of its
        group), :data:`UNMAPPED` where no network class means d."""
        return np.array([group[0] if group else UNMAPPED for group in self.groups], np.int64)

    def dataset_prediction(self, prediction) -> np.ndarray:
        """A network's prediction (any shape, class ids 0..Kn-1) as dataset classes (same shape,
        int64), :data:`UNMAPPED` where the network class means none."""
        prediction = np.asarray(prediction)
        if prediction.size and (prediction.min() < 0 or prediction.max() >= len(self.network_classes)):
            raise GsalInputError(f"a prediction holds class ids outside the {len(self.network_classes)} network classes of mapping "
                                 f"{self.name} (0..{len(self.network_classes) - 1}): [{prediction.min()}, {prediction.max()}]")
        return self.to_dataset[prediction.astype(np.int64)]

    def for_network(self, num_classes: int, class_names: Optional[Sequence[str]] = None) -> "LabelMapping":
        """This mapping checked against a network of ``num_classes`` classes, named
        ``class_names`` when known (module docstring); with names, the returned mapping takes the
        network's ids and names. A class the network lacks is a GsalInputError."""
        names = [str(n) for n in class_names] if class_names else []
        if not names:
            if num_classes != len(self.network_classes):
                raise GsalInputError(f"mapping {self.name} is for a network of {len(self.network_classes)} classes ({self.network_set}: "
                                     f"{_preview(self.network_classes)}); this network has {num_classes} and no class names; "
                                     "give the mapping of this network's classes")
            return self
        used = [n for group in self.groups for n in group]
        missing = [self.network_classes[n] for n in used if not any(_key(have) == _key(self.network_classes[n]) for have in names)]
        if missing:
            raise GsalInputError(f"mapping {self.name} names network {'class' if len(missing) == 1 else 'classes'} this network lacks: "
                                 f"{_preview(missing, 4)} (its {len(names)} classes: {_preview(names)}); give the mapping of this network's classes")
        new_ids = {}
        for n in used:
            wanted = self.network_classes[n]
            found = [i for i, have in enumerate(names) if _key(have) == _key(wanted)]
            if len(found) > 1:
                raise GsalInputError(f"mapping {self.name}: network class {wanted!r} is the name of ids {found} of this network; "
                                     "a mapping can only use class names the network gives one id")
            if found[0] >= num_classes:
                raise GsalInputError(f"mapping {self.name}: network class {wanted!r} is id {found[0]} of the network's names, "
                                     f"but the network has {num_classes} outputs")
            new_ids[n] = found[0]
        groups = tuple(tuple(new_ids[n] for n in group) for group in self.groups)
        return dataclasses.replace(self, network_classes=tuple(names), groups=groups)

    def check_dataset(self, class_names: Optional[Sequence[str]], ignore_label: Optional[int] = None) -> None:
        """A GsalInputError unless data of classes ``class_names`` (None: unnamed, not checked)
        and ``ignore_label`` (None: not checked) are the dataset classes of this mapping."""
        if class_names is not None and [_key(n) for n in class_names] != [_key(n) for n in self.dataset_classes]:
            raise GsalInputError(f"mapping {self.name} is for {self.dataset_set} classes ({_preview(self.dataset_classes)}); "
                                 f"the data's classes are {_preview(class_names)}; give the mapping of the data's label set")
        if ignore_label is not None and self.ignore_label is not None and int(ignore_label) != self.ignore_label:
            raise GsalInputError(f"mapping {self.name} ignores label {self.ignore_label}; the data ignores {ignore_label}")

    def to_dict(self) -> dict:
        """The mapping as plain JSON values (for run cards: a run of another mapping is another run)."""
        return {"name": self.name, "network_set": self.network_set, "dataset_set": self.dataset_set,
                "network_classes": list(self.network_classes), "dataset_classes": list(self.dataset_classes),
                "groups": [list(g) for g in self.groups], "ignore_label": self.ignore_label}

    @classmethod
    def from_dict(cls, values: dict) -> "LabelMapping":
        """The mapping :meth:`to_dict` wrote (a run card's ``settings.policy.mapping``); its
        description and notes are not in a card, and come back empty."""
        return cls(name=values["name"], network_set=values["network_set"], dataset_set=values["dataset_set"],
                   network_classes=tuple(values["network_classes"]), dataset_classes=tuple(values["dataset_classes"]),
                   groups=tuple(tuple(int(i) for i in g) for g in values["groups"]), ignore_label=values["ignore_label"])


# -- loading ---------------------------------------------------------------------------------


def available_mappings() -> tuple:
    """Names of the mappings that ship with gsal (``gsal_tf/datasets/mappings/*.toml``)."""
    folder = resources.files("gsal_tf.datasets") / "mappings"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


def load_mapping(mapping) -> LabelMapping:
    """A :class:`LabelMapping` from a shipped name (:func:`available_mappings`), a TOML file
    path, or a LabelMapping (returned as it is)."""
    if isinstance(mapping, LabelMapping):
        return mapping
    text = str(mapping)
    if text in available_mappings():
        resource = resources.files("gsal_tf.datasets") / "mappings" / f"{text}.toml"
        return parse_mapping(_read_toml(resource.read_text(encoding="utf-8"), f"mapping {text}"), text, f"mapping {text}")
    path = Path(text)
    if path.suffix.lower() != ".toml" or not path.is_file():
        raise GsalInputError(f"mapping {text!r} is neither a shipped mapping ({', '.join(available_mappings())}) nor a TOML file")
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GsalInputError(f"cannot read the mapping {path}: {first_line(exc)}") from None
    return parse_mapping(_read_toml(content, str(path)), path.stem, str(path))


def parse_mapping(table: dict, default_name: str = "mapping", where: str = "mapping") -> LabelMapping:
    """A :class:`LabelMapping` from the TOML table of the module docstring (``where`` names it in errors)."""
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise GsalInputError(f"{where}: unknown keys {unknown}; a mapping has {sorted(_KEYS)}")
    network_set, network_classes, _ = _label_set(table.get("network"), "network", where)
    dataset_set, dataset_classes, ignore = _label_set(table.get("dataset"), "dataset", where)
    classes = table.get("classes")
    if not isinstance(classes, dict) or not classes:
        raise GsalInputError(f"{where}: [classes] must list dataset class = [network classes, ...]")
    groups: list = [() for _ in dataset_classes]
    owner: dict = {}
    for dataset_name, entries in classes.items():
        d = _find(dataset_name, dataset_classes, f"{where}: [classes] {dataset_name!r} is not one of the dataset's classes")
        if groups[d]:
            raise GsalInputError(f"{where}: [classes] names dataset class {dataset_classes[d]!r} twice")
        entries = [entries] if isinstance(entries, (str, int)) else entries
        if not isinstance(entries, list) or not entries:
            raise GsalInputError(f"{where}: [classes] {dataset_name} must be a list of network classes, got {entries!r}")
        ids = []
        for entry in entries:
            n = _find(entry, network_classes, f"{where}: [classes] {dataset_name} names {entry!r}, which is not one of the network's classes")
            if n in owner:
                raise GsalInputError(f"{where}: network class {network_classes[n]!r} is listed under {owner[n]!r} and "
                                     f"{dataset_classes[d]!r}; a network class means one dataset class")
            owner[n] = dataset_classes[d]
            ids.append(n)
        groups[d] = tuple(ids)
    notes = table.get("notes", {})
    if not isinstance(notes, dict) or not all(isinstance(v, str) for v in notes.values()):
        raise GsalInputError(f"{where}: [notes] must hold text values")
    return LabelMapping(str(table.get("name", default_name)), network_set, dataset_set, tuple(network_classes), tuple(dataset_classes),
                        tuple(groups), ignore, str(table.get("description", "")), dict(notes))


def _label_tables() -> dict:
    from gsal_tf.datasets.camvid import CAMVID
    from gsal_tf.datasets.labels import CITYSCAPES

    return {"cityscapes": CITYSCAPES, "camvid": CAMVID}


def _label_set(section, side: str, where: str) -> tuple:
    """(label set name, class names, ignore label) of a [network] or [dataset] section."""
    if not isinstance(section, dict):
        raise GsalInputError(f"{where}: a [{side}] section with label_set = \"...\" or classes = [...] is needed")
    extra = sorted(set(section) - {"label_set", "classes", "ignore"})
    if extra:
        raise GsalInputError(f"{where}: unknown keys {extra} in [{side}]; it takes label_set, classes" + (", ignore" if side == "dataset" else ""))
    tables = _label_tables()
    name, names = section.get("label_set"), section.get("classes")
    ignore = section.get("ignore")
    if names is None:
        if name not in tables:
            raise GsalInputError(f"{where}: [{side}] label_set {name!r} is not a label table of gsal ({', '.join(tables)}); "
                                 "list its classes = [...] instead")
        names = tables[name].names
        ignore = tables[name].ignore_label if ignore is None else ignore
    elif not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise GsalInputError(f"{where}: [{side}] classes must be a list of class names (id order)")
    elif name in tables and ignore is None:
        ignore = tables[name].ignore_label
    if side == "network" and ignore is not None and "ignore" in section:
        raise GsalInputError(f"{where}: [network] takes no ignore label (networks predict a class everywhere)")
    if ignore is not None and (isinstance(ignore, bool) or not isinstance(ignore, int) or 0 <= ignore < len(names)):
        raise GsalInputError(f"{where}: [{side}] ignore must be an integer id outside the classes 0..{len(names) - 1}, got {ignore!r}")
    return str(name or side), tuple(names), (ignore if side == "dataset" else None)


def _find(entry, names: Sequence[str], message: str) -> int:
    """The id of ``entry`` (a class name, or an id) in ``names``; ``message`` says what is wrong
    when it is not one of them."""
    if isinstance(entry, int) and not isinstance(entry, bool):
        if 0 <= entry < len(names):
            return entry
        raise GsalInputError(f"{message} (ids 0..{len(names) - 1})")
    found = [i for i, name in enumerate(names) if _key(name) == _key(str(entry))]
    if len(found) == 1:
        return found[0]
    if found:
        raise GsalInputError(f"{message.split(': ')[0]}: {entry!r} is the name of ids {found}; give the id instead")
    raise GsalInputError(f"{message} ({len(names)} classes: {_preview(names)})")


def _key(name: str) -> str:
    return "".join(ch for ch in str(name).casefold() if ch not in " _-")


def _preview(names: Sequence[str], count: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:count]) + (f", … ({len(names) - count} more)" if len(names) > count else "")


def _read_toml(text: str, where: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GsalInputError(f"{where} is not valid TOML: {first_line(exc)}") from None


# -- segmentation quality through a mapping --------------------------------------------------


def mapped_confusion(labels, prediction, mapping: LabelMapping) -> np.ndarray:
    """(Kd, Kd+1) int64 confusion of a network's ``prediction`` against dataset ``labels``.

    ``labels`` and ``prediction`` have one shape (e.g. (H,W) or (N,H,W)): dataset class ids
    0..Kd-1 (or ``mapping.ignore_label``, not counted) and network class ids 0..Kn-1.
    ``C[i, j]`` = pixels labelled i whose predicted network class means dataset class j; the
    last column counts the pixels predicted as a network class that means none.
    """
    labels, prediction = np.asarray(labels), np.asarray(prediction)
    if labels.shape != prediction.shape:
        raise GsalInputError(f"labels {labels.shape} and prediction {prediction.shape} must have the same shape")
    k = len(mapping.dataset_classes)
    bad = (labels < 0) | (labels >= k)
    if mapping.ignore_label is not None:
        bad &= labels != mapping.ignore_label
    if bad.any():
        raise GsalInputError(f"labels hold ids {np.unique(labels[bad])[:5].tolist()} outside the {mapping.dataset_set} classes 0..{k - 1}"
                             f"{'' if mapping.ignore_label is None else f' and the ignore label {mapping.ignore_label}'}")
    predicted = mapping.dataset_prediction(prediction)
    predicted = np.where(predicted == UNMAPPED, k, predicted)
    truth = np.where(labels == mapping.ignore_label, k + 1, labels) if mapping.ignore_label is not None else labels
    return metrics.confusion_matrix(predicted, truth.astype(np.int64), k + 2, ignore_label=k + 1)[:k, :k + 1]


def mapped_iou(confusion, mapping: LabelMapping) -> np.ndarray:
    """(Kd,) float64 IoU per dataset class from a :func:`mapped_confusion` (Kd, Kd+1); NaN for a
    class no network class means, and for one absent from labels and predictions."""
    confusion = np.asarray(confusion)
    k = len(mapping.dataset_classes)
    if confusion.shape != (k, k + 1):
        raise GsalInputError(f"a confusion through mapping {mapping.name} is ({k}, {k + 1}), got {confusion.shape}")
    square = np.vstack([confusion, np.zeros((1, k + 1), confusion.dtype)])  # no pixel is labelled "no dataset class"
    iou = metrics.iou_per_class(square)[:k]
    iou[mapping.explained == UNMAPPED] = np.nan
    return iou


def mapped_mean_iou(confusion, mapping: LabelMapping) -> float:
    """The mean of :func:`mapped_iou` over the classes that have one; NaN when none has."""
    iou = mapped_iou(confusion, mapping)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def dataset_confusion(model, data, mapping, *, layout: str = "auto", split: Optional[str] = None, limit: Optional[int] = None,
                      input_size=None, output: Optional[str] = None, pixel_scale: Optional[float] = None,
                      progress: Optional[Callable[[int, Optional[int]], None]] = None) -> np.ndarray:
    """The :func:`mapped_confusion` (Kd, Kd+1) of ``model`` summed over the samples of ``data``.

    ``data``, ``layout``, ``split``, ``pixel_scale``: as :func:`gsal_tf.datasets.open_source` (labels needed).
    Every image is fitted to the network as in :func:`gsal_tf.explain_dataset` (letterboxed to
    its input size, or ``input_size``), predicted, and its arg-max mapped back to the image's
    resolution (nearest). ``mapping`` is checked against the network first
    (:meth:`LabelMapping.for_network`). Unreadable samples are a GsalInputError.
    ``progress(samples_done, total or None)`` after each sample.
    """
    from gsal_tf.datasets.layouts import open_source
    from gsal_tf.datasets.sources import UnreadableSample
    from gsal_tf.model_calls import predict, resolve_output
    from gsal_tf.pictures import fit_picture
    from gsal_tf.viz import class_names

    mapping = load_mapping(mapping)
    source = open_source(data, layout, split=split, pixel_scale=pixel_scale)
    if not source.has_labels:
        raise GsalInputError("the mIoU needs label maps, and the data has none")
    mapping.check_dataset(source.class_names, source.ignore_label)
    try:
        total = len(source) if limit is None else min(len(source), limit)
    except TypeError:
        total = limit
    confusion, bound, kind = None, None, output
    for index, sample in source.iter_from(0):
        if limit is not None and index >= limit:
            break
        if isinstance(sample, UnreadableSample):
            raise GsalInputError(f"sample {index}: {sample}")
        picture = fit_picture(sample.image, model, input_size, pad_value=source.grey)  # as explain_dataset fits it
        image, fit = picture.network_input, picture.fit
        kind = resolve_output(model, image.shape, kind)
        scores = predict(model, image[None], kind)[0]
        if bound is None:
            bound = mapping.for_network(scores.shape[-1], class_names(model) or None)
            confusion = np.zeros((len(bound.dataset_classes), len(bound.dataset_classes) + 1), np.int64)
        prediction = fit.to_image(scores.argmax(-1).astype(np.int32), nearest=True)
        confusion += mapped_confusion(sample.labels, prediction, bound)
        if progress is not None:
            progress(index + 1, total)
    if confusion is None:
        raise GsalInputError("the data holds no samples")
    return confusion
