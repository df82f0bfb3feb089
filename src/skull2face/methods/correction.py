"""The skull2face correction of the fitted head: where it applies, how much of it is trusted.

The generator (`skull2face.methods.cgan`) sees the skull and the face-model fit from the front
and returns a face map; its *correction* is that map minus the fit's map, along the view axis
(head-frame z, mm). This module, torch-free, turns a correction into a whole head:

1. **Taper** (`taper`): the correction is blended to zero across `EDGE_BAND_MM` inside the fitted
   head's frontal silhouette and the map's border, and where the fitted surface turns away
   from the view (its slope between `GRAZING_COS` values), so the moved head has no step.
2. **Trust** (`gain_map`): a gain in [0, 1] per face region (`REGIONS`: vault, forehead,
   orbits, nose, cheeks, mouth, chin; each pixel's region is its sub-region box placed by the
   skull's landmarks, `region_labels`), blended across region borders. The gains are chosen on
   leave-one-head-out folds (`region_sums` per fold, `gains_from_folds`): per region, the
   least-squares gain of each fold, clipped to [0, 1], and the smallest over the folds. Since a
   fold's squared error is a convex parabola in the gain with its minimum at that fold's
   least-squares gain, any gain between 0 and it cannot raise the fold's error: the chosen gain
   does not make the fit worse on any fold. No fold, or a correction that hurt: gain 0.
3. **Whole head** (`displace_head`): every vertex of the fitted head that the frontal map sees
   (within `VISIBLE_BAND_MM` of the map's surface, fading to none behind it) moves along the
   view axis by the tapered, trusted correction at its pixel; the rest (ears, the back of the
   head, the eyes' and mouth's caps behind the surface) stays. Only vertices move, so the head
   stays closed.

Units: mm; maps are (H, W) in one render spec (`skull2face.geometry.depthmap.RenderSpec`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import trimesh
from scipy import ndimage

from ..dataset.quality import REGIONS, region_landmarks
from ..dataset.weights import pixel_labels
from ..geometry.depthmap import DepthMap, RenderSpec
from ..geometry.frame import apply

EDGE_BAND_MM = 10.0
"""Width of the band at the fitted head's frontal silhouette (and the map's border) across which
the correction falls linearly to zero, mm: about the width of the grazing rim of a head seen
from the front at the bundled model's 2 mm pixels (5 pixels)."""
GRAZING_COS = (0.35, 0.6)
"""The correction is kept whole where the fitted surface faces the view within about 53 degrees
(cos >= 0.6) and dropped where it turns more than about 70 degrees away (cos <= 0.35): a
correction along the view axis moves a grazing surface mostly sideways."""
VISIBLE_BAND_MM = 3.0
"""A vertex up to this far behind the map's surface at its pixel counts as seen (its weight
falls linearly to zero over this depth): about one pixel of the bundled model's map (2 mm)
plus the mesh's own edge length."""
GAIN_BLEND_MM = 6.0
"""Gaussian sigma (mm) that blends the per-region gains across region borders (no seam)."""
MIN_FOLD_PX = 30
"""A fold says something about a region only when it covers at least this many valid pixels."""


def region_labels(spec: RenderSpec, face_height: np.ndarray, skull_landmarks_head: Mapping[str, Any]) -> np.ndarray:
    """Each pixel's face region, as an index into `REGIONS`.

    The sub-region boxes of `skull2face.evaluation.region` placed by stand-ins from the skull's
    landmarks (`skull2face.dataset.quality.region_landmarks`: nasion for n, nasospinale for sn,
    gnathion for me, zygia for zy'), the same at prediction and in the folds.

    Parameters
    ----------
    spec : RenderSpec
    face_height : numpy.ndarray, shape (H, W), mm, NaN off the face
    skull_landmarks_head : mapping of str to (3,)
        Skull landmarks in the HEAD frame, mm.

    Returns
    -------
    numpy.ndarray, shape (H, W), int8
    """
    pts, _ = region_landmarks({k: np.asarray(v, dtype=np.float64) for k, v in skull_landmarks_head.items()}, None)
    return pixel_labels(spec, face_height, pts)


def taper(fit: DepthMap) -> np.ndarray:
    """Where the correction may act in full (1) and where not at all (0): the module's step 1.

    Parameters
    ----------
    fit : DepthMap
        The fitted head's frontal map.

    Returns
    -------
    numpy.ndarray, shape (H, W), float64 in [0, 1]
    """
    s = fit.spec.mm_per_px
    inside = np.pad(fit.mask, 1, constant_values=False)  # the map's border is an edge too
    dist = ndimage.distance_transform_edt(inside)[1:-1, 1:-1] * s
    edge = np.clip(dist / EDGE_BAND_MM, 0.0, 1.0)
    h = np.where(fit.mask, fit.height, np.nan).astype(np.float64)
    gy, gx = np.gradient(np.where(fit.mask, h, np.nanmean(h) if fit.mask.any() else 0.0), s)
    cos = 1.0 / np.sqrt(1.0 + gx ** 2 + gy ** 2)
    lo, hi = GRAZING_COS
    facing = np.clip((cos - lo) / (hi - lo), 0.0, 1.0)
    return np.where(fit.mask, edge * facing, 0.0)


def gain_map(labels: np.ndarray, gains: Mapping[str, float], mm_per_px: float) -> np.ndarray:
    """The trusted share of the correction per pixel: each region's gain, blended across borders.

    Parameters
    ----------
    labels : numpy.ndarray, shape (H, W), int
        `region_labels`.
    gains : mapping of region name to float in [0, 1]
        Missing regions: 0.
    mm_per_px : float

    Returns
    -------
    numpy.ndarray, shape (H, W), float64 in [0, 1]
    """
    table = np.array([float(gains.get(r, 0.0)) for r in REGIONS])
    g = table[np.clip(labels, 0, len(REGIONS) - 1)]
    return np.clip(ndimage.gaussian_filter(g, GAIN_BLEND_MM / mm_per_px, mode="nearest"), 0.0, 1.0)


def correction_map(raw: DepthMap, fit: DepthMap, labels: np.ndarray, gains: Mapping[str, float]) -> np.ndarray:
    """The correction applied: (generator map - fit map) x taper x gain, 0 where either is empty.

    Parameters
    ----------
    raw, fit : DepthMap
        The generator's face map and the fit's, one spec.
    labels : numpy.ndarray, shape (H, W), int
    gains : mapping of region name to float

    Returns
    -------
    numpy.ndarray, shape (H, W), float64, mm along the view axis (+: outward)
    """
    both = raw.mask & fit.mask
    c = np.where(both, raw.height.astype(np.float64) - fit.height.astype(np.float64), 0.0)
    return c * taper(fit) * gain_map(labels, gains, fit.spec.mm_per_px)


def displace_head(head: trimesh.Trimesh, fit: DepthMap, delta: np.ndarray) -> trimesh.Trimesh:
    """The fitted head with every vertex the frontal map sees moved by ``delta`` along the view axis.

    Parameters
    ----------
    head : trimesh.Trimesh
        The fitted head, input coordinates, mm (closed).
    fit : DepthMap
        Its frontal map (the spec's frame: input -> head).
    delta : numpy.ndarray, shape (H, W), float, mm
        `correction_map`.

    Returns
    -------
    trimesh.Trimesh
        Same faces, moved vertices, input coordinates, mm.
    """
    spec = fit.spec
    v = apply(spec.frame, np.asarray(head.vertices, dtype=np.float64))
    rc = spec.head_to_pixel(v)
    rows, cols = rc[:, 0], rc[:, 1]
    d = ndimage.map_coordinates(np.nan_to_num(delta), [rows, cols], order=1, mode="constant", cval=0.0)
    # the map's surface at the vertex: bilinear where all four pixels are on it, else the nearest pixel
    h = np.where(fit.mask, fit.height, 0.0).astype(np.float64)
    lin = ndimage.map_coordinates(h, [rows, cols], order=1, mode="constant", cval=0.0)
    full = ndimage.map_coordinates(fit.mask.astype(np.float64), [rows, cols], order=1, mode="constant") > 1 - 1e-9
    ri = np.clip(np.rint(rows).astype(int), 0, spec.size[0] - 1)
    ci = np.clip(np.rint(cols).astype(int), 0, spec.size[1] - 1)
    near = np.where(fit.mask, fit.height, np.nan)[ri, ci]
    seen_h = np.where(full, lin, near)
    behind = seen_h - v[:, 2]
    seen = np.clip(1.0 - np.maximum(behind, 0.0) / VISIBLE_BAND_MM, 0.0, 1.0)
    seen[~np.isfinite(seen_h)] = 0.0
    v[:, 2] += d * seen
    return trimesh.Trimesh(apply(spec.inverse, v), np.asarray(head.faces), process=False)


def region_sums(correction: np.ndarray, residual: np.ndarray, labels: np.ndarray,
                weight: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """One fold's figures per region: how the full correction relates to the fit's true residual.

    Parameters
    ----------
    correction : numpy.ndarray, shape (H, W), mm
        `correction_map` with every gain 1 (tapered, untrusted).
    residual : numpy.ndarray, shape (H, W), mm
        True face height - fit height; NaN where either is missing.
    labels : numpy.ndarray, shape (H, W), int
    weight : numpy.ndarray, shape (H, W), optional
        Per-pixel validity (a dataset's weight map); 1 without.

    Returns
    -------
    dict
        Per region with at least one valid pixel: ``cr``, ``cc``, ``rr`` (weighted sums, mm^2),
        ``n`` (valid pixels), ``gain`` (the least-squares gain ``cr / cc``, None when ``cc`` is
        0), ``rmse_fit_mm`` and ``rmse_corrected_mm`` (with the full correction).
    """
    w = np.ones(residual.shape) if weight is None else np.asarray(weight, dtype=np.float64)
    ok = np.isfinite(residual) & (w > 0)
    out = {}
    for k, name in enumerate(REGIONS):
        sel = ok & (labels == k)
        n = int(sel.sum())
        if n == 0:
            continue
        c, r, ww = correction[sel], residual[sel], w[sel]
        cr, cc, rr = float(np.sum(ww * c * r)), float(np.sum(ww * c * c)), float(np.sum(ww * r * r))
        sw = float(ww.sum())
        out[name] = {"n": n, "cr": cr, "cc": cc, "rr": rr, "gain": cr / cc if cc > 0 else None,
                     "rmse_fit_mm": float(np.sqrt(rr / sw)),
                     "rmse_corrected_mm": float(np.sqrt(max(rr - 2 * cr + cc, 0.0) / sw))}
    return out


def gains_from_folds(folds: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Per region, the gain that makes no fold worse (module docstring, step 2).

    Parameters
    ----------
    folds : sequence of mapping
        Each with ``regions``: `region_sums` of one held-out head.

    Returns
    -------
    dict of region name to float in [0, 1]
        Every name of `REGIONS`; 0 where no fold covers the region with `MIN_FOLD_PX` pixels.
    """
    gains = {}
    for name in REGIONS:
        per = [f["regions"][name] for f in folds if name in f.get("regions", {})]
        per = [r for r in per if r["n"] >= MIN_FOLD_PX and r.get("gain") is not None]
        gains[name] = float(np.clip(min(r["gain"] for r in per), 0.0, 1.0)) if per else 0.0
    return gains


__all__ = ["EDGE_BAND_MM", "GAIN_BLEND_MM", "GRAZING_COS", "MIN_FOLD_PX", "REGIONS", "VISIBLE_BAND_MM",
           "correction_map", "displace_head", "gain_map", "gains_from_folds", "region_labels", "region_sums", "taper"]
