"""The Ray engine (``engine="ray"``): a dataset job as a Ray Data pipeline.

Pipeline::

    driver thread: job.plan(start) ──(shard k, images/masks/class_ids)──▶ Ray queue
    Ray Data:      read_datasource(queue) ─▶ map_batches(_ExplainActor, batch_size=1, num_cpus=c, num_gpus=g,
                                                          compute=ActorPoolStrategy(size=A))
    driver:        iter_rows() ─▶ reorder by shard ─▶ job.commit(k, batch, result), k = start.shard, …

One row of the Ray dataset is one planned batch (one explainer call, one shard). Each of the
``A`` actors holds one explainer it builds itself: the Keras model travels once through the
object store as ``.keras`` bytes (never a pickled live model), is loaded in the actor, checked
against the driver's weights fingerprint, and wrapped by ``make_explainer(method, model,
**options)`` with the driver explainer's method and options (:func:`explainer_recipe`). An actor
runs TensorFlow on ``c`` intra-op threads (set before its first op), so ``A·c`` threads cover the
CPUs without oversubscription.

Only the driver writes: shards land in the one results folder with the local engine's numbering
and content (the explainer call is the same; only the process differs). At most
``max_in_flight`` batches are planned and not yet committed, so a killed run loses at most those;
a rerun resumes from the committed shards like the local engine (same ``start``).

Faults: an actor whose process dies is restarted by Ray (``max_restarts``) and its batches are
retried (``max_task_retries``); the driver commits each shard once, in order, so no request is
lost or duplicated.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
import threading
import warnings
from typing import Optional

from gsal_tf.errors import GsalError, GsalInputError
from gsal_tf.validation import check_int, check_number

__all__ = ["explainer_recipe", "model_bytes", "default_actors", "RayEngine"]

_INSTALL = 'engine="ray" needs Ray: install it with pip install "gsal-tf[ray]"'


def _ray():
    """The ray module, or a GsalInputError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise GsalInputError(_INSTALL) from None
    return ray


def explainer_recipe(explainer) -> tuple[str, dict]:
    """``(method, options)`` such that ``make_explainer(method, model, **options)`` rebuilds
    ``explainer`` (its ``params`` minus what the constructor does not take), checked by rebuilding
    it; a GsalInputError when its settings do not round-trip (e.g. a custom baseline callable)."""
    from gsal_tf.methods import make_explainer, method_parameters

    params = dict(explainer.params)
    method = params.pop("method")
    accepted = method_parameters(method)
    options = {k: v for k, v in params.items() if k in accepted}
    try:
        same = make_explainer(method, explainer.model, **options).params == explainer.params
    except (GsalError, TypeError, ValueError):
        same = False
    if not same:
        raise GsalInputError(f"engine='ray' rebuilds the explainer in each actor from its method and options, and the settings of this "
                             f"{method} explainer do not round-trip ({explainer.params}); give plain options (no custom callables or arrays)")
    return method, options


def model_bytes(model) -> bytes:
    """The Keras model saved as a ``.keras`` file, as bytes (what the actors load)."""
    import keras

    if not isinstance(model, keras.Model):
        raise GsalInputError(f"engine='ray' ships the model to its actors as a .keras file and needs a Keras model; got {type(model).__name__} "
                             "(convert a SavedModel to .keras, or use engine='local')")
    with tempfile.TemporaryDirectory(prefix="gsal-ray-") as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        with open(path, "rb") as handle:
            return handle.read()


def default_actors(resources: dict, cpus_per_actor: float, gpus_per_actor: float) -> int:
    """Actors that fit the cluster: ``floor(GPUs / gpus_per_actor)`` when actors take GPUs, else
    ``floor(CPUs / cpus_per_actor)``; at least 1."""
    if gpus_per_actor > 0:
        return max(1, int(resources.get("GPU", 0) // gpus_per_actor))
    return max(1, int(resources.get("CPU", 1) // cpus_per_actor))


class _ExplainActor:
    """One Ray Data actor: builds its own model and explainer, then explains one batch per call.

    ``__call__`` takes a Ray Data batch of rows ``{"shard": (n,), "payload": (n,) bytes}``
    (pickled ``(images, masks, class_ids)``) and returns ``{"shard", "result"}`` (the pickled
    :class:`~gsal_tf.explainer.ExplanationResult`)."""

    def __init__(self, model_ref, fingerprint: str, method: str, options: dict, threads: int):
        from gsal_tf.threads import use_threads

        use_threads(threads)  # before TensorFlow's first op in this process
        import ray

        from gsal_tf.methods import make_explainer
        from gsal_tf.loading import load_model
        from gsal_tf.scale.job import model_fingerprint

        data = ray.get(model_ref[0])
        with tempfile.TemporaryDirectory(prefix="gsal-ray-actor-") as tmp:
            path = os.path.join(tmp, "model.keras")
            with open(path, "wb") as handle:
                handle.write(data)
            model = load_model(path)
        if model_fingerprint(model) != fingerprint:
            raise GsalInputError("the model loaded in a Ray actor has other weights than the driver's (the .keras round trip changed it); use engine='local'")
        self.explainer = make_explainer(method, model, **options)

    def __call__(self, rows: dict) -> dict:
        results = []
        for shard, payload in zip(rows["shard"], rows["payload"]):
            images, masks, class_ids = pickle.loads(payload)
            result = self.explainer.explain(images, masks, class_ids)
            results.append(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
        return {"shard": list(rows["shard"]), "result": results}


def _queue_datasource(ray, queue):
    """A Ray Data source with one read task that yields a one-row block per item of ``queue``
    until it gets ``None``."""
    import pyarrow as pa
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def read():
        while (item := queue.get()) is not None:
            shard, payload = item
            yield pa.table({"shard": pa.array([shard], pa.int64()), "payload": pa.array([payload], pa.binary())})

    class QueueSource(Datasource):
        def estimate_inmemory_data_size(self):
            return None

        def get_read_tasks(self, parallelism, per_task_row_limit=None, data_context=None):
            return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None))]

    return QueueSource()


def _user_error(exc: BaseException) -> BaseException:
    """The GsalError a Ray task raised (Ray wraps it), else ``exc``."""
    seen = exc
    while seen is not None:
        if isinstance(seen, GsalError) and type(seen).__module__.startswith("gsal_tf"):
            return seen
        seen = getattr(seen, "cause", None) or seen.__cause__
    return exc


class RayEngine:
    """Run a dataset job as a Ray Data pipeline with an actor pool (module docstring).

    Parameters
    ----------
    address : str, optional
        None: join the Ray of this process if it is initialised, else start a new local Ray for
        the run (``address="local"``: never another user's Ray on this machine; shut down after it). ``"auto"`` or ``"ray://host:10001"``: connect to that cluster
        (gsal-tf must be installed on its nodes; the driver writes the results folder).
    actors : int, optional
        Actors, each holding one explainer; default :func:`default_actors` of the cluster's
        resources.
    cpus_per_actor : int, default 1
        CPUs each actor reserves, and its TensorFlow intra-op threads.
    gpus_per_actor : float, default 0
        GPUs each actor reserves (e.g. 1 on a multi-GPU node: one actor per GPU).
    max_in_flight : int, optional
        Batches planned but not committed (default ``2·actors + 2``): memory and what a kill loses.
    retries : int, default 3
        ``max_restarts`` and ``max_task_retries`` of the actors (a dead actor is restarted and its
        batches retried this many times).

    Attributes
    ----------
    actor_class : type
        The Ray Data actor class each pool member is built from (default ``_ExplainActor``): its
        constructor takes ``model_ref, fingerprint, method, options, threads`` and its
        ``__call__`` explains one batch of rows ``{"shard", "payload"}`` into ``{"shard", "result"}``.
    """

    name = "ray"
    actor_class = _ExplainActor

    def __init__(self, address: Optional[str] = None, actors: Optional[int] = None, cpus_per_actor: int = 1, gpus_per_actor: float = 0,
                 max_in_flight: Optional[int] = None, retries: int = 3):
        if address is not None and not isinstance(address, str):
            raise GsalInputError(f"address must be a Ray address such as 'auto' or 'ray://host:10001', got {address!r}")
        actors = check_int("actors", actors, optional=True)
        cpus_per_actor = check_int("cpus_per_actor", cpus_per_actor)
        max_in_flight = check_int("max_in_flight", max_in_flight, optional=True)
        check_number("gpus_per_actor", gpus_per_actor, minimum=0)
        retries = check_int("retries", retries, minimum=0)
        self.ray = _ray()
        self.address, self.actors, self.cpus_per_actor, self.gpus_per_actor = address, actors, cpus_per_actor, gpus_per_actor
        self.max_in_flight, self.retries = max_in_flight, retries

    def describe(self) -> dict:
        """What the run card records (``engine_options``): the address and the actor pool."""
        return {"address": self.address, "actors": self.actors, "cpus_per_actor": self.cpus_per_actor,
                "gpus_per_actor": self.gpus_per_actor, "retries": self.retries}

    def run(self, job, start) -> None:
        """Plan from ``start``, explain on the actors and commit every batch of ``job`` in order."""
        ray = self.ray
        from gsal_tf.scale.job import model_fingerprint

        method, options = explainer_recipe(job.explainer)
        data = model_bytes(job.explainer.model)
        started = not ray.is_initialized()
        if started:
            ray.init(address=self.address or "local", include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            actors = self.actors or default_actors(ray.cluster_resources(), self.cpus_per_actor, self.gpus_per_actor)
            self.actors = actors
            self._pipeline(job, start, ray, [ray.put(data)], model_fingerprint(job.explainer.model), method, options, actors)
        finally:
            if started:
                ray.shutdown()

    def _pipeline(self, job, start, ray, model_ref, fingerprint, method, options, actors) -> None:
        from ray.util.queue import Queue

        in_flight = threading.Semaphore(self.max_in_flight or 2 * actors + 2)
        queue = Queue(actor_options={"num_cpus": 0})
        batches: dict = {}
        plan_errors: list = []
        stop = threading.Event()

        def planner():
            shard = start.shard
            try:
                for batch in job.plan(start):
                    while not in_flight.acquire(timeout=0.1) or stop.is_set():
                        if stop.is_set():
                            return
                    batches[shard] = batch
                    queue.put((shard, pickle.dumps((batch.images, batch.masks, batch.class_ids), protocol=pickle.HIGHEST_PROTOCOL)))
                    shard += 1
            except BaseException as exc:  # raised after the batches planned before it are committed
                plan_errors.append(exc)
            finally:
                try:
                    queue.put(None)
                except Exception:  # the run stopped and Ray is gone: nobody reads the queue
                    pass

        context = ray.data.DataContext.get_current()
        log = logging.getLogger("ray.data")
        level = log.level
        log.setLevel(max(level, logging.WARNING))  # no per-run INFO lines under the caller's progress bar
        # Every planned batch leaves the read task at once (a tiny target block size: no coalescing
        # of batches into one block); no progress bars (the caller has its own); the driver reorders.
        settings = {"target_max_block_size": 1, "enable_progress_bars": False}
        previous = {name: getattr(context, name) for name in settings}
        for name, value in settings.items():
            setattr(context, name, value)
        dataset = ray.data.read_datasource(_queue_datasource(ray, queue), override_num_blocks=1, num_cpus=0)
        with warnings.catch_warnings():
            # max_restarts / max_task_retries have no named parameter in Ray 2.60 (``ray_remote_args``
            # is marked for removal in 2.64, where Ray Data's defaults, -1 and -1, stay).
            warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
            dataset = dataset.map_batches(
                self.actor_class, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=self.cpus_per_actor,
                num_gpus=self.gpus_per_actor or None,
                fn_constructor_kwargs={"model_ref": model_ref, "fingerprint": fingerprint, "method": method, "options": options,
                                       "threads": self.cpus_per_actor},
                max_restarts=self.retries, max_task_retries=self.retries)
        thread = threading.Thread(target=planner, name="gsal-ray-plan", daemon=True)
        thread.start()
        done: dict = {}
        shard = start.shard
        try:
            for row in dataset.iter_rows():
                key = int(row["shard"])
                if key < shard or key in done:  # a retried batch already seen: committed once
                    continue
                done[key] = pickle.loads(row["result"])
                while shard in done:
                    job.commit(shard, batches.pop(shard), done.pop(shard))
                    shard += 1
                    in_flight.release()
        except BaseException as exc:
            stop.set()
            raise _user_error(exc) from None
        finally:
            stop.set()
            thread.join()
            for name, value in previous.items():
                setattr(context, name, value)
            log.setLevel(level)
        if plan_errors:
            raise plan_errors[0]
