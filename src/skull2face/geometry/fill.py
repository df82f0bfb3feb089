"""Filled skull height: the bone surface with its holes and pits bridged (numpy, torch-free).

The soft tissue of the face does not follow the bone into the orbits, the nasal aperture or
small gaps of the rendered skull; it spans them. `filled_height` gives the surface the tissue
sits on: a grey-scale morphological closing of the skull height map with a flat disc (pits and
holes narrower than the disc are filled up to the level of their rims, convex and monotone
parts are left unchanged), then every pixel still without a height (off the closed skull
silhouette) takes the height of the nearest pixel that has one. Optionally the closed skull is
first offset outwards by a tissue thickness measured along the bone's normal (a grey-scale
dilation with a ball), which is what a uniform soft-tissue layer looks like in a height map:
about that thickness where the bone faces the viewer, much more where it turns away, and a
little wider than the bone. Training (residual mode of `skull2face.stages.train`) and prediction
(`skull2face.stages.predict.generator_face`) call it the same way, on the skull map at the
generator's resolution.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DEFAULT_RADIUS_MM = 15.0


def _disc(radius_px: float) -> np.ndarray:
    r = int(np.floor(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px + 1e-9


def _ball_dilation(f: np.ndarray, mm_per_px: float, offset_mm: float) -> np.ndarray:
    """Grey dilation of ``f`` (-inf = no surface) with a ball of radius ``offset_mm``."""
    r = int(np.floor(offset_mm / mm_per_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1] * float(mm_per_px)
    d2 = yy * yy + xx * xx
    footprint = d2 <= offset_mm * offset_mm + 1e-9
    structure = np.where(footprint, np.sqrt(np.clip(offset_mm * offset_mm - d2, 0.0, None)), 0.0)
    fp = np.pad(f, r, constant_values=-np.inf)
    out = ndimage.grey_dilation(fp, footprint=footprint, structure=structure, mode="constant", cval=-np.inf)
    return out[r:fp.shape[0] - r, r:fp.shape[1] - r]


def filled_height(height: np.ndarray, mm_per_px: float, radius_mm: float = DEFAULT_RADIUS_MM,
                  offset_mm: float = 0.0) -> np.ndarray:
    """Skull height map with holes and pits bridged and the background filled.

    Parameters
    ----------
    height : numpy.ndarray, shape (H, W), float, mm
        Head-frame skull heights, NaN (or any non-finite value) off the bone.
    mm_per_px : float
        Pixel pitch of ``height`` (mm); the disc is ``radius_mm / mm_per_px`` pixels wide.
    radius_mm : float
        Radius of the flat disc of the closing (mm); 0 or less than a pixel: no closing.
    offset_mm : float
        Then offset the closed surface outwards by this distance along its normal (mm, >= 0):
        grey dilation with a ball, ``max over |d| <= offset of f(x + d) + sqrt(offset**2 -
        |d|**2)``. 0: no offset.

    Returns
    -------
    numpy.ndarray, shape (H, W), float32, mm
        Finite everywhere: the grey-scale closing of ``height`` (background = minus infinity,
        so the closing also bridges holes of the silhouette narrower than the disc and never
        grows it outwards); pixels outside the closed silhouette take the value of the nearest
        pixel inside it. All zeros when ``height`` has no finite value. Never below ``height``
        (plus ``offset_mm``) where ``height`` is finite.
    """
    h = np.asarray(height, dtype=np.float64)
    if h.ndim != 2:
        raise ValueError(f"height must be (H, W), got shape {h.shape}")
    if not mm_per_px > 0:
        raise ValueError(f"mm_per_px must be positive, got {mm_per_px}")
    if not offset_mm >= 0:
        raise ValueError(f"offset_mm must be >= 0, got {offset_mm}")
    valid = np.isfinite(h)
    if not valid.any():
        return np.zeros(h.shape, np.float32)
    f = np.where(valid, h, -np.inf)
    radius_px = float(radius_mm) / float(mm_per_px)
    if radius_px >= 1.0:
        disc = _disc(radius_px)
        # No bone outside the image either: pad by the radius so the dilation is also known
        # there (the erosion of a pixel near the border needs it; a +inf border would raise
        # slopes that run out of the image).
        pad = disc.shape[0] // 2
        fp = np.pad(f, pad, constant_values=-np.inf)
        dil = ndimage.grey_dilation(fp, footprint=disc, mode="constant", cval=-np.inf)
        # -inf (more than a radius from any bone) propagates through the erosion, which keeps
        # the silhouette from growing.
        closed = ndimage.grey_erosion(dil, footprint=disc, mode="constant", cval=-np.inf)[pad:-pad, pad:-pad]
        closed = np.where(valid, np.maximum(closed, h), closed)
    else:
        closed = f
    if offset_mm > 0:
        closed = _ball_dilation(closed, float(mm_per_px), float(offset_mm))
    inside = np.isfinite(closed)
    if not inside.all():
        _, (ri, ci) = ndimage.distance_transform_edt(~inside, return_indices=True)
        closed = closed[ri, ci]
    return closed.astype(np.float32)


__all__ = ["DEFAULT_RADIUS_MM", "filled_height"]
