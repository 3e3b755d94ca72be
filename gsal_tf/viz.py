"""Pictures of explanations: heatmap overlays with the request outlined (NumPy + OpenCV only).

All functions return uint8 RGB arrays (H',W',3); write them with :func:`write_png`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from gsal_tf.errors import GsalInputError

REQUEST_COLOUR = (255, 255, 255)


def to_display(image: np.ndarray) -> np.ndarray:
    """A float image (H,W,C) of any range as uint8 RGB (H,W,3), min-max stretched per image."""
    img = np.asarray(image, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    elif img.shape[2] != 3:
        img = img[..., :3] if img.shape[2] > 3 else np.concatenate([img, img[..., -1:]], axis=2)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return (img * 255.0 + 0.5).astype(np.uint8)


def heatmap(values: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """(H,W) values -> uint8 RGB (H,W,3) with the 'inferno' colour map."""
    v = np.clip((np.asarray(values, np.float32) - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    bgr = cv2.applyColorMap((v * 255.0 + 0.5).astype(np.uint8), cv2.COLORMAP_INFERNO)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def upscale(img: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor so the shorter side reaches ``min_side``."""
    factor = max(1, int(np.ceil(min_side / min(img.shape[:2]))))
    if factor == 1:
        return img
    return cv2.resize(img, (img.shape[1] * factor, img.shape[0] * factor), interpolation=cv2.INTER_NEAREST)


def outline(img: np.ndarray, mask: np.ndarray, colour=REQUEST_COLOUR, thickness: int = 2) -> np.ndarray:
    """Draw the contour of a 0/1 ``mask`` (same H,W as ``img``) onto a copy of ``img``."""
    out = np.ascontiguousarray(img.copy())
    contours, _ = cv2.findContours((np.asarray(mask) > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def overlay(image: np.ndarray, saliency: np.ndarray, request: np.ndarray | None = None, alpha: float = 0.55, min_side: int = 256) -> np.ndarray:
    """The saliency heatmap blended over the image, request outlined, upscaled for viewing."""
    base = to_display(image)
    blended = (1 - alpha) * base.astype(np.float32) + alpha * heatmap(saliency).astype(np.float32)
    out = upscale(blended.astype(np.uint8), min_side)
    if request is not None:
        out = outline(out, upscale(np.asarray(request, np.uint8), min_side))
    return out


def labels_to_colour(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """A label map (H,W) as uint8 RGB with one fixed colour per class."""
    rng = np.random.default_rng(12345)
    palette = rng.integers(40, 256, size=(max(num_classes, 1), 3)).astype(np.uint8)
    return palette[np.clip(np.asarray(labels, np.int64), 0, num_classes - 1)]


def side_by_side(panels: list[np.ndarray], gap: int = 6) -> np.ndarray:
    """Panels of equal height joined left to right with a white gap."""
    height = max(p.shape[0] for p in panels)
    parts = []
    for i, p in enumerate(panels):
        if p.shape[0] != height:
            p = cv2.resize(p, (int(p.shape[1] * height / p.shape[0]), height), interpolation=cv2.INTER_NEAREST)
        parts.append(p)
        if i < len(panels) - 1:
            parts.append(np.full((height, gap, 3), 255, np.uint8))
    return np.concatenate(parts, axis=1)


def write_png(path, rgb: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG (raises GsalInputError when the file cannot be written)."""
    path = Path(path)
    ok = cv2.imwrite(str(path), cv2.cvtColor(np.asarray(rgb, np.uint8), cv2.COLOR_RGB2BGR))
    if not ok:
        raise GsalInputError(f"cannot write {path}")
