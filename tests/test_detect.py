"""Landmark detection (`skull2face.anatomy.detect`) on the two bundled real head CTs.

``headsq`` is a whole face at 3.2 mm in-plane resolution whose scan ends at the top of the
forehead and in the neck, just under the chin; ``cranium`` runs from the vertex to the upper
lip, so it has no chin and no mandible. The coarse pose is the one an LPS CT gives for free
(x_head = x_lps, y_head = z_lps, z_head = -y_lps), with its origin at the skin's centroid.

Set ``SKULL2FACE_DETECT_PICTURES`` to a folder to keep the pictures `test_pictures` draws
(``detect_<name>.png``: skull and skin front depth maps with the landmarks).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import trimesh
from scipy.spatial import cKDTree

from skull2face import samples

from skull2face.anatomy import names
from skull2face.anatomy.detect import detect_landmarks, symmetry_plane
from skull2face.geometry.lids import find_lids as find_caps
from skull2face.anatomy.tissue import thickness_for
from skull2face.geometry.frame import apply, frame_from_axes, invert_rigid
from skull2face.anatomy.landmark_set import LandmarkSet

CTS = ("headsq", "cranium")
SURFACES = ("skull", "face")

# What each scan holds (see the module docstring and the report of the detection work).
EXPECTED_MISSING = {
    ("headsq", "skull"): set(),
    ("headsq", "face"): {"pog'", "me", "gn'", "go'_L", "go'_R"},  # the scan ends under the chin
    ("cranium", "skull"): {"Pr", "Pog", "Gn", "Go_L", "Go_R"},     # cut at the alveolar process
    ("cranium", "face"): {"pog'", "me", "gn'", "go'_L", "go'_R"},  # cut at the upper lip
}
# Bone -> skin pairs whose distance is checked against the published thickness.
PAIRS = ("G", "N", "Zy_L", "Zy_R", "Ns", "Pog", "Gn")
# The pairs each scan must provide (the rest are missing on at least one side).
EXPECTED_PAIRS = {"headsq": {"G", "N", "Zy_L", "Zy_R", "Ns"}, "cranium": {"G", "N", "Zy_L", "Zy_R", "Ns"}}
# Moving mesh and coarse frame together must move the landmarks alike within this (mm).
RIGID_TOL_MM = 2.0


def _coarse(surfaces) -> np.ndarray:
    return frame_from_axes(np.asarray(surfaces.skin.vertices).mean(axis=0), [1, 0, 0], [0, 0, 1])


def _mesh(surfaces, surface: str) -> trimesh.Trimesh:
    return surfaces.skull if surface == "skull" else surfaces.skin


@pytest.fixture(scope="session")
def detected(real_ct_surfaces):
    """{(ct, surface): LandmarkSet} for both CTs, detected once per session."""
    out = {}
    for name in CTS:
        _vol, surfaces = real_ct_surfaces[name]
        for surface in SURFACES:
            out[(name, surface)] = detect_landmarks(_mesh(surfaces, surface), surface, _coarse(surfaces))
    return out


@pytest.mark.parametrize("name", CTS)
@pytest.mark.parametrize("surface", SURFACES)
def test_found_where_the_anatomy_is_and_missing_where_it_is_not(detected, name, surface):
    lms = detected[(name, surface)]
    assert lms.surface == surface
    assert list(lms.meta) == names.surface_names(surface)
    missing = {n for n, m in lms.meta.items() if m["source"] == "missing"}
    assert missing == EXPECTED_MISSING[(name, surface)]
    for n, m in lms.meta.items():
        assert m["note"]
        if m["source"] == "missing":
            assert n not in lms.points
        else:
            assert m["source"] == "detected"
            assert m["confidence"] in ("high", "medium", "low")
            assert np.all(np.isfinite(lms[n]))


def test_missing_chin_says_the_scan_ends(detected):
    for surface, chin in (("skull", "Pog"), ("face", "pog'")):
        assert "scan ends" in detected[("cranium", surface)].meta[chin]["note"]
    assert "scan ends" in detected[("cranium", "skull")].meta["Pr"]["note"]
    assert "scan ends under the chin" in detected[("headsq", "face")].meta["me"]["note"]


@pytest.mark.parametrize("name", CTS)
@pytest.mark.parametrize("surface", SURFACES)
def test_left_landmarks_are_on_the_patients_left(detected, name, surface):
    lms = detected[(name, surface)]
    pairs = [b for b in {n[:-2] for n in lms.points if n.endswith(("_L", "_R"))}
             if f"{b}_L" in lms.points and f"{b}_R" in lms.points]
    assert len(pairs) >= 3
    for base in pairs:
        # LPS: +x is the patient's left
        assert lms[f"{base}_L"][0] > lms[f"{base}_R"][0], base


@pytest.mark.parametrize("name", CTS)
@pytest.mark.parametrize("surface", SURFACES)
def test_landmarks_lie_on_the_surface(real_ct_surfaces, detected, name, surface):
    mesh = _mesh(real_ct_surfaces[name][1], surface)
    dist, _ = cKDTree(np.asarray(mesh.vertices)).query(detected[(name, surface)].as_array())
    # nearest vertex, not nearest surface point: vertices are up to ~3 mm apart on headsq
    assert dist.max() < 2.5


def test_rigid_motion_moves_the_landmarks_alike(real_ct_surfaces, detected):
    motion = np.eye(4)
    angle = np.radians(37.0)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    motion[:3, :3] = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
    motion[:3, 3] = [40.0, -25.0, 130.0]
    worst = 0.0
    for name in CTS:
        surfaces = real_ct_surfaces[name][1]
        for surface in SURFACES:
            mesh = _mesh(surfaces, surface)
            moved = trimesh.Trimesh(apply(motion, mesh.vertices), np.asarray(mesh.faces), process=False)
            got = detect_landmarks(moved, surface, _coarse(surfaces) @ invert_rigid(motion))
            ref = detected[(name, surface)]
            assert got.names == ref.names
            assert {n: m["source"] for n, m in got.meta.items()} == {n: m["source"] for n, m in ref.meta.items()}
            dev = np.linalg.norm(got.as_array() - apply(motion, ref.as_array()), axis=1)
            worst = max(worst, float(dev.max()))
    assert worst < RIGID_TOL_MM


@pytest.mark.parametrize("name", CTS)
def test_bone_to_skin_distances_are_published_thicknesses(detected, name):
    bone, skin = detected[(name, "skull")], detected[(name, "face")]
    checked = set()
    for b in PAIRS:
        s = names.BONE_TO_SKIN[b]
        if b not in bone.points or s not in skin.points:
            continue
        row = thickness_for(b)
        dist = float(np.linalg.norm(bone[b] - skin[s]))
        lo, hi = row.mean_mm - 3 * row.sd_mm, row.mean_mm + 3 * row.sd_mm
        assert lo <= dist <= hi, f"{b}-{s}: {dist:.1f} mm outside {lo:.1f}..{hi:.1f} mm"
        checked.add(b)
    assert checked == EXPECTED_PAIRS[name]


def test_given_landmarks_are_returned_unchanged(real_ct_surfaces, detected):
    surfaces = real_ct_surfaces["cranium"][1]
    ref = detected[("cranium", "skull")]
    nasion = ref["N"] + np.array([0.7, -1.3, 2.1])
    given = LandmarkSet({"N": nasion, "Zy_L": ref["Zy_L"] + 1.0, "n": np.zeros(3)},
                        meta={"N": {"note": "placed by hand"}})
    got = detect_landmarks(surfaces.skull, "skull", _coarse(surfaces), given=given)
    assert np.array_equal(got["N"], nasion)
    assert np.array_equal(got["Zy_L"], ref["Zy_L"] + 1.0)
    assert got.meta["N"]["source"] == "given" and got.meta["N"]["note"] == "placed by hand"
    assert got.meta["Zy_L"]["source"] == "given"
    assert "n" not in got.points  # a face landmark given for a skull is ignored
    # the rest is still detected, anchored on the given nasion
    assert got.meta["G"]["source"] == "detected"
    assert np.linalg.norm(got["G"] - ref["G"]) < 5.0


ARO = samples.path("arothron_skull")


def test_dry_skull_without_mandible():
    """A real skull mesh in its own pose (Arothron's human_skull: cranium and upper teeth, no
    mandible). The coarse pose was read off pictures of it: anterior -x, up -y, left -z."""
    mesh = trimesh.load(ARO, process=False)
    coarse = frame_from_axes(np.asarray(mesh.vertices).mean(axis=0), [0, 0, -1], [0, -1, 0])
    lms = detect_landmarks(mesh, "skull", coarse)
    for n in ("Pog", "Gn", "Go_L", "Go_R"):
        assert lms.meta[n]["source"] == "missing"
    assert "mandible is absent" in lms.meta["Pog"]["note"]
    for n in ("N", "G", "Ns", "Pr", "Zy_L", "Zy_R", "Fmt_L", "Fmt_R", "Da_L", "Da_R"):
        assert lms.meta[n]["source"] == "detected", n
    head = apply(coarse, lms.as_array(["Zy_L", "Zy_R"]))
    assert head[0, 0] > head[1, 0]  # left is the coarse frame's +x
    assert 120.0 < np.linalg.norm(lms["Zy_L"] - lms["Zy_R"]) < 160.0  # bizygomatic breadth


def test_bad_input_is_refused(real_ct_surfaces):
    surfaces = real_ct_surfaces["headsq"][1]
    coarse = _coarse(surfaces)
    with pytest.raises(ValueError, match="surface"):
        detect_landmarks(surfaces.skin, "bone", coarse)
    scaled = coarse.copy()
    scaled[:3, :3] *= 2.0
    with pytest.raises(ValueError, match="rigid"):
        detect_landmarks(surfaces.skin, "face", scaled)
    with pytest.raises(ValueError, match="non-empty"):
        detect_landmarks(trimesh.Trimesh(), "face", coarse)


def test_symmetry_plane_recovers_a_known_plane():
    rng = np.random.default_rng(3)
    half = rng.normal(size=(3000, 3)) * [30.0, 60.0, 40.0]
    half[:, 0] = np.abs(half[:, 0]) + 2.0
    cloud = np.concatenate([half, half * [-1.0, 1.0, 1.0]])
    angle = np.radians(6.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    cloud = cloud @ rot.T + [5.0, 0.0, 0.0]
    normal, offset = symmetry_plane(cloud)
    true_normal = rot @ [1.0, 0.0, 0.0]
    assert np.degrees(np.arccos(abs(normal @ true_normal))) < 0.5
    assert abs(offset - true_normal @ [5.0, 0.0, 0.0]) < 0.5


def test_find_caps_sees_cut_ends_but_not_round_ones():
    # a cylinder's flat ends meet its side at right angles, like a scan cut; a sphere has none
    cylinder = trimesh.creation.cylinder(radius=60.0, height=150.0, sections=128)
    caps = find_caps(cylinder.vertices, cylinder.faces)
    assert len(caps) == 2
    assert sorted(round(float(c.normal[2])) for c in caps) == [-1, 1]
    assert all(abs(c.offset - 75.0) < 0.5 for c in caps)
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=90.0)
    assert find_caps(sphere.vertices, sphere.faces) == []


def _picture(name: str, skull: trimesh.Trimesh, skin: trimesh.Trimesh, lms: dict, path: Path) -> None:
    """Skull and skin front depth maps side by side, in the skull's head frame, with the
    detected landmarks drawn and labelled."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from skull2face.geometry.depthmap import RenderSpec, render
    from skull2face.geometry.frame import head_frame

    frame = head_frame(lms["skull"].points, "skull").matrix
    shift = np.eye(4)
    shift[1, 3] = 40.0  # centre the picture 40 mm below nasion
    spec = RenderSpec((240, 200), 1.0, shift @ frame)
    fig = Figure(figsize=(14, 8.6))
    FigureCanvasAgg(fig)
    for i, (surface, mesh) in enumerate((("skull", skull), ("face", skin))):
        ax = fig.add_subplot(1, 2, i + 1)
        h = render(mesh, spec).height
        gy, gx = np.gradient(np.nan_to_num(h, nan=float(np.nanmin(h))))
        shade = np.clip(0.35 + 0.65 * (1.0 - 0.5 * gx + 0.6 * gy) / np.sqrt(1 + gx ** 2 + gy ** 2) / 1.6, 0, 1)
        rgb = np.dstack([shade] * 3)
        rgb[~np.isfinite(h)] = 1.0
        ax.imshow(rgb, extent=(-100, 100, -160, 80))  # head-frame mm; nasion at (0, 0)
        for lm, p in lms[surface].points.items():
            q = apply(frame, p)
            ax.plot(q[0], q[1], "o", ms=5, mfc="red", mec="yellow")
            ax.annotate(lm, (q[0], q[1]), xytext=(4, 3), textcoords="offset points", color="red",
                        fontsize=9, fontweight="bold")
        missing = [lm for lm, m in lms[surface].meta.items() if m["source"] == "missing"]
        ax.set_title(f"{name} {surface} (front)\nmissing: {', '.join(missing) or 'none'}", fontsize=9)
        ax.set_xlabel("x (mm, subject's left ->)")
        ax.set_ylabel("y (mm, up; nasion at 0)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


@pytest.mark.parametrize("name", CTS)
def test_pictures(real_ct_surfaces, detected, name, tmp_path):
    folder = Path(os.environ.get("SKULL2FACE_DETECT_PICTURES", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    surfaces = real_ct_surfaces[name][1]
    path = folder / f"detect_{name}.png"
    _picture(name, surfaces.skull, surfaces.skin,
             {s: detected[(name, s)] for s in SURFACES}, path)
    assert path.stat().st_size > 10_000
