"""Coarse pose of meshes before landmarks: known LPS axes, and unknown pose from symmetry."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from skull2face.geometry.pose import auto_frame, lps_frame, parse_axis
from skull2face.geometry.symmetry import search_plane, symmetry_plane


def angle_deg(a, b):
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1, 1)))


def test_parse_axis():
    np.testing.assert_array_equal(parse_axis("-y"), [0, -1, 0])
    np.testing.assert_array_equal(parse_axis("+Z"), [0, 0, 1])
    np.testing.assert_allclose(parse_axis("0,3,4"), [0, 0.6, 0.8])
    with pytest.raises(ValueError, match="axis hint"):
        parse_axis("up")


def test_lps_frame_axes(real_ct_surfaces):
    _, surf = real_ct_surfaces["cranium"]
    m = lps_frame(surf.skull)
    # rows: head x = L, head y = S (LPS z), head z = anterior (-P)
    np.testing.assert_allclose(m[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)


def test_symmetry_plane_of_mirrored_cloud():
    rng = np.random.default_rng(0)
    # a lumpy, clearly asymmetric half (clusters of points), and its mirror image
    centres = rng.uniform([5, -60, -60], [60, 60, 60], size=(40, 3))
    half = (centres[:, None, :] + rng.normal(size=(40, 50, 3)) * 3.0).reshape(-1, 3)
    cloud = np.vstack([half, half * [-1, 1, 1]])
    R = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()
    moved = cloud @ R.T + [5, -7, 11]
    n, offset = symmetry_plane(moved, R @ [0.95, 0.2, 0.1])
    assert angle_deg(abs(n @ (R @ [1, 0, 0])), 1.0) < 0.5
    assert abs(offset - np.asarray([5, -7, 11]) @ n) < 0.1
    n, offset, res = search_plane(moved, [R @ [0.9, 0.3, 0.3]])
    assert angle_deg(abs(n @ (R @ [1, 0, 0])), 1.0) < 0.5
    assert abs(offset - np.asarray([5, -7, 11]) @ n) < 0.1
    assert res < 1e-6


@pytest.mark.parametrize("name", ["headsq", "cranium"])
@pytest.mark.parametrize("seed", [3, 11])
def test_auto_pose_of_a_rotated_real_skull(real_ct_surfaces, name, seed):
    """A real CT skull in a random pose: the symmetry plane is found to a few degrees and
    front/up within the coarse tolerance the detector accepts (the head's tilt in the scanner
    and the skull's principal axis differ by up to ~20 degrees)."""
    _, surf = real_ct_surfaces[name]
    R = Rotation.random(random_state=seed).as_matrix()
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = R, [10.0, -50.0, 300.0]
    moved = surf.skull.copy()
    moved.apply_transform(T)
    m, rec = auto_frame(moved, "skull")
    truth = lps_frame(surf.skull)[:3, :3] @ R.T
    err = angle_deg(m[:3, :3], truth)
    assert err[0] < 5.0, (err, rec)  # left-right axis: symmetry plane normal
    assert err[1] < 25.0 and err[2] < 25.0, (err, rec)
