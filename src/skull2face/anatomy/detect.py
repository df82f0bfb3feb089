"""Automatic detection of the paper's skull (Table 1) and face (Table 2) landmarks on a mesh.

`detect_landmarks` takes a skull or skin mesh in any coordinates and a rough rigid pose (the
``coarse`` input -> head-frame matrix, which may be off by ~10 degrees and ~20 mm) and returns
the landmarks in the mesh's own coordinates, each with a note of how it was found and how far
to trust it. Landmarks that cannot exist on the input (a CT cut at the upper lip has no chin;
a dry skull without mandible has no gonion) are reported missing, with the reason, instead
of being invented.

Method, in millimetres, in a working head frame (+x subject's left, +y up, +z anterior,
mid-sagittal plane x = 0; see `skull2face.geometry.frame`):

1. **Scan cuts** ("lids", `skull2face.geometry.lids.find_lids`): marching cubes closes a
   surface where the scan ends with a flat lid. A lid is a large area hugging the mesh's
   support plane in some direction whose walls meet it steeply (a natural extreme curves away
   gently). Points on lids are never taken for anatomy, and a landmark whose region lies
   beyond a lid is reported missing.
2. **Mid-sagittal plane** by symmetry (`_refine_by_symmetry`): the front 80 mm of the head
   (lids excluded) is mirrored across candidate planes and the plane with the smallest
   trimmed mirror residual wins (grid search, Nelder-Mead, then mirror matching,
   `symmetry_plane`).
3. **Midline profile** (`_profile`): rays cast through a slab |x| <= 3..4 mm give the
   anterior outline z_front(y) every 0.5 mm, and the outline seen from below (the chin's
   underside). Midline landmarks are notches, bumps and extremes of this outline, measured
   against chords so that they do not depend on the head's pitch (per landmark: see
   `_skull_midline`, `_face_midline`, `_chin`). The outline is read twice: in the coarse
   pitch, then after tilting the frame so that +y runs from the lower to the upper midline
   landmarks as `skull2face.geometry.frame.head_frame` defines "up" (sn -> n, g' on the face;
   Ns, Pr -> N, G on the skull). The frame's origin then moves to nasion.
4. **Paired landmarks** (`_skull_pairs`, `_face_pairs`): extremes of the vertices in boxes
   placed relative to nasion with typical adult dimensions (cited where used), and features
   of front or side depth maps (`skull2face.geometry.depthmap.render`) for dacryon, the eye
   corners, the alae and tragion.

Every step works on the mesh in the coarse frame (lids are also looked for along the input's
own axes, which a CT-derived mesh shares with the scanner), so moving the mesh and the coarse
matrix together by a rigid motion moves the landmarks with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh
from scipy import ndimage, optimize
from scipy.spatial import cKDTree

from ..geometry.depthmap import RenderSpec, render
from ..geometry.frame import apply, as_rigid, frame_from_axes, invert_rigid
from ..geometry.lids import Lid, find_lids
from ..anatomy.landmark_set import LandmarkSet
from . import names

__all__ = ["detect_landmarks", "symmetry_plane", "find_caps", "Cap"]

# The scan-cut lids live in skull2face.geometry.lids; these old names stay until the tests
# import them from there.
find_caps = find_lids
Cap = Lid

# --- tolerances (mm unless stated) ------------------------------------------------------------

# Profile sampling step along y.
_STEP = 0.5
# A point within _CAP_TOL of a lid's plane, and within _LID_REACH of its faces (which are
# sampled a few mm apart), counts as lying on it.
_CAP_TOL = 1.5
_LID_REACH = 5.0
# The coarse pitch is trusted to within this angle (degrees); a larger correction means the
# midline landmarks that measured it are wrong, and the coarse pitch is kept.
_MAX_PITCH_FIX_DEG = 30.0
# Symmetry fit: points used (a subsample), the cap on mirror distances, and how deep behind
# the most anterior point the points are taken from (the face and forehead, not the vault).
_SYMMETRY_POINTS = 3000
_MIRROR_CAP = 15.0
_SYMMETRY_DEPTH = 80.0

# --- the mid-sagittal plane (method step 2) ------------------------------------------------


def _dot(points: np.ndarray, w: np.ndarray) -> np.ndarray:
    # einsum, not `points @ w`: see skull2face.geometry.frame.apply (threaded BLAS is slow here)
    return np.einsum("ij,j->i", points, w)


def symmetry_plane(points: Any, normal: Any = (1.0, 0.0, 0.0), iterations: int = 40,
                   keep: float = 0.6) -> tuple[np.ndarray, float]:
    """Plane of bilateral symmetry of a point cloud, by iterated mirror matching.

    Each round mirrors every point across the current plane, pairs it with its nearest
    original point, keeps the best ``keep`` fraction of pairs (the rest are asymmetric parts,
    scan cuts, or points whose partner is missing) and re-fits the plane: its normal is the
    mean of the pairs' difference vectors (turned to agree with the current normal), its
    offset the median of the pairs' midpoints along that normal.

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
    pts = np.asarray(points, dtype=np.float64)
    n = np.asarray(normal, dtype=np.float64)
    n = n / np.linalg.norm(n)
    d = float(np.median(_dot(pts, n)))
    tree = cKDTree(pts)
    for _ in range(iterations):
        mirrored = pts - 2.0 * (_dot(pts, n) - d)[:, None] * n
        dist, idx = tree.query(mirrored)
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


def _mirror_residual(pts: np.ndarray, tree: cKDTree, normal: np.ndarray, keep: float) -> tuple[float, float]:
    """Trimmed mirror residual of the plane with this normal: the mean distance of the best
    ``keep`` fraction of mirrored points to the cloud (distances capped at
    `_MIRROR_CAP` mm, which also keeps the search fast), with the plane's offset settled by
    two rounds of mirror matching (median of the matched pairs' midpoints); returns
    (residual, offset)."""
    proj = _dot(pts, normal)
    d = float(np.median(proj))
    n_keep = int(keep * len(pts))
    for _ in range(2):
        dist, idx = tree.query(pts - 2.0 * (proj - d)[:, None] * normal, distance_upper_bound=_MIRROR_CAP)
        good = np.argpartition(dist, n_keep)[:n_keep]
        good = good[np.isfinite(dist[good])]
        if not len(good):
            return _MIRROR_CAP, d
        d = float(np.median((proj[good] + proj[idx[good]]) / 2.0))
    dist, _ = tree.query(pts - 2.0 * (proj - d)[:, None] * normal, distance_upper_bound=_MIRROR_CAP)
    dist = np.minimum(dist, _MIRROR_CAP)
    return float(np.partition(dist, n_keep)[:n_keep].mean()), d


def _tilted(normal: np.ndarray, yaw_deg: float, roll_deg: float) -> np.ndarray:
    """``normal`` turned about the y axis (yaw) and then the z axis (roll), in degrees."""
    a, b = np.radians(yaw_deg), np.radians(roll_deg)
    yaw = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    roll = np.array([[np.cos(b), -np.sin(b), 0.0], [np.sin(b), np.cos(b), 0.0], [0.0, 0.0, 1.0]])
    return roll @ yaw @ normal


def _refine_by_symmetry(verts_coarse: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Rigid coarse-head -> refined-head map whose x = 0 is the face's symmetry plane.

    Only the front `_SYMMETRY_DEPTH` mm of the head take part (``usable`` vertices, i.e.
    not on scan-cut lids, which mirror onto themselves for any plane square to them): the
    vault and occiput are often asymmetric (positional flattening), and on the bundled
    cranium CT a whole-head fit leaves the facial midline 5-10 mm off x = 0, while the front
    80 mm put it within 2 mm. Mirror matching alone converges to the wrong plane when the
    coarse frame is yawed by 10 degrees, and the trimmed mirror residual (`_mirror_residual`)
    has a narrow curved valley in yaw and roll (they trade off against each other), which
    a plain grid search misses, and iterated mirror matching (`symmetry_plane`) settles off
    its minimum (its trimming biases it; by 3 degrees on the headsq skin). So the residual
    is sampled on a grid (+-15 degrees of yaw and roll in steps of 7.5) and minimised from
    the two best grid points by Nelder-Mead; the lower result wins. "Front" is then re-measured
    square to the new plane and the search repeated once if the plane turned by more than
    3 degrees.
    The refined frame keeps the coarse "up" (made orthogonal to the new x axis) and puts its
    origin at the foot of the coarse origin on the plane.
    """
    refine = np.eye(4)
    normal = np.array([1.0, 0.0, 0.0])
    for _ in range(2):
        z = apply(refine, verts_coarse)[:, 2]
        front = verts_coarse[usable & (z > z[usable].max() - _SYMMETRY_DEPTH)]
        pts = front[::max(1, len(front) // _SYMMETRY_POINTS)]
        tree = cKDTree(pts)
        grid = []
        for yaw in np.arange(-15.0, 15.1, 7.5):
            for roll in np.arange(-15.0, 15.1, 7.5):
                n = _tilted(normal, yaw, roll)
                grid.append((_mirror_residual(pts, tree, n, 0.6)[0], tuple(n)))
        best = (np.inf, normal, 0.0)
        for _, start in sorted(grid)[:2]:
            start = np.array(start)

            def cost(angles, start=start, pts=pts, tree=tree):
                return _mirror_residual(pts, tree, _tilted(start, angles[0], angles[1]), 0.6)[0]

            fit = optimize.minimize(cost, [0.0, 0.0], method="Nelder-Mead",
                                    options={"xatol": 0.2, "fatol": 1e-3, "maxfev": 60,
                                             "initial_simplex": [[0.0, 0.0], [3.0, 0.0], [0.0, 3.0]]})
            n = _tilted(start, fit.x[0], fit.x[1])
            r, d = _mirror_residual(pts, tree, n, 0.6)
            if r < best[0]:
                best = (r, n, d)
        # mirror matching polishes the plane inside the basin the search found; kept only
        # if its residual stays within 10 % (it can slide along the valley otherwise)
        n, _ = symmetry_plane(pts, normal=best[1], iterations=30)
        r, d = _mirror_residual(pts, tree, n, 0.6)
        if r <= 1.1 * best[0]:
            best = (r, n, d)
        moved = np.degrees(np.arccos(np.clip(best[1] @ normal, -1.0, 1.0)))
        _, normal, d = best
        refine = frame_from_axes(d * normal, normal, [0.0, 1.0, 0.0])
        if moved < 3.0:  # the front region hardly changes: no need to re-measure it
            break
    return refine


# --- the working frame --------------------------------------------------------------------


class _Work:
    """The mesh in the working head frame, with its lids; the frame is refined step by step.

    Attributes
    ----------
    mesh : trimesh.Trimesh
        The input mesh (input coordinates), used for sections and ray casting.
    frame : numpy.ndarray, shape (4, 4)
        Current input -> working-frame transform.
    verts : numpy.ndarray, shape (n, 3), float64
        Vertices in the working frame.
    caps : list of skull2face.geometry.lids.Lid
        Lids in the working frame.
    """

    def __init__(self, mesh: trimesh.Trimesh, coarse: np.ndarray):
        self.mesh = mesh
        self._v_in = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        v_coarse = apply(coarse, self._v_in)
        # lids first, in the coarse frame; the input's own axes are candidates too: a mesh
        # taken from a CT keeps the scanner's coordinates, whose axes the cuts follow
        caps = find_lids(v_coarse, faces, directions=list(coarse[:3, :3].T),
                         labels=[f"{a} axis of the input" for a in "xyz"])
        usable = np.ones(len(v_coarse), dtype=bool)
        for c in caps:
            close = np.flatnonzero(c.distance(v_coarse) <= 3.0)
            on = cKDTree(c.points).query(v_coarse[close], distance_upper_bound=_LID_REACH)[0] < np.inf
            usable[close[on]] = False
        refine = _refine_by_symmetry(v_coarse, usable)
        self.frame = refine @ coarse
        self.verts = apply(refine, v_coarse)
        self.caps = [c.transformed(refine) for c in caps]
        back = invert_rigid(self.frame)
        self._caps_in = [c.transformed(back) for c in self.caps]
        self._cap_trees = [cKDTree(c.points) for c in self._caps_in]
        # height reference of the upper orbital margins (input coordinates), found once
        self.orbit_top: np.ndarray | None | bool = None

    def set_frame(self, frame: np.ndarray) -> None:
        """Move to a new working frame (input -> head)."""
        self.frame = frame
        self.verts = apply(frame, self._v_in)
        self.caps = [c.transformed(frame) for c in self._caps_in]

    def move(self, matrix: np.ndarray) -> None:
        """Compose a rigid change of the working frame (old working -> new working)."""
        self.set_frame(matrix @ self.frame)

    def lid_depth(self, points: Any) -> np.ndarray:
        """Distance (mm) of points inside the nearest lid; +inf where the mesh has none.

        Only points over a lid's footprint count (within `_LID_REACH` of its faces): a
        plane fitted to a lid a degree off would otherwise claim surfaces far away from it.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.full(len(p), np.inf)
        if not self.caps:
            return out
        p_in = apply(invert_rigid(self.frame), p)
        for cap, tree in zip(self._caps_in, self._cap_trees, strict=True):
            near = tree.query(p_in, distance_upper_bound=_LID_REACH)[0] < np.inf
            out = np.where(near, np.minimum(out, cap.distance(p_in)), out)
        return out

    def on_lid(self, points: Any) -> np.ndarray:
        """True for points (n, 3) lying on a lid (within `_CAP_TOL`)."""
        return self.lid_depth(points) < _CAP_TOL

    def to_input(self, point: np.ndarray) -> np.ndarray:
        """A working-frame point (3,) in input coordinates."""
        return apply(invert_rigid(self.frame), point)


# --- step 3: the midline profile ------------------------------------------------------------


@dataclass
class _Profile:
    """The anterior outline of the mid-sagittal section, z_front(y), in the working frame.

    Attributes
    ----------
    y : numpy.ndarray, shape (K,)
        Heights, ascending, every `_STEP` mm.
    z : numpy.ndarray, shape (K,)
        Anterior-most section point at each height; NaN where the section has none or where
        that point lies on a lid.
    pts : numpy.ndarray, shape (M, 2)
        Outline points (y, z) of the slab seen from the front and from below, lids excluded.
    lid_pts : numpy.ndarray, shape (L, 2)
        The outline points that lie on lids: where the scan cut the slab.
    lid_row : numpy.ndarray, shape (K,), bool
        Heights whose anterior-most point lies on a lid (z is NaN there).
    """

    y: np.ndarray
    z: np.ndarray
    pts: np.ndarray
    lid_pts: np.ndarray
    lid_row: np.ndarray

    def index(self, y: float) -> int:
        """Index of the sample nearest height ``y`` (clipped to the profile)."""
        return int(np.clip(np.rint((y - self.y[0]) / _STEP), 0, len(self.y) - 1))

    def span(self, y_lo: float, y_hi: float) -> np.ndarray:
        """Indices of valid samples with ``y_lo <= y <= y_hi``."""
        k = np.flatnonzero((self.y >= y_lo - 1e-9) & (self.y <= y_hi + 1e-9))
        return k[np.isfinite(self.z[k])]

    def cut_within(self, y_lo: float, y_hi: float, z_min: float = -np.inf) -> bool:
        """Whether the scan cut the slab between two heights, in front of ``z_min``."""
        p = self.lid_pts
        return bool(np.any((p[:, 0] >= y_lo) & (p[:, 0] <= y_hi) & (p[:, 1] >= z_min)))

    def near_lid(self, y: float, z: float, radius: float) -> bool:
        """Whether a lid lies within ``radius`` mm of the outline point (y, z)."""
        p = self.lid_pts
        return bool(np.any((p[:, 0] - y) ** 2 + (p[:, 1] - z) ** 2 <= radius ** 2))

    def highest_cut(self, y_max: float, z_min: float) -> float | None:
        """Height of the highest lid point below ``y_max`` in front of ``z_min``, or None."""
        p = self.lid_pts
        sel = (p[:, 0] <= y_max) & (p[:, 1] >= z_min)
        return float(p[sel, 0].max()) if sel.any() else None

    def point(self, k: int) -> np.ndarray:
        """Working-frame point (0, y, z) of sample ``k``."""
        return np.array([0.0, self.y[k], self.z[k]])

    def concavity(self, half: float) -> np.ndarray:
        """How far each sample lies behind the chord joining the outline points ``half`` mm of
        arc length above and below it (mm, measured across the chord; positive in a hollow,
        negative on a bump, NaN within ``half`` of the outline's ends).

        Arc length and a perpendicular distance make the measure independent of the head's
        pitch, and keep the rounded vault (where the outline runs nearly horizontal) from
        looking like a sharp bump.
        """
        out = np.full(len(self.z), np.nan)
        ks = np.flatnonzero(np.isfinite(self.z))
        if len(ks) < 3:
            return out
        p = np.column_stack([self.y[ks], self.z[ks]])
        s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
        inner = (s >= s[0] + half) & (s <= s[-1] - half)
        if not inner.any():
            return out
        below = np.column_stack([np.interp(s[inner] - half, s, p[:, 0]), np.interp(s[inner] - half, s, p[:, 1])])
        above = np.column_stack([np.interp(s[inner] + half, s, p[:, 0]), np.interp(s[inner] + half, s, p[:, 1])])
        chord = below - above
        length = np.maximum(np.linalg.norm(chord, axis=1), 1e-9)
        # the chord runs downwards; its anterior normal is (t_z, -t_y)
        normal = np.column_stack([chord[:, 1], -chord[:, 0]]) / length[:, None]
        out[ks[inner]] = np.einsum("ij,ij->i", above - p[inner], normal)
        return out


# The profile is the outline of a slab |x| <= 3..4 mm rather than of the plane x = 0 alone:
# on the skull, thin midline bone (the internasal suture, the nasal spine) is often lost at
# CT resolution while the bone a few millimetres to the side survives; on the face, the nose
# may deviate a little from the symmetry plane. See `_slab_outline` for how the slab's rays
# are combined.
_SLAB_HALF = {"skull": 4.0, "face": 3.0}
# Rotation taking working coordinates to a view from below (view +z = working -y).
_FROM_BELOW = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])


def _slab_outline(work: _Work, view: np.ndarray, surface: str) -> np.ndarray:
    """Outline of the midline slab seen along -z of ``view @ work.frame``.

    Rays are cast every `_STEP` mm across the slab |x| <= `_SLAB_HALF` and along the view's
    y; each row of rays is reduced to one outline point: the front-most hit on the skull
    (bridging thin bone lost at CT resolution), the upper quartile of the hits on the face
    (close to the front-most on the convex nose and chin, but ignoring a tube or wire lying
    on the skin at the slab's edge). Rows where fewer than half of the rays hit are dropped.

    Returns
    -------
    numpy.ndarray, shape (n, 3)
        Outline points in the working frame, x = 0.
    """
    half = _SLAB_HALF[surface]
    frame = view @ work.frame
    verts = apply(view, work.verts)
    lo, hi = verts[:, 1].min(), verts[:, 1].max()
    rows = int(np.ceil((hi - lo) / _STEP)) + 3
    cols = int(round(2 * half / _STEP)) + 1
    shift = np.eye(4)
    shift[1, 3] = -(lo + hi) / 2.0
    spec = RenderSpec((rows, cols), _STEP, shift @ frame, z_near=-1e4, z_far=1e4)
    height = render(work.mesh, spec).height.astype(np.float64)
    _, y = spec.xy_grid()
    enough = np.isfinite(height).sum(axis=1) * 2 >= cols
    if not enough.any():
        return np.zeros((0, 3))
    h = height[enough]
    with np.errstate(all="ignore"):
        z = np.nanmax(h, axis=1) if surface == "skull" else np.nanpercentile(h, 75, axis=1)
    pts_view = np.column_stack([np.zeros(len(z)), y[enough, 0] + (lo + hi) / 2.0, z])
    return apply(invert_rigid(view), pts_view)


def _profile(work: _Work, surface: str) -> _Profile | None:
    """The anterior outline of the midline slab, z_front(y), plus the slab's outline seen
    from below (for the underside of the chin)."""
    front = _slab_outline(work, np.eye(4), surface)
    if not len(front):
        return None
    below = _slab_outline(work, _FROM_BELOW, surface)
    pts = np.concatenate([front, below])
    on_lid = work.on_lid(pts)
    y0 = np.floor(front[:, 1].min() / _STEP) * _STEP
    k = np.rint((front[:, 1] - y0) / _STEP).astype(np.int64)
    size = int(k.max()) + 1
    z = np.full(size, np.nan)
    z[k] = front[:, 2]
    # outline points on a lid are not anatomy: drop them from the outline, remember where
    lid_row = np.zeros(size, dtype=bool)
    lid_row[k[on_lid[:len(front)]]] = True
    z[lid_row] = np.nan
    return _Profile(y0 + _STEP * np.arange(size), z, pts[~on_lid][:, 1:], pts[on_lid][:, 1:], lid_row)


# --- results --------------------------------------------------------------------------------


@dataclass
class _Result:
    """One landmark's outcome in the working frame: a point, or None with the reason."""

    point: np.ndarray | None
    confidence: str = "medium"
    note: str = ""
    source: str = "detected"

    @property
    def found(self) -> bool:
        return self.point is not None


def _missing(note: str) -> _Result:
    return _Result(None, note=note, source="missing")


def _plateau(values: np.ndarray, candidates: np.ndarray, tol: float = 0.25) -> int:
    """The candidate at the middle of the plateau of near-maximal values.

    Taking the plain arg-max of a flat extreme (a vertical forehead, a blocky CT) jumps
    between far-apart points under tiny perturbations; the middle of everything within
    ``tol`` mm of the maximum does not.
    """
    v = values[candidates]
    top = candidates[v >= np.nanmax(v) - tol]
    return int(top[len(top) // 2])


def _local_maxima(values: np.ndarray, candidates: np.ndarray, min_value: float) -> np.ndarray:
    """Candidates that are local maxima (>= both neighbours) with value >= min_value."""
    v = values
    out = []
    for k in candidates:
        if not np.isfinite(v[k]) or v[k] < min_value:
            continue
        left = v[k - 1] if k > 0 else -np.inf
        right = v[k + 1] if k + 1 < len(v) else -np.inf
        if v[k] >= np.nan_to_num(left, nan=-np.inf) and v[k] >= np.nan_to_num(right, nan=-np.inf):
            out.append(k)
    return np.asarray(out, dtype=np.int64)


# --- step 3a: profile helpers -----------------------------------------------------------------


def _front_hull(y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Anterior convex hull of profile samples (ascending ``y``), evaluated at every ``y``.

    The hull bridges every hollow of the outline (nasion, the nasal aperture, the mouth), so
    its height above the outline measures how deep each hollow is.
    """
    hull: list[int] = []
    for i in range(len(y)):
        # keep the chain turning clockwise seen with y right and z up (the upper hull)
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            cross = (y[b] - y[a]) * (z[i] - z[a]) - (z[b] - z[a]) * (y[i] - y[a])
            if cross >= 0:
                hull.pop()
            else:
                break
        hull.append(i)
    return np.interp(y, y[hull], z[hull])


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) indices of the runs of True in a 1D mask."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def _dents(prof: _Profile) -> np.ndarray:
    """Depth (mm) of every sample below the profile's anterior hull; +inf where the midline
    has no surface (a hole), NaN on lids and outside the profile's extent."""
    ks = np.flatnonzero(np.isfinite(prof.z))
    out = np.full(len(prof.z), np.nan)
    if len(ks) < 2:
        return out
    lo, hi = ks[0], ks[-1]
    hull = _front_hull(prof.y[ks], prof.z[ks])
    inside = np.arange(lo, hi + 1)
    hull_all = np.interp(prof.y[inside], prof.y[ks], hull)
    d = hull_all - prof.z[inside]
    d = np.where(np.isnan(prof.z[inside]), np.inf, d)
    d = np.where(prof.lid_row[inside], np.nan, d)
    out[inside] = d
    return out


def _found(prof: _Profile, k: int, confidence: str, note: str) -> _Result:
    return _Result(prof.point(k), confidence, note)


# --- step 3b: skull midline ------------------------------------------------------------------

# Typical adult midline dimensions (mm) that place the search windows, generous on purpose:
# nasal bones (nasion-rhinion) 20-25 mm long (Martin & Saller); glabella 10-20 mm above
# nasion; nasal aperture 30-35 mm high; nasospinale-prosthion (upper alveolar height) 15-20 mm;
# maxillary central incisor crown 10.5 mm (Wheeler's Dental Anatomy) with the alveolar crest
# about 1 mm above its cervical line; nasion-menton (face height) 110-130 mm, pogonion
# 10-15 mm above menton.
_APERTURE_DEPTH = 8.0       # the aperture is a hole or a hollow this deep behind the hull
_APERTURE_MIN_AREA = 150.0  # mm^2 of hollow (a 30 mm x 15 mm aperture has ~450)
_NASAL_BONES = (3.0, 40.0)  # nasion lies this far above the top of the aperture
_GLABELLA_ABOVE = (3.0, 30.0)
_N_BELOW_ORBIT_TOP = (-3.0, 15.0)  # nasion lies this far below the supraorbital margins
_DENTAL_MAX = 45.0          # upper incisal edge at most this far below nasospinale
_INCISAL_STEP = 4.0         # a step back of the outline this large ends the upper teeth
_CROWN_TO_PR = 11.0         # prosthion lies this far above the incisal edge...
_NS_TO_PR_MIN = 15.0        # ...but never closer than this below nasospinale
_CHIN_BELOW_N = 150.0       # lowest the chin is searched for below nasion
_CHIN_AHEAD = 45.0          # and furthest behind nasion (a flexed head, a retruded chin;
                            # the neck lies further back)
_FACE_HEIGHT_MIN = 80.0     # the chin lies at least this far below nasion


def _aperture(prof: _Profile) -> tuple[int, int] | None:
    """Samples just above (rhinion side) and just below (nasospinale side) the nasal aperture.

    The aperture is the highest hollow of the outline that is at least `_APERTURE_DEPTH`
    deep (or a hole, where the midline has no bone) over at least `_APERTURE_MIN_AREA`: from
    the vertex down, the profile is convex except for the shallow nasion notch, so the first
    deep hollow is the aperture, whatever lies lower (mouth, the neck behind the chin).
    """
    dent = _dents(prof)
    deep = np.nan_to_num(dent, nan=0.0) > _APERTURE_DEPTH
    valid = np.isfinite(prof.z)
    solid = valid & ~deep
    near_lid = ndimage.binary_dilation(prof.lid_row, iterations=int(5.0 / _STEP))
    for first, last in reversed(_runs(deep)):
        area = float(np.minimum(dent[first:last + 1], 40.0).sum() * _STEP)
        above = np.flatnonzero(valid[last + 1:])
        below = np.flatnonzero(valid[:first])
        if area < _APERTURE_MIN_AREA or not len(above) or not len(below):
            continue
        # a hollow next to a scan cut is the cut's doing (rays passing over a cut bone
        # reach the far side of the skull), and the aperture has the nasal bones above it
        if near_lid[first:last + 1].any():
            continue
        if solid[last + 1:last + 1 + int(25.0 / _STEP)].sum() * _STEP < 10.0:
            continue
        return int(below[-1]), int(last + 1 + above[0])
    return None


def _upper_teeth_end(prof: _Profile, k_ns: int) -> tuple[int | None, str]:
    """Lowest sample of the upper dentition below nasospinale, and how it ends.

    Walking down from nasospinale the outline follows the alveolar process and the incisor
    crowns until (a) it steps back by `_INCISAL_STEP` (the incisal edge over the lower teeth
    or an open mouth), (b) the midline runs out of bone (no mandible), or (c) a lid (the scan
    ended). Returns (index or None, one of "step", "end", "cut", "none").
    """
    y_stop = prof.y[k_ns] - _DENTAL_MAX
    k = k_ns
    while k > 0 and prof.y[k - 1] >= y_stop:
        if prof.near_lid(prof.y[k], prof.z[k], 3.0):
            return None, "cut"
        if not np.isfinite(prof.z[k - 1]) or prof.z[k - 1] < prof.z[k] - _INCISAL_STEP:
            # an end that a lid lies just under is the scan's end, not the teeth's
            if prof.near_lid(prof.y[k] - 4.0, prof.z[k], 8.0):
                return None, "cut"
            rest = np.isfinite(prof.z[:k - 1]) & (prof.y[:k - 1] >= prof.y[k_ns] - _CHIN_BELOW_N)
            return k, ("step" if rest.any() or np.isfinite(prof.z[k - 1]) else "end")
        k -= 1
    if k == 0 and prof.y[0] >= y_stop:
        # the outline itself ends: the lowest bone of the mesh is the upper teeth
        if prof.near_lid(prof.y[0] - 4.0, prof.z[0], 8.0):
            return None, "cut"
        return 0, "end"
    return None, "none"


def _front_map(work: _Work, centre: tuple[float, float], size: tuple[int, int],
               mm_per_px: float = 1.0):
    """Front depth map of the mesh around a working-frame (x, y) centre.

    Returns
    -------
    height : numpy.ndarray, shape (H, W), float64
        Working-frame z of the first surface seen from the front; NaN where none.
    x, y : numpy.ndarray, shape (H, W), float64
        Working-frame x and y of each pixel centre.
    """
    shift = np.eye(4)
    shift[:2, 3] = [-centre[0], -centre[1]]
    spec = RenderSpec(size, mm_per_px, shift @ work.frame, z_near=-1e4, z_far=1e4)
    dm = render(work.mesh, spec)
    x, y = spec.xy_grid()
    return dm.height.astype(np.float64), x + centre[0], y + centre[1]


def _hollows(h: np.ndarray, radius_px: int) -> np.ndarray:
    """How deep (mm) each pixel of a depth map lies below a disc of ``radius_px`` pixels
    rolled over the surface from the front (a morphological closing); 0 on background."""
    filled = np.where(np.isfinite(h), h, np.nanmin(h) - 50.0)
    r = np.arange(-radius_px, radius_px + 1)
    disc = r[:, None] ** 2 + r[None, :] ** 2 <= radius_px ** 2
    depth = ndimage.grey_closing(filled, footprint=disc) - filled
    return np.where(np.isfinite(h), depth, 0.0)


def _supraorbital_point(work: _Work, rhinion: np.ndarray) -> np.ndarray | None:
    """A working-frame point at the height of the upper orbital margins, or None.

    Each orbit is the deep hollow beside the nose in a front depth map (> 10 mm below a
    24 mm disc rolled over the bone, within 12-40 mm of the midline); its margin is the
    hollow's top. The lower of the two sides is kept, so that a hole in the thin frontal
    bone over one orbit does not lift it.
    """
    h, x, y = _front_map(work, (0.0, rhinion[1] + 30.0), (81, 101))
    if not np.isfinite(h).any():
        return None
    deep = _hollows(h, 12) > 10.0
    tops = []
    for side in (-1.0, 1.0):
        labels, n = ndimage.label(deep & (side * x >= 12.0) & (side * x <= 40.0))
        sizes = np.bincount(labels.ravel())[1:]
        big = np.flatnonzero(sizes >= 60) + 1
        # an orbit opening is ~35 x 40 mm: a few hundred pixels in all
        if sizes[big - 1].sum() < 150 if len(big) else True:
            return None
        tops.append(y[np.isin(labels, big)].max())
    return np.array([0.0, min(tops), rhinion[2]])


def _skull_midline(prof: _Profile, given: dict[str, np.ndarray], work: _Work) -> dict[str, _Result]:
    """N, G, Ns, Pr, Pog, Gn on the midline outline of a skull (working frame).

    * Ns: the lower end of the nasal aperture (`_aperture`), i.e. the first bone below it.
    * N: the deepest notch (chord over +-8 mm of arc) between the top of the aperture and
      40 mm above it, held to the height of the upper orbits (`_supraorbital_point`).
    * G: the most prominent point 3-30 mm above N (`_glabella`).
    * Pr: stated heuristic: walking down from Ns, the upper dentition ends where the outline
      steps back >= 4 mm or stops (`_upper_teeth_end`); Pr lies 11 mm above that incisal
      edge (crown 10.5 mm + ~1 mm to the alveolar crest), less when the dentition is short
      (no crowns), never closer than 15 mm below Ns. Missing when a lid cuts the dentition.
    * Pog, Gn: on the chin below the teeth (`_chin`).
    """
    res: dict[str, _Result] = {}
    ap = _aperture(prof)
    if ap is None:
        why = "no nasal aperture found on the midline outline, so the face could not be oriented"
        return {n: _missing(why) for n in ("N", "G", "Ns", "Pr", "Pog", "Gn")}
    k_ns, k_rhi = ap

    # Nasion: the deepest notch of the outline above the nasal bones, at the level of the
    # upper orbits (3 mm above to 15 mm below the supraorbital margins): thin nasal bones lost
    # at CT resolution leave a false notch lower down, at the stump of the nasal bridge
    conc = prof.concavity(8.0)
    lo, hi = prof.y[k_rhi] + _NASAL_BONES[0], prof.y[k_rhi] + _NASAL_BONES[1]
    # found once, in the first (coarse, most frontal) view, then carried along
    if work.orbit_top is None:
        top = _supraorbital_point(work, prof.point(k_rhi))
        work.orbit_top = False if top is None else work.to_input(top)
    sup = None if work.orbit_top is False else float(apply(work.frame, work.orbit_top)[1])
    # orbits whose top is not 10-45 mm above the aperture are something else
    if sup is not None and 10.0 <= sup - prof.y[k_rhi] <= 45.0:
        lo, hi = max(lo, sup - _N_BELOW_ORBIT_TOP[1]), min(hi, sup - _N_BELOW_ORBIT_TOP[0])
    ks = prof.span(lo, hi)
    ks = ks[np.isfinite(conc[ks])]
    if len(ks):
        k = int(ks[np.nanargmax(conc[ks])])
        depth = conc[k]
        res["N"] = _found(prof, k, "high" if depth > 1.5 else "medium" if depth > 0.3 else "low",
                          f"deepest notch of the midline outline above the nasal bones ({depth:.1f} mm "
                          "behind the chord over +-8 mm)")
    else:
        res["N"] = _missing("no midline outline above the nasal aperture")
    _use_given(res, "N", given)
    n = res["N"].point

    res["G"] = _glabella(prof, n, "G") if n is not None else _missing("needs nasion")
    _use_given(res, "G", given)

    res["Ns"] = _found(prof, k_ns, "medium", "lower end of the nasal aperture on the midline outline")
    _use_given(res, "Ns", given)

    k_tip, how = _upper_teeth_end(prof, k_ns)
    if how == "cut":
        res["Pr"] = _missing("the scan ends in the alveolar process, above the incisal edges, so the "
                             "alveolar margin between the upper incisors cannot be told from the cut")
    elif k_tip is None:
        k = prof.index(prof.y[k_ns] - (_NS_TO_PR_MIN + 3.0))
        ks = prof.span(prof.y[k] - 1.0, prof.y[k] + 1.0)
        res["Pr"] = (_found(prof, int(ks[0]), "low", "no incisal edge found: placed 18 mm below nasospinale "
                            "(mean nasospinale-prosthion height)") if len(ks)
                     else _missing("no midline bone below nasospinale"))
    else:
        ns_to_tip = prof.y[k_ns] - prof.y[k_tip]
        # with crowns present the alveolar margin is ~11 mm above the incisal edge; a short
        # dentition (< 15 mm below Ns) has no crowns left, and its lowest point is the margin
        above = float(np.clip(ns_to_tip - _NS_TO_PR_MIN, 0.0, _CROWN_TO_PR))
        k = prof.index(prof.y[k_tip] + above)
        ks = prof.span(prof.y[k] - 1.0, prof.y[k] + 1.0)
        k = int(ks[np.argmin(np.abs(ks - k))]) if len(ks) else k_tip
        res["Pr"] = _found(prof, k, "low",
                           f"{above:.0f} mm above the lowest point of the upper teeth on the midline "
                           f"(incisal edge, {ns_to_tip:.0f} mm below Ns; crown ~10.5 mm)")
    _use_given(res, "Pr", given)

    res.update(_chin(prof, res, given, surface="skull",
                     top=(prof.y[k_tip] - 3.0) if k_tip is not None else prof.y[k_ns] - 30.0))
    return res


def _use_given(res: dict[str, _Result], name: str, given: dict[str, np.ndarray]) -> None:
    """Replace a detection by the user's landmark, which always wins."""
    if name in given:
        res[name] = _Result(np.asarray(given[name], dtype=np.float64), "high", "given by the user", "given")


def _in_front_of_chord(prof: _Profile, ks: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Signed distance (mm) of outline samples ``ks`` in front of the chord from a to b
    (2D y, z points), positive on the anterior side."""
    t = (b - a) / max(np.linalg.norm(b - a), 1e-9)
    normal = np.array([-t[1], t[0]])
    if normal[1] < 0:
        normal = -normal
    p = np.column_stack([prof.y[ks], prof.z[ks]])
    return _dot(p - a, normal)


def _prominence(prof: _Profile, ks: np.ndarray, a: np.ndarray, b: np.ndarray) -> int:
    """The sample of ``ks`` standing furthest in front of the chord a-b: the "most prominent"
    point of a bump (glabella over the forehead, pogonion over the symphysis). Measuring
    against the chord rather than along z keeps it independent of the head's pitch."""
    d = np.full(len(prof.z), -np.inf)
    d[ks] = _in_front_of_chord(prof, ks, a, b)
    return _plateau(d, ks, tol=0.3)


def _glabella(prof: _Profile, nasion: np.ndarray, name: str) -> _Result:
    """Most prominent midline point 3-30 mm above nasion, measured against the chord from
    nasion to the outline 35 mm above it (or to the highest outline point below a cut)."""
    ks = prof.span(nasion[1] + _GLABELLA_ABOVE[0], nasion[1] + _GLABELLA_ABOVE[1] + 5.0)
    if len(ks) < 3:
        return _missing("no midline outline 3-30 mm above nasion (cut off by the scan?)")
    top = ks[-1]
    k = _prominence(prof, ks[prof.y[ks] <= nasion[1] + _GLABELLA_ABOVE[1]], nasion[1:],
                    np.array([prof.y[top], prof.z[top]]))
    at_cut = prof.cut_within(prof.y[k], prof.y[k] + 6.0, prof.z[k] - 20.0)
    return _found(prof, k, "low" if at_cut else "medium",
                  "most prominent midline point 3-30 mm above nasion (in front of the chord from nasion "
                  "to the forehead 35 mm up)" + ("; the scan ends just above it" if at_cut else ""))


def _chin(prof: _Profile, res: dict[str, _Result], given: dict[str, np.ndarray], surface: str,
          top: float) -> dict[str, _Result]:
    """Pogonion, menton and gnathion on the chin of the outline, or why they are missing.

    The chin is first located as the most anterior-inferior point (furthest along the 45
    degree down-and-forward direction) of the outline within `_CHIN_AHEAD` mm behind nasion
    and below ``top`` (the upper teeth or the upper lip). Menton is the lowest chin point
    near it; pogonion the chin point standing furthest in front of the chord from menton to
    the outline 30 mm above menton (the mental protuberance over the symphysis, whatever the
    pitch and whether the mouth is open); gnathion the chin point furthest along the bisector
    of "across the nasion-pogonion line" and "down", i.e. midway between the two.
    """
    skull = surface == "skull"
    names_ = ("Pog", "Gn") if skull else ("pog'", "me", "gn'")
    nasion = res["N" if skull else "n"].point
    if nasion is None:
        return {n: _missing("needs nasion") for n in names_}
    lowest = nasion[1] - _CHIN_BELOW_N
    pts = prof.pts
    run = _chin_run(prof, lowest, top, nasion[2] - _CHIN_AHEAD)
    corner = None
    if run is not None:
        y_lo, y_hi, z_lo = prof.y[run].min(), prof.y[run].max(), np.nanmin(prof.z[run])
        zone = pts[(pts[:, 0] >= y_lo - 20.0) & (pts[:, 0] <= y_hi) & (pts[:, 1] >= z_lo - 10.0)]
        corner = zone[np.argmax(zone[:, 1] - zone[:, 0])]
    if corner is None or corner[0] > nasion[1] - _FACE_HEIGHT_MIN:
        cut_y = prof.highest_cut(nasion[1] - 20.0, nasion[2] - _CHIN_AHEAD)
        if cut_y is not None:
            why = (f"the scan ends {nasion[1] - cut_y:.0f} mm below nasion, above the chin "
                   f"(the chin lies 100-130 mm below nasion)")
        else:
            what = "bone" if skull else "surface"
            why = (f"no {what} on the midline 80-150 mm below nasion: "
                   + ("the mandible is absent" if skull else "the face ends above the chin"))
        return {n: _missing(why) for n in names_}
    out: dict[str, _Result] = {}
    name_pog, name_gn = names_[0], names_[-1]
    if prof.near_lid(corner[0], corner[1], 8.0):
        return {n: _missing("the scan ends under the chin: its outline is incomplete") for n in names_}

    me, me_note, me_conf = _menton(prof, corner)
    if me is None:
        return {n: _missing(me_note) for n in names_}
    if not skull:
        out["me"] = _Result(me, me_conf, me_note)
        _use_given(out, "me", given)
        me = out["me"].point

    ks = prof.span(me[1] + 1.0, min(me[1] + 30.0, top))
    if len(ks) < 3:
        return {**out, **{n: _missing("no chin outline above menton") for n in (name_pog, name_gn)}}
    k = _prominence(prof, ks[prof.y[ks] <= me[1] + 25.0], me[1:], np.array([prof.y[ks[-1]], prof.z[ks[-1]]]))
    out[name_pog] = _found(prof, k, "medium", "most prominent chin point: furthest in front of the chord from "
                                              "menton to the outline 30 mm above it")
    _use_given(out, name_pog, given)
    pog = out[name_pog].point
    # gnathion: furthest along the bisector of the chin's two extreme directions
    facial = pog[1:] - nasion[1:]
    ahead = np.array([-facial[1], facial[0]]) / np.linalg.norm(facial)  # (y, z), anterior
    if ahead[1] < 0:
        ahead = -ahead
    bis = ahead + np.array([-1.0, 0.0])
    bis /= np.linalg.norm(bis)
    arc = pts[(pts[:, 0] <= pog[1] + 0.5) & (pts[:, 0] >= me[1] - 0.5) & (pts[:, 1] >= me[2] - 0.5)]
    if len(arc):
        g = arc[np.argmax(_dot(arc, bis))]
        out[name_gn] = _Result(np.array([0.0, g[0], g[1]]), "medium",
                               "chin point furthest along the bisector of the nasion-pogonion normal and "
                               "'down' (midway between pogonion and menton)")
        _use_given(out, name_gn, given)
    else:
        out[name_gn] = _missing("no chin outline between pogonion and menton")
    return out


def _chin_run(prof: _Profile, lowest: float, top: float, z_min: float) -> np.ndarray | None:
    """Samples of the anterior outline that belong to the chin, or None.

    The outline between ``lowest`` and ``top`` (in front of ``z_min``) is split where it
    jumps back by more than 8 mm or has a gap of more than 3 mm; the chin is the most
    anterior piece at least 10 mm tall. This keeps the cervical vertebrae or the neck, which
    lie far behind the chin, out of the search even when the pitch brings them low and
    forward.
    """
    ks = prof.span(lowest, top)
    ks = ks[prof.z[ks] >= z_min]
    if not len(ks):
        return None
    breaks = np.flatnonzero((np.diff(ks) * _STEP > 3.0) | (np.abs(np.diff(prof.z[ks])) > 8.0)) + 1
    pieces = [p for p in np.split(ks, breaks) if (len(p) - 1) * _STEP >= 10.0]
    if not pieces:
        return None
    return max(pieces, key=lambda p: np.nanmax(prof.z[p]))


def _menton(prof: _Profile, corner: np.ndarray) -> tuple[np.ndarray | None, str, str]:
    """Lowest point of the chin near its anterior-inferior corner (2D y, z), on the slab's
    outline seen from the front and from below.

    Searched within 25 mm behind the corner, which covers the chin's underside but not the
    neck or hyoid. If the underside keeps descending to the back of that window (a flexed
    head, a full submental region), there is no distinct lowest point; the chin's turning
    point is taken instead: the point furthest below the chord from the corner to the
    window's lowest point.
    """
    pts = prof.pts
    pog = np.array([0.0, corner[0], corner[1]])
    sel = pts[(pts[:, 0] <= pog[1] + 5.0) & (pts[:, 0] >= pog[1] - 40.0) & (pts[:, 1] >= pog[2] - 25.0)
              & (pts[:, 1] <= pog[2] + 1.0)]
    if not len(sel):
        return None, "no chin outline below pogonion", "low"
    low = sel[np.argmin(sel[:, 0])]
    if low[1] > pog[2] - 22.0:
        return np.array([0.0, low[0], low[1]]), "lowest point of the chin on the midline section", "medium"
    # descending to the window's back: take the turning point of the outline instead
    chord = low - pog[1:]
    normal = np.array([chord[1], -chord[0]]) / np.linalg.norm(chord)  # down and forward
    t = sel[np.argmax(_dot(sel - pog[1:], normal))]
    return (np.array([0.0, t[0], t[1]]),
            "no distinct lowest chin point (the underside keeps descending backwards): turning point "
            "of the chin outline", "low")


# --- step 3c: face midline -------------------------------------------------------------------

# Typical adult soft-tissue midline dimensions (mm), after Farkas (Anthropometry of the Head
# and Face, 1994): nasion-pronasale 45-55, nasion above glabella by 10-20, pronasale-subnasale
# height 15-25, subnasale-menton 60-75 (pogonion 10-20 above menton).
_NOSE_BUMP = 2.0             # the nose tip stands this far (mm) in front of the chord over +-10 mm
_NOSE_NOTCH_BELOW = 25.0     # ...with the subnasal notch within this far below it
_NOSE_DROP = 5.0             # and the face 10 mm to its sides this far behind it
_NASION_ABOVE_PRN = (15.0, 70.0)
_SUBNASALE_BELOW_PRN = (2.0, 30.0)


def _nose_tip(prof: _Profile, work: _Work) -> int | None:
    """Index of pronasale on a face outline, or None.

    Candidates are bumps of the outline (>= `_NOSE_BUMP` in front of the chord over +-10 mm
    of arc) with a notch below them within `_NOSE_NOTCH_BELOW` mm: the nose overhangs the
    lip and the lips the mouth, while the chin recedes into the neck. Of these the nose is
    the narrow one: 10 mm to either side of its tip the face lies ~10 mm further back
    (measured 9.9 and 11.3 mm on the bundled CTs), while lips, chin and brow are broad
    (0.5-3.7 mm). The candidate with the largest such drop, at least `_NOSE_DROP`, wins.
    """
    conc = prof.concavity(10.0)
    bump = -conc
    ks = np.flatnonzero(np.isfinite(bump))
    cands = []
    for k in _local_maxima(bump, ks, _NOSE_BUMP):
        below = prof.span(prof.y[k] - _NOSE_NOTCH_BELOW, prof.y[k] - 1.0)
        below = below[np.isfinite(conc[below])]
        if len(below) and np.nanmax(conc[below]) >= _NOSE_BUMP:
            cands.append(k)
    if not cands:
        return None
    y_lo, y_hi = prof.y[cands].min(), prof.y[cands].max()
    rows = int(np.ceil(y_hi - y_lo)) + 3
    h, x, y = _front_map(work, (0.0, (y_lo + y_hi) / 2.0), (rows, 25))
    drops = []
    for k in cands:
        r = int(np.argmin(np.abs(y[:, 0] - prof.y[k])))
        side = h[r, np.abs(np.abs(x[r]) - 10.0) <= 1.0]
        drops.append(prof.z[k] - np.nanmean(side) if np.isfinite(side).any() else -np.inf)
    best = int(np.argmax(drops))
    if drops[best] < _NOSE_DROP:
        return None
    k0 = cands[best]
    return _plateau(bump, prof.span(prof.y[k0] - 5.0, prof.y[k0] + 5.0), tol=0.2)


def _face_midline(prof: _Profile, given: dict[str, np.ndarray], work: _Work) -> dict[str, _Result]:
    """prn (internal), n, g', sn, pog', me, gn' on the midline outline of a face."""
    res: dict[str, _Result] = {}
    k_prn = _nose_tip(prof, work)
    if k_prn is None:
        why = "no nose found on the midline outline"
        return {n: _missing(why) for n in ("n", "g'", "sn", "pog'", "me", "gn'")}
    res["prn"] = _found(prof, k_prn, "medium", "pronasale: the tip of the nose")
    prn_y = prof.y[k_prn]

    conc = prof.concavity(10.0)
    ks = prof.span(prn_y + _NASION_ABOVE_PRN[0], prn_y + _NASION_ABOVE_PRN[1])
    ks = ks[np.isfinite(conc[ks])]
    if len(ks):
        k = int(ks[np.nanargmax(conc[ks])])
        depth = conc[k]
        res["n"] = _found(prof, k, "high" if depth > 2.0 else "medium" if depth > 0.5 else "low",
                          f"deepest notch of the midline outline between forehead and nose ({depth:.1f} mm "
                          "behind the chord over +-10 mm)")
    else:
        res["n"] = _missing("no midline outline above the nose")
    _use_given(res, "n", given)
    n = res["n"].point

    res["g'"] = _glabella(prof, n, "g'") if n is not None else _missing("needs nasion")
    _use_given(res, "g'", given)

    conc6 = prof.concavity(6.0)
    ks = prof.span(prn_y - _SUBNASALE_BELOW_PRN[1], prn_y - _SUBNASALE_BELOW_PRN[0])
    notches = _local_maxima(conc6, ks, 1.5)
    if len(notches):
        k = int(notches.max())  # the highest clear notch below the tip: under the nose, not the mouth
        res["sn"] = _found(prof, k, "medium", f"first clear notch below the nose tip ({conc6[k]:.1f} mm deep)")
    else:
        ks = ks[np.isfinite(conc6[ks])]
        if len(ks) and not prof.cut_within(prn_y - _SUBNASALE_BELOW_PRN[1], prn_y, prof.z[k_prn] - 30.0):
            k = int(ks[np.nanargmax(conc6[ks])])
            res["sn"] = _found(prof, k, "low", "deepest point of the outline below the nose tip (no clear notch)")
        else:
            res["sn"] = _missing("no outline below the nose tip (the scan ends there?)")
    _use_given(res, "sn", given)
    sn = res["sn"].point

    # the chin search starts below the upper lip (subnasale-stomion is ~20 mm)
    top = (sn[1] - 15.0) if sn is not None else prn_y - 35.0
    res.update(_chin(prof, res, given, surface="face", top=top))
    return res


# --- pitch ----------------------------------------------------------------------------------

_UPPER = {"skull": ("N", "G"), "face": ("n", "g'")}
_LOWER = {"skull": ("Ns", "Pr"), "face": ("sn",)}


def _pitch_fix(res: dict[str, _Result], surface: str) -> np.ndarray | None:
    """Rotation about x (4, 4) that makes +y run from the lower to the upper midline
    landmarks, as `skull2face.geometry.frame.head_frame` defines "up"; None if they are not
    all there or the correction is implausibly large."""
    up_pts = [res[n].point for n in _UPPER[surface] if n in res and res[n].found]
    low_pts = [res[n].point for n in _LOWER[surface] if n in res and res[n].found]
    if not up_pts or not low_pts:
        return None
    up = np.mean(up_pts, axis=0) - np.mean(low_pts, axis=0)
    angle = np.arctan2(up[2], up[1])
    if abs(np.degrees(angle)) > _MAX_PITCH_FIX_DEG or up[1] <= 0:
        return None
    c, s = np.cos(angle), np.sin(angle)
    rot = np.eye(4)
    # maps (0, cos a, sin a) to (0, 1, 0): y' = c y + s z, z' = -s y + c z
    rot[1, 1:3] = [c, s]
    rot[2, 1:3] = [-s, c]
    return rot


def _midline(work: _Work, surface: str, given_in: dict[str, np.ndarray]) -> dict[str, _Result]:
    """Midline landmarks in two passes: the coarse pitch, then the pitch they imply.

    On return ``work``'s frame has the corrected pitch and its origin at nasion (when found).
    """
    find = _skull_midline if surface == "skull" else _face_midline
    res: dict[str, _Result] = {}
    for _ in range(2):
        prof = _profile(work, surface)
        if prof is None:
            why = "the mesh does not cross its own mid-sagittal plane"
            return {n: _missing(why) for n in names.surface_names(surface) if n in _MIDLINE[surface]}
        given = {n: apply(work.frame, p) for n, p in given_in.items()}
        res = find(prof, given, work)
        rot = _pitch_fix(res, surface)
        if rot is None:
            break
        work.move(rot)
    prof = _profile(work, surface)
    given = {n: apply(work.frame, p) for n, p in given_in.items()}
    res = find(prof, given, work)
    nasion = res["N" if surface == "skull" else "n"]
    if nasion.found:
        shift = np.eye(4)
        shift[:3, 3] = -nasion.point
        shift[0, 3] = 0.0  # keep x = 0 on the symmetry plane
        work.move(shift)
        for r in res.values():
            if r.found:
                r.point = r.point + shift[:3, 3]
    return res


_MIDLINE = {"skull": ("N", "G", "Ns", "Pr", "Pog", "Gn"), "face": ("n", "g'", "sn", "pog'", "me", "gn'")}


# --- step 4: paired landmarks ----------------------------------------------------------------

# Boxes are in the working frame with nasion at the origin: (x_min, x_max) measured outward
# from the midline on each side, (y_min, y_max) up, (z_min, z_max) forward. Typical adult
# dimensions behind them: bizygomatic breadth 125-145 mm (Howells 1973; Farkas 1994 on the
# skin), the arch 18-42 mm below nasion and running from 35 to 80 mm behind it (its front
# and back ends, and the temporal bone above and behind it, are excluded: on the bundled
# cranium CT the vault 85 mm behind nasion is wider than the arch); bifrontal
# (frontomalare) breadth 95-110 mm, the lateral orbital rim 5-35 mm behind nasion; bigonial
# breadth 90-110 mm, gonion 25-35 mm above menton and 60-110 mm behind nasion; intercanthal
# width 28-34 mm and alar width 31-38 mm (Farkas 1994); tragion 75-110 mm behind nasion near
# the level of the nose.
_ZY_BOX = ((45.0, 85.0), (-42.0, -18.0), (-72.0, -35.0))
_ZY_SKIN_BOX = ((45.0, 95.0), (-40.0, -15.0), (-70.0, -40.0))
_FMT_BOX = ((35.0, 62.0), (-8.0, 15.0), (-35.0, -5.0))
# y relative to gnathion (skull) or menton (face); the inner x limit keeps out the cervical
# vertebrae (transverse processes of C2-C3 reach ~30 mm from the midline)
_GO_BOX = ((38.0, 75.0), (5.0, 50.0), (-115.0, -45.0))
_T_BOX = ((50.0, 110.0), (-65.0, 5.0), (-125.0, -55.0))
_DACRYON_DEPTH = 12.0  # dacryon lies ~10-15 mm behind nasion, on the medial orbital wall


def _in_box(pts: np.ndarray, side: float, box) -> np.ndarray:
    """Mask of points inside a side's box (x measured outward on that side)."""
    (x0, x1), (y0, y1), (z0, z1) = box
    sx = side * pts[:, 0]
    return (sx >= x0) & (sx <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1) & (pts[:, 2] >= z0) & (pts[:, 2] <= z1)


def _extreme_vertex(work: _Work, side: float, box, direction: np.ndarray,
                    plateau: float = 0.0) -> np.ndarray | None:
    """The vertex inside a side's box that lies furthest along ``direction`` (its x part is
    taken outward on that side), lids excluded; None if the box holds no surface.

    With ``plateau`` > 0, all vertices within that many mm of the extreme count, and the one
    nearest their centroid is returned: the side of the head is nearly flat, and its single
    most lateral vertex wanders over the flat patch with every millimetre of noise.
    """
    v = work.verts
    sel = np.flatnonzero(_in_box(v, side, box))
    if len(sel):
        sel = sel[~work.on_lid(v[sel])]
    if not len(sel):
        return None
    d = np.array([side * direction[0], direction[1], direction[2]])
    proj = np.einsum("ij,j->i", v[sel], d)
    top = sel[proj >= proj.max() - plateau]
    centre = v[top].mean(axis=0)
    return v[top[np.argmin(np.linalg.norm(v[top] - centre, axis=1))]].copy()


def _sided(base: str) -> tuple[str, str]:
    return f"{base}_L", f"{base}_R"


_SIDES = ((1.0, "L"), (-1.0, "R"))  # +x is the subject's left
_LATERAL = np.array([1.0, 0.0, 0.0])


def _pair_by_extreme(work: _Work, base: str, box, direction: np.ndarray, note: str,
                     confidence: str, why_missing: str, plateau: float = 0.0) -> dict[str, _Result]:
    out = {}
    for side, tag in _SIDES:
        p = _extreme_vertex(work, side, box, direction, plateau)
        out[f"{base}_{tag}"] = _Result(p, confidence, note) if p is not None else _missing(why_missing)
    return out


def _box_note(box) -> str:
    (x0, x1), (y0, y1), (z0, z1) = box
    return (f"{x0:.0f}-{x1:.0f} mm lateral, {y0:+.0f}..{y1:+.0f} mm above and {z0:+.0f}..{z1:+.0f} mm in "
            f"front of nasion")


def _view_map(work: _Work, rot: np.ndarray, centre: tuple[float, float], size: tuple[int, int]):
    """Depth map at 1 mm/px seen along -z of a rotated view of the working frame.

    Parameters
    ----------
    rot : numpy.ndarray, shape (3, 3)
        Rows are the view's x, y, z axes in working coordinates (the view looks along -z).
    centre : (float, float)
        View (x, y) of the map's centre, mm.

    Returns
    -------
    height : numpy.ndarray, shape (H, W)
        View z of the first hit; NaN where none.
    points : numpy.ndarray, shape (H, W, 3)
        Working-frame position of each pixel's hit (NaN where none).
    """
    view = np.eye(4)
    view[:3, :3] = rot
    view[:2, 3] = [-centre[0], -centre[1]]
    spec = RenderSpec(size, 1.0, view @ work.frame, z_near=-1e4, z_far=1e4)
    dm = render(work.mesh, spec)
    x, y = spec.xy_grid()
    h = dm.height.astype(np.float64)
    pts_view = np.stack([x + centre[0], y + centre[1], h], axis=-1)
    return h, np.einsum("...j,jk->...k", pts_view, rot)


_FRONT = np.eye(3)


def _skull_pairs(work: _Work, mid: dict[str, _Result]) -> dict[str, _Result]:
    """Zy, Fmt, Da, Go on both sides (working frame, nasion at the origin)."""
    out: dict[str, _Result] = {}
    out.update(_pair_by_extreme(
        work, "Zy", _ZY_BOX, _LATERAL, "most lateral bone of the zygomatic arch region (" + _box_note(_ZY_BOX)
        + "; centre of the bone within 1 mm of the most lateral)",
        "medium", "no bone where the zygomatic arch lies (" + _box_note(_ZY_BOX) + ")", plateau=1.0))
    out.update(_pair_by_extreme(
        work, "Fmt", _FMT_BOX, _LATERAL,
        "most lateral point of the lateral orbital rim at the fronto-zygomatic level (" + _box_note(_FMT_BOX) + ")",
        "low", "no bone where the lateral orbital rim lies (" + _box_note(_FMT_BOX) + ")"))
    out.update(_dacryon(work))
    gn = mid.get("Gn")
    if gn is None or not gn.found:
        why = "needs the mandible's chin (gnathion), which is missing: " + (gn.note if gn is not None else "")
        out.update({n: _missing(why) for n in _sided("Go")})
    else:
        (x0, x1), (y0, y1), (z0, z1) = _GO_BOX
        box = ((x0, x1), (gn.point[1] + y0, gn.point[1] + y1), (z0, z1))
        out.update(_pair_by_extreme(
            work, "Go", box, np.array([2.0, -1.0, -1.0]) / np.sqrt(6.0),
            "mandibular angle: the mandible point furthest out, down and back (lateral weighted double), "
            "5-50 mm above gnathion, 38-75 mm from the midline and 45-115 mm behind nasion", "medium",
            "no bone at the mandibular angle (cut off by the scan?)"))
    return out


def _dacryon(work: _Work) -> dict[str, _Result]:
    """Dacryon on the medial orbital wall: in the front depth map, rows 2-10 mm below
    nasion, the first point out from the midline where the bone lies 12 mm behind nasion
    (the medial wall is nearly parallel to the view, so that x is sharp); the landmark is
    the mesh vertex nearest to that point at that depth."""
    h, pts = _view_map(work, _FRONT, (0.0, -6.0), (9, 61))
    out = {}
    xs = pts[..., 0]
    for side, tag in _SIDES:
        targets = []
        for r in range(h.shape[0]):
            cols = np.flatnonzero((side * xs[r] >= 4.0) & (side * xs[r] <= 25.0))
            cols = cols[np.argsort(side * xs[r, cols])]
            deep = np.flatnonzero(~(h[r, cols] > -_DACRYON_DEPTH))
            if len(deep) and deep[0] > 0:
                targets.append([xs[r, cols[deep[0]]], pts[r, cols[0], 1], -_DACRYON_DEPTH])
        if not targets:
            out[f"Da_{tag}"] = _missing("no medial orbital wall found beside the nasal root")
            continue
        target = np.median(np.asarray(targets), axis=0)
        v = work.verts
        near = np.flatnonzero(np.all(np.abs(v - target) <= 6.0, axis=1))
        if not len(near):
            out[f"Da_{tag}"] = _missing("no medial orbital wall found beside the nasal root")
            continue
        p = v[near[np.argmin(np.linalg.norm(v[near] - target, axis=1))]].copy()
        out[f"Da_{tag}"] = _Result(p, "low", f"medial orbital wall 2-10 mm below nasion, where the bone first lies "
                                             f"{_DACRYON_DEPTH:.0f} mm behind nasion going out from the midline")
    return out


def _face_pairs(work: _Work, mid: dict[str, _Result]) -> dict[str, _Result]:
    """en, al, t, zy', go' on both sides (working frame, nasion at the origin)."""
    out: dict[str, _Result] = {}
    out.update(_endocanthion(work))
    out.update(_alare(work, mid))
    out.update(_tragion(work))
    out.update(_zygion_skin(work, out))
    me = mid.get("me")
    if me is None or not me.found:
        why = "needs menton, which is missing: " + (me.note if me is not None else "")
        out.update({n: _missing(why) for n in _sided("go'")})
    else:
        (x0, x1), (y0, y1), (z0, z1) = _GO_BOX
        box = ((x0 + 5.0, x1 + 15.0), (me.point[1] + y0 + 5.0, me.point[1] + y1 - 5.0), (z0, z1))
        out.update(_pair_by_extreme(
            work, "go'", box, _LATERAL,
            "most lateral point of the jawline 10-45 mm above menton, 43-90 mm from the midline and "
            "45-115 mm behind nasion", "low",
            "no surface at the jaw angle (cut off by the scan?)", plateau=1.0))
    return out


def _endocanthion(work: _Work) -> dict[str, _Result]:
    """Inner eye corners. Going out from the nasal root in a front depth map, the surface
    falls down the side of the nose and turns onto the eye; the turn (largest second
    derivative across x, 8-24 mm from the midline) is the eye-nose corner of each row, and
    endocanthion is the deepest such corner between 22 mm below and 2 mm above nasion."""
    h, pts = _view_map(work, _FRONT, (0.0, -10.0), (31, 61))
    if not np.isfinite(h).any():
        return {n: _missing("no surface beside the nasal root") for n in _sided("en")}
    smooth = ndimage.gaussian_filter(np.where(np.isfinite(h), h, np.nanmin(h)), 1.5)
    bend = np.gradient(np.gradient(smooth, axis=1), axis=1)
    xs, ys = pts[..., 0], pts[..., 1]
    out = {}
    for side, tag in _SIDES:
        best = None
        for r in np.flatnonzero((ys[:, 0] >= -22.0) & (ys[:, 0] <= 2.0)):
            cols = np.flatnonzero((side * xs[r] >= 8.0) & (side * xs[r] <= 24.0) & np.isfinite(h[r]))
            if not len(cols):
                continue
            c = cols[np.argmax(bend[r, cols])]
            if bend[r, c] > 0.05 and (best is None or h[r, c] < h[best]):
                best = (r, c)
        out[f"en_{tag}"] = (_Result(pts[best].copy(), "low", "deepest corner between the side of the nose and "
                                                             "the eye (largest bend of the front depth map across x)")
                            if best is not None else _missing("no corner between nose and eye found"))
    return out


def _alare(work: _Work, mid: dict[str, _Result]) -> dict[str, _Result]:
    """Alae: in the rows between subnasale and the nose tip, the nose's side wall is where
    the surface falls away outward most steeply; alare is that wall's most lateral point."""
    prn, sn = mid.get("prn"), mid.get("sn")
    if prn is None or not prn.found:
        return {n: _missing("needs the nose tip") for n in _sided("al")}
    y_hi = prn.point[1] + 2.0
    y_lo = sn.point[1] - 2.0 if (sn is not None and sn.found) else prn.point[1] - 20.0
    rows = int(np.ceil(y_hi - y_lo)) + 1
    h, pts = _view_map(work, _FRONT, (0.0, (y_lo + y_hi) / 2.0), (rows, 71))
    smooth = ndimage.gaussian_filter1d(np.where(np.isfinite(h), h, np.nanmin(h)), 1.0, axis=1)
    slope = np.gradient(smooth, axis=1)  # dz/dx per mm (columns run along +x)
    xs = pts[..., 0]
    out = {}
    for side, tag in _SIDES:
        best = None
        for r in range(rows):
            cols = np.flatnonzero((side * xs[r] >= 8.0) & (side * xs[r] <= 28.0) & np.isfinite(h[r]))
            if not len(cols):
                continue
            c = cols[np.argmax(-side * slope[r, cols])]  # steepest fall going outward
            if -side * slope[r, c] < 1.0:  # flatter than 45 degrees: no alar wall in this row
                continue
            if best is None or side * xs[r, c] > side * best[0]:
                best = pts[r, c].copy()
        out[f"al_{tag}"] = (_Result(best, "medium", "most lateral point of the alar wall (steepest outward fall "
                                                    "of the front depth map, rows from subnasale to the nose tip)")
                            if best is not None else _missing("no alar wall found beside the nose"))
    return out


def _tragion(work: _Work) -> dict[str, _Result]:
    """Tragion: the auricle is the blob standing > 4 mm out of a side view of the head
    (white top-hat under a 30 mm disc); tragion is the blob's most anterior point in the
    middle third of its height, where the tragus meets the face."""
    out = {}
    (x0, x1), (y0, y1), (z0, z1) = _T_BOX
    for side, tag in _SIDES:
        # view from the side: view z = outward x, view y = up, view x = y cross z
        rot = np.array([[0.0, 0.0, -side], [0.0, 1.0, 0.0], [side, 0.0, 0.0]])
        centre = (-side * (z0 + z1) / 2.0, (y0 + y1) / 2.0)
        h, pts = _view_map(work, rot, centre, (int(y1 - y0) + 1, int(z1 - z0) + 1))
        ok = np.isfinite(h) & (h >= x0) & (h <= x1)
        if ok.sum() < 100:
            out[f"t_{tag}"] = _missing("no surface at the side of the head where the ear lies")
            continue
        filled = np.where(ok, h, np.nanmin(np.where(ok, h, np.nan)) - 30.0)
        r = np.arange(-15, 16)
        disc = r[:, None] ** 2 + r[None, :] ** 2 <= 15 ** 2
        proud = ok & (filled - ndimage.grey_opening(filled, footprint=disc) > 4.0)
        labels, n = ndimage.label(proud)
        if n == 0:
            out[f"t_{tag}"] = _missing("no ear found at the side of the head")
            continue
        sizes = np.bincount(labels.ravel())[1:]
        ear = labels == (np.argmax(sizes) + 1)
        if sizes.max() < 150:  # an auricle is ~60 x 30 mm
            out[f"t_{tag}"] = _missing("no ear found at the side of the head")
            continue
        ys, zs = pts[..., 1], pts[..., 2]
        top, bottom = ys[ear].max(), ys[ear].min()
        band = ear & (ys >= bottom + (top - bottom) / 3.0) & (ys <= top - (top - bottom) / 3.0)
        cand = np.argwhere(band)
        best = cand[np.argmax(zs[band])]
        out[f"t_{tag}"] = _Result(pts[best[0], best[1]].copy(), "low",
                                  "front edge of the ear (the blob standing out of the side of the head) in the "
                                  "middle third of its height")
    return out


def _arch_height(found: dict[str, _Result], tag: str, z: float) -> float | None:
    """Height (working y) of the zygomatic arch at depth ``z`` on one side of a face.

    The arch runs along the Frankfurt plane, from orbitale (about 10 mm below and behind
    the inner eye corner) back to the ear canal (about tragion's height), so its height is
    interpolated between the two; without a plausible tragion it is taken midway between
    the inner eye corner and the ala, which the bundled CTs' bony zygia match within 5 mm.
    """
    en, t, al = (found.get(f"{b}_{tag}") for b in ("en", "t", "al"))
    if en is None or not en.found:
        return None
    orb = en.point + np.array([0.0, -10.0, -10.0])
    if t is not None and t.found and orb[1] - 30.0 <= t.point[1] <= orb[1] + 15.0 and t.point[2] < z < orb[2]:
        f = (z - orb[2]) / (t.point[2] - orb[2])
        return float(orb[1] + f * (t.point[1] - orb[1]))
    if al is not None and al.found:
        return float((en.point[1] + al.point[1]) / 2.0)
    return None


def _zygion_skin(work: _Work, found: dict[str, _Result]) -> dict[str, _Result]:
    """Soft-tissue zygion: the most lateral cheek point over the zygomatic arch.

    The cheek is widest lower down (masseter, buccal fat) and the ear further back, so the
    search is held to +-10 mm of the arch's height (`_arch_height`) and kept in front of
    the ear (70 mm behind nasion; tragion lies 75-100 mm behind it on the bundled CTs).
    """
    out = {}
    (x0, x1), (y0, y1), (z0, z1) = _ZY_SKIN_BOX
    for side, tag in _SIDES:
        yc = _arch_height(found, tag, (z0 + z1) / 2.0)
        box = ((x0, x1), (y0, y1), (z0, z1)) if yc is None else ((x0, x1), (yc - 10.0, yc + 10.0), (z0, z1))
        p = _extreme_vertex(work, side, box, _LATERAL, plateau=1.0)
        how = "at the height of the arch between the eye and the ear" if yc is not None else "default box"
        out[f"zy'_{tag}"] = (_Result(p, "medium", "most lateral cheek point over the zygomatic arch ("
                                     + _box_note(box) + f", {how}; centre of the skin within 1 mm of the "
                                     "most lateral)") if p is not None
                             else _missing("no surface where the cheek over the zygomatic arch lies"))
    return out


# --- the public entry point -----------------------------------------------------------------


def detect_landmarks(mesh: trimesh.Trimesh, surface: str, coarse: Any,
                     given: LandmarkSet | None = None) -> LandmarkSet:
    """Detect the paper's skull (Table 1) or face (Table 2) landmarks on a mesh.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Skull or skin surface, vertices in mm in any coordinates ("input coordinates").
    surface : {'skull', 'face'}
        Which landmark set to detect.
    coarse : array_like, shape (4, 4)
        Rigid map from input coordinates to an approximate head frame (+x subject's left,
        +y up, +z anterior). It may be off by ~10 degrees and ~20 mm, and its origin may be
        anywhere near the head's centre. For an LPS CT, ``frame_from_axes(centre, [1, 0, 0],
        [0, 0, 1])`` (x_head = x_lps, y_head = z_lps, z_head = -y_lps) will do.
    given : LandmarkSet, optional
        The user's landmarks (input coordinates). They always win: each is returned exactly
        as given, and a given nasion, glabella, ... also anchors the detection of the
        others. Names of the other surface are ignored.

    Returns
    -------
    LandmarkSet
        Points in input coordinates (mm, ``surface`` set), in the order of
        `skull2face.anatomy.names.surface_names`. ``meta[name]`` is, for every landmark of
        the surface:

        * ``{"source": "given", "confidence": "high", "note": ...}`` for given ones;
        * ``{"source": "detected", "confidence": "high" | "medium" | "low", "note": how}``;
        * ``{"source": "missing", "note": why}``, with no point, where the landmark does not
          exist on this input (cut off by the scan, no mandible, ...) or was not found.

    Raises
    ------
    ValueError
        If ``surface`` is unknown, the mesh is empty, or ``coarse`` is not rigid.

    Notes
    -----
    The method is described in the module docstring. It is deterministic and equivariant:
    moving ``mesh`` by a rigid motion ``M`` and using ``coarse @ inv(M)`` moves every
    landmark by ``M`` (to float32 ray-casting precision).
    """
    if surface not in ("skull", "face"):
        raise ValueError(f"surface must be 'skull' or 'face', not {surface!r}")
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("detect_landmarks needs a non-empty trimesh.Trimesh")
    coarse = as_rigid(coarse, "coarse")
    table = names.SKULL if surface == "skull" else names.FACE
    given_pts = {} if given is None else {n: p for n, p in given.points.items() if n in table}

    work = _Work(mesh, coarse)
    mid = _midline(work, surface, given_pts)
    nasion = mid["N" if surface == "skull" else "n"]
    if nasion.found:
        pairs = (_skull_pairs if surface == "skull" else _face_pairs)(work, mid)
    else:
        pairs = {}
    points: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    for name in names.surface_names(surface):
        if name in given_pts:
            points[name] = np.array(given.points[name], dtype=np.float64)
            meta[name] = {"confidence": "high", "note": "given by the user",
                          **given.meta.get(name, {}), "source": "given"}
            continue
        r = mid.get(name) or pairs.get(name)
        if r is None:
            r = _missing("needs nasion, which was not found: " + nasion.note)
        if r.found:
            points[name] = work.to_input(r.point)
            meta[name] = {"source": "detected", "confidence": r.confidence, "note": r.note}
        else:
            meta[name] = {"source": "missing", "note": r.note}
    return LandmarkSet(points, "LPS", surface, meta)
