"""Evaluation (`skull2face.evaluation`, `skull2face.geometry.distances`, `skull2face.geometry.lids`)
and the stage ``evaluate``: surface errors with known answers, the face region, and the outputs.

Synthetic cases have exact answers (concentric spheres, parallel planes, a dome closed by a
flat lid); the real-CT case scores the bundled ``headsq`` skin against a copy of itself moved
2 mm out along its normals.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.errors import InputError
from skull2face.evaluation.metrics import evaluate_surfaces
from skull2face.evaluation.region import SUBREGIONS, face_region
from skull2face.geometry.distances import surface_distances, vertex_areas
from skull2face.geometry.frame import apply
from skull2face.geometry.lids import LID_SNAP_DEG, find_lids
from skull2face.io.error_mesh import read_error_ply
from skull2face.stages.evaluate import evaluate
from skull2face.io.landmarks import write_landmarks
from skull2face.anatomy.landmark_set import LandmarkSet
from skull2face.io.meshes import save_mesh

# Icospheres of one subdivision level share their vertex directions, so concentric ones are
# exactly 1 mm apart at the vertices; the flat facets add a few micrometres.
TESSELLATION_TOL_MM = 0.01


def _sphere(radius: float, subdivisions: int = 5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def _grid(x0: float, x1: float, y0: float, y1: float, step: float, z: float) -> trimesh.Trimesh:
    """A flat rectangular patch at height ``z`` (mm), triangles facing +z."""
    xs = np.arange(x0, x1 + step / 2, step)
    ys = np.arange(y0, y1 + step / 2, step)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    verts = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, z)], axis=1)
    idx = np.arange(gx.size).reshape(gx.shape)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, c], 1), np.stack([a, c, d], 1)])
    return trimesh.Trimesh(verts, faces, process=False)


def _dome(radius: float, n_phi: int = 128, n_lat: int = 32, n_disc: int = 16) -> trimesh.Trimesh:
    """Half-sphere (z >= 0) closed by a flat disc at z = 0: a scan cut's lid in miniature."""
    phi = np.linspace(0.0, 2 * np.pi, n_phi, endpoint=False)
    lat = np.linspace(0.0, np.pi / 2, n_lat + 1)[:-1]
    rings = [np.stack([radius * np.cos(t) * np.cos(phi), radius * np.cos(t) * np.sin(phi),
                       np.full(n_phi, radius * np.sin(t))], axis=1) for t in lat]
    disc_r = radius * np.arange(n_disc - 1, 0, -1) / n_disc
    rings += [np.stack([q * np.cos(phi), q * np.sin(phi), np.zeros(n_phi)], axis=1) for q in disc_r]
    verts = np.vstack(rings + [[[0.0, 0.0, radius]], [[0.0, 0.0, 0.0]]])
    top, centre = len(verts) - 2, len(verts) - 1

    def ring(k):
        return k * n_phi + np.arange(n_phi)

    def band(a, b):
        return np.concatenate([np.stack([a, np.roll(a, -1), np.roll(b, -1)], 1),
                               np.stack([a, np.roll(b, -1), b], 1)])

    faces = [band(ring(k), ring(k + 1)) for k in range(len(lat) - 1)]
    last = ring(len(lat) - 1)
    faces.append(np.stack([last, np.roll(last, -1), np.full(n_phi, top)], 1))
    prev = ring(0)
    for j in range(len(disc_r)):
        cur = ring(len(lat) + j)
        faces.append(band(cur, prev))
        prev = cur
    faces.append(np.stack([np.roll(prev, -1), prev, np.full(n_phi, centre)], 1))
    mesh = trimesh.Trimesh(verts, np.vstack(faces), process=True)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def _both(record: dict, key: str) -> tuple[float, float]:
    return record["truth_to_prediction"][key], record["prediction_to_truth"][key]


# --- exact distances ----------------------------------------------------------------------------

def test_surface_distances_are_exact_to_inside_edge_and_corner():
    tri = trimesh.Trimesh([[0, 0, 0], [10, 0, 0], [0, 10, 0]], [[0, 1, 2]], process=False)
    points = [[2, 2, 5],       # above the inside
              [5, -3, 4],      # beside an edge: 3 mm off in y, 4 up -> 5
              [-3, -4, 0],     # beyond a corner
              [3, 3, 0]]       # on the triangle
    d = surface_distances(points, tri)
    assert d.dtype == np.float64 and d.shape == (4,)
    np.testing.assert_allclose(d, [5.0, 5.0, 5.0, 0.0], atol=1e-12)


def test_vertex_areas_sum_to_the_surface_area():
    m = _sphere(80.0, 3)
    w = vertex_areas(m)
    assert w.shape == (len(m.vertices),) and np.all(w > 0)
    assert w.sum() == pytest.approx(m.area, rel=1e-12)


# --- known answers ------------------------------------------------------------------------------

def test_identical_surfaces_give_zero_everywhere():
    m = _sphere(80.0, 4)
    r = evaluate_surfaces(m, m, None)
    for key in ("rmse_mm", "mean_mm", "median_mm", "p95_mm", "max_mm", "signed_mean_mm"):
        assert max(abs(x) for x in _both(r, key)) < 1e-9, key
    assert _both(r, "share_within_1mm") == (1.0, 1.0)
    assert r["truth_to_prediction"]["coverage"] == 1.0
    assert r["region"]["kind"] == "whole surface" and r["region"]["lids"] == []


@pytest.mark.parametrize("offset", [1.0, 2.0])
def test_concentric_spheres_are_their_radius_difference_apart(offset):
    truth, pred = _sphere(80.0), _sphere(80.0 + offset)
    r = evaluate_surfaces(pred, truth, None)
    for key in ("rmse_mm", "mean_mm", "median_mm", "p95_mm", "max_mm", "signed_mean_mm"):
        for value in _both(r, key):
            assert abs(value - offset) < TESSELLATION_TOL_MM, (key, value)
    assert "area-weighted" in r["weighting"]
    assert _both(r, "share_within_2.5mm") == (1.0, 1.0)
    # the prediction is outside the truth: too thick, positive
    assert r["truth_to_prediction"]["signed_mean_mm"] > 0


def test_a_prediction_inside_the_truth_has_a_negative_signed_mean():
    r = evaluate_surfaces(_sphere(79.0), _sphere(80.0), None)
    for value in _both(r, "signed_mean_mm"):
        assert abs(value + 1.0) < TESSELLATION_TOL_MM
    assert r["truth_to_prediction"]["mean_mm"] == pytest.approx(1.0, abs=TESSELLATION_TOL_MM)


def test_three_millimetres_is_never_within_two_and_a_half():
    r = evaluate_surfaces(_sphere(83.0), _sphere(80.0), None)
    assert _both(r, "share_within_2.5mm") == (0.0, 0.0)
    assert r["truth_to_prediction"]["coverage"] == 1.0


def test_plane_patch_offset_by_one_millimetre():
    truth = _grid(0, 100, 0, 80, 2.0, 0.0)
    pred = _grid(0, 100, 0, 80, 2.0, 1.0)
    r = evaluate_surfaces(pred, truth, None)
    for key in ("rmse_mm", "mean_mm", "median_mm", "max_mm", "signed_mean_mm"):
        for value in _both(r, key):
            assert value == pytest.approx(1.0, abs=1e-9), key
    # an open flat patch closes nothing: it is not a lid
    assert r["region"]["lids"] == []
    assert r["truth_to_prediction"]["area_mm2"] == pytest.approx(8000.0)


def test_figures_are_area_weighted_not_vertex_counted():
    # a dense (1 mm) patch 1 mm off and an equally large sparse (10 mm) patch 3 mm off:
    # equal areas, so the mean is 2 mm; counting vertices (2601 vs 36) would give ~1.03 mm
    truth = trimesh.util.concatenate([_grid(0, 50, 0, 50, 1.0, 0.0), _grid(80, 130, 0, 50, 10.0, 0.0)])
    pred = trimesh.util.concatenate([_grid(0, 50, 0, 50, 1.0, 1.0), _grid(80, 130, 0, 50, 10.0, 3.0)])
    r = evaluate_surfaces(pred, truth, None)
    for value in _both(r, "mean_mm"):
        assert value == pytest.approx(2.0, abs=1e-9)
    for value in _both(r, "share_within_2.5mm"):
        assert value == pytest.approx(0.5, abs=1e-9)
    assert r["truth_to_prediction"]["rmse_mm"] == pytest.approx(np.sqrt(5.0), abs=1e-9)
    assert r["truth_to_prediction"]["p95_mm"] == pytest.approx(3.0, abs=1e-9)
    vertex_mean = (2601 * 1.0 + 36 * 3.0) / 2637
    assert abs(r["truth_to_prediction"]["mean_mm"] - vertex_mean) > 0.9


# --- scan-cut lids ------------------------------------------------------------------------------

def test_the_flat_lid_of_a_cut_half_sphere_is_not_scored():
    dome = _dome(80.0)
    lids = find_lids(dome.vertices, dome.faces)
    assert len(lids) == 1
    assert lids[0].normal @ [0, 0, -1] > 0.9999 and lids[0].offset == pytest.approx(0.0, abs=1e-9)
    assert lids[0].area == pytest.approx(np.pi * 80.0 ** 2, rel=0.01)
    region = face_region(dome, None)
    v = np.asarray(dome.vertices)
    on_disc = np.abs(v[:, 2]) < 1e-9
    assert not region.mask[on_disc].any()
    assert region.mask[v[:, 2] > 2.0].all()
    # a round surface has no lid
    sphere = _sphere(80.0)
    assert find_lids(sphere.vertices, sphere.faces) == []

    # lid against lid would be 0 mm and pull the mean down; without lids it is the 1 mm gap
    r = evaluate_surfaces(_dome(81.0), dome, None)
    for value in _both(r, "mean_mm"):
        assert abs(value - 1.0) < TESSELLATION_TOL_MM


def test_a_lid_fitted_a_hair_off_an_axis_snaps_onto_it_only_when_asked():
    dome = _dome(80.0)
    v, f = np.asarray(dome.vertices), np.asarray(dome.faces)

    def tilted(deg: float) -> np.ndarray:
        a = np.radians(deg)
        rot = np.array([[1.0, 0.0, 0.0], [0.0, np.cos(a), -np.sin(a)], [0.0, np.sin(a), np.cos(a)]])
        return v @ rot.T

    def true_normal(deg: float) -> np.ndarray:  # the disc's outward normal after the tilt
        return np.array([0.0, np.sin(np.radians(deg)), -np.cos(np.radians(deg))])

    # 0.05 degrees off -z: the fit finds the tilt; snapping (0.1 degree) puts it exactly on -z
    fitted = find_lids(tilted(0.05), f)
    snapped = find_lids(tilted(0.05), f, snap_deg=LID_SNAP_DEG)
    assert len(fitted) == 1 and len(snapped) == 1
    assert np.degrees(np.arccos(min(1.0, fitted[0].normal @ true_normal(0.05)))) < 0.01
    assert np.array_equal(snapped[0].normal, [0.0, 0.0, -1.0])
    assert snapped[0].offset == pytest.approx(float(np.max(-tilted(0.05)[:, 2])), abs=1e-12)
    # every disc triangle is on the lid either way; none of the dome's
    on_disc = np.flatnonzero(np.all(np.abs(v[f][:, :, 2]) < 1e-9, axis=1))
    for lid in (fitted[0], snapped[0]):
        assert np.array_equal(np.sort(lid.faces), on_disc)
    # 1 degree off is a real tilt: never snapped
    far = find_lids(tilted(1.0), f, snap_deg=LID_SNAP_DEG)
    assert len(far) == 1 and np.degrees(np.arccos(min(1.0, far[0].normal @ true_normal(1.0)))) < 0.01


def test_an_open_flat_patch_is_not_a_lid():
    patch = _grid(0, 100, 0, 80, 2.0, 0.0)
    assert find_lids(patch.vertices, patch.faces) == []


def test_a_prediction_beyond_the_scan_cut_is_not_scored():
    # the truth ends at a cut (z = 0); the prediction goes on below it, where nothing is known
    r = evaluate_surfaces(_sphere(81.0), _dome(80.0), None)
    # the dome's ~4 mm facets lie up to 0.05 mm inside its sphere (the icosphere's match no more)
    for value in _both(r, "mean_mm"):
        assert abs(value - 1.0) < 0.05
    assert r["prediction_to_truth"]["area_mm2"] < 0.55 * 4 * np.pi * 81.0 ** 2


# --- the face region on synthetic landmarks -----------------------------------------------------

def _sphere_face_landmarks(r: float = 80.0) -> dict:
    """Face landmarks placed on a sphere in LPS (face toward -y), nasion at the front."""
    def on(x, z):  # the point of the sphere's front (y < 0) at given x and z
        return [x, -np.sqrt(r * r - x * x - z * z), z]

    return {"n": on(0, 20), "sn": on(0, -30), "me": on(0, -70), "en_L": on(15, 10), "en_R": on(-15, 10),
            "al_L": on(17, -25), "al_R": on(-17, -25), "zy'_L": on(60, -5), "zy'_R": on(-60, -5),
            "t_L": [79.0, 0.0, 0.0], "t_R": [-79.0, 0.0, 0.0]}


def test_face_region_boxes_follow_the_landmarks():
    sphere = _sphere(80.0, 5)
    region = face_region(sphere, _sphere_face_landmarks())
    d = region.description
    assert d["kind"] == "face" and d["landmarks_missing"] == [] and d["assumed"] == {}
    h = apply(region.frame, np.asarray(sphere.vertices))[region.mask]
    b = d["bounds_head_mm"]
    assert np.all(h[:, 2] > b["z_min"]) and np.all(h[:, 1] <= b["y_max"])
    assert np.all(h[:, 1] >= b["y_min"]) and np.all(np.abs(h[:, 0]) <= b["x_half"])
    assert set(d["subregion_area_mm2"]) == set(SUBREGIONS)
    assert all(a > 0 for a in d["subregion_area_mm2"].values())
    # the nose lies between nasion and subnasale on the midline
    nose = apply(region.frame, np.asarray(sphere.vertices))[region.labels == 1 + SUBREGIONS.index("nose")]
    assert np.all(np.abs(nose[:, 0]) < 21.0) and nose[:, 1].max() <= 1e-9

    # same truth and landmarks -> same region, whatever is predicted
    r1 = evaluate_surfaces(_sphere(81.0), sphere, _sphere_face_landmarks())
    r2 = evaluate_surfaces(_sphere(79.0, 3), sphere, _sphere_face_landmarks())
    assert r1["region"] == r2["region"]
    assert set(r1["truth_to_prediction"]["regions"]) == set(SUBREGIONS)
    assert r1["truth_to_prediction"]["mean_mm"] == pytest.approx(1.0, abs=TESSELLATION_TOL_MM)


def test_face_region_without_tragion_menton_or_zygion_uses_the_documented_defaults():
    lms = {k: v for k, v in _sphere_face_landmarks().items() if k in ("n", "sn", "al_L", "al_R")}
    region = face_region(_sphere(80.0, 4), LandmarkSet(lms, surface="face"))
    b = region.description["bounds_head_mm"]
    assert b["z_min"] == -60.0 and b["x_half"] == 70.0 and b["y_min"] == pytest.approx(-125.0)
    assert "en_y" in region.description["assumed"]


def test_face_region_refuses_landmarks_it_cannot_use():
    sphere = _sphere(80.0, 3)
    with pytest.raises(ValueError, match="nasion"):
        face_region(sphere, {k: v for k, v in _sphere_face_landmarks().items() if k != "n"})
    far = {k: np.asarray(v) + [0, -50, 0] for k, v in _sphere_face_landmarks().items()}
    with pytest.raises(ValueError, match="not on the truth surface"):
        face_region(sphere, far)


# --- the stage on a real CT ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def headsq_run(tmp_path_factory):
    """headsq skin as truth, the skin moved 2 mm out along its normals as prediction."""
    from skull2face.geometry.surfaces import extract_surfaces
    from skull2face.io.volumes import read_volume

    skin = extract_surfaces(read_volume(samples.path("headsq"))).skin
    moved = trimesh.Trimesh(skin.vertices + 2.0 * skin.vertex_normals, skin.faces, process=False)
    folder = tmp_path_factory.mktemp("headsq")
    # as `skull2face extract` leaves it: the skin in LPS with its record beside it
    save_mesh(skin, folder / "skin.ply")
    (folder / "extract.json").write_text("{}")
    save_mesh(moved, folder / "pred.ply")
    record = evaluate(folder / "pred.ply", folder / "skin.ply", folder / "out", name="headsq +2 mm")
    return folder, record


def test_real_ct_offset_by_two_millimetres(headsq_run):
    _, r = headsq_run
    for value in _both(r, "mean_mm"):
        assert abs(value - 2.0) < 0.2
    assert r["truth_to_prediction"]["signed_mean_mm"] > 1.8
    assert r["truth_to_prediction"]["coverage"] == 1.0
    region = r["region"]
    assert region["kind"] == "face"
    # the scan ends under the chin: no menton, and the cut's lid is found and left out
    assert "me" in region["landmarks_missing"]
    assert any(lid["normal"][2] < -0.99 for lid in region["lids"])
    assert set(r["truth_to_prediction"]["regions"]) == set(SUBREGIONS)
    assert r["warnings"] == []


def test_real_ct_outputs(headsq_run):
    folder, r = headsq_run
    out = folder / "out"
    on_disk = json.loads((out / "evaluate.json").read_text(encoding="utf-8"))
    assert on_disk["truth_to_prediction"]["mean_mm"] == r["truth_to_prediction"]["mean_mm"]
    assert len(on_disk["inputs"]["truth"]["sha256"]) == 64
    assert on_disk["inputs"]["landmarks"]["source"].startswith("detected")
    assert not list(out.glob(".tmp-*"))

    # the error mesh reads back with its scalars, with our reader and trimesh's
    mesh, scalars = read_error_ply(out / "error_on_truth.ply")
    assert len(mesh.vertices) == r["inputs"]["truth"]["vertices"]
    region = scalars["region"] > 0
    w = vertex_areas(mesh)
    mean = float(np.sum(w[region] * scalars["error_mm"][region]) / w[region].sum())
    assert mean == pytest.approx(r["truth_to_prediction"]["mean_mm"], abs=1e-4)
    assert np.all(scalars["error_mm"] >= 0)
    np.testing.assert_allclose(np.abs(scalars["signed_error_mm"]), scalars["error_mm"], atol=1e-6)
    other = trimesh.load(out / "error_on_truth.ply", process=False)
    raw = other.metadata["_ply_raw"]["vertex"]["data"]
    np.testing.assert_array_equal(raw["error_mm"], scalars["error_mm"].astype(np.float32))

    png = (out / "heatmap.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_stage_refuses_landmarks_that_cannot_fix_the_region(headsq_run, tmp_path):
    folder, r = headsq_run
    points = r["inputs"]["landmarks"]["points_input_mm"]
    lms = LandmarkSet({k: v for k, v in points.items() if k != "n"}, surface="face")
    path = write_landmarks(lms, tmp_path / "no_nasion.json")
    with pytest.raises(InputError, match="nasion") as err:
        evaluate(folder / "pred.ply", folder / "skin.ply", tmp_path / "out", landmarks_path=path)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="not found"):
        evaluate(folder / "missing.ply", folder / "skin.ply", tmp_path / "out")


def test_given_landmarks_give_the_same_figures(headsq_run, tmp_path):
    folder, r = headsq_run
    lms = LandmarkSet(r["inputs"]["landmarks"]["points_input_mm"], surface="face")
    path = write_landmarks(lms, tmp_path / "face.json")
    again = evaluate(folder / "pred.ply", folder / "skin.ply", tmp_path / "out", landmarks_path=path)
    assert again["inputs"]["landmarks"]["source"] == "given"
    assert again["truth_to_prediction"]["mean_mm"] == pytest.approx(r["truth_to_prediction"]["mean_mm"],
                                                                    abs=1e-9)
