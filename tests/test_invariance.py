"""Same skull, same landmarks (issue 14, defect 1): the coarse pose and the detected landmarks
do not depend on how a skull is stored, nor on where it lies.

Property test on the three bundled real skulls (the Arothron skull mesh, no mandible, own
pose; the skulls of the headsq and cranium CTs), all in unknown pose (``pose="scan"``): the
triangles and the vertices stored in a random order and the whole mesh moved by a random
rigid motion; one vertex removed (with its triangles); every triangle subdivided once
(4 x the triangles). Each must find the same landmarks (the same ones found, the same ones
missing) within `TOL_MM` of the reference's (moved along). Before the fix, shuffling the
Arothron skull's triangles flipped its coarse "up": nasion moved ~50 mm and a chin and gonia
were "detected" on a skull without mandible.

The cranium CT's skull is cut through the upper teeth; detection knows that cut as a scan
lid because it lies along the input's own axes (`skull2face.anatomy.detect`, step 1), so its
rigid motion permutes the axes (turns by multiples of 90 degrees) and moves it; an arbitrary
turn hides the cut, and prosthion is then placed above it (a known limit, not this test's
subject). It is not subdivided (2 M triangles would take ~20 s).
"""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial.transform import Rotation

from skull2face import samples
from skull2face.anatomy.locate import PoseSettings, locate
from skull2face.geometry.frame import apply
from skull2face.io.meshes import load_mesh

# Landmarks of the same skull stored or placed differently agree within this (mm).
TOL_MM = 3.0
SCAN = PoseSettings(pose="scan")
# The same skin from another coarse frame (the pose from hints, not the CT's axes): the
# symmetry search starts elsewhere on this 3.2 mm-voxel skin; measured 5.1 mm at most.
HINTED_TOL_MM = 6.0
NO_MANDIBLE = ("Pog", "Gn", "Go_L", "Go_R")


def _skull(real_ct_surfaces, name: str) -> trimesh.Trimesh:
    if name == "arothron":
        return load_mesh(samples.path("arothron_skull"))
    return real_ct_surfaces[name][1].skull


def _find(mesh: trimesh.Trimesh):
    lms, record = locate(mesh, "skull.ply", "skull", settings=SCAN)
    return lms


@pytest.fixture(scope="module")
def references(real_ct_surfaces):
    return {name: _find(_skull(real_ct_surfaces, name)) for name in ("arothron", "headsq", "cranium")}


def _motion(name: str, seed: int) -> np.ndarray:
    motion = np.eye(4)
    if name == "cranium":
        rot = np.eye(3)[np.random.default_rng(seed).permutation(3)]
        rot[0] *= -1.0 if np.linalg.det(rot) < 0 else 1.0
        motion[:3, :3] = rot
    else:
        motion[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    motion[:3, 3] = [35.0, -120.0, 260.0]
    return motion


def _shuffled_and_moved(mesh: trimesh.Trimesh, motion: np.ndarray, seed: int) -> trimesh.Trimesh:
    rng = np.random.default_rng(seed)
    v, f = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    order = rng.permutation(len(v))  # new vertex i is old vertex order[i]
    new_index = np.argsort(order)
    faces = new_index[f][rng.permutation(len(f))]
    return trimesh.Trimesh(apply(motion, v)[order], faces, process=False)


def _minus_one_vertex(mesh: trimesh.Trimesh, seed: int) -> trimesh.Trimesh:
    f = np.asarray(mesh.faces)
    k = int(np.random.default_rng(seed).integers(len(mesh.vertices)))
    out = trimesh.Trimesh(np.asarray(mesh.vertices), f[~np.any(f == k, axis=1)], process=False)
    out.remove_unreferenced_vertices()
    return out


def _compare(ref, got, motion: np.ndarray) -> float:
    assert {n: m["source"] for n, m in got.meta.items()} == {n: m["source"] for n, m in ref.meta.items()}
    dev = np.linalg.norm(got.as_array() - apply(motion, ref.as_array()), axis=1)
    return float(dev.max(initial=0.0))


CASES = [("arothron", "moved"), ("arothron", "minus_one"), ("arothron", "subdivided"),
         ("headsq", "moved"), ("headsq", "minus_one"), ("headsq", "subdivided"), ("cranium", "moved")]


@pytest.mark.parametrize("name, case", CASES)
def test_landmarks_do_not_depend_on_storage_or_place(real_ct_surfaces, references, name, case):
    mesh = _skull(real_ct_surfaces, name)
    motion = np.eye(4)
    if case == "moved":
        motion = _motion(name, seed=0)
        changed = _shuffled_and_moved(mesh, motion, seed=0)
    elif case == "minus_one":
        changed = _minus_one_vertex(mesh, seed=4)
    else:
        changed = mesh.subdivide()
    worst = _compare(references[name], _find(changed), motion)
    assert worst < TOL_MM, f"{name} {case}: a landmark moved {worst:.2f} mm"


def test_the_issue_repro_triangle_order(references):
    """The issue's repro: the Arothron skull with its triangles in the order of seed 1."""
    mesh = load_mesh(samples.path("arothron_skull"))
    f = np.asarray(mesh.faces)[np.random.default_rng(1).permutation(len(mesh.faces))]
    got = _find(trimesh.Trimesh(np.asarray(mesh.vertices), f, process=False))
    assert _compare(references["arothron"], got, np.eye(4)) < 1e-6  # the very same numbers


def test_a_skull_without_mandible_has_no_chin(references):
    lms = references["arothron"]
    for n in NO_MANDIBLE:
        assert lms.meta[n]["source"] == "missing", n
    assert "mandible is absent" in lms.meta["Pog"]["note"]
    for n in ("N", "G", "Ns", "Pr", "Zy_L", "Zy_R", "Fmt_L", "Fmt_R", "Da_L", "Da_R"):
        assert lms.meta[n]["source"] == "detected", n


def test_a_ct_skin_of_unknown_pose_asks_for_hints_or_uses_them(real_ct_surfaces):
    """Issue 14, defect 2: a whole-head skin from a CT saved without ``extract.json`` (so its
    pose is unknown) used to get 0 of 16 landmarks with exit 0. Its shape cues mislead the
    coarse pose (the face reads as looking up and back), and trying the other orientations
    found an upside-down "face" that passed the face check with its sides swapped; so a face
    that fails says which hints it needs, and with them gets the landmarks it has in the
    CT's LPS axes."""
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.errors import InputError
    from skull2face.geometry.pose import lps_frame

    skin = real_ct_surfaces["headsq"][1].skin
    with pytest.raises(InputError) as err:
        locate(skin, "skin.ply", "face", settings=SCAN)
    msg = str(err.value)
    assert msg.startswith("skin.ply: does not look like a face: ") and "\n" not in msg
    assert "give both --front and --up" in msg
    ref = detect_landmarks(skin, "face", lps_frame(skin))
    got, record = locate(skin, "skin.ply", "face", settings=PoseSettings(pose="scan", front="-y", up="+z"))
    assert record["pose"]["anatomy_check"] == "passed"
    assert _compare(ref, got, np.eye(4)) < HINTED_TOL_MM
