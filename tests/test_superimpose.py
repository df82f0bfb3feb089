"""Craniofacial superimposition (issue 12): camera, solver, grade, photo input, the stage, the CLI.

The known answers on real data: a "photograph" of a bundled head's skin rendered in
perspective through a known camera (shaded PNG), with that head's own skin landmarks projected
into it; the head's own skull must recover the camera and be graded consistent, and the other
bundled head's skull must fit the same photo clearly worse and be graded inconsistent.
"""

import json

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.cli import main
from skull2face.errors import InputError
from skull2face.geometry.camera import Camera, look_at, outline, render, visible
from skull2face.io.photo import read_photo, read_photo_landmarks, write_photo_landmarks
from skull2face.superimposition.grade import CAVEAT, GRADES, grade, residual_sd_mm
from skull2face.superimposition.register import residuals, rotation_error_deg, solve_camera

cv2 = pytest.importorskip("cv2")


# --------------------------------------------------------------------------- camera

def test_projection_has_the_pinhole_answers():
    cam = Camera(1000.0, (640, 480))  # identity pose: world = camera coordinates
    assert cam.principal == (319.5, 239.5)  # pixel centres at integers
    uv = cam.project([[0, 0, 500], [50, -25, 500], [0, 0, -1]])
    np.testing.assert_allclose(uv[0], [319.5, 239.5])
    np.testing.assert_allclose(uv[1], [319.5 + 100, 239.5 - 50])
    assert np.all(np.isnan(uv[2]))  # behind the camera
    half = cam.scaled(0.5)  # the same point in the half-size image: (u + 0.5) / 2 - 0.5
    assert half.size == (320, 240)
    np.testing.assert_allclose(half.project([[50, -25, 500]])[0], [209.5, 94.5], atol=1e-9)
    assert Camera.from_json(json.loads(json.dumps(cam.to_json()))).to_json() == cam.to_json()


def test_look_at_puts_the_target_at_the_principal_point_upright():
    cam = look_at([0, -500, 0], [0, 0, 0], [0, 0, 1], 800.0, (200, 100))
    np.testing.assert_allclose(cam.project([[0, 0, 0]])[0], cam.principal, atol=1e-9)
    np.testing.assert_allclose(cam.centre, [0, -500, 0], atol=1e-9)
    above = cam.project([[0, 0, 10]])[0]
    assert above[1] < cam.principal[1]  # world up is image up (smaller row)


def test_render_of_a_sphere_matches_its_geometry():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=50.0)
    cam = look_at([0, 0, 400], [0, 0, 0], [0, 1, 0], 600.0, (301, 301))
    r = render(sphere, cam)
    assert r.depth[150, 150] == pytest.approx(350.0, abs=0.1)  # distance minus radius
    np.testing.assert_allclose(r.normal[150, 150], [0, 0, -1], atol=0.02)  # facing the camera
    # silhouette radius: f * tan(asin(R / D)) px
    expected = 600.0 * np.tan(np.arcsin(50.0 / 400.0))
    assert np.sqrt(r.mask.sum() / np.pi) == pytest.approx(expected, rel=0.01)
    edge = outline(r.mask)
    rows, cols = np.nonzero(edge)  # a one-pixel ring at the silhouette's radius
    radius = np.hypot(rows - 150, cols - 150)
    assert radius.min() > expected - 1.5 and radius.max() < expected + 0.5 and edge.sum() > 5 * expected
    seen = visible([[0, 0, 50], [0, 0, -50]], sphere, cam)
    assert seen.tolist() == [True, False]  # the front pole is seen, the back pole is hidden


# --------------------------------------------------------------------------- solver and grade

def _scene(n=9, seed=0):
    rng = np.random.default_rng(seed)
    pts = rng.normal(0, 40, (n, 3)) * [1.0, 1.2, 0.5]  # a face-sized cloud, mm
    cam = look_at([120, 80, 650], [0, 0, 0], [0, 1, 0], 2200.0, (1000, 1250))
    return pts, cam


@pytest.mark.parametrize("known", [False, True])
def test_solver_recovers_an_exact_camera(known):
    pts, cam = _scene()
    uv = cam.project(pts)
    info = {}
    got = solve_camera(pts, uv, cam.size, cam.focal_px if known else None, info=info)
    assert rotation_error_deg(got.rotation, cam.rotation) < 0.05
    assert got.focal_px == pytest.approx(cam.focal_px, rel=0.01)
    np.testing.assert_allclose(got.centre, cam.centre, atol=3.0)
    errs = residuals(got, dict(enumerate(pts)), dict(enumerate(uv)))
    assert max(e["px"] for e in errs.values()) < 0.05
    assert info["focal_known"] is known


def test_solver_is_robust_to_one_misplaced_landmark():
    pts, cam = _scene(n=10, seed=1)
    uv = cam.project(pts)
    uv[3] += [60.0, -40.0]  # one landmark ~72 px off (about 20 mm at the face)
    got = solve_camera(pts, uv, cam.size, cam.focal_px)
    errs = residuals(got, dict(enumerate(pts)), dict(enumerate(uv)))
    assert rotation_error_deg(got.rotation, cam.rotation) < 1.0
    assert errs[3]["px"] > 50  # the outlier stays visible in the table
    assert max(e["px"] for k, e in errs.items() if k != 3) < 8


def test_solver_refuses_too_few_points():
    pts, cam = _scene(n=3)
    with pytest.raises(ValueError, match="at least 4"):
        solve_camera(pts, cam.project(pts), cam.size)


def test_grade_thresholds_and_degrees_of_freedom():
    assert residual_sd_mm([3.0, 4.0], 3) == pytest.approx(5.0)  # sqrt(25 / (4 - 3))
    assert residual_sd_mm([1.0] * 3, 6) == float("inf")
    assert grade([1.0] * 6, focal_known=True)["grade"] == "strong support"  # SD sqrt(6/6) = 1
    assert grade([1.0] * 5, focal_known=False)["grade"] == "moderate support"  # too few pairs for strong
    assert grade([1.0] * 4, focal_known=False)["grade"] == "limited support"  # SD 2, 1 dof
    g = grade([5.0] * 6, focal_known=False)
    assert g["grade"] == GRADES[-1] and g["consistent"] is False
    assert g["caveat"] == CAVEAT and "never makes an identification" in CAVEAT
    assert "<= 3.5 mm" in g["rule"]


# --------------------------------------------------------------------------- photo input

def _png(path, w=200, h=300):
    """A synthetic photograph (`skull2face.superimposition.synthetic.photograph`) of a shaded ball."""
    from skull2face.superimposition.synthetic import photograph

    cam = look_at([0, 0, 600], [0, 0, 0], [0, 1, 0], 1.2 * max(w, h), (w, h))
    img = photograph(trimesh.creation.icosphere(subdivisions=3, radius=80.0), cam)
    assert cv2.imwrite(str(path), img[:, :, ::-1])
    return path


def _huge_png(path, w=30_000, h=30_000):
    """A small PNG whose IHDR declares ``w`` x ``h`` px (its CRC made right): decoding it would take GBs."""
    import struct
    import zlib

    assert cv2.imwrite(str(path), np.zeros((64, 64), np.uint8))
    data = bytearray(path.read_bytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", w, h)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_photo_landmarks_csv_and_json(tmp_path):
    csv = tmp_path / "lm.csv"
    csv.write_text("name,x,y\n# a comment\nn,10,20\nzy'_L,30.5,40\nleft zygion,1,2\n".replace("left zygion", "Zy R"),
                   encoding="utf-8")
    got = read_photo_landmarks(csv, (200, 300))
    assert sorted(got) == ["n", "zy'_L", "zy'_R"] and got["zy'_L"].tolist() == [30.5, 40.0]
    js = tmp_path / "lm.json"
    js.write_text(json.dumps({"landmarks": {"subnasale": [5, 6], "g'": [7, 8]}}), encoding="utf-8")
    assert read_photo_landmarks(js)["sn"].tolist() == [5.0, 6.0]
    js.write_text(json.dumps([{"name": "n", "x": 1, "y": 2}]), encoding="utf-8")
    assert read_photo_landmarks(js)["n"].tolist() == [1.0, 2.0]
    back = write_photo_landmarks(got, tmp_path / "again.csv")
    assert {k: v.tolist() for k, v in read_photo_landmarks(back).items()} == {k: v.tolist() for k, v in got.items()}


@pytest.mark.parametrize("text, words", [
    ("n,1,2\nnose tip,3,4\n", ["line 2", "'nose tip' is not a known landmark"]),
    ("n,1,2\nsn,abc,4\n", ["line 2: x is 'abc', not a number"]),
    ("n,1,2\nsn,250,4\n", ["line 2", "outside the 200 x 300 px photo"]),
    ("n,1,2\nn,3,4\n", ["line 2", "given twice"]),
    ("n,1\n", ["line 1", "expected 'name,x,y'"]),
    ("zy',1,2\n", ["paired landmark"]),
    ("", ["empty"]),
])
def test_bad_photo_landmarks_name_the_file_and_line(tmp_path, text, words):
    p = tmp_path / "bad.csv"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as e:
        read_photo_landmarks(p, (200, 300))
    msg = str(e.value)
    assert msg.startswith(str(p)) and "\n" not in msg
    for w in words:
        assert w in msg


def test_a_file_that_is_not_an_image_is_refused(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("not a picture", encoding="utf-8")
    with pytest.raises(InputError, match="not an image"):
        read_photo(fake)
    assert read_photo(_png(tmp_path / "ok.png")).shape == (300, 200, 3)


def test_a_synthetic_photograph_is_accepted(tmp_path):
    from skull2face.io.photo import MIN_NEIGHBOUR_CORRELATION, neighbour_correlation

    for name in ("ok.png", "ok.jpg"):
        img = read_photo(_png(tmp_path / name, 480, 600))
        assert img.shape == (600, 480, 3) and img.dtype == np.uint8
        assert neighbour_correlation(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)) > max(0.9, MIN_NEIGHBOUR_CORRELATION)


def _noise(path):
    rng = np.random.default_rng(0)
    assert cv2.imwrite(str(path), rng.integers(0, 256, (600, 480, 3), dtype=np.uint8))
    return path


def _grey16(path):
    ramp = np.linspace(0, 65535, 600 * 480).reshape(600, 480)  # smooth: only its depth is wrong
    assert cv2.imwrite(str(path), ramp.astype(np.uint16))
    return path


def _flat(path):
    assert cv2.imwrite(str(path), np.full((300, 200, 3), 128, np.uint8))
    return path


@pytest.mark.parametrize("make, name, words", [
    (_noise, "noise.png", ["random noise", "correlate r = 0.0"]),
    (_noise, "noise.jpg", ["random noise"]),
    (_grey16, "grey16.png", ["16-bit PNG", "8 bits per channel"]),
    (_grey16, "grey16.tif", ["16-bit TIFF"]),
    (_flat, "flat.png", ["flat"]),
    (lambda p: cv2.imwrite(str(p), np.zeros((40, 300, 3), np.uint8)) and p, "tiny.png", ["300 x 40 px", "too small"]),
])
def test_what_is_not_a_photograph_is_refused(tmp_path, make, name, words):
    path = make(tmp_path / name)
    before = path.read_bytes()
    with pytest.raises(InputError) as e:
        read_photo(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg
    for w in words:
        assert w in msg, msg
    assert path.read_bytes() == before


def test_a_huge_declared_size_is_refused_without_decoding(tmp_path, monkeypatch):
    from skull2face.io.photo import MAX_PIXELS, read_image_header

    path = _huge_png(tmp_path / "huge.png")
    head = read_image_header(path.read_bytes())
    assert (head.format, head.width, head.height, head.bits) == ("PNG", 30_000, 30_000, 8)
    assert head.width * head.height > MAX_PIXELS

    def no_decoding(*args, **kwargs):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    monkeypatch.setattr(cv2, "imread", no_decoding)
    with pytest.raises(InputError, match=r"huge.png: the PNG header declares 30000 x 30000 px \(900 megapixels\)"):
        read_photo(path)


# --------------------------------------------------------------------------- real heads

@pytest.fixture(scope="module")
def heads(real_ct_surfaces, tmp_path_factory):
    """Both bundled heads: skull, skin, their detected landmarks, and a frontal photo of the skin."""
    from skull2face.anatomy.locate import PoseSettings, locate
    from skull2face.geometry.frame import head_frame
    from skull2face.io.landmarks import write_landmarks
    from skull2face.io.meshes import save_mesh
    from skull2face.superimposition.synthetic import photo_landmarks, photograph, portrait_camera

    folder = tmp_path_factory.mktemp("superimpose")
    out = {}
    for name in ("headsq", "cranium"):
        surf = real_ct_surfaces[name][1]
        h = {}
        for kind, mesh, surface in (("skull", surf.skull, "skull"), ("skin", surf.skin, "face")):
            path = save_mesh(mesh, folder / f"{name}_{kind}.ply")
            lms, _ = locate(mesh, path, surface, None, PoseSettings(pose="lps"))
            h[kind], h[f"{kind}_path"], h[f"{kind}_lms"] = mesh, path, lms
            h[f"{kind}_lms_path"] = write_landmarks(lms, folder / f"{name}_{kind}_lms.json")
        cam = portrait_camera(head_frame(h["skin_lms"].points, "face").matrix, 0.0, 0.0)
        img = photograph(h["skin"], cam)
        h["photo"] = folder / f"{name}_photo.png"
        assert cv2.imwrite(str(h["photo"]), img[:, :, ::-1])
        h["photo_lms"] = write_photo_landmarks(photo_landmarks(h["skin"], h["skin_lms"].points, cam),
                                               folder / f"{name}_photo.csv")
        h["camera"] = cam
        out[name] = h
    return out


def _run(heads, skull, photo, out, *extra):
    return main(["superimpose", str(heads[skull]["skull_path"]), str(heads[photo]["photo"]), "--out", str(out),
                 "--photo-landmarks", str(heads[photo]["photo_lms"]), "--landmarks",
                 str(heads[skull]["skull_lms_path"]), *extra])


def test_own_skull_recovers_the_camera_and_is_consistent(heads, tmp_path, capsys):
    out = tmp_path / "own"
    assert _run(heads, "headsq", "headsq", out) == 0
    printed = capsys.readouterr().out
    rec = json.loads((out / "superimpose.json").read_text(encoding="utf-8"))
    cam = Camera.from_json(rec["camera"])
    truth = heads["headsq"]["camera"]
    # Rotation within 8 degrees: the soft-tissue points are the skull's landmarks + mean
    # thickness, 3-12 mm from the true skin landmarks, and 5 pairs leave the pose soft.
    assert rotation_error_deg(cam.rotation, truth.rotation) < 8.0
    assert max(r["error_px"] for r in rec["landmarks"].values()) < 6.0  # about 1.5 mm at the face
    # the scale at the face is well determined even where focal length and distance are not
    assert rec["camera"]["mm_per_px_at_face"] == pytest.approx(600.0 / 2400.0, rel=0.1)
    assert rec["conclusion"]["consistent"] and rec["conclusion"]["pairs"] == 5
    assert rec["conclusion"]["residual_sd_mm"] < 1.5
    assert sorted(rec["landmarks"]) == sorted(["g'", "n", "sn", "zy'_L", "zy'_R"])
    assert {"en_L", "al_R", "t_L"} <= set(rec["unused_photo_landmarks"])
    for key in ("skull", "photo", "photo_landmarks", "skull_landmarks"):
        assert len(rec["inputs"][key]["sha256"]) == 64
    assert rec["settings"]["focal_px"] is None and CAVEAT in printed
    assert rec["conclusion"]["grade"].upper() in printed
    for name in ("overlay.png", "side_by_side.png", "face.ply", "landmarks.csv", "skull_landmarks.json"):
        assert (out / name).stat().st_size > 0, name
    assert read_photo(out / "overlay.png").shape[2] == 3
    from skull2face.report.superimpose import superimposition_html

    section = superimposition_html(rec, out)
    assert rec["conclusion"]["grade"] in section and "never makes an identification" in section
    assert section.count("data:image/png;base64,") == 2 and section.count("<tr>") == 6


@pytest.mark.parametrize("photo", ["headsq", "cranium"])
def test_the_other_skull_fits_clearly_worse(heads, tmp_path, photo):
    from skull2face.stages.superimpose import SuperimposeSettings, superimpose

    settings = SuperimposeSettings(face=False, picture=False)
    sd = {}
    for skull in heads:
        rec = superimpose(heads[skull]["skull_path"], heads[photo]["photo"], tmp_path / skull,
                          heads[photo]["photo_lms"], heads[skull]["skull_lms_path"], settings)
        sd[skull] = rec["conclusion"]
    other = next(k for k in heads if k != photo)
    assert sd[photo]["consistent"] and not sd[other]["consistent"]
    assert sd[other]["residual_sd_mm"] > 1.25 * sd[photo]["residual_sd_mm"]


def _one_line_exit_2(rc, capsys, *words):
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_bad_input_one_line_exit_2(heads, tmp_path, capsys):
    h = heads["headsq"]
    skull, lms = str(h["skull_path"]), str(h["skull_lms_path"])
    few = tmp_path / "few.csv"
    few.write_text("g',1,2\nn,3,4\nsn,5,6\n", encoding="utf-8")
    rc = main(["superimpose", skull, str(h["photo"]), "--out", str(tmp_path / "o"), "--photo-landmarks", str(few),
               "--landmarks", lms])
    _one_line_exit_2(rc, capsys, str(few), "only 3 photo landmark(s)", "at least 4")
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("g',1,2\nchin,3,4\n", encoding="utf-8")
    rc = main(["superimpose", skull, str(h["photo"]), "--out", str(tmp_path / "o"), "--photo-landmarks",
               str(unknown)])
    _one_line_exit_2(rc, capsys, str(unknown), "'chin' is not a known landmark")
    fake = tmp_path / "fake.jpg"
    fake.write_bytes(b"\x00\x01 not a jpeg")
    rc = main(["superimpose", skull, str(fake), "--out", str(tmp_path / "o"), "--photo-landmarks",
               str(h["photo_lms"])])
    _one_line_exit_2(rc, capsys, str(fake), "not an image")
    rc = main(["superimpose", skull, str(h["photo"]), "--out", str(tmp_path / "o")])
    _one_line_exit_2(rc, capsys, str(h["photo"]), "--photo-landmarks")
    assert not (tmp_path / "o" / "superimpose.json").exists()


# --------------------------------------------------------------------------- the evidence is kept

def _digest(folder):
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _names(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def inputs(heads, tmp_path):
    """The headsq inputs copied into one folder as a user keeps them (the photo's landmarks as landmarks.csv)."""
    import shutil

    h = heads["headsq"]
    d = tmp_path / "case"
    d.mkdir()
    files = {"skull": d / "skull.ply", "photo": d / "photo.png", "photo_lms": d / "landmarks.csv",
             "skull_lms": d / "skull_landmarks.json"}
    for key, src in (("skull", h["skull_path"]), ("photo", h["photo"]), ("photo_lms", h["photo_lms"]),
                     ("skull_lms", h["skull_lms_path"])):
        shutil.copy(src, files[key])
    return files


def _argv(files, out, *extra):
    return ["superimpose", str(files["skull"]), str(files["photo"]), "--out", str(out), "--photo-landmarks",
            str(files["photo_lms"]), "--landmarks", str(files["skull_lms"]), *extra]


def _one_run(out, rec):
    """``out`` holds exactly the files its superimpose.json names, and nothing beside it is left."""
    assert _names(out) == sorted([*rec["outputs"].values(), "superimpose.json"])
    assert _names(out.parent) == sorted(p.name for p in out.parent.iterdir() if not p.name.startswith("."))


def test_out_in_the_inputs_folder_is_refused_and_the_inputs_stay(inputs, capsys):
    folder = inputs["skull"].parent
    before = _digest(folder)
    rc = main(_argv(inputs, folder, "--no-face", "--no-picture"))
    _one_line_exit_2(rc, capsys, "is an input", "would overwrite")
    assert _digest(folder) == before and _names(folder.parent) == ["case"]


def test_inputs_are_recorded_with_their_own_hashes(inputs, tmp_path, capsys):
    import hashlib

    before = _digest(inputs["skull"].parent)
    out = tmp_path / "case" / "result"  # beside the inputs: adds a folder, overwrites nothing
    assert main(_argv(inputs, out, "--no-face", "--no-picture")) == 0
    rec = json.loads((out / "superimpose.json").read_text(encoding="utf-8"))
    for key, name in (("skull", "skull"), ("photo", "photo"), ("photo_landmarks", "photo_lms"),
                      ("skull_landmarks", "skull_lms")):
        assert rec["inputs"][key]["path"] == str(inputs[name].resolve())
        assert rec["inputs"][key]["sha256"] == hashlib.sha256(inputs[name].read_bytes()).hexdigest(), key
    assert {k: v for k, v in _digest(inputs["skull"].parent).items() if not k.startswith("result")} == before
    _one_run(out, rec)


def test_a_refused_run_leaves_nothing_and_the_earlier_run_whole(inputs, tmp_path, capsys):
    few = tmp_path / "few.csv"
    few.write_text("g',1,2\nn,3,4\nsn,5,6\n", encoding="utf-8")
    out = tmp_path / "o"
    rc = main(_argv({**inputs, "photo_lms": few}, out))  # refused after the skull was read and located
    _one_line_exit_2(rc, capsys, "only 3 photo landmark(s)")
    assert not out.exists() and _names(tmp_path) == ["case", "few.csv"]
    assert main(_argv(inputs, out, "--no-face", "--no-picture")) == 0
    earlier = _digest(out)
    rc = main(_argv({**inputs, "photo_lms": few}, out))
    _one_line_exit_2(rc, capsys, "only 3 photo landmark(s)")
    assert _digest(out) == earlier and _names(tmp_path) == ["case", "few.csv", "o"]


def test_a_rerun_replaces_the_earlier_run_never_mixes(inputs, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(_argv(inputs, out)) == 0
    assert {"face.ply", "overlay.png", "side_by_side.png"} <= set(_names(out))
    assert main(_argv(inputs, out, "--no-face", "--no-picture")) == 0
    rec = json.loads((out / "superimpose.json").read_text(encoding="utf-8"))
    assert _names(out) == ["landmarks.csv", "skull_landmarks.json", "superimpose.json"]
    _one_run(out, rec)
    assert _names(tmp_path) == ["case", "o"]


def test_a_second_run_into_a_folder_a_live_run_holds_is_refused(inputs, tmp_path, capsys):
    from skull2face.io.run_folder import run_folder

    out = tmp_path / "o"
    with run_folder(out, "superimpose") as first:  # the first run, alive: it holds the folder
        rc = main(_argv(inputs, out, "--no-face", "--no-picture"))
        _one_line_exit_2(rc, capsys, str(out), "another skull2face run is writing this folder")
        (first / "superimpose.json").write_text("{}", encoding="utf-8")
        (first / "landmarks.csv").write_text("the first run's\n", encoding="utf-8")
    assert _names(out) == ["landmarks.csv", "superimpose.json"]  # the first run's result, whole
    assert (out / "landmarks.csv").read_text(encoding="utf-8") == "the first run's\n"
    assert _names(tmp_path) == ["case", "o"]


def test_lean_build_and_a_population_table_reach_the_soft_tissue_points(inputs, tmp_path, capsys):
    """--build lean moves every soft-tissue point in by its row's SD; --thickness-table is hashed."""
    from skull2face.anatomy.names import BONE_TO_SKIN
    from skull2face.anatomy.tissue import thickness_for

    assert main(_argv(inputs, tmp_path / "avg", "--no-face", "--no-picture")) == 0
    table = tmp_path / "table.csv"
    table.write_bytes(samples.path("tissue").read_bytes())  # the bundled values, as a user's own file
    assert main(_argv(inputs, tmp_path / "lean", "--no-face", "--no-picture", "--build", "lean",
                      "--thickness-table", str(table))) == 0
    avg, lean = (json.loads((tmp_path / d / "superimpose.json").read_text(encoding="utf-8")) for d in ("avg", "lean"))
    assert avg["tissue"]["build"] == "average" and avg["tissue"]["path"] is None
    assert lean["tissue"]["build"] == "lean" and lean["tissue"]["path"] == str(table.resolve())
    assert lean["inputs"]["thickness_table"]["sha256"] == lean["tissue"]["sha256"]
    bone_of = {v: k for k, v in BONE_TO_SKIN.items()}
    for k, row in avg["landmarks"].items():
        step = np.subtract(row["soft_tissue_point_mm"], lean["landmarks"][k]["soft_tissue_point_mm"])
        assert np.linalg.norm(step) == pytest.approx(thickness_for(bone_of[k]).sd_mm, abs=2e-3), k
