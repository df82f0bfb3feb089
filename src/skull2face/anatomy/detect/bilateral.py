"""Paired landmarks (method step 4), in the working frame with nasion at the origin.

Skull (`_skull_pairs`): zygion, frontomalare temporale and gonion as extremes of the bone in
boxes placed relative to nasion with typical adult dimensions; dacryon from a front depth map.
Face (`_face_pairs`): endocanthion, alare and tragion from front or side depth maps
(`skull2face.geometry.depthmap.render`), soft-tissue zygion and gonion as extremes in boxes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ...geometry.depthmap import RenderSpec, render
from .work import _missing, _Result, _Work

# Boxes are in the working frame with nasion at the origin: (x_min, x_max) measured outward
# from the midline on each side, (y_min, y_max) up, (z_min, z_max) forward. Typical adult
# dimensions behind them: bizygomatic breadth 125-145 mm (Howells 1973; Farkas 1994 on the
# skin), the arch 18-42 mm below nasion and running from 35 to 80 mm behind it (its front
# and back ends, and the temporal bone above and behind it, are excluded: on the bundled
# cranium CT the vault 85 mm behind nasion is wider than the arch); bifrontal
# (frontomalare) breadth 95-110 mm, the lateral orbital rim 5-35 mm behind nasion; bigonial
# breadth 90-110 mm, gonion 25-35 mm above menton and 60-110 mm behind nasion; intercanthal
# width 28-34 mm and alar width 31-38 mm (Farkas 1994); tragion 75-110 mm behind nasion near
# the level of the nose.
_ZY_BOX = ((45.0, 85.0), (-42.0, -18.0), (-72.0, -35.0))
_ZY_SKIN_BOX = ((45.0, 95.0), (-40.0, -15.0), (-70.0, -40.0))
_FMT_BOX = ((35.0, 62.0), (-8.0, 15.0), (-35.0, -5.0))
# y relative to gnathion (skull) or menton (face); the inner x limit keeps out the cervical
# vertebrae (transverse processes of C2-C3 reach ~30 mm from the midline)
_GO_BOX = ((38.0, 75.0), (5.0, 50.0), (-115.0, -45.0))
_T_BOX = ((50.0, 110.0), (-65.0, 5.0), (-125.0, -55.0))
_DACRYON_DEPTH = 12.0  # dacryon lies ~10-15 mm behind nasion, on the medial orbital wall


def _in_box(pts: np.ndarray, side: float, box) -> np.ndarray:
    """Mask of points inside a side's box (x measured outward on that side)."""
    (x0, x1), (y0, y1), (z0, z1) = box
    sx = side * pts[:, 0]
    return (sx >= x0) & (sx <= x1) & (pts[:, 1] >= y0) & (pts[:, 1] <= y1) & (pts[:, 2] >= z0) & (pts[:, 2] <= z1)


def _extreme_vertex(work: _Work, side: float, box, direction: np.ndarray,
                    plateau: float = 0.0) -> np.ndarray | None:
    """The vertex inside a side's box that lies furthest along ``direction`` (its x part is
    taken outward on that side), lids excluded; None if the box holds no surface.

    With ``plateau`` > 0, all vertices within that many mm of the extreme count, and their
    area-free centroid, moved along ``direction`` onto the extreme's support plane, is
    returned: the side of the head is nearly flat, and its single most lateral vertex (or the
    vertex nearest the centroid) wanders over the flat patch by an edge length with every
    change of the frame or the tessellation; the centroid moves little. On a patch that
    flat the point lies within the plateau (<= ``plateau`` mm) of the surface.
    """
    v = work.verts
    sel = np.flatnonzero(_in_box(v, side, box))
    if len(sel):
        sel = sel[~work.on_lid(v[sel])]
    if not len(sel):
        return None
    d = np.array([side * direction[0], direction[1], direction[2]])
    proj = np.einsum("ij,j->i", v[sel], d)
    top = sel[proj >= proj.max() - plateau]
    if plateau <= 0.0:
        return v[top[0]].copy()
    centre = v[top].mean(axis=0)
    unit = d / np.linalg.norm(d)
    return centre + (proj.max() / np.linalg.norm(d) - centre @ unit) * unit


def _sided(base: str) -> tuple[str, str]:
    return f"{base}_L", f"{base}_R"


_SIDES = ((1.0, "L"), (-1.0, "R"))  # +x is the subject's left
_LATERAL = np.array([1.0, 0.0, 0.0])


def _pair_by_extreme(work: _Work, base: str, box, direction: np.ndarray, note: str,
                     confidence: str, why_missing: str, plateau: float = 0.0) -> dict[str, _Result]:
    out = {}
    for side, tag in _SIDES:
        p = _extreme_vertex(work, side, box, direction, plateau)
        out[f"{base}_{tag}"] = _Result(p, confidence, note) if p is not None else _missing(why_missing)
    return out


def _box_note(box) -> str:
    (x0, x1), (y0, y1), (z0, z1) = box
    return (f"{x0:.0f}-{x1:.0f} mm lateral, {y0:+.0f}..{y1:+.0f} mm above and {z0:+.0f}..{z1:+.0f} mm in "
            f"front of nasion")


def _view_map(work: _Work, rot: np.ndarray, centre: tuple[float, float], size: tuple[int, int]):
    """Depth map at 1 mm/px seen along -z of a rotated view of the working frame.

    Parameters
    ----------
    rot : numpy.ndarray, shape (3, 3)
        Rows are the view's x, y, z axes in working coordinates (the view looks along -z).
    centre : (float, float)
        View (x, y) of the map's centre, mm.

    Returns
    -------
    height : numpy.ndarray, shape (H, W)
        View z of the first hit; NaN where none.
    points : numpy.ndarray, shape (H, W, 3)
        Working-frame position of each pixel's hit (NaN where none).
    """
    view = np.eye(4)
    view[:3, :3] = rot
    view[:2, 3] = [-centre[0], -centre[1]]
    spec = RenderSpec(size, 1.0, view @ work.frame, z_near=-1e4, z_far=1e4)
    dm = render(work.mesh, spec)
    x, y = spec.xy_grid()
    h = dm.height.astype(np.float64)
    pts_view = np.stack([x + centre[0], y + centre[1], h], axis=-1)
    return h, np.einsum("...j,jk->...k", pts_view, rot)


_FRONT = np.eye(3)


def _skull_pairs(work: _Work, mid: dict[str, _Result]) -> dict[str, _Result]:
    """Zy, Fmt, Da, Go on both sides (working frame, nasion at the origin)."""
    out: dict[str, _Result] = {}
    out.update(_pair_by_extreme(
        work, "Zy", _ZY_BOX, _LATERAL, "most lateral bone of the zygomatic arch region (" + _box_note(_ZY_BOX)
        + "; centre of the bone within 1 mm of the most lateral)",
        "medium", "no bone where the zygomatic arch lies (" + _box_note(_ZY_BOX) + ")", plateau=1.0))
    out.update(_pair_by_extreme(
        work, "Fmt", _FMT_BOX, _LATERAL,
        "most lateral point of the lateral orbital rim at the fronto-zygomatic level (" + _box_note(_FMT_BOX)
        + "; centre of the bone within 1 mm of the most lateral)",
        "low", "no bone where the lateral orbital rim lies (" + _box_note(_FMT_BOX) + ")", plateau=1.0))
    out.update(_dacryon(work))
    gn = mid.get("Gn")
    if gn is None or not gn.found:
        why = "needs the mandible's chin (gnathion), which is missing: " + (gn.note if gn is not None else "")
        out.update({n: _missing(why) for n in _sided("Go")})
    else:
        (x0, x1), (y0, y1), (z0, z1) = _GO_BOX
        box = ((x0, x1), (gn.point[1] + y0, gn.point[1] + y1), (z0, z1))
        out.update(_pair_by_extreme(
            work, "Go", box, np.array([2.0, -1.0, -1.0]) / np.sqrt(6.0),
            "mandibular angle: the mandible point furthest out, down and back (lateral weighted double), "
            "5-50 mm above gnathion, 38-75 mm from the midline and 45-115 mm behind nasion", "medium",
            "no bone at the mandibular angle (cut off by the scan?)"))
    return out


def _dacryon(work: _Work) -> dict[str, _Result]:
    """Dacryon on the medial orbital wall: in the front depth map, rows 2-10 mm below
    nasion, the first point out from the midline where the bone lies 12 mm behind nasion
    (the medial wall is nearly parallel to the view, so that x is sharp); the landmark is
    the mesh vertex nearest to that point at that depth."""
    h, pts = _view_map(work, _FRONT, (0.0, -6.0), (9, 61))
    out = {}
    xs = pts[..., 0]
    for side, tag in _SIDES:
        targets = []
        for r in range(h.shape[0]):
            cols = np.flatnonzero((side * xs[r] >= 4.0) & (side * xs[r] <= 25.0))
            cols = cols[np.argsort(side * xs[r, cols])]
            deep = np.flatnonzero(~(h[r, cols] > -_DACRYON_DEPTH))
            if len(deep) and deep[0] > 0:
                targets.append([xs[r, cols[deep[0]]], pts[r, cols[0], 1], -_DACRYON_DEPTH])
        if not targets:
            out[f"Da_{tag}"] = _missing("no medial orbital wall found beside the nasal root")
            continue
        target = np.median(np.asarray(targets), axis=0)
        v = work.verts
        near = np.flatnonzero(np.all(np.abs(v - target) <= 6.0, axis=1))
        if not len(near):
            out[f"Da_{tag}"] = _missing("no medial orbital wall found beside the nasal root")
            continue
        p = v[near[np.argmin(np.linalg.norm(v[near] - target, axis=1))]].copy()
        out[f"Da_{tag}"] = _Result(p, "low", f"medial orbital wall 2-10 mm below nasion, where the bone first lies "
                                             f"{_DACRYON_DEPTH:.0f} mm behind nasion going out from the midline")
    return out


def _face_pairs(work: _Work, mid: dict[str, _Result]) -> dict[str, _Result]:
    """en, al, t, zy', go' on both sides (working frame, nasion at the origin)."""
    out: dict[str, _Result] = {}
    out.update(_endocanthion(work))
    out.update(_alare(work, mid))
    out.update(_tragion(work))
    out.update(_zygion_skin(work, out))
    me = mid.get("me")
    if me is None or not me.found:
        why = "needs menton, which is missing: " + (me.note if me is not None else "")
        out.update({n: _missing(why) for n in _sided("go'")})
    else:
        (x0, x1), (y0, y1), (z0, z1) = _GO_BOX
        box = ((x0 + 5.0, x1 + 15.0), (me.point[1] + y0 + 5.0, me.point[1] + y1 - 5.0), (z0, z1))
        out.update(_pair_by_extreme(
            work, "go'", box, _LATERAL,
            "most lateral point of the jawline 10-45 mm above menton, 43-90 mm from the midline and "
            "45-115 mm behind nasion", "low",
            "no surface at the jaw angle (cut off by the scan?)", plateau=1.0))
    return out


def _endocanthion(work: _Work) -> dict[str, _Result]:
    """Inner eye corners. Going out from the nasal root in a front depth map, the surface
    falls down the side of the nose and turns onto the eye; the turn (largest second
    derivative across x, 8-24 mm from the midline) is the eye-nose corner of each row, and
    endocanthion is the deepest such corner between 22 mm below and 2 mm above nasion."""
    h, pts = _view_map(work, _FRONT, (0.0, -10.0), (31, 61))
    if not np.isfinite(h).any():
        return {n: _missing("no surface beside the nasal root") for n in _sided("en")}
    smooth = ndimage.gaussian_filter(np.where(np.isfinite(h), h, np.nanmin(h)), 1.5)
    bend = np.gradient(np.gradient(smooth, axis=1), axis=1)
    xs, ys = pts[..., 0], pts[..., 1]
    out = {}
    for side, tag in _SIDES:
        best = None
        for r in np.flatnonzero((ys[:, 0] >= -22.0) & (ys[:, 0] <= 2.0)):
            cols = np.flatnonzero((side * xs[r] >= 8.0) & (side * xs[r] <= 24.0) & np.isfinite(h[r]))
            if not len(cols):
                continue
            c = cols[np.argmax(bend[r, cols])]
            if bend[r, c] > 0.05 and (best is None or h[r, c] < h[best]):
                best = (r, c)
        out[f"en_{tag}"] = (_Result(pts[best].copy(), "low", "deepest corner between the side of the nose and "
                                                             "the eye (largest bend of the front depth map across x)")
                            if best is not None else _missing("no corner between nose and eye found"))
    return out


def _alare(work: _Work, mid: dict[str, _Result]) -> dict[str, _Result]:
    """Alae: in the rows between subnasale and the nose tip, the nose's side wall is where
    the surface falls away outward most steeply; alare is that wall's most lateral point."""
    prn, sn = mid.get("prn"), mid.get("sn")
    if prn is None or not prn.found:
        return {n: _missing("needs the nose tip") for n in _sided("al")}
    y_hi = prn.point[1] + 2.0
    y_lo = sn.point[1] - 2.0 if (sn is not None and sn.found) else prn.point[1] - 20.0
    rows = int(np.ceil(y_hi - y_lo)) + 1
    h, pts = _view_map(work, _FRONT, (0.0, (y_lo + y_hi) / 2.0), (rows, 71))
    smooth = ndimage.gaussian_filter1d(np.where(np.isfinite(h), h, np.nanmin(h)), 1.0, axis=1)
    slope = np.gradient(smooth, axis=1)  # dz/dx per mm (columns run along +x)
    xs = pts[..., 0]
    out = {}
    for side, tag in _SIDES:
        best = None
        for r in range(rows):
            cols = np.flatnonzero((side * xs[r] >= 8.0) & (side * xs[r] <= 28.0) & np.isfinite(h[r]))
            if not len(cols):
                continue
            c = cols[np.argmax(-side * slope[r, cols])]  # steepest fall going outward
            if -side * slope[r, c] < 1.0:  # flatter than 45 degrees: no alar wall in this row
                continue
            if best is None or side * xs[r, c] > side * best[0]:
                best = pts[r, c].copy()
        out[f"al_{tag}"] = (_Result(best, "medium", "most lateral point of the alar wall (steepest outward fall "
                                                    "of the front depth map, rows from subnasale to the nose tip)")
                            if best is not None else _missing("no alar wall found beside the nose"))
    return out


def _tragion(work: _Work) -> dict[str, _Result]:
    """Tragion: the auricle is the blob standing > 4 mm out of a side view of the head
    (white top-hat under a 30 mm disc); tragion is the blob's most anterior point in the
    middle third of its height, where the tragus meets the face."""
    out = {}
    (x0, x1), (y0, y1), (z0, z1) = _T_BOX
    for side, tag in _SIDES:
        # view from the side: view z = outward x, view y = up, view x = y cross z
        rot = np.array([[0.0, 0.0, -side], [0.0, 1.0, 0.0], [side, 0.0, 0.0]])
        centre = (-side * (z0 + z1) / 2.0, (y0 + y1) / 2.0)
        h, pts = _view_map(work, rot, centre, (int(y1 - y0) + 1, int(z1 - z0) + 1))
        ok = np.isfinite(h) & (h >= x0) & (h <= x1)
        if ok.sum() < 100:
            out[f"t_{tag}"] = _missing("no surface at the side of the head where the ear lies")
            continue
        filled = np.where(ok, h, np.nanmin(np.where(ok, h, np.nan)) - 30.0)
        r = np.arange(-15, 16)
        disc = r[:, None] ** 2 + r[None, :] ** 2 <= 15 ** 2
        proud = ok & (filled - ndimage.grey_opening(filled, footprint=disc) > 4.0)
        labels, n = ndimage.label(proud)
        if n == 0:
            out[f"t_{tag}"] = _missing("no ear found at the side of the head")
            continue
        sizes = np.bincount(labels.ravel())[1:]
        ear = labels == (np.argmax(sizes) + 1)
        if sizes.max() < 150:  # an auricle is ~60 x 30 mm
            out[f"t_{tag}"] = _missing("no ear found at the side of the head")
            continue
        ys, zs = pts[..., 1], pts[..., 2]
        top, bottom = ys[ear].max(), ys[ear].min()
        band = ear & (ys >= bottom + (top - bottom) / 3.0) & (ys <= top - (top - bottom) / 3.0)
        cand = np.argwhere(band)
        best = cand[np.argmax(zs[band])]
        out[f"t_{tag}"] = _Result(pts[best[0], best[1]].copy(), "low",
                                  "front edge of the ear (the blob standing out of the side of the head) in the "
                                  "middle third of its height")
    return out


def _arch_height(found: dict[str, _Result], tag: str, z: float) -> float | None:
    """Height (working y) of the zygomatic arch at depth ``z`` on one side of a face.

    The arch runs along the Frankfurt plane, from orbitale (about 10 mm below and behind
    the inner eye corner) back to the ear canal (about tragion's height), so its height is
    interpolated between the two; without a plausible tragion it is taken midway between
    the inner eye corner and the ala, which the bundled CTs' bony zygia match within 5 mm.
    """
    en, t, al = (found.get(f"{b}_{tag}") for b in ("en", "t", "al"))
    if en is None or not en.found:
        return None
    orb = en.point + np.array([0.0, -10.0, -10.0])
    if t is not None and t.found and orb[1] - 30.0 <= t.point[1] <= orb[1] + 15.0 and t.point[2] < z < orb[2]:
        f = (z - orb[2]) / (t.point[2] - orb[2])
        return float(orb[1] + f * (t.point[1] - orb[1]))
    if al is not None and al.found:
        return float((en.point[1] + al.point[1]) / 2.0)
    return None


def _zygion_skin(work: _Work, found: dict[str, _Result]) -> dict[str, _Result]:
    """Soft-tissue zygion: the most lateral cheek point over the zygomatic arch.

    The cheek is widest lower down (masseter, buccal fat) and the ear further back, so the
    search is held to +-10 mm of the arch's height (`_arch_height`) and kept in front of
    the ear (70 mm behind nasion; tragion lies 75-100 mm behind it on the bundled CTs).
    """
    out = {}
    (x0, x1), (y0, y1), (z0, z1) = _ZY_SKIN_BOX
    for side, tag in _SIDES:
        yc = _arch_height(found, tag, (z0 + z1) / 2.0)
        box = ((x0, x1), (y0, y1), (z0, z1)) if yc is None else ((x0, x1), (yc - 10.0, yc + 10.0), (z0, z1))
        p = _extreme_vertex(work, side, box, _LATERAL, plateau=1.0)
        how = "at the height of the arch between the eye and the ear" if yc is not None else "default box"
        out[f"zy'_{tag}"] = (_Result(p, "medium", "most lateral cheek point over the zygomatic arch ("
                                     + _box_note(box) + f", {how}; centre of the skin within 1 mm of the "
                                     "most lateral)") if p is not None
                             else _missing("no surface where the cheek over the zygomatic arch lies"))
    return out

