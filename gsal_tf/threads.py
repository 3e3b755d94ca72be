"""How many threads each TensorFlow op of a one-image explanation should use.

TensorFlow splits every CPU op over all cores (intra-op parallelism). For one image on a small
network the tensors are tiny and the split costs more than it saves; for a large image it pays.
Measured with TF 2.21 (oneDNN on) on the 2-core development machine, one forward + backward pass
of one image, medians of 3 interleaved runs (``python benchmarks/bench_threads.py``,
``benchmarks/results/threads.json``):

=================================  ==========  ==============  ============
network                            input       all cores (ms)  1 thread (ms)
=================================  ==========  ==============  ============
tmnist-mobilenetv2-strong          64x64       20.3            11.1
tmnist-xception-strong             64x64       24.7            15.4
the same MobileNetV2 architecture  128x128     29.1            22.6
the same MobileNetV2 architecture  192x192     47.8            43.1
pascal-mobilenetv2-0.5-257         257x257     74.8            88.1
pascal-mobilenetv2-0.5             513x513     112.3           152.3
pascal-mobilenetv2                 513x513     183.8           265.0
=================================  ==========  ==============  ============

So a one-image job on an input up to :data:`SMALL_INPUT_PIXELS` runs on one intra-op thread
(:func:`threads_for`): the demo's 100-step explanation takes 1.0 s instead of 2.0 s, with the
same saliency (bit-identical on the demo). The crossover lies between 192x192 and 257x257.
Batches and large inputs keep TensorFlow's default.

The thread count is a process setting that TensorFlow fixes when it runs its first op:
:func:`use_threads` sets it only before that and says whether it could. The CLI decides before
it loads a model (``gsal explain --threads``); a library user who explains small images one at a
time can call ``gs.threads.use_threads(1)`` first thing, or set ``TF_NUM_INTRAOP_THREADS=1``.
"""

from __future__ import annotations

from typing import Sequence

__all__ = ["SMALL_INPUT_PIXELS", "threads_for", "use_threads"]

#: Inputs up to this many pixels (H*W, times the batch) run best on one intra-op thread (200x200).
SMALL_INPUT_PIXELS = 200 * 200


def threads_for(input_shape: Sequence[int] | None, batch: int = 1) -> int | None:
    """Intra-op threads for a job on ``batch`` images of ``input_shape`` ((H,W) or (H,W,C));
    1 for small jobs (``H*W*batch <= SMALL_INPUT_PIXELS``), None (TensorFlow's default: all
    cores) for larger ones or when the input size is unknown (None or a free dimension)."""
    if input_shape is None or len(input_shape) < 2:
        return None
    height, width = input_shape[0], input_shape[1]
    if not isinstance(height, int) or not isinstance(width, int):
        return None
    return 1 if height * width * batch <= SMALL_INPUT_PIXELS else None


def use_threads(count: int | None) -> bool:
    """Run TensorFlow's ops on ``count`` intra-op threads (None or 0: leave TensorFlow's default).

    Returns True when the setting is in force: TensorFlow accepts it only before it runs its
    first op in this process (afterwards this returns False and changes nothing).
    """
    if not count:
        return False
    import tensorflow as tf

    if tf.config.threading.get_intra_op_parallelism_threads() == count:
        return True
    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
    except RuntimeError:  # TensorFlow already runs ops: its thread pool is fixed
        return False
    return True
