"""gsal_tf — grid saliency context explanations for Keras segmentation networks."""

from gsal_tf._version import __version__

__all__ = ["__version__"]
