"""Dataset-scale explanations: request policies (:mod:`.policy`), the job and its results
(:mod:`.job`, :mod:`.store`), the engines that run it (:mod:`.engine`), runs side by side
(:mod:`.comparison`) and their figures and HTML report (:mod:`.report`)."""

from gsal_tf.scale.comparison import RunComparison, compare_runs
from gsal_tf.scale.engine import ENGINES, LocalEngine, make_engine
from gsal_tf.scale.job import RunSummary, explain_dataset, load_stats
from gsal_tf.scale.policy import RequestPolicy
from gsal_tf.scale.store import read_card, read_results
from gsal_tf.scale import report  # gs.scale.report.figures / write_html_report

__all__ = ["RunComparison", "compare_runs", "ENGINES", "LocalEngine", "make_engine", "RunSummary", "explain_dataset", "load_stats", "RequestPolicy", "read_card", "read_results"]
