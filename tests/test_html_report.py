"""The HTML report of a dataset run (``gsal stats --html``): self-contained, the run's numbers,
the gallery ranked by context dependence, and what a real browser shows."""

from __future__ import annotations

import html.parser
import shutil
import subprocess

import cv2
import numpy as np
import pytest

import gsal_tf as gs
from gsal_tf.scale import RequestPolicy, explain_dataset, load_stats, read_results
from gsal_tf.scale import report
from gsal_tf.scale.report import context_dependence, write_html_report

pytest.importorskip("pyarrow")

OPTIONS = {"grid_size": (4, 4), "iterations": 5, "batch_size": 4}
POLICY = RequestPolicy(zone="component", min_pixels=4)


class _Page(html.parser.HTMLParser):
    """Collects tags, image sources, table rows and gallery card texts."""

    def __init__(self):
        super().__init__()
        self.tags, self.images, self.cards, self._card = [], [], [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "div" and attrs.get("class") == "card":
            self._card = []

    def handle_endtag(self, tag):
        pass

    def handle_data(self, data):
        if self._card is not None:
            self._card.append(data)
            if data.strip().endswith("px"):
                self.cards.append(" ".join(self._card))
                self._card = None


@pytest.fixture(scope="module")
def run(tmp_path_factory, conv_model_file):
    root = tmp_path_factory.mktemp("report")
    model = gs.loading.load_model(conv_model_file)
    rng = np.random.default_rng(3)
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for i in range(5):
        cv2.imwrite(str(images / f"img{i:02d}.png"), rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
        label = np.zeros((16, 16), np.uint8)
        label[2:8, 2:8] = 1
        label[10:15, 9:15] = 2
        cv2.imwrite(str(labels / f"img{i:02d}.png"), label)
    explain_dataset(model, images, root / "maps", labels=labels, options=OPTIONS, policy=POLICY, store_maps=True)
    explain_dataset(model, images, root / "nomaps", labels=labels, options=OPTIONS, policy=POLICY)
    return root


@pytest.fixture(scope="module")
def context_run(tmp_path_factory):
    """A run whose requests keep salient context: a hand-built network whose class-1 prediction
    reads only the bright label-2 patch (:func:`gsal_tf.models.known_context.known_context_model`);
    the background (class 0) zones keep none."""
    from gsal_tf.models.known_context import known_context_model

    root = tmp_path_factory.mktemp("context_report")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(3)
    for i in range(3):
        image = rng.integers(100, 156, (16, 16, 3), dtype=np.uint8)
        image[10:15, 9:15] = 240
        cv2.imwrite(str(images / f"img{i:02d}.png"), image)
        label = np.zeros((16, 16), np.uint8)
        label[2:8, 2:8] = 1
        label[10:15, 9:15] = 2
        cv2.imwrite(str(labels / f"img{i:02d}.png"), label)
    model = known_context_model((16, 16, 3), [(10, 9, 15, 15)], (2, 2, 8, 8), num_classes=3, target_class=1)
    explain_dataset(model, images, root / "run", labels=labels, options=OPTIONS, policy=POLICY)
    return root / "run"


def test_context_dependence_per_method():
    no_context, mass, area = np.array([0.2, 1.0]), np.array([3.0, 0.0]), np.array([12.0, 0.0])
    np.testing.assert_allclose(context_dependence(no_context, mass, area, "grid_saliency"), [0.8, 0.0])
    d = context_dependence(no_context, mass, area, "smoothgrad")
    assert d[0] == pytest.approx(0.25) and np.isnan(d[1])


def test_report_is_self_contained_and_holds_the_run(run):
    path = write_html_report(run / "maps", gallery=4)
    assert path == run / "maps" / "stats" / "report.html" and not list(path.parent.glob(".*.tmp"))
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert "script" not in page.tags and "http://" not in text and "https://" not in text
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    # Four heat maps, then 4 overlays at each end of the ranking.
    assert len(page.images) == 4 + 4 + 4
    stats, card = load_stats(run / "maps")
    for c in stats.classes:
        assert f">class {int(c)}<" in text
    assert f"{stats.count[0]}" in text and "tiny_conv" in text
    assert f'<td rowspan="{min(5, stats.share.shape[1])}">{stats.area_like[0]}</td>' in text and "<th>area-like</th>" in text
    # The gallery follows d = 1 - no_context_score, most dependent first.
    table = read_results(run / "maps")
    d = 1 - np.asarray(table.column("no_context_score").to_pylist())
    shown = [float(card_text.split("d = ")[1].split()[0]) for card_text in page.cards]
    assert len(shown) == 8
    np.testing.assert_allclose(shown[:4], np.round(np.sort(d)[::-1][:4], 2), atol=0.006)
    np.testing.assert_allclose(shown[4:], np.round(np.sort(d)[:4], 2), atol=0.006)


def test_report_without_maps_lists_requests_and_says_how_to_get_overlays(run):
    path = write_html_report(run / "nomaps", run / "nomaps.html", gallery=3)
    text = path.read_text(encoding="utf-8")
    page = _Page()
    page.feed(text)
    assert len(page.images) == 4  # heat maps only
    assert len(page.cards) == 6 and "--maps" in text


def test_bad_gallery_size_is_refused(run):
    with pytest.raises(gs.GsalInputError, match="gallery"):
        write_html_report(run / "maps", gallery=-1)


def test_figures_count_each_row_and_grey_rows_with_too_few_requests(context_run):
    from gsal_tf.scale.report import figures

    stats, card = load_stats(context_run)
    kept = np.asarray(stats.count) - np.asarray(stats.empty)
    assert kept.min() == 0 and kept.max() > 0  # the background keeps no context, the patch's classes do
    for min_requests in (1, int(kept.max()) + 1):
        shown = figures(stats, card, min_requests=min_requests, title="Δ on test frames")
        axes = shown["difference"].axes[0]
        assert axes.get_title() == "Δ on test frames"
        labels = [t.get_text() for t in axes.get_yticklabels()]
        assert labels == [f"{report.class_label(card, int(c))} ({int(k)}/{int(n)})" for c, k, n in zip(stats.classes, kept, stats.count)]
        for name, values in (("difference", stats.difference), ("share", stats.share)):
            data = shown[name].axes[0].get_images()[0].get_array()
            grey = np.ma.getmaskarray(data).all(axis=1)
            np.testing.assert_array_equal(grey, kept < min_requests)
            np.testing.assert_allclose(data.filled(np.nan)[~grey], values[~grey])
    with pytest.raises(gs.GsalInputError, match="min_requests"):
        figures(stats, card, min_requests=-1)


def test_report_table_counts_requests_with_context_and_greys_too_few(context_run, tmp_path):
    stats, _ = load_stats(context_run)
    kept = stats.count - stats.empty
    listed = min(5, stats.share.shape[1])  # context classes listed per request class
    text = write_html_report(context_run, tmp_path / "one.html").read_text(encoding="utf-8")
    assert "<th>with context</th>" in text and "Grey:" not in text
    for n, k in zip(stats.count, kept):
        assert f'<td rowspan="{listed}">{n}</td><td rowspan="{listed}">{k}</td>' in text
    assert text.count('class="few"') == 3 * listed * int(np.sum(kept < 1))  # share, inflation, Δ of each listed class
    many = int(kept.max()) + 1
    text = write_html_report(context_run, tmp_path / "many.html", min_requests=many).read_text(encoding="utf-8")
    assert f"Grey: fewer than {many} requests" in text and text.count('class="few"') == 3 * listed * len(stats.classes)
    with pytest.raises(gs.GsalInputError, match="min_requests"):
        write_html_report(context_run, tmp_path / "bad.html", min_requests=-3)
    assert not (tmp_path / "bad.html").exists()


def test_cli_stats_html(run, tmp_path):
    from typer.testing import CliRunner

    from gsal_cli.main import app

    runner = CliRunner()
    ok = runner.invoke(app, ["stats", str(run / "maps"), "--html", "--out", str(tmp_path / "stats")])
    assert ok.exit_code == 0, ok.output
    assert sorted(p.name for p in (tmp_path / "stats").iterdir()) == ["difference.png", "distance.png", "report.html", "share.png", "size.png"]
    bad = runner.invoke(app, ["stats", str(run / "maps"), "--html", "--gallery", "-2", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and bad.output.count("error:") == 1 and "--gallery" in bad.output
    assert not (tmp_path / "bad" / "report.html").exists()
    bad = runner.invoke(app, ["stats", str(run / "maps"), "--html", "--min-requests", "-1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and bad.output.count("error:") == 1 and "--min-requests" in bad.output
    assert "salient context by class" not in bad.output  # refused before anything is printed or written
    assert not (tmp_path / "bad").exists() or not list((tmp_path / "bad").iterdir())


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="needs Debian's chromium (headless)")
def test_a_real_browser_renders_the_report(run, tmp_path):
    """Headless Chromium opens the file offline and draws it: the screenshot holds the heat maps
    (many colours), not a blank or an error page."""
    path = write_html_report(run / "maps", tmp_path / "report.html", gallery=4)
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,2400",
                           f"--screenshot={shot}", path.resolve().as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.is_file(), done.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image.shape[:2] == (2400, 1200)
    colours = len(np.unique(image.reshape(-1, 3) // 16, axis=0))
    assert colours > 50 and image.std() > 20
