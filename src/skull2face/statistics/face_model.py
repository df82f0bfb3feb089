"""A statistical head model (ICT-FaceKit) fitted to a skull: pose, identity and the targets.

The bundled model (``data/models/ict_facekit_head.npz``, made by
``benchmarks/make_ict_subset.py``; see ``data/README.md``) is the ICT-FaceKit head (Li et al.,
CVPR 2020; MIT licence): a neutral head and its first K identity modes, in mm, in the model's
own axes (+x the subject's left, +y up, +z out of the face: the head frame's axes). A head is
``neutral + sum_k w_k modes[k]`` with ``w_k ~ N(0, 1)`` (each mode is about +1 SD).

`load_head_model`
    The bundled model as a `HeadModel` (vertices, modes, triangles, iBUG and Table 2 ids).
`landmark_targets`
    Where the skin landmarks should lie: each skull landmark of the paper's Table 1 moved out
    along the bone's outward normal by its published mean thickness (the L_A targets), with the
    published SD.
`fit_head_model`
    The rigid pose (no scale: the modes carry size) and the coefficients that bring the
    model's landmarks to those targets and its face onto a dense target surface (`MapSurface`:
    a frontal height map, two-sided or a lower bound; `MeshSurface`: a mesh, a lower bound),
    pose and coefficients solved together by Gauss-Newton steps with a ridge prior.

Coordinates are those of the skull given (input coordinates), mm. numpy, scipy and libigl only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.spatial.transform import Rotation

from ..anatomy.landmark_set import points_of
from ..anatomy.names import BONE_TO_SKIN
from ..anatomy.tissue import thickness_for
from ..geometry.frame import apply, rigid_fit
from ..geometry.normals import outward_normals_at

MODEL_FILE = "models/ict_facekit_head.npz"
"""The bundled model, relative to the package's ``data`` folder."""

# The dense term. The envelope is the skull grown by 6 mm, about the thinnest tissue over the
# face (forehead, nasion, Hona & Stephan 2024: 5.5-6 mm); where the tissue is thicker (cheeks,
# lips, nose: 10-26 mm in the same table) the skin lies outside it. So a model point inside the
# envelope is always wrong (full weight: a hinge), and one outside is pulled in only gently,
# with a Huber weight, and not at all beyond DENSE_TRIM_MM (nose, lips, a skull cut short).
DENSE_SD_MM = 2.0
"""Noise of one dense residual, mm (about the envelope's own error: voxel 2 mm, tissue 5-7 mm)."""
DENSE_OUTSIDE_SHARE = 0.25
"""Weight of a point outside the envelope relative to one inside (chosen: the skin may lie
outside, never inside)."""
DENSE_HUBER_MM = 2.0
"""Huber threshold of the outside pull, mm."""
DENSE_TRIM_MM = 10.0
"""Points farther than this outside the envelope do not pull, mm (the nose tip, the lips)."""
DENSE_EFFECTIVE_POINTS = 200.0
"""The dense residuals of neighbouring vertices are strongly correlated: together they count as
this many independent ones (the face part has ~9400 vertices, ~1 per 5 mm^2; ~200 patches of
~1 cm^2 are roughly independent)."""
DENSE_STEP = 3
"""Every DENSE_STEP-th face vertex takes part in the dense term (speed)."""
MAP_MIN_NZ = 0.45
"""A map's surface steeper than this (normal's z; ~63 degrees from the view axis) takes no part."""
VISIBLE_TOL_MM = 1.0
"""A vertex this close behind the first surface seen from the front still counts as seen (mm;
the rendering pitch is 1 mm)."""
DENSE_MIN_NZ = 0.0
"""Face vertices whose neutral normal has a head-frame z below this take no part in the dense
term (a frontal map cannot pair them; 0: any vertex facing forward at all)."""
PRIOR_WEIGHT = 1.0
"""Weight of ``|w|^2``: the Gaussian prior of the modes (each ~1 SD), residuals in SD units."""
ITERATIONS = 12
"""Gauss-Newton steps (each re-pairs the dense term and solves pose and coefficients together)."""


@dataclass(frozen=True)
class HeadModel:
    """A linear head model in mm.

    Parameters
    ----------
    neutral : numpy.ndarray, shape (n, 3), float64, mm
    modes : numpy.ndarray, shape (K, n, 3), float64, mm
        Identity modes (each about +1 SD).
    faces : numpy.ndarray, shape (m, 3), int64
        Triangles, outward-facing.
    face_region : numpy.ndarray, shape (n,), bool
        The face part (forehead to chin, ear to ear; not the added caps over the eyes and the
        mouth, not the back of the head and the neck).
    ibug : numpy.ndarray, shape (68,), int64
        Vertex ids of the 68 iBUG (Multi-PIE) points.
    soft : dict of str to int
        Vertex ids of the paper's Table 2 soft-tissue landmarks (``"n"``, ``"zy'_L"``, ...).
    """

    neutral: np.ndarray
    modes: np.ndarray
    faces: np.ndarray
    face_region: np.ndarray
    ibug: np.ndarray
    soft: dict[str, int] = field(default_factory=dict)

    def instance(self, w: Any = None) -> np.ndarray:
        """The vertices ``neutral + sum_k w_k modes[k]``, shape (n, 3), mm (``w`` may be shorter
        than K; None gives the neutral)."""
        if w is None:
            return self.neutral.copy()
        w = np.asarray(w, dtype=np.float64).reshape(-1)
        return self.neutral + np.tensordot(w, self.modes[: len(w)], axes=1)


@functools.lru_cache(maxsize=2)
def load_head_model(path: str | None = None) -> HeadModel:
    """The bundled ICT-FaceKit head model (or a file of the same layout).

    Parameters
    ----------
    path : str, optional
        An ``.npz`` as written by ``benchmarks/make_ict_subset.py``; None: the bundled one.

    Returns
    -------
    HeadModel
        Shared (cached): do not modify its arrays.
    """
    from ..samples import data_dir

    d = np.load(str(data_dir() / MODEL_FILE) if path is None else path)
    soft = {str(k): int(i) for k, i in zip(d["soft_names"], d["soft_ids"])}
    return HeadModel(neutral=d["neutral"].astype(np.float64), modes=d["modes"].astype(np.float64),
                     faces=d["faces"].astype(np.int64), face_region=d["face_region"].astype(bool),
                     ibug=d["landmarks_multipie68"].astype(np.int64), soft=soft)


def landmark_targets(skull_vertices: Any, skull_faces: Any, skull_landmarks: Any,
                     centre: Any, *, table: Any = None) -> dict[str, tuple[np.ndarray, float]]:
    """The L_A targets: where each paired skin landmark should lie, with its SD.

    For every skull landmark with a skin partner (`skull2face.anatomy.names.BONE_TO_SKIN`:
    G->g', N->n, Ns->sn, Pog->pog', Gn->gn', Zy->zy', Go->go') and a published thickness
    (`skull2face.anatomy.tissue.thickness_for`, Hona & Stephan 2024): the landmark moved out
    along the outward bone normal (`skull2face.geometry.normals.outward_normals_at`) by the
    mean thickness of ``table`` (the bundled table by default; a population's table shifted
    for a build: `skull2face.anatomy.tissue.choose_table`).

    Parameters
    ----------
    skull_vertices : array_like, shape (n, 3), mm
    skull_faces : array_like, shape (m, 3), int
    skull_landmarks : mapping of str to array_like (3,), or LandmarkSet
        Skull landmarks in the vertices' coordinates; absent or NaN ones are skipped.
    centre : array_like, shape (3,), mm
        A point inside the head in the same coordinates (normals turn away from it).
    table : sequence of Thickness, optional
        The rows to use (a `skull2face.anatomy.tissue.TissueTable`'s ``rows``); None: the
        bundled Hona & Stephan 2024 table. A landmark without a row in it gets no target.

    Returns
    -------
    dict of str to (numpy.ndarray (3,), float)
        Skin landmark name -> (target point, mm; SD of the thickness, mm).
    """
    pts = points_of(skull_landmarks)
    names = [b for b in BONE_TO_SKIN if b in pts and np.all(np.isfinite(pts[b]))]
    if not names:
        return {}
    p = np.array([pts[b] for b in names], dtype=np.float64)
    n = outward_normals_at(p, skull_vertices, skull_faces, centre)
    out = {}
    for b, s, nb in zip(names, p, n):
        try:
            row = thickness_for(b, table)
        except KeyError:  # a population table without this landmark
            continue
        out[BONE_TO_SKIN[b]] = (s + row.mean_mm * nb, float(row.sd_mm))
    return out


class MeshSurface:
    """A dense target given as an outward-facing mesh (e.g. the skull's 6 mm envelope), a lower
    bound: the skin may lie outside it, never inside.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices about as dense as the model's (~1-2 mm apart), same coordinates as the fit's
        targets. The residual is measured along the nearest vertex's normal (point-to-plane),
        so the nearest vertex stands in for the closest point.
    """

    two_sided = False

    def __init__(self, mesh: Any) -> None:
        from scipy.spatial import cKDTree

        self.v = np.asarray(mesh.vertices, dtype=np.float64)
        self.vn = np.asarray(mesh.vertex_normals, dtype=np.float64)
        self.tree = cKDTree(self.v)

    def pairs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Closest target points, their outward normals, signed distances (+ outside) and SDs
        (mm) of the points (n, 3); rows with NaN take no part."""
        _, i = self.tree.query(points)
        q, n = self.v[i], self.vn[i]
        signed = np.einsum("ij,ij->i", points - q, n)
        return q, n, signed, np.full(len(points), DENSE_SD_MM)


class MapSurface:
    """A dense target given as a frontal height map ``z = height(x, y)`` in the head frame.

    Parameters
    ----------
    height : numpy.ndarray, shape (H, W), float, mm
        Head-frame z of the target surface, NaN where there is none.
    sd : numpy.ndarray, shape (H, W), float, mm, or float
        SD of the surface's height (a measured prior's spread; `DENSE_SD_MM` for a bound).
    spec : RenderSpec
        The map's grid and its ``frame`` (the fit's coordinates -> head frame).
    two_sided : bool
        True: a measured surface, the skin is pulled onto it from both sides (Huber);
        False: a lower bound, as `MeshSurface`.
    """

    def __init__(self, height: Any, sd: Any, spec: Any, two_sided: bool) -> None:
        self.h = np.asarray(height, dtype=np.float64)
        self.sd = np.broadcast_to(np.asarray(sd, dtype=np.float64), self.h.shape)
        self.spec, self.two_sided = spec, bool(two_sided)
        s = float(spec.mm_per_px)
        gr, gc = np.gradient(self.h)
        self.gx, self.gy = gc / s, -gr / s  # dz/dx, dz/dy (rows run down in y)
        self.inv = spec.inverse

    def pairs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """As `MeshSurface.pairs`; points off the map (or over NaN) get NaN rows."""
        from scipy import ndimage

        p = apply(self.spec.frame, points)
        rc = self.spec.head_to_pixel(p).T
        z, gx, gy, sd = (ndimage.map_coordinates(a, rc, order=1, cval=np.nan)
                         for a in (self.h, self.gx, self.gy, self.sd))
        n = np.stack([-gx, -gy, np.ones_like(z)], axis=1)
        n /= np.linalg.norm(n, axis=1, keepdims=True)
        z[n[:, 2] < MAP_MIN_NZ] = np.nan  # too steep for a frontal map to say where the surface is
        q = np.stack([p[:, 0], p[:, 1], z], axis=1)
        signed = np.einsum("ij,ij->i", p - q, n)
        return apply(self.inv, q), n @ self.inv[:3, :3].T, signed, sd


def _dense_weights(signed: np.ndarray, two_sided: bool) -> np.ndarray:
    """Per-point weights of the dense term (see the constants above), before normalisation;
    0 for NaN rows."""
    out = np.zeros_like(signed)
    ok = np.isfinite(signed)
    a = np.abs(signed)
    huber = np.where(a <= DENSE_HUBER_MM, 1.0, DENSE_HUBER_MM / np.maximum(a, 1e-12))
    inside = ok & (signed <= 0)
    outside = ok & (signed > 0)
    if two_sided:
        out[ok] = huber[ok]
    else:
        out[inside] = 1.0
        out[outside] = DENSE_OUTSIDE_SHARE * huber[outside]
        out[ok & (signed > DENSE_TRIM_MM)] = 0.0
    return out


def fit_head_model(model: HeadModel, targets: Mapping[str, tuple[Any, float]], surface: Any = None,
                   initial_pose: Any = None, n_modes: int | None = None, iterations: int = ITERATIONS,
                   info: dict | None = None, initial_w: Any = None,
                   prior_mean: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit pose and identity of the model to landmark targets and (optionally) a surface.

    Minimises, over a rigid ``T`` (rotation and translation, never scale) and ``w``::

        sum_l |T(x_l(w)) - y_l|^2 / sd_l^2                        (landmarks)
      + sum_i c_i (n_i . (T(x_i(w)) - q_i))^2 / sd_i^2           (dense, face part, point-to-plane)
      + PRIOR_WEIGHT |w - w0|^2

    where ``w0`` is ``prior_mean`` (zero: the model's mean head; a draw from the prior makes
    the fit one sample of a perturb-and-MAP posterior, `skull2face.statistics.face_samples`),
    ``x(w) = neutral + sum_k w_k modes[k]``, ``q_i`` is the point of ``surface`` paired
    with model vertex ``i`` (`MeshSurface.pairs`, `MapSurface.pairs`), ``n_i`` its outward
    normal and ``sd_i`` its SD, ``c_i`` the weights of `_dense_weights` times
    `DENSE_EFFECTIVE_POINTS` over the number of pairs (neighbouring residuals are correlated).
    Only face-part vertices whose neutral normal faces forward (head +z > `DENSE_MIN_NZ`)
    take part. Alternates (a) a weighted Procrustes
    (`skull2face.geometry.frame.rigid_fit`) of the model points to their targets and (b) the
    linear least-squares solve for ``w`` at that pose.

    Parameters
    ----------
    model : HeadModel
    targets : mapping of str to (array_like (3,), float)
        Soft landmark name (a key of ``model.soft``) -> (target point, mm; SD, mm > 0); at
        least three, not on one line.
    surface : MeshSurface or MapSurface, optional
        The surface the face part should lie on (two-sided) or outside of (a bound), same
        coordinates as the targets.
    initial_pose : array_like (4, 4), optional
        Model -> target rigid transform to start from; default: Procrustes of the neutral's
        landmarks to the targets.
    n_modes : int, optional
        Use only the first modes; default all.
    iterations : int
        Alternations.
    info : dict, optional
        Filled with the fit's record (landmark residuals in mm, |w|, rotation from the start).
    initial_w : array_like (K,), optional
        Coefficients to start from (a warm start); default zero.
    prior_mean : array_like (K,), optional
        ``w0`` of the ridge prior; default zero.

    Returns
    -------
    pose : numpy.ndarray, shape (4, 4)
        Model -> target coordinates (rigid).
    w : numpy.ndarray, shape (K,)
        Mode coefficients (SD units).
    """
    names = [k for k in targets if k in model.soft]
    if len(names) < 3:
        raise ValueError(f"fit_head_model needs at least 3 landmark targets, got {names}")
    ids = np.array([model.soft[k] for k in names])
    y = np.array([np.asarray(targets[k][0], dtype=np.float64) for k in names])
    wl = np.array([1.0 / float(targets[k][1]) ** 2 for k in names])
    K = model.modes.shape[0] if n_modes is None else int(n_modes)
    modes = model.modes[:K]
    w = np.zeros(K) if initial_w is None else np.asarray(initial_w, dtype=np.float64).reshape(-1)[:K].copy()
    w0 = np.zeros(K) if prior_mean is None else np.asarray(prior_mean, dtype=np.float64).reshape(-1)[:K]
    pose = rigid_fit(model.neutral[ids], y, wl) if initial_pose is None else np.asarray(initial_pose, float)
    start = pose.copy()
    dense = _front_vertices(model)
    modes_dense = modes[:, dense]
    modes_lm_raw = modes[:, ids]  # (K, L, 3)
    reg = np.concatenate([np.full(K, PRIOR_WEIGHT), np.full(6, 1e-9)])
    for _ in range(max(int(iterations), 1)):
        # One Gauss-Newton step for pose and coefficients together: p = R x(w) + t, perturbed
        # by a small rotation omega about the landmarks' weighted centre and a shift dt;
        # x(w) is linear in w, so w is solved for outright (ridge prior), omega and dt freely.
        x = model.neutral + np.tensordot(w, modes, axes=1)
        r, t = pose[:3, :3], pose[:3, 3]
        p_lm = x[ids] @ r.T + t
        centre = wl @ p_lm / wl.sum()
        sl = np.repeat(np.sqrt(wl), 3)[:, None]
        a_w = np.einsum("ij,klj->lik", r, modes_lm_raw).reshape(-1, K)
        a_rot = -_skew(p_lm - centre).reshape(-1, 3)
        a_t = np.tile(np.eye(3), (len(ids), 1))
        rows = [np.concatenate([a_w, a_rot, a_t], axis=1) * sl]
        rhs = [(y - model.neutral[ids] @ r.T - t).reshape(-1) * sl[:, 0]]
        if surface is not None:
            p_d = x[dense] @ r.T + t
            q, nq, signed, sd = surface.pairs(p_d)
            c = _dense_weights(signed, surface.two_sided)
            c *= DENSE_EFFECTIVE_POINTS / max(int(np.count_nonzero(c)), 1)
            c /= np.where(np.isfinite(sd), sd, 1.0) ** 2
            use = c > 0
            if use.any():
                n_u, sw = nq[use], np.sqrt(c[use])[:, None]
                d_w = np.einsum("ij,kpj,pi->pk", r, modes_dense[:, use], n_u)
                d_rot = np.cross(p_d[use] - centre, n_u)
                rows.append(np.concatenate([d_w, d_rot, n_u], axis=1) * sw)
                rhs.append(np.einsum("pd,pd->p", q[use] - model.neutral[dense][use] @ r.T - t, n_u) * sw[:, 0])
        a = np.concatenate(rows)
        b = np.concatenate(rhs)
        sol = np.linalg.solve(a.T @ a + np.diag(reg), a.T @ b + np.concatenate([PRIOR_WEIGHT * w0, np.zeros(6)]))
        w, omega, dt = sol[:K], sol[K:K + 3], sol[K + 3:]
        rd = Rotation.from_rotvec(omega).as_matrix()
        new = np.eye(4)
        new[:3, :3] = rd @ r
        new[:3, 3] = rd @ (t - centre) + centre + dt
        pose = new
    if info is not None:
        x = model.instance(w)
        res = np.linalg.norm(apply(pose, x[ids]) - y, axis=1)
        cosang = (np.trace(start[:3, :3].T @ pose[:3, :3]) - 1.0) / 2.0
        info.update({"landmark_residual_mm": {k: round(float(e), 2) for k, e in zip(names, res)},
                     "w_norm": round(float(np.linalg.norm(w)), 3), "n_modes": K,
                     "rotation_from_start_deg": round(float(np.degrees(np.arccos(np.clip(cosang, -1, 1)))), 2)})
    return pose, w


def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices ``[v]x`` of vectors (n, 3): shape (n, 3, 3), ``[v]x u = v x u``."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


_FRONT: dict[int, tuple[HeadModel, np.ndarray]] = {}


def _front_vertices(model: HeadModel) -> np.ndarray:
    """Face-part vertex ids (every `DENSE_STEP`-th) that a frontal map can pair: the neutral
    normal faces forward and the vertex is the first surface seen from the front (within
    `VISIBLE_TOL_MM`; not the mouth's or eyes' inner surfaces, not under the nose or chin)."""
    key = id(model)
    if key not in _FRONT or _FRONT[key][0] is not model:
        import trimesh

        from ..geometry.depthmap import RenderSpec, render

        mesh = trimesh.Trimesh(model.neutral, model.faces, process=False)
        lo, hi = model.neutral.min(axis=0), model.neutral.max(axis=0)
        size = int(np.ceil(max(hi[:2] - lo[:2]))) + 4
        spec = RenderSpec(size=(size, size), mm_per_px=1.0, centre=tuple((lo[:2] + hi[:2]) / 2.0),
                          z_near=float(lo[2]) - 1.0, z_far=float(hi[2]) + 1.0)
        front = render(mesh, spec).height.astype(np.float64)
        rc = np.round(spec.head_to_pixel(model.neutral)).astype(int)
        rc = np.clip(rc, 0, size - 1)
        seen = model.neutral[:, 2] >= np.nan_to_num(front[rc[:, 0], rc[:, 1]], nan=np.inf) - VISIBLE_TOL_MM
        ids = np.flatnonzero(model.face_region & (mesh.vertex_normals[:, 2] > DENSE_MIN_NZ) & seen)
        _FRONT[key] = (model, ids[::DENSE_STEP])
    return _FRONT[key][1]


__all__ = ["HeadModel", "MapSurface", "MeshSurface", "landmark_targets", "fit_head_model", "load_head_model"]
