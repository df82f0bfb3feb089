"""The report in a real browser (headless Chromium): it loads without console errors, the 3D view
draws, its toggles, slider and view buttons work, and the PDF has the expected pages.

Skipped, with the reason, where no Chromium-family browser is installed (`.ci/run` installs
Debian's ``chromium`` when it runs as root with apt-get).
"""

import re

import numpy as np
import pytest
import trimesh

from skull2face.io.error_mesh import write_error_ply
from skull2face.report import html as report
from skull2face.report.browser import find_browser
from skull2face.report import scene3d

pytestmark = pytest.mark.skipif(
    find_browser() is None,
    reason="no Chromium-family browser on PATH (.ci/run installs Debian's chromium when root with apt-get)")

BACKGROUND = np.array([0x20, 0x24, 0x2A])  # the viewer's clear colour (#20242a)


def _meshes(tmp_path):
    """A skull-sized sphere, a face shell in front of it (-y, LPS anterior) and the truth with errors."""
    skull = trimesh.creation.icosphere(subdivisions=4, radius=80.0)
    skin = trimesh.creation.icosphere(subdivisions=4, radius=90.0)
    front = skin.vertices[:, 1] < -20.0
    face = skin.submesh([np.flatnonzero(front[skin.faces].all(axis=1))], append=True)
    skull.export(tmp_path / "skull.ply")
    face.export(tmp_path / "face.ply")
    err = np.abs(skin.vertices[:, 2]) / 20.0
    labels = np.where(front, 1, 0).astype(np.int8)
    write_error_ply(skin, err, err, labels, tmp_path / "error_on_truth.ply", region_names=["face"])
    return {"skull": str(tmp_path / "skull.ply"), "face": str(tmp_path / "face.ply"),
            "error_mesh": str(tmp_path / "error_on_truth.ply"), "frame": None}


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    ctx = {"title": "browser test", "scene": _meshes(tmp),
           "methods": {"skull2face": {"metrics": {"rmse_mm": 2.0, "regions": {"nose": {"rmse_mm": 1.5, "area_mm2": 900.0}}}}},
           "settings": {"demo": {"size": 256}}, "hashes": {"ct": "ab" * 32}}
    return report.write_report(tmp / "out", ctx), ctx


@pytest.fixture(scope="module")
def browser():
    from skull2face.report.browser import Browser

    with Browser(1000, 900) as b:
        yield b


def _viewer_pixels(browser):
    """(non-background share, RGB array) of a screenshot of the viewer's box."""
    from io import BytesIO

    from PIL import Image

    box = browser.evaluate("(() => { const r = document.getElementById('s2f-viewer').getBoundingClientRect();"
                           " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width, height: r.height}; })()")
    img = np.asarray(Image.open(BytesIO(browser.screenshot(box))).convert("RGB")).astype(int)
    assert abs(img.shape[1] - box["width"]) <= 1 and abs(img.shape[0] - box["height"]) <= 1
    drawn = np.abs(img - BACKGROUND).sum(axis=2) > 30
    return drawn.mean(), img


def test_page_loads_without_errors_and_the_3d_view_draws(page, browser, tmp_path):
    path, _ = page
    text = path.read_text(encoding="utf-8")
    # self-contained: no element loads anything from elsewhere
    assert not re.search(r'\s(?:src|href)="(?!data:|#)', text)
    assert "three.js 0." in text and "MIT License" in text  # the viewer and its licence in the footer
    browser.open(path)
    assert browser.wait_for("window.s2fViewer && window.s2fViewer.ready", 30), browser.evaluate(
        "JSON.stringify(window.s2fViewer || null)")
    assert browser.console_errors() == []
    share, img = _viewer_pixels(browser)
    # the skull and the face fill a good part of the box, and the box's corners are background
    assert 0.05 < share < 0.9, share
    assert np.abs(img[3:8, 3:8] - BACKGROUND).max() < 10  # inside the 1 px border


def test_toggles_slider_and_view_buttons(page, browser):
    path, _ = page
    browser.open(path)
    assert browser.wait_for("window.s2fViewer && window.s2fViewer.ready", 30)
    assert browser.evaluate("s2fViewer.visible('skull') && s2fViewer.visible('face') && !s2fViewer.visible('truth')")
    full, _ = _viewer_pixels(browser)
    for name in ("skull", "face"):  # switch both off: nothing left to draw
        browser.evaluate(f"document.querySelector('input.layer[data-layer={name}]').click()")
    assert browser.evaluate("!s2fViewer.visible('skull') && !s2fViewer.visible('face')")
    empty, _ = _viewer_pixels(browser)
    assert empty < 0.01 < full
    browser.evaluate("document.querySelector('input.layer[data-layer=truth]').click()")  # the truth, error-coloured
    assert browser.evaluate("s2fViewer.visible('truth')")
    truth, img = _viewer_pixels(browser)
    assert truth > 0.05
    colourful = (img.max(axis=2) - img.min(axis=2)) > 60  # viridis, not grey
    assert colourful.mean() > 0.02
    browser.evaluate("document.querySelector('input.errcolour').click()")  # plain colour: no more viridis
    _, plain = _viewer_pixels(browser)
    assert ((plain.max(axis=2) - plain.min(axis=2)) > 60).mean() < colourful.mean()
    # the opacity slider changes the face's material; the view buttons move the camera
    browser.evaluate("document.querySelector('input.layer[data-layer=face]').click()")
    browser.evaluate("const s = document.getElementById('s2f-opacity'); s.value = '0.3';"
                     " s.dispatchEvent(new Event('input'))")
    for view in ("side", "three-quarter", "front"):
        browser.evaluate(f"document.querySelector('button[data-view=\"{view}\"]').click()")
        assert browser.evaluate("s2fViewer.state.view") == view
    assert browser.console_errors() == []


def test_pdf_has_the_expected_pages(page, tmp_path):
    from skull2face.report.pdf import PDF_NAME, pdf_pages, write_pdf

    _, ctx = page
    pdf = write_pdf(tmp_path, ctx)
    assert pdf.name == PDF_NAME
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    # page 1: title, caveat, the three still views; then the metrics and the provenance (a new page)
    assert 2 <= pdf_pages(data) <= 4, pdf_pages(data)
    assert b"/MediaBox [0 0 595.91998 841.91998]" in data or b"/MediaBox [0 0 595.92 841.92]" in data  # A4


def test_print_page_has_still_views_and_no_script(page, tmp_path):
    from skull2face.report.pdf import view_pictures

    _, ctx = page
    views = view_pictures(ctx["scene"], tmp_path, px=120)
    assert len(views) == 3
    text = report.render_html({**ctx, "views": views}, for_print=True)
    assert "<script" not in text and text.index('class="statement"') < text.index("three-quarter")
    assert text.count("data:image/png;base64,") == 3


def test_scene_glb_reads_back_with_names_and_colours(page):
    _, ctx = page
    layers = scene3d.layers_from_files(ctx["scene"])
    assert [ly.name for ly in layers] == ["skull", "face", "truth"]
    glb = scene3d.scene_glb(layers, 5.0)
    assert glb[:4] == b"glTF"
    back = trimesh.load(trimesh.util.wrap_as_stream(glb), file_type="glb")
    assert set(back.geometry) == {"skull", "face", "truth"}
    truth = back.geometry["truth"]
    assert truth.visual.kind == "vertex" and len(np.unique(truth.visual.vertex_colors[:, :3], axis=0)) > 10
