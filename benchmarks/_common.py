"""Inputs shared by the benchmark scripts: random 64x64 images and a centred square request."""

import numpy as np


def make_inputs(n, shape, seed=0):
    """Images (n,*shape) in [0,1], requests (n,H,W) with a 24x24 centre square, class 3."""
    rng = np.random.default_rng(seed)
    images = rng.random((n,) + shape).astype(np.float32)
    requests = np.zeros((n,) + shape[:2], np.float32)
    requests[:, 20:44, 20:44] = 1
    return images, requests, np.full((n,), 3, np.int32)


def machine() -> str:
    """CPU, cores, TensorFlow version and devices: the line every benchmark report carries."""
    import os
    import platform

    import tensorflow as tf

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, TF {tf.__version__}, "
            f"devices {[d.device_type for d in tf.config.list_physical_devices()]}")


def finish(report: dict, json_path) -> None:
    """Print the machine line and write ``report`` as JSON when a path is given."""
    import json

    print(f"machine: {report['machine']}")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(report, fh, indent=2)
