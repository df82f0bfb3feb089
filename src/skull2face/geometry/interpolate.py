"""Scattered-data interpolation in 3D: point sets, pairwise distances, Shepard weighting.

``as_points``
    Checks that an array is an ``(n, 3)`` point set and returns it as float64.
``pairwise_sq``
    Squared distances between two point sets, exact and off BLAS (shared with the thin-plate
    spline of `skull2face.geometry.tps`).
``shepard``
    Inverse-distance weighting of scalar values given at a few nodes, with a power, a
    softening length and an optional background value weighted as one more node at a fixed
    distance. The one implementation used by the soft-tissue rescale of the synthetic
    population (`skull2face.dataset.tissue_rescale`) and by the tissue-depth baseline
    (`skull2face.methods.tissue_depth.interpolate_thickness`).

All coordinates are millimetres. Geometry only: numpy; no torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Rows of query points per chunk: an (8192, m) block of weights stays in cache for the few
# dozen nodes used here, and memory stays bounded for any number of query points.
_CHUNK_ROWS = 8192


def as_points(a: Any, name: str) -> np.ndarray:
    """``a`` as a float64 array of shape (n, 3) (NaN allowed); ``name`` is for the error.

    Raises
    ------
    ValueError
        If ``a`` is not of shape (n, 3).
    """
    p = np.asarray(a, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"{name} must have shape (n, 3), got {p.shape}")
    return p


def pairwise_sq(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None,
                tmp: np.ndarray | None = None) -> np.ndarray:
    """Squared distances ``(len(a), len(b))`` between point sets ``(n, 3)`` and ``(m, 3)``.

    One coordinate at a time into preallocated ``out``/``tmp`` buffers: about 5x faster than
    materialising the ``(n, m, 3)`` differences, and exact (no ``|a|^2 - 2 a.b + |b|^2``
    cancellation), and off BLAS (see `skull2face.geometry.frame.apply`).

    Parameters
    ----------
    a : numpy.ndarray, shape (n, 3), float64, mm
    b : numpy.ndarray, shape (m, 3), float64, mm
    out, tmp : numpy.ndarray, shape (>= n, m), float64, optional
        Work buffers; the result is written into the first ``n`` rows of ``out``.

    Returns
    -------
    numpy.ndarray, shape (n, m), float64, mm^2
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


def shepard(points: Any, nodes: Any, values: Any, *, power: float = 2.0,
            softening_mm: float = 0.0, background: float | None = None,
            background_distance_mm: float = math.inf) -> np.ndarray:
    """Shepard inverse-distance weighting of scalar ``values`` given at ``nodes``.

    ::

        f(p) = (sum_i w_i v_i + w_0 v_0) / (sum_i w_i + w_0),
        w_i  = (|p - n_i|^2 + e^2)^(-power / 2),   w_0 = (D^2 + e^2)^(-power / 2)

    with ``e = softening_mm``, ``v_0 = background`` and ``D = background_distance_mm``: the
    background acts as one extra node at distance ``D`` from every point (``w_0 = 0`` when
    there is no background or ``D`` is infinite). The result is smooth, stays between the
    smallest and largest of the values (and the background), and tends to the background far
    from every node (to the nodes' plain mean without one).

    With ``e = 0`` it is exact at the nodes: a point on a node takes that node's value,
    bit for bit (the mean of the values of coinciding nodes), instead of the infinite weight. With ``e > 0``
    it passes within a hair of them.

    Computed in chunks of query points without ``(n, m, 3)`` blocks and without BLAS, as
    ``v_r + sum_i w_i (v_i - v_r) / (sum_i w_i + w_0)`` with the reference ``v_r`` the
    background (the first value without one), so that equal values (and background) give
    exactly that value everywhere.

    Parameters
    ----------
    points : array_like, shape (n, 3), float, mm
        Where to evaluate.
    nodes : array_like, shape (m, 3), float, mm
        Where the values are given (same coordinates as ``points``); m may be 0.
    values : array_like, shape (m,), float
    power : float
        Exponent of the inverse distance (> 0): 2 is Shepard's classic; higher keeps the
        field flatter around each node.
    softening_mm : float
        ``e`` above (>= 0, mm): keeps the weights finite on the nodes.
    background : float or None
        ``v_0`` above. With no nodes every point takes it (NaN when None).
    background_distance_mm : float
        ``D`` above (> 0, mm); ``inf`` gives the background no weight.

    Returns
    -------
    numpy.ndarray, shape (n,), float64

    Raises
    ------
    ValueError
        Wrong shapes, or a power, softening or distance out of range.
    """
    p = as_points(points, "points")
    s = np.asarray(nodes, dtype=np.float64).reshape(-1, 3)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if len(v) != len(s):
        raise ValueError(f"{len(s)} nodes but {len(v)} values")
    if not (math.isfinite(power) and power > 0):
        raise ValueError(f"power must be a finite number > 0, got {power}")
    if not (math.isfinite(softening_mm) and softening_mm >= 0):
        raise ValueError(f"softening_mm must be a finite number >= 0, got {softening_mm}")
    if not background_distance_mm > 0:
        raise ValueError(f"background_distance_mm must be > 0, got {background_distance_mm}")

    ref = float(background) if background is not None else (float(v[0]) if len(v) else math.nan)
    out = np.full(len(p), ref)
    if len(s) == 0:
        return out
    half = 0.5 * float(power)
    e2 = float(softening_mm) ** 2
    w0 = 0.0
    if background is not None and math.isfinite(background_distance_mm):
        w0 = (float(background_distance_mm) ** 2 + e2) ** -half
    dv = v - ref
    buf = np.empty((min(len(p), _CHUNK_ROWS), len(s)))
    tmp = np.empty_like(buf)
    for start in range(0, len(p), _CHUNK_ROWS):
        sl = slice(start, min(len(p), start + _CHUNK_ROWS))
        w = pairwise_sq(p[sl], s, out=buf, tmp=tmp)
        if e2:
            w += e2
        with np.errstate(divide="ignore"):
            np.power(w, -half, out=w)
        total = w.sum(axis=1) + w0
        hit = np.isinf(w)
        rows = hit.any(axis=1)
        w[rows] = 0.0
        # einsum, not `w @ dv`: stays off threaded BLAS (see frame.apply).
        chunk = ref + np.einsum("nk,k->n", w, dv) / total
        if np.any(rows):
            # A point on a node takes that node's value exactly (its weight would be infinite).
            on = hit[rows].astype(np.float64)
            chunk[rows] = np.einsum("nk,k->n", on, v) / on.sum(axis=1)
        out[sl] = chunk
    return out
