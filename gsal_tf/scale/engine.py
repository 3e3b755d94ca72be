"""Engines run a dataset job: its three stages — *plan* (read, fit, predict, build and pack
requests into batches), *explain* (one explainer call per batch) and *commit* (statistics and
the shard of each batch, in order) — on some hardware.

:class:`LocalEngine` (``engine="local"``) runs them in this process as a pipeline of three
threads joined by short queues: while a batch is explained, the next ones are read and decoded
and the last one is reduced and written, so decoding and writing overlap with compute
(TensorFlow, OpenCV and pyarrow release the GIL in their kernels). An explained batch is handed
to the writer only once the previous one is written, so at any moment at most two batches hold
results that are not on disk: the one being explained and the one being written (milliseconds);
a killed run loses at most those.

:class:`~gsal_tf.scale.ray_engine.RayEngine` (``engine="ray"``) implements the same ``run`` as a
Ray Data pipeline whose actors each hold one explainer; the driver commits in order. Engines are
registered in :data:`ENGINES` by import path and imported only when asked for (Ray is optional).

A failure while planning (an unreadable sample with ``on_error="stop"``, bad labels) stops the
stream; the batches planned before it are still explained and committed, then the error is
raised. A failure while explaining or committing stops at once.
"""

from __future__ import annotations

import importlib
import inspect
import queue
import threading

from gsal_tf.errors import GsalInputError

__all__ = ["ENGINES", "make_engine", "LocalEngine"]

#: Engines by name -> "module:class"; imported on first use.
ENGINES = {"local": "gsal_tf.scale.engine:LocalEngine", "ray": "gsal_tf.scale.ray_engine:RayEngine"}

_DONE = object()


def make_engine(name: str, **options):
    """The engine registered as ``name`` (a GsalInputError for an unknown one)."""
    if not isinstance(name, str) or name not in ENGINES:
        raise GsalInputError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
    module, cls = ENGINES[name].split(":")
    engine = getattr(importlib.import_module(module), cls)
    known = [p for p in inspect.signature(engine.__init__).parameters if p != "self" and not p.startswith("_")]
    unknown = sorted(k for k in options if k not in known)
    if unknown:
        raise GsalInputError(f"engine {name!r} has no option {', '.join(map(repr, unknown))}; its options: {', '.join(known) or 'none'}")
    return engine(**options)


class LocalEngine:
    """The in-process pipelined engine (module docstring).

    Parameters
    ----------
    prefetch : int, default 2
        Batches planned (read, decoded, requests built) ahead of the one being explained.
    """

    name = "local"

    def __init__(self, prefetch: int = 2):
        self.prefetch = int(prefetch)

    def describe(self) -> dict:
        """What the run card records (``engine_options``)."""
        return {"prefetch": self.prefetch}

    def run(self, job, start) -> None:
        """Plan from ``start`` (a ResumePoint), explain and commit every batch of ``job``."""
        planned: queue.Queue = queue.Queue(self.prefetch)
        explained: queue.Queue = queue.Queue(1)
        written = threading.Semaphore(1)  # released when the batch handed to the writer is on disk
        errors: list = []
        plan_errors: list = []  # raised after the batches planned before it are committed
        stop = threading.Event()

        def put(q, item):
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def get(q):
            while True:
                try:
                    return q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return _DONE

        def planner():
            try:
                for batch in job.plan(start):
                    if not put(planned, batch):
                        return
            except BaseException as exc:  # handed to the caller's thread once the planned batches are in
                plan_errors.append(exc)
            finally:
                put(planned, _DONE)

        def committer():
            shard = start.shard
            try:
                while (item := get(explained)) is not _DONE:
                    job.commit(shard, *item)
                    shard += 1
                    written.release()
            except BaseException as exc:
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=planner, name="gsal-plan", daemon=True),
                   threading.Thread(target=committer, name="gsal-commit", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            while (batch := get(planned)) is not _DONE:
                result = job.explain(batch)
                while not written.acquire(timeout=0.1):  # the previous batch is still being written
                    if stop.is_set():
                        break
                if stop.is_set() or not put(explained, (batch, result)):
                    break
        except BaseException as exc:
            errors.append(exc)
        finally:
            if not errors:
                put(explained, _DONE)
            else:
                stop.set()
            for thread in threads:
                thread.join()
        if errors or plan_errors:
            raise (errors or plan_errors)[0]
