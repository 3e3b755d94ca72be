"""Inputs shared by the benchmark scripts: random 64x64 images and a centred square request."""

import numpy as np


def make_inputs(n, shape, seed=0):
    """Images (n,*shape) in [0,1], requests (n,H,W) with a centre square of 3/8 of the side (24x24
    on 64x64), class 3."""
    rng = np.random.default_rng(seed)
    images = rng.random((n,) + tuple(shape)).astype(np.float32)
    requests = np.zeros((n,) + tuple(shape[:2]), np.float32)
    (y0, y1), (x0, x1) = [(round(side * 20 / 64), round(side * 44 / 64)) for side in shape[:2]]
    requests[:, y0:y1, x0:x1] = 1
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
