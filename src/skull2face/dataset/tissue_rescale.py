"""Soft-tissue rescale of a real head: thicken or thin the skin over a fixed skull.

Every skin vertex ``P`` has a closest point ``C`` on the skull; its thickness vector runs from
``C`` to ``P`` (smoothed over the skin, see `SMOOTH_MM`). A thickness factor ``s`` moves the
vertex by ``(s - 1)`` times that vector, never closer to the bone than `MIN_THICKNESS_MM`.
``s`` is a smooth 3D field interpolated (`skull2face.geometry.interpolate.shepard`) from
per-landmark factors, times an optional global ``build`` factor. The skull is untouched.

`TissueField` caches the closest points once per head (the expensive part); `rescale_tissue`
applies factors; `landmark_pairs` pairs each bone landmark with the skin point over it. The
factors themselves are drawn from the published thickness table by
`skull2face.dataset.synthetic`.

All coordinates are millimetres in whatever frame the input meshes use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import igl
import numpy as np
import trimesh

from ..anatomy import names
from ..geometry.adjacency import neighbour_mean
from ..geometry.interpolate import as_points, shepard

# --------------------------------------------------------------------------------------------
# Soft-tissue rescale.
#
# Factor field limits: no site thinner than half or thicker than twice its current thickness.
# A lean-to-obese range of about 0.8 .. 1.25 times the average (the `build` factor; facial
# thickness rises with BMI, De Greef et al. 2006, Forensic Sci Int 159S: S126-S146) combined
# with the published per-site SDs (CV mostly 15-35 %, up to 50 % at gonion) stays inside.
FACTOR_CLIP = (0.5, 2.0)
# The skin is never brought closer to the bone than this (mm) unless it already was.
MIN_THICKNESS_MM = 1.0
# Thickness vectors are closest-point rays; their direction jumps where a skin region is
# equally close to two bone regions (over the eyes, nose, ears), and offsetting a concave
# skin region outward along them folds it. The vectors are therefore diffused over the skin
# with this standard deviation (mm) once per head: where neighbouring rays disagree (the ear
# canal, the nostrils) they partly cancel and the skin moves less. Measured on the 'cranium' CT
# for a uniform factor 1.2 / 1.5 / 2.0, the skin area whose triangles flip is 1.9 % / 4.8 % /
# 11 % with the raw rays, 0.002 % / 0.01 % / 0.05 % with 10 mm. 0 keeps the exact rays.
SMOOTH_MM = 10.0
# Inverse-distance power of the factor field. 3 (rather than 2) keeps the factor at a skin
# vertex 1-2 mm from a landmark within ~1 % of that landmark's own factor, so the landmark
# pairs reach their drawn thickness; the field stays smooth away from the landmarks.
IDW_POWER = 3
# The table says nothing about the scalp, ears or neck: a background node of factor 1 as
# heavy as a landmark this far away (mm) brings the factor back to 1 (times `build`) a few
# centimetres from every landmark, instead of spreading the landmarks' mean over the head.
BACKGROUND_MM = 40.0
# Dacryon lies on the medial orbital wall, not under facial skin, and the table's only value
# for it is the mid-supraorbital stand-in: it is not used to drive the thickness field.
EXCLUDED_SITES = ("Da",)
# Build drawn by `rescale_tissue(build=None)`: log-normal, SD 0.1, clipped to lean..heavy.
BUILD_LOG_SD = 0.1
BUILD_RANGE = (0.8, 1.25)
# Diffusion steps of the thickness-vector smoothing: ~1 s for a 140k-vertex skin.
_MAX_SMOOTH_STEPS = 1000


def mesh_arrays(mesh: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces of a trimesh or of a ``(vertices, faces)`` pair.

    Parameters
    ----------
    mesh : trimesh.Trimesh or (array_like (n, 3), array_like (m, 3))
    name : str
        For the error message.

    Returns
    -------
    vertices : numpy.ndarray, shape (n, 3), float64, mm
    faces : numpy.ndarray, shape (m, 3), int64

    Raises
    ------
    ValueError
        If it is not a triangle mesh with at least one face.
    """
    if isinstance(mesh, tuple | list) and len(mesh) == 2:
        v, f = mesh
    else:
        v, f = mesh.vertices, mesh.faces
    v = np.ascontiguousarray(v, dtype=np.float64)
    f = np.ascontiguousarray(f, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"{name} must be a triangle mesh, got vertices {v.shape}, faces {f.shape}")
    return v, f


def to_trimesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    """A trimesh of exactly these vertices (n, 3) mm and faces (m, 3), nothing merged."""
    # process=False: keep vertex order and count, so vertex i of a sample is vertex i of the
    # source (the dataset relies on this correspondence) and nothing is merged or dropped.
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def finite_landmarks(points: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """name -> (3,) float64 point, dropping NaN points; ValueError if one has not 3 coordinates."""
    out: dict[str, np.ndarray] = {}
    for name, p in (points or {}).items():
        a = np.asarray(p, dtype=np.float64).reshape(-1)
        if a.shape != (3,):
            raise ValueError(f"landmark {name!r} must have 3 coordinates, got shape {np.shape(p)}")
        if np.all(np.isfinite(a)):
            out[name] = a
    return out


def _smoothed_vectors(skin_v: np.ndarray, skin_f: np.ndarray, vectors: np.ndarray,
                      lengths: np.ndarray, smooth_mm: float) -> np.ndarray:
    """Thickness vectors (n, 3) diffused over the skin mesh with SD ``smooth_mm`` (mm).

    Each result is shortened, if needed, to at most the vertex's own thickness ``lengths``,
    which is what the thickness floor's guarantee needs (see `TissueField.displacement`).
    """
    if smooth_mm <= 0:
        return vectors.copy()
    edges = skin_v[skin_f] - skin_v[np.roll(skin_f, 1, axis=1)]
    edge = float(np.mean(np.linalg.norm(edges, axis=2)))
    # A lazy random walk (half stay, half step to a neighbour) spreads by ~edge * sqrt(k / 4)
    # after k steps on a surface; choose k for the requested SD (bounded for very fine meshes,
    # where the smoothing then falls short of smooth_mm).
    steps = int(min(_MAX_SMOOTH_STEPS, math.ceil(4.0 * (smooth_mm / max(edge, 1e-9)) ** 2)))
    mean = neighbour_mean(skin_f, len(skin_v))
    u = vectors
    for _ in range(steps):
        u = 0.5 * u + 0.5 * (mean @ u)
    norm = np.linalg.norm(u, axis=1)
    shrink = np.ones_like(norm)
    long = norm > lengths
    shrink[long] = lengths[long] / norm[long]
    return u * shrink[:, None]


def _idw_factors(at: np.ndarray, nodes: np.ndarray, values: np.ndarray,
                 background_mm: float = BACKGROUND_MM) -> np.ndarray:
    """Factor field: Shepard interpolation of ``values`` (k,) from ``nodes`` (k, 3) at ``at`` (n, 3).

    Weights ``1 / d^IDW_POWER``, plus a background value 1 with the weight of a node at
    ``background_mm`` (``inf``: none). Interpolating (exact at the nodes), bounded by the
    values (and 1), smooth elsewhere; all-ones values give exactly 1.
    """
    return shepard(at, nodes, values, power=IDW_POWER, background=1.0,
                   background_distance_mm=background_mm)


@dataclass(frozen=True)
class SkinLocation:
    """Where points lie on the skin mesh: nearest triangle and barycentric coordinates.

    Attributes
    ----------
    faces : numpy.ndarray, shape (n,), int64
        Triangle index per point.
    bary : numpy.ndarray, shape (n, 3), float64
        Barycentric coordinates of the closest point on that triangle.
    distance : numpy.ndarray, shape (n,), float64, mm
        Distance from the point to the skin.
    """

    faces: np.ndarray
    bary: np.ndarray
    distance: np.ndarray


class TissueField:
    """Per-head cache for soft-tissue rescaling: closest bone points and thickness vectors.

    Built once per real head (~1 s for 140k skin vertices against 530k skull triangles: the
    closest-point query and the smoothing); each rescale is then plain numpy.

    Parameters
    ----------
    skull, skin : trimesh.Trimesh or (vertices, faces)
        Meshes in the same frame, mm. The skin's vertex order is kept in every output.
    smooth_mm : float
        Standard deviation (mm) of the diffusion of the thickness vectors over the skin (see
        `SMOOTH_MM`); 0 keeps the exact closest-point rays.

    Attributes
    ----------
    skull_vertices, skin_vertices : numpy.ndarray, shape (n, 3), float64, mm
    skull_faces, skin_faces : numpy.ndarray, shape (m, 3), int64
    closest : numpy.ndarray, shape (n_skin, 3), float64, mm
        Closest point on the skull to each skin vertex.
    thickness : numpy.ndarray, shape (n_skin,), float64, mm
        Distance from each skin vertex to the skull.
    vectors : numpy.ndarray, shape (n_skin, 3), float64, mm
        Thickness vectors: the bone->skin rays ``skin - closest``, smoothed, each no longer
        than its vertex's ``thickness``. A factor ``s`` moves a vertex by ``(s - 1) * vector``.
    """

    def __init__(self, skull: Any, skin: Any, *, smooth_mm: float = SMOOTH_MM):
        self.skull_vertices, self.skull_faces = mesh_arrays(skull, "skull")
        self.skin_vertices, self.skin_faces = mesh_arrays(skin, "skin")
        self.smooth_mm = float(smooth_mm)
        self._skull_tree = igl.AABB()
        self._skull_tree.init(self.skull_vertices, self.skull_faces)
        self._skin_tree: igl.AABB | None = None
        sq, _, closest = self._skull_tree.squared_distance(
            self.skull_vertices, self.skull_faces, self.skin_vertices)
        self.closest = closest
        self.thickness = np.sqrt(sq)
        self.vectors = _smoothed_vectors(self.skin_vertices, self.skin_faces,
                                         self.skin_vertices - closest, self.thickness,
                                         self.smooth_mm)

    # ---- queries ---------------------------------------------------------------------------

    def bone_distance(self, points: Any) -> np.ndarray:
        """Distance (mm) from ``points`` (n, 3) to the skull surface; (n,) float64."""
        p = np.ascontiguousarray(as_points(points, "points"))
        sq, _, _ = self._skull_tree.squared_distance(self.skull_vertices, self.skull_faces, p)
        return np.sqrt(sq)

    def _skin_aabb(self) -> igl.AABB:
        if self._skin_tree is None:
            self._skin_tree = igl.AABB()
            self._skin_tree.init(self.skin_vertices, self.skin_faces)
        return self._skin_tree

    def skin_points_over(self, points: Any) -> np.ndarray:
        """Closest skin point (n, 3) mm to each of ``points`` (n, 3) mm, e.g. bone landmarks."""
        p = np.ascontiguousarray(as_points(points, "points"))
        _, _, closest = self._skin_aabb().squared_distance(self.skin_vertices, self.skin_faces, p)
        return closest

    def locate(self, points: Any) -> SkinLocation:
        """Nearest skin triangle and barycentric coordinates of ``points`` (n, 3) mm."""
        p = np.ascontiguousarray(as_points(points, "points"))
        sq, tri, closest = self._skin_aabb().squared_distance(self.skin_vertices, self.skin_faces, p)
        corners = self.skin_vertices[self.skin_faces[tri]]
        bary = igl.barycentric_coordinates(np.ascontiguousarray(closest),
                                           np.ascontiguousarray(corners[:, 0]),
                                           np.ascontiguousarray(corners[:, 1]),
                                           np.ascontiguousarray(corners[:, 2]))
        # Degenerate (zero-area) triangles, which marching cubes can leave, have no
        # barycentric coordinates: take the nearest corner instead.
        bad = ~np.all(np.isfinite(bary), axis=1)
        if np.any(bad):
            nearest = np.argmin(np.linalg.norm(corners[bad] - closest[bad, None, :], axis=2), axis=1)
            bary[bad] = np.eye(3)[nearest]
        return SkinLocation(tri, bary, np.sqrt(sq))

    def interpolate(self, loc: SkinLocation, values: np.ndarray) -> np.ndarray:
        """Per-skin-vertex ``values`` (n_skin, ...) interpolated at located points (n, ...)."""
        corner_values = values[self.skin_faces[loc.faces]]  # (n, 3, ...)
        return np.einsum("nc,nc...->n...", loc.bary, corner_values)

    # ---- rescale ---------------------------------------------------------------------------

    def factors(self, factors_at: Mapping[str, tuple[Any, float]], build: float = 1.0,
                clip: tuple[float, float] = FACTOR_CLIP) -> np.ndarray:
        """Thickness factor per skin vertex, before the thickness floor.

        Parameters
        ----------
        factors_at : mapping of str to (point (3,) mm, factor float)
            Factor wanted at points on (or near) the bone, e.g. from
            `skull2face.dataset.synthetic.tissue_factors`.
        build : float
            Global factor multiplying the interpolated field (lean < 1 < heavy).
        clip : (float, float)
            Floor and ceiling of the result.

        Returns
        -------
        numpy.ndarray, shape (n_skin,), float64
            ``clip(build * idw(clip(factors))(closest bone point))``: each vertex takes the
            factor of the bone point its thickness is measured from; far (several
            `BACKGROUND_MM`) from every landmark the factor returns to ``build``.
        """
        nodes, values = _factor_nodes(factors_at)
        lo, hi = clip
        # Clip the landmark values too: one wild landmark (a misplaced point, a thickness
        # measured across a hole in the bone) must not pull its whole neighbourhood to the limit.
        f = build * _idw_factors(self.closest, nodes, np.clip(values, lo, hi))
        return np.clip(f, lo, hi)

    def displacement(self, factors_at: Mapping[str, tuple[Any, float]], build: float = 1.0, *,
                     clip: tuple[float, float] = FACTOR_CLIP,
                     min_mm: float = MIN_THICKNESS_MM) -> np.ndarray:
        """How far each skin vertex moves to scale its thickness by its factor.

        A vertex with factor ``s``, thickness ``t`` and thickness vector ``v`` moves by
        ``(s - 1) * v``, shortened if needed to at most ``max(t - min_mm, 0)``. Since the vertex
        starts at distance ``t`` from the bone, it then ends at least ``min(min_mm, t)`` from
        it (triangle inequality), whichever way it moves: the skin never reaches the bone and
        is never thinned below ``min_mm`` (skin already thinner than that stays where it is).

        Parameters
        ----------
        factors_at, build, clip
            See `factors`.
        min_mm : float
            Thickness floor, mm.

        Returns
        -------
        numpy.ndarray, shape (n_skin, 3), float64, mm
            Exactly zero where the factor is exactly 1.
        """
        if min_mm < 0:
            raise ValueError(f"min_mm must be >= 0, got {min_mm}")
        s = self.factors(factors_at, build, clip)
        disp = (s - 1.0)[:, None] * self.vectors
        room = np.maximum(self.thickness - min_mm, 0.0)
        length = np.linalg.norm(disp, axis=1)
        too_far = length > room
        disp[too_far] *= (room[too_far] / length[too_far])[:, None]
        return disp

    def rescale(self, factors_at: Mapping[str, tuple[Any, float]], build: float = 1.0, *,
                clip: tuple[float, float] = FACTOR_CLIP,
                min_mm: float = MIN_THICKNESS_MM) -> np.ndarray:
        """New skin vertices (n_skin, 3) mm; see `displacement`. Identical input when all
        factors and ``build`` are 1."""
        return self.skin_vertices + self.displacement(factors_at, build, clip=clip, min_mm=min_mm)


def _factor_nodes(factors_at: Mapping[str, tuple[Any, float]]) -> tuple[np.ndarray, np.ndarray]:
    pts, vals = [], []
    for name, item in factors_at.items():
        point, factor = item
        p = np.asarray(point, dtype=np.float64).reshape(-1)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            raise ValueError(f"factor point {name!r} must be 3 finite coordinates")
        if not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"factor {name!r} must be a finite positive number, got {factor}")
        pts.append(p)
        vals.append(float(factor))
    return np.array(pts).reshape(-1, 3), np.array(vals)


def rescale_tissue(skull: Any, skin: Any, factors_at: Mapping[str, tuple[Any, float]],
                   build: float | None = 1.0, rng: np.random.Generator | None = None, *,
                   field: TissueField | None = None, clip: tuple[float, float] = FACTOR_CLIP,
                   min_mm: float = MIN_THICKNESS_MM) -> trimesh.Trimesh:
    """Thicken or thin the soft tissue of a head; the skull is left as it is.

    Parameters
    ----------
    skull, skin : trimesh.Trimesh or (vertices, faces)
        The head, mm.
    factors_at : mapping of str to (point (3,) mm, factor float)
        Thickness factor at points on the bone (landmarks), interpolated smoothly in 3D
        (inverse distance, power `IDW_POWER`, returning to 1 away from the landmarks, see
        `BACKGROUND_MM`) to every skin vertex's closest bone point. An empty mapping means
        factor 1 everywhere.
    build : float or None
        Global factor on top of the field (lean ~0.8 .. heavy ~1.25). None draws one from
        ``rng``: log-normal, SD `BUILD_LOG_SD`, clipped to `BUILD_RANGE`.
    rng : numpy.random.Generator, optional
        Only used when ``build`` is None.
    field : TissueField, optional
        The cache built for this skull and skin; built here when not given (slow part).
    clip : (float, float)
        Bounds of the factor (`FACTOR_CLIP`).
    min_mm : float
        Thickness floor in mm (`MIN_THICKNESS_MM`).

    Returns
    -------
    trimesh.Trimesh
        The new skin: same faces and vertex order; the very same vertex coordinates when all
        factors and ``build`` are 1.
    """
    if build is None:
        if rng is None:
            raise ValueError("build=None draws a build factor and needs an rng")
        build = float(np.clip(np.exp(BUILD_LOG_SD * rng.standard_normal()), *BUILD_RANGE))
    if field is None:
        field = TissueField(skull, skin)
    else:
        v, f = mesh_arrays(skin, "skin")
        if v.shape != field.skin_vertices.shape or f.shape != field.skin_faces.shape:
            raise ValueError("field was built for a different skin mesh")
    return to_trimesh(field.rescale(factors_at, build, clip=clip, min_mm=min_mm), field.skin_faces)


# ---- bone landmark -> skin point pairs -----------------------------------------------------------

def landmark_pairs(skull_landmarks: Mapping[str, Any], skin_landmarks: Mapping[str, Any] | None = None,
                   *, field: TissueField | None = None,
                   exclude: tuple[str, ...] = EXCLUDED_SITES) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Bone landmark -> the skin point over it, for every site with a thickness row.

    Parameters
    ----------
    skull_landmarks, skin_landmarks : mapping of str to (3,) mm
        Canonical names (`skull2face.anatomy.names`); NaN points count as absent.
    field : TissueField, optional
        Supplies the closest skin point for skull landmarks without a skin twin in
        `names.BONE_TO_SKIN` (or whose twin is absent); without it such landmarks are skipped.
    exclude : tuple of str
        Skull landmark base names not to use (`EXCLUDED_SITES`).

    Returns
    -------
    dict of str to (bone (3,), skin (3,)), float64 mm
        In `names.SKULL` order.
    """
    bone = finite_landmarks(skull_landmarks)
    skin = finite_landmarks(skin_landmarks)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    missing: list[str] = []
    for name, lm in names.SKULL.items():
        if name not in bone or lm.base in exclude:
            continue
        twin = names.BONE_TO_SKIN.get(name)
        if twin in skin:
            out[name] = (bone[name], skin[twin])
        elif field is not None:
            missing.append(name)
            out[name] = (bone[name], None)  # filled below, in one query
    if missing:
        over = field.skin_points_over(np.array([bone[n] for n in missing]))
        for n, s in zip(missing, over):
            out[n] = (bone[n], s)
    return out

