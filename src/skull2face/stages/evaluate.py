"""Stage ``evaluate``: how far is the real face from the predicted one, in millimetres.

A prediction is measured against the true skin surface (from the subject's CT or a face scan)
over one **face region** that depends only on the truth and its face landmarks, never on the
method being judged, so that every method is scored on the same skin (`face_region`).

Distances are exact point-to-triangle distances (libigl's AABB tree, `surface_distances`), in
both directions:

* **truth -> prediction** (the main figure): every truth vertex in the region, to the
  predicted surface. "How far is the real face from our prediction." Truth vertices that the
  prediction does not cover at all are still measured (to the nearest predicted surface,
  however far) and the **coverage** says which share of the region lies within
  `COVERAGE_MM` of the prediction.
* **prediction -> truth**: every predicted vertex whose closest truth point lies on a region
  triangle (and not beyond a scan cut of the truth), to the truth surface.

Every figure is **area-weighted**: a vertex stands for a third of the area of its triangles
(`vertex_areas`), so a finely tessellated nose does not outvote a coarsely tessellated cheek.
Figures: RMSE, mean, median, 95th percentile, maximum, the share within 1, 2 and 2.5 mm (the
2.5 mm share is what Lee et al. 2012 and Miranda et al. 2018 report) and a **signed mean**:
positive where the prediction lies outside the true skin (too thick), negative inside (too
thin), judged with the truth's outward normals at the closest points.

Head-frame convention (`skull2face.geometry.frame`): +x the subject's left, +y up, +z
anterior, origin at skin nasion on the mid-sagittal plane; millimetres throughout.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from ..errors import InputError
from ..geometry.frame import HeadFrame, apply, as_rigid, head_frame
from ..io.atomic import atomic_path, write_json
from ..io.landmarks import read_landmarks
from ..anatomy.landmark_set import LandmarkSet
from ..io.meshes import load_mesh

log = logging.getLogger(__name__)

# --- settings (all recorded in evaluate.json) ---------------------------------------------------

#: Sub-regions of the face, in label order; label 0 is "outside the region".
SUBREGIONS: tuple[str, ...] = ("forehead", "orbits", "nose", "cheeks", "mouth", "chin")
#: Share-within thresholds, mm. 2.5 mm is the figure of Lee et al. (2012) and Miranda et al. (2018).
WITHIN_MM: tuple[float, ...] = (1.0, 2.0, 2.5)
#: A truth point counts as covered by the prediction if the predicted surface is this close, mm.
COVERAGE_MM = 10.0
#: The region starts this far in front of tragion (the ear's front edge), mm.
EAR_MARGIN_MM = 10.0
#: Without tragion the region starts at z = -60 mm (about 20 mm in front of a typical tragion).
NO_TRAGION_Z_MM = -60.0
#: The forehead limit: y <= n_y + 40 mm.
FOREHEAD_MM = 40.0
#: The chin limit: y >= me_y - 5 mm (just under menton, so the chin's underside is in).
BELOW_MENTON_MM = 5.0
#: The region reaches 5 mm beyond the zygia; 70 mm from the midline without them.
ZYGION_MARGIN_MM = 5.0
NO_ZYGION_HALF_WIDTH_MM = 70.0
#: Lid (scan-cut) detection: seed triangles' normals within 2 degrees of the direction, ...
LID_SEED_DEG = 2.0
#: ... centroids within 1 mm of the mesh's extreme plane, seeds covering >= 300 mm^2 ...
LID_DEPTH_MM = 1.0
LID_MIN_AREA_MM2 = 300.0
#: ... then the lid is every triangle in that 1 mm slab facing within 30 degrees of it (the
#: ragged rim of a marching-cubes lid tilts by several degrees) ...
LID_GROW_DEG = 30.0
#: ... and only on a body: the mesh must reach at least 10 mm behind the plane (an open flat
#: patch is not a lid of anything).
LID_BODY_MM = 10.0
#: Landmarks farther than this from the truth surface (median) are not on it: wrong file or frame.
LANDMARK_OFF_SURFACE_MM = 10.0
#: Warn when the median truth -> prediction distance is this large: the two are probably not
#: in the same coordinates.
MISALIGNED_MM = 20.0
#: Colour scale of the heat map, mm.
HEATMAP_MAX_MM = 5.0

WEIGHTING = ("area-weighted: each vertex stands for 1/3 of the area of its incident triangles; "
             "shares and means are fractions of surface area, not of vertex counts")
SIGN_CONVENTION = ("signed distances are positive where the prediction lies outside the true "
                   "skin (too thick) and negative inside (too thin), using the truth's outward "
                   "normals at the closest points")

# Typical adult dimensions (rounded anthropometric norms), used only to place sub-region
# boxes when a landmark is missing; the description lists every value that was assumed.
_ASSUMED = {
    "en_y_below_n": 10.0,      # endocanthion ~10 mm below nasion
    "en_half_width": 16.0,     # intercanthal width ~32 mm
    "al_half_width": 17.5,     # alar width ~35 mm
    "sn_below_n": 52.0,        # nasal height n-sn ~52 mm
    "me_below_n": 120.0,       # face height n-me ~120 mm
}


# --- geometry helpers ---------------------------------------------------------------------------

def _arrays(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (n, 3) float64 and faces (m, 3) int64, C-contiguous (what libigl wants)."""
    v = np.ascontiguousarray(np.asarray(mesh.vertices, dtype=np.float64))
    f = np.ascontiguousarray(np.asarray(mesh.faces, dtype=np.int64))
    return v, f


def _face_cross(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Un-normalised face normals (m, 3): their length is twice the triangle's area."""
    tri = v[f]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def _norm(a: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", a, a))


def vertex_areas(mesh: trimesh.Trimesh) -> np.ndarray:
    """Area each vertex stands for: a third of the area of every triangle it belongs to.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in mm.

    Returns
    -------
    numpy.ndarray, shape (n_vertices,), float64, mm^2
        Sums to the mesh's total area; 0 for unreferenced vertices.
    """
    v, f = _arrays(mesh)
    third = _norm(_face_cross(v, f)) / 6.0  # |cross| / 2 is the area; a third of it per corner
    return np.bincount(f.ravel(), weights=np.repeat(third, 3), minlength=len(v))


def _vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (n, 3), oriented like the faces' winding."""
    cross = _face_cross(v, f)  # area-weighted already (length = 2 * area)
    out = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            out[:, c] += np.bincount(f[:, k], weights=cross[:, c], minlength=len(v))
    length = _norm(out)
    return np.where(length[:, None] > 0, out / np.maximum(length, 1e-300)[:, None], 0.0)


def _closest(points: np.ndarray, mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact closest points on ``mesh``: distances (n,), face indices (n,), points (n, 3)."""
    import igl  # imported here: libigl is heavy and only this stage needs it

    p = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    if len(p) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    v, f = _arrays(mesh)
    sq, face, closest = igl.point_mesh_squared_distance(p, v, f)
    # squared distances can come out -0.0 or a hair below zero from rounding
    return np.sqrt(np.maximum(sq, 0.0)), np.asarray(face, dtype=np.int64), np.asarray(closest)


def surface_distances(points: Any, mesh: trimesh.Trimesh) -> np.ndarray:
    """Exact distance from each point to a triangle surface.

    Uses libigl's ``point_mesh_squared_distance`` (AABB tree): the true Euclidean distance
    to the nearest point of any triangle (its inside, an edge or a corner), not to the nearest
    vertex.

    Parameters
    ----------
    points : array_like, shape (n, 3), mm
        Query points, in the mesh's coordinates.
    mesh : trimesh.Trimesh
        The surface, vertices in mm.

    Returns
    -------
    numpy.ndarray, shape (n,), float64, mm
        Unsigned distances, >= 0.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (n, 3), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("points hold NaN or infinite coordinates")
    return _closest(p, mesh)[0]


def _few_distances(points: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Exact surface distances (k,) mm of a few points (k, 3), without a tree of the whole mesh.

    The closest surface point lies on a triangle with a corner within ``d_vertex + L`` of the
    query (``d_vertex`` its nearest-vertex distance, ``L`` the longest edge), so only those
    triangles are searched; building libigl's tree over a 250k-vertex mesh for a dozen
    landmarks would cost more than all the rest of the region.
    """
    import igl

    tri = v[f]
    longest = float(np.sqrt(max(np.einsum("ij,ij->i", tri[:, a] - tri[:, b], tri[:, a] - tri[:, b]).max()
                                for a, b in ((0, 1), (1, 2), (2, 0)))))
    near = np.zeros(len(v), dtype=bool)
    for p in points:
        dv = np.sqrt(np.einsum("ij,ij->i", v - p, v - p))
        near |= dv <= dv.min() + longest + 1e-9
    faces = f[np.any(near[f], axis=1)]
    sq = igl.point_mesh_squared_distance(np.ascontiguousarray(points, dtype=np.float64), v,
                                         np.ascontiguousarray(faces, dtype=np.int64))[0]
    return np.sqrt(np.maximum(sq, 0.0))


def _barycentric(v: np.ndarray, f: np.ndarray, face: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates (n, 3) of points lying on triangles ``f[face]``."""
    a, b, c = (v[f[face, k]] for k in range(3))
    e0, e1, e2 = b - a, c - a, points - a
    d00 = np.einsum("ij,ij->i", e0, e0)
    d01 = np.einsum("ij,ij->i", e0, e1)
    d11 = np.einsum("ij,ij->i", e1, e1)
    d20 = np.einsum("ij,ij->i", e2, e0)
    d21 = np.einsum("ij,ij->i", e2, e1)
    den = d00 * d11 - d01 * d01
    # degenerate triangles: put the point on the first corner rather than divide by zero
    safe = np.where(np.abs(den) > 0, den, 1.0)
    wb = np.where(np.abs(den) > 0, (d11 * d20 - d01 * d21) / safe, 0.0)
    wc = np.where(np.abs(den) > 0, (d00 * d21 - d01 * d20) / safe, 0.0)
    return np.stack([1.0 - wb - wc, wb, wc], axis=1)


# --- scan-cut lids ------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class Lid:
    """A flat lid that closes a scanned surface where the scan ended (not skin).

    Parameters
    ----------
    normal : numpy.ndarray, shape (3,), float64
        Unit outward normal in the mesh's coordinates; the mesh lies where ``p . normal <= offset``.
    offset : float
        The mesh's extreme along ``normal`` (mm): the lid's plane.
    area : float
        Area of the lid's triangles, mm^2.
    faces : numpy.ndarray, shape (k,), int64
        Indices of the lid's triangles.
    source : str
        Which candidate direction found it.
    """

    normal: np.ndarray
    offset: float
    area: float
    faces: np.ndarray
    source: str

    def beyond(self, points: np.ndarray) -> np.ndarray:
        """True for points (n, 3) in the lid's 1 mm slab or past it: where the truth was not scanned."""
        return np.einsum("ij,j->i", points, self.normal) > self.offset - LID_DEPTH_MM

    def to_json(self) -> dict:
        """JSON-ready summary: normal, plane offset (mm), area (mm^2), triangle count, source."""
        return {"normal": [round(float(c), 6) for c in self.normal], "plane_offset_mm": float(self.offset),
                "area_mm2": round(float(self.area), 1), "triangles": len(self.faces),
                "found_along": self.source}


def find_lids(mesh: trimesh.Trimesh, frame: np.ndarray | None = None) -> list[Lid]:
    """Flat lids where a scan cut the surface (marching cubes closes a cut with a flat lid).

    A direction ``d`` has a lid if the triangles whose normals lie within `LID_SEED_DEG` of
    ``d`` and whose centroids lie within `LID_DEPTH_MM` of the mesh's extreme plane along
    ``d`` cover at least `LID_MIN_AREA_MM2`, and the mesh reaches at least `LID_BODY_MM`
    behind that plane. The lid is then every triangle in that slab whose normal is within
    `LID_GROW_DEG` of ``d`` (the rim of a marching-cubes lid is ragged). A natural extreme
    (the vertex of the head, the tip of the nose) curves away from its support plane, so only
    a few mm^2 of it face within 2 degrees of the plane.

    Directions tried: the mesh's own coordinate axes (a CT is cut along the scanner's axes,
    which extracted meshes keep), the head-frame axes when ``frame`` is given, and the planes
    of `skull2face.anatomy.detect.find_caps` (which finds lids in any pose).

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in mm.
    frame : numpy.ndarray, shape (4, 4), optional
        Input -> head transform.

    Returns
    -------
    list of Lid
        One per distinct lid (directions within 10 degrees of each other that find overlapping
        triangles are merged, keeping the plane with the larger seed area), largest first.
    """
    from ..anatomy.detect import find_caps

    v, f = _arrays(mesh)
    cross = _face_cross(v, f)
    dbl = _norm(cross)
    areas = dbl / 2.0
    normals = np.where(dbl[:, None] > 0, cross / np.maximum(dbl, 1e-300)[:, None], 0.0)
    centroids = v[f].mean(axis=1)

    candidates: list[tuple[np.ndarray, str]] = []
    for i, axis in enumerate("xyz"):
        for sign in (1.0, -1.0):
            candidates.append((sign * np.eye(3)[i], f"{'+' if sign > 0 else '-'}{axis} of the mesh"))
    if frame is not None:
        for i, axis in enumerate("xyz"):
            for sign in (1.0, -1.0):
                # row i of the rotation is head axis i in input coordinates
                candidates.append((sign * np.asarray(frame[i, :3], dtype=np.float64),
                                   f"{'+' if sign > 0 else '-'}{axis} of the head frame"))
    try:
        for cap in find_caps(v, f):
            candidates.append((np.asarray(cap.normal, dtype=np.float64), "find_caps plane"))
    except (ValueError, ArithmeticError, IndexError) as exc:  # only a source of extra candidates
        log.debug("find_caps failed: %s", exc)

    found: list[tuple[float, Lid, np.ndarray]] = []
    tried: list[np.ndarray] = []
    cos_seed, cos_grow = np.cos(np.radians(LID_SEED_DEG)), np.cos(np.radians(LID_GROW_DEG))
    for d, source in candidates:
        d = d / np.linalg.norm(d)
        if any(t @ d > np.cos(np.radians(0.5)) for t in tried):
            continue
        tried.append(d)
        height = np.einsum("ij,j->i", v, d)
        top, bottom = float(height.max()), float(height.min())
        if top - bottom < LID_BODY_MM:
            continue
        slab = np.einsum("ij,j->i", centroids, d) >= top - LID_DEPTH_MM
        facing = np.einsum("ij,j->i", normals, d)
        seed_area = float(areas[slab & (facing >= cos_seed)].sum())
        if seed_area < LID_MIN_AREA_MM2:
            continue
        lid_faces = np.flatnonzero(slab & (facing >= cos_grow))
        found.append((seed_area, Lid(d, top, float(areas[lid_faces].sum()), lid_faces, source), d))

    merged: list[tuple[float, Lid]] = []
    for seed_area, lid, d in sorted(found, key=lambda t: -t[0]):
        for k, (s, keep) in enumerate(merged):
            if keep.normal @ d > np.cos(np.radians(10.0)) and np.intersect1d(keep.faces, lid.faces).size:
                faces = np.union1d(keep.faces, lid.faces)
                merged[k] = (s, Lid(keep.normal, keep.offset, float(areas[faces].sum()), faces, keep.source))
                break
        else:
            merged.append((seed_area, lid))
    return sorted((lid for _, lid in merged), key=lambda lid: -lid.area)


# --- the face region ----------------------------------------------------------------------------

@dataclass(eq=False)
class FaceRegion:
    """The part of the truth surface that is scored, with its sub-regions.

    Attributes
    ----------
    labels : numpy.ndarray, shape (n_vertices,), int8
        Per truth vertex: 0 outside the region, ``k`` >= 1 in sub-region ``SUBREGIONS[k - 1]``.
    frame : numpy.ndarray, shape (4, 4), float64, or None
        Truth input -> head transform the boxes are defined in (None: whole-surface mode).
    bounds : dict
        The numbers of the boxes (head frame, mm); see `face_region`.
    lids : list of Lid
        Scan-cut lids of the truth, excluded from the region.
    description : dict
        JSON-ready account of the region: rules, numbers, landmarks used and assumed.
    outward_sign : float
        +1 if the truth's face winding gives outward normals, -1 if it must be flipped.
    """

    labels: np.ndarray
    frame: np.ndarray | None
    bounds: dict
    lids: list[Lid]
    description: dict
    outward_sign: float = 1.0
    _box: Any = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray:
        """Per truth vertex (n,) bool: inside the region."""
        return self.labels > 0

    def face_mask(self, faces: np.ndarray) -> np.ndarray:
        """Per truth triangle (m,) bool: all three corners inside the region."""
        return np.all(self.labels[np.asarray(faces)] > 0, axis=1)

    def box_labels(self, points: np.ndarray) -> np.ndarray:
        """Labels (n,) int8 that the boxes alone give to points (n, 3) in truth coordinates.

        Lids are not considered here; use `labels` for truth vertices.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return self._box(p)


def _landmark_points(landmarks: LandmarkSet | Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    if landmarks is None:
        return {}
    items = landmarks.points.items() if isinstance(landmarks, LandmarkSet) else dict(landmarks).items()
    out = {}
    for name, p in items:
        if p is None:
            continue
        a = np.asarray(p, dtype=np.float64).reshape(-1)
        if a.shape == (3,) and np.all(np.isfinite(a)):
            out[name] = a
    return out


def _mean_of(head: dict[str, np.ndarray], names: tuple[str, ...], coord: int, absolute: bool = False):
    vals = [abs(head[n][coord]) if absolute else head[n][coord] for n in names if n in head]
    return (float(np.mean(vals)), [n for n in names if n in head]) if vals else (None, [])


def face_region(truth_mesh: trimesh.Trimesh, landmarks: LandmarkSet | Mapping[str, Any] | None,
                frame: np.ndarray | HeadFrame | None = None) -> FaceRegion:
    """The region of the truth surface that is scored: the front of the face, without scan cuts.

    The region depends only on the truth and its face landmarks, so it is the same whatever
    method made the prediction. In the head frame (built from the face landmarks with
    `skull2face.geometry.frame.head_frame` unless ``frame`` is given), a truth vertex is in
    the region if all of these hold:

    * **in front of the ears**: ``z > t_z + 10 mm`` (``t_z`` the mean z of the tragia present);
      ``z > -60 mm`` without tragion;
    * **below the forehead limit**: ``y <= n_y + 40 mm``;
    * **above the chin limit**: ``y >= me_y - 5 mm`` if menton is present, else
      ``y >= n_y - 120 - 5 mm`` (a typical adult face height n-me, so a neck is not scored);
    * **within the cheeks**: ``|x| <= w + 5 mm``, ``w`` the mean ``|x|`` of the zygia (zy')
      present, else ``|x| <= 70 mm``;
    * **not on a scan-cut lid** (`find_lids`): no corner of a lid triangle is skin.

    Sub-regions, the first rule that matches wins (head frame, mm; ``n, en, al, sn, me`` are the
    landmarks' y or ``|x|`` values, typical adult values where one is missing, listed under
    ``"assumed"`` in the description):

    1. **forehead**: ``y > n_y + 10``, or ``y > n_y`` and ``|x| <= en_x - 3`` (glabella);
    2. **nose**: ``sn_y - 2 <= y <= n_y`` and ``|x| <= en_x - 3`` above ``y = en_y - 10``,
       ``|x| <= al_x + 3`` below it;
    3. **orbits**: ``en_y - 15 <= y <= n_y + 10`` and ``|x| <= en_x + 40``;
    4. **mouth**: ``y_lip <= y < sn_y - 2`` and ``|x| <= al_x + 12``, where
       ``y_lip = sn_y - 0.6 (sn_y - me_y)`` (about the labiomental fold);
    5. **chin**: ``y < y_lip`` and ``|x| <= al_x + 12``;
    6. **cheeks**: the rest of the region.

    With ``landmarks=None`` and no frame the region is the whole truth surface minus its lids
    (label "cheeks" is not used then: every vertex gets label 1 and the description's kind is
    ``"whole surface"``); meant for synthetic tests, not for scoring faces.

    Parameters
    ----------
    truth_mesh : trimesh.Trimesh
        The true skin surface, vertices in mm (input coordinates).
    landmarks : LandmarkSet or mapping of str to array_like (3,), or None
        Face landmarks (Table 2 names: ``n``, ``sn``, ``me``, ``t_L``, ``zy'_R``, ...) in the
        truth's coordinates, mm. Missing ones are allowed; the head frame needs nasion, a
        bilateral pair and ``sn`` (or a frame given).
    frame : array_like (4, 4) or HeadFrame, optional
        Rigid input -> head transform; built from the landmarks when None.

    Returns
    -------
    FaceRegion

    Raises
    ------
    ValueError
        If the head frame cannot be built from the landmarks (the message names what is
        missing), or the landmarks lie far from the truth surface (median over
        `LANDMARK_OFF_SURFACE_MM`: another frame or another subject).
    """
    v, f = _arrays(truth_mesh)
    pts = _landmark_points(landmarks)
    if isinstance(frame, HeadFrame):
        frame_source, m = "given (HeadFrame)", frame.matrix
    elif frame is not None:
        frame_source, m = "given", as_rigid(frame, "frame")
    elif landmarks is not None:
        # raises, naming what is missing, rather than falling back to the whole surface
        hf = head_frame(pts, "face")
        frame_source, m = f"face landmarks ({', '.join(hf.landmarks)})", hf.matrix
    else:
        frame_source, m = None, None

    lids = find_lids(truth_mesh, m)
    on_lid = np.zeros(len(v), dtype=bool)
    for lid in lids:
        on_lid[f[lid.faces].ravel()] = True

    description: dict[str, Any] = {"units": "mm"}
    if m is None:
        def box(p: np.ndarray) -> np.ndarray:
            return np.ones(len(p), dtype=np.int8)

        bounds: dict = {}
        description.update(kind="whole surface",
                           definition="every truth vertex except those on scan-cut lids "
                                      "(no landmarks: not a face region)")
    else:
        box, bounds, desc = _boxes(pts, m)
        description.update(kind="face", **desc)
        description["frame"] = {"source": frame_source, "matrix_input_to_head": m.tolist(),
                                "convention": "+x subject's left, +y up, +z anterior, origin skin "
                                              "nasion on the mid-sagittal plane; mm"}
        if pts:
            d = _few_distances(np.stack(list(pts.values())), v, f)
            description["landmark_to_truth_mm"] = {n: round(float(x), 2) for n, x in zip(pts, d)}
            if float(np.median(d)) > LANDMARK_OFF_SURFACE_MM:
                raise ValueError(f"the landmarks are not on the truth surface (median distance "
                                 f"{np.median(d):.1f} mm): are they in the truth mesh's coordinates?")

    labels = box(v)
    labels[on_lid] = 0
    sign, how = _outward(truth_mesh, v, f, labels, m)
    areas = vertex_areas(truth_mesh)
    description["lids"] = [lid.to_json() for lid in lids]
    description["lid_rule"] = (f"triangles within {LID_DEPTH_MM:g} mm of the mesh's extreme plane along "
                               f"a direction and facing within {LID_GROW_DEG:g} deg of it, where those "
                               f"facing within {LID_SEED_DEG:g} deg cover >= {LID_MIN_AREA_MM2:g} mm^2 "
                               f"and the mesh reaches >= {LID_BODY_MM:g} mm behind the plane; "
                               "directions: mesh axes, head-frame axes, find_caps planes")
    description["truth_normals"] = how
    description["vertices"] = int(np.count_nonzero(labels))
    description["area_mm2"] = round(float(areas[labels > 0].sum()), 1)
    if m is not None:
        description["subregion_area_mm2"] = {name: round(float(areas[labels == k + 1].sum()), 1)
                                             for k, name in enumerate(SUBREGIONS)}
    return FaceRegion(labels=labels, frame=m, bounds=bounds, lids=lids, description=description,
                      outward_sign=sign, _box=box)


def _boxes(pts: dict[str, np.ndarray], m: np.ndarray):
    """The region's and sub-regions' boxes in the head frame: (labeller, bounds, description)."""
    head = {n: apply(m, p) for n, p in pts.items()}
    used: dict[str, list[float]] = {}
    assumed: dict[str, float] = {}

    def note(names: list[str]) -> None:
        for n in names:
            used[n] = [round(float(c), 3) + 0.0 for c in head[n]]

    # nasion is the frame's origin; its y is 0 unless a frame was given
    if "n" in head:
        yn = float(head["n"][1])
        note(["n"])
    else:
        yn = 0.0
        assumed["n_y"] = 0.0
    t_z, t_names = _mean_of(head, ("t_L", "t_R"), 2)
    note(t_names)
    z_min = t_z + EAR_MARGIN_MM if t_z is not None else NO_TRAGION_Z_MM
    y_max = yn + FOREHEAD_MM
    me_y = float(head["me"][1]) if "me" in head else None
    if me_y is not None:
        note(["me"])
    # without menton (a chin the scan lost, or a neck below it), stop at a typical adult face
    # height below nasion rather than scoring the neck
    y_min = (me_y if me_y is not None else yn - _ASSUMED["me_below_n"]) - BELOW_MENTON_MM
    zy, zy_names = _mean_of(head, ("zy'_L", "zy'_R"), 0, absolute=True)
    note(zy_names)
    x_half = zy + ZYGION_MARGIN_MM if zy is not None else NO_ZYGION_HALF_WIDTH_MM

    yen, en_names = _mean_of(head, ("en_L", "en_R"), 1)
    xen, _ = _mean_of(head, ("en_L", "en_R"), 0, absolute=True)
    note(en_names)
    if yen is None:
        yen = yn - _ASSUMED["en_y_below_n"]
        xen = _ASSUMED["en_half_width"]
        assumed.update(en_y=yen, en_half_width=xen)
    xal, al_names = _mean_of(head, ("al_L", "al_R"), 0, absolute=True)
    note(al_names)
    if xal is None:
        xal = _ASSUMED["al_half_width"]
        assumed["al_half_width"] = xal
    if "sn" in head:
        ysn = float(head["sn"][1])
        note(["sn"])
    else:
        ysn = yn - _ASSUMED["sn_below_n"]
        assumed["sn_y"] = ysn
    yme = me_y if me_y is not None else yn - _ASSUMED["me_below_n"]
    if me_y is None:
        assumed["me_y (sub-regions only)"] = yme
    y_lip = ysn - 0.6 * (ysn - yme)

    bounds = {"z_min": z_min, "y_max": y_max, "y_min": y_min, "x_half": x_half,
              "n_y": yn, "en_y": yen, "en_half_width": xen, "al_half_width": xal,
              "sn_y": ysn, "me_y": yme, "lip_y": y_lip}
    codes = {name: np.int8(k + 1) for k, name in enumerate(SUBREGIONS)}

    def box(p_in: np.ndarray) -> np.ndarray:
        h = apply(m, p_in)
        x, y, z = np.abs(h[:, 0]), h[:, 1], h[:, 2]
        inside = (z > z_min) & (y <= y_max) & (y >= y_min) & (x <= x_half)
        lab = np.full(len(h), codes["cheeks"], dtype=np.int8)
        free = np.ones(len(h), dtype=bool)

        def claim(name: str, sel: np.ndarray) -> None:
            take = free & sel
            lab[take] = codes[name]
            free[take] = False

        claim("forehead", (y > yn + 10.0) | ((y > yn) & (x <= xen - 3.0)))
        nose_w = np.where(y > yen - 10.0, xen - 3.0, xal + 3.0)
        claim("nose", (y >= ysn - 2.0) & (y <= yn) & (x <= nose_w))
        claim("orbits", (y >= yen - 15.0) & (y <= yn + 10.0) & (x <= xen + 40.0))
        claim("mouth", (y >= y_lip) & (y < ysn - 2.0) & (x <= xal + 12.0))
        claim("chin", (y < y_lip) & (x <= xal + 12.0))
        lab[~inside] = 0
        return lab

    def r(x: float) -> float | None:
        # "+ 0.0" turns -0.0 into 0.0 for the record
        return None if not np.isfinite(x) else round(float(x), 2) + 0.0

    desc = {
        "definition": "front of the face in the head frame, fixed by the truth's face landmarks "
                      "(the same for every method), minus scan-cut lids",
        "bounds_head_mm": {
            "z_min": r(z_min), "z_min_rule": (f"mean tragion z + {EAR_MARGIN_MM:g}" if t_z is not None
                                              else f"{NO_TRAGION_Z_MM:g} (no tragion)"),
            "y_max": r(y_max), "y_max_rule": f"n_y + {FOREHEAD_MM:g}",
            "y_min": r(y_min), "y_min_rule": (f"me_y - {BELOW_MENTON_MM:g}" if me_y is not None
                                              else "n_y - 120 - 5 (no menton: a typical adult face height n-me)"),
            "x_half": r(x_half), "x_half_rule": (f"mean |zy'_x| + {ZYGION_MARGIN_MM:g}" if zy is not None
                                                 else f"{NO_ZYGION_HALF_WIDTH_MM:g} (no zygion)"),
        },
        "subregions": {
            "forehead": f"y > {r(yn + 10)} or (y > {r(yn)} and |x| <= {r(xen - 3)})",
            "nose": f"{r(ysn - 2)} <= y <= {r(yn)} and |x| <= {r(xen - 3)} above y = {r(yen - 10)}, "
                    f"|x| <= {r(xal + 3)} below",
            "orbits": f"{r(yen - 15)} <= y <= {r(yn + 10)} and |x| <= {r(xen + 40)}",
            "mouth": f"{r(y_lip)} <= y < {r(ysn - 2)} and |x| <= {r(xal + 12)}",
            "chin": f"y < {r(y_lip)} and |x| <= {r(xal + 12)}",
            "cheeks": "the rest of the region",
            "order": "first matching rule wins, in the order listed",
        },
        "landmarks_used_head_mm": used,
        "landmarks_missing": sorted({"n", "sn", "me", "t_L", "t_R", "zy'_L", "zy'_R", "en_L", "en_R",
                                     "al_L", "al_R"} - set(head)),
        "assumed": {k: round(float(x), 2) for k, x in assumed.items()},
    }
    return box, bounds, desc


def _outward(mesh: trimesh.Trimesh, v: np.ndarray, f: np.ndarray, labels: np.ndarray,
             m: np.ndarray | None) -> tuple[float, str]:
    """+1 or -1 so that ``sign * winding normal`` points out of the truth, and how it was decided."""
    if mesh.is_watertight:
        vol = float(mesh.volume)
        return (1.0 if vol >= 0 else -1.0), f"closed surface: winding {'kept' if vol >= 0 else 'flipped'} (signed volume)"
    if m is not None:
        in_region = np.all(labels[f] > 0, axis=1)
        if in_region.any():
            # skin of the face looks forward: the area-weighted mean normal has +z in the head frame
            cross = _face_cross(v, f[in_region]).sum(axis=0)
            front = float(m[2, :3] @ cross)
            return (1.0 if front >= 0 else -1.0), (
                f"open surface: winding {'kept' if front >= 0 else 'flipped'} so that the face region faces +z")
    return 1.0, "open surface without landmarks: winding taken as outward (unchecked)"


# --- figures ------------------------------------------------------------------------------------

def _weighted_quantile(d: np.ndarray, w: np.ndarray, q: float) -> float:
    """Inverted-CDF quantile: the smallest value whose cumulative area share reaches ``q``."""
    order = np.argsort(d, kind="stable")
    cw = np.cumsum(w[order])
    k = int(np.searchsorted(cw, q * cw[-1], side="left"))
    return float(d[order[min(k, len(d) - 1)]])


def _figures(d: np.ndarray, w: np.ndarray, signed: np.ndarray) -> dict:
    """Area-weighted error figures of distances ``d`` (n,) mm with vertex areas ``w`` (n,) mm^2."""
    total = float(w.sum())
    out: dict[str, Any] = {"vertices": len(d), "area_mm2": round(total, 2)}
    keys = ["rmse_mm", "mean_mm", "median_mm", "p95_mm", "max_mm", "signed_mean_mm"]
    keys += [f"share_within_{t:g}mm" for t in WITHIN_MM]
    if len(d) == 0 or total <= 0.0:
        out.update({k: None for k in keys})
        return out
    out["rmse_mm"] = float(np.sqrt(np.sum(w * d * d) / total))
    out["mean_mm"] = float(np.sum(w * d) / total)
    out["median_mm"] = _weighted_quantile(d, w, 0.5)
    out["p95_mm"] = _weighted_quantile(d, w, 0.95)
    out["max_mm"] = float(d.max())
    out["signed_mean_mm"] = float(np.sum(w * signed) / total)
    for t in WITHIN_MM:
        out[f"share_within_{t:g}mm"] = float(w[d <= t].sum() / total)
    return out


def _per_region(d: np.ndarray, w: np.ndarray, s: np.ndarray, labels: np.ndarray) -> dict:
    return {name: _figures(d[labels == k + 1], w[labels == k + 1], s[labels == k + 1])
            for k, name in enumerate(SUBREGIONS) if np.any(labels == k + 1)}


@dataclass
class _PerVertex:
    """Per-vertex results kept for the error mesh and the picture."""

    truth_error: np.ndarray    # (n_truth,) mm, every truth vertex to the prediction
    truth_signed: np.ndarray   # (n_truth,) mm, + where the prediction is outside the truth
    pred_error: np.ndarray     # (n_pred,) mm
    pred_used: np.ndarray      # (n_pred,) bool


def _measure(pred: trimesh.Trimesh, truth: trimesh.Trimesh, region: FaceRegion) -> tuple[dict, _PerVertex]:
    vt, ft = _arrays(truth)
    vp, _ = _arrays(pred)
    w_truth = vertex_areas(truth)
    w_pred = vertex_areas(pred)
    normals = _vertex_normals(vt, ft) * region.outward_sign

    # truth -> prediction, for every truth vertex (the error mesh shows them all)
    d_t, _, c_t = _closest(vt, pred)
    s_t = d_t * np.sign(np.einsum("ij,ij->i", c_t - vt, normals))
    # prediction -> truth
    d_p, face_p, c_p = _closest(vp, truth)
    bary = _barycentric(vt, ft, face_p, c_p)
    n_at = np.einsum("ij,ijk->ik", bary, normals[ft[face_p]])
    s_p = d_p * np.sign(np.einsum("ij,ij->i", vp - c_p, n_at))
    used = region.face_mask(ft)[face_p]
    for lid in region.lids:
        # past a scan cut the truth is unknown: a predicted chin below a CT cut is not scored
        used &= ~lid.beyond(vp)
    pred_labels = np.where(used, region.box_labels(c_p), 0).astype(np.int8)

    inside = region.mask
    t_fig = _figures(d_t[inside], w_truth[inside], s_t[inside])
    t_fig["coverage"] = (float(w_truth[inside][d_t[inside] < COVERAGE_MM].sum() / w_truth[inside].sum())
                         if inside.any() and w_truth[inside].sum() > 0 else None)
    p_fig = _figures(d_p[used], w_pred[used], s_p[used])
    record: dict[str, Any] = {
        "units": "mm",
        "weighting": WEIGHTING,
        "sign_convention": SIGN_CONVENTION,
        "truth_to_prediction": {
            "what": "each truth vertex in the region to the predicted surface (exact point-to-triangle "
                    "distance); the main figure",
            **t_fig,
            "coverage_rule": f"share of the region's area within {COVERAGE_MM:g} mm of the predicted surface",
            "regions": _per_region(d_t[inside], w_truth[inside], s_t[inside], region.labels[inside])
            if region.description.get("kind") == "face" else {},
        },
        "prediction_to_truth": {
            "what": "each predicted vertex whose closest truth point lies on a region triangle (and not "
                    "beyond a scan cut of the truth) to the truth surface",
            **p_fig,
            "regions": _per_region(d_p[used], w_pred[used], s_p[used], pred_labels[used])
            if region.description.get("kind") == "face" else {},
        },
        "symmetric": {
            "mean_of_means_mm": (None if t_fig["mean_mm"] is None or p_fig["mean_mm"] is None
                                 else (t_fig["mean_mm"] + p_fig["mean_mm"]) / 2.0),
            "hausdorff_mm": (None if t_fig["max_mm"] is None or p_fig["max_mm"] is None
                             else max(t_fig["max_mm"], p_fig["max_mm"])),
        },
        "warnings": [],
    }
    if t_fig["median_mm"] is not None and t_fig["median_mm"] > MISALIGNED_MM:
        record["warnings"].append(
            f"median truth -> prediction distance is {t_fig['median_mm']:.1f} mm: the prediction is "
            "probably not in the truth's coordinates (or not of this subject)")
    if t_fig["coverage"] is not None and t_fig["coverage"] < 0.9:
        record["warnings"].append(
            f"the prediction covers only {100 * t_fig['coverage']:.0f} % of the region (within "
            f"{COVERAGE_MM:g} mm); uncovered skin is still scored, at its distance to the prediction")
    return record, _PerVertex(d_t, s_t, d_p, used)


def evaluate_surfaces(pred_mesh: trimesh.Trimesh, truth_mesh: trimesh.Trimesh,
                      landmarks: LandmarkSet | Mapping[str, Any] | None,
                      frame: np.ndarray | HeadFrame | None = None, *,
                      region: FaceRegion | None = None) -> dict:
    """Area-weighted surface errors of a predicted face against the true skin, both directions.

    Parameters
    ----------
    pred_mesh : trimesh.Trimesh
        Predicted face, vertices in mm, in the truth's coordinates.
    truth_mesh : trimesh.Trimesh
        True skin surface, mm.
    landmarks : LandmarkSet or mapping of str to array_like (3,), or None
        The truth's face landmarks (truth coordinates), which fix the region (`face_region`).
        None scores the whole truth surface except its lids (synthetic tests only).
    frame : array_like (4, 4) or HeadFrame, optional
        Truth input -> head transform; from the landmarks when None.
    region : FaceRegion, optional
        A region already computed for this truth (then ``landmarks`` and ``frame`` are unused).

    Returns
    -------
    dict
        JSON-ready. ``"truth_to_prediction"`` and ``"prediction_to_truth"`` each hold
        ``vertices``, ``area_mm2``, ``rmse_mm``, ``mean_mm``, ``median_mm``, ``p95_mm``,
        ``max_mm``, ``signed_mean_mm`` and ``share_within_{1,2,2.5}mm`` (fractions of area, 0..1),
        plus ``"regions"`` with the same figures per sub-region; ``truth_to_prediction`` also has
        ``coverage`` (share of the region's area within `COVERAGE_MM` of the prediction).
        ``"region"`` describes the region, ``"weighting"`` and ``"sign_convention"`` say how to
        read the figures, ``"warnings"`` lists anything suspicious. All distances in mm.
    """
    if region is None:
        region = face_region(truth_mesh, landmarks, frame)
    if len(region.labels) != len(truth_mesh.vertices):
        raise ValueError("the region was computed for another truth mesh (vertex counts differ)")
    record, _ = _measure(pred_mesh, truth_mesh, region)
    record["region"] = region.description
    return record


# --- outputs ------------------------------------------------------------------------------------

_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("error_mm", "<f4"),
                        ("signed_error_mm", "<f4"), ("region", "u1")])
_PLY_FACE = np.dtype([("n", "u1"), ("v", "<i4", (3,))])


def write_error_ply(mesh: trimesh.Trimesh, error_mm: np.ndarray, signed_mm: np.ndarray,
                    labels: np.ndarray, path: str | os.PathLike) -> Path:
    """Write the truth mesh with per-vertex errors as a binary PLY, atomically.

    Vertex properties: ``x y z`` (float32, mm), ``error_mm`` (float32, distance to the
    prediction), ``signed_error_mm`` (float32, + where the prediction is outside the truth) and
    ``region`` (uint8 label: 0 outside, 1.. per `SUBREGIONS`). MeshLab, CloudCompare and
    ParaView show the extra properties as scalar fields.

    Parameters
    ----------
    mesh : trimesh.Trimesh
    error_mm, signed_mm : numpy.ndarray, shape (n_vertices,), mm
    labels : numpy.ndarray, shape (n_vertices,), int
    path : path-like
    """
    v, f = _arrays(mesh)
    vert = np.empty(len(v), dtype=_PLY_VERTEX)
    vert["x"], vert["y"], vert["z"] = v[:, 0], v[:, 1], v[:, 2]
    vert["error_mm"], vert["signed_error_mm"], vert["region"] = error_mm, signed_mm, labels
    face = np.empty(len(f), dtype=_PLY_FACE)
    face["n"], face["v"] = 3, f
    header = "\n".join([
        "ply", "format binary_little_endian 1.0",
        "comment skull2face evaluate: truth skin, mm; error_mm = distance to the predicted surface",
        "comment signed_error_mm > 0 where the prediction lies outside the truth; region 0 = not scored, "
        + ", ".join(f"{k + 1} = {n}" for k, n in enumerate(SUBREGIONS)),
        f"element vertex {len(v)}", "property float x", "property float y", "property float z",
        "property float error_mm", "property float signed_error_mm", "property uchar region",
        f"element face {len(f)}", "property list uchar int vertex_indices", "end_header", ""])
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(header.encode("ascii"))
        fh.write(vert.tobytes())
        fh.write(face.tobytes())
    return path


def read_error_ply(path: str | os.PathLike) -> tuple[trimesh.Trimesh, dict[str, np.ndarray]]:
    """Read a PLY written by `write_error_ply`.

    Returns
    -------
    mesh : trimesh.Trimesh
        Vertices float64 mm (from float32), faces int64, in file order (not merged).
    scalars : dict of str to numpy.ndarray, shape (n_vertices,)
        ``error_mm``, ``signed_error_mm`` (float64) and ``region`` (int8).
    """
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise InputError(path, "not a PLY file written by skull2face evaluate")
    head = data[:end].decode("ascii").splitlines()
    counts = {ln.split()[1]: int(ln.split()[2]) for ln in head if ln.startswith("element ")}
    if "property float error_mm" not in head or "vertex" not in counts or "face" not in counts:
        raise InputError(path, "PLY has no error_mm vertex property")
    body = memoryview(data)[end + len(b"end_header\n"):]
    nv, nf = counts["vertex"], counts["face"]
    vert = np.frombuffer(body, dtype=_PLY_VERTEX, count=nv)
    face = np.frombuffer(body, dtype=_PLY_FACE, count=nf, offset=nv * _PLY_VERTEX.itemsize)
    mesh = trimesh.Trimesh(np.stack([vert["x"], vert["y"], vert["z"]], axis=1).astype(np.float64),
                           face["v"].astype(np.int64), process=False)
    return mesh, {"error_mm": vert["error_mm"].astype(np.float64),
                  "signed_error_mm": vert["signed_error_mm"].astype(np.float64),
                  "region": vert["region"].astype(np.int8)}


def _error_view(mesh: trimesh.Trimesh, err: np.ndarray, face_in: np.ndarray, frame: np.ndarray | None,
                look_head: np.ndarray, up_head: np.ndarray, focus: np.ndarray, px: int) -> np.ndarray:
    """Orthographic ray-cast picture (px, px, 3) float in 0..1 of the truth coloured by error.

    Pixels whose ray hits a region triangle get the colour of the barycentric-interpolated
    vertex error (0..`HEATMAP_MAX_MM`), others grey; Lambert shading from the camera side; the
    region's outline is drawn dark.
    """
    import matplotlib

    rot = np.eye(3) if frame is None else frame[:3, :3]
    # head-frame directions -> input coordinates (rows of rot are the head axes in input coords)
    look = rot.T @ look_head
    up = rot.T @ up_head
    right = np.cross(look, up)
    v, f = _arrays(mesh)
    basis = np.stack([right, up, look])
    uvw = np.einsum("ij,kj->ik", v, basis)
    fuv = np.einsum("ij,kj->ik", focus, basis)
    lo, hi = fuv.min(axis=0), fuv.max(axis=0)
    centre = (lo + hi) / 2.0
    half = 0.55 * float(max(hi[0] - lo[0], hi[1] - lo[1])) + 10.0
    s = np.linspace(-half, half, px)
    uu, vv = np.meshgrid(s + centre[0], -s + centre[1])
    start = float(uvw[:, 2].min()) - 10.0
    origins = (uu.reshape(-1, 1) * right + vv.reshape(-1, 1) * up + start * look)
    dirs = np.tile(look, (len(origins), 1))
    loc, ray, tri = mesh.ray.intersects_location(origins, dirs, multiple_hits=False)
    img = np.ones((px * px, 3))
    if len(ray):
        n = _face_cross(v, f[tri])
        n /= np.maximum(_norm(n), 1e-300)[:, None]
        light = -look + 0.35 * up - 0.25 * right
        light /= np.linalg.norm(light)
        lum = 0.35 + 0.65 * np.abs(np.einsum("ij,j->i", n, light))
        bary = _barycentric(v, f, tri, np.asarray(loc, dtype=np.float64))
        e = np.einsum("ij,ij->i", bary, err[f[tri]])
        cmap = matplotlib.colormaps["viridis"]
        colour = cmap(np.clip(e / HEATMAP_MAX_MM, 0.0, 1.0))[:, :3]
        inside = face_in[tri]
        colour[~inside] = 0.62
        img[ray] = colour * lum[:, None]
        flag = np.full(px * px, -1, dtype=np.int8)
        flag[ray] = inside
        flag = flag.reshape(px, px)
        edge = np.zeros((px, px), dtype=bool)
        # a pixel is on the outline where it and its upper or left neighbour both hit the
        # truth but only one of them hits the region
        edge[1:] |= (flag[1:] != flag[:-1]) & (flag[1:] >= 0) & (flag[:-1] >= 0)
        edge[:, 1:] |= (flag[:, 1:] != flag[:, :-1]) & (flag[:, 1:] >= 0) & (flag[:, :-1] >= 0)
        img.reshape(px, px, 3)[edge] = 0.1
    return img.reshape(px, px, 3)


def heatmap_figure(truth: trimesh.Trimesh, error_mm: np.ndarray, region: FaceRegion, title: str,
                   px: int = 420):
    """Front and left-side pictures of the truth coloured by its distance to the prediction.

    Parameters
    ----------
    truth : trimesh.Trimesh
    error_mm : numpy.ndarray, shape (n_vertices,), mm
        Truth -> prediction distance per truth vertex.
    region : FaceRegion
        Region triangles are coloured, the rest grey, with the region's outline.
    title : str
    px : int
        Side of each picture, pixels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    v, f = _arrays(truth)
    face_in = region.face_mask(f)
    focus = v[region.mask] if region.mask.any() else v
    views = (("front", np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])),
             ("subject's left side", np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])))
    fig, axes = plt.subplots(1, 2, figsize=(11.5, 6.0))
    for ax, (name, look, up) in zip(axes, views):
        ax.imshow(_error_view(truth, error_mm, face_in, region.frame, look, up, focus, px))
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    sm = matplotlib.cm.ScalarMappable(cmap="viridis", norm=matplotlib.colors.Normalize(0.0, HEATMAP_MAX_MM))
    cb = fig.colorbar(sm, ax=list(axes), fraction=0.035, pad=0.02, extend="max")
    cb.set_label("distance from the true skin to the prediction (mm)")
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.01, "grey: outside the scored face region (dark line: its outline)", fontsize=8)
    return fig


def _detect_truth_landmarks(truth: trimesh.Trimesh, truth_path: Path) -> tuple[LandmarkSet, str]:
    from ..anatomy.detect import detect_landmarks
    from .landmarks import PoseSettings, coarse_pose

    coarse, record = coarse_pose(truth, truth_path, "face", PoseSettings())
    how = ("detected on the truth (coarse pose: LPS axes of the CT it came from)" if record["mode"] == "lps"
           else "detected on the truth (coarse pose: auto_frame)")
    return detect_landmarks(truth, "face", coarse), how


def evaluate(pred_path: str | os.PathLike, truth_path: str | os.PathLike, out_dir: str | os.PathLike,
             landmarks_path: str | os.PathLike | None = None, name: str | None = None) -> dict:
    """Stage ``evaluate``: score a predicted face against the true skin.

    Parameters
    ----------
    pred_path : path-like
        Predicted face mesh (PLY, OBJ, STL, OFF, GLB), mm, in the truth's coordinates.
    truth_path : path-like
        True skin mesh, mm (e.g. ``skin.ply`` from ``skull2face extract``).
    out_dir : path-like
        Created if needed. Receives ``evaluate.json`` (figures, region, inputs with sha256,
        settings, timings), ``error_on_truth.ply`` (truth mesh with per-vertex ``error_mm``,
        ``signed_error_mm`` and ``region``; see `write_error_ply`) and ``heatmap.png`` (front
        and side views coloured 0..5 mm), all written atomically.
    landmarks_path : path-like, optional
        The truth's face landmarks (any format `read_landmarks` reads), in truth coordinates.
        Without it they are detected on the truth (`skull2face.anatomy.detect.detect_landmarks`;
        coarse pose from the LPS axes when an ``extract.json`` sits beside the truth file, else
        `skull2face.geometry.pose.auto_frame`).
    name : str, optional
        Shown in the picture and the record; the prediction's file name by default.

    Returns
    -------
    dict
        The record written to ``evaluate.json``.

    Raises
    ------
    InputError
        A mesh or the landmark file is missing, unreadable or wrongly scaled, or the landmarks
        cannot fix the face region (missing nasion / a bilateral pair / subnasale, or not on
        the truth surface).
    """
    from .. import __version__
    from ..io.volumes import file_sha256
    from ..report.pictures import save_png

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pred_path, truth_path, out = Path(pred_path), Path(truth_path), Path(out_dir)
    name = name or pred_path.name
    pred = load_mesh(pred_path)
    truth = load_mesh(truth_path)
    timings["load_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    if landmarks_path is not None:
        lms = read_landmarks(landmarks_path, surface="face")
        lm_source, lm_where = "given", Path(landmarks_path)
    else:
        lms, lm_source = _detect_truth_landmarks(truth, truth_path)
        lm_where = truth_path
    timings["landmarks_s"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        region = face_region(truth, lms)
    except ValueError as exc:
        hint = "" if landmarks_path is not None else "; give the truth's face landmarks (--landmarks)"
        raise InputError(lm_where, f"cannot fix the face region: {exc}{hint}") from None
    if not region.mask.any():
        raise InputError(lm_where, "the face region holds no truth vertex: check the landmarks")
    timings["region_s"] = time.perf_counter() - t

    t = time.perf_counter()
    record, per = _measure(pred, truth, region)
    timings["distances_s"] = time.perf_counter() - t

    t = time.perf_counter()
    ply = write_error_ply(truth, per.truth_error, per.truth_signed, region.labels, out / "error_on_truth.ply")
    back = trimesh.load(str(ply), process=False)  # an independent reader must see what we wrote
    raw = back.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if (len(back.vertices) != len(truth.vertices) or len(back.faces) != len(truth.faces) or raw is None
            or not np.array_equal(raw["error_mm"], per.truth_error.astype(np.float32))):
        raise RuntimeError(f"{ply}: the error mesh does not read back as written")
    timings["error_mesh_s"] = time.perf_counter() - t

    t = time.perf_counter()
    tp = record["truth_to_prediction"]
    fig = heatmap_figure(truth, per.truth_error, region, (
        f"{name}: distance from the true skin to the prediction (area-weighted over the face region)\n"
        f"RMSE {tp['rmse_mm']:.2f} mm, mean {tp['mean_mm']:.2f} mm, signed mean {tp['signed_mean_mm']:+.2f} mm, "
        f"within 2.5 mm {100 * tp['share_within_2.5mm']:.0f} %, coverage {100 * tp['coverage']:.0f} %"))
    save_png(fig, out / "heatmap.png")
    timings["picture_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    inputs = {
        "prediction": {"path": str(pred_path.resolve()), "sha256": file_sha256(pred_path),
                       "vertices": len(pred.vertices), "faces": len(pred.faces)},
        "truth": {"path": str(truth_path.resolve()), "sha256": file_sha256(truth_path),
                  "vertices": len(truth.vertices), "faces": len(truth.faces)},
        "landmarks": {"source": lm_source,
                      "path": None if landmarks_path is None else str(Path(landmarks_path).resolve()),
                      "sha256": None if landmarks_path is None else file_sha256(landmarks_path),
                      "points_input_mm": {n: [float(c) for c in p] for n, p in lms.points.items()},
                      "notes": {n: m for n, m in lms.meta.items() if m}},
    }
    full = {
        "stage": "evaluate",
        "skull2face_version": __version__,
        "name": name,
        "coordinates": "the truth mesh's input coordinates, mm; region boxes in its head frame",
        "inputs": inputs,
        **record,
        "region": region.description,
        "settings": {
            "distance": "exact point-to-triangle (libigl point_mesh_squared_distance)",
            "within_mm": list(WITHIN_MM), "coverage_mm": COVERAGE_MM,
            "region": {"ear_margin_mm": EAR_MARGIN_MM, "no_tragion_z_mm": NO_TRAGION_Z_MM,
                       "forehead_mm": FOREHEAD_MM, "below_menton_mm": BELOW_MENTON_MM,
                       "zygion_margin_mm": ZYGION_MARGIN_MM,
                       "no_zygion_half_width_mm": NO_ZYGION_HALF_WIDTH_MM,
                       "assumed_when_missing_mm": _ASSUMED},
            "lids": {"seed_deg": LID_SEED_DEG, "depth_mm": LID_DEPTH_MM, "min_area_mm2": LID_MIN_AREA_MM2,
                     "grow_deg": LID_GROW_DEG, "body_mm": LID_BODY_MM},
            "quantiles": "inverted area-weighted CDF (smallest value whose area share reaches q)",
            "heatmap_max_mm": HEATMAP_MAX_MM,
        },
        "outputs": {"record": "evaluate.json", "error_mesh": "error_on_truth.ply", "picture": "heatmap.png"},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json(out / "evaluate.json", full)
    for w in full["warnings"]:
        log.warning("%s", w)
    log.info("evaluate %s: truth->prediction RMSE %.2f mm, mean %.2f mm, within 2.5 mm %.0f %%, coverage %.0f %%",
             name, tp["rmse_mm"], tp["mean_mm"], 100 * tp["share_within_2.5mm"], 100 * tp["coverage"])
    return full
