"""``gsal app``: the JSON API without a browser (numbers equal to ``gsal explain`` on the same
request, bad input answered with a message, a dataset run browsed) and a real headless Chromium
(Selenium + Debian's chromium-driver) that loads the demo photo, clicks the person and reads the
overlay's numbers."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf import pictures
from gsal_tf.app.server import make_server
from gsal_tf.models import presets
from gsal_tf.zoo.demo import CYCLISTS_MODEL, CYCLISTS_PHOTO

#: Few iterations keep the test short; the CLI and the library get the same.
ITERATIONS = 20
PHOTO = presets.zoo_dir() / CYCLISTS_PHOTO


@pytest.fixture(scope="module")
def server():
    srv = make_server(0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    srv.app.close()  # no job of the app runs beside the next tests
    assert not srv.app._worker.is_alive()


def _call(base, path, body=None, raw=None, filename="upload.png"):
    """(status, JSON reply) of GET ``path`` or POST ``body`` (JSON) / ``raw`` (bytes)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Content-Type": "application/octet-stream", "X-Filename": filename} if raw is not None else {"Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _job(base, path, body, timeout=600):
    status, reply = _call(base, path, body)
    assert status == 200, reply
    end = time.time() + timeout
    while time.time() < end:
        _, job = _call(base, f"/api/jobs/{reply['job']}")
        if job["state"] in ("done", "error"):
            return job
        time.sleep(0.1)
    raise TimeoutError(path)


def _person_point(model) -> tuple[int, int]:
    """A pixel deep inside the largest predicted person component of the demo photo (image pixels)."""
    image = gs.loading.load_image(PHOTO)
    picture = pictures.fit_picture(image, model)
    labels = gs.requests.label_map(np.asarray(model(picture.network_input[None]))[0])
    person = (picture.fit.to_image(labels, nearest=True) == 15).astype(np.uint8)
    count, parts = cv2.connectedComponents(person, connectivity=8)
    largest = 1 + int(np.argmax([(parts == k).sum() for k in range(1, count)]))
    depth = cv2.distanceTransform((parts == largest).astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return int(y), int(x)


def _library(model, point) -> dict:
    """The library's picture pipeline on the demo photo and the clicked point."""
    image = gs.loading.load_image(PHOTO)
    picture = pictures.fit_picture(pictures.matched_channels(image, model), model)
    explainer = pictures.explainer_for(model, picture, iterations=ITERATIONS)
    asked = pictures.picture_request(picture, explainer.predict, point=point)
    explained = pictures.explain_picture(explainer, picture, asked)
    return {"summary": pictures.summary(explained.result, asked.mask, CYCLISTS_MODEL, PHOTO, 0.0, gs.viz.class_names(model), fit=picture.fit),
            "saliency": explained.saliency}


@pytest.fixture(scope="module")
def person(server):
    srv, _ = server
    model = srv.app.model(None, CYCLISTS_MODEL)[0]
    return _person_point(model)


def test_upload_click_equals_gsal_explain(server, person, tmp_path):
    """The demo photo uploaded, the person clicked: the app's numbers, saliency.npy and summary.json
    are those of `gsal explain` with --request-point on the same pixel."""
    from typer.testing import CliRunner

    from gsal_cli.main import app

    _, base = server
    status, info = _call(base, "/api/images", raw=PHOTO.read_bytes(), filename=PHOTO.name)
    assert status == 200 and (info["height"], info["width"]) == (513, 513)
    predicted = _job(base, "/api/predict", {"image_id": info["image_id"], "model": CYCLISTS_MODEL})
    assert predicted["state"] == "done", predicted
    legend = {c["name"] for c in predicted["result"]["legend"]}
    assert {"background", "person"} <= legend
    job = _job(base, "/api/explain", {"prediction_id": predicted["result"]["prediction_id"], "point": list(person), "iterations": str(ITERATIONS)})
    assert job["state"] == "done", job
    shown = job["result"]["results"][0]
    assert shown["class_name"] == "person" and shown["context_classes"]
    shares = [c["share"] for c in shown["context_classes"]]
    assert shares == sorted(shares, reverse=True) and all(s > 0 for s in shares)
    # the shares of every predicted class with context sum to 1; at most 8 (pictures.context_classes) are listed
    assert abs(sum(shares) - 1) < 1e-6 if len(shares) < 8 else len(shares) == 8 and sum(shares) <= 1 + 1e-6

    out = tmp_path / "cli"
    done = CliRunner().invoke(app, ["explain", str(PHOTO), "--model", CYCLISTS_MODEL, "--request-point", f"{person[0]},{person[1]}",
                                    "--iterations", str(ITERATIONS), "--out", str(out)])
    assert done.exit_code == 0, done.output
    cli = json.loads((out / "summary.json").read_text())
    for key in ("class_id", "original_score", "preserved_score", "no_context_score", "salient_context_share", "request_pixels"):
        assert shown[key] == pytest.approx(cli[key], abs=1e-6), key

    def fetch(name):
        with urllib.request.urlopen(base + shown["files"][name] + "?download=1") as reply:
            assert "attachment" in reply.headers.get("Content-Disposition", "")
            return reply.read()

    summary = json.loads(fetch("summary.json"))
    drop = ("seconds", "image")
    assert set(summary) == set(cli)
    for key in set(summary) - set(drop):
        if key == "grid":
            np.testing.assert_allclose(summary[key], cli[key], atol=1e-4)
        elif isinstance(cli[key], float):
            assert summary[key] == pytest.approx(cli[key], abs=1e-6), key
        else:
            assert summary[key] == cli[key], key
    saliency = np.load(__import__("io").BytesIO(fetch("saliency.npy")))
    np.testing.assert_allclose(saliency, np.load(out / "saliency.npy"), atol=1e-6)
    assert fetch("overlay.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_input_gets_a_message_and_the_server_keeps_running(server, person, tmp_path):
    import keras

    _, base = server
    status, reply = _call(base, "/api/images", raw=b"this is not an image", filename="notes.txt")
    assert status == 400 and "cannot read" in reply["error"] and "notes.txt" in reply["error"]

    _, info = _call(base, "/api/demo", {"name": "cyclists"})
    predicted = _job(base, "/api/predict", {"image_id": info["image_id"], "model": info["model"]})
    pid = predicted["result"]["prediction_id"]
    job = _job(base, "/api/explain", {"prediction_id": pid, "point": [3, 3]})  # the sky: background
    assert job["state"] == "error" and "nothing to explain" in job["error"] and "background" in job["error"]
    status, reply = _call(base, "/api/explain", {"prediction_id": pid, "point": [3, 3], "grid": "a,b"})
    assert status == 400 and "grid" in reply["error"]

    classifier = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Flatten(), keras.layers.Dense(4, activation="softmax")])
    path = tmp_path / "classifier.keras"
    classifier.save(path)
    job = _job(base, "/api/predict", {"image_id": info["image_id"], "model": str(path)})
    assert job["state"] == "error" and "not a segmentation network" in job["error"]
    job = _job(base, "/api/predict", {"image_id": info["image_id"], "model": str(tmp_path / "missing.keras")})
    assert job["state"] == "error" and "model not found" in job["error"] and "missing.keras" in job["error"]

    status, zoo = _call(base, "/api/models")  # still serving
    assert status == 200 and CYCLISTS_MODEL in [m["name"] for m in zoo["models"]]


def test_error_view_explains_the_wrong_class(server):
    """A label image that calls part of the predicted person 'bicycle': the error region is
    explained with the predicted (wrong) class, person."""
    srv, base = server
    _, info = _call(base, "/api/demo", {"name": "cyclists"})
    predicted = _job(base, "/api/predict", {"image_id": info["image_id"], "model": info["model"]})
    labels = srv.app.predictions[predicted["result"]["prediction_id"]]["labels"]
    fit = pictures.fit_picture(gs.loading.load_image(PHOTO), srv.app.model(None, CYCLISTS_MODEL)[0]).fit
    truth = fit.to_image(labels, nearest=True).astype(np.uint8)
    ys, xs = np.nonzero(truth == 15)
    truth[ys[: len(ys) // 3], xs[: len(ys) // 3]] = 2  # "these are bicycle"
    ok, png = cv2.imencode(".png", truth)
    status, given = _call(base, "/api/labels", raw=png.tobytes())
    assert status == 200
    job = _job(base, "/api/explain", {"prediction_id": predicted["result"]["prediction_id"], "labels_id": given["labels_id"], "iterations": "5"})
    assert job["state"] == "done", job
    region = job["result"]["error_region"]
    assert (region["true_name"], region["predicted_name"]) == ("bicycle", "person") and region["pixels"] > 0
    assert job["result"]["results"][0]["class_name"] == "person"


def test_browse_a_dataset_run(server, tmp_path, conv_model_file):
    pytest.importorskip("pyarrow")
    from gsal_tf.scale import RequestPolicy, explain_dataset

    _, base = server
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        cv2.imwrite(str(images / f"img{i:02d}.png"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        label = np.zeros((16, 16), np.uint8)
        label[2:8, 2:8] = 1
        label[10:15, 9:15] = 2
        cv2.imwrite(str(labels / f"img{i:02d}.png"), label)
    model = gs.loading.load_model(conv_model_file)
    explain_dataset(model, images, tmp_path / "run", labels=labels, options={"grid_size": (4, 4), "iterations": 5, "batch_size": 4},
                    policy=RequestPolicy(zone="component", min_pixels=4), store_maps=True)
    status, run = _call(base, "/api/runs", {"folder": str(tmp_path / "run")})
    assert status == 200 and run["maps"] and run["rows"]
    row = run["rows"][0]
    assert {"class", "no_context_score", "salient_share", "preserved_score"} <= set(row)
    with urllib.request.urlopen(f"{base}/api/runs/{run['run_id']}/{row['row']}.png") as reply:
        assert reply.read()[:4] == b"\x89PNG"
    status, reply = _call(base, "/api/runs", {"folder": str(tmp_path)})
    assert status == 400 and "not a results folder" in reply["error"]


def _chromedriver():
    return shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file() else None)


@pytest.mark.skipif(not shutil.which("chromium"), reason="needs Debian's chromium (apt install chromium chromium-driver)")
@pytest.mark.skipif(not _chromedriver(), reason="needs chromedriver (apt install chromium-driver)")
def test_a_real_browser_clicks_the_person(server, person, tmp_path):
    """Headless Chromium: the demo photo, a click on the person, the overlay; the preserved score
    shown equals the library's for the same request; no request leaves 127.0.0.1."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install selenium)")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import Select, WebDriverWait

    srv, base = server
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1500", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(_chromedriver()), options=options)
    try:
        driver.get(base + "/")
        wait = WebDriverWait(driver, 600)
        wait.until(lambda d: len(Select(d.find_element(By.ID, "model")).options) > 1)
        driver.find_element(By.ID, "demo-cyclists").click()
        wait.until(until.text_to_be_present_in_element((By.ID, "legend"), "person"))
        driver.find_element(By.ID, "iterations").send_keys(str(ITERATIONS))
        canvas = driver.find_element(By.ID, "canvas")
        width, height = canvas.size["width"], canvas.size["height"]
        y, x = person
        # Selenium 4 offsets are from the element's centre, in CSS pixels.
        ActionChains(driver).move_to_element_with_offset(canvas, int((x + 0.5) / 513 * width - width / 2),
                                                         int((y + 0.5) / 513 * height - height / 2)).click().perform()
        shown = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .preserved") or
                           (d.find_element(By.ID, "message").text and pytest.fail(d.find_element(By.ID, "message").text)))
        wait.until(lambda d: d.execute_script("const i = document.querySelector('#results img.overlay'); return i && i.complete && i.naturalWidth > 0"))
        preserved = float(shown[0].get_attribute("data-value"))
        driver.execute_script("document.querySelector('#results').scrollIntoView()")
        shot = Path(os.environ.get("GSAL_APP_SCREENSHOT", tmp_path / "app.png"))
        driver.set_window_size(1400, 1500)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(shot))
        requested = {json.loads(e["message"])["message"].get("params", {}).get("request", {}).get("url", "")
                     for e in driver.get_log("performance")}
    finally:
        driver.quit()
    expected = _library(srv.app.model(None, CYCLISTS_MODEL)[0], person)["summary"]["preserved_score"]
    assert preserved == pytest.approx(expected, abs=1e-6)
    outside = sorted(u for u in requested if u and not u.startswith(("http://127.0.0.1", "data:", "blob:", "about:")))
    assert not outside, f"the page fetched from outside: {outside}"
    image = cv2.imread(str(shot))
    assert image is not None and image.std() > 20
