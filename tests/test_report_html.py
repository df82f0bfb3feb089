"""The HTML report: self-contained, every number and picture on it, the statement prominent."""

import base64
import re

import numpy as np
import pytest

from skull2face.report import html as report
from skull2face.report.browser import find_browser


def _png(path, colour, size=(40, 60)):
    from PIL import Image

    img = np.zeros((*size, 3), np.uint8)
    img[...] = colour
    img[5:15, 5:25] = (255 - np.asarray(colour)).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


METRICS = {
    "skull2face": {"rmse_mm": 2.345, "mean_mm": 1.876, "median_mm": 1.5, "p95_mm": 4.4, "max_mm": 9.1,
                   "share_within_1mm": 0.31, "share_within_2mm": 0.62, "share_within_2.5mm": 0.71,
                   "signed_mean_mm": 0.2},
    "tissue-depth": {"rmse_mm": 3.9, "mean_mm": 2.95, "median_mm": 2.4, "p95_mm": 7.75, "max_mm": 8.2,
                     "share_within_1mm": 0.22, "share_within_2mm": 0.43, "share_within_2.5mm": 0.52},
    "mean-face": {"rmse_mm": 5.1, "mean_mm": 4.0, "median_mm": 3.3, "p95_mm": 10.2, "max_mm": 20.5,
                  "share_within_1mm": 0.15, "share_within_2mm": 0.33, "share_within_2.5mm": 0.40},
    "nearest-skull": {"rmse_mm": 4.2, "mean_mm": 3.1, "median_mm": None, "p95_mm": 8.8, "max_mm": 15.0,
                      "share_within_1mm": 0.2, "share_within_2mm": 0.4, "share_within_2.5mm": 0.5},
}


@pytest.fixture()
def page(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    colours = iter([(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200),
                    (200, 30, 200), (120, 120, 120), (90, 40, 10), (10, 90, 40), (40, 10, 90)])
    methods = {}
    for name, m in METRICS.items():
        methods[name] = {"metrics": m, "picture": _png(pics / f"{name}_face.png", next(colours)),
                         "heatmap": _png(pics / f"{name}_heat.png", next(colours)),
                         "summary": f"summary of {name} <b>not bold</b>"}
    context = {
        "title": "Case <17> & friends",
        "subject": "headsq",
        "input_picture": _png(pics / "skull.png", (250, 250, 240)),
        "truth_picture": _png(pics / "truth.png", (240, 200, 180)),
        "methods": methods,
        "settings": {"size": 256, "schedule": "8:2,16:2", "note": "<script>alert(1)</script>"},
        "hashes": {"test CT": "ab" * 32, "model": {"sha256": "cd" * 32}},
        "region": {"forehead_mm": 30},
    }
    path = report.write_report(tmp_path / "out", context)
    return path, context


def test_page_holds_every_number_picture_and_the_statement(page):
    path, context = page
    assert path.name == "report.html" and path.is_file()
    text = path.read_text(encoding="utf-8")
    # the metrics, formatted: mm to two decimals, shares in %
    for name, m in METRICS.items():
        assert f">{name}<" in text
        for key in ("rmse_mm", "mean_mm", "p95_mm", "max_mm"):
            assert f">{m[key]:.2f}<" in text
        for key in ("share_within_1mm", "share_within_2mm", "share_within_2.5mm"):
            assert f">{100 * m[key]:.0f}<" in text
    assert "&ndash;" in text  # a missing value shows as a dash
    # the best per column is highlighted: lowest RMSE / max, highest share within 2.5 mm
    assert '<td class="best">2.35</td>' in text
    assert '<td class="best">8.20</td>' in text  # tissue-depth has the smallest max
    assert '<td class="best">71</td>' in text
    # every picture is embedded, byte for byte, as a data URI
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    files = [context["input_picture"], context["truth_picture"]]
    files += [e[k] for e in context["methods"].values() for k in ("picture", "heatmap")]
    embedded = {base64.b64decode(u) for u in uris}
    for f in files:
        assert f.read_bytes() in embedded, f
    assert len(uris) == len(files)
    # the statement, prominently (before the pictures), and what the errors mean
    assert report.STATEMENT.split(".")[0] in text
    assert text.index('class="statement"') < text.index("<img")
    assert "investigative lead, not an identification" in text.lower()
    assert "millimetres" in text
    # hashes and settings
    assert "ab" * 32 in text and "cd" * 32 in text
    assert "&quot;schedule&quot;: &quot;8:2,16:2&quot;" in text


def test_page_is_self_contained_and_escaped(page):
    path, _ = page
    text = path.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text
    assert "<script" not in text.lower()  # the settings' script tag is escaped text
    assert "&lt;script&gt;" in text
    assert "<link" not in text.lower() and "@import" not in text and "url(" not in text
    for src in re.findall(r'src="([^"]*)"', text):
        assert src.startswith("data:image/")
    assert "Case &lt;17&gt; &amp; friends" in text
    assert "<b>not bold</b>" not in text


def test_missing_pictures_show_a_placeholder(tmp_path):
    path = report.write_report(tmp_path, {"title": "t", "input_picture": tmp_path / "nope.png",
                                          "methods": {"skull2face": {"metrics": {"rmse_mm": 1.0}}}})
    text = path.read_text(encoding="utf-8")
    assert "picture not available" in text and "nope.png" in text
    # a single method has nothing to be best against
    assert 'class="best"' not in text


def test_screenshot_renders_the_page(page, tmp_path):
    path, _ = page
    if find_browser() is None:
        pytest.skip("no Chromium-family browser on PATH (.ci/run installs Debian's chromium when root with apt-get)")
    from PIL import Image

    png = tmp_path / "shot.png"
    assert report.screenshot(path, png, width=900, height=1200)
    img = np.asarray(Image.open(png).convert("RGB")).astype(float)
    assert img.shape[:2] == (1200, 900)
    # not blank: text, the red statement box and the pictures make it far from uniform
    assert img.std() > 20
    red = (img[..., 0] > 180) & (img[..., 1] < 80) & (img[..., 2] < 80)
    assert red.sum() > 500  # the statement's border


def test_provenance_reads_as_tables_raw_json_collapsed(tmp_path):
    from skull2face.anatomy.tissue import load_table

    regions = {"nose": {"area_mm2": 1234.0, "rmse_mm": 1.234, "mean_mm": 1.0, "signed_mean_mm": -0.5,
                        "p95_mm": 2.5, "share_within_2.5mm": 0.875}}
    ctx = {
        "methods": {"skull2face": {"metrics": {"rmse_mm": 1.5, "regions": regions},
                                   "heatmap": _png(tmp_path / "heat.png", (10, 200, 10))}},
        "settings": {"demo": {"n_paired": 60, "mm_per_px": 1.0}, "train": {"schedule": "8:2"}},
        "region": {"definition": "front of the face", "bounds_head_mm": {"y_max": 40.0, "y_max_rule": "n_y + 40"},
                   "subregions": {"nose": "|x| <= 21"}, "landmarks_missing": ["me"]},
        "model_card": {"file": "model.pt", "sha256": "ef" * 32, "trained": {"epochs": 13},
                       "training_data": {"real heads among them": "cranium"}, "validation": {"val_mae_mm": 2.5},
                       "settings": {"lr": 0.0002}},
        "tissue": (load_table(), "Hona & Stephan (2024)"),
    }
    text = report.render_html(ctx)
    # settings in words, one table per group; the raw JSON only inside a closed <details>
    assert '<td class="name">n paired</td><td class="name">60</td>' in text
    assert "<h3>train</h3>" in text and '<td class="name">8:2</td>' in text
    for pre in re.finditer(r"<pre>", text):
        opened = text.rfind("<details>", 0, pre.start())
        assert opened >= 0 and text.rfind("</details>", 0, pre.start()) < opened
    assert "<details open" not in text
    # the region in words, with its rules; per-region errors beside the heat map
    assert "40 mm  (n_y + 40)" in text and "|x| &lt;= 21" in text
    row = re.search(r'<div class="heatrow">.*?</div></div>', text, re.S).group(0)
    assert "<img" in row and ">nose<" in row and ">12<" in row and ">1.23<" in row and ">88<" in row
    # model card and tissue table
    assert "ef" * 32 in text and ">13<" in text and "cranium" in text and ">2.5<" in text
    assert "Hona &amp; Stephan (2024)" in text and text.count('<tr><td class="name">') > 20
    # pictures enlarge on click without a script
    assert 'class="zoom"' in text and "<script" not in text


# --- which method leads: the headline picture and the 3D view -----------------------------------

def _predict_folder(root, method, face, colour):
    """A fake ``predict/<method>/`` folder: predict.json, skull.ply, face.ply and predict.png."""
    import json

    import trimesh

    d = root / "predict" / method
    d.mkdir(parents=True)
    skull = trimesh.creation.icosphere(subdivisions=2, radius=80.0)
    skull.export(d / "skull.ply")
    face.export(d / "face.ply")
    _png(d / "predict.png", colour)
    rec = {"stage": "predict", "method": method,
           "input": {"path": str(d / "skull.ply"), "sha256": "ab" * 32, "kind": "mesh"},
           "face": {"vertices": len(face.vertices), "faces": len(face.faces)}, "timings": {"total_s": 1.5},
           "frame": None, "truth": None}
    (d / "predict.json").write_text(json.dumps(rec), encoding="utf-8")
    ev = root / "evaluate" / method
    ev.mkdir(parents=True)
    metrics = {"rmse_mm": 2.0 if method == "face-model" else 3.25, "mean_mm": 1.5}
    (ev / "evaluate.json").write_text(json.dumps({"stage": "evaluate", "truth_to_prediction": metrics,
                                                  "inputs": {"prediction": {"path": str(d / "face.ply")}}}),
                                      encoding="utf-8")
    return d


@pytest.fixture()
def two_methods(tmp_path):
    """A run folder with face-model (a whole head: a closed sphere) and skull2face (a front shell)."""
    import trimesh

    head = trimesh.creation.icosphere(subdivisions=2, radius=90.0)
    keep = head.vertices[:, 1] < -30.0  # LPS anterior
    shell = head.submesh([np.flatnonzero(keep[head.faces].all(axis=1))], append=True)
    run = tmp_path / "run"
    dirs = {"face-model": _predict_folder(run, "face-model", head, (20, 160, 20)),
            "skull2face": _predict_folder(run, "skull2face", shell, (160, 20, 20))}
    return run, dirs


def _headline(text):
    """(bytes of the first picture, the 3D view's face layer label, the face node's extent along y in mm)."""
    import io
    import json

    import trimesh

    first = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text).group(1)
    meta = json.loads(re.search(r'id="s2f-scene-meta">(.*?)</script>', text, re.S).group(1))
    label = next(ly["label"] for ly in meta["layers"] if ly["name"] == "face")
    glb = base64.b64decode(re.search(r'id="s2f-scene-glb">([A-Za-z0-9+/=]+)</script>', text).group(1))
    scene = trimesh.load(io.BytesIO(glb), file_type="glb")
    return base64.b64decode(first), label, float(np.ptp(scene.geometry["face"].vertices[:, 1]))


def test_report_leads_with_predicts_default_method(two_methods):
    from skull2face.report.collect import context_from_dirs
    from skull2face.stages.predict import PredictSettings

    run, dirs = two_methods
    default = PredictSettings().method
    assert default == "face-model"  # what this test's folders are built around
    ctx = context_from_dirs([run], default_method=default)
    assert ctx["main_method"] == "face-model" and ctx["scene"]["face"] == str(dirs["face-model"] / "face.ply")
    assert ctx["scene"]["method"] == "face-model" and "default" in ctx["main_method_why"]
    assert ctx["input_picture"] is None  # no other method's figure beside the headline
    text = report.render_html(ctx)
    picture, label, depth = _headline(text)
    assert picture == (dirs["face-model"] / "predict.png").read_bytes()
    assert label == "predicted face (face-model)"
    assert depth == pytest.approx(180.0, abs=1.0)  # the whole head, front to back
    said = re.search(r'<p class="explain" id="headline-method">(.*?)</p>', text).group(1)
    assert "<strong>face-model</strong>" in said and "predict&#x27;s default method" in said
    # the table keeps every method, the headline's row bold
    assert '<tr class="main"><td class="name">face-model</td><td class="best">2.00</td>' in text
    assert '<td class="name">skull2face</td><td>3.25</td>' in text
    assert (dirs["skull2face"] / "predict.png").read_bytes() in {
        base64.b64decode(u) for u in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)}


def test_report_method_chosen_or_single_folder(two_methods, tmp_path):
    from skull2face.report.collect import context_from_dirs
    from skull2face.stages.report import ReportSettings, report as report_stage

    run, dirs = two_methods
    # --method skull2face: its face, a front shell (less than the head's depth)
    rec = report_stage([run], tmp_path / "out", ReportSettings(method="skull2face"))
    text = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    picture, label, depth = _headline(text)
    assert picture == (dirs["skull2face"] / "predict.png").read_bytes()
    assert label == "predicted face (skull2face)" and depth < 90.0
    assert "<strong>skull2face</strong> (the method asked for)" in text
    assert set(rec["rows"]) == {"face-model", "skull2face"}
    # the stage without --method: predict's default
    report_stage([run], tmp_path / "out2", ReportSettings())
    picture, label, _ = _headline((tmp_path / "out2" / "report.html").read_text(encoding="utf-8"))
    assert picture == (dirs["face-model"] / "predict.png").read_bytes() and label == "predicted face (face-model)"
    # one predict folder: its method leads, whatever the default
    ctx = context_from_dirs([dirs["skull2face"]], default_method="face-model")
    assert ctx["main_method"] == "skull2face" and ctx["scene"]["face"] == str(dirs["skull2face"] / "face.ply")
    assert ctx["main_method_why"] == "the only method predicted"


def test_report_refuses_a_method_without_a_predict_folder(two_methods, tmp_path, capsys):
    from skull2face.cli import main
    from skull2face.errors import InputError
    from skull2face.report.collect import context_from_dirs

    run, dirs = two_methods
    with pytest.raises(InputError, match="--method envelope: no predict folder"):
        context_from_dirs([run], method="envelope")
    with pytest.raises(InputError, match=r"predictions of: skull2face\)$"):
        context_from_dirs([dirs["skull2face"]], method="face-model")
    capsys.readouterr()
    assert main(["-q", "report", str(run), "--out", str(tmp_path / "out"), "--method", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("skull2face report: error: --method nope: no predict folder")
    assert err.endswith("(they hold predictions of: skull2face, face-model)")
    assert not (tmp_path / "out" / "report.html").exists()


def test_report_of_an_unknown_skull_speaks_of_no_truth(two_methods):
    import shutil

    from skull2face.report.collect import context_from_dirs

    run, dirs = two_methods
    shutil.rmtree(run / "evaluate")  # a user's skull: predictions, no true skin
    text = report.render_html(context_from_dirs([run]))
    assert "No true skin is known for this skull" in text
    assert "true skin of this test head" not in text and "Accuracy against the true skin" not in text


def test_setting_keys_read_as_words():
    from skull2face.report.provenance import words

    assert words("val_within_2.5mm") == "val within 2.5mm"  # a decimal point stays one
    assert words("train.lr") == "train: lr" and words("mm_per_px") == "mm per px"


def test_tissue_table_says_stand_in_once():
    from skull2face.anatomy.tissue import load_table
    from skull2face.report.provenance import tissue_html

    text = tissue_html(load_table(), "source")
    assert "stand-in: subspinale" in text and "stand-in: stand-in" not in text
