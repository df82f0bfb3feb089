"""Surfaces placed at the half-step of their edge, not at a fixed iso-value (torch-free).

A scanner blurs every tissue boundary (partial volume). Marching cubes at a fixed iso-value
(-300 HU skin, 300 HU bone) puts the surface where the blurred profile crosses that value; the
blurred profile crosses the *half-step* between the levels on either side of the boundary at
the boundary itself (for any symmetric blur of a step), but a fixed value lies off the half-step
(300 HU sits low on the ~40 -> ~1000+ HU bone step), so its surface moves by a fraction of the
blur's width: little at 0.5-1 mm voxels, millimetres at the 2-5 mm voxels of radiotherapy CTs.

`refine_to_half_step` moves each vertex of an extracted surface along its normal to the
half-step of the edge it lies on:

1. **Profile**: the volume is sampled (trilinear, on voxel indices) along the vertex normal
   from ``-search_mm`` (inside) to ``+search_mm`` (outside) every ``step_mm``, then smoothed
   along the ray (a Gaussian of ``profile_sigma_mm``) against noise.
2. **The edge**: the outward slope ``g = -dP/dt`` (inside is the brighter side, for skin and
   bone alike: the normals point out of the solid). From the vertex the walk climbs ``g`` to
   its nearest peak, then goes out and in from that peak while ``g`` keeps falling and stays
   above ``FOOT_FRACTION`` of it. The ends are the edge's foot (outside) and crest (inside); the
   profile there gives the levels ``lo`` and ``hi``. Stopping at the slope's foot, not at the
   extreme value within the search, keeps a second edge nearby (the skin 3 mm over the nasal
   bones, the brain behind a thin plate) from taking its level.
3. **Half-step**: the vertex moves to where the profile crosses ``(lo + hi) / 2`` (unique:
   the profile falls monotonically between crest and foot). Vertices whose contrast
   ``hi - lo`` is below ``min_contrast`` (no clear step) stay, and no move exceeds
   ``max_move_mm``.
4. **Agreement**: the displacements (scalar, along the normal) of the moved vertices are
   averaged with their mesh neighbours' ``smooth_iterations`` times (normalised: vertices that
   stay count as missing, not as zero moves), so neighbours agree.

Thin plates: where bone is thinner than the blur, its blurred peak stays below the bone's true
level and the half-step of the peak (half maximum) lies outside the true surface by about
(blur width - thickness) / 2. The crest found here is the level of the whole bone block under
the edge (cortex and diploe blurred together), which for a block thicker than the blur is the
right level, and for a thinner one is the best the profile tells.

Units: mm; coordinates LPS mm like the mesh and `Volume.to_lps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh
from scipy import ndimage, sparse

FOOT_FRACTION = 0.0
"""The edge ends where the profile's slope falls below this fraction of its peak slope, or where
the slope rises again (the next edge). 0: only the latter, so the levels are the profile's own
extremes or the valley before the next edge; a 10 % cut stopped short of the bone's plateau on
a phantom at 4 mm voxels (hi ~880 of 1000 HU)."""


def lps_to_index(vol: Any, points: Any) -> np.ndarray:
    """Map ``(n, 3)`` LPS millimetres to ``(n, 3)`` continuous voxel indices (inverse of `Volume.to_lps`).

    Parameters
    ----------
    vol : Volume
        Its ``spacing`` ``(3,)`` mm, ``origin`` ``(3,)`` LPS mm and ``direction`` ``(3, 3)``.
    points : array_like, shape (n, 3), float, LPS mm

    Returns
    -------
    numpy.ndarray, shape (n, 3), float64, voxel indices (i, j, k)
    """
    m = np.asarray(vol.direction, np.float64) @ np.diag(np.asarray(vol.spacing, np.float64))
    return (np.asarray(points, np.float64) - np.asarray(vol.origin, np.float64)) @ np.linalg.inv(m).T


def default_search_mm(spacing: Any) -> float:
    """Half-length of the ray searched for the edge (mm): twice the largest voxel side, at least
    4 mm (the blur of a scanner is about one voxel wide; its edge spans about two)."""
    return max(4.0, 2.0 * float(np.max(spacing)))


def _walk(g: np.ndarray, start: np.ndarray, step: int, keep: np.ndarray) -> np.ndarray:
    """Indices reached from ``start`` moving by ``step`` (+1 or -1) while ``keep[row, next]`` holds.

    ``g`` ``(n, m)`` gives the shape; ``start`` ``(n,)`` int; ``keep`` ``(n, m)`` bool.
    """
    m = g.shape[1]
    cols = np.arange(m)[None, :]
    if step > 0:  # the first column past start that may not be entered, minus one
        stop = np.where(~keep & (cols > start[:, None]), cols, m).min(axis=1)
        return stop - 1
    stop = np.where(~keep & (cols < start[:, None]), cols, -1).max(axis=1)
    return stop + 1


def _edge_ends(g: np.ndarray, centre: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak, crest (inner end) and foot (outer end) sample indices of the edge at ``centre``.

    ``g`` is ``(n, m)`` outward slope at the midpoints between samples; index ``c`` of ``g``
    lies between samples ``c`` and ``c + 1``.
    """
    n, m = g.shape
    rows = np.arange(n)
    start = np.full(n, centre, int)
    # climb the slope to its nearest peak: the way up is whichever neighbour is higher
    up = np.where(g[:, min(centre + 1, m - 1)] >= g[:, max(centre - 1, 0)], 1, -1)
    peak = start.copy()
    for direction in (1, -1):
        sel = up == direction
        if sel.any():
            gs = g[sel]
            climb = np.zeros_like(gs, dtype=bool)  # climb[r, k]: g rises on stepping onto k
            if direction == 1:
                climb[:, 1:] = gs[:, 1:] > gs[:, :-1]
            else:
                climb[:, :-1] = gs[:, :-1] > gs[:, 1:]
            peak[sel] = _walk(gs, start[sel], direction, climb)
    gpk = g[rows, peak]
    steep = g >= FOOT_FRACTION * np.maximum(gpk, 0.0)[:, None]
    steep &= g > 0
    # the edge: from the peak down the slope each way while it stays steep; a slope that rises
    # again is the next edge (skin over thin tissue, the far side of a thin plate)
    falls_out = np.zeros_like(steep)
    falls_out[:, 1:] = steep[:, 1:] & (g[:, 1:] <= g[:, :-1])
    falls_in = np.zeros_like(steep)
    falls_in[:, :-1] = steep[:, :-1] & (g[:, :-1] <= g[:, 1:])
    inner = _walk(g, peak, -1, falls_in)  # first slope index of the edge
    outer = _walk(g, peak, 1, falls_out)  # last slope index of the edge
    return peak, inner, outer + 1


def _points_in(vol: Any, verts: np.ndarray, normals: np.ndarray, reach_mm: float) -> int:
    """+1 when most normals point from the brighter side to the darker one (out of the solid),
    -1 when most point the other way: one voxel in and out of every vertex compared."""
    sample = slice(None, None, max(1, len(verts) // 20_000))
    v, nrm = verts[sample], normals[sample]
    inside = ndimage.map_coordinates(vol.voxels, lps_to_index(vol, v - reach_mm * nrm).T, order=1,
                                     mode="nearest", output=np.float32)
    outside = ndimage.map_coordinates(vol.voxels, lps_to_index(vol, v + reach_mm * nrm).T, order=1,
                                      mode="nearest", output=np.float32)
    return 1 if np.count_nonzero(inside > outside) >= np.count_nonzero(inside < outside) else -1


def _neighbour_matrix(mesh: trimesh.Trimesh) -> sparse.csr_matrix:
    e = np.asarray(mesh.edges_unique)
    n = len(mesh.vertices)
    data = np.ones(2 * len(e))
    return sparse.csr_matrix((data, (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))


def smooth_displacement(mesh: trimesh.Trimesh, shift: np.ndarray, valid: np.ndarray,
                        iterations: int) -> np.ndarray:
    """Average a per-vertex scalar with its edge neighbours, ignoring invalid vertices.

    Parameters
    ----------
    mesh : trimesh.Trimesh
    shift : numpy.ndarray, shape (n,), float, mm
    valid : numpy.ndarray, shape (n,), bool
        Vertices whose ``shift`` is a measurement; the others neither give nor get a value.
    iterations : int
        Rounds of averaging over the one-ring (self included).

    Returns
    -------
    numpy.ndarray, shape (n,), float64, mm; 0 where not valid
    """
    out = np.where(valid, shift, 0.0).astype(np.float64)
    if iterations <= 0 or not valid.any():
        return out
    adj = _neighbour_matrix(mesh) + sparse.identity(len(out), format="csr")
    w = valid.astype(np.float64)
    for _ in range(iterations):
        num = adj @ (out * w)
        den = adj @ w
        out = np.where(valid, num / np.maximum(den, 1e-12), 0.0)
    return out


def refine_to_half_step(mesh: trimesh.Trimesh, vol: Any, search_mm: float | None = None,
                        step_mm: float | None = None, min_contrast: float = 150.0,
                        max_move_mm: float | None = None, profile_sigma_mm: float | None = None,
                        smooth_iterations: int = 3,
                        level_bounds: tuple[float | None, float | None] = (None, None)) -> tuple[trimesh.Trimesh, dict]:
    """Move each vertex along its normal to the half-step of the edge it lies on.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        A surface extracted from ``vol`` (vertices LPS mm), normals pointing out of the solid
        (the brighter side is inside).
    vol : Volume
        The volume it came from; ``voxels`` ``(nx, ny, nz)`` int16 HU or float32.
    search_mm : float or None
        Half-length of the ray, mm; None: `default_search_mm`.
    step_mm : float or None
        Sample spacing along the ray, mm; None: a quarter of the smallest voxel side (at least
        0.1 mm).
    min_contrast : float
        Smallest step ``hi - lo`` (volume units, HU) that counts as an edge; weaker ones stay.
    max_move_mm : float or None
        Largest move, mm; None: the largest voxel side (at least 1 mm). Longer moves are clipped.
    profile_sigma_mm : float or None
        Gaussian smoothing of the profile along the ray, mm; None: a quarter of the smallest
        voxel side.
    smooth_iterations : int
        Rounds of neighbour averaging of the displacements (`smooth_displacement`).
    level_bounds : (float or None, float or None)
        Half-step levels are clipped to these (volume units); None: no bound. `extract_surfaces`
        passes the iso-value as the lower bound for bone and the upper bound for skin: the
        fixed iso-values sit on the near side of both half-steps, so a half-step beyond the
        iso-value means a neighbour took a level (a plate thinner than the blur, a skin edge
        merged with the bone's), and the vertex stays at the iso-value.

    Returns
    -------
    refined : trimesh.Trimesh
        Same faces, vertices moved (float64 LPS mm).
    record : dict
        JSON-ready: settings used, whether the mesh's normals pointed into the solid (then they
        are turned for the search), vertices moved, displacement quantiles (mm, + out of the
        solid) and the median levels found.
    """
    spacing = np.asarray(vol.spacing, np.float64)
    search = float(search_mm) if search_mm is not None else default_search_mm(spacing)
    step = float(step_mm) if step_mm is not None else max(0.1, float(spacing.min()) / 4.0)
    max_move = float(max_move_mm) if max_move_mm is not None else max(1.0, float(spacing.max()))
    sigma = float(profile_sigma_mm) if profile_sigma_mm is not None else float(spacing.min()) / 4.0
    half = int(np.ceil(search / step))
    t = step * np.arange(-half, half + 1)  # (m,) mm along the normal, + outward
    verts = np.asarray(mesh.vertices, np.float64)
    normals = np.asarray(mesh.vertex_normals, np.float64)
    flipped = _points_in(vol, verts, normals, float(spacing.max())) < 0
    if flipped:  # an open mesh whose winding faces into the solid (extraction orients closed ones only)
        normals = -normals
    n, m = len(verts), len(t)
    shift = np.zeros(n)
    valid = np.zeros(n, bool)
    lo_all, hi_all = np.full(n, np.nan), np.full(n, np.nan)
    chunk = max(1, 2_000_000 // m)
    n_bounded = 0
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        pts = verts[a:b, None, :] + t[None, :, None] * normals[a:b, None, :]
        ijk = lps_to_index(vol, pts.reshape(-1, 3)).T
        prof = ndimage.map_coordinates(vol.voxels, ijk, order=1, mode="nearest",
                                       output=np.float32).reshape(b - a, m).astype(np.float64)
        if sigma > 0:
            prof = ndimage.gaussian_filter1d(prof, sigma / step, axis=1, mode="nearest")
        g = -(prof[:, 1:] - prof[:, :-1]) / step  # outward slope, (k, m - 1)
        _, crest, foot = _edge_ends(g, half)
        rows = np.arange(b - a)
        hi, lo = prof[rows, crest], prof[rows, foot]
        mid = np.clip(0.5 * (lo + hi), level_bounds[0], level_bounds[1])
        n_bounded += int(np.sum(mid != 0.5 * (lo + hi)))
        # the crossing of mid between crest and foot (the profile falls monotonically there)
        below = (prof <= mid[:, None]) & (np.arange(m)[None, :] >= crest[:, None])
        j = np.argmax(below, axis=1)  # first sample at or below mid from the crest on
        j = np.clip(j, 1, m - 1)
        p0, p1 = prof[rows, j - 1], prof[rows, j]
        frac = np.where(p0 > p1, (p0 - mid) / np.where(p0 > p1, p0 - p1, 1.0), 0.0)
        tc = t[j - 1] + np.clip(frac, 0.0, 1.0) * step
        ok = (hi - lo >= min_contrast) & below.any(axis=1) & (foot > crest)
        shift[a:b] = np.where(ok, np.clip(tc, -max_move, max_move), 0.0)
        valid[a:b] = ok
        lo_all[a:b], hi_all[a:b] = lo, hi
    raw = shift.copy()
    shift = smooth_displacement(mesh, shift, valid, smooth_iterations)
    shift = np.clip(shift, -max_move, max_move)
    refined = trimesh.Trimesh(verts + shift[:, None] * normals, np.asarray(mesh.faces), process=False)
    moved = shift[valid]
    q = (lambda x, p: float(np.percentile(x, p)) if x.size else 0.0)
    record = {
        "method": "half-step",
        "search_mm": round(search, 3), "step_mm": round(step, 3), "profile_sigma_mm": round(sigma, 3),
        "min_contrast": float(min_contrast), "max_move_mm": round(max_move, 3),
        "smooth_iterations": int(smooth_iterations),
        "normals_flipped": bool(flipped), "vertices": int(n), "moved": int(valid.sum()), "left": int(n - valid.sum()),
        "clipped": int(np.sum(valid & (np.abs(raw) >= max_move))),
        "level_bounds": list(level_bounds), "bounded": n_bounded,
        "shift_mm": {"median": round(q(moved, 50), 3), "p05": round(q(moved, 5), 3), "p95": round(q(moved, 95), 3),
                     "mean_abs": round(float(np.abs(moved).mean()) if moved.size else 0.0, 3)},
        "levels_median": {"lo": round(float(np.nanmedian(lo_all[valid])), 1) if valid.any() else None,
                          "hi": round(float(np.nanmedian(hi_all[valid])), 1) if valid.any() else None},
    }
    return refined, record


__all__ = ["FOOT_FRACTION", "default_search_mm", "lps_to_index", "refine_to_half_step", "smooth_displacement"]
