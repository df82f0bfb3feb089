"""Scan cuts ("lids", method step 1): the flat faces marching cubes closes a surface with
where the scan ended.

A lid is a large area hugging the mesh's support plane in some direction whose walls meet it
steeply (a natural extreme curves away gently). Points on lids are never taken for anatomy,
and a landmark whose region lies beyond a lid is reported missing (see `.work`).

This module holds the code as it stood in ``anatomy/detect.py``, moved verbatim; it is to be
replaced by ``skull2face.geometry.lids`` (one lid type for detection and evaluation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ...geometry.frame import apply

__all__ = ["Cap", "find_caps"]

# Normal-histogram peaks lighter than a tenth of this (mm^2) are not tested as lid directions.
_CAP_MIN_AREA = 1000.0
# Depth of the slab under the support plane that counts as the lid itself.
_CAP_DEPTH = 1.0
# Lid fitting: slab examined below the support plane, faces sampled, smallest lid area
# (mm^2; bone lids are cross-sections of bone, a few hundred mm^2), and the largest
# area-weighted mean |cos| between the plane's normal and the surface 1..3 mm behind it.
# Measured on the bundled CTs: lids 0.1..0.75 (the walls of a cut meet it steeply), natural
# extremes with >= 300 mm^2 within 1 mm of their support plane (vertex, occiput, the
# cylinder-like sides of the skull) 0.93..0.98.
_LID_SLAB = 3.0
_LID_FACES = 60000
_LID_MIN_AREA = 300.0
_LID_MAX_WALL_ALIGNMENT = 0.8


@dataclass(frozen=True, eq=False)
class Cap:
    """A flat lid closing a mesh where the scan ended.

    Parameters
    ----------
    normal : numpy.ndarray, shape (3,), float64
        Unit outward normal of the lid (the mesh lies on the side ``normal . p <= offset``).
    offset : float
        ``normal . p`` on the lid, mm.
    area : float
        Area of the lid's faces, mm^2.
    points : numpy.ndarray, shape (n, 3), float64
        Centroids of (a sample of) the lid's faces: where on its plane the lid actually is.
    """

    normal: np.ndarray
    offset: float
    area: float
    points: np.ndarray

    def transformed(self, matrix: np.ndarray) -> Cap:
        """The same lid after the rigid transform ``matrix`` (4, 4)."""
        n = matrix[:3, :3] @ self.normal
        return Cap(n, float(self.offset + n @ matrix[:3, 3]), self.area, apply(matrix, self.points))

    def distance(self, points: Any) -> np.ndarray:
        """How far inside the mesh (mm, >= 0 on the mesh's side) points are from the lid's
        plane."""
        p = np.asarray(points, dtype=np.float64)
        return self.offset - np.einsum("...j,j->...", p, self.normal)


def _dot(points: np.ndarray, w: np.ndarray) -> np.ndarray:
    # einsum, not `points @ w`: see skull2face.geometry.frame.apply (threaded BLAS is slow here)
    return np.einsum("ij,j->i", points, w)


def _face_geometry(verts: np.ndarray, faces: np.ndarray):
    """Unit normals (n, 3), areas (n,) and centroids (n, 3) of triangles; degenerate ones get
    a zero normal and area."""
    tri = verts[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    double_area = np.sqrt(np.einsum("ij,ij->i", cross, cross))
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = np.where(double_area[:, None] > 0, cross / double_area[:, None], 0.0)
    return normals, double_area / 2.0, tri.mean(axis=1)


def _lid_candidates(normals: np.ndarray, areas: np.ndarray, extra: Any = ()) -> list[np.ndarray]:
    """Directions worth testing for a lid: the coordinate axes (scans are cut along the
    scanner's axes, which the coarse frame roughly follows), any ``extra`` directions, and
    the peaks of an area-weighted histogram of face normals (bins of ~1.4 degrees), which
    catch flat skin lids in any pose."""
    # the extra directions first: where they are exact (a CT's own axes) they should win
    dirs = [np.asarray(e, dtype=np.float64) for e in extra] + [np.eye(3)[i] for i in range(3)]
    # one sign per axis line: make the largest component positive
    big = np.argmax(np.abs(normals), axis=1)
    sign = np.where(normals[np.arange(len(normals)), big] < 0, -1.0, 1.0)
    canon = normals * sign[:, None]
    q = np.rint(canon * 40.0).astype(np.int64) + 40
    key = (q[:, 0] * 81 + q[:, 1]) * 81 + q[:, 2]
    hist = np.bincount(key, weights=areas)
    for peak in np.argsort(hist)[::-1][:6]:
        if hist[peak] < 0.1 * _CAP_MIN_AREA:
            break
        in_bin = key == peak
        u = (canon[in_bin] * areas[in_bin, None]).sum(axis=0)
        dirs.append(u / np.linalg.norm(u))
    return dirs


def _fit_lid(w: np.ndarray, verts: np.ndarray, normals: np.ndarray, areas: np.ndarray,
             centroids: np.ndarray, thick_start: bool) -> Cap | None:
    """Refine a direction to the plane of a lid at the mesh's extreme along it, or None.

    The faces within a slab under the support plane are fitted with a plane (weighted by
    area and by how well their normals agree with the direction, so that walls running into
    the lid do not tilt it): with ``thick_start`` once in a slab 4 x `_LID_SLAB` deep, to
    take in enough of a lid the candidate misses by 10 degrees (which tilts a candidate that
    was right by a degree or so), then twice in `_LID_SLAB`, then twice on the lid's own
    faces (within `_CAP_DEPTH` and facing within 30 degrees of the plane). The result is a lid if the faces within
    `_CAP_DEPTH` of the plane cover at least `_LID_MIN_AREA` and the surface just behind
    them (`_CAP_DEPTH` to `_LID_SLAB` deep) runs steeply away from the plane: at a cut, the
    walls of the cut skin or bone meet the lid at a large angle, whereas a natural extreme
    (vertex, occiput, the flat side of the skull) curves away from its support plane gently,
    with normals still close to the plane's.
    """
    # a thick slab first, so that a candidate 10 degrees off the lid still takes in a good
    # part of it, then thinner ones
    slabs = (4.0 * _LID_SLAB,) if thick_start else ()
    for slab in slabs + (_LID_SLAB, _LID_SLAB, _CAP_DEPTH, _CAP_DEPTH):
        top = float(np.max(_dot(verts, w)))
        near = np.flatnonzero(_dot(centroids, w) > top - slab)
        weight = areas[near] * _dot(normals[near], w) ** 2
        if slab <= _CAP_DEPTH:
            # last rounds: the lid's own faces only (facing within 30 degrees of it)
            weight = weight * (np.abs(_dot(normals[near], w)) > np.cos(np.radians(30.0)))
        if weight.sum() <= 0:
            return None
        c = centroids[near]
        mean = np.einsum("ij,i->j", c, weight) / weight.sum()
        d = c - mean
        cov = np.einsum("ij,ik,i->jk", d, d, weight)
        _, evecs = np.linalg.eigh(cov)
        w_new = evecs[:, 0] * (1.0 if evecs[:, 0] @ w >= 0 else -1.0)
        # a fit that swings far from the candidate found some other structure
        if w_new @ w < np.cos(np.radians(20.0)):
            return None
        w = w_new
    top = float(np.max(_dot(verts, w)))
    depth = top - _dot(centroids, w)
    lid = depth < _CAP_DEPTH
    area = float(areas[lid].sum())
    if area < _LID_MIN_AREA:
        return None
    band = np.flatnonzero((depth >= _CAP_DEPTH) & (depth < _LID_SLAB))
    band_area = float(areas[band].sum())
    if band_area > 0:
        alignment = float(np.dot(np.abs(_dot(normals[band], w)), areas[band])) / band_area
        if alignment > _LID_MAX_WALL_ALIGNMENT:
            return None
    return Cap(w, top, area, centroids[lid].copy())


def find_caps(verts: Any, faces: Any, directions: Any = ()) -> list[Cap]:
    """Flat lids where a scan cut the surface (marching cubes closes cut surfaces flat).

    Skin lids are flat to a fraction of a millimetre; bone lids are wavy (the iso-surface
    crossing between the last slice and the padding depends on each voxel's value), so a lid
    is recognised by where it lies rather than by its normals alone: a large area hugging the
    mesh's support plane over a wide spread. See `_fit_lid`.

    Parameters
    ----------
    verts : array_like, shape (n, 3), float, mm
        In a frame roughly aligned with the scanner's axes (the coarse head frame will do).
    faces : array_like, shape (m, 3), int
    directions : sequence of array_like, shape (3,)
        More unit directions to test besides the axes of ``verts``' frame, e.g. the axes of
        the scanner frame when ``verts`` are given in another.

    Returns
    -------
    list of Cap
        In the coordinates of ``verts``, largest first; empty if the mesh has no lid.
    """
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    # every k-th face (areas scaled up) is plenty to measure lids of >= 300 mm^2
    k = max(1, len(f) // _LID_FACES)
    normals, areas, centroids = _face_geometry(v, f[::k])
    areas = areas * k
    # every candidate is fitted (a thin start keeps a candidate that is right; a thick one
    # reaches a lid the candidate misses by ~10 degrees but may tilt onto other surfaces
    # near the support plane, so it is only the fallback); where several land on one lid,
    # thin-start fits and then larger lids win, whatever order the candidates came in
    fits = []
    for u in _lid_candidates(normals, areas, directions):
        for w in (u, -u):
            cap = _fit_lid(w, v, normals, areas, centroids, False)
            thin = cap is not None
            if cap is None:
                cap = _fit_lid(w, v, normals, areas, centroids, True)
            if cap is not None:
                fits.append((not thin, -cap.area, len(fits), cap))
    caps: list[Cap] = []
    for *_, cap in sorted(fits, key=lambda f: f[:3]):
        if not any(c.normal @ cap.normal > np.cos(np.radians(10.0)) for c in caps):
            caps.append(cap)
    return sorted(caps, key=lambda c: -c.area)
