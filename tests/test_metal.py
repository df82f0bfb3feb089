"""Dental-metal repair (`geometry.metal`) against a phantom with known streak-free truth."""

import numpy as np
import pytest

from skull2face.geometry import metal
from skull2face.geometry.distances import surface_distances
from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
from skull2face.phantoms import head_phantom, dental_metal

SKIN_R, BONE_IN, BONE_OUT = 95.0, 62.0, 70.0


@pytest.fixture(scope="module")
def phantoms():
    """A head (skin r 95 mm, bone shell 62-70 mm, 2 x 2 x 2.5 mm voxels) with a filling in the
    front of the shell (y = -66 mm), and the same with the filling's streaks: 12 lines through
    it in its slices, alternately +/-1500 HU, fading to nothing at 70 mm."""
    vol = head_phantom(shape=(104, 104, 84), spacing=(2.0, 2.0, 2.5), skin_radius=SKIN_R,
                       bone_radii=(BONE_IN, BONE_OUT))
    noisy, truth = dental_metal(vol, centre=(0.0, -BONE_OUT + 4.0, 0.0), amplitude=1500.0, reach_mm=70.0)
    return vol, noisy, truth


@pytest.fixture(scope="module")
def surfaces(phantoms):
    vol, noisy, truth = phantoms
    return {
        "plain_on": extract_surfaces(vol),
        "plain_off": extract_surfaces(vol, SurfaceSettings(metal="off")),
        "truth_on": extract_surfaces(truth),
        "truth_off": extract_surfaces(truth, SurfaceSettings(metal="off")),
        "noisy_on": extract_surfaces(noisy),
        "noisy_off": extract_surfaces(noisy, SurfaceSettings(metal="off")),
    }


def outside_bone_mm(mesh):
    """How far each vertex lies outside the true bone shell (0 inside it), mm."""
    r = np.linalg.norm(mesh.vertices, axis=1)
    return np.maximum(np.maximum(r - BONE_OUT, BONE_IN - r), 0.0)


def skin_error_mm(mesh):
    return np.abs(np.linalg.norm(mesh.vertices, axis=1) - SKIN_R)


def test_no_metal_changes_nothing(surfaces):
    on, off = surfaces["plain_on"], surfaces["plain_off"]
    assert on.record["metal"]["found"] is False
    assert "no metal found" in on.record["metal"]["note"]
    assert off.record["metal"]["note"] == "metal repair off"
    for part in ("skin", "skull"):
        assert np.array_equal(getattr(on, part).vertices, getattr(off, part).vertices)
        assert np.array_equal(getattr(on, part).faces, getattr(off, part).faces)


def test_metal_without_streaks_changes_nothing(surfaces):
    """A filling (or enamel) above 2500 HU that throws no streaks is found but left alone."""
    on, off = surfaces["truth_on"], surfaces["truth_off"]
    rec = on.record["metal"]
    assert rec["found"] is True and rec["metal_voxels"] > 0
    assert rec["streaked_slabs"] == []
    assert rec["bone_voxels_dropped_as_streak_debris"] == 0
    assert rec["skin_voxels_filled"] == 0 and rec["skin_voxels_cut"] == 0
    for part in ("skin", "skull"):
        assert np.array_equal(getattr(on, part).vertices, getattr(off, part).vertices)
    # and the truth itself is the phantom's: bone within a voxel of the shell, skin on its sphere
    assert outside_bone_mm(on.skull).max() < 1.5
    assert skin_error_mm(on.skin).max() < 0.5


def test_repair_drops_streak_debris_from_the_bone(surfaces):
    on, off = surfaces["noisy_on"], surfaces["noisy_off"]
    # without the repair, bright streaks make "bone" spokes far out into the soft tissue and
    # the cranial cavity (measured: 29 mm)
    assert outside_bone_mm(off.skull).max() > 20.0
    # with it, what is left lies within the envelope margin (8 mm) of the true bone (measured 7.4)
    assert outside_bone_mm(on.skull).max() < metal.ENVELOPE_MM + 1.0
    rec = on.record["metal"]
    assert rec["found"] and len(rec["streaked_slabs"]) == 1
    assert rec["bone_voxels_dropped_as_streak_debris"] > 100
    k0, k1 = rec["streaked_slabs"][0]
    assert rec["slices_affected"] == k1 - k0 <= 6  # the filling's 2 slices, 1 more each side
    # the true bone is kept: its surface lies as close to the repaired skull as to the unrepaired
    truth = surfaces["truth_off"].skull
    near_on = np.mean(surface_distances(truth.vertices, on.skull) < 1.0)
    near_off = np.mean(surface_distances(truth.vertices, off.skull) < 1.0)
    assert near_on >= near_off - 0.001
    assert near_on > 0.98


def test_repair_mends_streak_spikes_in_the_skin(surfaces):
    on, off = surfaces["noisy_on"], surfaces["noisy_off"]
    r_on = np.linalg.norm(on.skin.vertices, axis=1)
    r_off = np.linalg.norm(off.skin.vertices, axis=1)
    # without: bright streaks in the air raise spikes (measured 3.4 mm), dark ones dents (2.3 mm)
    assert (r_off - SKIN_R).max() > 3.0
    # with: spikes cut (measured 1.6 mm); dents where a dark streak runs along the skin stay
    assert (r_on - SKIN_R).max() < 2.0
    assert skin_error_mm(on.skin).max() < 2.5
    assert on.record["metal"]["skin_voxels_cut"] > 0
    assert on.skin.is_watertight and len(on.skin.split(only_watertight=False)) == 1


def test_record_is_json_ready_and_raw_intensity_skips(phantoms):
    import json

    _, noisy, _ = phantoms
    rec = extract_surfaces(noisy).record["metal"]
    json.dumps(rec)
    for key in ("metal_voxels", "metal_volume_mm3", "slices_affected", "bone_voxels_dropped_as_streak_debris",
                "bone_mm3_dropped", "skin_voxels_filled", "skin_voxels_cut"):
        assert key in rec
    assert rec["metal_volume_mm3"] == pytest.approx(rec["metal_voxels"] * 2.0 * 2.0 * 2.5)
    raw = extract_surfaces(noisy, SurfaceSettings(intensity="raw", skin_threshold=-300, bone_threshold=300))
    assert raw.record["metal"]["found"] is False and "HU" in raw.record["metal"]["note"]


def test_find_metal_ignores_metal_outside_the_head(phantoms):
    vol, _, _ = phantoms
    voxels = vol.voxels.copy()
    voxels[:3, :3, :3] = 3000  # a bright corner of the field of view, outside the head
    inside = np.zeros(vol.shape, dtype=bool)
    inside[20:-20, 20:-20, 20:-20] = True
    assert metal.find_metal(voxels, vol.spacing, vol.direction, inside, 300.0) is None


def test_slice_axis_follows_superior():
    assert metal.slice_axis(np.eye(3)) == 2
    assert metal.slice_axis(np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])) == 1
