"""Standard skull measurements: a phantom with known distances, a turned copy, the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.anatomy.measurements import DEFINITIONS, measure_skull
from skull2face.cli import main

A, B, C = 70.0, 60.0, 95.0  # the vault's half breadth, half height, half length (mm)
CENTRE = np.array([0.0, 20.0, -90.0])  # head frame: behind and above nasion, as a real vault
LMS = {"G": CENTRE + [0.0, 0.0, C], "N": [0.0, 0.0, 0.0], "Pr": [0.0, -65.0, 8.0], "Ns": [0.0, -50.0, 5.0],
       "Zy_L": [66.0, -25.0, -30.0], "Zy_R": [-64.0, -25.0, -30.0], "Fmt_L": [52.0, 5.0, -15.0],
       "Fmt_R": [-52.0, 5.0, -15.0], "Da_L": [11.0, -10.0, -12.0], "Da_R": [-11.0, -10.0, -12.0]}


def _vault() -> trimesh.Trimesh:
    """An ellipsoid vault, poles on the head frame's z axis (a UV sphere: vertices on x = 0)."""
    sphere = trimesh.creation.uv_sphere(radius=1.0, count=[64, 64])
    return trimesh.Trimesh(np.asarray(sphere.vertices) * [A, B, C] + CENTRE, sphere.faces, process=False)


def _by_key(rows):
    return {r["key"]: r for r in rows}


def test_phantom_measurements_are_the_known_distances():
    rows = _by_key(measure_skull(_vault().vertices, LMS, np.eye(4)))
    assert rows["GOL"]["mm"] == pytest.approx(2 * C, abs=0.05)  # glabella to the back pole
    assert rows["XCB"]["mm"] == pytest.approx(2 * A, abs=0.2)  # the widest ring, at the centre
    assert rows["ZYB"]["mm"] == pytest.approx(130.0, abs=0.05)
    assert rows["NPH"]["mm"] == pytest.approx(np.hypot(65.0, 8.0), abs=0.05)
    assert rows["NLH"]["mm"] == pytest.approx(np.hypot(50.0, 5.0), abs=0.05)
    assert rows["UFBR"]["mm"] == pytest.approx(104.0, abs=0.05)
    assert rows["DKB"]["mm"] == pytest.approx(22.0, abs=0.05)
    assert rows["GOL"]["points"]["op"] == pytest.approx(list(CENTRE - [0.0, 0.0, C]), abs=0.01)
    # no gnathion or gonia: missing, and said why; never estimated
    for key in ("NGH", "GOGO"):
        assert rows[key]["mm"] is None and "not located on this skull" in rows[key]["missing"]
    assert [r["key"] for r in measure_skull(_vault().vertices, LMS, np.eye(4))] == [d.key for d in DEFINITIONS]


def test_measurements_do_not_depend_on_the_input_pose():
    """The skull turned by 35 degrees and moved: the frame follows, the measurements do not change."""
    from scipy.spatial.transform import Rotation

    m = np.eye(4)
    m[:3, :3] = Rotation.from_euler("xyz", [35.0, -20.0, 10.0], degrees=True).as_matrix()
    m[:3, 3] = [12.0, -300.0, 45.0]
    v = _vault().vertices @ m[:3, :3].T + m[:3, 3]
    lms = {k: m[:3, :3] @ np.asarray(p) + m[:3, 3] for k, p in LMS.items()}
    turned = _by_key(measure_skull(v, lms, np.linalg.inv(m)))
    plain = _by_key(measure_skull(_vault().vertices, LMS, np.eye(4)))
    for key, row in plain.items():
        assert turned[key]["mm"] == row["mm"], key


def test_no_vault_behind_the_face_means_no_cranial_length():
    face_only = _vault()
    keep = face_only.vertices[:, 2] > CENTRE[2] + 40.0
    rows = _by_key(measure_skull(face_only.vertices[keep], LMS, np.eye(4)))
    assert rows["GOL"]["mm"] is None and "no vault behind glabella" in rows["GOL"]["missing"]


def test_cli_measure_the_bundled_skull(tmp_path, capsys):
    assert main(["-q", "measure", str(samples.path("arothron_skull")), "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert "bizygomatic breadth" in out and "measure.json" in out
    rec = json.loads((tmp_path / "m" / "measure.json").read_text(encoding="utf-8"))
    rows = _by_key(rec["measurements"])
    # adult ranges (Howells 1973 world samples: GOL 165-200, XCB 125-155, ZYB 115-150 mm)
    assert 165 < rows["GOL"]["mm"] < 200 and 125 < rows["XCB"]["mm"] < 155 and 115 < rows["ZYB"]["mm"] < 150
    assert (tmp_path / "m" / "measurements.csv").read_text().startswith("key,name,mm,points,source,missing")
    assert rec["input"]["sha256"] and (tmp_path / "m" / "skull_landmarks.json").is_file()


def test_cli_measure_a_head_ct(tmp_path):
    assert main(["-q", "measure", str(samples.path("cranium")), "--out", str(tmp_path / "m")]) == 0
    rows = _by_key(json.loads((tmp_path / "m" / "measurements.json").read_text())["measurements"])
    assert 165 < rows["GOL"]["mm"] < 200 and 115 < rows["ZYB"]["mm"] < 150
    assert rows["GOGO"]["mm"] is None  # this CT has no mandible
