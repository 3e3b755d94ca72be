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


def _text(img, text, org, scale=0.45, colour=(20, 20, 20), thickness=1):
    cv2.putText(img, str(text), org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)


def matrix_figure(values: np.ndarray, row_labels, col_labels, title: str, vmax: float | None = None, cell: int = 44) -> np.ndarray:
    """A heatmap of a (rows, cols) matrix with its values written in the cells (NaN: grey '-')."""
    values = np.asarray(values, np.float64)
    rows, cols = values.shape
    left, top = 150, 50
    img = np.full((top + rows * cell + 30, left + cols * cell + 20, 3), 255, np.uint8)
    finite = values[np.isfinite(values)]
    vmax = vmax if vmax is not None else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
    _text(img, title, (8, 20), 0.5)
    for j, label in enumerate(col_labels):
        _text(img, label, (left + j * cell + cell // 3, top - 8))
    for i, label in enumerate(row_labels):
        _text(img, label, (6, top + i * cell + cell // 2 + 5))
        for j in range(cols):
            y0, x0 = top + i * cell, left + j * cell
            v = values[i, j]
            if np.isfinite(v):
                colour = heatmap(np.array([[v]]), 0.0, vmax)[0, 0]
                img[y0:y0 + cell - 2, x0:x0 + cell - 2] = colour
                ink = (255, 255, 255) if v < 0.6 * vmax else (0, 0, 0)
                _text(img, f"{v:.2f}", (x0 + 4, y0 + cell // 2 + 4), 0.38, ink)
            else:
                img[y0:y0 + cell - 2, x0:x0 + cell - 2] = 200
                _text(img, "-", (x0 + cell // 2 - 4, y0 + cell // 2 + 4))
    return img


def bar_figure(bars: dict, title: str, chance: float | None = 0.5, ymax: float = 1.0, height: int = 260) -> np.ndarray:
    """Vertical bars ``{label: (mean, std or None)}`` on [0, ymax], a dashed line at ``chance``."""
    width_bar, gap, left, top, bottom = 110, 26, 50, 40, 40
    width = left + len(bars) * (width_bar + gap) + gap
    img = np.full((top + height + bottom, width, 3), 255, np.uint8)
    _text(img, title, (8, 20), 0.5)
    y_of = lambda v: int(top + height - height * min(max(v, 0.0), ymax) / ymax)  # noqa: E731
    cv2.line(img, (left, top), (left, top + height), (0, 0, 0), 1)
    cv2.line(img, (left, top + height), (width - 10, top + height), (0, 0, 0), 1)
    for tick in np.linspace(0, ymax, 5):
        _text(img, f"{tick:.2f}", (4, y_of(tick) + 4), 0.35)
        cv2.line(img, (left - 3, y_of(tick)), (left, y_of(tick)), (0, 0, 0), 1)
    palette = [(66, 133, 244), (219, 68, 55), (244, 160, 0), (15, 157, 88), (171, 71, 188), (0, 172, 193)]
    for k, (label, (mean, std)) in enumerate(bars.items()):
        x0 = left + gap + k * (width_bar + gap)
        if mean is not None and np.isfinite(mean):
            cv2.rectangle(img, (x0, y_of(mean)), (x0 + width_bar, top + height), palette[k % len(palette)], -1)
            _text(img, f"{mean:.2f}", (x0 + 16, y_of(mean) - 6), 0.4)
            if std is not None and np.isfinite(std):
                xc = x0 + width_bar // 2
                cv2.line(img, (xc, y_of(mean - std)), (xc, y_of(mean + std)), (0, 0, 0), 1)
        _text(img, label[:20], (x0, top + height + 18), 0.38)
    if chance is not None:
        for x in range(left, width - 10, 12):
            cv2.line(img, (x, y_of(chance)), (min(x + 6, width - 10), y_of(chance)), (90, 90, 90), 1)
        _text(img, "chance", (width - 62, y_of(chance) - 4), 0.35, (90, 90, 90))
    return img
