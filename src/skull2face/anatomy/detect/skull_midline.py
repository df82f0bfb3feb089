"""Skull midline rules: nasion, glabella, nasospinale, prosthion, pogonion, gnathion
(`_skull_midline`), found on the midline profile (`.profile`) of the working frame.

The nasal aperture (`_aperture`) orients everything: nasospinale is its lower end, nasion the
deepest notch above its nasal bones, held to the height of the upper orbital margins
(`_supraorbital_point`); prosthion lies above the end of the upper teeth (`_upper_teeth_end`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...geometry.frame import apply
from .midline import _CHIN_BELOW_N, _chin, _nasion_and_glabella, _use_given
from .profile import _dents, _found, _Profile, _runs, _STEP
from .work import _front_map, _missing, _Result, _Work

# Typical adult midline dimensions (mm) that place the search windows, generous on purpose:
# nasal bones (nasion-rhinion) 20-25 mm long (Martin & Saller); nasal aperture 30-35 mm high;
# nasospinale-prosthion (upper alveolar height) 15-20 mm; maxillary central incisor crown
# 10.5 mm (Wheeler's Dental Anatomy) with the alveolar crest about 1 mm above its cervical
# line. (Glabella and the chin: see `.midline`.)
_APERTURE_DEPTH = 8.0       # the aperture is a hole or a hollow this deep behind the hull
_APERTURE_MIN_AREA = 150.0  # mm^2 of hollow (a 30 mm x 15 mm aperture has ~450)
_NASAL_BONES = (3.0, 40.0)  # nasion lies this far above the top of the aperture
_N_BELOW_ORBIT_TOP = (-3.0, 15.0)  # nasion lies this far below the supraorbital margins
_DENTAL_MAX = 45.0          # upper incisal edge at most this far below nasospinale
_INCISAL_STEP = 4.0         # a step back of the outline this large ends the upper teeth
_CROWN_TO_PR = 11.0         # prosthion lies this far above the incisal edge...
_NS_TO_PR_MIN = 15.0        # ...but never closer than this below nasospinale


def _aperture(prof: _Profile) -> tuple[int, int] | None:
    """Samples just above (rhinion side) and just below (nasospinale side) the nasal aperture.

    The aperture is the highest hollow of the outline that is at least `_APERTURE_DEPTH`
    deep (or a hole, where the midline has no bone) over at least `_APERTURE_MIN_AREA`: from
    the vertex down, the profile is convex except for the shallow nasion notch, so the first
    deep hollow is the aperture, whatever lies lower (mouth, the neck behind the chin).
    """
    dent = _dents(prof)
    deep = np.nan_to_num(dent, nan=0.0) > _APERTURE_DEPTH
    valid = np.isfinite(prof.z)
    solid = valid & ~deep
    near_lid = ndimage.binary_dilation(prof.lid_row, iterations=int(5.0 / _STEP))
    for first, last in reversed(_runs(deep)):
        area = float(np.minimum(dent[first:last + 1], 40.0).sum() * _STEP)
        above = np.flatnonzero(valid[last + 1:])
        below = np.flatnonzero(valid[:first])
        if area < _APERTURE_MIN_AREA or not len(above) or not len(below):
            continue
        # a hollow next to a scan cut is the cut's doing (rays passing over a cut bone
        # reach the far side of the skull), and the aperture has the nasal bones above it
        if near_lid[first:last + 1].any():
            continue
        if solid[last + 1:last + 1 + int(25.0 / _STEP)].sum() * _STEP < 10.0:
            continue
        return int(below[-1]), int(last + 1 + above[0])
    return None


def _upper_teeth_end(prof: _Profile, k_ns: int) -> tuple[int | None, str]:
    """Lowest sample of the upper dentition below nasospinale, and how it ends.

    Walking down from nasospinale the outline follows the alveolar process and the incisor
    crowns until (a) it steps back by `_INCISAL_STEP` (the incisal edge over the lower teeth
    or an open mouth), (b) the midline runs out of bone (no mandible), or (c) a lid (the scan
    ended). Returns (index or None, one of "step", "end", "cut", "none").
    """
    y_stop = prof.y[k_ns] - _DENTAL_MAX
    k = k_ns
    while k > 0 and prof.y[k - 1] >= y_stop:
        if prof.near_lid(prof.y[k], prof.z[k], 3.0):
            return None, "cut"
        if not np.isfinite(prof.z[k - 1]) or prof.z[k - 1] < prof.z[k] - _INCISAL_STEP:
            # an end that a lid lies just under is the scan's end, not the teeth's
            if prof.near_lid(prof.y[k] - 4.0, prof.z[k], 8.0):
                return None, "cut"
            rest = np.isfinite(prof.z[:k - 1]) & (prof.y[:k - 1] >= prof.y[k_ns] - _CHIN_BELOW_N)
            return k, ("step" if rest.any() or np.isfinite(prof.z[k - 1]) else "end")
        k -= 1
    if k == 0 and prof.y[0] >= y_stop:
        # the outline itself ends: the lowest bone of the mesh is the upper teeth
        if prof.near_lid(prof.y[0] - 4.0, prof.z[0], 8.0):
            return None, "cut"
        return 0, "end"
    return None, "none"



def _hollows(h: np.ndarray, radius_px: int) -> np.ndarray:
    """How deep (mm) each pixel of a depth map lies below a disc of ``radius_px`` pixels
    rolled over the surface from the front (a morphological closing); 0 on background."""
    filled = np.where(np.isfinite(h), h, np.nanmin(h) - 50.0)
    r = np.arange(-radius_px, radius_px + 1)
    disc = r[:, None] ** 2 + r[None, :] ** 2 <= radius_px ** 2
    depth = ndimage.grey_closing(filled, footprint=disc) - filled
    return np.where(np.isfinite(h), depth, 0.0)


def _supraorbital_point(work: _Work, rhinion: np.ndarray) -> np.ndarray | None:
    """A working-frame point at the height of the upper orbital margins, or None.

    Each orbit is the deep hollow beside the nose in a front depth map (> 10 mm below a
    24 mm disc rolled over the bone, within 12-40 mm of the midline); its margin is the
    hollow's top. The lower of the two sides is kept, so that a hole in the thin frontal
    bone over one orbit does not lift it.
    """
    h, x, y = _front_map(work, (0.0, rhinion[1] + 30.0), (81, 101))
    if not np.isfinite(h).any():
        return None
    deep = _hollows(h, 12) > 10.0
    tops = []
    for side in (-1.0, 1.0):
        labels, n = ndimage.label(deep & (side * x >= 12.0) & (side * x <= 40.0))
        sizes = np.bincount(labels.ravel())[1:]
        big = np.flatnonzero(sizes >= 60) + 1
        # an orbit opening is ~35 x 40 mm: a few hundred pixels in all
        if sizes[big - 1].sum() < 150 if len(big) else True:
            return None
        tops.append(y[np.isin(labels, big)].max())
    return np.array([0.0, min(tops), rhinion[2]])


def _skull_midline(prof: _Profile, given: dict[str, np.ndarray], work: _Work) -> dict[str, _Result]:
    """N, G, Ns, Pr, Pog, Gn on the midline outline of a skull (working frame).

    * Ns: the lower end of the nasal aperture (`_aperture`), i.e. the first bone below it.
    * N: the deepest notch (chord over +-8 mm of arc) between the top of the aperture and
      40 mm above it, held to the height of the upper orbits (`_supraorbital_point`).
    * G: the most prominent point 3-30 mm above N (`_glabella`).
    * Pr: stated heuristic: walking down from Ns, the upper dentition ends where the outline
      steps back >= 4 mm or stops (`_upper_teeth_end`); Pr lies 11 mm above that incisal
      edge (crown 10.5 mm + ~1 mm to the alveolar crest), less when the dentition is short
      (no crowns), never closer than 15 mm below Ns. Missing when a lid cuts the dentition.
    * Pog, Gn: on the chin below the teeth (`_chin`).
    """
    res: dict[str, _Result] = {}
    ap = _aperture(prof)
    if ap is None:
        why = "no nasal aperture found on the midline outline, so the face could not be oriented"
        return {n: _missing(why) for n in ("N", "G", "Ns", "Pr", "Pog", "Gn")}
    k_ns, k_rhi = ap

    # Nasion: the deepest notch of the outline above the nasal bones, at the level of the
    # upper orbits (3 mm above to 15 mm below the supraorbital margins): thin nasal bones lost
    # at CT resolution leave a false notch lower down, at the stump of the nasal bridge
    lo, hi = prof.y[k_rhi] + _NASAL_BONES[0], prof.y[k_rhi] + _NASAL_BONES[1]
    # found once, in the first (coarse, most frontal) view, then carried along
    if work.orbit_top is None:
        top = _supraorbital_point(work, prof.point(k_rhi))
        work.orbit_top = False if top is None else work.to_input(top)
    sup = None if work.orbit_top is False else float(apply(work.frame, work.orbit_top)[1])
    # orbits whose top is not 10-45 mm above the aperture are something else
    if sup is not None and 10.0 <= sup - prof.y[k_rhi] <= 45.0:
        lo, hi = max(lo, sup - _N_BELOW_ORBIT_TOP[1]), min(hi, sup - _N_BELOW_ORBIT_TOP[0])
    res.update(_nasion_and_glabella(prof, prof.span(lo, hi), given, ("N", "G"), 8.0, (1.5, 0.3),
                                    "above the nasal bones", "no midline outline above the nasal aperture"))

    res["Ns"] = _found(prof, k_ns, "medium", "lower end of the nasal aperture on the midline outline")
    _use_given(res, "Ns", given)

    k_tip, how = _upper_teeth_end(prof, k_ns)
    if how == "cut":
        res["Pr"] = _missing("the scan ends in the alveolar process, above the incisal edges, so the "
                             "alveolar margin between the upper incisors cannot be told from the cut")
    elif k_tip is None:
        k = prof.index(prof.y[k_ns] - (_NS_TO_PR_MIN + 3.0))
        ks = prof.span(prof.y[k] - 1.0, prof.y[k] + 1.0)
        res["Pr"] = (_found(prof, int(ks[0]), "low", "no incisal edge found: placed 18 mm below nasospinale "
                            "(mean nasospinale-prosthion height)") if len(ks)
                     else _missing("no midline bone below nasospinale"))
    else:
        ns_to_tip = prof.y[k_ns] - prof.y[k_tip]
        # with crowns present the alveolar margin is ~11 mm above the incisal edge; a short
        # dentition (< 15 mm below Ns) has no crowns left, and its lowest point is the margin
        above = float(np.clip(ns_to_tip - _NS_TO_PR_MIN, 0.0, _CROWN_TO_PR))
        k = prof.index(prof.y[k_tip] + above)
        ks = prof.span(prof.y[k] - 1.0, prof.y[k] + 1.0)
        k = int(ks[np.argmin(np.abs(ks - k))]) if len(ks) else k_tip
        res["Pr"] = _found(prof, k, "low",
                           f"{above:.0f} mm above the lowest point of the upper teeth on the midline "
                           f"(incisal edge, {ns_to_tip:.0f} mm below Ns; crown ~10.5 mm)")
    _use_given(res, "Pr", given)

    res.update(_chin(prof, res, given, surface="skull",
                     top=(prof.y[k_tip] - 3.0) if k_tip is not None else prof.y[k_ns] - 30.0))
    return res
