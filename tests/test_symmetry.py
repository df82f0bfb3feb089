"""The mid-sagittal plane by mirror symmetry (`skull2face.geometry.symmetry`)."""

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from skull2face.geometry.symmetry import MIRROR_CAP, _Mirror, search_plane, symmetry_plane


def _lumpy_mirrored_cloud(seed=0):
    """A lumpy, clearly asymmetric half (clusters of points) and its mirror image across x = 0."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform([5, -60, -60], [60, 60, 60], size=(40, 3))
    half = (centres[:, None, :] + rng.normal(size=(40, 50, 3)) * 3.0).reshape(-1, 3)
    return np.vstack([half, half * [-1, 1, 1]])


def test_search_plane_from_12_degrees_off():
    cloud = _lumpy_mirrored_cloud()
    R = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()
    shift = np.array([5.0, -7.0, 11.0])
    moved = cloud @ R.T + shift
    start = R @ [0.95, 0.2, 0.1]
    true_normal = R @ [1.0, 0.0, 0.0]
    assert 10.0 < np.degrees(np.arccos(start @ true_normal / np.linalg.norm(start))) < 15.0
    n, offset, residual = search_plane(moved, [start / np.linalg.norm(start)])
    assert np.degrees(np.arccos(min(1.0, abs(n @ true_normal)))) < 0.5
    assert abs(offset - n @ shift) < 0.1  # the true plane passes through the shift
    assert residual < 1e-6


def test_search_plane_takes_the_best_of_several_starts():
    cloud = _lumpy_mirrored_cloud(seed=1)
    # starts along y and z are far from the plane, the one near x finds it
    n, offset, residual = search_plane(cloud, [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.99, 0.14, 0.0]])
    assert abs(n[0]) > np.cos(np.radians(0.5))
    assert abs(offset) < 0.1
    assert residual < 1e-6


def _dot(a, w):
    return np.einsum("ij,j->i", a, w)


def _plain_residual(pts, normal, keep=0.6):
    """The residual as first written: every tree search reaches `MIRROR_CAP`."""
    tree = cKDTree(pts)
    proj = _dot(pts, normal)
    d = float(np.median(proj))
    n_keep = int(keep * len(pts))
    for _ in range(2):
        dist, idx = tree.query(pts - 2.0 * (proj - d)[:, None] * normal, distance_upper_bound=MIRROR_CAP)
        good = np.argpartition(dist, n_keep)[:n_keep]
        good = good[np.isfinite(dist[good])]
        d = float(np.median((proj[good] + proj[idx[good]]) / 2.0))
    dist, _ = tree.query(pts - 2.0 * (proj - d)[:, None] * normal, distance_upper_bound=MIRROR_CAP)
    return float(np.partition(np.minimum(dist, MIRROR_CAP), n_keep)[:n_keep].mean()), d


def _plain_matching(pts, normal, iterations, keep):
    """Mirror matching as first written: unbounded tree searches."""
    tree = cKDTree(pts)
    n = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    d = float(np.median(_dot(pts, n)))
    for _ in range(iterations):
        dist, idx = tree.query(pts - 2.0 * (_dot(pts, n) - d)[:, None] * n)
        good = dist <= np.quantile(dist, keep)
        a, b = pts[good], pts[idx[good]]
        diff = a - b
        diff *= np.where(_dot(diff, n) < 0, -1.0, 1.0)[:, None]
        n_new = diff.sum(axis=0)
        n_new /= np.linalg.norm(n_new)
        d_new = float(np.median(_dot(a + b, n_new)) / 2.0)
        settled = n_new @ n > np.cos(np.radians(0.01)) and abs(d_new - d) < 0.01
        n, d = n_new, d_new
        if settled:
            break
    return n, d


def test_short_searches_give_the_same_residuals_and_planes():
    """The tree searches stop early where the answer cannot change: same numbers as searches
    that always reach the cap, over a sequence of planes near and far from the best one."""
    rng = np.random.default_rng(5)
    cloud = _lumpy_mirrored_cloud(seed=2) + rng.normal(size=(4000, 3)) * 1.5  # not quite symmetric
    mirror = _Mirror(cloud)
    for angle in (0.0, 1.0, 0.5, 12.0, 30.0, 2.0, 0.2, 0.0):
        normal = Rotation.from_euler("z", angle, degrees=True).as_matrix() @ [1.0, 0.0, 0.0]
        got, want = mirror.residual(normal), _plain_residual(cloud, normal)
        assert abs(got[0] - want[0]) < 1e-9 and abs(got[1] - want[1]) < 1e-9, angle
    for start in ([1.0, 0.1, 0.0], [1.0, 0.0, -0.2]):
        n, d = symmetry_plane(cloud, start, iterations=30)
        n_ref, d_ref = _plain_matching(cloud, start, 30, 0.6)
        assert np.allclose(n, n_ref, atol=1e-12) and abs(d - d_ref) < 1e-9
