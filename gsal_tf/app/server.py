"""The server of ``gsal app``: stdlib ``http.server`` on 127.0.0.1, a JSON API and one static page.

Why the standard library: the page needs a handful of JSON calls and a few PNGs; a stdlib server
adds no dependency to install, nothing to fetch at run time (no CDN, no fonts, no telemetry) and
starts in milliseconds in the tests. Heavy work (loading a model, predicting, explaining) runs on
one worker thread; the page polls ``/api/jobs/<id>`` for its stage and result, so the server
answers other requests while TensorFlow runs.

API (JSON unless noted; errors are ``{"error": message}`` with status 400/404):

- ``GET /`` — the page; ``GET /api/models`` — zoo entries (name, dataset, classes, input) and demos;
- ``POST /api/images`` (raw image bytes, header ``X-Filename``) or ``POST /api/demo {"name"}`` —
  an image: ``{image_id, width, height}``; ``GET /api/images/<id>.png`` — its screen copy;
- ``POST /api/predict {image_id, model}`` → job → ``{prediction_id, legend, ...}``;
  ``GET /api/predictions/<id>.png`` — the coloured labels at the image's screen size;
- ``POST /api/explain {prediction_id, point: [y, x] | box: [y0, x0, y1, x1] | labels_id,
  class_id?, grid?, iterations?, baseline?, compare?}`` → job → ``{results: [...]}``, every result with
  its scores, context classes and ``/api/results/<id>/{overlay.png,saliency.npy,summary.json}``;
- ``POST /api/labels`` (raw label image bytes) — a label image for the error view;
- ``POST /api/runs {folder}`` — a results folder of ``gsal explain-dataset``: its requests;
  ``GET /api/runs/<id>/<row>.png`` — a request's overlay (when maps were saved);
- ``GET /api/jobs/<id>`` — ``{state: queued|running|done|error, stage, result | error}``.
"""

from __future__ import annotations

import io
import itertools
import json
import queue
import tempfile
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs, urlparse

import numpy as np

from gsal_tf.errors import GsalError, GsalInputError

__all__ = ["App", "serve", "parse_settings"]

HOST = "127.0.0.1"
#: The most bytes one upload may have (a 48 MP JPEG is ~20 MB).
MAX_UPLOAD = 64 * 1024 * 1024


def parse_settings(settings: dict) -> dict:
    """The explainer options of the page's settings (``grid`` "R,C" or "N", ``iterations``,
    ``baseline`` number | "R,G,B" | mean | blur | noise); empty fields keep the defaults."""
    options = {}
    grid = str(settings.get("grid") or "").strip()
    if grid:
        try:
            parts = [int(v) for v in grid.replace("x", ",").split(",")]
        except ValueError:
            raise GsalInputError(f"grid {grid!r}: give ROWS,COLS or one number") from None
        if len(parts) not in (1, 2) or min(parts) < 1:
            raise GsalInputError(f"grid {grid!r}: give ROWS,COLS or one number, each at least 1")
        options["grid_size"] = (parts[0], parts[-1])
    iterations = str(settings.get("iterations") or "").strip()
    if iterations:
        if not iterations.isdigit() or int(iterations) < 1:
            raise GsalInputError(f"iterations {iterations!r}: give a whole number of at least 1")
        options["iterations"] = int(iterations)
    baseline = str(settings.get("baseline") or "").strip()
    if baseline:
        try:
            values = tuple(float(v) for v in baseline.split(","))
            options["baseline"] = values[0] if len(values) == 1 else values
        except ValueError:
            if baseline not in ("mean", "blur", "noise"):
                raise GsalInputError(f"baseline {baseline!r}: use a number, R,G,B numbers, mean, blur or noise") from None
            options["baseline"] = baseline
    return options


def _png(rgb: np.ndarray) -> bytes:
    """(H,W,3) RGB or (H,W,4) RGBA, float in [0,1] or uint8, as PNG bytes."""
    import cv2

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8:
        rgb = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA if rgb.shape[2] == 4 else cv2.COLOR_RGB2BGR))
    return data.tobytes()


def _is_background(name: Optional[str]) -> bool:
    return (name or "").strip().lower() in ("background", "bg", "void", "unlabeled", "unlabelled")


class App:
    """The app's state: images, cached models and explainers, jobs, results and dataset runs.

    One worker thread runs the jobs in order (TensorFlow uses every core for one explanation);
    one compiled explainer is kept per (model, network input size, grid, options), so the second
    click on the same image and settings reuses its graphs.
    """

    def __init__(self):
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.images: dict[str, dict] = {}
        self.labels: dict[str, np.ndarray] = {}
        self.models: dict[str, tuple] = {}
        self.explainers: dict[tuple, object] = {}
        self.predictions: dict[str, dict] = {}
        self.results: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self._queue: "queue.Queue" = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="gsal-app-worker", daemon=True)
        self._worker.start()

    def new_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # -- jobs ---------------------------------------------------------------------------------

    def submit(self, fn, *args) -> str:
        job_id = self.new_id("j")
        self.jobs[job_id] = {"state": "queued", "stage": "waiting for the previous job"}
        self._queue.put((job_id, fn, args))
        return job_id

    def close(self, timeout: float = 600) -> None:
        """Stop the worker after the jobs already queued, and wait for it (at most ``timeout`` s)."""
        self._queue.put(None)
        self._worker.join(timeout)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:  # close()
                return
            job_id, fn, args = item
            job = self.jobs[job_id]
            job.update(state="running", stage="working", started=time.perf_counter())
            try:
                job["result"] = fn(job, *args)
                job["state"] = "done"
            except GsalError as exc:
                job.update(state="error", error=str(exc))
            except Exception as exc:  # a bug or an unexpected model: shown in the page, the server keeps running
                traceback.print_exc()
                job.update(state="error", error=f"{type(exc).__name__}: {exc}")
            job["seconds"] = round(time.perf_counter() - job["started"], 3)

    def wait(self, job_id: str, timeout: float = 600) -> dict:
        """Block until job ``job_id`` ends (for the tests and the benchmark); return it."""
        end = time.time() + timeout
        while self.jobs[job_id]["state"] in ("queued", "running"):
            if time.time() > end:
                raise TimeoutError(job_id)
            time.sleep(0.02)
        return self.jobs[job_id]

    # -- models and images --------------------------------------------------------------------

    def zoo(self) -> dict:
        from gsal_tf.models import presets
        from gsal_tf.zoo.demo import DEMOS, demo_model

        entries = []
        for entry in presets.list_models():
            entries.append({"name": entry.name, "dataset": entry.dataset, "classes": list(entry.class_names),
                            "input": list(entry.input_shape), "description": entry.description})
        return {"models": entries, "demos": [{"name": d, "model": demo_model(d)} for d in DEMOS]}

    def model(self, job: Optional[dict], name: str):
        """(model, display name) of a zoo name or a model file, loaded once; refused when it is not
        a segmentation network (per-pixel class scores (N,H,W,K))."""
        name = str(name or "").strip()
        if not name:
            raise GsalInputError("choose a network: a zoo name or a model file path")
        with self._lock:
            found = self.models.get(name)
        if found is not None:
            return found
        if job is not None:
            job["stage"] = f"loading model {name}"
        from gsal_tf import loading

        net = loading.load_model(name)
        shape = None
        try:
            shape = tuple(net.outputs[0].shape)
        except Exception:
            pass
        if shape is not None and (len(shape) != 4 or (shape[-1] is not None and shape[-1] < 2)):
            raise GsalInputError(f"{name} is not a segmentation network: its output has shape {shape}; "
                                 "gsal explains networks that return per-pixel class scores (N,H,W,K)")
        with self._lock:
            self.models[name] = (net, name)
        return net, name

    def add_image(self, data: bytes, filename: str = "upload.png") -> dict:
        """An uploaded image file, read as ``gsal explain`` reads it (:func:`gsal_tf.loading.load_image`)."""
        from gsal_tf import loading

        if not data:
            raise GsalInputError("the upload is empty: choose an image file")
        suffix = Path(filename or "upload.png").suffix.lower()
        if suffix not in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".npy"):
            suffix = ".png"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                image = loading.load_image(path)
            except GsalInputError as exc:
                raise GsalInputError(str(exc).replace(str(path), repr(filename or "the upload"))) from None
        return self._store_image(image, filename or "upload")

    def add_demo(self, name: str) -> dict:
        from gsal_tf import loading
        from gsal_tf.models import presets
        from gsal_tf.zoo.demo import CYCLISTS_PHOTO, DEMOS, demo_model, demo_sample

        if name not in DEMOS:
            raise GsalInputError(f"unknown demo {name!r}; choose one of {', '.join(DEMOS)}")
        if name == "cyclists":
            path = presets.zoo_dir() / CYCLISTS_PHOTO
            info = self._store_image(loading.load_image(path), str(path))
        else:
            info = self._store_image(demo_sample()["image"].astype(np.float32), "demo")
        return {**info, "model": demo_model(name)}

    def _store_image(self, image: np.ndarray, name: str) -> dict:
        from gsal_tf import viz

        image_id = self.new_id("i")
        screen = viz.screen_shape(image.shape)
        self.images[image_id] = {"image": image, "name": name, "screen": screen,
                                 "png": _png(viz.to_screen(viz.to_display(image), screen))}
        return {"image_id": image_id, "height": int(image.shape[0]), "width": int(image.shape[1]), "name": Path(name).name}

    def add_labels(self, data: bytes) -> dict:
        """A label image (8-bit, one class id per pixel; 255 = ignore) for the error view."""
        import cv2

        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if pixels is None:
            raise GsalInputError("cannot read the label image: give a PNG whose pixel values are class ids")
        if pixels.ndim == 3:
            if not all(np.array_equal(pixels[..., 0], pixels[..., c]) for c in range(1, pixels.shape[2])):
                raise GsalInputError("the label image has colours; give a single-channel PNG whose pixel values are class ids")
            pixels = pixels[..., 0]
        labels_id = self.new_id("l")
        self.labels[labels_id] = pixels.astype(np.int32)
        return {"labels_id": labels_id, "height": int(pixels.shape[0]), "width": int(pixels.shape[1])}

    # -- the picture pipeline -----------------------------------------------------------------

    def _picture_and_explainer(self, net, image: np.ndarray, options: dict):
        from gsal_tf import pictures

        picture = pictures.fit_picture(pictures.matched_channels(image, net), net)
        key = (id(net), picture.fit.target, picture.grid, json.dumps(options, sort_keys=True, default=str))
        with self._lock:
            explainer = self.explainers.get(key)
        if explainer is None:
            explainer = pictures.explainer_for(net, picture, **options)
            with self._lock:
                self.explainers[key] = explainer
        return picture, explainer

    def predict(self, job: dict, image_id: str, model_name: str) -> dict:
        from gsal_tf import requests as _requests
        from gsal_tf import viz

        image = self._image(image_id)
        net, name = self.model(job, model_name)
        job["stage"] = "predicting"
        picture, explainer = self._picture_and_explainer(net, image["image"], {})
        labels = _requests.label_map(np.asarray(explainer.predict(picture.network_input[None]))[0])
        shown = picture.fit.to_image(labels, nearest=True, size=image["screen"])
        names = viz.class_names(net, num_classes=max(int(labels.max()) + 1, len(viz.class_names(net))))
        colours = viz.class_colours(len(names), names)
        present, counts = np.unique(shown, return_counts=True)
        legend = [{"class_id": int(k), "name": names[k], "colour": "#%02x%02x%02x" % tuple(int(v * 255 + 0.5) for v in colours[k]),
                   "share": float(c / shown.size), "background": _is_background(names[k])}
                  for k, c in sorted(zip(present.tolist(), counts.tolist()), key=lambda kc: -kc[1])]
        prediction_id = self.new_id("p")
        self.predictions[prediction_id] = {"image_id": image_id, "model": name, "labels": labels, "names": names,
                                           # background transparent: the photo shows through where nothing is predicted
                                           "png": _png(np.concatenate([colours[shown], np.array([0.0 if _is_background(n) else 1.0 for n in names])[shown][..., None]], axis=2))}
        return {"prediction_id": prediction_id, "model": name, "legend": legend, "classes": names,
                "network_input": list(picture.fit.target)}

    def explain(self, job: dict, body: dict) -> dict:
        """Explain the page's request (a point, a box or a label image's error region) with the
        prediction's network, and with ``compare`` (a second network) beside it."""
        from gsal_tf import requests as _requests

        found = self.predictions.get(str(body.get("prediction_id")))
        if found is None:
            raise GsalInputError("predict first: choose a network and an image")
        image = self._image(found["image_id"])
        options = parse_settings(body)
        net, name = self.model(job, found["model"])
        picture, explainer = self._picture_and_explainer(net, image["image"], options)
        class_id = body.get("class_id")
        class_id = None if class_id in (None, "") else int(class_id)
        request, error_info = {}, None
        if body.get("point") is not None:
            y, x = (int(v) for v in body["point"])
            h, w = picture.fit.source
            if not (0 <= y < h and 0 <= x < w):
                raise GsalInputError(f"the click {y},{x} is outside the image ({h}x{w})")
            under = int(found["labels"][picture.fit.point_to_model((y, x))])
            if _is_background(found["names"][under]):
                raise GsalInputError(f"nothing to explain at ({y}, {x}): the network predicts {found['names'][under]} there; "
                                     "click a coloured segment of the prediction (or draw a box)")
            request["point"] = (y, x)
        elif body.get("box") is not None:
            y0, x0, y1, x1 = (int(v) for v in body["box"])
            request["box"] = (min(y0, y1), min(x0, x1), max(y0, y1) + 1, max(x0, x1) + 1)
        elif body.get("labels_id") is not None:
            request["mask"], class_id, error_info = self._error_region(found, picture, body, class_id)
        else:
            raise GsalInputError("click a predicted segment, draw a box or give a label image")
        job["stage"] = "predicting the request"
        asked = self._request(picture, explainer, request, class_id)
        results = [self._explain_one(job, net, name, image, picture, explainer, asked)]
        second = str(body.get("compare") or "").strip()
        if second:
            net2, name2 = self.model(job, second)
            picture2, explainer2 = self._picture_and_explainer(net2, image["image"], options)
            mask = picture.fit.to_image(asked.mask, nearest=True) > 0.5  # the same request, in the image's pixels
            asked2 = self._request(picture2, explainer2, {"mask": mask}, asked.class_id)
            results.append(self._explain_one(job, net2, name2, image, picture2, explainer2, asked2))
        out = {"results": results, "error_region": error_info}
        if len(results) == 2:
            from gsal_tf.compare import rank_correlation, top_cell_iou

            a, b = (np.asarray(self.results[r["result_id"]]["grid"]) for r in results)
            same = a.shape == b.shape
            out["agreement"] = {"top_cell_iou": _finite(top_cell_iou(a, b)) if same else None,
                                "rank_correlation": _finite(rank_correlation(a, b)) if same else None}
        return out

    @staticmethod
    def _request(picture, explainer, request: dict, class_id):
        from gsal_tf import pictures

        return pictures.picture_request(picture, explainer.predict, class_id=class_id, **request)

    def _error_region(self, found: dict, picture, body: dict, class_id):
        """The error view: pixels whose label differs from the prediction (labels of ``true`` class
        predicted as ``wrong``, :func:`gsal_tf.requests.error_request`); the wrong class is explained."""
        from gsal_tf import requests as _requests

        labels = self.labels.get(str(body["labels_id"]))
        if labels is None:
            raise GsalInputError("give the label image again (it is no longer on the server)")
        if labels.shape != tuple(picture.fit.source):
            raise GsalInputError(f"the label image is {labels.shape[0]}x{labels.shape[1]}; the image is "
                                 f"{picture.fit.source[0]}x{picture.fit.source[1]}: give the labels of this image")
        predicted = picture.fit.to_image(found["labels"], nearest=True)
        wrong = (labels != predicted) & (labels != 255)
        if not wrong.any():
            raise GsalInputError("the prediction agrees with the label image everywhere: no error to explain")
        if body.get("true_class") not in (None, ""):
            true = int(body["true_class"])
            pairs = wrong & (labels == true)
            if not pairs.any():
                raise GsalInputError(f"no pixel labelled {true} is predicted wrongly")
            as_ = np.bincount(predicted[pairs]).argmax()
        else:
            codes = labels[wrong].astype(np.int64) * 65536 + predicted[wrong]
            values, counts = np.unique(codes, return_counts=True)
            top = int(values[counts.argmax()])
            true, as_ = top // 65536, top % 65536
        mask = _requests.error_request(predicted, labels, int(true), predicted_as=int(as_), ignore_label=255)
        names = found["names"]
        name = lambda k: names[k] if 0 <= k < len(names) else f"class {k}"  # noqa: E731
        info = {"true_class": int(true), "true_name": name(int(true)), "predicted_as": int(as_), "predicted_name": name(int(as_)),
                "pixels": int(mask.sum())}
        return mask, (int(as_) if class_id is None else class_id), info

    def _explain_one(self, job, net, name, image, picture, explainer, asked) -> dict:
        from gsal_tf import pictures, viz

        job["stage"] = (f"{name}: optimising the {explainer.grid_size[0]}x{explainer.grid_size[1]} grid mask "
                        f"(at most {explainer.iterations} iterations; the first click on a network also builds its graphs)")
        start = time.perf_counter()
        explained = pictures.explain_picture(explainer, picture, asked)
        seconds = time.perf_counter() - start
        result, fit = explained.result, picture.fit
        names = tuple(viz.class_names(net)) or None
        summary = pictures.summary(result, asked.mask, name, image["name"], seconds, names, fit=fit)
        job["stage"] = f"{name}: drawing the overlay"
        screen = viz.screen_shape(fit.source)
        photo = viz.to_screen(pictures.matched_channels(image["image"], net), screen)
        figure = viz.explanation_figure(photo, fit.to_image(asked.mask, nearest=True, size=screen), fit.to_image(result.saliency[0], size=screen),
                                        asked.class_id, prediction=fit.to_image(asked.prediction, nearest=True, size=screen),
                                        class_names=viz.class_names(net), model_name=name, preserved_score=summary["preserved_score"],
                                        no_context_score=summary["no_context_score"])
        buffer = io.BytesIO()
        np.save(buffer, fit.to_image(result.saliency[0]))
        result_id = self.new_id("r")
        self.results[result_id] = {"overlay.png": viz.png_bytes(figure), "saliency.npy": buffer.getvalue(),
                                   "summary.json": json.dumps(summary, indent=2).encode(), "grid": result.grid[0]}
        return {"result_id": result_id, "model": name, "class_id": summary["class_id"], "class_name": summary["class_name"],
                "original_score": summary["original_score"], "preserved_score": summary["preserved_score"],
                "no_context_score": summary["no_context_score"], "salient_context_share": summary["salient_context_share"],
                "request_pixels": summary["request_pixels"], "converged": summary["converged"], "seconds": summary["seconds"],
                "context_classes": pictures.context_classes(explained, names),
                "files": {f: f"/api/results/{result_id}/{f}" for f in ("overlay.png", "saliency.npy", "summary.json")}}

    def _image(self, image_id) -> dict:
        found = self.images.get(str(image_id))
        if found is None:
            raise GsalInputError("choose an image first (upload one or take a demo photo)")
        return found

    # -- dataset runs -------------------------------------------------------------------------

    def open_run(self, folder: str) -> dict:
        """The requests of a results folder of ``gsal explain-dataset`` (one row each)."""
        from gsal_tf.scale import report, store

        path = Path(str(folder or "").strip()).expanduser()
        if not (path / store.CARD_NAME).is_file():
            raise GsalInputError(f"{path} is not a results folder of gsal explain-dataset (no {store.CARD_NAME})")
        table = store.read_results(path)
        card = store.read_card(path)
        col = lambda name: np.asarray(table.column(name).to_pylist(), dtype=object)  # noqa: E731
        maps = report._MapReader(path)
        mass, area = col("salient_mass").astype(float), col("context_area").astype(float)
        share = np.where(area > 0, mass / np.where(area > 0, area, 1), np.nan)
        rows = []
        for i in range(table.num_rows):
            cls = int(col("class_id")[i])
            rows.append({"row": i, "key": str(col("sample_key")[i]), "request": int(col("request_index")[i]), "class_id": cls,
                         "class": report.class_label(card, cls), "no_context_score": _finite(col("no_context_score")[i]),
                         "preserved_score": _finite(col("preserved_score")[i]), "salient_share": _finite(share[i]),
                         "pixels": int(col("request_pixels")[i])})
        run_id = self.new_id("d")
        self.runs[run_id] = {"folder": path, "card": card, "table": table, "maps": maps, "source": None, "source_opened": False}
        model = card["settings"].get("model", "")
        model = model.get("name", model.get("path", "")) if isinstance(model, dict) else model
        return {"run_id": run_id, "folder": str(path), "rows": rows, "maps": maps.available, "model": str(model)}

    def run_overlay(self, run_id: str, row: int) -> bytes:
        from gsal_tf import viz
        from gsal_tf.scale import report

        run = self.runs.get(run_id)
        if run is None:
            raise GsalInputError("open the results folder again")
        found = run["maps"].get(int(row))
        if found is None:
            raise GsalInputError("this run saved no maps (run gsal explain-dataset with --maps to open overlays)")
        if not run["source_opened"]:
            run["source"], run["source_opened"] = report._reopen_source(run["card"]), True
        saliency, request = found
        table = run["table"]
        image = report._sample_image(run["source"], int(table.column("sample_index")[int(row)].as_py()))
        if image is not None and image.shape[:2] != saliency.shape:
            image = None
        title = f"{report.class_label(run['card'], int(table.column('class_id')[int(row)].as_py()))} · {table.column('sample_key')[int(row)].as_py()}"
        return viz.png_bytes(viz.thumbnail_figure(saliency, request, title, image))


def _finite(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _page() -> bytes:
    return resources.files("gsal_tf.app").joinpath("index.html").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    app: App = None  # set by make_server
    server_version = "gsal-app"

    def log_message(self, format, *args):  # quiet: the terminal shows the address, not every poll
        pass

    # -- replies --

    def _send(self, status: int, body: bytes, content_type: str, extra: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_UPLOAD:
            raise GsalInputError(f"the upload is {length / 1e6:.0f} MB; at most {MAX_UPLOAD // 1_000_000} MB")
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> dict:
        try:
            value = json.loads(self._body() or b"{}")
        except json.JSONDecodeError:
            raise GsalInputError("the request body is not JSON") from None
        if not isinstance(value, dict):
            raise GsalInputError("the request body must be a JSON object")
        return value

    def _guard(self, fn) -> None:
        try:
            fn()
        except GsalError as exc:
            self._json({"error": str(exc)}, 400)
        except Exception as exc:  # never take the server down: the page shows the message
            traceback.print_exc()
            self._json({"error": f"{type(exc).__name__}: {exc}"}, 500)

    # -- routes --

    def do_GET(self):  # noqa: N802
        self._guard(self._get)

    def do_POST(self):  # noqa: N802
        self._guard(self._post)

    def _get(self):
        app, url = self.app, urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if not parts or parts == ["index.html"]:
            return self._send(200, _page(), "text/html; charset=utf-8")
        if parts == ["favicon.ico"]:
            return self._send(204, b"", "image/x-icon")
        if parts[:1] != ["api"]:
            return self._json({"error": "not found"}, 404)
        rest = parts[1:]
        if rest == ["models"]:
            return self._json(app.zoo())
        if len(rest) == 2 and rest[0] == "jobs":
            job = app.jobs.get(rest[1])
            if job is None:
                return self._json({"error": "unknown job"}, 404)
            shown = {k: job[k] for k in ("state", "stage", "result", "error", "seconds") if k in job}
            if job["state"] == "running":
                shown["elapsed"] = round(time.perf_counter() - job["started"], 1)
            return self._json(shown)
        if len(rest) == 2 and rest[0] == "images" and rest[1].endswith(".png"):
            return self._send(200, app._image(rest[1][:-4])["png"], "image/png")
        if len(rest) == 2 and rest[0] == "predictions" and rest[1].endswith(".png"):
            found = app.predictions.get(rest[1][:-4])
            if found is None:
                return self._json({"error": "unknown prediction"}, 404)
            return self._send(200, found["png"], "image/png")
        if len(rest) == 3 and rest[0] == "results":
            found = app.results.get(rest[1])
            if found is None or rest[2] not in ("overlay.png", "saliency.npy", "summary.json"):
                return self._json({"error": "unknown result"}, 404)
            kind = {"png": "image/png", "npy": "application/octet-stream", "json": "application/json"}[rest[2].rsplit(".", 1)[1]]
            extra = {"Content-Disposition": f'attachment; filename="{rest[2]}"'} if "download" in parse_qs(url.query) else None
            return self._send(200, found[rest[2]], kind, extra)
        if len(rest) == 3 and rest[0] == "runs" and rest[2].endswith(".png"):
            return self._send(200, app.run_overlay(rest[1], int(rest[2][:-4])), "image/png")
        return self._json({"error": "not found"}, 404)

    def _post(self):
        app, parts = self.app, [p for p in urlparse(self.path).path.split("/") if p]
        rest = parts[1:] if parts[:1] == ["api"] else None
        if rest == ["images"]:
            return self._json(app.add_image(self._body(), self.headers.get("X-Filename", "upload")))
        if rest == ["demo"]:
            return self._json(app.add_demo(str(self._json_body().get("name", "cyclists"))))
        if rest == ["labels"]:
            return self._json(app.add_labels(self._body()))
        if rest == ["predict"]:
            body = self._json_body()
            app._image(body.get("image_id"))
            return self._json({"job": app.submit(app.predict, str(body.get("image_id")), str(body.get("model") or ""))})
        if rest == ["explain"]:
            body = self._json_body()
            parse_settings(body)  # a bad setting is told at once, not after the queue
            return self._json({"job": app.submit(app.explain, body)})
        if rest == ["runs"]:
            return self._json(app.open_run(self._json_body().get("folder", "")))
        return self._json({"error": "not found"}, 404)


def make_server(port: int = 0, app: Optional[App] = None) -> ThreadingHTTPServer:
    """The server on 127.0.0.1:``port`` (0: a free port; ``server.server_address[1]``), not yet serving."""
    handler = type("Handler", (_Handler,), {"app": app or App()})
    server = ThreadingHTTPServer((HOST, port), handler)
    server.daemon_threads = True
    server.app = handler.app
    return server


def serve(port: int = 8765, open_browser: bool = False, ready=None) -> None:
    """Serve the app on 127.0.0.1:``port`` until interrupted."""
    server = make_server(port)
    url = f"http://{HOST}:{server.server_address[1]}/"
    if ready is not None:
        ready(url)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.app.close(timeout=5)  # a job still running is left to the daemon thread
