"""Classic baselines for facial approximation, each giving a face depth map in the skull's render spec.

Every method returns a `DepthMap` on the SAME pixel grid and with the SAME render spec (size,
pitch, centre, depth range and input -> head ``frame``) as the skull map it is asked about, so
its output goes through the same `depth_to_mesh` and the same evaluation as the network's.

``tissue-depth`` (`tissue_depth_face`)
    The "American" tissue-depth method (Gatliff 1984; Krogman & Iscan 1986), automated: the published mean soft-tissue thickness at each skull landmark (Hona & Stephan
    2024, via `skull2face.anatomy.tissue.thickness_for`) is interpolated over the skull
    surface, every skull vertex moves out along its smoothed outward normal by that thickness,
    the moved surface is rendered, and the orbits and the nasal aperture (holes and deep pits
    in an offset bone surface) are bridged by biharmonic inpainting. A schematic nose is then
    added from simple rules (see `NoseRule`). It needs the skull mesh and its landmarks.
``mean-face`` (`mean_face`, `mean_face_for`)
    The mean training face in the head frame, put on the target skull's head frame.
``nearest-skull`` (`nearest_skull_face`)
    The face of the training pair whose skull map is nearest to the target's.

`METHODS` and `predict_face_map` call any of them by name with one set of keyword arguments.

All heights are float32 head-frame z in mm (NaN off the surface); all lengths are mm. The
module is torch-free.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import trimesh
from scipy import ndimage, sparse

from ..anatomy.tissue import load_table, thickness_for
from ..geometry.depthmap import DepthMap, RenderSpec, load_depthmap, render
from ..geometry.frame import apply

# ----------------------------------------------------------------------------- constants

# Head-frame point taken as the head's centre when orienting bone normals outward: about 80 mm
# behind nasion and 10 mm below it, i.e. near the middle of the cranial cavity of an adult
# (glabella-opisthocranion length ~180-190 mm). dataset/build.py uses the same point for its
# landmark targets, so both agree on what "outward" means.
HEAD_CENTRE = (0.0, -10.0, -80.0)

# Inverse-distance interpolation of thickness: weight (d^2 + IDW_SOFTENING_MM^2)^(-p/2) per
# site, p = IDW_POWER (Shepard's classic 2). The softening keeps the weight finite on the site
# itself (1 mm is below the landmarks' placement error, so the field still passes within a
# hair of each published value). Powers 3 and 4 changed the headsq distance by < 0.05 mm.
IDW_SOFTENING_MM = 1.0
IDW_POWER = 2.0
# The default thickness counts as one extra site at this distance from every point: within
# ~20 mm of a landmark the landmark dominates (weight ratio >= 4), at 40 mm they weigh equally,
# and far away (cranial vault, back of the head) the default takes over.
DEFAULT_SITE_DISTANCE_MM = 40.0

# Normal smoothing: iterations of neighbour averaging over the mesh's edge graph. On CT meshes
# (edges ~1-2 mm) 15 iterations average over ~5-8 mm, which removes voxel staircase and the
# small crests that would make the offset surface fold; the orbit and aperture walls still
# fold, but those are bridged afterwards.
NORMAL_SMOOTHING_ITERATIONS = 15

# Bridging (see `bridge_pits`): a pixel is part of a pit when it lies more than PIT_DEPTH_MM
# below the morphological closing of the map with a disc of BRIDGE_RADIUS_MM. An orbit is
# ~35-40 mm wide and the nasal aperture ~25 mm, so a 17.5 mm radius (35 mm disc) spans the
# aperture and most of an orbit's depth; 3 mm is deeper than the skin's own hollows at this
# scale (alar groove, mentolabial sulcus on an offset bone ~1-2 mm below the closing).
BRIDGE_RADIUS_MM = 17.5
PIT_DEPTH_MM = 3.0
# The marked pits grow by this much (mm) so that the bridge starts on the rims' crests.
PIT_RIM_MM = 2.0
# Light smoothing of the final map (Gaussian sigma, mm): removes the CT voxel staircase that
# the offset surface inherits from the bone; skin does not show it.
SMOOTH_SIGMA_MM = 1.0
# How far below the jaw line (Go-Gn-Go) the face may reach: the tissue under the mandible's
# border (~7-8 mm at gnathion, Hona & Stephan 2024) plus a few mm of slack.
JAW_MARGIN_MM = 12.0


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


# ----------------------------------------------------------------------------- helpers


def _with_info(dm: DepthMap, info: dict) -> DepthMap:
    # Callers that only keep the returned map still find the method's record on it.
    dm.info = info
    return dm


def _disc(radius_px: float) -> np.ndarray:
    r = max(math.floor(radius_px), 1)
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (xx * xx + yy * yy) <= radius_px * radius_px + 1e-9


def _landmark_points(landmarks: Any) -> dict[str, np.ndarray]:
    """name -> finite (3,) float64 point, from a dict or a LandmarkSet (``.points``)."""
    points = getattr(landmarks, "points", landmarks)
    if points is None:
        return {}
    out = {}
    for name, p in dict(points).items():
        a = np.asarray(p, dtype=np.float64).reshape(-1)
        if a.shape == (3,) and np.all(np.isfinite(a)):
            out[str(name)] = a
    return out


def default_thickness_mm(table=None) -> float:
    """The fallback thickness far from every landmark: the median of the table's means.

    Parameters
    ----------
    table : list of Thickness or None
        Rows from `skull2face.anatomy.tissue.load_table`; None uses the bundled Hona & Stephan
        (2024) table (its median is 10.5 mm).

    Returns
    -------
    float
        mm.
    """
    rows = load_table() if table is None else table
    return float(np.median([r.mean_mm for r in rows]))


def thickness_sites(landmarks: Any, table=None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The landmarks that have a published thickness, with that thickness.

    Parameters
    ----------
    landmarks : mapping of str to array_like (3,), or LandmarkSet
        Skull landmarks (any coordinates; they are passed through). Names are resolved by
        `thickness_for`; landmarks without a table row, and non-finite points, are skipped.
    table : list of Thickness or None
        None uses the bundled table.

    Returns
    -------
    names : list of str
    points : numpy.ndarray, shape (m, 3), float64, mm
    thickness : numpy.ndarray, shape (m,), float64, mm
        The table's mean thickness for each.
    """
    names, pts, ts = [], [], []
    for name, p in _landmark_points(landmarks).items():
        try:
            t = thickness_for(name, table).mean_mm
        except KeyError:
            continue
        names.append(name)
        pts.append(p)
        ts.append(t)
    return names, np.asarray(pts, dtype=np.float64).reshape(-1, 3), np.asarray(ts, dtype=np.float64)


def interpolate_thickness(points: Any, site_points: Any, site_thickness: Any, default_mm: float,
                          default_distance_mm: float = DEFAULT_SITE_DISTANCE_MM,
                          softening_mm: float = IDW_SOFTENING_MM, power: float = IDW_POWER) -> np.ndarray:
    """Soft-tissue thickness at arbitrary points, interpolated from a few landmark sites.

    Shepard inverse-distance weighting (power 2, Euclidean distance) with a prior::

        t(p) = (sum_i w_i t_i + w_0 t_0) / (sum_i w_i + w_0),
        w_i = 1 / (|p - s_i|^2 + e^2),   w_0 = 1 / (D^2 + e^2)

    where ``t_0 = default_mm`` acts as one extra site at distance ``D = default_distance_mm``
    from every point. It is smooth, stays between the smallest and largest input values (no
    overshoot, unlike a thin-plate spline through 10-15 scattered values), passes within a
    hair of each site's value, and tends to the default far from all landmarks.

    Parameters
    ----------
    points : array_like, shape (n, 3), float, mm
        Where to evaluate.
    site_points : array_like, shape (m, 3), float, mm
        Landmark positions (same coordinates as ``points``); m may be 0.
    site_thickness : array_like, shape (m,), float, mm
    default_mm : float
    default_distance_mm, softening_mm : float
        ``D`` and ``e`` above.

    Returns
    -------
    numpy.ndarray, shape (n,), float64, mm
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    s = np.asarray(site_points, dtype=np.float64).reshape(-1, 3)
    t = np.asarray(site_thickness, dtype=np.float64).reshape(-1)
    e2 = float(softening_mm) ** 2
    half = 0.5 * float(power)
    w0 = 1.0 / (float(default_distance_mm) ** 2 + e2) ** half
    num = np.full(len(p), w0 * float(default_mm))
    den = np.full(len(p), w0)
    # One site at a time: (n,) temporaries instead of an (n, m, 3) block, and no BLAS.
    for si, ti in zip(s, t):
        d = p - si
        w = 1.0 / (np.einsum("ij,ij->i", d, d) + e2) ** half
        num += w * ti
        den += w
    return num / den


def outward_vertex_normals(vertices: Any, faces: Any, centre: Any,
                           iterations: int = NORMAL_SMOOTHING_ITERATIONS,
                           use_winding: bool | None = None) -> np.ndarray:
    """Smoothed unit normals pointing out of the bone, per vertex.

    Orientation: when the mesh is watertight with consistent winding (``use_winding`` None
    checks this) the winding decides, flipped as a whole if the enclosed volume comes out
    negative. Otherwise (CT skulls are usually open: cropped scans, foramina) each face is
    turned to point away from ``centre``, which is right for every surface seen from in
    front except concavities facing backward (aperture side walls), which are bridged later.

    Smoothing: area-weighted face normals are summed onto the vertices and then averaged with
    the vertices' edge neighbours ``iterations`` times; vectors that cancel out (a thin plate
    seen from both sides) keep their unsmoothed direction.

    Parameters
    ----------
    vertices : array_like, shape (n, 3), float, mm
    faces : array_like, shape (m, 3), int
    centre : array_like, shape (3,), mm
        A point inside the head, in the vertices' coordinates.
    iterations : int
        Neighbour-averaging passes (0: no smoothing).
    use_winding : bool or None
        Force one orientation rule; None picks as above.

    Returns
    -------
    numpy.ndarray, shape (n, 3), float64
        Unit vectors; zero for vertices in no face.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = len(v)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    fn = np.cross(b - a, c - a)  # length = 2 x area: area weighting for free
    if use_winding is None:
        mesh = trimesh.Trimesh(v, f, process=False)
        use_winding = bool(mesh.is_watertight and mesh.is_winding_consistent)
    if use_winding:
        # Signed volume (divergence theorem): positive when the winding points outward.
        if np.einsum("ij,ij->", a, fn) < 0:
            fn = -fn
    else:
        centroid = (a + b + c) / 3.0
        inward = np.einsum("ij,ij->i", fn, centroid - np.asarray(centre, dtype=np.float64)) < 0
        fn[inward] *= -1.0
    vn = np.zeros((n, 3))
    for k in range(3):
        for axis in range(3):
            vn[:, axis] += np.bincount(f[:, k], weights=fn[:, axis], minlength=n)
    raw = vn.copy()
    if iterations > 0 and len(f):
        rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0], np.arange(n)])
        cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2], np.arange(n)])
        adj = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        adj.data[:] = 1.0  # duplicate edges (two faces share each) count once
        deg = np.asarray(adj.sum(axis=1)).reshape(-1)
        avg = sparse.diags(1.0 / np.maximum(deg, 1.0)) @ adj
        # Normalise before averaging so big faces do not dominate their neighbourhood.
        cur = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-300)
        for _ in range(iterations):
            cur = avg @ cur
        length = np.linalg.norm(cur, axis=1)
        vn = np.where((length > 0.2)[:, None], cur, raw)
    length = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.where(length > 0, vn / np.maximum(length, 1e-300), 0.0)


def _fill_outside(h: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Copy of ``h`` with invalid pixels set to the nearest valid pixel's value."""
    if valid.all() or not valid.any():
        return np.where(valid, h, 0.0)
    idx = ndimage.distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return h[tuple(idx)]


def _closed(h: np.ndarray, valid: np.ndarray, radius_px: float) -> np.ndarray:
    """Grey closing of the valid heights with a flat disc: an upper hull spanning narrow pits.

    Background counts as -inf: the dilation ignores it, and at every pixel of the filled
    silhouette the closing is still >= the height (each disc there reaches valid pixels).
    The cost grows with the disc's area, so discs wider than ~49 px are applied to a map
    reduced by block maxima and the result is expanded back: still an upper hull (each block
    stands at its highest pixel), coarser by one block (e.g. 1 mm at 0.5 mm/px).
    """
    step = max(1, math.ceil(radius_px / 24.0))
    low = np.where(valid, h, -np.inf)
    rows, cols = low.shape
    if step > 1:
        grid = np.full((-(-rows // step) * step, -(-cols // step) * step), -np.inf)
        grid[:rows, :cols] = low
        low = grid.reshape(grid.shape[0] // step, step, grid.shape[1] // step, step).max(axis=(1, 3))
    fp = _disc(radius_px / step)
    pad = fp.shape[0] // 2 + 1
    out = ndimage.grey_closing(np.pad(low, pad, constant_values=-np.inf), footprint=fp)[pad:-pad, pad:-pad]
    if step > 1:
        out = np.repeat(np.repeat(out, step, axis=0), step, axis=1)[:rows, :cols]
    return out


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
    2. The closing of the height map with a flat disc of ``radius_mm`` is an upper hull that
       spans every pit narrower than the disc; pixels more than ``pit_depth_mm`` below it,
       and invalid pixels inside the region, are marked to fill, and the marks grow by
       ``rim_mm`` so that the fill starts on the rims' crests rather than on the walls.
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
    closed = _closed(h, valid, r_px)
    with np.errstate(invalid="ignore"):
        pit = valid & (h < closed - pit_depth_mm)
    fill = ~valid | pit
    if rim_mm > 0 and fill.any():
        # Grow the marked pits up their walls to the rim: inpainting then continues the rim
        # crest, not the slope of the walls, which would make the bridge sag into the pit.
        fill = ndimage.binary_dilation(fill, structure=_disc(rim_mm / mm_per_px))
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
    sub = _fill_outside(h[box], known[box])
    out = inpaint_biharmonic(sub, fill[box], split_into_regions=True)
    result = np.full(h.shape, np.nan)
    result[box] = out
    result = np.where(region, result, np.nan)
    return result.astype(np.float32), fill


def _smooth_nan(h: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing that ignores NaN pixels (normalised convolution); NaN stays NaN."""
    valid = np.isfinite(h)
    if sigma_px <= 0 or not valid.any():
        return h
    num = ndimage.gaussian_filter(np.where(valid, h, 0.0), sigma_px, mode="nearest")
    den = ndimage.gaussian_filter(valid.astype(np.float64), sigma_px, mode="nearest")
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    return np.where(valid, out, np.nan)


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
        As in `bridge_pits`.

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
    closed = _closed(h, valid, radius_mm / s)
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


def below_jaw(spec: RenderSpec, landmarks_head: Mapping[str, Any], margin_mm: float = JAW_MARGIN_MM) -> np.ndarray | None:
    """Pixels below the jaw line: more than ``margin_mm`` below the polyline Go_R - Gn - Go_L.

    Gonion and gnathion outline the mandible's lower border in a frontal view; what a skull map
    shows below it (cervical vertebrae, hyoid) is not face, and the tissue-depth method does
    not dress it. Beyond the gonia the line continues level. Pogonion stands in for a missing
    gnathion; with neither, or with no gonion, nothing is cut.

    Parameters
    ----------
    spec : RenderSpec
    landmarks_head : mapping of str to array_like (3,)
        Skull landmarks in the head frame, mm.
    margin_mm : float

    Returns
    -------
    numpy.ndarray, shape (H, W), bool, or None
        True below the line; None when the landmarks are missing.
    """
    chin = landmarks_head.get("Gn", landmarks_head.get("Pog"))
    gonia = [landmarks_head[k] for k in ("Go_R", "Go_L") if k in landmarks_head]
    if chin is None or not gonia:
        return None
    pts = sorted([np.asarray(chin, float)] + [np.asarray(g, float) for g in gonia], key=lambda p: p[0])
    xs = np.array([p[0] for p in pts])
    ys = np.array([p[1] for p in pts])
    x, y = spec.xy_grid()
    line = np.interp(x, xs, ys)  # np.interp holds the end values beyond the outer points
    return y < line - margin_mm


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
    base = _fill_outside(h, valid)

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


# ----------------------------------------------------------------------------- tissue depth


def tissue_depth_face(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec, *,
                      table=None, default_mm: float | None = None,
                      default_distance_mm: float = DEFAULT_SITE_DISTANCE_MM, idw_power: float = IDW_POWER,
                      normal_iterations: int = NORMAL_SMOOTHING_ITERATIONS,
                      bridge_radius_mm: float = BRIDGE_RADIUS_MM, pit_depth_mm: float = PIT_DEPTH_MM,
                      smooth_sigma_mm: float = SMOOTH_SIGMA_MM, nose: NoseRule | bool = True,
                      jaw_margin_mm: float | None = JAW_MARGIN_MM, info: dict | None = None) -> DepthMap:
    """The tissue-depth ("American") facial approximation as a face depth map.

    1. Sites: every skull landmark with a row in the thickness table (`thickness_sites`) gets
       that row's published mean (Hona & Stephan 2024; bilateral rows serve both sides).
    2. Thickness field: `interpolate_thickness` over the skull vertices (head frame), with the
       table's median as the default far from all landmarks (`default_thickness_mm`).
    3. Each vertex moves ``t`` mm along its smoothed outward normal (`outward_vertex_normals`;
       head centre `HEAD_CENTRE` for orientation).
    4. The moved mesh is rendered with ``spec`` (first hit from the front: where the offset
       folds, the outermost sheet wins, i.e. the upper envelope). Pixels more than
       ``jaw_margin_mm`` below the jaw line Go-Gn-Go (`below_jaw`) are dropped: a skull map
       shows vertebrae and hyoid there, which the method does not dress.
    5. `bridge_pits` spans the orbits, the nasal aperture and any other hole or pit narrower
       than ~2 x ``bridge_radius_mm`` inside the closed silhouette.
    6. A light NaN-aware Gaussian (``smooth_sigma_mm``) removes the bone's voxel staircase.
    7. `add_nose` adds a schematic nose (`NoseRule`) when nasion and nasospinale are known.

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        Skull surface in input coordinates, mm.
    skull_landmarks : mapping of str to array_like (3,), or LandmarkSet
        Skull landmarks in INPUT coordinates (mm); names as `thickness_for` accepts.
    spec : RenderSpec
        The skull map's render spec (its ``frame`` maps input -> head); the output uses it.
    table : list of Thickness or None
        Thickness table; None uses the bundled one.
    default_mm : float or None
        Thickness far from landmarks; None uses the table's median.
    default_distance_mm, idw_power : float
        ``D`` and the power of `interpolate_thickness`.
    normal_iterations : int
        Normal-smoothing passes.
    bridge_radius_mm, pit_depth_mm : float
        See `bridge_pits`.
    smooth_sigma_mm : float
        Final smoothing (0: none).
    nose : NoseRule or bool
        The nose rule; True uses ``NoseRule()``, False adds no nose.
    jaw_margin_mm : float or None
        See step 4; None keeps everything below the jaw.
    info : dict, optional
        Filled in place with a JSON-ready record: the sites and their thickness, the default,
        the filled pixel count, the nose.

    Returns
    -------
    DepthMap
        Face heights (float32 mm, head-frame z), with ``spec`` itself as its spec; its extra
        attribute ``info`` is the record described under ``info``.

    Raises
    ------
    ValueError
        If the mesh is empty or nothing of it falls inside the map.
    """
    if not isinstance(skull_mesh, trimesh.Trimesh) or len(skull_mesh.faces) == 0:
        raise ValueError("tissue_depth_face needs a non-empty skull mesh")
    rule = NoseRule() if nose is True else (NoseRule(enabled=False) if nose is False else nose)
    record = {} if info is None else info
    rows = load_table() if table is None else table
    t0 = default_thickness_mm(rows) if default_mm is None else float(default_mm)

    names, site_in, site_t = thickness_sites(skull_landmarks, rows)
    verts_head = apply(spec.frame, np.asarray(skull_mesh.vertices, dtype=np.float64))
    sites_head = apply(spec.frame, site_in) if len(site_in) else site_in
    t = interpolate_thickness(verts_head, sites_head, site_t, t0, default_distance_mm, power=idw_power)
    normals = outward_vertex_normals(verts_head, skull_mesh.faces, HEAD_CENTRE, normal_iterations)
    moved_head = verts_head + t[:, None] * normals
    moved = trimesh.Trimesh(apply(spec.inverse, moved_head), np.asarray(skull_mesh.faces), process=False)
    offset = render(moved, spec)
    if not offset.mask.any():
        raise ValueError("the skull does not fall inside the render spec's image")
    lms_head = {k: apply(spec.frame, v) for k, v in _landmark_points(skull_landmarks).items()}
    height = offset.height
    cut = below_jaw(spec, lms_head, jaw_margin_mm) if jaw_margin_mm is not None else None
    if cut is not None:
        height = np.where(cut, np.nan, height)

    s = spec.mm_per_px
    bridged, filled = bridge_pits(height, s, bridge_radius_mm, pit_depth_mm)
    face = _smooth_nan(bridged.astype(np.float64), smooth_sigma_mm / s)

    nose_info: dict = {"added": False, "why": "disabled"}
    if rule.enabled:
        if "N" in lms_head and "Ns" in lms_head:
            width = measure_aperture_width(render(skull_mesh, spec), lms_head["N"], lms_head["Ns"])
            measured = width is not None
            width = width if measured else rule.default_aperture_width_mm
            face, nose_info = add_nose(face, spec, lms_head["N"], lms_head["Ns"], width, rule)
            nose_info["aperture_measured"] = measured
        else:
            nose_info = {"added": False, "why": "needs skull landmarks N and Ns"}

    record.update({
        "method": "tissue-depth",
        "sites": {n: round(float(v), 2) for n, v in zip(names, site_t)},
        "default_mm": t0,
        "default_distance_mm": default_distance_mm,
        "thickness_source": "Hona & Stephan 2024 pooled adult means (skull2face.anatomy.tissue)",
        "bridge_radius_mm": bridge_radius_mm,
        "pit_depth_mm": pit_depth_mm,
        "filled_px": int(filled.sum()),
        "jaw_cut": None if cut is None else {"margin_mm": jaw_margin_mm, "cut_px": int((cut & offset.mask).sum())},
        "smooth_sigma_mm": smooth_sigma_mm,
        "nose": {**nose_info, "rule": asdict(rule)},
    })
    face = np.asarray(face, dtype=np.float32)
    return _with_info(DepthMap(face, np.isfinite(face), spec), record)


# ----------------------------------------------------------------------------- data-driven


def resample_to(dm: DepthMap, spec: RenderSpec) -> DepthMap:
    """The same head-frame surface on another render spec's pixel grid, labelled with that spec.

    Heights are head-frame z, so a map moves between heads by relabelling: the output keeps
    the heights and takes ``spec`` (its frame maps the target's input coordinates to the head
    frame, so `depth_to_mesh` puts the surface into the target's input coordinates). When the
    grids (size, pitch, centre) agree this is an exact copy; otherwise heights are bilinearly
    interpolated where all four neighbours are valid.

    Parameters
    ----------
    dm : DepthMap
    spec : RenderSpec
        The target spec.

    Returns
    -------
    DepthMap
        With ``spec`` as its spec.
    """
    src = dm.spec
    if src.size == spec.size and src.mm_per_px == spec.mm_per_px and src.centre == spec.centre:
        return DepthMap(dm.height.copy(), dm.mask.copy(), spec)
    x, y = spec.xy_grid()
    rc = src.head_to_pixel(np.stack([x, y], axis=-1))
    coords = [rc[..., 0].ravel(), rc[..., 1].ravel()]
    h = np.where(dm.mask, dm.height, 0.0).astype(np.float64)
    val = ndimage.map_coordinates(h, coords, order=1, mode="constant", cval=0.0)
    m = ndimage.map_coordinates(dm.mask.astype(np.float64), coords, order=1, mode="constant", cval=0.0)
    ok = m > 1.0 - 1e-6
    out = np.where(ok, val, np.nan).reshape(spec.size).astype(np.float32)
    return DepthMap(out, np.isfinite(out), spec)


def mean_face(train_face_maps: Sequence[DepthMap], min_fraction: float = 0.5) -> DepthMap:
    """The mean training face in the head frame.

    Parameters
    ----------
    train_face_maps : sequence of DepthMap
        Face maps of one dataset (same size, pitch, depth range and centre; their frames
        differ per head and do not matter here: heights are already head-frame z).
    min_fraction : float
        A pixel is kept when at least this fraction of the maps is valid there (0.5: at least
        half).

    Returns
    -------
    DepthMap
        Mean height over the maps valid at each kept pixel (float32 mm), NaN elsewhere; spec
        of the first map.

    Raises
    ------
    ValueError
        If the list is empty or the maps' grids differ.
    """
    maps = list(train_face_maps)
    if not maps:
        raise ValueError("mean_face needs at least one face map")
    ref = maps[0].spec
    total = np.zeros(ref.size)
    count = np.zeros(ref.size)
    for dm in maps:
        sp = dm.spec
        if sp.size != ref.size or sp.mm_per_px != ref.mm_per_px or sp.centre != ref.centre:
            raise ValueError("mean_face: the maps do not share one pixel grid (size, mm_per_px, centre)")
        total += np.where(dm.mask, dm.height, 0.0)
        count += dm.mask
    keep = count >= max(min_fraction * len(maps), 1e-9)
    keep &= count > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(keep, total / np.maximum(count, 1), np.nan).astype(np.float32)
    return DepthMap(mean, np.isfinite(mean), ref)


def mean_face_for(spec: RenderSpec, mean_map: DepthMap, info: dict | None = None) -> DepthMap:
    """The mean face placed on a target skull: `mean_map` relabelled with the target's spec.

    Parameters
    ----------
    spec : RenderSpec
        The target skull map's spec.
    mean_map : DepthMap
        From `mean_face`.
    info : dict, optional
        Filled with a JSON-ready record.

    Returns
    -------
    DepthMap
        With ``spec`` as its spec (resampled if its grid differs, see `resample_to`), and the
        record as its extra attribute ``info``.
    """
    record = {} if info is None else info
    record.update({"method": "mean-face", "valid_px": int(mean_map.mask.sum())})
    return _with_info(resample_to(mean_map, spec), record)


def skull_distance(a: DepthMap, b: DepthMap, mismatch_mm: float = 10.0) -> float:
    """RMS height difference (mm) of two skull maps, with non-overlap penalised.

    Over the union of the two masks: pixels valid in both contribute their height difference,
    pixels valid in only one contribute ``mismatch_mm``::

        d = sqrt((sum_both (h_a - h_b)^2 + n_one * mismatch^2) / n_union)

    Parameters
    ----------
    a, b : DepthMap
        On the same pixel grid.
    mismatch_mm : float

    Returns
    -------
    float
        mm; inf when neither map has a valid pixel.
    """
    if a.spec.size != b.spec.size:
        raise ValueError(f"skull maps differ in size: {a.spec.size} vs {b.spec.size}")
    both = a.mask & b.mask
    one = a.mask ^ b.mask
    n_union = int(both.sum() + one.sum())
    if n_union == 0:
        return math.inf
    d = (a.height[both].astype(np.float64) - b.height[both].astype(np.float64))
    return float(math.sqrt((float(np.einsum("i,i->", d, d)) + one.sum() * mismatch_mm ** 2) / n_union))


def nearest_skull_face(skull_map: DepthMap, train_pairs: Sequence[tuple[DepthMap, DepthMap]],
                       mismatch_mm: float = 10.0, info: dict | None = None) -> DepthMap:
    """The face of the training pair whose skull map is nearest to ``skull_map``.

    Parameters
    ----------
    skull_map : DepthMap
        The target skull.
    train_pairs : sequence of (DepthMap, DepthMap)
        (skull, face) maps of training heads, on the target's pixel grid (skull maps of other
        grids are resampled to it before comparing).
    mismatch_mm : float
        Penalty per non-overlapping pixel, see `skull_distance`.
    info : dict, optional
        Filled with ``{"method", "index", "distance_mm", "distances_mm"}``.

    Returns
    -------
    DepthMap
        The chosen face, with the TARGET's spec; its extra attribute ``info`` holds the record
        (which pair, at what distance).

    Raises
    ------
    ValueError
        If ``train_pairs`` is empty.
    """
    pairs = list(train_pairs)
    if not pairs:
        raise ValueError("nearest_skull_face needs at least one training pair")
    dists = [skull_distance(skull_map, resample_to(sk, skull_map.spec), mismatch_mm) for sk, _face in pairs]
    best = int(np.argmin(dists))
    record = {} if info is None else info
    record.update({"method": "nearest-skull", "index": best, "distance_mm": round(dists[best], 4),
                   "distances_mm": [round(d, 4) for d in dists], "mismatch_mm": mismatch_mm})
    return _with_info(resample_to(pairs[best][1], skull_map.spec), record)


def load_training_pairs(dataset_dir: str | os.PathLike, split: str = "train",
                        real: bool | None = None) -> tuple[list[tuple[DepthMap, DepthMap]], list[str]]:
    """Paired (skull, face) maps of a dataset folder, for `nearest_skull_face` and `mean_face`.

    Parameters
    ----------
    dataset_dir : path-like
        A folder written by ``skull2face dataset build`` (see ``docs/dataset-format.md``).
    split : {'train', 'test'}
    real : bool or None
        Only real (True) or only synthetic (False) samples; None takes both.

    Returns
    -------
    pairs : list of (DepthMap, DepthMap)
        Loaded with `load_depthmap`, so each carries its own spec (and centre).
    ids : list of str
        The sample ids, in the same order.
    """
    from ..dataset.reader import load_manifest

    man = load_manifest(dataset_dir)
    pairs, ids = [], []
    for sample in man.select(split=split, kinds="paired", real=real):
        files = sample["files"]
        pairs.append((load_depthmap(man.root / files["skull"]), load_depthmap(man.root / files["face"])))
        ids.append(sample["id"])
    return pairs, ids


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Method:
    """One baseline in `METHODS`.

    Parameters
    ----------
    name : str
    summary : str
        One line for reports.
    needs : tuple of str
        Keyword arguments of `predict_face_map` it cannot do without.
    run : callable
        ``run(inputs: dict, info: dict) -> DepthMap``.
    """

    name: str
    summary: str
    needs: tuple[str, ...]
    run: Callable[[dict, dict], DepthMap] = field(repr=False)


def _target_spec(inputs: dict) -> RenderSpec:
    if inputs.get("spec") is not None:
        return inputs["spec"]
    if inputs.get("skull_map") is not None:
        return inputs["skull_map"].spec
    raise ValueError("give the target's render spec (spec=...) or its skull map (skull_map=...)")


def _run_tissue(inputs: dict, info: dict) -> DepthMap:
    return tissue_depth_face(inputs["skull_mesh"], inputs["skull_landmarks"], _target_spec(inputs),
                             info=info, **inputs.get("options", {}))


def _run_mean(inputs: dict, info: dict) -> DepthMap:
    mean_map = inputs.get("mean_map")
    if mean_map is None:
        faces = inputs.get("train_faces")
        if faces is None and inputs.get("train_pairs") is not None:
            faces = [f for _s, f in inputs["train_pairs"]]
        if not faces:
            raise ValueError("method 'mean-face' needs mean_map, train_faces or train_pairs")
        mean_map = mean_face(faces, **inputs.get("options", {}))
        info["n_train"] = len(faces)
    return mean_face_for(_target_spec(inputs), mean_map, info)


def _run_nearest(inputs: dict, info: dict) -> DepthMap:
    return nearest_skull_face(inputs["skull_map"], inputs["train_pairs"], info=info, **inputs.get("options", {}))


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("tissue-depth", "published mean soft-tissue thickness over the skull, orbits and aperture "
                           "bridged, schematic nose", ("skull_mesh", "skull_landmarks"), _run_tissue),
    Method("mean-face", "mean training face in the head frame", (), _run_mean),
    Method("nearest-skull", "face of the training head whose skull map is nearest",
           ("skull_map", "train_pairs"), _run_nearest),
)}
"""Baselines by name: ``'tissue-depth'``, ``'mean-face'``, ``'nearest-skull'``."""


def predict_face_map(method: str, *, spec: RenderSpec | None = None, skull_map: DepthMap | None = None,
                     skull_mesh: trimesh.Trimesh | None = None, skull_landmarks: Any = None,
                     train_pairs: Sequence[tuple[DepthMap, DepthMap]] | None = None,
                     train_faces: Sequence[DepthMap] | None = None, mean_map: DepthMap | None = None,
                     info: dict | None = None, **options: Any) -> DepthMap:
    """Run a baseline by name; every method returns a face map in the target's render spec.

    Parameters
    ----------
    method : {'tissue-depth', 'mean-face', 'nearest-skull'}
    spec : RenderSpec, optional
        The target's render spec; defaults to ``skull_map.spec``.
    skull_map : DepthMap, optional
        The target skull map (needed by 'nearest-skull').
    skull_mesh : trimesh.Trimesh, optional
        Target skull, input coordinates (needed by 'tissue-depth').
    skull_landmarks : mapping or LandmarkSet, optional
        Target skull landmarks, input coordinates (needed by 'tissue-depth').
    train_pairs : sequence of (DepthMap, DepthMap), optional
        Training (skull, face) maps ('nearest-skull'; 'mean-face' uses their faces).
    train_faces : sequence of DepthMap, optional
        Training faces ('mean-face').
    mean_map : DepthMap, optional
        A precomputed `mean_face` ('mean-face').
    info : dict, optional
        Filled in place with the method's JSON-ready record (what it chose or used).
    **options
        Passed to the method's function (e.g. ``nose=False`` for 'tissue-depth').

    Returns
    -------
    DepthMap

    Raises
    ------
    ValueError
        Unknown method, or a required input missing (the message names it).
    """
    if method not in METHODS:
        raise ValueError(f"unknown baseline {method!r}; choose one of {', '.join(METHODS)}")
    m = METHODS[method]
    inputs = {"spec": spec, "skull_map": skull_map, "skull_mesh": skull_mesh, "skull_landmarks": skull_landmarks,
              "train_pairs": train_pairs, "train_faces": train_faces, "mean_map": mean_map, "options": options}
    missing = [k for k in m.needs if inputs.get(k) is None]
    if missing:
        raise ValueError(f"baseline {method!r} needs {', '.join(missing)}")
    record = {} if info is None else info
    dm = m.run(inputs, record)
    record.setdefault("method", method)
    return _with_info(dm, record)


__all__ = [
    "BRIDGE_RADIUS_MM",
    "HEAD_CENTRE",
    "METHODS",
    "PIT_DEPTH_MM",
    "Method",
    "NoseRule",
    "add_nose",
    "bridge_pits",
    "default_thickness_mm",
    "face_region",
    "interpolate_thickness",
    "load_training_pairs",
    "mean_face",
    "mean_face_for",
    "measure_aperture_width",
    "nearest_skull_face",
    "outward_vertex_normals",
    "predict_face_map",
    "resample_to",
    "skull_distance",
    "thickness_sites",
    "tissue_depth_face",
]
