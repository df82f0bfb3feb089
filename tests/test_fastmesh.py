"""fastmesh returns, bit for bit, what trimesh returns for the same mesh."""

import numpy as np
import pytest
import trimesh
from skimage import measure

from skull2face import samples
from skull2face.geometry import fastmesh
from skull2face.io.volumes import read_volume
from skull2face.phantoms import head_phantom


def same_mesh(a, b):
    return np.array_equal(np.asarray(a.vertices), np.asarray(b.vertices)) and \
        np.array_equal(np.asarray(a.faces), np.asarray(b.faces))


def check(vertices, faces):
    ref = trimesh.Trimesh(vertices, faces, process=True)
    fast = fastmesh.processed_mesh(vertices, faces)
    assert same_mesh(fast, ref)
    assert fast.metadata == ref.metadata
    if len(ref.faces) == 0:
        return fast, ref
    area, volume = fastmesh.measures(fast)
    assert area == ref.area and volume == ref.volume  # exactly, not approximately
    assert fastmesh.is_watertight(fast) == ref.is_watertight
    box, extents = fastmesh.bounds(fast)
    assert np.array_equal(box, ref.bounds) and np.array_equal(extents, ref.extents)
    return fast, ref


def test_marching_cubes_of_real_ct_with_merged_vertices():
    """At an integer level in integer HU, corners exactly at the level give coincident vertices."""
    vol = read_volume(samples.path("headsq"))
    merged = 0
    for level in (-300.0, 300.0, 500.0):
        for degenerate in (False, True):
            v, f, _, _ = measure.marching_cubes(vol.voxels.astype(np.float32), level=level,
                                                allow_degenerate=degenerate)
            fast, _ = check(vol.to_lps(v), f[:, ::-1])
            merged += len(v) - len(fast.vertices)
    assert merged > 0  # the merging path was exercised


def test_closed_surfaces_either_winding():
    vol = head_phantom(shape=(60, 60, 50), spacing=(3.0, 3.0, 3.5), bone_radii=(60.0, 70.0))
    v, f, _, _ = measure.marching_cubes(np.pad(vol.voxels.astype(np.float32), 1, constant_values=-2000.0), 300.0,
                                        allow_degenerate=False)
    volumes = []
    for faces in (f[:, ::-1], f):
        fast, ref = check(vol.to_lps(v), faces)
        assert ref.is_watertight
        volumes.append(fastmesh.measures(fast)[1])
    assert volumes[0] * volumes[1] < 0  # the signed volume tells the winding


def test_duplicates_unreferenced_and_non_finite_vertices():
    rng = np.random.default_rng(0)
    # coordinates on a coarse grid plus offsets below and above trimesh's merge precision (1e-8)
    v = rng.integers(0, 5, (300, 3)) * 0.5 + rng.choice([0.0, 1e-9, 3e-9, 2e-8, 1e-7], (300, 3))
    f = rng.integers(0, 260, (500, 3))  # vertices 260.. are unreferenced
    fast, _ = check(v, f)
    assert len(fast.vertices) < 260
    v[7, 1] = np.nan
    check(v, f)
    check(v[:0], f[:0])  # empty


def test_a_hash_collision_falls_back_to_trimesh(monkeypatch):
    """Two different rows with one hash must not be merged (all rows hash alike here)."""
    monkeypatch.setattr(fastmesh, "_MIX", np.zeros(3, dtype=np.uint64))
    v = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    f = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [1, 2, 3]])
    fast, _ = check(v, f)
    assert len(fast.vertices) == 4


@pytest.mark.parametrize("faces", [np.array([[0, 1, 2]]), np.array([[0, 1, 2], [0, 2, 1]]),
                                   np.array([[0, 1, 2], [0, 2, 1], [0, 1, 2]])])
def test_watertight_counts_each_edge_exactly_twice(faces):
    v = np.eye(3)
    mesh = trimesh.Trimesh(v, faces, process=False)
    assert fastmesh.is_watertight(mesh) == mesh.is_watertight
