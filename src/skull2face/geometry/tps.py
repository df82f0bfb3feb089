"""Smooth random shape warps of a head: a thin-plate spline through control points.

One smooth 3D displacement field (`Warp`: a thin-plate spline through control points, the
skull landmarks plus `anchor_points` spread over the head) moves skull, skin and landmarks
together, so bone and skin stay in register. `random_shape_warp` draws one whose size follows
published craniofacial variability (see the constants below). The synthetic population
(`skull2face.dataset.synthetic`) combines it with a soft-tissue rescale.

All coordinates are millimetres in whatever frame the input points use (a CT's LPS frame or
the head frame of `skull2face.geometry.frame`); only the axes of the global scale component
need the head frame, which `random_shape_warp` takes as ``axes``.

Geometry only: numpy; no torch, no anatomy tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .interpolate import as_points, pairwise_sq

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


def _clipped_normal(rng: np.random.Generator, shape: Any) -> np.ndarray:
    return np.clip(rng.standard_normal(shape), -CAP_SD, CAP_SD)


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
        p = as_points(control_points, "control_points").copy()
        d = as_points(displacements, "displacements").copy()
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
        r2 = pairwise_sq(self._q, self._q)
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
        system[:m, :m] = _tps_kernel(pairwise_sq(self._q, self._q))
        system[:m, m:] = poly
        system[m:, :m] = poly.T
        rhs = np.zeros((m + 4, 3))
        rhs[:m] = self.displacements
        sol = np.linalg.solve(system, rhs)
        return sol[:m], sol[m:]

    @classmethod
    def identity(cls, control_points: Any) -> Warp:
        """The warp that moves nothing, through the given control points."""
        p = as_points(control_points, "control_points")
        return cls(p, np.zeros_like(p))

    def _chunks(self, n: int):
        step = self._CHUNK_ROWS
        for start in range(0, n, step):
            yield slice(start, min(n, start + step))

    def displacement(self, points: Any) -> np.ndarray:
        """``u(x)`` at ``points`` (n, 3) mm; returns (n, 3) float64 mm."""
        x = as_points(points, "points")
        out = np.zeros_like(x)
        if self.is_identity:
            return out
        lin = self._affine[1:]
        buf_r2 = np.empty((min(len(x), self._CHUNK_ROWS), len(self._q)))
        buf_phi = np.empty_like(buf_r2)
        for sl in self._chunks(len(x)):
            q = (x[sl] - self._center) / self._scale
            r2 = pairwise_sq(q, self._q, out=buf_r2, tmp=buf_phi)
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
        x = as_points(points, "points")
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
        x = as_points(points, "points")
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
    c = as_points(candidates, "candidates")
    c = c[np.all(np.isfinite(c), axis=1)]
    if n <= 0:
        return np.zeros((0, 3))
    if len(c) < n:
        raise ValueError(f"need at least {n} candidate points, got {len(c)}")
    c = c[:: max(1, len(c) // max_candidates)]
    s = np.zeros((0, 3)) if seeds is None else as_points(seeds, "seeds")
    if len(s):
        dmin = np.sqrt(pairwise_sq(c, s).min(axis=1))
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
    p = as_points(control_points, "control_points")
    r = np.eye(3) if axes is None else np.asarray(axes, dtype=np.float64)
    if r.shape != (3, 3) or not np.allclose(r @ r.T, np.eye(3), atol=1e-6):
        raise ValueError("axes must be a (3, 3) rotation (rows: head x, y, z)")
    c = p.mean(axis=0) if center is None else np.asarray(center, dtype=np.float64).reshape(3)

    z_scale = _clipped_normal(rng, 3)
    z_local = _clipped_normal(rng, p.shape)

    scales = np.exp(amplitude * np.array(SCALE_SD) * z_scale)
    stretch = r.T @ np.diag(scales - 1.0) @ r  # (A - I) in the points' coordinates
    global_d = np.einsum("kj,nj->nk", stretch, p - c)

    cov = np.exp(-pairwise_sq(p, p) / (2.0 * LOCAL_LENGTH_MM ** 2))
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

