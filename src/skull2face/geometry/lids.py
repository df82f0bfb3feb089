"""Scan cuts: the flat lids that close a scanned surface where the scan ended.

Marching cubes closes a surface cut by the edge of a scan (a CT's first or last slice, the
edge of its field of view) with a flat lid. A lid is not anatomy: landmark detection must not
take points on it for skin or bone, and evaluation must not score it (nor a prediction that
goes on beyond it, where the truth is unknown).

`find_lids` finds them in any pose: candidate directions (the coordinate axes, directions
the caller knows, e.g. a scanner's axes, and the peaks of a histogram of face normals) are
refined by fitting a plane to the faces hugging the mesh's support plane, and a fitted plane
is a lid if enough area hugs it, the walls just behind it meet it steeply (a natural extreme,
the vertex of the head or the tip of the nose, curves away gently) and the mesh closes a body
behind it. Optionally a fit a hair off an exact candidate (a CT's axis) is snapped onto it.
Used by landmark detection (`skull2face.anatomy.detect`) and by evaluation
(`skull2face.evaluation.region`). Millimetres throughout.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import numpy as np

from .distances import face_cross, row_norms
from .frame import apply, project as _dot

# --- tolerances (mm unless stated) ------------------------------------------------------------

#: Depth of the slab under the support plane that counts as the lid itself.
LID_DEPTH_MM = 1.0
#: Lid fitting: slab examined below the support plane, faces sampled, smallest lid area
#: (mm^2; bone lids are cross-sections of bone, a few hundred mm^2), and the largest
#: area-weighted mean |cos| between the plane's normal and the surface 1..3 mm behind it.
#: Measured on the bundled CTs: lids 0.1..0.75 (the walls of a cut meet it steeply), natural
#: extremes with >= 300 mm^2 within 1 mm of their support plane (vertex, occiput, the
#: cylinder-like sides of the skull) 0.93..0.98.
LID_SLAB_MM = 3.0
LID_SAMPLE_FACES = 60000
LID_MIN_AREA_MM2 = 300.0
LID_MAX_WALL_ALIGNMENT = 0.8
#: A lid's own triangles face within this angle (degrees) of its plane's normal (the ragged
#: rim of a marching-cubes lid tilts by several degrees).
LID_FACING_DEG = 30.0
#: A lid closes a body: the mesh reaches at least this far behind the plane (an open flat
#: patch is not a lid of anything).
LID_BODY_MM = 10.0
#: Suggested ``snap_deg`` of `find_lids` (degrees): a CT is cut exactly along its axes, and the
#: ragged rim of a marching-cubes lid tilts the fitted plane by a few hundredths of a degree
#: (0.01..0.04 on the bundled skins); 0.1 degree tilts a plane by 0.26 mm over 150 mm, well
#: inside the `LID_DEPTH_MM` slab.
LID_SNAP_DEG = 0.1
#: Normal-histogram peaks lighter than this (mm^2; a tenth of 1000 mm^2) are not tested as
#: lid directions.
PEAK_MIN_AREA_MM2 = 0.1 * 1000.0


@dataclass(frozen=True, eq=False)
class Lid:
    """A flat lid closing a mesh where the scan ended (not skin, not bone).

    Parameters
    ----------
    normal : numpy.ndarray, shape (3,), float64
        Unit outward normal of the lid (the mesh lies on the side ``normal . p <= offset``).
    offset : float
        ``normal . p`` on the lid, mm: the mesh's extreme along ``normal``.
    area : float
        Area within `LID_DEPTH_MM` of the plane, mm^2 (measured on a sample of the faces
        when the mesh has more than `LID_SAMPLE_FACES`).
    points : numpy.ndarray, shape (k, 3), float64
        Centroids of (a sample of) the lid's faces: where on its plane the lid actually is.
    faces : numpy.ndarray, shape (j,), int64
        Indices of the lid's own triangles in the mesh (all of them): centroid within
        `LID_DEPTH_MM` of the plane, facing within `LID_FACING_DEG` of it.
    source : str
        Which candidate direction the plane was fitted from.
    """

    normal: np.ndarray
    offset: float
    area: float
    points: np.ndarray
    faces: np.ndarray
    source: str

    def transformed(self, matrix: np.ndarray) -> Lid:
        """The same lid after the rigid transform ``matrix`` (4, 4); face indices are kept."""
        n = matrix[:3, :3] @ self.normal
        return replace(self, normal=n, offset=float(self.offset + n @ matrix[:3, 3]),
                       points=apply(matrix, self.points))

    def distance(self, points: Any) -> np.ndarray:
        """How far inside the mesh (mm, >= 0 on the mesh's side) points (..., 3) are from the
        lid's plane."""
        p = np.asarray(points, dtype=np.float64)
        return self.offset - np.einsum("...j,j->...", p, self.normal)

    def beyond(self, points: np.ndarray) -> np.ndarray:
        """True for points (n, 3) in the lid's `LID_DEPTH_MM` slab or past it: where the scan
        did not reach."""
        return np.einsum("ij,j->i", points, self.normal) > self.offset - LID_DEPTH_MM

    def to_json(self) -> dict:
        """JSON-ready summary: normal, plane offset (mm), area (mm^2), triangle count, source."""
        return {"normal": [round(float(c), 6) for c in self.normal], "plane_offset_mm": float(self.offset),
                "area_mm2": round(float(self.area), 1), "triangles": len(self.faces),
                "found_along": self.source}


def find_lids(verts: Any, faces: Any, directions: Any = (),
              labels: Sequence[str] | None = None, snap_deg: float = 0.0) -> list[Lid]:
    """Flat lids where a scan cut the surface (marching cubes closes cut surfaces flat).

    Skin lids are flat to a fraction of a millimetre; bone lids are wavy (the iso-surface
    crossing between the last slice and the padding depends on each voxel's value), so a lid
    is recognised by where it lies rather than by its normals alone: a large area hugging the
    mesh's support plane over a wide spread, met steeply by the walls behind it, on a mesh
    that reaches at least `LID_BODY_MM` behind it. See `_fit_lid`.

    Parameters
    ----------
    verts : array_like, shape (n, 3), float, mm
        Best in a frame roughly aligned with the scanner's axes (a CT's own coordinates, or
        a coarse head frame): a CT is cut along them.
    faces : array_like, shape (m, 3), int
    directions : sequence of array_like, shape (3,)
        More unit directions to test besides the axes of ``verts``' frame, e.g. the axes of
        the scanner frame when ``verts`` are given in another, or the head-frame axes.
    labels : sequence of str, optional
        A name for each of ``directions`` (recorded as the lid's ``source``).
    snap_deg : float
        A plane fitted within this angle (degrees) of an exact candidate (an axis of
        ``verts``' frame or one of ``directions``) is taken to lie exactly across it, at the
        mesh's extreme along it (`LID_SNAP_DEG` suits CT-derived meshes); 0 keeps every
        fitted plane as fitted.

    Returns
    -------
    list of Lid
        In the coordinates of ``verts``, largest first; empty if the mesh has no lid. Two
        fits whose normals lie within 10 degrees of each other are one lid; thin-start fits,
        then snapped ones, then larger ones win.
    """
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    if len(v) == 0 or len(f) == 0:
        return []
    # every k-th face (areas scaled up) is plenty to measure lids of >= 300 mm^2
    k = max(1, len(f) // LID_SAMPLE_FACES)
    if k > 1:
        # every k-th face in an order of their own (by centroid, to 1e-6 mm), not in the
        # order the file stores them: the lids must not depend on the triangle order
        c = np.round(v[f].mean(axis=1), 6)
        sampled = f[np.lexsort((c[:, 2], c[:, 1], c[:, 0]))][::k]
    else:
        sampled = f
    normals, areas, centroids = _face_geometry(v, sampled)
    areas = areas * k
    # every candidate is fitted (a thin start keeps a candidate that is right; a thick one
    # reaches a lid the candidate misses by ~10 degrees but may tilt onto other surfaces
    # near the support plane, so it is only the fallback); where several land on one lid,
    # thin-start fits, then exact (snapped) ones, then larger lids win, whatever order the
    # candidates came in
    fits = []
    for u, name, exact in _candidates(normals, areas, directions, labels):
        snap = snap_deg if exact else 0.0
        for sign, w in (("+", u), ("-", -u)):
            lid, snapped = _fit_lid(w, v, normals, areas, centroids, False, snap)
            thin = lid is not None
            if lid is None:
                lid, snapped = _fit_lid(w, v, normals, areas, centroids, True, snap)
            if lid is not None:
                fits.append((not thin, not snapped, -lid.area, len(fits), replace(lid, source=sign + name)))
    lids: list[Lid] = []
    for *_, lid in sorted(fits, key=lambda t: t[:4]):
        if not any(c.normal @ lid.normal > np.cos(np.radians(10.0)) for c in lids):
            lids.append(lid)
    return [replace(lid, faces=_own_faces(lid, v, f)) for lid in sorted(lids, key=lambda c: -c.area)]


def _face_geometry(verts: np.ndarray, faces: np.ndarray):
    """Unit normals (m, 3), areas (m,) mm^2 and centroids (m, 3) mm of triangles; degenerate
    ones get a zero normal and area."""
    cross = face_cross(verts, faces)
    double_area = row_norms(cross)
    with np.errstate(invalid="ignore", divide="ignore"):
        normals = np.where(double_area[:, None] > 0, cross / double_area[:, None], 0.0)
    return normals, double_area / 2.0, verts[faces].mean(axis=1)


def _candidates(normals: np.ndarray, areas: np.ndarray, extra: Any = (),
                labels: Sequence[str] | None = None) -> list[tuple[np.ndarray, str, bool]]:
    """Directions worth testing for a lid, each with a name and whether it is exact: any
    ``extra`` directions, the coordinate axes (scans are cut along the scanner's axes), both
    exact, and the peaks of an area-weighted histogram of face normals (bins of ~1.4 degrees),
    which catch flat skin lids in any pose. Each is tried both ways."""
    extra = [np.asarray(e, dtype=np.float64) for e in extra]
    names = list(labels) if labels is not None else [f"given direction {i + 1}" for i in range(len(extra))]
    if len(names) != len(extra):
        raise ValueError(f"{len(extra)} directions but {len(names)} labels")
    # the extra directions first: where they are exact (a CT's own axes) they should win
    dirs = [(e, n, True) for e, n in zip(extra, names)]
    dirs += [(np.eye(3)[i], f"{a} axis of the mesh", True) for i, a in enumerate("xyz")]
    # one sign per axis line: make the largest component positive
    big = np.argmax(np.abs(normals), axis=1)
    sign = np.where(normals[np.arange(len(normals)), big] < 0, -1.0, 1.0)
    canon = normals * sign[:, None]
    q = np.rint(canon * 40.0).astype(np.int64) + 40
    key = (q[:, 0] * 81 + q[:, 1]) * 81 + q[:, 2]
    hist = np.bincount(key, weights=areas)
    for rank, peak in enumerate(np.argsort(hist)[::-1][:6]):
        if hist[peak] < PEAK_MIN_AREA_MM2:
            break
        in_bin = key == peak
        u = (canon[in_bin] * areas[in_bin, None]).sum(axis=0)
        dirs.append((u / np.linalg.norm(u), f"normal-histogram peak {rank + 1}", False))
    return dirs


def _fit_lid(w: np.ndarray, verts: np.ndarray, normals: np.ndarray, areas: np.ndarray,
             centroids: np.ndarray, thick_start: bool, snap_deg: float) -> tuple[Lid | None, bool]:
    """Refine a direction to the plane of a lid at the mesh's extreme along it: (lid or None,
    whether it was snapped back onto the direction).

    The faces within a slab under the support plane are fitted with a plane (weighted by
    area and by how well their normals agree with the direction, so that walls running into
    the lid do not tilt it): with ``thick_start`` once in a slab 4 x `LID_SLAB_MM` deep, to
    take in enough of a lid the candidate misses by 10 degrees (which tilts a candidate that
    was right by a degree or so), then twice in `LID_SLAB_MM`, then twice on the lid's own
    faces (within `LID_DEPTH_MM` and facing within `LID_FACING_DEG` of the plane). The result
    is a lid if the mesh reaches `LID_BODY_MM` behind the plane, the faces within
    `LID_DEPTH_MM` of the plane cover at least `LID_MIN_AREA_MM2` and the surface just behind
    them (`LID_DEPTH_MM` to `LID_SLAB_MM` deep) runs steeply away from the plane: at a cut,
    the walls of the cut skin or bone meet the lid at a large angle, whereas a natural extreme
    (vertex, occiput, the flat side of the skull) curves away from its support plane gently,
    with normals still close to the plane's. A fit within ``snap_deg`` of the candidate is
    the candidate (see `find_lids`). The lid's ``faces`` and ``source`` are left empty here.
    """
    cos_facing = np.cos(np.radians(LID_FACING_DEG))
    start = w
    # a thick slab first, so that a candidate 10 degrees off the lid still takes in a good
    # part of it, then thinner ones
    slabs = (4.0 * LID_SLAB_MM,) if thick_start else ()
    for slab in slabs + (LID_SLAB_MM, LID_SLAB_MM, LID_DEPTH_MM, LID_DEPTH_MM):
        top = float(np.max(_dot(verts, w)))
        near = np.flatnonzero(_dot(centroids, w) > top - slab)
        weight = areas[near] * _dot(normals[near], w) ** 2
        if slab <= LID_DEPTH_MM:
            # last rounds: the lid's own faces only (facing within 30 degrees of it)
            weight = weight * (np.abs(_dot(normals[near], w)) > cos_facing)
        if weight.sum() <= 0:
            return None, False
        c = centroids[near]
        mean = np.einsum("ij,i->j", c, weight) / weight.sum()
        d = c - mean
        cov = np.einsum("ij,ik,i->jk", d, d, weight)
        _, evecs = np.linalg.eigh(cov)
        w_new = evecs[:, 0] * (1.0 if evecs[:, 0] @ w >= 0 else -1.0)
        # a fit that swings far from the candidate found some other structure
        if w_new @ w < np.cos(np.radians(20.0)):
            return None, False
        w = w_new
    snapped = snap_deg > 0 and w @ start >= np.cos(np.radians(snap_deg))
    if snapped:
        w = start
    height = _dot(verts, w)
    top = float(np.max(height))
    if top - float(np.min(height)) < LID_BODY_MM:
        return None, False
    depth = top - _dot(centroids, w)
    lid = depth < LID_DEPTH_MM
    area = float(areas[lid].sum())
    if area < LID_MIN_AREA_MM2:
        return None, False
    band = np.flatnonzero((depth >= LID_DEPTH_MM) & (depth < LID_SLAB_MM))
    band_area = float(areas[band].sum())
    if band_area > 0:
        alignment = float(np.dot(np.abs(_dot(normals[band], w)), areas[band])) / band_area
        if alignment > LID_MAX_WALL_ALIGNMENT:
            return None, False
    return Lid(w, top, area, centroids[lid].copy(), np.zeros(0, dtype=np.int64), ""), snapped


def _own_faces(lid: Lid, verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Indices (j,) int64 of every triangle of the mesh on the lid: centroid within
    `LID_DEPTH_MM` of its plane, facing within `LID_FACING_DEG` of its normal (either way:
    the winding is not trusted)."""
    normals, _, centroids = _face_geometry(verts, faces)
    slab = _dot(centroids, lid.normal) >= lid.offset - LID_DEPTH_MM
    facing = np.abs(_dot(normals, lid.normal)) >= np.cos(np.radians(LID_FACING_DEG))
    return np.flatnonzero(slab & facing).astype(np.int64)
