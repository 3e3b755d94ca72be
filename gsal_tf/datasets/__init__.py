"""Datasets for dataset-scale explanations: readers (:mod:`.sources`) and label tables (:mod:`.labels`)."""

from gsal_tf.datasets.labels import CITYSCAPES, CITYSCAPES_LABELS, LabelTable, plain_table
from gsal_tf.datasets.sources import (
    LAYOUTS,
    CityscapesSource,
    FolderSource,
    Sample,
    Source,
    TextureMNISTSource,
    TFDataSource,
    UnreadableSample,
    open_source,
)

__all__ = ["CITYSCAPES", "CITYSCAPES_LABELS", "LabelTable", "plain_table", "LAYOUTS", "Source", "Sample", "FolderSource",
           "CityscapesSource", "TextureMNISTSource", "TFDataSource", "UnreadableSample", "open_source"]
