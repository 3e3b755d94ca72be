"""One picture, explained: the path every front end takes from a user's image to an explanation.

A user has an image of any size (a photo, a frame of a dataset) and a network that may take a
fixed input size. The pipeline, used by ``gsal explain``, ``gsal compare-backbones``, the
dataset job (:func:`gsal_tf.explain_dataset`) and the Python API alike:

1. :func:`fit_picture` — match the network's channels and letterbox the image into its input
   (:class:`gsal_tf.loading.Fit`), keeping the map back;
2. :func:`picture_grid` — the one grid rule: the explainer's 8x8 at the network's own size, else
   square cells, :data:`gsal_tf.loading.PHOTO_GRID_CELLS` along the image's long side;
3. :func:`picture_request` — the request given in the image's pixels (a mask, a point on a
   predicted segment, a box, or a predicted class) mapped onto the network input, and the class
   to explain (default: the one predicted most often inside the request);
4. :func:`explain_picture` — explain with any explainer and map saliency and prediction back to
   the image (:class:`PictureExplanation`).

    picture = fit_picture(image, model)                       # image (H0,W0,C) float32
    explainer = explainer_for(model, picture)                 # GridSaliency with the photo grid
    request = picture_request(picture, explainer.predict, point=(120, 200))
    explained = explain_picture(explainer, picture, request)
    explained.saliency                                        # (H0,W0) at the image's pixels
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Optional, Sequence

import numpy as np

from gsal_tf import requests as _requests
from gsal_tf.errors import GsalInputError
from gsal_tf.loading import Fit, match_channels, model_input_channels, model_input_size

__all__ = ["Picture", "PictureRequest", "PictureExplanation", "fit_picture", "matched_channels", "picture_grid",
           "picture_request", "explainer_for", "explain_picture", "summary", "context_classes"]

#: The grid of an image at the network's own size (the benchmark, TextureMNIST): GridSaliency's
#: default.
NETWORK_GRID = (8, 8)


@dataclasses.dataclass(frozen=True)
class Picture:
    """An image fitted to a network (the image itself is not kept: a 48 MP photo would stay in
    memory through the explanation).

    network_input : float32 (H,W,C) — what the network takes (letterboxed to its fixed input).
    fit : :class:`gsal_tf.loading.Fit` — the map between it and the image (H0,W0).
    """

    network_input: np.ndarray
    fit: Fit

    @property
    def grid(self) -> tuple[int, int]:
        """The grid this picture is explained on (:func:`picture_grid`)."""
        return picture_grid(self.fit)


@dataclasses.dataclass(frozen=True)
class PictureRequest:
    """What to explain, on the network input.

    mask : float32 (H,W) — 1 on the request pixels.
    class_id : int — the class explained.
    prediction : int32 (H,W) or None — the network's labels the request was built from.
    """

    mask: np.ndarray
    class_id: int
    prediction: Optional[np.ndarray] = None


@dataclasses.dataclass
class PictureExplanation:
    """An explainer's result for one request on a picture, with the maps back to the image.

    result : the explainer's result for the one request (e.g. :class:`gsal_tf.saliency.Explanation`).
    picture, request : what was explained.
    """

    result: object
    picture: Picture
    request: PictureRequest

    @property
    def saliency(self) -> np.ndarray:
        """float32 (H0,W0): the saliency at the image's pixels (bilinear)."""
        return self.picture.fit.to_image(self.result.saliency[0])

    @property
    def prediction(self) -> Optional[np.ndarray]:
        """int32 (H0,W0) or None: the network's labels at the image's pixels (nearest)."""
        labels = self.request.prediction
        return None if labels is None else self.picture.fit.to_image(labels, nearest=True)

    def to_image(self, values: np.ndarray, nearest: bool = False, size=None) -> np.ndarray:
        """Network-input values (H,W[,K]) at the image's pixels, or at ``size`` (a screen copy)."""
        return self.picture.fit.to_image(values, nearest=nearest, size=size)


def picture_grid(fit: Fit) -> tuple[int, int]:
    """(rows, cols): :data:`NETWORK_GRID` for an image at the network's own size, else square
    cells, :data:`gsal_tf.loading.PHOTO_GRID_CELLS` along the image's long side (:meth:`Fit.grid`;
    why 12: see that constant)."""
    return NETWORK_GRID if fit.identity else fit.grid()


def fit_picture(image: np.ndarray, model, input_size: Optional[Sequence[int]] = None, pad_value: float = 0.5) -> Picture:
    """``image`` (H0,W0,C) float32 fitted to ``model``: its channels matched
    (:func:`gsal_tf.loading.match_channels`) and letterboxed to ``input_size`` (H,W), by default
    the model's fixed input (the identity for a model of any size), the bars ``pad_value``: mid-grey,
    0.5 for images in [0, 1] (:func:`gsal_tf.loading.letterbox_grey` for another pixel scale)."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise GsalInputError(f"an image is (H, W, C); got an array of shape {image.shape}")
    image = matched_channels(image, model)
    size = tuple(input_size) if input_size is not None else (model_input_size(model) or image.shape[:2])
    fit = Fit.between(image.shape[:2], size, pad_value)
    return Picture(fit.to_model(image), fit)


def matched_channels(image: np.ndarray, model) -> np.ndarray:
    """``image`` (H0,W0,C) with the channel count ``model`` takes (grey to RGB or RGB to grey:
    :func:`gsal_tf.loading.match_channels`), e.g. to draw it beside its explanation."""
    return match_channels(np.asarray(image, np.float32), model_input_channels(model))


def picture_request(picture: Picture, predict: Callable[[np.ndarray], np.ndarray], *, mask: Optional[np.ndarray] = None,
                    point: Optional[Sequence[int]] = None, box: Optional[Sequence[int]] = None,
                    predicted_class: Optional[int] = None, class_id: Optional[int] = None) -> PictureRequest:
    """The request on the network input from exactly one of, in the image's pixels:

    - ``mask`` (H0,W0): the pixels to explain;
    - ``point`` (y, x): the predicted connected segment under it;
    - ``box`` (y0, x0, y1, x1), end-exclusive: the pixels of the box;
    - ``predicted_class``: every pixel the network predicts as that class.

    ``predict`` maps images (N,H,W,C) to per-pixel scores (N,H,W,K) (an explainer's ``predict``).
    ``class_id`` is the class explained; by default the one the network predicts most often inside
    the request (:func:`gsal_tf.requests.predicted_class`).
    """
    given = [name for name, v in (("mask", mask), ("point", point), ("box", box), ("predicted_class", predicted_class)) if v is not None]
    if len(given) != 1:
        raise GsalInputError("give exactly one request: a mask, a point, a box or a predicted class" + (f" (got {', '.join(given)})" if given else ""))
    fit = picture.fit
    labels = _requests.label_map(np.asarray(predict(picture.network_input[None]))[0])
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape[:2] != fit.source:
            raise GsalInputError(f"the request mask is {mask.shape[0]}x{mask.shape[1]}; the image is {fit.source[0]}x{fit.source[1]}: give a mask of the image's size")
        req = fit.mask_to_model(mask > 0)
    elif point is not None:
        y, x = (int(v) for v in point)
        if not (0 <= y < fit.source[0] and 0 <= x < fit.source[1]):
            raise GsalInputError(f"the request point {y},{x} is outside the image of size {fit.source[0]}x{fit.source[1]}")
        req = _requests.component_request(labels, fit.point_to_model((y, x)))
    elif box is not None:
        req = fit.mask_to_model(_requests.box_request(fit.source, tuple(int(v) for v in box)))
    else:
        req = _requests.class_request(labels, int(predicted_class))
    if not req.any():
        raise GsalInputError("the request covers no pixel of the network input; give a larger region")
    cls = _requests.predicted_class(labels, req) if class_id is None else int(class_id)
    return PictureRequest(np.asarray(req, np.float32), cls, labels)


def explainer_for(model, picture: Picture, method: str = "grid_saliency", **options):
    """The explainer ``method`` (:data:`gsal_tf.METHODS`) for ``model`` with ``options``; a grid
    explainer gets the picture's grid (:func:`picture_grid`) unless ``grid_size`` is given."""
    from gsal_tf.methods import make_explainer

    if method_takes_grid(method) and options.get("grid_size") is None:
        options = {**options, "grid_size": picture.grid}
    return make_explainer(method, model, **options)


def method_takes_grid(method: str) -> bool:
    """Whether the explainer ``method`` optimises a grid (takes ``grid_size``)."""
    from gsal_tf.methods import method_parameters

    return "grid_size" in method_parameters(method)


def explain_picture(explainer, picture: Picture, request: PictureRequest) -> PictureExplanation:
    """Explain ``request`` on ``picture`` with ``explainer`` (any :class:`gsal_tf.explainer.Explainer`)."""
    result = explainer.explain(picture.network_input[None], request.mask[None], [request.class_id])
    return PictureExplanation(result, picture, request)


def summary(result, request: np.ndarray, model_name: str, image=None, seconds: float = 0.0, class_names=None,
            fit: Optional[Fit] = None) -> dict:
    """The ``summary.json`` of one explained request (what ``gsal explain`` and ``gsal app``
    write): parameters, scores, convergence, whether the mask stayed uniform, the salient context
    share and the grid.

    ``result`` is the explainer's result for one request, ``request`` (H,W) its mask on the
    network input, ``image`` the image's path (None: "demo"); with the picture's ``fit`` (not the
    identity), how the image was fitted to the network (``fitted_to_network``)."""
    from gsal_tf import metrics
    from gsal_tf.saliency.grid_saliency import cell_spread, uniform_masks

    share = float(metrics.cbd(result.saliency, np.asarray(request)[None])[0])  # NaN: a full-mode request without context
    out = {
        "image": str(image) if image else "demo",
        "model": model_name,
        "class_id": int(result.class_ids[0]),
        "class_name": _requests.class_name(result.class_ids[0], class_names),
        "request_pixels": int(np.asarray(request).sum()),
        "parameters": result.params,
        "original_score": float(result.original_score[0]),
        "preserved_score": float(result.preserved_score[0]),
        "no_context_score": float(result.no_context_score[0]),
        "final_loss": float(result.final_loss[0]),
        "converged": bool(result.converged[0]),
        "mask_change": round(float(result.mask_change[0]), 4),
        "steps": int(result.steps[0]),
        "cell_spread": round(float(cell_spread(result.grid)[0]), 4),
        "uniform_mask": bool(uniform_masks(result.grid)[0]),
        "salient_context_share": None if np.isnan(share) else share,
        "grid": result.grid[0].round(4).tolist(),
        "seconds": round(seconds, 4),
    }
    if fit is not None and not fit.identity:
        out["fitted_to_network"] = {"image": list(fit.source), "network_input": list(fit.target), "scale": fit.scale, "content": list(fit.size), "top": fit.top, "left": fit.left}
    return out


def context_classes(explained: PictureExplanation, class_names=None, limit: int = 8) -> list[dict]:
    """On which predicted classes the kept context lies: for every class the network predicts
    outside the request, its share of the salient context mass (Σ S·(1−R)·[L=k] / Σ S·(1−R),
    :func:`gsal_tf.context_stats.request_sums` with the prediction as the context map), largest
    first, at most ``limit``; ``[]`` when no context is kept."""
    from gsal_tf.context_stats import request_sums

    labels = explained.request.prediction
    if labels is None:
        return []
    num = int(labels.max()) + 1
    sums = request_sums(explained.result.saliency[:1], explained.request.mask[None], labels[None], num)
    salient = np.asarray(sums["salient"][0], np.float64)
    total = salient.sum()
    if not total > 0:
        return []
    order = [int(k) for k in np.argsort(-salient, kind="stable") if salient[k] > 0][:limit]
    return [{"class_id": k, "class_name": _requests.class_name(k, class_names) or f"class {k}", "share": float(salient[k] / total)}
            for k in order]
