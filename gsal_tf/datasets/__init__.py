"""Datasets for dataset-scale explanations: readers (:mod:`.sources`, :mod:`.camvid`; :mod:`.layouts`
picks one), label tables (:mod:`.labels`) and label-set mappings between networks and datasets
(:mod:`.mapping`)."""

from gsal_tf.datasets.camvid import CAMVID, CamVidSource
from gsal_tf.datasets.labels import CITYSCAPES, CITYSCAPES_LABELS, LabelTable, plain_table
from gsal_tf.datasets.layouts import LAYOUTS, open_source
from gsal_tf.datasets.mapping import (
    UNMAPPED,
    LabelMapping,
    available_mappings,
    dataset_confusion,
    load_mapping,
    mapped_confusion,
    mapped_iou,
    mapped_mean_iou,
)
from gsal_tf.datasets.sources import (
    CityscapesSource,
    FolderSource,
    Sample,
    Source,
    TextureMNISTSource,
    TFDataSource,
    UnreadableSample,
)

__all__ = ["CITYSCAPES", "CITYSCAPES_LABELS", "CAMVID", "LabelTable", "plain_table", "LAYOUTS", "Source", "Sample", "FolderSource",
           "CityscapesSource", "CamVidSource", "TextureMNISTSource", "TFDataSource", "UnreadableSample", "open_source",
           "UNMAPPED", "LabelMapping", "available_mappings", "load_mapping", "mapped_confusion", "mapped_iou", "mapped_mean_iou",
           "dataset_confusion"]
