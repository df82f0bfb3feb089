"""The landmarks / render / depth2mesh stages as a user runs them on a bundled real CT."""

import json

import igl
import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.cli import main
from skull2face.geometry.depthmap import load_depthmap
from skull2face.io.landmarks import read_landmarks, write_landmarks
from skull2face.anatomy.landmark_set import LandmarkSet


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    out = tmp_path_factory.mktemp("extract")
    assert main(["-q", "extract", str(samples.path("headsq")), "--out", str(out), "--no-picture"]) == 0
    return out


@pytest.fixture(scope="module")
def rendered(extracted, tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    assert main(["-q", "render", str(extracted / "skull.ply"), str(extracted / "skin.ply"), "--out", str(out)]) == 0
    return out


def test_render_writes_maps_specs_landmarks_and_picture(rendered):
    names = {p.name for p in rendered.iterdir()}
    for surface in ("skull", "face"):
        assert {f"{surface}.npz", f"{surface}.json", f"{surface}.png", f"{surface}_landmarks.json"} <= names
    assert {"frame.json", "render.json", "render.png"} <= names
    rec = json.loads((rendered / "render.json").read_text(encoding="utf-8"))
    assert rec["frame_from"] == "skull"
    frame = np.array(json.loads((rendered / "frame.json").read_text(encoding="utf-8"))["matrix"])
    # one frame for both maps: the skull's
    for surface in ("skull", "face"):
        spec = load_depthmap(rendered / f"{surface}.npz").spec
        np.testing.assert_allclose(spec.frame, frame)
        assert spec.size == (256, 256) and spec.mm_per_px == 1.0
    # the face lies in front of the skull wherever both are seen (soft tissue > 0)
    skull, face = load_depthmap(rendered / "skull.npz"), load_depthmap(rendered / "face.npz")
    both = skull.mask & face.mask
    assert np.median(face.height[both] - skull.height[both]) > 2.0


def test_depth2mesh_returns_onto_the_original_mesh(rendered, extracted, tmp_path):
    out = tmp_path / "face_back.ply"
    assert main(["-q", "depth2mesh", str(rendered / "face.npz"), "--out", str(out)]) == 0
    back = trimesh.load(out, process=False)
    skin = trimesh.load(extracted / "skin.ply", process=False)
    d_v = np.sqrt(igl.point_mesh_squared_distance(back.vertices, skin.vertices, skin.faces)[0])
    d_c = np.sqrt(igl.point_mesh_squared_distance(back.triangles_center, skin.vertices, skin.faces)[0])
    assert d_v.max() < 1e-3  # vertices are ray hits: on the surface
    assert np.quantile(d_c, 0.99) < 1.0  # triangles stay within one pixel (1 mm)
    assert (tmp_path / "face_back.ply.json").is_file()


def test_given_landmarks_win(extracted, tmp_path, capsys):
    given = LandmarkSet(points={"N": np.array([100.0, -170.0, -20.0])}, surface="skull")
    write_landmarks(given, tmp_path / "given.json")
    out = tmp_path / "lm.json"
    assert main(["landmarks", str(extracted / "skull.ply"), "--landmarks", str(tmp_path / "given.json"),
                 "--out", str(out)]) == 0
    lms = read_landmarks(out)
    np.testing.assert_array_equal(lms["N"], [100.0, -170.0, -20.0])
    assert lms.meta["N"]["source"] == "given"
    assert all(m["source"] in ("detected", "missing") for k, m in lms.meta.items() if k != "N")
    assert "given" in capsys.readouterr().out


def test_surface_must_be_known(extracted, tmp_path, capsys):
    import shutil

    mesh = tmp_path / "scan.ply"
    shutil.copy(extracted / "skull.ply", mesh)
    assert main(["landmarks", str(mesh)]) == 2
    assert "scan.ply: cannot tell" in capsys.readouterr().err
