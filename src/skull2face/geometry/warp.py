"""Synthetic skull/face pairs: smooth shape warps and soft-tissue rescaling of a real head.

Only two real paired head CTs are available, so the training population is grown from them.
One synthetic sample is a real head changed in two ways that keep the pair consistent:

1. **Soft-tissue rescale** (`TissueField`, `rescale_tissue`, `tissue_factors`). Every skin
   vertex ``P`` has a closest point ``C`` on the skull; its thickness vector runs from ``C`` to
   ``P`` (smoothed over the skin, see `SMOOTH_MM`). A thickness factor ``s`` moves the vertex by
   ``(s - 1)`` times that vector, never closer to the bone than `MIN_THICKNESS_MM`. ``s`` is a
   smooth 3D field interpolated from per-landmark factors, drawn so that the bone->skin
   distance at each landmark pair follows the published mean and SD of Hona & Stephan (2024),
   times an optional global ``build`` factor. The skull is untouched.
2. **Shape warp** (`Warp`, `random_shape_warp`). One smooth 3D displacement field (a thin-plate
   spline through control points: the skull landmarks plus anchors spread over the head) moves
   skull, skin and landmarks together, so bone and skin stay in register. Its size follows
   published craniofacial variability (see the constants below).

`sample_pair` draws both and applies them; every drawn number goes into a JSON-ready ``params``
dict that `replay_pair` turns back into the same sample.

Order of operations. The tissue rescale is carried out on the *source* head, where the closest
points are cached once per head (`TissueField`, the expensive part), and the warp is applied
afterwards to the rescaled skin. The factors are nevertheless computed from the *warped*
landmark pairs, so the final bone->skin distances equal the drawn targets. Since the warp is
smooth and has a positive Jacobian, skin that clears the bone before it still clears it after;
the 1 mm floor then holds up to the warp's local stretch (>= ~0.9 at amplitude 1).

All coordinates are millimetres in whatever frame the input meshes use (a CT's LPS frame or the
head frame of `skull2face.geometry.frame`); only the axes of the global scale component need
the head frame, and `sample_pair` builds it from the skull landmarks.

Geometry only: numpy, scipy, trimesh, libigl; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import igl
import numpy as np
import trimesh
from scipy import sparse

from ..anatomy import names
from ..anatomy.tissue import Thickness, thickness_for
from .frame import head_frame

# --------------------------------------------------------------------------------------------
# Size of the random shape warp.
#
# Adult craniofacial dimensions vary with standard deviations of a few millimetres, i.e. a
# coefficient of variation (SD / mean) of about 3-6 %. Farkas (1994, "Anthropometry of the Head
# and Face", 2nd ed.; young adult North American Whites; the same norms are reprinted by Kolar
# & Salter 1997, "Craniofacial Anthropometry") gives, per sex, roughly (figures rounded to the
# millimetre here; check the tables before quoting decimals):
#   head breadth eu-eu  ~ 145-151 mm, SD ~ 5-6 mm   (CV ~ 3.7 %)
#   head length  g-op   ~ 187-197 mm, SD ~ 6-7 mm   (CV ~ 3.5 %)
#   face width   zy-zy  ~ 130-137 mm, SD ~ 4-5 mm   (CV ~ 3.5 %)
#   face height  n-gn   ~ 112-121 mm, SD ~ 5-7 mm   (CV ~ 5 %)
#   nose height  n-sn   ~  51-55 mm, SD ~ 3-4 mm    (CV ~ 6 %)
# The warp reproduces this with two parts:
#   * a global anisotropic scale along the head axes, log-normal with SD 3 % across (x) and
#     front-to-back (z) and 4 % vertically (y), since vertical facial dimensions vary more
#     (CV ~5-6 % against ~3.5 %);
#   * smooth local displacements, SD 2 mm per coordinate, correlated in space with a Gaussian
#     kernel of length 40 mm (the size of a facial unit: orbit, nose, chin). Two points far
#     apart then change their distance by ~2.8 mm SD on top of the scale.
# Measured over 400 draws (tests/test_warp.py): head breadth 150 mm -> SD ~5 mm, head length
# 190 mm -> ~6 mm, face height 120 mm -> ~5 mm, nose height 53 mm -> ~3 mm, as above.
# Every standard normal draw is clipped at +-2.5 SD, so no sample is an outlier beyond what
# the population shows and the warp stays far from folding (see the tests' Jacobian check).
SCALE_SD = (0.03, 0.04, 0.03)
LOCAL_SD_MM = 2.0
LOCAL_LENGTH_MM = 40.0
CAP_SD = 2.5
DEFAULT_ANCHORS = 24

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
# Correlation of the drawn thickness z-scores between landmark sites: one shared "body build"
# component (thickness at most sites rises and falls together with BMI, De Greef et al. 2006)
# and, for bilateral sites, a small side-specific share (left and right are nearly equal in one
# person). Both are modelling choices, not published figures; each site's marginal stays
# exactly N(mean, SD) of the table.
BUILD_SHARE = 0.5
ASYMMETRY_SHARE = 0.1
# Dacryon lies on the medial orbital wall, not under facial skin, and the table's only value
# for it is the mid-supraorbital stand-in: it is not used to drive the thickness field.
EXCLUDED_SITES = ("Da",)
# Build drawn by `rescale_tissue(build=None)`: log-normal, SD 0.1, clipped to lean..heavy.
BUILD_LOG_SD = 0.1
BUILD_RANGE = (0.8, 1.25)

_PARAMS_FORMAT = "skull2face.synthetic_pair"
# Newton refinements of the landmark factors through the warp (each ~1e-2 -> ~1e-4 mm).
_NEWTON_STEPS = 2
# Diffusion steps of the thickness-vector smoothing: ~1 s for a 140k-vertex skin.
_MAX_SMOOTH_STEPS = 1000


# ============================================================================================
# helpers
# ============================================================================================

def _as_points(a: Any, name: str) -> np.ndarray:
    p = np.asarray(a, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {p.shape}")
    return p


def _mesh_arrays(mesh: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(vertices float64 (n, 3), faces int64 (m, 3)) of a trimesh or a ``(V, F)`` pair."""
    if isinstance(mesh, tuple | list) and len(mesh) == 2:
        v, f = mesh
    else:
        v, f = mesh.vertices, mesh.faces
    v = np.ascontiguousarray(v, dtype=np.float64)
    f = np.ascontiguousarray(f, dtype=np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise ValueError(f"{name} must be a triangle mesh, got vertices {v.shape}, faces {f.shape}")
    return v, f


def _mesh(vertices: np.ndarray, faces: np.ndarray) -> trimesh.Trimesh:
    # process=False: keep vertex order and count, so vertex i of a sample is vertex i of the
    # source (the dataset relies on this correspondence) and nothing is merged or dropped.
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def _clipped_normal(rng: np.random.Generator, shape: Any) -> np.ndarray:
    return np.clip(rng.standard_normal(shape), -CAP_SD, CAP_SD)


def _pairwise_sq(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
                 tmp: np.ndarray | None = None) -> np.ndarray:
    """Squared distances ``(len(a), len(b))`` between point sets ``(n, 3)`` and ``(m, 3)``.

    One coordinate at a time into preallocated ``out``/``tmp`` buffers: about 5x faster than
    materialising the ``(n, m, 3)`` differences, and exact (no ``|a|^2 - 2 a.b + |b|^2``
    cancellation), and off BLAS (see `skull2face.geometry.frame.apply`).
    """
    shape = (len(a), len(b))
    out = np.empty(shape) if out is None else out[: len(a)]
    tmp = np.empty(shape) if tmp is None else tmp[: len(a)]
    np.subtract(a[:, 0:1], b[:, 0], out=out)
    np.square(out, out=out)
    for k in (1, 2):
        np.subtract(a[:, k:k + 1], b[:, k], out=tmp)
        np.square(tmp, out=tmp)
        out += tmp
    return out


def _finite_landmarks(points: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, p in (points or {}).items():
        a = np.asarray(p, dtype=np.float64).reshape(-1)
        if a.shape != (3,):
            raise ValueError(f"landmark {name!r} must have 3 coordinates, got shape {np.shape(p)}")
        if np.all(np.isfinite(a)):
            out[name] = a
    return out


# ============================================================================================
# shape warp
# ============================================================================================

def _tps_kernel(r2: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Thin-plate kernel ``r^2 log r = r2 * log(r2) / 2``, 0 at r = 0 (r2 in, same shape out).

    ``out`` (same shape as ``r2``, not ``r2`` itself) receives the result if given.
    """
    out = np.empty_like(r2) if out is None else out
    # r2 * log(tiny) is 0 * finite = 0 at the control points themselves, instead of 0 * -inf.
    np.maximum(r2, 1e-300, out=out)
    np.log(out, out=out)
    out *= r2
    out *= 0.5
    return out


class Warp:
    """A smooth 3D displacement field through control points (thin-plate spline).

    ``x -> x + u(x)`` with ``u(x) = sum_i w_i phi(|x - p_i|) + a_0 + A x``, ``phi(r) = r^2 log r``
    and the degree-1 polynomial part ``a_0 + A x``: the interpolant of minimal bending energy
    that reproduces the displacements at the control points exactly and any affine map
    exactly. Same interpolant as ``scipy.interpolate.RBFInterpolator(kernel="thin_plate_spline",
    degree=1)``, evaluated here in chunks without BLAS and with an analytic Jacobian.

    Parameters
    ----------
    control_points : array_like, shape (m, 3), float, mm
        Distinct points, ``m >= 4``, not all on one plane.
    displacements : array_like, shape (m, 3), float, mm
        Displacement of each control point. All zero gives the identity, exactly.
    info : dict, optional
        JSON-ready record of how the displacements were drawn (kept in `to_json`).

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite values, fewer than 4 or coplanar or duplicate points.
    """

    # Rows per evaluation chunk: 8192 rows x m columns keeps the two work buffers in cache
    # (measured: 2k..32k rows all within 10 % on 400k points and 40 control points).
    _CHUNK_ROWS = 8192

    def __init__(self, control_points: Any, displacements: Any, *, info: dict | None = None):
        p = _as_points(control_points, "control_points").copy()
        d = _as_points(displacements, "displacements").copy()
        if p.shape != d.shape:
            raise ValueError(f"control_points {p.shape} and displacements {d.shape} differ in shape")
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(d))):
            raise ValueError("control points and displacements must be finite")
        if len(p) < 4:
            raise ValueError(f"a warp needs at least 4 control points, got {len(p)}")
        self.control_points = p
        self.displacements = d
        self.info = dict(info or {})
        self.is_identity = not np.any(d)
        # Centre and scale the coordinates: keeps the spline system well conditioned whatever
        # the frame's origin (a CT's LPS origin can be 200 mm away from the head).
        self._center = p.mean(axis=0)
        spread = float(np.sqrt(np.mean(np.sum((p - self._center) ** 2, axis=1))))
        self._scale = spread if spread > 0 else 1.0
        self._q = (p - self._center) / self._scale
        self._weights = np.zeros_like(p)
        self._affine = np.zeros((4, 3))
        self._check_geometry()
        if not self.is_identity:
            self._weights, self._affine = self._fit()

    def _check_geometry(self) -> None:
        r2 = _pairwise_sq(self._q, self._q)
        np.fill_diagonal(r2, np.inf)
        if r2.min() <= 1e-20:
            i, j = np.unravel_index(np.argmin(r2), r2.shape)
            raise ValueError(f"control points {i} and {j} coincide")
        poly = np.hstack([np.ones((len(self._q), 1)), self._q])
        # The affine part is undetermined if the points are coplanar (rank < 4).
        if np.linalg.matrix_rank(poly, tol=1e-8) < 4:
            raise ValueError("control points are coplanar; the warp's affine part is undetermined")

    def _fit(self) -> tuple[np.ndarray, np.ndarray]:
        m = len(self._q)
        poly = np.hstack([np.ones((m, 1)), self._q])
        system = np.zeros((m + 4, m + 4))
        system[:m, :m] = _tps_kernel(_pairwise_sq(self._q, self._q))
        system[:m, m:] = poly
        system[m:, :m] = poly.T
        rhs = np.zeros((m + 4, 3))
        rhs[:m] = self.displacements
        sol = np.linalg.solve(system, rhs)
        return sol[:m], sol[m:]

    @classmethod
    def identity(cls, control_points: Any) -> Warp:
        """The warp that moves nothing, through the given control points."""
        p = _as_points(control_points, "control_points")
        return cls(p, np.zeros_like(p))

    def _chunks(self, n: int):
        step = self._CHUNK_ROWS
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    def displacement(self, points: Any) -> np.ndarray:
        """``u(x)`` at ``points`` (n, 3) mm; returns (n, 3) float64 mm."""
        x = _as_points(points, "points")
        out = np.zeros_like(x)
        if self.is_identity:
            return out
        lin = self._affine[1:]
        buf_r2 = np.empty((min(len(x), self._CHUNK_ROWS), len(self._q)))
        buf_phi = np.empty_like(buf_r2)
        for sl in self._chunks(len(x)):
            q = (x[sl] - self._center) / self._scale
            r2 = _pairwise_sq(q, self._q, out=buf_r2, tmp=buf_phi)
            phi = _tps_kernel(r2, out=buf_phi[: len(q)])
            # einsum, not `phi @ w`: stays off threaded BLAS (see frame.apply).
            out[sl] = (np.einsum("nm,mk->nk", phi, self._weights)
                       + np.einsum("nj,jk->nk", q, lin) + self._affine[0])
        return out

    def apply(self, points: Any) -> np.ndarray:
        """Warped points: ``x + u(x)``.

        Parameters
        ----------
        points : array_like, shape (n, 3), float, mm

        Returns
        -------
        numpy.ndarray, shape (n, 3), float64, mm
            A new array; exactly the input when the warp is the identity.
        """
        x = _as_points(points, "points")
        if self.is_identity:
            return x.copy()
        return x + self.displacement(x)

    def jacobian(self, points: Any) -> np.ndarray:
        """Jacobian ``d(x + u(x)) / dx`` at ``points``.

        Parameters
        ----------
        points : array_like, shape (n, 3), float, mm

        Returns
        -------
        numpy.ndarray, shape (n, 3, 3), float64
            ``J[i, k, j] = d(warped_k) / d(x_j)`` at point i (dimensionless). A positive
            determinant everywhere means the warp does not fold space over.
        """
        x = _as_points(points, "points")
        jac = np.broadcast_to(np.eye(3), (len(x), 3, 3)).copy()
        if self.is_identity:
            return jac
        lin = self._affine[1:]
        for sl in self._chunks(len(x)):
            q = (x[sl] - self._center) / self._scale
            diff = q[:, None, :] - self._q[None, :, :]
            r2 = np.einsum("nmj,nmj->nm", diff, diff)
            # grad of r^2 log r (in q) is (q - q_i) (log r^2 + 1); at r = 0 it is 0.
            g = np.log(np.maximum(r2, 1e-300)) + 1.0
            du = np.einsum("nm,nmj,mk->nkj", g, diff, self._weights) + lin.T[None]
            jac[sl] += du / self._scale
        return jac

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict that `from_json` turns back into the same warp."""
        return {"control_points": self.control_points.tolist(),
                "displacements": self.displacements.tolist(),
                "info": self.info}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Warp:
        """Rebuild a warp from `to_json` output."""
        return cls(data["control_points"], data["displacements"], info=data.get("info"))


def anchor_points(candidates: Any, n: int = DEFAULT_ANCHORS, seeds: Any = None,
                  max_candidates: int = 20_000) -> np.ndarray:
    """Extra warp control points spread evenly over a head (farthest-point sampling).

    Deterministic: the same input gives the same anchors.

    Parameters
    ----------
    candidates : array_like, shape (k, 3), float, mm
        Points to choose from, e.g. the skull and skin vertices stacked.
    n : int
        How many anchors to return.
    seeds : array_like, shape (s, 3), optional
        Points already used as control points (the landmarks): anchors keep away from them.
    max_candidates : int
        Candidates are thinned to about this many by taking every j-th one.

    Returns
    -------
    numpy.ndarray, shape (n, 3), float64, mm
        Each anchor is the candidate farthest from the seeds and the anchors before it.
    """
    c = _as_points(candidates, "candidates")
    c = c[np.all(np.isfinite(c), axis=1)]
    if n <= 0:
        return np.zeros((0, 3))
    if len(c) < n:
        raise ValueError(f"need at least {n} candidate points, got {len(c)}")
    c = c[:: max(1, len(c) // max_candidates)]
    s = np.zeros((0, 3)) if seeds is None else _as_points(seeds, "seeds")
    if len(s):
        dmin = np.sqrt(_pairwise_sq(c, s).min(axis=1))
    else:
        # No seeds: start from the point farthest from the centroid.
        dmin = np.linalg.norm(c - c.mean(axis=0), axis=1) * 1e6
    picked = []
    for _ in range(n):
        i = int(np.argmax(dmin))
        picked.append(c[i])
        dmin = np.minimum(dmin, np.linalg.norm(c - c[i], axis=1))
    return np.array(picked)


def random_shape_warp(control_points: Any, rng: np.random.Generator, amplitude: float = 1.0, *,
                      axes: Any = None, center: Any = None) -> Warp:
    """Draw a random, smooth, fold-free shape warp of craniofacial size.

    Displacement of control point ``p`` (``R`` = head axes, ``c`` = centre)::

        d(p) = (R^T diag(s) R - I) (p - c) + local(p)
        s_k  = exp(amplitude * SCALE_SD[k] * z_k),            z_k clipped N(0, 1)
        local = amplitude * LOCAL_SD_MM * L z,   L L^T = exp(-|p_i - p_j|^2 / (2 LOCAL_LENGTH_MM^2))

    (see the module constants for the published figures behind the sizes). The same number of
    random values is drawn whatever the amplitude, so one seed gives corresponding warps at
    different amplitudes.

    Parameters
    ----------
    control_points : array_like, shape (m, 3), float, mm
        Where the displacements are drawn (see `Warp`), e.g. skull landmarks plus
        `anchor_points`.
    rng : numpy.random.Generator
    amplitude : float
        Multiplies every standard deviation; 0 returns the identity exactly, 1 is the
        population's variability.
    axes : array_like, shape (3, 3), optional
        Rows: the head's x (subject's left), y (up), z (anterior) unit axes in the points'
        coordinates, i.e. the rotation of a head frame. Identity (points already in the head
        frame) by default.
    center : array_like, shape (3,), optional
        Fixed point of the scale component; the control points' centroid by default.

    Returns
    -------
    Warp
        ``info`` records the draw (scales, axes, centre, sizes).
    """
    if not (math.isfinite(amplitude) and amplitude >= 0):
        raise ValueError(f"amplitude must be a finite number >= 0, got {amplitude}")
    p = _as_points(control_points, "control_points")
    r = np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
        raise ValueError("axes must be a (3, 3) rotation (rows: head x, y, z)")
    c = p.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64).reshape(3)

    z_scale = _clipped_normal(rng, 3)
    z_local = _clipped_normal(rng, p.shape)

    scales = np.exp(amplitude * np.array(SCALE_SD) * z_scale)
    stretch = r.T @ np.diag(scales - 1.0) @ r  # (A - I) in the points' coordinates
    global_d = np.einsum("kj,nj->nk", stretch, p - c)

    cov = np.exp(-_pairwise_sq(p, p) / (2.0 * LOCAL_LENGTH_MM ** 2))
    # Symmetric square root by eigendecomposition: robust when nearby control points make
    # the covariance nearly singular (a Cholesky factorisation would fail there).
    evals, evecs = np.linalg.eigh(cov)
    root = evecs * np.sqrt(np.clip(evals, 0.0, None))
    # Drawn along the head axes and turned into the points' frame, so that one seed gives the
    # same anatomical change whatever frame the head is stored in.
    local_head = amplitude * LOCAL_SD_MM * np.einsum("ij,jk->ik", root, z_local)
    local = np.einsum("nk,kj->nj", local_head, r)

    info = {
        "amplitude": float(amplitude),
        "axes": r.tolist(),
        "center": c.tolist(),
        "scales": scales.tolist(),
        "scale_sd": list(SCALE_SD),
        "local_sd_mm": LOCAL_SD_MM,
        "local_length_mm": LOCAL_LENGTH_MM,
        "cap_sd": CAP_SD,
    }
    return Warp(p, global_d + local, info=info)


# ============================================================================================
# soft-tissue rescale
# ============================================================================================

def _vertex_neighbour_mean(faces: np.ndarray, n: int) -> sparse.csr_matrix:
    """Row-stochastic ``(n, n)`` matrix averaging each vertex's mesh neighbours."""
    i = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    j = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    adj = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adj.data[:] = 1.0  # an edge shared by two faces counts once
    deg = np.asarray(adj.sum(axis=1)).ravel()
    deg[deg == 0] = 1.0  # unreferenced vertices keep their own value (row stays zero)
    return sparse.diags(1.0 / deg) @ adj


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
    mean = _vertex_neighbour_mean(skin_f, len(skin_v))
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
    """Shepard interpolation of ``values`` (k,) from ``nodes`` (k, 3) at ``at`` (n, 3).

    Weights ``1 / d^IDW_POWER``, plus a background value 1 with the weight of a node at
    ``background_mm`` (``inf``: none). Interpolating (exact at the nodes), bounded by the
    values (and 1), smooth elsewhere. Computed as ``1 + weighted mean of (value - 1)`` so
    all-ones values give exactly 1.
    """
    out = np.ones(len(at))
    if len(nodes) == 0:
        return out
    background = background_mm ** -IDW_POWER if np.isfinite(background_mm) else 0.0
    step = 8192
    for start in range(0, len(at), step):
        sl = slice(start, min(len(at), start + step))
        d2 = _pairwise_sq(at[sl], nodes)
        with np.errstate(divide="ignore"):
            w = d2 ** (-IDW_POWER / 2.0)
        hit = np.isinf(w)
        rows = hit.any(axis=1)
        total = w.sum(axis=1) + background
        # A point on a node takes that node's value (the weight would be infinite).
        w[rows] = hit[rows].astype(np.float64)
        total[rows] = w[rows].sum(axis=1)
        out[sl] = 1.0 + np.einsum("nk,k->n", w, values - 1.0) / total
    return out


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
        self.skull_vertices, self.skull_faces = _mesh_arrays(skull, "skull")
        self.skin_vertices, self.skin_faces = _mesh_arrays(skin, "skin")
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
        p = np.ascontiguousarray(_as_points(points, "points"))
        sq, _, _ = self._skull_tree.squared_distance(self.skull_vertices, self.skull_faces, p)
        return np.sqrt(sq)

    def _skin_aabb(self) -> igl.AABB:
        if self._skin_tree is None:
            self._skin_tree = igl.AABB()
            self._skin_tree.init(self.skin_vertices, self.skin_faces)
        return self._skin_tree

    def skin_points_over(self, points: Any) -> np.ndarray:
        """Closest skin point (n, 3) mm to each of ``points`` (n, 3) mm, e.g. bone landmarks."""
        p = np.ascontiguousarray(_as_points(points, "points"))
        _, _, closest = self._skin_aabb().squared_distance(self.skin_vertices, self.skin_faces, p)
        return closest

    def locate(self, points: Any) -> SkinLocation:
        """Nearest skin triangle and barycentric coordinates of ``points`` (n, 3) mm."""
        p = np.ascontiguousarray(_as_points(points, "points"))
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
            Factor wanted at points on (or near) the bone, e.g. from `tissue_factors`.
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
        v, f = _mesh_arrays(skin, "skin")
        if v.shape != field.skin_vertices.shape or f.shape != field.skin_faces.shape:
            raise ValueError("field was built for a different skin mesh")
    return _mesh(field.rescale(factors_at, build, clip=clip, min_mm=min_mm), field.skin_faces)


# ---- drawing thickness at the landmarks ----------------------------------------------------

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
    bone = _finite_landmarks(skull_landmarks)
    skin = _finite_landmarks(skin_landmarks)
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


def draw_thickness(sites: Any, rng: np.random.Generator, *, build_share: float = BUILD_SHARE,
                   asymmetry_share: float = ASYMMETRY_SHARE, min_mm: float = MIN_THICKNESS_MM,
                   table: list[Thickness] | None = None) -> dict[str, Any]:
    """Draw a target soft-tissue thickness for each site from the published mean and SD.

    ``target = max(mean + sd * z, min_mm)``, where each site's z-score is N(0, 1) and the
    sites are correlated through a shared body-build component (share ``build_share`` of the
    variance) and, for the two sides of a bilateral site, a common site component (all but
    ``asymmetry_share``). The same random numbers are drawn whichever sites are asked for, so
    one seed gives corresponding draws for heads with different landmark sets.

    Parameters
    ----------
    sites : iterable of str
        Skull landmark names (canonical), e.g. the keys of `landmark_pairs`.
    rng : numpy.random.Generator
    build_share, asymmetry_share : float in [0, 1]
    min_mm : float
        Truncation: targets below this are raised to it (mm).
    table : list of Thickness, optional
        Thickness rows; the bundled Hona & Stephan (2024) table by default.

    Returns
    -------
    dict
        ``{"build_z": float, "sites": {name: {"row", "mean_mm", "sd_mm", "z", "target_mm"}}}``,
        JSON-ready.
    """
    if not (0 <= build_share <= 1 and 0 <= asymmetry_share <= 1):
        raise ValueError("build_share and asymmetry_share must lie in [0, 1]")
    wanted = set(sites)
    unknown = wanted - set(names.SKULL)
    if unknown:
        raise KeyError(f"not canonical skull landmarks: {', '.join(sorted(unknown))}")
    build_z = float(rng.standard_normal())
    # One draw per landmark stem and one per side, always all of them (fixed rng use).
    stems = list(dict.fromkeys(lm.base for lm in names.SKULL.values()))
    stem_e = dict(zip(stems, rng.standard_normal(len(stems))))
    side_e = dict(zip(names.SKULL, rng.standard_normal(len(names.SKULL))))
    out: dict[str, Any] = {"build_z": build_z, "build_share": build_share,
                           "asymmetry_share": asymmetry_share, "min_mm": min_mm, "sites": {}}
    for name, lm in names.SKULL.items():
        if name not in wanted:
            continue
        z_site = math.sqrt(build_share) * build_z + math.sqrt(1 - build_share) * float(stem_e[lm.base])
        z = z_site
        if lm.bilateral:
            z = math.sqrt(1 - asymmetry_share) * z_site + math.sqrt(asymmetry_share) * float(side_e[name])
        row = thickness_for(name, table)
        out["sites"][name] = {"row": row.bone, "mean_mm": row.mean_mm, "sd_mm": row.sd_mm,
                              "z": z, "target_mm": max(row.mean_mm + row.sd_mm * z, float(min_mm))}
    return out


def _solve_factor(a: np.ndarray, b: np.ndarray, target: float) -> float:
    """Factor ``f`` with ``|a + (f - 1) b| = target`` (the root nearest ``target / |a|``).

    ``a`` is the bone->skin landmark vector, ``b`` the thickness vector at the skin point
    (both as they will be after the warp): scaling moves the skin point along ``b``, which need
    not be parallel to ``a`` when the landmarks were not placed along the bone normal.
    """
    na = float(np.linalg.norm(a))
    bb = float(b @ b)
    ratio = target / na if na > 0 else 1.0
    if bb <= 1e-12:
        return ratio
    ab = float(a @ b)
    disc = ab * ab - bb * (na * na - target * target)
    if disc < 0:  # the target distance is not reachable along b: get as close as possible
        f = 1.0 - ab / bb
    else:
        f = 1.0 + (-ab + math.sqrt(disc)) / bb
    # A factor must stay positive (the clip of the factor field bounds it further).
    return max(f, 1e-6)


def _site_factors(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], targets: Mapping[str, float],
                  field: TissueField | None, warp: Warp | None) -> dict[str, dict[str, Any]]:
    """Factor per site so that the (warped) bone->skin distance becomes the target.

    The skin point moves by ``(f - 1) b`` (``b``: its thickness vector) and then through the
    warp. Solved in closed form for the warp's linearisation at the skin point, then refined by
    Newton steps on the warp itself, whose curvature matters when ``(f - 1) b`` is long.
    """
    keys = [k for k in pairs if k in targets]
    if not keys:
        return {}
    bone = np.array([pairs[k][0] for k in keys])
    skin = np.array([pairs[k][1] for k in keys])
    target = np.array([float(targets[k]) for k in keys])
    if field is not None:
        b = field.interpolate(field.locate(skin), field.vectors)
    else:  # no field: assume the skin point moves straight away from its bone landmark
        b = skin - bone
    if warp is None or warp.is_identity:
        a = skin - bone
        factors = np.array([_solve_factor(a[i], b[i], target[i]) for i in range(len(keys))])
    else:
        bone_w = warp.apply(bone)
        a = warp.apply(skin) - bone_w
        b_lin = np.einsum("nkj,nj->nk", warp.jacobian(skin), b)
        factors = np.array([_solve_factor(a[i], b_lin[i], target[i]) for i in range(len(keys))])
        for _ in range(_NEWTON_STEPS):
            moved = skin + (factors - 1.0)[:, None] * b
            w = warp.apply(moved) - bone_w
            dist = np.linalg.norm(w, axis=1)
            slope = np.einsum("nk,nk->n", w, np.einsum("nkj,nj->nk", warp.jacobian(moved), b))
            slope /= np.maximum(dist, 1e-12)
            ok = np.abs(slope) > 1e-9
            factors[ok] = np.maximum(factors[ok] - (dist[ok] - target[ok]) / slope[ok], 1e-6)
    out = {}
    for i, k in enumerate(keys):
        out[k] = {"node": bone[i].tolist(), "measured_mm": float(np.linalg.norm(a[i])),
                  "factor": float(factors[i])}
    return out


def tissue_factors(skull_landmarks: Mapping[str, Any], skin_landmarks: Mapping[str, Any] | None,
                   rng: np.random.Generator, *, field: TissueField | None = None,
                   exclude: tuple[str, ...] = EXCLUDED_SITES, build_share: float = BUILD_SHARE,
                   asymmetry_share: float = ASYMMETRY_SHARE, min_mm: float = MIN_THICKNESS_MM,
                   table: list[Thickness] | None = None) -> dict[str, tuple[np.ndarray, float]]:
    """Draw published soft-tissue thicknesses and turn them into thickness factors.

    For every skull landmark with a thickness row (`thickness_for`) and a skin point over it
    (its `names.BONE_TO_SKIN` twin, or with ``field`` the closest skin point), a target is
    drawn by `draw_thickness` and the factor is target / measured bone->skin distance. With
    ``field`` the factor also allows for the skin point moving along its thickness vector
    rather than straight away from the bone landmark, so `rescale_tissue` hits the target.

    Parameters
    ----------
    skull_landmarks, skin_landmarks : mapping of str to (3,) mm
        Canonical landmark names; NaN points count as absent.
    rng : numpy.random.Generator
    field : TissueField, optional
        The head's cache (see `landmark_pairs` and above).
    exclude, build_share, asymmetry_share, min_mm, table
        See `landmark_pairs` and `draw_thickness`.

    Returns
    -------
    dict of str to (point (3,) float64 mm, factor float)
        Keyed by skull landmark, the point being the bone landmark: ready for
        `rescale_tissue`.
    """
    pairs = landmark_pairs(skull_landmarks, skin_landmarks, field=field, exclude=exclude)
    draw = draw_thickness(pairs, rng, build_share=build_share, asymmetry_share=asymmetry_share,
                          min_mm=min_mm, table=table)
    targets = {k: v["target_mm"] for k, v in draw["sites"].items()}
    solved = _site_factors(pairs, targets, field, None)
    return {k: (np.array(v["node"]), v["factor"]) for k, v in solved.items()}


# ============================================================================================
# synthetic pairs
# ============================================================================================

def _head_axes(skull_landmarks: Mapping[str, Any]) -> np.ndarray:
    return head_frame(_finite_landmarks(skull_landmarks), "skull").matrix[:3, :3]


def sample_pair(skull: Any, skin: Any, skull_landmarks: Mapping[str, Any],
                skin_landmarks: Mapping[str, Any] | None, rng: np.random.Generator,
                shape_amplitude: float = 1.0, tissue: bool = True, build: float | None = None, *,
                field: TissueField | None = None, axes: Any = None,
                n_anchors: int = DEFAULT_ANCHORS, clip: tuple[float, float] = FACTOR_CLIP,
                min_mm: float = MIN_THICKNESS_MM, exclude: tuple[str, ...] = EXCLUDED_SITES,
                build_share: float = BUILD_SHARE, asymmetry_share: float = ASYMMETRY_SHARE,
                ) -> tuple[trimesh.Trimesh, trimesh.Trimesh, dict, dict, dict]:
    """One synthetic skull/face pair grown from a real head.

    Draws a shape warp (`random_shape_warp`, control points = the finite skull landmarks plus
    `anchor_points`) and, with ``tissue``, per-site soft-tissue targets (`draw_thickness`),
    then applies them with `replay_pair`: skin rescaled on the source head, then skull, skin
    and both landmark sets warped together. The factors are solved on the warped landmark
    pairs, so the final bone->skin distances equal the drawn targets (unless clipped).

    Parameters
    ----------
    skull, skin : trimesh.Trimesh or (vertices, faces)
        The real head, mm.
    skull_landmarks, skin_landmarks : mapping of str to (3,) mm
        Canonical names; NaN points count as absent. The skull landmarks must define a head
        frame (`skull2face.geometry.frame.head_frame`) unless ``axes`` is given.
    rng : numpy.random.Generator
    shape_amplitude : float
        Warp size in population SDs (0: no warp).
    tissue : bool
        Rescale the soft tissue.
    build : float or None
        Extra global tissue factor (e.g. 0.8 for a deliberately lean variant). None means 1:
        the body-build variation of the population is already in the correlated site draws.
    field : TissueField, optional
        Cache for this skull and skin (build it once per head and pass it: ~1 s saved).
    axes : array_like, shape (3, 3), optional
        Head axes (rows x, y, z) in the meshes' coordinates; from the skull landmarks if None.
    n_anchors, clip, min_mm, exclude, build_share, asymmetry_share
        See `anchor_points`, `TissueField.displacement`, `landmark_pairs`, `draw_thickness`.

    Returns
    -------
    skull2, skin2 : trimesh.Trimesh
        Same faces and vertex order as the inputs.
    lms_skull2, lms_skin2 : dict of str to numpy.ndarray (3,)
        Every input landmark moved with its surface (NaN stays NaN).
    params : dict
        JSON-ready record of everything drawn; `replay_pair` rebuilds the same sample from
        it. ``params["tissue"]["sites"][name]["achieved_mm"]`` is the final bone->skin
        distance of each site.

    Notes
    -----
    With ``shape_amplitude=0`` and ``tissue=False`` the outputs equal the inputs exactly.
    """
    skull_v, skull_f = _mesh_arrays(skull, "skull")
    skin_v, skin_f = _mesh_arrays(skin, "skin")
    if field is None and tissue:
        field = TissueField((skull_v, skull_f), (skin_v, skin_f))

    bone = _finite_landmarks(skull_landmarks)
    r = _head_axes(skull_landmarks) if axes is None else np.asarray(axes, dtype=np.float64)
    landmark_pts = np.array([bone[n] for n in bone]).reshape(-1, 3)
    anchors = anchor_points(np.vstack([skull_v, skin_v]), n_anchors, seeds=landmark_pts)
    warp = random_shape_warp(np.vstack([landmark_pts, anchors]), rng, shape_amplitude, axes=r)

    params: dict[str, Any] = {
        "format": _PARAMS_FORMAT,
        "version": 1,
        "shape_amplitude": float(shape_amplitude),
        "warp": warp.to_json(),
        "tissue": None,
    }
    if tissue:
        pairs = landmark_pairs(skull_landmarks, skin_landmarks, field=field, exclude=exclude)
        draw = draw_thickness(pairs, rng, build_share=build_share,
                              asymmetry_share=asymmetry_share, min_mm=min_mm)
        targets = {k: v["target_mm"] for k, v in draw["sites"].items()}
        solved = _site_factors(pairs, targets, field, warp)
        for k, v in solved.items():
            draw["sites"][k].update(v)
            draw["sites"][k]["skin_point"] = pairs[k][1].tolist()
        draw.update({"build": 1.0 if build is None else float(build), "clip": list(clip),
                     "min_mm_floor": float(min_mm), "smooth_mm": field.smooth_mm})
        params["tissue"] = draw

    skull2, skin2, lms_skull2, lms_skin2, disp = _apply_params(
        (skull_v, skull_f), (skin_v, skin_f), skull_landmarks, skin_landmarks, params, field)
    if tissue:
        _record_achieved(params, warp, field, disp, lms_skull2)
    return skull2, skin2, lms_skull2, lms_skin2, params


def _record_achieved(params: dict, warp: Warp, field: TissueField, disp: np.ndarray,
                     lms_skull2: Mapping[str, np.ndarray]) -> None:
    """Store each site's final bone->skin distance (its skin point moved like the skin)."""
    sites = params["tissue"]["sites"]
    keys = [k for k in sites if "skin_point" in sites[k]]
    if not keys:
        return
    skin_pts = np.array([sites[k]["skin_point"] for k in keys])
    moved = warp.apply(skin_pts + field.interpolate(field.locate(skin_pts), disp))
    for k, p in zip(keys, moved):
        sites[k]["achieved_mm"] = float(np.linalg.norm(p - lms_skull2[k]))


def _factors_from_params(tissue: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, float]]:
    return {k: (np.array(v["node"]), float(v["factor"]))
            for k, v in tissue["sites"].items() if "factor" in v}


def replay_pair(skull: Any, skin: Any, skull_landmarks: Mapping[str, Any],
                skin_landmarks: Mapping[str, Any] | None, params: Mapping[str, Any], *,
                field: TissueField | None = None) -> tuple[trimesh.Trimesh, trimesh.Trimesh, dict, dict, dict]:
    """Rebuild the sample that `sample_pair` recorded in ``params`` (no randomness).

    Parameters
    ----------
    skull, skin, skull_landmarks, skin_landmarks
        The same real head that `sample_pair` was given.
    params : dict
        Its ``params`` (or the same after a JSON round trip).
    field : TissueField, optional
        Cache for this head; built when needed and not given. A field built with another
        ``smooth_mm`` than the recorded one is rejected.

    Returns
    -------
    skull2, skin2, lms_skull2, lms_skin2, params
        As `sample_pair` (``params`` is the given one).
    """
    skull2, skin2, lms_skull2, lms_skin2, _ = _apply_params(
        skull, skin, skull_landmarks, skin_landmarks, params, field)
    return skull2, skin2, lms_skull2, lms_skin2, dict(params)


def _apply_params(skull: Any, skin: Any, skull_landmarks: Mapping[str, Any] | None,
                  skin_landmarks: Mapping[str, Any] | None, params: Mapping[str, Any],
                  field: TissueField | None):
    """Tissue rescale on the source head, then the warp; also returns the skin displacement."""
    if params.get("format") != _PARAMS_FORMAT:
        raise ValueError(f"not synthetic-pair parameters (format {params.get('format')!r})")
    skull_v, skull_f = _mesh_arrays(skull, "skull")
    skin_v, skin_f = _mesh_arrays(skin, "skin")
    warp = Warp.from_json(params["warp"])
    tissue = params.get("tissue")

    skin_lms = {k: np.asarray(v, dtype=np.float64).reshape(3) for k, v in (skin_landmarks or {}).items()}
    new_skin_v = skin_v
    disp = None
    if tissue:
        if field is None:
            field = TissueField((skull_v, skull_f), (skin_v, skin_f), smooth_mm=tissue["smooth_mm"])
        elif field.skin_vertices.shape != skin_v.shape:
            raise ValueError("field was built for a different skin mesh")
        elif field.smooth_mm != tissue["smooth_mm"]:
            raise ValueError(f"field smooth_mm {field.smooth_mm} differs from the recorded "
                             f"{tissue['smooth_mm']}")
        disp = field.displacement(_factors_from_params(tissue), tissue["build"],
                                  clip=tuple(tissue["clip"]), min_mm=tissue["min_mm_floor"])
        new_skin_v = skin_v + disp
        # Skin landmarks ride on the skin: the displacement at their place on the surface.
        finite = [k for k, v in skin_lms.items() if np.all(np.isfinite(v))]
        if finite:
            pts = np.array([skin_lms[k] for k in finite])
            moved = pts + field.interpolate(field.locate(pts), disp)
            skin_lms.update(zip(finite, moved))

    skull2 = _mesh(warp.apply(skull_v), skull_f)
    skin2 = _mesh(warp.apply(new_skin_v), skin_f)
    lms_skull2 = _warp_landmarks(warp, skull_landmarks)
    lms_skin2 = _warp_landmarks(warp, skin_lms)
    return skull2, skin2, lms_skull2, lms_skin2, disp


def _warp_landmarks(warp: Warp, landmarks: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    items = {k: np.asarray(v, dtype=np.float64).reshape(3) for k, v in (landmarks or {}).items()}
    if not items:
        return {}
    keys = list(items)
    moved = warp.apply(np.array([items[k] for k in keys]))  # NaN rows stay NaN
    return dict(zip(keys, moved))
