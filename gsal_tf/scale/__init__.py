"""Dataset-scale explanations: request policies (:mod:`.policy`), the job and its results
(:mod:`.job`, :mod:`.store`) and the engines that run it (:mod:`.engine`)."""

from gsal_tf.scale.engine import ENGINES, LocalEngine, make_engine
from gsal_tf.scale.job import RunSummary, explain_dataset, load_stats
from gsal_tf.scale.policy import RequestPolicy
from gsal_tf.scale.store import read_card, read_results

__all__ = ["ENGINES", "LocalEngine", "make_engine", "RunSummary", "explain_dataset", "load_stats", "RequestPolicy", "read_card", "read_results"]
