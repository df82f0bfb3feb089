"""Partial skulls (issue 21 item 1): landmarks only where their bone is, refusal where too little is left.

The bundled Arothron skull (no mandible) is cut with planes in its own head frame (nasion at the
origin, +x the subject's left, +y up, +z anterior, mm).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.anatomy.locate import locate
from skull2face.errors import InputError
from skull2face.geometry.distances import closest_points
from skull2face.geometry.frame import apply, head_frame


@pytest.fixture(scope="module")
def whole():
    path = samples.path("arothron_skull")
    mesh = trimesh.load(path, force="mesh")
    lms, _ = locate(mesh, path, "skull")
    return mesh, lms, head_frame(lms.points, "skull").matrix


def _cut(whole, tmp_path, name, drop):
    mesh, _, frame = whole
    v = apply(frame, np.asarray(mesh.vertices))
    keep = ~drop(v)
    cut = trimesh.Trimesh(mesh.vertices, mesh.faces[keep[mesh.faces].all(axis=1)], process=False)
    cut.remove_unreferenced_vertices()
    path = tmp_path / f"{name}_skull.ply"
    cut.export(path)
    return cut, path


def test_midface_removed_has_no_prosthion_or_nasospinale(whole, tmp_path):
    _, full, frame = whole
    pr_y = apply(frame, np.asarray(full.points["Pr"])[None])[0, 1]
    cut, path = _cut(whole, tmp_path, "nomid", lambda v: (np.abs(v[:, 0]) < 35) & (v[:, 1] < -12)
                     & (v[:, 1] > pr_y + 5) & (v[:, 2] > -40))
    lms, _ = locate(cut, path, "skull")
    for name in ("Ns", "Pr"):
        assert name not in lms.points
        assert lms.meta[name]["source"] == "missing" and lms.meta[name]["absent"] == ["midface"]
        assert "midface" in lms.meta[name]["note"]
    placed = list(lms.points)
    assert set(placed) >= {"N", "G", "Fmt_L", "Fmt_R", "Zy_L", "Zy_R"}
    assert closest_points(np.array([lms.points[n] for n in placed]), cut)[0].max() < 15.0
    # the landmarks on the bone that is left are where the whole skull has them (within a few mm)
    for n in placed:
        assert np.linalg.norm(lms.points[n] - full.points[n]) < 3.0, n


def test_face_region_removed_is_refused(whole, tmp_path):
    cut, path = _cut(whole, tmp_path, "noface", lambda v: v[:, 2] > -15.0)
    with pytest.raises(InputError, match="noface_skull.ply: too little of a skull"):
        locate(cut, path, "skull")


def test_right_half_removed_is_refused(whole, tmp_path):
    cut, path = _cut(whole, tmp_path, "lefthalf", lambda v: v[:, 0] < -5.0)
    with pytest.raises(InputError, match="lefthalf_skull.ply: too little of a skull .*one half .* of the skull seems missing"):
        locate(cut, path, "skull")


def test_whole_skull_reports_no_absent_part(whole):
    _, lms, _ = whole
    assert not any(m.get("absent") for m in lms.meta.values())
    assert set(lms.points) == {"Da_L", "Da_R", "Fmt_L", "Fmt_R", "G", "N", "Ns", "Pr", "Zy_L", "Zy_R"}


def test_skull_given_as_face_is_refused(whole):
    mesh, _, _ = whole
    with pytest.raises(InputError, match="looks like a skull, not a face"):
        locate(mesh, samples.path("arothron_skull"), "face")


def test_landmarks_cli_reports_the_missing_midface(whole, tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    _, full, frame = whole
    pr_y = apply(frame, np.asarray(full.points["Pr"])[None])[0, 1]
    _, path = _cut(whole, tmp_path, "nomid", lambda v: (np.abs(v[:, 0]) < 35) & (v[:, 1] < -12)
                   & (v[:, 1] > pr_y + 5) & (v[:, 2] > -40))
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "skull2face", "-q", "landmarks", str(path), "--out",
                        str(tmp_path / "lm.json")], check=False, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    meta = json.loads((tmp_path / "lm.json").read_text())["missing"]
    assert meta["Pr"]["source"] == "missing" and meta["Pr"]["absent"] == ["midface"]
    assert "the midface (nasal aperture and maxilla) is missing" in meta["Ns"]["note"]


def test_inferred_without_bone_names_the_missing_parts():
    from skull2face.anatomy.landmark_set import LandmarkSet
    from skull2face.geometry.depthmap import DepthMap, RenderSpec
    from skull2face.statistics.skull_fit import inferred_without_bone

    spec = RenderSpec(size=(8, 8), mm_per_px=20.0, frame=np.eye(4))
    full = np.ones((8, 8), dtype=bool)
    skull, face = DepthMap(np.zeros((8, 8)), full, spec), DepthMap(np.ones((8, 8)), full, spec)
    note = "the left orbit is missing (bone in 2 % of where it lies on a skull)"
    lms = LandmarkSet({"N": np.zeros(3), "Pog": np.zeros(3)}, "LPS", "skull",
                      {"Fmt_L": {"source": "missing", "note": note, "absent": ["orbit_L"]},
                       "Da_L": {"source": "missing", "note": note, "absent": ["orbit_L"]}})
    lines = inferred_without_bone(skull, face, lms, bone=full)
    assert lines.count(f"{note}: the face over it is the head model's, not drawn from bone") == 1


def test_mandible_removed_from_the_headsq_ct_skull(real_ct_surfaces, tmp_path):
    """A CT skull cut 12 mm below prosthion (mandible and lower teeth gone): no Gn, Pog, Go; the
    rest where the whole skull has them."""
    skull = real_ct_surfaces["headsq"][1].skull
    (tmp_path / "extract.json").write_text("{}")  # LPS pose, as extract writes it
    whole_path = tmp_path / "skull.ply"
    skull.export(whole_path)
    full, _ = locate(skull, whole_path, "skull")
    assert {"Gn", "Pog", "Go_L", "Go_R"} <= set(full.points)
    frame = head_frame(full.points, "skull").matrix
    pr_y = apply(frame, np.asarray(full.points["Pr"])[None])[0, 1]
    v = apply(frame, np.asarray(skull.vertices))
    keep = v[:, 1] > pr_y - 12.0
    cut = trimesh.Trimesh(skull.vertices, skull.faces[keep[skull.faces].all(axis=1)], process=False)
    cut.remove_unreferenced_vertices()
    cut_path = tmp_path / "nomandible_skull.ply"
    cut.export(cut_path)
    lms, _ = locate(cut, cut_path, "skull")
    for name in ("Gn", "Pog", "Go_L", "Go_R"):
        assert name not in lms.points and lms.meta[name]["source"] == "missing", name
    assert closest_points(np.array(list(lms.points.values())), cut)[0].max() < 15.0
    for name in lms.points:
        assert np.linalg.norm(lms.points[name] - full.points[name]) < 3.0, name
