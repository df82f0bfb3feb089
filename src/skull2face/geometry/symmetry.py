"""The mid-sagittal plane of a point cloud: its plane of best mirror symmetry.

Used by the coarse pose of a mesh in unknown pose (`skull2face.geometry.pose.auto_frame`,
around each principal axis) and by landmark detection (`skull2face.anatomy.detect`: around
the coarse frame's x axis). Both use `search_plane`.

A plane is scored by its **trimmed mirror residual**: the points are mirrored across it, and
the score is the mean distance of the best 60 % of the mirrored points to the cloud (distances
capped at `MIRROR_CAP` mm), with the plane's offset settled by two rounds of mirror matching.
`search_plane` minimises the score over the plane's direction: it is sampled on a grid of
+-15 degrees of yaw and roll (steps of 7.5) around each starting normal and minimised from the
two best grid points by Nelder-Mead; the lower result wins, and mirror matching
(`symmetry_plane`) then polishes it, kept only if the score stays within 10 %.

Why not mirror matching alone: it converges to the wrong plane when started 10 degrees off,
and the score has a narrow curved valley in yaw and roll (they trade off against each other)
which a plain grid search misses and along which mirror matching settles off the minimum
(its trimming biases it; by 3 degrees on the headsq skin).

Planes are ``normal . p == offset`` with a unit normal, in the points' coordinates (mm).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize
from scipy.spatial import cKDTree

from .frame import project as _dot

__all__ = ["MIRROR_CAP", "NearestPoints", "search_plane", "symmetry_plane"]

# Cap on mirror distances (mm) in the residual: a point further than this from its mirror
# image is as bad as can be (which also keeps the tree searches short).
MIRROR_CAP = 15.0
# Fraction of mirrored points whose distances make the residual (the rest are asymmetric
# parts, scan cuts, or points whose partner is missing).
KEEP = 0.6
# Grid around each starting normal: yaw and roll offsets in degrees.
_GRID = np.arange(-15.0, 15.1, 7.5)
# The bounded tree search reaches this many times the last k-th smallest distance.
_REACH_MARGIN = 1.5


class NearestPoints:
    """Nearest points of a cloud for query points, searched only as far as needed when only
    the smallest distances matter (a trimmed mean, a quantile, a median).

    Each search reaches ``_REACH_MARGIN`` times as far as the ``need``-th smallest distance
    of the previous search of the same ``kind``; if it then finds fewer than ``need`` points,
    those it missed are searched again without the limit. The ``need`` smallest distances,
    and their points, are therefore exactly those of an unlimited search; the others read
    +inf (index n).

    Parameters
    ----------
    points : numpy.ndarray, shape (n, 3), float64
        The cloud, mm.
    """

    def __init__(self, points: np.ndarray):
        self.points = points
        self.tree = cKDTree(points)
        self._reach: dict[str, float] = {}

    def nearest(self, query: np.ndarray, need: int, kind: str,
                limit: float = np.inf) -> tuple[np.ndarray, np.ndarray]:
        """Distance (m,) and index (m,) of the nearest cloud point of each query point (m, 3),
        exact for at least the ``need`` smallest distances within ``limit`` (mm); the others
        may read +inf (index n). ``kind`` names the series of searches whose reach is learnt."""
        reach = min(self._reach.get(kind, limit), limit)
        dist, idx = self.tree.query(query, distance_upper_bound=reach)
        found = np.isfinite(dist)
        if reach < limit and np.count_nonzero(found) < need:
            miss = np.flatnonzero(~found)
            dist[miss], idx[miss] = self.tree.query(query[miss], distance_upper_bound=limit)
        if need > 0:
            kth = np.partition(dist, need - 1)[need - 1]
            self._reach[kind] = _REACH_MARGIN * kth if np.isfinite(kth) else limit
        return dist, idx


class _Mirror(NearestPoints):
    """A point cloud, and how far its mirror images across planes lie from it (the residual
    and mirror matching); residuals are remembered per normal (Nelder-Mead revisits its
    starting point)."""

    def __init__(self, points: np.ndarray):
        super().__init__(points)
        self._memo: dict[bytes, tuple[float, float]] = {}

    def residual(self, normal: np.ndarray, keep: float = KEEP) -> tuple[float, float]:
        """Trimmed mirror residual of the plane with this normal: the mean distance of the
        best ``keep`` fraction of mirrored points to the cloud (distances capped at
        `MIRROR_CAP` mm), with the plane's offset settled by two rounds of mirror matching
        (median of the matched pairs' midpoints); returns (residual, offset)."""
        key = normal.tobytes() + np.float64(keep).tobytes()
        if key not in self._memo:
            self._memo[key] = self._residual(normal, keep)
        return self._memo[key]

    def _residual(self, normal: np.ndarray, keep: float) -> tuple[float, float]:
        pts = self.points
        proj = _dot(pts, normal)
        d = float(np.median(proj))
        n_keep = int(keep * len(pts))
        for step in range(2):
            dist, idx = self.nearest(pts - 2.0 * (proj - d)[:, None] * normal, n_keep, f"match{step}", MIRROR_CAP)
            good = np.argpartition(dist, n_keep)[:n_keep]
            good = good[np.isfinite(dist[good])]
            if not len(good):
                return MIRROR_CAP, d
            d = float(np.median((proj[good] + proj[idx[good]]) / 2.0))
        dist, _ = self.nearest(pts - 2.0 * (proj - d)[:, None] * normal, n_keep, "score", MIRROR_CAP)
        dist = np.minimum(dist, MIRROR_CAP)
        return float(np.partition(dist, n_keep)[:n_keep].mean()), d

    def matching(self, normal: Any, iterations: int, keep: float) -> tuple[np.ndarray, float]:
        """Iterated mirror matching from ``normal``: see `symmetry_plane`."""
        pts = self.points
        n = np.asarray(normal, dtype=np.float64)
        n = n / np.linalg.norm(n)
        d = float(np.median(_dot(pts, n)))
        # np.quantile interpolates between the order statistics at floor(keep * (n - 1)) and
        # the next one: both must be exact (finite)
        need = min(len(pts), int(np.floor(keep * (len(pts) - 1))) + 2)
        for _ in range(iterations):
            mirrored = pts - 2.0 * (_dot(pts, n) - d)[:, None] * n
            dist, idx = self.nearest(mirrored, need, "polish")
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


def symmetry_plane(points: Any, normal: Any = (1.0, 0.0, 0.0), iterations: int = 40,
                   keep: float = 0.6) -> tuple[np.ndarray, float]:
    """Plane of bilateral symmetry of a point cloud, by iterated mirror matching.

    Each round mirrors every point across the current plane, pairs it with its nearest
    original point, keeps the best ``keep`` fraction of pairs (the rest are asymmetric parts,
    scan cuts, or points whose partner is missing) and re-fits the plane: its normal is the
    mean of the pairs' difference vectors (turned to agree with the current normal), its
    offset the median of the pairs' midpoints along that normal.

    It converges to the nearest plane of (local) symmetry only: `search_plane` finds the
    plane from further off, and uses this to polish its result.

    Parameters
    ----------
    points : array_like, shape (n, 3), mm
        A subsample of the mesh's vertices, in a frame where the plane is roughly normal to
        ``normal``.
    normal : array_like, shape (3,)
        Starting normal (the coarse frame's x axis). The starting offset is the median of the
        points along it, which tolerates a coarse origin tens of mm off the midline.
    iterations : int
        Maximum number of rounds; it stops earlier once the plane moves by < 0.01 degree and
        < 0.01 mm.
    keep : float
        Fraction of pairs kept in each round, in (0, 1].

    Returns
    -------
    normal : numpy.ndarray, shape (3,), float64
        Unit normal, pointing the same way as the starting one.
    offset : float
        Plane position: points ``p`` with ``normal . p == offset`` lie on it, mm.
    """
    return _Mirror(np.asarray(points, dtype=np.float64)).matching(normal, iterations, keep)


def _tilted(normal: np.ndarray, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """``normal`` turned about the y axis (yaw) and then the z axis (roll), in degrees."""
    a, b = np.radians(yaw_deg), np.radians(roll_deg)
    yaw = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    roll = np.array([[np.cos(b), -np.sin(b), 0.0], [np.sin(b), np.cos(b), 0.0], [0.0, 0.0, 1.0]])
    return roll @ yaw @ normal


def search_plane(points: Any, starts: Any) -> tuple[np.ndarray, float, float]:
    """The plane of best mirror symmetry of a point cloud near some starting normals.

    The trimmed mirror residual (see the module docstring) is sampled on a grid of +-15
    degrees of yaw (about y) and roll (about z) in steps of 7.5 around each starting normal,
    and minimised from the two best grid points by Nelder-Mead (initial steps of 3 degrees,
    to 0.2 degree, at most 60 evaluations); the lower result wins. Mirror matching
    (`symmetry_plane`, 30 rounds) then polishes it inside the basin the search found; that
    is kept only if its residual stays within 10 % (it can slide along the valley otherwise).

    Parameters
    ----------
    points : array_like, shape (n, 3), float, mm
        The cloud (a few thousand points: each residual searches a k-d tree for every point
        three times, and a search takes about a hundred residuals per start).
    starts : array_like, shape (k, 3)
        Unit normals to search around, e.g. the coarse frame's x axis, or a cloud's principal
        axes when its pose is unknown. Each is best not more than ~20 degrees off the plane.

    Returns
    -------
    normal : numpy.ndarray, shape (3,), float64
        Unit normal of the plane.
    offset : float
        ``normal . p`` on the plane, mm.
    residual : float
        Its trimmed mirror residual, mm: 0 for a perfectly symmetric cloud, a few mm for a head.
    """
    mirror = _Mirror(np.asarray(points, dtype=np.float64))
    starts = np.atleast_2d(np.asarray(starts, dtype=np.float64))
    grid = []
    for normal in starts:
        for yaw in _GRID:
            for roll in _GRID:
                n = _tilted(normal, yaw, roll)
                grid.append((mirror.residual(n)[0], tuple(n)))
    best = (np.inf, starts[0], 0.0)
    for _, start in sorted(grid)[:2]:
        start = np.array(start)

        def cost(angles, start=start):
            return mirror.residual(_tilted(start, angles[0], angles[1]))[0]

        fit = optimize.minimize(cost, [0.0, 0.0], method="Nelder-Mead",
                                options={"xatol": 0.2, "fatol": 1e-3, "maxfev": 60,
                                         "initial_simplex": [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]})
        n = _tilted(start, fit.x[0], fit.x[1])
        r, d = mirror.residual(n)
        if r < best[0]:
            best = (r, n, d)
    n, _ = mirror.matching(best[1], iterations=30, keep=KEEP)
    r, d = mirror.residual(n)
    if r <= 1.1 * best[0]:
        best = (r, n, d)
    return best[1], best[2], best[0]
