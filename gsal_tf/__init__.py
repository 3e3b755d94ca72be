"""gsal_tf — grid saliency context explanations for Keras segmentation networks."""

from gsal_tf._version import __version__
from gsal_tf import attributions, benchmark, models, requests, zoo
from gsal_tf.errors import GsalError, GsalInputError
from gsal_tf.saliency import Explanation, GridSaliency

__all__ = ["__version__", "GridSaliency", "Explanation", "GsalError", "GsalInputError", "requests", "benchmark", "models", "zoo", "attributions"]
