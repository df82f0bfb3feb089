"""Outputs the tools of the field open: face.glb and the 3D Slicer bundle (scene, models, markups).

The markups file is checked against the constraints of Slicer's published schema
(Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json) for every field it
writes; the scene against the node tags and references Slicer's own scene files use.
"""

import json
import xml.etree.ElementTree as ET

import numpy as np
import trimesh

from skull2face.anatomy.landmark_set import LandmarkSet
from skull2face.io.slicer import SCENE_NAME, write_slicer_bundle

STATUS = {"undefined", "preview", "defined"}


def _numbers(value, n):
    return isinstance(value, list) and len(value) == n and all(isinstance(v, (int, float)) for v in value)


def check_markups(data):
    """The markups-schema-v1.0.3 constraints on the fields skull2face writes (raises AssertionError)."""
    assert {"@schema", "markups"} <= set(data) and isinstance(data["@schema"], str)
    assert data["@schema"].endswith("markups-schema-v1.0.3.json#")
    assert isinstance(data["markups"], list) and data["markups"]
    for m in data["markups"]:
        assert m["type"] in {"Fiducial", "Line", "Angle", "Curve", "ClosedCurve", "Plane", "ROI"}
        assert m.get("coordinateSystem", "LPS") in {"LPS", "RAS"}
        assert m.get("coordinateUnits", "mm") in {"mm", "um"}
        for key in ("locked", "fixedNumberOfControlPoints"):
            assert isinstance(m.get(key, False), bool)
        assert isinstance(m.get("labelFormat", ""), str)
        assert isinstance(m.get("measurements", []), list)
        for p in m["controlPoints"]:
            for key in ("id", "label", "description", "associatedNodeID"):
                assert isinstance(p.get(key, ""), str), key
            assert _numbers(p["position"], 3)
            assert _numbers(p.get("orientation", [0.0] * 9), 9)
            for key in ("selected", "locked", "visibility"):
                assert isinstance(p.get(key, True), bool)
            assert p.get("positionStatus", "defined") in STATUS


def _inputs():
    skull = trimesh.creation.icosphere(subdivisions=3, radius=80.0)
    face = trimesh.creation.icosphere(subdivisions=3, radius=92.0)
    truth = trimesh.creation.icosphere(subdivisions=3, radius=90.0)
    lms = LandmarkSet({"N": np.array([0.0, -80.0, 10.0]), "Pog": np.array([1.0, -70.0, -60.0])}, "LPS", "skull",
                      meta={"N": {"source": "detected", "note": "deepest notch"}})
    return skull, face, truth, lms


def test_slicer_bundle_files_scene_and_markups(tmp_path):
    skull, face, truth, lms = _inputs()
    scene = write_slicer_bundle(tmp_path / "slicer", skull, face, lms, truth)
    assert scene.name == SCENE_NAME
    folder = scene.parent
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["face.ply", "skull.ply", "truth_skin.ply", "skull_landmarks.mrk.json", SCENE_NAME])
    # the meshes read back as written (mm, same coordinates)
    for name, mesh in (("skull.ply", skull), ("face.ply", face), ("truth_skin.ply", truth)):
        back = trimesh.load(folder / name, process=False)
        assert np.allclose(back.vertices, mesh.vertices, atol=1e-4) and len(back.faces) == len(mesh.faces)
    # markups: schema constraints, LPS, the landmark names and positions, the notes
    data = json.loads((folder / "skull_landmarks.mrk.json").read_text(encoding="utf-8"))
    check_markups(data)
    m = data["markups"][0]
    assert m["type"] == "Fiducial" and m["coordinateSystem"] == "LPS" and m["coordinateUnits"] == "mm"
    got = {p["label"]: p["position"] for p in m["controlPoints"]}
    assert got == {"N": [0.0, -80.0, 10.0], "Pog": [1.0, -70.0, -60.0]}
    assert m["controlPoints"][0]["description"] == "deepest notch"
    # the scene: well-formed XML, every node's references resolve, every file exists
    root = ET.parse(scene).getroot()
    assert root.tag == "MRML"
    ids = {el.get("id"): el for el in root}
    assert len(ids) == len(root) == 4 * 3  # 3 models + 1 point list, 3 nodes each
    data_nodes = [el for el in root if el.tag in ("Model", "MarkupsFiducial")]
    assert [el.get("name") for el in data_nodes] == ["skull", "predicted face", "true skin (CT)", "skull landmarks"]
    for el in data_nodes:
        refs = dict(r.split(":") for r in el.get("references").strip(";").split(";"))
        display, storage = ids[refs["display"]], ids[refs["storage"]]
        assert display.tag == el.tag + "Display"
        assert storage.tag == ("ModelStorage" if el.tag == "Model" else "MarkupsJsonStorage")
        assert (folder / storage.get("fileName")).is_file()
        if el.tag == "Model":
            assert storage.get("coordinateSystem") == "LPS"
    truth_display = ids[dict(r.split(":") for r in data_nodes[2].get("references").strip(";").split(";"))["display"]]
    assert truth_display.get("visibility") == "false"


def test_slicer_scene_escapes_names(tmp_path):
    from skull2face.io.slicer import SceneModel, scene_mrml

    text = scene_mrml([SceneModel('a "b" <c> & d', "x.ply", (1.0, 0.0, 0.0))], [])
    root = ET.fromstring(text)
    assert root.find("Model").get("name") == 'a "b" <c> & d'


def test_face_glb_reads_back(tmp_path):
    from skull2face.io.meshes import save_mesh

    _, face, _, _ = _inputs()
    path = save_mesh(face, tmp_path / "face.glb")
    data = path.read_bytes()
    assert data[:4] == b"glTF" and int.from_bytes(data[4:8], "little") == 2  # glTF 2.0 binary
    back = trimesh.load(path, force="mesh", process=False)
    assert np.allclose(np.sort(back.vertices, axis=0), np.sort(face.vertices, axis=0), atol=1e-4)
    assert len(back.faces) == len(face.faces)
