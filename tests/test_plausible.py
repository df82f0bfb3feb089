"""Junk is refused, not given landmarks (issue 14, defect 4): `skull2face.anatomy.detect.plausible`.

Before: a random triangle soup got 12 skull landmarks (nasion at "high" confidence) and a face.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.anatomy.detect import NotAnatomy, anatomy_problem, detect_landmarks
from skull2face.anatomy.detect.plausible import shared_edge_share, surface_problem
from skull2face.anatomy.landmark_set import LandmarkSet
from skull2face.anatomy.locate import PoseSettings, locate
from skull2face.errors import InputError
from skull2face.io.meshes import load_mesh

SRC = Path(__file__).resolve().parents[1] / "src"


def _soup(seed: int = 0) -> trimesh.Trimesh:
    """3000 random points in a 150 mm box joined by 1000 random triangles."""
    rng = np.random.default_rng(seed)
    return trimesh.Trimesh(rng.uniform(0.0, 150.0, (3000, 3)), rng.integers(0, 3000, (1000, 3)), process=False)


def _separate_triangles(seed: int = 0) -> trimesh.Trimesh:
    """4000 small triangles (~5 mm) scattered in a 150 mm box, none sharing an edge."""
    rng = np.random.default_rng(seed)
    corners = rng.uniform(0.0, 150.0, (4000, 1, 3)) + rng.normal(0.0, 3.0, (4000, 3, 3))
    return trimesh.Trimesh(corners.reshape(-1, 3), np.arange(12000).reshape(-1, 3), process=False)


def test_shared_edges_of_real_meshes_and_soups():
    assert shared_edge_share(load_mesh(samples.path("arothron_skull"))) > 0.95
    assert shared_edge_share(trimesh.creation.icosphere(2, 50.0)) == 1.0
    assert shared_edge_share(_soup()) < 0.05
    assert shared_edge_share(_separate_triangles()) == 0.0
    # an STL-like mesh (every triangle's corners stored apart) is still one surface
    sphere = trimesh.creation.icosphere(2, 50.0)
    split = trimesh.Trimesh(sphere.vertices[sphere.faces].reshape(-1, 3), np.arange(3 * len(sphere.faces)).reshape(-1, 3),
                            process=False)
    assert shared_edge_share(split) == 1.0
    assert surface_problem(split) is None


@pytest.mark.parametrize("make", [_soup, _separate_triangles])
@pytest.mark.parametrize("surface", ["skull", "face"])
def test_a_triangle_soup_is_refused(make, surface):
    with pytest.raises(NotAnatomy, match="triangle soup"):
        detect_landmarks(make(), surface, np.eye(4))
    with pytest.raises(InputError, match=f"soup.ply: does not look like a {surface}: not a connected surface"):
        locate(make(), "soup.ply", surface, settings=PoseSettings(pose="scan"))


def test_a_shape_without_anatomy_is_refused_with_the_hints_it_needs():
    ball = trimesh.creation.icosphere(3, 80.0)
    with pytest.raises(InputError) as err:
        locate(ball, "ball_skull.ply", "skull", settings=PoseSettings(pose="scan"))
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("ball_skull.ply: does not look like a skull: no nasion and the nasal aperture found")
    assert "in any orientation" in msg and "--front" in msg and "--up" in msg


def test_anatomy_checks_proportions():
    n, ns = np.array([0.0, 0.0, 0.0]), np.array([0.0, -50.0, 5.0])
    good = {"N": n, "Ns": ns, "Fmt_L": [50.0, 5.0, -20.0], "Fmt_R": [-50.0, 5.0, -20.0],
            "Zy_L": [65.0, -30.0, -50.0], "Zy_R": [-65.0, -30.0, -50.0]}
    assert anatomy_problem(LandmarkSet(good, surface="skull"), "skull") is None
    tall = {**good, "Ns": np.array([0.0, -120.0, 5.0])}
    assert "N-Ns is 120 mm" in anatomy_problem(LandmarkSet(tall, surface="skull"), "skull")
    lopsided = {**good, "Zy_R": np.array([-40.0, -30.0, -20.0])}
    assert "zygomatic arches" in anatomy_problem(LandmarkSet(lopsided, surface="skull"), "skull")
    no_n = {k: v for k, v in good.items() if k != "N"}
    assert "no nasion" in anatomy_problem(LandmarkSet(no_n, surface="skull"), "skull")


def test_cli_refuses_a_soup_in_one_line(tmp_path):
    path = tmp_path / "soup_skull.ply"
    _soup().export(path)
    before = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    run = subprocess.run([sys.executable, "-m", "skull2face", "landmarks", str(path)], capture_output=True,
                         text=True, env=env, timeout=120)
    assert run.returncode == 2
    lines = [ln for ln in run.stderr.splitlines() if "error" in ln]
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert str(path) in lines[0] and "does not look like a skull" in lines[0] and "triangle soup" in lines[0]
    assert path.read_bytes() == before


@pytest.mark.parametrize("name", ["humface"])
def test_a_face_scan_is_refused_as_a_skull_by_its_shallow_orbits(name):
    """A face scan in a skull's proportions (its landmarks pass the skull's checks in some pose)
    is refused in one line: where a skull's orbits are open sockets (>= 25 mm behind nasion;
    30-43 mm on the bundled skulls) a face has eyes (13-15 mm measured on this scan, 15-18 on james_menpo3d)."""
    from skull2face import samples
    from skull2face.anatomy.locate import PoseSettings, locate
    from skull2face.errors import InputError
    from skull2face.io.meshes import load_mesh

    path = samples.path(name)
    with pytest.raises(InputError, match="orbits lie only .* a face scan or a skin, not a skull"):
        locate(load_mesh(path), path, "skull", None, PoseSettings())


def test_a_real_skull_has_open_orbits():
    from skull2face import samples
    from skull2face.anatomy.detect.plausible import ORBIT_MIN_DEPTH_MM, orbit_depths
    from skull2face.anatomy.locate import PoseSettings, locate
    from skull2face.io.meshes import load_mesh

    path = samples.path("arothron_skull")
    mesh = load_mesh(path)
    lms, _ = locate(mesh, path, "skull", None, PoseSettings())
    depths = orbit_depths(mesh, lms)
    assert len(depths) == 2 and min(depths) > ORBIT_MIN_DEPTH_MM + 3.0
