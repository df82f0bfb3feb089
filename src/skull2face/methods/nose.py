"""The rule-based nose of the tissue-depth method: aperture width and a schematic nose.

The bony skull has no nose; the tissue-depth method (`skull2face.methods.tissue_depth`) adds
one from simple aperture-based rules (`NoseRule`): `measure_aperture_width` measures the bony
nasal aperture on the skull map and `add_nose` raises the nose on the bridged face map.

All heights are float32 head-frame z in mm (NaN off the surface); all lengths are mm.
Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from ..geometry.depthmap import DepthMap, RenderSpec
from ..geometry.fill import BRIDGE_RADIUS_MM, disc_closing, extend_nearest, face_region


@dataclass(frozen=True)
class NoseRule:
    """Schematic nose added to the tissue-depth face (all lengths mm, head frame).

    The bony skull has no nose, and the tissue-depth method itself says nothing about it; the
    classic practice adds one from aperture-based rules. We use two simple, widely taught ones:

    * width: the nose is about 10 mm wider than the bony nasal aperture (the alae reach ~5 mm
      beyond each side of the aperture: the rule of thumb of the American method, e.g.
      Krogman & Iscan 1986; Rynn, Wilkinson & Peters 2010 refine it by regression);
    * projection: the pronasale lies ``tip_protrusion_mm`` in front of the subnasale
      (anthropometric "nasal tip protrusion" sn-prn, about 19-21 mm in adults, Farkas 1994).
      We put the pronasale at the height of nasospinale (frontal view), ``tip_protrusion_mm``
      in front of the bridged tissue-depth surface there, and subnasale ``columella_mm``
      below it on that surface.

    Krogman's projection rule (mid-philtrum depth + 3 x nasal-spine length) is not used: the
    nasal spine is a thin process that CT bone thresholds rarely keep whole, and Stephan,
    Henneberg & Sampson (2003, Am J Phys Anthropol 122:240-250) found that rule to perform
    poorly. The shape in between (a straight dorsum from skin nasion to the tip, a rounded tip
    lobe and two alar lobes) is schematic, not a published rule.

    Parameters
    ----------
    enabled : bool
        Add the nose at all.
    tip_protrusion_mm : float
        Pronasale in front of subnasale, along head +z.
    columella_mm : float
        How far below the pronasale (head -y) the nose meets the lip at subnasale.
    width_over_aperture_mm : float
        Nose width minus bony aperture width.
    default_aperture_width_mm : float
        Used when the aperture cannot be measured on the skull map (adult piriform aperture
        breadth is ~22-26 mm).
    root_half_width_mm, tip_half_width_mm : float
        Half-widths (to zero height) of the dorsum lobe's cos^2 profile at nasion and at the
        tip; the full width at half height is one half-width.
    alar_height_fraction : float
        Height of the alar lobes above the cheek, as a fraction of the tip's projection; their
        half-width (to zero) is half the nose width plus 5 mm.
    """

    enabled: bool = True
    tip_protrusion_mm: float = 20.0
    columella_mm: float = 6.0
    width_over_aperture_mm: float = 10.0
    default_aperture_width_mm: float = 24.0
    root_half_width_mm: float = 8.0
    tip_half_width_mm: float = 15.0
    alar_height_fraction: float = 0.4



def measure_aperture_width(skull_map: DepthMap, nasion_head: Any, ns_head: Any,
                           radius_mm: float = BRIDGE_RADIUS_MM, pit_depth_mm: float = 5.0) -> float | None:
    """Width (mm) of the bony nasal aperture on a skull depth map, or None if not found.

    The aperture is the pit (holes, or > ``pit_depth_mm`` below the disc closing) that
    contains the midline point 8 mm above nasospinale; its width is the widest horizontal run
    of that pit through the midline, between nasospinale and 10 mm below nasion.

    Parameters
    ----------
    skull_map : DepthMap
    nasion_head, ns_head : array_like, shape (3,), mm
        Nasion and nasospinale in the head frame.
    radius_mm, pit_depth_mm : float
        As in `skull2face.geometry.fill.bridge_pits`.

    Returns
    -------
    float or None
        mm; None when the pit is missing or its width is implausible (outside 12-40 mm).
    """
    spec = skull_map.spec
    s = spec.mm_per_px
    h = skull_map.height.astype(np.float64)
    valid = skull_map.mask
    if not valid.any():
        return None
    closed = disc_closing(h, radius_mm / s, valid, coarsen=True)
    region = face_region(valid, radius_mm / s)
    with np.errstate(invalid="ignore"):
        pit = region & (~valid | (h < closed - pit_depth_mm))
    n = np.asarray(nasion_head, dtype=np.float64)
    ns = np.asarray(ns_head, dtype=np.float64)
    seed = spec.head_to_pixel([ns[0], ns[1] + 8.0])
    r0, c0 = round(float(seed[0])), round(float(seed[1]))
    hh, ww = spec.size
    if not (0 <= r0 < hh and 0 <= c0 < ww) or not pit[r0, c0]:
        return None
    labels, _ = ndimage.label(pit)
    comp = labels == labels[r0, c0]
    top = spec.head_to_pixel([n[0], n[1] - 10.0])[0]
    bottom = spec.head_to_pixel([ns[0], ns[1]])[0]
    best = 0
    for r in range(max(math.ceil(top), 0), min(math.floor(bottom), hh - 1) + 1):
        row = comp[r]
        if not row[c0]:
            continue
        # The contiguous run through the midline column.
        left = c0
        while left > 0 and row[left - 1]:
            left -= 1
        right = c0
        while right < ww - 1 and row[right + 1]:
            right += 1
        best = max(best, right - left + 1)
    width = best * s
    return width if 12.0 <= width <= 40.0 else None


def _cos2(u: np.ndarray) -> np.ndarray:
    """Smooth bump profile: cos^2(pi u / 2) for |u| < 1, else 0 (C1 at the ends)."""
    u = np.abs(u)
    return np.where(u < 1.0, np.cos(0.5 * np.pi * np.minimum(u, 1.0)) ** 2, 0.0)


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def add_nose(face: np.ndarray, spec: RenderSpec, nasion_head: Any, ns_head: Any, aperture_width_mm: float,
             rule: NoseRule = NoseRule()) -> tuple[np.ndarray, dict]:
    """Add the schematic nose of `NoseRule` to a bridged face height map.

    The nose is a height bump on top of the bridged surface E (which already spans the
    aperture). With x0, y_ns the nasospinale's head-frame x and y and y_n the nasion's:

    * pronasale at ``(x0, y_ns, E(x0, y_ns) + tip_protrusion)``;
    * dorsum lobe: a straight dorsum from the surface at skin nasion ``(x0, y_n)`` to the
      pronasale, falling smoothly to the surface at subnasale ``y_ns - columella``; across,
      a cos^2 profile whose half-width grows from ``root_half_width`` to ``tip_half_width``;
    * alar lobes: a cos^2 bump ``(aperture + width_over_aperture) / 2 + 5`` mm in
      half-width, ``alar_height_fraction`` x the tip protrusion high at the tip's level,
      fading out 15 mm above it and at subnasale below it;
    * the two lobes are combined by their maximum.

    Parameters
    ----------
    face : numpy.ndarray, shape (H, W), float, mm
        Bridged face heights (NaN off the face).
    spec : RenderSpec
    nasion_head, ns_head : array_like, shape (3,), mm
        Bony nasion and nasospinale in the head frame.
    aperture_width_mm : float
        Width of the bony nasal aperture.
    rule : NoseRule

    Returns
    -------
    face : numpy.ndarray, shape (H, W), float32, mm
        NaN where ``face`` is NaN.
    info : dict
        JSON-ready: whether it was added (and why not), the nose's width, the aperture width,
        the pronasale (head frame, mm).
    """
    h = np.asarray(face, dtype=np.float64)
    valid = np.isfinite(h)
    x0 = float(np.asarray(ns_head, dtype=np.float64)[0])
    y_n = float(np.asarray(nasion_head, dtype=np.float64)[1])
    y_prn = float(np.asarray(ns_head, dtype=np.float64)[1])
    y_sn = y_prn - rule.columella_mm
    if not (y_n - y_prn > 10.0):
        return h.astype(np.float32), {"added": False, "why": "nasion is not >10 mm above nasospinale"}
    base = extend_nearest(h, valid)

    def surface_at(xq: float, yq: float) -> float:
        rc = spec.head_to_pixel([xq, yq])
        return float(ndimage.map_coordinates(base, [[rc[0]], [rc[1]]], order=1, mode="nearest")[0])

    x, y = spec.xy_grid()
    z_prn = surface_at(x0, y_prn) + rule.tip_protrusion_mm
    z_root = surface_at(x0, y_n)
    # Along the nose, s runs 0 (nasion) -> 1 (pronasale); the dorsum is straight in between.
    s = np.clip((y_n - y) / (y_n - y_prn), 0.0, 1.0)
    ridge = z_root + s * (z_prn - z_root) - base
    # Below the tip the columella falls to subnasale.
    fall = _smoothstep((y - y_sn) / rule.columella_mm)
    ridge = np.where(y < y_prn, (z_prn - base) * fall, ridge)
    ridge = np.where((y > y_n) | (y < y_sn), 0.0, np.maximum(ridge, 0.0))
    half = rule.root_half_width_mm + s * (rule.tip_half_width_mm - rule.root_half_width_mm)
    dorsum = ridge * _cos2((x - x0) / half)

    width = float(aperture_width_mm) + rule.width_over_aperture_mm
    along = np.where(y >= y_prn, (y - y_prn) / 15.0, (y_prn - y) / rule.columella_mm)
    alar = rule.alar_height_fraction * rule.tip_protrusion_mm \
        * _cos2((x - x0) / (0.5 * width + 5.0)) * _cos2(along)
    out = np.where(valid, h + np.maximum(dorsum, alar), np.nan)
    info = {"added": True, "width_mm": round(width, 2), "aperture_width_mm": round(float(aperture_width_mm), 2),
            "pronasale_head": [round(x0, 2), round(y_prn, 2), round(z_prn, 2)]}
    return out.astype(np.float32), info


__all__ = ["NoseRule", "add_nose", "measure_aperture_width"]
