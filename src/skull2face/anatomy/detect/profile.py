"""The midline profile (method step 3) and the measurements taken on it.

Rays cast through a slab |x| <= 3..4 mm of the working frame give the anterior outline
z_front(y) every `_STEP` mm (`_profile`), plus the slab's outline seen from below (the chin's
underside). Midline landmarks are notches, bumps and extremes of this outline, measured
against chords so that they do not depend on the head's pitch: `_Profile.concavity`,
`_dents` (depth below the anterior hull), `_prominence`, `_plateau`, `_local_maxima`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry.depthmap import RenderSpec, render
from ...geometry.frame import apply, invert_rigid
from ...geometry.frame import project as _dot
from .work import _Result, _Work

# Profile sampling step along y.
_STEP = 0.5


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
    view_y = _dot(work.verts, view[1, :3]) + view[1, 3]  # the vertices' view y (all that is needed)
    lo, hi = view_y.min(), view_y.max()
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
        z = np.nanmax(h, axis=1) if surface == "skull" else _upper_quartile(h)
    pts_view = np.column_stack([np.zeros(len(z)), y[enough, 0] + (lo + hi) / 2.0, z])
    return apply(invert_rigid(view), pts_view)


def _upper_quartile(h: np.ndarray) -> np.ndarray:
    """``np.nanpercentile(h, 75, axis=1)`` (linear interpolation), for every row at once.

    Parameters
    ----------
    h : numpy.ndarray, shape (R, C), float64
        Rows with at least one finite value; NaN elsewhere.

    Returns
    -------
    numpy.ndarray, shape (R,), float64
        The same numbers as numpy's (its virtual index ``0.75 n - 0.75`` and its two-sided
        interpolation), without its per-row Python loop.
    """
    ordered = np.sort(h, axis=1)  # NaNs last
    n = np.isfinite(h).sum(axis=1)
    index = n * 0.75 + 0.25 - 1.0
    below = np.floor(index).astype(np.intp)
    above = np.minimum(below + 1, n - 1)
    t = index - below
    rows = np.arange(len(h))
    a, b = ordered[rows, below], ordered[rows, above]
    step = b - a
    return np.where(t >= 0.5, b - step * (1 - t), a + step * t)


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


# --- measurements on the outline --------------------------------------------------------------


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
    k = np.asarray(candidates, dtype=np.int64).reshape(-1)
    # neighbours, NaN read as -inf; beyond the ends there is none
    around = np.concatenate([[-np.inf], np.nan_to_num(values, nan=-np.inf), [-np.inf]])
    v = values[k]
    with np.errstate(invalid="ignore"):
        keep = np.isfinite(v) & (v >= min_value) & (v >= around[k]) & (v >= around[k + 2])
    return k[keep]


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
