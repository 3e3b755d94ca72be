"""Memory of ``gsal explain`` does not grow with the photo beyond the photo itself.

A 12 MP explanation (3000x4000 JPEG, with a request mask of the same size) may need at most
:data:`BOUND_12MP` bytes of peak RSS more than a 64x48 explanation in the same process. Both run
after a first 64x48 explanation has loaded TensorFlow and traced the graphs, and the peak RSS is
reset before each (``/proc/self/clear_refs``), so the difference is what the photo costs.

Why 512 MiB: what the photo itself must cost is its decoded 8-bit pixels (36 MB), the float32
image the network reads it from (144 MB), the request mask at its size (12 MB, plus a bool copy)
and saliency.npy at its size (48 MB float32) — about 250 MB; the bound is twice that. Figures
are drawn at screen resolution (``viz.SCREEN_SIDE``) and add nothing that grows with the photo;
a request outline drawn from the mask upsampled 8x each way would alone be 3 GB per panel at 12 MP.

Measured in a child process (its own VmHWM), with the CLI's own code path (``gsal_cli.main.app``)
and the small hand-built model of ``conftest.conv_model_file``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

#: Peak RSS a 12 MP explanation may add to a 64x48 one (see the module docstring).
BOUND_12MP = 512 * 2**20

CHILD = r"""
import json, sys
from gsal_cli.main import app

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024  # kB

def peak_of(args):
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    code = app(args, standalone_mode=False)
    if code:
        raise SystemExit(f"gsal exited with {code}")
    return status("VmHWM")

peaks = [peak_of(args) for args in json.loads(sys.argv[1])]
print("PEAKS", json.dumps(peaks))
"""


def _peak_can_be_reset() -> bool:
    """Linux >= 4.0: writing 5 to /proc/self/clear_refs resets the peak RSS (VmHWM)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def smooth_photo(path, height: int, width: int, seed: int = 0) -> None:
    """A smooth random colour photo (low-resolution noise enlarged bicubically) written as JPEG."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (max(2, height // 250), max(2, width // 250), 3)).astype(np.float32)
    cv2.imwrite(str(path), np.clip(cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8))


def centre_mask(path, height: int, width: int) -> None:
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3: 2 * height // 3, width // 3: 2 * width // 3] = 255
    cv2.imwrite(str(path), mask)


@pytest.mark.skipif(not _peak_can_be_reset(), reason="needs Linux's /proc/self/clear_refs to reset the peak RSS")
def test_a_12_megapixel_explanation_needs_little_more_memory_than_a_tiny_one(tmp_path, conv_model_file):
    runs = []
    for name, (height, width) in {"warm-up": (48, 64), "tiny": (48, 64), "photo": (3000, 4000)}.items():
        smooth_photo(tmp_path / f"{name}.jpg", height, width)
        centre_mask(tmp_path / f"{name}_request.png", height, width)
        runs.append(["explain", str(tmp_path / f"{name}.jpg"), "--model", str(conv_model_file), "--request", str(tmp_path / f"{name}_request.png"),
                     "--class", "1", "--iterations", "3", "--out", str(tmp_path / f"out-{name}")])
    res = subprocess.run([sys.executable, "-c", CHILD, json.dumps(runs)], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    _, tiny, photo = json.loads(res.stdout.split("PEAKS", 1)[1])
    assert np.load(tmp_path / "out-photo" / "saliency.npy", mmap_mode="r").shape == (3000, 4000)
    extra = photo - tiny
    print(f"peak RSS: 64x48 {tiny / 2**20:.0f} MiB, 12 MP {photo / 2**20:.0f} MiB (+{extra / 2**20:.0f} MiB)")
    assert extra <= BOUND_12MP, f"a 12 MP photo added {extra / 2**20:.0f} MiB of peak RSS; the bound is {BOUND_12MP / 2**20:.0f} MiB"


def test_figures_are_drawn_at_screen_resolution():
    """A 12 MP explanation figure holds images of at most SCREEN_SIDE pixels along the long side,
    labels keep their small integer dtype, and small inputs are drawn as they are."""
    from gsal_tf import viz
    from gsal_tf.loading import Fit

    assert viz.screen_shape((6000, 8000)) == (768, 1024) and viz.screen_shape((8000, 10)) == (1024, 1)
    assert viz.screen_shape((16, 16)) == (16, 16)
    height, width = 3000, 4000
    image = np.zeros((height, width, 3), np.float32)
    image[:, width // 2:] = 1.0
    request = np.zeros((height, width), np.uint8)
    request[1000:2000, 1000:3000] = 1
    labels = request.astype(np.uint8) * 2
    fig = viz.explanation_figure(image, request, np.full((height, width), 0.5, np.float32), 2, prediction=labels)
    shapes = [im.get_array().shape[:2] for ax in fig.axes for im in ax.get_images()]
    assert shapes and all(shape == (768, 1024) for shape in shapes), shapes
    assert viz.to_screen(labels, (768, 1024), nearest=True).dtype == np.uint8
    small = viz.explanation_figure(image[:16, :16], request[:16, :16], np.zeros((16, 16), np.float32), 1)
    assert all(im.get_array().shape[:2] == (16, 16) for ax in small.axes for im in ax.get_images())
    # Network outputs go straight to the figure's size, without a copy at the photo's.
    fit = Fit.between((height, width), (257, 257))
    net_labels = np.zeros((257, 257), np.uint8)
    on_screen = fit.to_image(net_labels, nearest=True, size=(768, 1024))
    assert on_screen.shape == (768, 1024) and on_screen.dtype == np.uint8
    assert fit.to_image(np.ones((257, 257), np.float32), size=(768, 1024)).shape == (768, 1024)
    assert fit.to_image(np.ones((257, 257), np.float32)).shape == (height, width)
