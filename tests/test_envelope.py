"""The envelope baseline (the skull grown by a constant thickness) against exact answers."""

import numpy as np
import pytest
import trimesh

from skull2face.methods import registry
from skull2face.methods.envelope import envelope_mesh


def test_sphere_grows_by_exactly_the_radius():
    # the envelope of a sphere of radius 50 is the sphere of radius 56 (the icosphere's flat
    # faces lie up to 0.06 mm inside the true sphere)
    e = envelope_mesh(trimesh.creation.icosphere(subdivisions=4, radius=50.0), radius_mm=6.0)
    r = np.linalg.norm(e.vertices, axis=1)
    assert abs(r.max() - 56.0) < 0.02 and r.min() > 55.9
    assert e.is_watertight and e.volume > 0


def test_other_radius_and_voxel():
    e = envelope_mesh(trimesh.creation.icosphere(subdivisions=4, radius=30.0), radius_mm=3.0, voxel_mm=0.75)
    r = np.linalg.norm(e.vertices, axis=1)
    assert abs(r.max() - 33.0) < 0.02 and r.min() > 32.9


def test_cavities_are_filled():
    # a hollow ball (two walls): the inner wall's offset surfaces are not part of the envelope
    shell = trimesh.util.concatenate([trimesh.creation.icosphere(4, 50.0), trimesh.creation.icosphere(4, 35.0)])
    r = np.linalg.norm(envelope_mesh(shell).vertices, axis=1)
    assert r.min() > 55.9


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="radius_mm"):
        envelope_mesh(trimesh.creation.icosphere(2, 10.0), radius_mm=0.0)


def test_face_map_lies_at_least_the_radius_in_front_of_the_bone(real_ct_surfaces):
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.geometry.depthmap import RenderSpec, render
    from skull2face.geometry.frame import head_frame
    from skull2face.geometry.pose import lps_frame

    _, surf = real_ct_surfaces["headsq"]
    lms = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull))
    spec = RenderSpec(size=(128, 128), mm_per_px=2.0, frame=head_frame(lms.points, "skull").matrix)
    result = registry.run_method("envelope", spec=spec, skull_mesh=surf.skull)
    face, info = result.face_map, result.record
    assert result.head is None
    skull = render(surf.skull, spec)
    both = face.mask & skull.mask
    assert both.sum() > 1000 and info["radius_mm"] == 6.0 and info["method"] == "envelope"
    # a ray meets the envelope at least r before the bone: the ball around the bone point covers it
    assert (face.height[both] - skull.height[both]).min() > 6.0 - 0.05
    # and r in front of it where the bone is flat and faces the viewer (e.g. the forehead)
    gy, gx = np.gradient(np.where(skull.mask, skull.height, np.nan), spec.mm_per_px)
    flat = both & (np.hypot(gx, gy) < 0.15)
    assert flat.sum() >= 15
    gap = face.height[flat] - skull.height[flat]
    assert abs(np.median(gap) - 6.0) < 0.2, gap
