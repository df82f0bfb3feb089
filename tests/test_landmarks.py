"""Landmark file I/O: every format, RAS -> LPS, round trips and the errors users see."""

import json

import numpy as np
import pytest

from skull2face.errors import InputError
from skull2face.io.landmarks import (
    LandmarkSet, read_landmarks, require, write_landmarks, write_slicer_markups)

# Known positions (LPS, mm) used throughout.
N_LPS = [1.5, -80.25, 30.0]
ZY_L_LPS = [65.0, -10.5, 0.125]


def _slicer_json(frame, points):
    node = {"type": "Fiducial", "coordinateUnits": "mm",
            "controlPoints": [{"id": str(i), "label": label, "position": list(xyz),
                               "positionStatus": "defined"}
                              for i, (label, xyz) in enumerate(points, start=1)]}
    if frame is not None:
        node["coordinateSystem"] = frame
    return {"@schema": "markups-schema-v1.0.3.json#", "markups": [node]}


def _fcsv(frame_tag, points):
    lines = ["# Markups fiducial file version = 4.11"]
    if frame_tag is not None:
        lines.append(f"# CoordinateSystem = {frame_tag}")
    lines.append("# columns = id,x,y,z,ow,ox,oy,oz,vis,sel,lock,label,desc,associatedNodeID")
    for i, (label, (x, y, z)) in enumerate(points, start=1):
        lines.append(f"vtkMRMLMarkupsFiducialNode_{i},{x},{y},{z},0,0,0,1,1,1,0,{label},,vtkMRMLScalarVolumeNode1")
    return "\n".join(lines) + "\n"


def _ras(p):
    return [-p[0], -p[1], p[2]]


def _check_known(lms):
    assert lms.coordinate_system == "LPS"
    np.testing.assert_array_equal(lms["N"], N_LPS)
    np.testing.assert_array_equal(lms["Zy_L"], ZY_L_LPS)
    assert lms["N"].dtype == np.float64 and lms["N"].shape == (3,)


@pytest.mark.parametrize("frame", ["RAS", "LPS", None])
def test_slicer_mrk_json(tmp_path, frame):
    to_file = _ras if frame == "RAS" else list
    f = tmp_path / "skull.mrk.json"
    f.write_text(json.dumps(_slicer_json(frame, [("Nasion", to_file(N_LPS)),
                                                 ("Zygion left", to_file(ZY_L_LPS))])))
    lms = read_landmarks(f, surface="skull")
    assert lms.names == ["N", "Zy_L"]
    _check_known(lms)


def test_slicer_ras_values_are_negated(tmp_path):
    f = tmp_path / "p.mrk.json"
    f.write_text(json.dumps(_slicer_json("RAS", [("N", [10.0, 20.0, 30.0])])))
    np.testing.assert_array_equal(read_landmarks(f)["N"], [-10.0, -20.0, 30.0])


def test_slicer_skips_undefined_points(tmp_path):
    data = _slicer_json("LPS", [("N", N_LPS)])
    data["markups"][0]["controlPoints"].append({"id": "2", "label": "G", "positionStatus": "undefined"})
    f = tmp_path / "p.mrk.json"
    f.write_text(json.dumps(data))
    assert read_landmarks(f).names == ["N"]


@pytest.mark.parametrize("tag", ["RAS", "0", "LPS", "1", None])
def test_slicer_fcsv(tmp_path, tag):
    ras = tag in ("RAS", "0", None)  # untagged files are from Slicer < 4.11, which used RAS
    to_file = _ras if ras else list
    f = tmp_path / "skull.fcsv"
    f.write_text(_fcsv(tag, [("N", to_file(N_LPS)), ("Zy_L", to_file(ZY_L_LPS))]))
    _check_known(read_landmarks(f, surface="skull"))


def test_meshlab_pp(tmp_path):
    f = tmp_path / "face.pp"
    f.write_text(f"""<!DOCTYPE PickedPoints>
<PickedPoints>
 <DocumentData><DataFileName name="face.ply"/></DocumentData>
 <point x="{N_LPS[0]}" y="{N_LPS[1]}" z="{N_LPS[2]}" name="nasion" active="1"/>
 <point x="{ZY_L_LPS[0]}" y="{ZY_L_LPS[1]}" z="{ZY_L_LPS[2]}" name="zy'_L" active="1"/>
 <point x="0" y="0" z="0" name="sn" active="0"/>
</PickedPoints>
""")
    lms = read_landmarks(f, surface="face")
    assert lms.names == ["n", "zy'_L"]  # the inactive point is skipped
    np.testing.assert_array_equal(lms["n"], N_LPS)
    np.testing.assert_array_equal(lms["zy'_L"], ZY_L_LPS)


@pytest.mark.parametrize("text", [
    f"name,x,y,z\nN,{N_LPS[0]},{N_LPS[1]},{N_LPS[2]}\nZy_L,{ZY_L_LPS[0]},{ZY_L_LPS[1]},{ZY_L_LPS[2]}\n",
    f"N,{N_LPS[0]},{N_LPS[1]},{N_LPS[2]}\nZygion left,{ZY_L_LPS[0]},{ZY_L_LPS[1]},{ZY_L_LPS[2]}\n",
    f"# picked by hand\nlabel;x;y;z\nnasion;{N_LPS[0]};{N_LPS[1]};{N_LPS[2]}\n"
    f"Zy_L;{ZY_L_LPS[0]};{ZY_L_LPS[1]};{ZY_L_LPS[2]}\n",
])
@pytest.mark.parametrize("suffix", [".csv", ".txt"])
def test_csv(tmp_path, text, suffix):
    f = tmp_path / f"skull{suffix}"
    f.write_text(text)
    _check_known(read_landmarks(f, surface="skull"))


def test_whitespace_txt(tmp_path):
    f = tmp_path / "skull.txt"
    f.write_text(f"Zygion left {ZY_L_LPS[0]} {ZY_L_LPS[1]} {ZY_L_LPS[2]}\n"
                 f"N\t{N_LPS[0]}\t{N_LPS[1]}\t{N_LPS[2]}\n".replace("\t", "  "))
    _check_known(read_landmarks(f, surface="skull"))


def test_canonical_round_trip_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    points = {name: rng.normal(scale=80.0, size=3) for name in ("G", "N", "Zy_L", "Zy_R", "Pog")}
    meta = {"N": {"source": "given"}, "Pog": {"source": "detected", "note": "curvature peak"}}
    lms = LandmarkSet(points, "LPS", "skull", meta)
    f = write_landmarks(lms, tmp_path / "out" / "skull.json")
    data = json.loads(f.read_text(encoding="utf-8"))
    assert data["format"] == "skull2face-landmarks" and data["version"] == 1
    assert data["coordinate_system"] == "LPS" and data["units"] == "mm" and data["surface"] == "skull"
    back = read_landmarks(f)
    assert back == lms
    assert back.surface == "skull" and back.meta == meta
    for name, p in points.items():
        assert back[name].tobytes() == p.tobytes()  # bit-exact
    assert list(tmp_path.joinpath("out").iterdir()) == [f]  # no temporary left behind


def test_canonical_ras_is_converted(tmp_path):
    f = tmp_path / "ras.json"
    f.write_text(json.dumps({"format": "skull2face-landmarks", "version": 1, "coordinate_system": "RAS",
                             "units": "mm", "landmarks": {"N": _ras(N_LPS)}}))
    np.testing.assert_array_equal(read_landmarks(f)["N"], N_LPS)


def test_slicer_markups_written_in_lps_round_trip(tmp_path):
    lms = LandmarkSet({"N": N_LPS, "Zy_L": ZY_L_LPS}, surface="skull")
    f = write_slicer_markups(lms, tmp_path / "skull.mrk.json")
    node = json.loads(f.read_text(encoding="utf-8"))["markups"][0]
    assert node["coordinateSystem"] == "LPS"
    assert [cp["label"] for cp in node["controlPoints"]] == ["N", "Zy_L"]
    assert node["controlPoints"][0]["position"] == N_LPS
    _check_known(read_landmarks(f, surface="skull"))
    # write_landmarks picks Slicer's format from the .mrk.json name
    g = write_landmarks(lms, tmp_path / "again.mrk.json")
    assert "markups" in json.loads(g.read_text(encoding="utf-8"))


def test_ras_landmark_set_is_stored_lps():
    lms = LandmarkSet({"N": _ras(N_LPS)}, coordinate_system="RAS")
    assert lms.coordinate_system == "LPS"
    np.testing.assert_array_equal(lms["N"], N_LPS)
    np.testing.assert_array_equal(lms.to_ras()["N"], _ras(N_LPS))


def test_transformed_and_as_array():
    lms = LandmarkSet({"N": N_LPS, "Zy_L": ZY_L_LPS}, surface="skull", meta={"N": {"source": "given"}})
    m = np.eye(4)
    m[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]  # 90 degrees about z
    m[:3, 3] = [1.0, 2.0, 3.0]
    moved = lms.transformed(m)
    np.testing.assert_allclose(moved["N"], [80.25 + 1.0, 1.5 + 2.0, 33.0])
    assert moved.meta == lms.meta and moved.surface == "skull"
    np.testing.assert_array_equal(lms["N"], N_LPS)  # the original is untouched
    arr = moved.as_array(["Zy_L", "N"])
    assert arr.shape == (2, 3) and arr.dtype == np.float64
    np.testing.assert_array_equal(arr[1], moved["N"])
    assert lms.as_array().shape == (2, 3)
    with pytest.raises(KeyError, match="G"):
        lms.as_array(["G"])
    with pytest.raises(ValueError):
        lms.transformed(np.eye(3))


def test_require(tmp_path):
    lms = LandmarkSet({"N": N_LPS})
    assert require(lms, ["N"]) is lms
    with pytest.raises(InputError) as info:
        require(lms, ["N", "G", "Pog"], tmp_path / "skull.json")
    message = str(info.value)
    assert "skull.json" in message and "G, Pog" in message


# --- errors ----------------------------------------------------------------------------------

def _raises(f, *words):
    with pytest.raises(InputError) as info:
        read_landmarks(f, surface="skull")
    message = str(info.value)
    assert f.name in message
    for word in words:
        assert word in message, message
    return message


def test_unknown_label(tmp_path):
    f = tmp_path / "mine.csv"
    f.write_text("N,1,2,3\nBregmaX,4,5,6\n")
    _raises(f, "BregmaX", "Zy_L")  # names the bad label and lists valid ones


def test_unknown_label_in_slicer_file(tmp_path):
    f = tmp_path / "mine.mrk.json"
    f.write_text(json.dumps(_slicer_json("LPS", [("F-1", [1, 2, 3])])))
    _raises(f, "F-1")


def test_missing_file(tmp_path):
    _raises(tmp_path / "absent.json", "not found")


def test_empty_file(tmp_path):
    f = tmp_path / "empty.fcsv"
    f.write_text("")
    _raises(f, "empty")


@pytest.mark.parametrize("name, text, words", [
    ("bad.json", "{not json", ["not valid JSON"]),
    ("other.json", '{"hello": 1}', ["skull2face-landmarks"]),
    ("bad.pp", "<PickedPoints><point x='1'", ["XML"]),
    ("bad.csv", "N,1,2\n", ["name, x, y, z"]),
    ("bad2.csv", "N,1,two,3\n", ["two"]),
    ("dup.csv", "N,1,2,3\nnasion,4,5,6\n", ["duplicate", "nasion"]),
    ("dup2.csv", "N,1,2,3\nN,4,5,6\n", ["duplicate", "twice"]),
    ("nan.csv", "N,1,nan,3\n", ["NaN"]),
    ("inf.json", '{"format": "skull2face-landmarks", "version": 1, "landmarks": {"N": [1, 2, 1e999]}}',
     ["NaN or infinite"]),
    ("cm.mrk.json", json.dumps({"markups": [{"coordinateUnits": "cm", "controlPoints": []}]}), ["cm"]),
    ("weird.fcsv", "# CoordinateSystem = XYZ\nx,1,2,3,0,0,0,1,1,1,0,N,,\n", ["XYZ"]),
    ("none.mrk.json", json.dumps({"markups": [{"controlPoints": []}]}), ["no landmarks"]),
    ("v2.json", '{"format": "skull2face-landmarks", "version": 2, "landmarks": {}}', ["version"]),
    ("land.stl", "solid", ["unknown landmark file type"]),
])
def test_bad_files(tmp_path, name, text, words):
    f = tmp_path / name
    f.write_text(text)
    _raises(f, *words)


def test_surface_mismatch(tmp_path):
    f = write_landmarks(LandmarkSet({"n": N_LPS}, surface="face"), tmp_path / "face.json")
    _raises(f, "face landmarks")


def test_write_refuses_other_suffix(tmp_path):
    with pytest.raises(InputError, match="out.csv"):
        write_landmarks(LandmarkSet({"N": N_LPS}), tmp_path / "out.csv")
