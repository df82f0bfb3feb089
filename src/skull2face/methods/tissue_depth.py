"""``tissue-depth``: the classic ("American") tissue-depth facial approximation, automated.

The "American" tissue-depth method (Gatliff 1984; Krogman & Iscan 1986): the published mean
soft-tissue thickness at each skull landmark (Hona & Stephan 2024, via
`skull2face.anatomy.tissue.thickness_for`; `thickness_sites`) is interpolated over the skull
surface (`interpolate_thickness`), every skull vertex moves out along its smoothed outward
normal (`skull2face.geometry.normals`) by that thickness, the moved surface is rendered, and
the orbits and the nasal aperture (holes and deep pits in an offset bone surface) are bridged
by biharmonic inpainting (`skull2face.geometry.fill.bridge_pits`). A schematic nose is then
added from simple rules (`skull2face.methods.nose`). `tissue_depth_face` needs the skull mesh
and its landmarks and returns a face depth map in the skull's render spec.

All heights are float32 head-frame z in mm (NaN off the surface); all lengths are mm.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import trimesh

from ..anatomy.landmark_set import points_of
from ..anatomy.tissue import TABLE_SOURCE, load_table, thickness_for
from ..geometry.depthmap import DepthMap, RenderSpec, render
from ..geometry.fill import BRIDGE_RADIUS_MM, PIT_DEPTH_MM, bridge_pits
from ..geometry.frame import apply
from ..geometry.smooth import nan_gaussian
from ..geometry.interpolate import shepard
from ..geometry.normals import HEAD_CENTRE, NORMAL_SMOOTHING_ITERATIONS, outward_vertex_normals
from .nose import NoseRule, add_nose, measure_aperture_width

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
# Light smoothing of the final map (Gaussian sigma, mm): removes the CT voxel staircase that
# the offset surface inherits from the bone; skin does not show it.
SMOOTH_SIGMA_MM = 1.0
# How far below the jaw line (Go-Gn-Go) the face may reach: the tissue under the mandible's
# border (~7-8 mm at gnathion, Hona & Stephan 2024) plus a few mm of slack.
JAW_MARGIN_MM = 12.0


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
    for name, p in points_of(landmarks).items():
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
    return shepard(points, site_points, site_thickness, power=power, softening_mm=softening_mm,
                   background=default_mm, background_distance_mm=default_distance_mm)


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
        Face heights (float32 mm, head-frame z), with ``spec`` itself as its spec (the record
        is written into ``info``).

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
    lms_head = {k: apply(spec.frame, v) for k, v in points_of(skull_landmarks).items()}
    height = offset.height
    cut = below_jaw(spec, lms_head, jaw_margin_mm) if jaw_margin_mm is not None else None
    if cut is not None:
        height = np.where(cut, np.nan, height)

    s = spec.mm_per_px
    bridged, filled = bridge_pits(height, s, bridge_radius_mm, pit_depth_mm)
    face = nan_gaussian(bridged.astype(np.float64), smooth_sigma_mm / s, mode="nearest")

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
        "thickness_source": f"{TABLE_SOURCE}: pooled adult means",
        "bridge_radius_mm": bridge_radius_mm,
        "pit_depth_mm": pit_depth_mm,
        "filled_px": int(filled.sum()),
        "jaw_cut": None if cut is None else {"margin_mm": jaw_margin_mm, "cut_px": int((cut & offset.mask).sum())},
        "smooth_sigma_mm": smooth_sigma_mm,
        "nose": {**nose_info, "rule": asdict(rule)},
    })
    face = np.asarray(face, dtype=np.float32)
    return DepthMap(face, np.isfinite(face), spec)


__all__ = [
    "DEFAULT_SITE_DISTANCE_MM",
    "IDW_POWER",
    "IDW_SOFTENING_MM",
    "JAW_MARGIN_MM",
    "SMOOTH_SIGMA_MM",
    "below_jaw",
    "default_thickness_mm",
    "interpolate_thickness",
    "thickness_sites",
    "tissue_depth_face",
]
