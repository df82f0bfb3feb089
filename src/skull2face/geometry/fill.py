"""Bridging holes and pits of height maps (numpy/scipy/scikit-image, torch-free).

The soft tissue of the face does not follow the bone into the orbits, the nasal aperture or
small gaps of the rendered skull; it spans them. Every user of that idea goes through this
module, which builds on one grey-scale closing with a flat disc (`disc_closing`: pits and
holes narrower than the disc are filled up to the level of their rims, convex and monotone
parts are left unchanged) and one nearest-pixel extension (`extend_nearest`):

`filled_height`
    The surface the tissue sits on, for the generator: the closing, the background filled
    with the nearest height, and optionally offset outwards by a tissue thickness measured
    along the bone's normal (a grey-scale dilation with a ball: about that thickness where the
    bone faces the viewer, much more where it turns away, and a little wider than the bone).
    Training (residual mode of `skull2face.stages.train`) and prediction
    (`skull2face.methods.cgan.generator_face`) call it the same way, on the skull map at the
    generator's resolution.
`bridge_pits`
    Smooth bridges over holes and pits deeper than a threshold below the closing (biharmonic
    inpainting), inside the closed silhouette `face_region`: the tissue-depth method
    (`skull2face.methods.tissue_depth`) and the nose rule's aperture measurement use it.

Heights are float head-frame z in mm, NaN (or any non-finite value) where there is no surface.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

DEFAULT_RADIUS_MM = 15.0

# Bridging (see `bridge_pits`): a pixel is part of a pit when it lies more than PIT_DEPTH_MM
# below the morphological closing of the map with a disc of BRIDGE_RADIUS_MM. An orbit is
# ~35-40 mm wide and the nasal aperture ~25 mm, so a 17.5 mm radius (35 mm disc) spans the
# aperture and most of an orbit's depth; 3 mm is deeper than the skin's own hollows at this
# scale (alar groove, mentolabial sulcus on an offset bone ~1-2 mm below the closing).
BRIDGE_RADIUS_MM = 17.5
PIT_DEPTH_MM = 3.0
# The marked pits grow by this much (mm) so that the bridge starts on the rims' crests.
PIT_RIM_MM = 2.0
# `disc_closing` applies discs wider than this radius (px) to a block-maximum reduced map when
# asked to (``coarsen=True``): the cost grows with the disc's area.
COARSEN_ABOVE_PX = 24.0


def disc(radius_px: float) -> np.ndarray:
    """Flat disc footprint: pixels within ``radius_px`` of the centre.

    Parameters
    ----------
    radius_px : float
        Radius in pixels; below 1 the disc is the centre pixel alone.

    Returns
    -------
    numpy.ndarray, shape (2r + 1, 2r + 1), bool
        ``r = floor(radius_px)``.
    """
    r = max(math.floor(radius_px), 0)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= radius_px * radius_px + 1e-9


def disc_closing(height: np.ndarray, radius_px: float, valid: np.ndarray | None = None,
                 coarsen: bool = False) -> np.ndarray:
    """Grey closing of the valid heights with a flat disc: an upper hull spanning narrow pits.

    Background (and the outside of the image) counts as minus infinity: the dilation ignores
    it, the closing bridges holes of the silhouette narrower than the disc but never grows the
    silhouette outwards, and wherever it is finite it is >= the height.

    Parameters
    ----------
    height : numpy.ndarray, shape (H, W), float, mm
    radius_px : float
        Disc radius in pixels.
    valid : numpy.ndarray, shape (H, W), bool, optional
        Pixels that have a height; default: the finite ones.
    coarsen : bool
        For discs wider than `COARSEN_ABOVE_PX`, work on a map reduced by block maxima (blocks
        of ``ceil(radius_px / 24)`` px) and expand the result back: still an upper hull (each
        block stands at its highest pixel), coarser by one block (e.g. 1 mm at 0.5 mm/px), and
        far faster. False: exact at any radius.

    Returns
    -------
    numpy.ndarray, shape (H, W), float64, mm
        Minus infinity off the closed silhouette.
    """
    h = np.asarray(height, dtype=np.float64)
    valid = np.isfinite(h) if valid is None else np.asarray(valid, bool)
    step = max(1, math.ceil(radius_px / COARSEN_ABOVE_PX)) if coarsen else 1
    low = np.where(valid, h, -np.inf)
    rows, cols = low.shape
    if step > 1:
        grid = np.full((-(-rows // step) * step, -(-cols // step) * step), -np.inf)
        grid[:rows, :cols] = low
        low = grid.reshape(grid.shape[0] // step, step, grid.shape[1] // step, step).max(axis=(1, 3))
    fp = disc(radius_px / step)
    # No surface outside the image either: pad so the dilation is also known there (the
    # erosion of a pixel near the border needs it; a +inf border would raise slopes that run
    # out of the image). -inf (more than a radius from any surface) propagates through the
    # erosion, which keeps the silhouette from growing.
    pad = fp.shape[0] // 2 + 1
    padded = np.pad(low, pad, constant_values=-np.inf)
    dil = ndimage.grey_dilation(padded, footprint=fp, mode="constant", cval=-np.inf)
    out = ndimage.grey_erosion(dil, footprint=fp, mode="constant", cval=-np.inf)[pad:-pad, pad:-pad]
    if step > 1:
        out = np.repeat(np.repeat(out, step, axis=0), step, axis=1)[:rows, :cols]
    return out


def extend_nearest(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of ``values`` with every invalid pixel set to the nearest valid pixel's value.

    Parameters
    ----------
    values : numpy.ndarray, shape (H, W)
    valid : numpy.ndarray, shape (H, W), bool

    Returns
    -------
    numpy.ndarray, shape (H, W)
        ``values`` where valid (zero at invalid pixels when no pixel is valid).
    """
    if valid.all() or not valid.any():
        return np.where(valid, values, 0.0)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[tuple(idx)]


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
        Finite everywhere: the grey-scale closing of ``height`` (`disc_closing`, exact);
        pixels outside the closed silhouette take the value of the nearest pixel inside it
        (`extend_nearest`). All zeros when ``height`` has no finite value. Never below
        ``height`` (plus ``offset_mm``) where ``height`` is finite.
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
    radius_px = float(radius_mm) / float(mm_per_px)
    if radius_px >= 1.0:
        closed = disc_closing(h, radius_px, valid)
        closed = np.where(valid, np.maximum(closed, h), closed)
    else:
        closed = np.where(valid, h, -np.inf)
    if offset_mm > 0:
        closed = _ball_dilation(closed, float(mm_per_px), float(offset_mm))
    return extend_nearest(closed, np.isfinite(closed)).astype(np.float32)


def face_region(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """The filled silhouette: ``mask`` closed with a disc and with its holes filled.

    Parameters
    ----------
    mask : numpy.ndarray, shape (H, W), bool
    radius_px : float
        Closing radius in pixels (notches narrower than ~2x this are closed).

    Returns
    -------
    numpy.ndarray, shape (H, W), bool
    """
    # Closing by a disc through two Euclidean distance transforms: linear time, where a
    # binary_closing with a 70 px disc takes seconds. The padding keeps the border clear.
    pad = math.ceil(radius_px) + 2
    m = np.pad(np.asarray(mask, bool), pad)
    grown = ndimage.distance_transform_edt(~m) <= radius_px
    closed = ndimage.distance_transform_edt(grown) > radius_px
    return ndimage.binary_fill_holes(closed[pad:-pad, pad:-pad] | mask)


def bridge_pits(height: np.ndarray, mm_per_px: float, radius_mm: float = BRIDGE_RADIUS_MM,
                pit_depth_mm: float = PIT_DEPTH_MM, region: np.ndarray | None = None,
                rim_mm: float = PIT_RIM_MM) -> tuple[np.ndarray, np.ndarray]:
    """Bridge holes and deep pits of a height map smoothly (orbits, nasal aperture).

    1. ``region`` (default: `face_region` of the valid pixels with radius ``radius_mm``) is
       where a surface should exist.
    2. The closing of the height map with a flat disc of ``radius_mm`` (`disc_closing`,
       coarsened for wide discs) is an upper hull that spans every pit narrower than the disc;
       pixels more than ``pit_depth_mm`` below it, and invalid pixels inside the region, are
       marked to fill, and the marks grow by ``rim_mm`` so that the fill starts on the rims'
       crests rather than on the walls.
    3. Marked pixels get biharmonic inpainting (``skimage.restoration.inpaint_biharmonic``)
       from the unmarked ones: the smoothest (thin-plate-like) surface that continues the rims'
       heights and slopes, the way skin is stretched over an orbit or the aperture.

    Parameters
    ----------
    height : numpy.ndarray, shape (H, W), float, mm
        NaN where there is no surface.
    mm_per_px : float
        Pixel pitch, mm.
    radius_mm, pit_depth_mm, rim_mm : float
        Closing radius, pit depth threshold and rim growth, mm.
    region : numpy.ndarray, shape (H, W), bool, optional

    Returns
    -------
    bridged : numpy.ndarray, shape (H, W), float32, mm
        NaN outside ``region``.
    filled : numpy.ndarray, shape (H, W), bool
        The pixels that were inpainted.
    """
    from skimage.restoration import inpaint_biharmonic

    h = np.asarray(height, dtype=np.float64)
    valid = np.isfinite(h)
    if not valid.any():
        return h.astype(np.float32), np.zeros(h.shape, bool)
    r_px = radius_mm / mm_per_px
    if region is None:
        region = face_region(valid, r_px)
    region = np.asarray(region, bool)
    closed = disc_closing(h, r_px, valid, coarsen=True)
    with np.errstate(invalid="ignore"):
        pit = valid & (h < closed - pit_depth_mm)
    fill = ~valid | pit
    if rim_mm > 0 and fill.any():
        # Grow the marked pits up their walls to the rim: inpainting then continues the rim
        # crest, not the slope of the walls, which would make the bridge sag into the pit.
        fill = ndimage.binary_dilation(fill, structure=disc(rim_mm / mm_per_px))
    fill &= region
    if not fill.any():
        return np.where(region, h, np.nan).astype(np.float32), fill
    if not (region & ~fill).any():
        return np.full(h.shape, np.nan, np.float32), np.zeros(h.shape, bool)
    known = region & ~fill
    # Work on the region's bounding box; pixels outside the region get their nearest known
    # value so the inpainting stencil never reads NaN (they are blanked again afterwards).
    rows, cols = np.nonzero(region)
    box = (slice(max(rows.min() - 2, 0), rows.max() + 3), slice(max(cols.min() - 2, 0), cols.max() + 3))
    sub = extend_nearest(h[box], known[box])
    out = inpaint_biharmonic(sub, fill[box], split_into_regions=True)
    result = np.full(h.shape, np.nan)
    result[box] = out
    result = np.where(region, result, np.nan)
    return result.astype(np.float32), fill


__all__ = [
    "BRIDGE_RADIUS_MM",
    "DEFAULT_RADIUS_MM",
    "PIT_DEPTH_MM",
    "PIT_RIM_MM",
    "bridge_pits",
    "disc",
    "disc_closing",
    "extend_nearest",
    "face_region",
    "filled_height",
]
