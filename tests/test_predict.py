"""predict and demo as a user runs them."""

import json

import igl
import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from skull2face import samples
from skull2face.cli import main
from skull2face.stages.predict import PredictSettings, default_model_path, predict


@pytest.fixture(scope="module")
def ct_prediction(tmp_path_factory):
    out = tmp_path_factory.mktemp("pred")
    rec = predict(samples.path("headsq"), out, PredictSettings(method="tissue-depth"))
    return out, rec


def test_predict_from_ct_writes_meshes_in_ct_coordinates(ct_prediction):
    out, rec = ct_prediction
    for name in ("face.ply", "face.stl", "face.obj", "face_map.npz", "face_map.json", "skull_map.npz",
                 "skull_landmarks.json", "predict.png", "predict.json", "truth_skin.ply"):
        assert (out / name).is_file(), name
    face = trimesh.load(out / "face.ply", process=False)
    truth = trimesh.load(out / "truth_skin.ply", process=False)
    d = np.sqrt(igl.point_mesh_squared_distance(face.vertices, truth.vertices, truth.faces)[0])
    # the face lies on the head, in the CT's own millimetres
    assert np.median(d) < 6.0
    assert rec["input"]["kind"] == "ct" and len(rec["input"]["sha256"]) == 64
    assert rec["input"]["landmarks"] is None  # none given


def test_given_landmarks_are_recorded_with_their_hash(ct_prediction, tmp_path):
    import hashlib
    import shutil

    out, _ = ct_prediction
    skull = shutil.copy(out / "skull.ply", tmp_path / "skull.ply")
    lms = shutil.copy(out / "skull_landmarks.json", tmp_path / "my landmarks.json")
    before = (tmp_path / "my landmarks.json").read_bytes()
    rec = predict(skull, tmp_path / "o", PredictSettings(method="tissue-depth"), landmarks_path=lms, picture=False)
    assert rec["input"]["landmarks"] == {"path": str((tmp_path / "my landmarks.json").resolve()),
                                         "sha256": hashlib.sha256(before).hexdigest()}
    saved = json.loads((tmp_path / "o" / "predict.json").read_text(encoding="utf-8"))
    assert saved["input"]["landmarks"] == rec["input"]["landmarks"]
    assert (tmp_path / "my landmarks.json").read_bytes() == before


def test_face_glb_is_in_gltf_convention_metres_and_y_up(ct_prediction):
    out, rec = ct_prediction
    ply = trimesh.load(out / "face.ply", process=False)
    glb = trimesh.load(out / "face.glb", force="mesh", process=False)
    t = np.asarray(rec["glb"]["input_to_glb"])
    np.testing.assert_allclose(glb.vertices, trimesh.transform_points(ply.vertices, t), atol=1e-6)
    extent = glb.bounds[1] - glb.bounds[0]
    assert rec["glb"]["units"] == "m" and 0.1 < extent.max() < 0.4  # a head, in metres
    # +Y up: the CT's superior axis (LPS +z) maps near glTF +Y, and anterior (LPS -y) near +Z
    # (within the head's pitch in the scanner, here ~13 degrees)
    r = t[:3, :3] / np.linalg.norm(t[:3, 0])
    assert (r @ [0, 0, 1])[1] > 0.9 and (r @ [0, -1, 0])[2] > 0.9 and (r @ [1, 0, 0])[0] > 0.99


def test_rigid_motion_of_the_skull_moves_the_face_the_same_way(ct_prediction, tmp_path):
    out, _ = ct_prediction
    skull = trimesh.load(out / "skull.ply", process=False)
    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [20, -35, 50], degrees=True).as_matrix()
    T[:3, 3] = [40.0, -25.0, 120.0]
    moved = skull.copy()
    moved.apply_transform(T)
    moved.export(tmp_path / "moved_skull.ply")
    skull.export(tmp_path / "skull.ply")
    a = predict(tmp_path / "skull.ply", tmp_path / "a", PredictSettings(method="tissue-depth"), picture=False)
    b = predict(tmp_path / "moved_skull.ply", tmp_path / "b", PredictSettings(method="tissue-depth"), picture=False)
    fa = trimesh.load(tmp_path / "a" / "face.ply", process=False)
    fb = trimesh.load(tmp_path / "b" / "face.ply", process=False)
    fa.apply_transform(T)  # where the first face should be after the motion
    d = np.sqrt(igl.point_mesh_squared_distance(fb.vertices, fa.vertices, fa.faces)[0])
    assert np.median(d) < 0.5 and np.quantile(d, 0.9) < 2.0, (np.median(d), np.quantile(d, 0.9))
    assert a["pose"]["mode"] == b["pose"]["mode"] == "scan"


def test_bad_input_is_named(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["predict", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o"), "--method", "tissue-depth"]) == 2
    assert "notes.txt" in capsys.readouterr().err


@pytest.mark.skipif(not default_model_path().is_file(), reason="no bundled model in this checkout")
def test_default_model_predicts_after_install(tmp_path):
    rec = predict(samples.path("arothron_skull"), tmp_path, PredictSettings())
    # the default: the head model fitted with the bundled thickness prior; a whole head (the
    # skull has no mandible: said so)
    assert rec["method"] == "face-model" and rec["face"]["faces"] > 20000
    assert rec["method_info"]["dense"] == "prior" and len(rec["method_info"]["prior_heads"]) == 2
    assert any("no mandible" in line for line in rec["method_info"]["inferred_without_bone"])
    rec_gan = predict(samples.path("arothron_skull"), tmp_path / "gan", PredictSettings(method="skull2face"))
    # skull2face writes the same whole head, moved only as far as the model file's folds trust
    # its correction
    assert rec_gan["method"] == "skull2face" and rec_gan["face"]["whole_head"]
    assert rec_gan["face"]["faces"] == rec["face"]["faces"]
    gains = rec_gan["method_info"]["correction"]["gains"]
    assert all(0.0 <= g <= 1.0 for g in gains.values())
    if not any(gains.values()):  # no correction trusted: the face-model head itself, bit for bit
        a = trimesh.load(tmp_path / "face.ply", process=False)
        b = trimesh.load(tmp_path / "gan" / "face.ply", process=False)
        np.testing.assert_array_equal(a.vertices, b.vertices)
    assert default_model_path().stat().st_size < 20e6


@pytest.mark.skipif(not default_model_path().is_file(), reason="no bundled model in this checkout")
def test_face_model_reads_the_prior_beside_the_model_without_torch(tmp_path):
    import subprocess
    import sys

    from skull2face.stages.export import prior_sidecar

    assert prior_sidecar(default_model_path()).is_file()
    code = ("import sys, json; from skull2face.stages.predict import predict; from skull2face import samples; "
            f"r = predict(samples.path('arothron_skull'), {str(tmp_path / 'o')!r}, picture=False); "
            "print(json.dumps([r['model'], 'torch' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    model, torch_loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert model["prior_only"] and model["path"].endswith(".prior.npz") and not torch_loaded


@pytest.mark.skipif(not default_model_path().is_file(), reason="no bundled model in this checkout")
def test_skull2face_correction_moves_only_the_front_of_the_fitted_head(tmp_path):
    base = predict(samples.path("headsq"), tmp_path / "fit", PredictSettings(method="skull2face", correction_gain=0.0),
                   picture=False)
    full = predict(samples.path("headsq"), tmp_path / "full", PredictSettings(method="skull2face", correction_gain=1.0),
                   picture=False)
    assert base["method_info"]["correction"]["max_abs_mm"] == 0.0
    assert full["method_info"]["correction"]["gains_from"].startswith("--correction-gain 1")
    a = trimesh.load(tmp_path / "fit" / "face.ply", process=False)
    b = trimesh.load(tmp_path / "full" / "face.ply", process=False)
    assert np.array_equal(a.faces, b.faces) and b.is_watertight  # the same closed surface, moved
    frame = np.asarray(full["frame"]["matrix"])
    d = (b.vertices - a.vertices) @ frame[:3, :3].T  # in the head frame
    np.testing.assert_allclose(d[:, :2], 0.0, atol=1e-3)  # along the view axis only
    moved = np.abs(d[:, 2]) > 1e-3
    assert moved.any()
    head_a = a.vertices @ frame[:3, :3].T + frame[:3, 3]
    # the back of the head (behind the ears, which stick out into the frontal view) is never
    # seen from the front: it stays
    assert not moved[head_a[:, 2] < -130.0].any() and (head_a[:, 2] < -130.0).sum() > 500
    assert np.abs(d[:, 2]).max() <= full["method_info"]["correction"]["max_abs_mm"] + 1e-3


def test_demo_quick_end_to_end(tmp_path, capsys):
    assert main(["-q", "demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    for method in ("skull2face", "tissue-depth", "mean-face", "nearest-skull", "envelope", "face-model"):
        assert method in out
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text(encoding="utf-8"))
    page = (tmp_path / "demo" / "report" / "report.html").read_text(encoding="utf-8")
    assert "investigative lead" in page and "data:image/png;base64," in page
    assert 'id="s2f-viewer"' in page and len(page.encode()) < 15e6  # the 3D view, and the page stays small
    from skull2face.report.browser import find_browser

    if find_browser() is not None:
        assert (tmp_path / "demo" / "report" / "report.pdf").read_bytes().startswith(b"%PDF-")
    slicer = tmp_path / "demo" / "predict" / "skull2face" / "slicer"
    assert (slicer / "skull2face.mrml").is_file() and (slicer / "skull_landmarks.mrk.json").is_file()
    assert (tmp_path / "demo" / "predict" / "skull2face" / "face.glb").is_file()
    assert set(summary["rows"]) == {"skull2face", "tissue-depth", "mean-face", "nearest-skull", "envelope", "face-model"}
    # the headline face's range: plausible heads, its band scored against the true skin, both in the report
    drawn = json.loads((tmp_path / "demo" / "predict" / "face-model" / "predict.json").read_text())["samples"]
    assert drawn["n"] == 20 and (tmp_path / "demo" / "predict" / "face-model" / "uncertainty.ply").is_file()
    band = json.loads((tmp_path / "demo" / "evaluate" / "face-model" / "evaluate.json").read_text())["band"]
    assert 0.0 <= band["inside"] <= 1.0 and abs(band["inside"] + band["below"] + band["above"] - 1.0) < 1e-3
    assert "A range of plausible faces" in page and "lies inside the 5-95 % band" in page
    # the demo's run measured its fold, and its model file trusts no correction (its only fold
    # is the head it predicts): skull2face is the face-model head, bit for bit
    import torch

    demo = tmp_path / "demo"
    fold = json.loads((demo / "run" / "calibration.json").read_text(encoding="utf-8"))
    assert fold["format"] == "skull2face-calibration" and [f["head"] for f in fold["folds"]] == ["headsq"]
    cal = torch.load(demo / "run" / "model.pt", weights_only=True)["calibration"]
    assert cal["folds"] == [] and set(cal["gains"].values()) == {0.0}
    assert (demo / "run" / "model.prior.npz").is_file()
    a = trimesh.load(demo / "predict" / "skull2face" / "face.ply", process=False)
    b = trimesh.load(demo / "predict" / "face-model" / "face.ply", process=False)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    assert a.is_watertight
    assert summary["rows"]["skull2face"]["rmse_mm"] == summary["rows"]["face-model"]["rmse_mm"]
    # export with that fold: the gains are the fold's, clipped to [0, 1]
    from skull2face.stages.export import ExportSettings, make_bundle

    model = make_bundle(demo / "run", demo / "dataset", tmp_path / "m.pt",
                        ExportSettings(folds=[str(demo / "run" / "calibration.json")]))
    cal = torch.load(model, weights_only=True)["calibration"]
    assert [f["head"] for f in cal["folds"]] == ["headsq"] and all(0 <= g <= 1 for g in cal["gains"].values())
