"""The face region: the part of the true skin that is scored, and its sub-regions.

A prediction is measured against the true skin surface over one **face region** that depends
only on the truth and its face landmarks, never on the method being judged, so that every
method is scored on the same skin (`face_region`). Scan-cut lids of the truth
(`skull2face.geometry.lids.find_lids`) are never part of it.

Head-frame convention (`skull2face.geometry.frame`): +x the subject's left, +y up, +z
anterior, origin at skin nasion on the mid-sagittal plane; millimetres throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh

from ..anatomy.landmark_set import LandmarkSet, points_of
from ..geometry.distances import face_cross, few_distances, mesh_arrays, vertex_areas
from ..geometry.frame import HeadFrame, apply, as_rigid, head_frame
from ..geometry.lids import (
    LID_BODY_MM,
    LID_DEPTH_MM,
    LID_FACING_DEG,
    LID_MIN_AREA_MM2,
    LID_SNAP_DEG,
    Lid,
    find_lids,
)

# --- settings (all recorded in evaluate.json) ---------------------------------------------------

#: Sub-regions of the face, in label order; label 0 is "outside the region".
SUBREGIONS: tuple[str, ...] = ("forehead", "orbits", "nose", "cheeks", "mouth", "chin")
#: The region starts this far in front of tragion (the ear's front edge), mm.
EAR_MARGIN_MM = 10.0
#: Without tragion the region starts at z = -60 mm (about 20 mm in front of a typical tragion).
NO_TRAGION_Z_MM = -60.0
#: The forehead limit: y <= n_y + 40 mm.
FOREHEAD_MM = 40.0
#: The chin limit: y >= me_y - 5 mm (just under menton, so the chin's underside is in).
BELOW_MENTON_MM = 5.0
#: The region reaches 5 mm beyond the zygia; 70 mm from the midline without them.
ZYGION_MARGIN_MM = 5.0
NO_ZYGION_HALF_WIDTH_MM = 70.0
#: Landmarks farther than this from the truth surface (median) are not on it: wrong file or frame.
LANDMARK_OFF_SURFACE_MM = 10.0

# Typical adult dimensions (rounded anthropometric norms), used only to place sub-region
# boxes when a landmark is missing; the description lists every value that was assumed.
ASSUMED_MM = {
    "en_y_below_n": 10.0,      # endocanthion ~10 mm below nasion
    "en_half_width": 16.0,     # intercanthal width ~32 mm
    "al_half_width": 17.5,     # alar width ~35 mm
    "sn_below_n": 52.0,        # nasal height n-sn ~52 mm
    "me_below_n": 120.0,       # face height n-me ~120 mm
}


# --- the face region ----------------------------------------------------------------------------

@dataclass(eq=False)
class FaceRegion:
    """The part of the truth surface that is scored, with its sub-regions.

    Attributes
    ----------
    labels : numpy.ndarray, shape (n_vertices,), int8
        Per truth vertex: 0 outside the region, ``k`` >= 1 in sub-region ``SUBREGIONS[k - 1]``.
    frame : numpy.ndarray, shape (4, 4), float64, or None
        Truth input -> head transform the boxes are defined in (None: whole-surface mode).
    bounds : dict
        The numbers of the boxes (head frame, mm); see `face_region`.
    lids : list of Lid
        Scan-cut lids of the truth, excluded from the region.
    description : dict
        JSON-ready account of the region: rules, numbers, landmarks used and assumed.
    outward_sign : float
        +1 if the truth's face winding gives outward normals, -1 if it must be flipped.
    """

    labels: np.ndarray
    frame: np.ndarray | None
    bounds: dict
    lids: list[Lid]
    description: dict
    outward_sign: float = 1.0
    _box: Any = field(default=None, repr=False)

    @property
    def mask(self) -> np.ndarray:
        """Per truth vertex (n,) bool: inside the region."""
        return self.labels > 0

    def face_mask(self, faces: np.ndarray) -> np.ndarray:
        """Per truth triangle (m,) bool: all three corners inside the region."""
        return np.all(self.labels[np.asarray(faces)] > 0, axis=1)

    def box_labels(self, points: np.ndarray) -> np.ndarray:
        """Labels (n,) int8 that the boxes alone give to points (n, 3) in truth coordinates.

        Lids are not considered here; use `labels` for truth vertices.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return self._box(p)


def _mean_of(head: dict[str, np.ndarray], names: tuple[str, ...], coord: int, absolute: bool = False):
    vals = [abs(head[n][coord]) if absolute else head[n][coord] for n in names if n in head]
    return (float(np.mean(vals)), [n for n in names if n in head]) if vals else (None, [])


def face_region(truth_mesh: trimesh.Trimesh, landmarks: LandmarkSet | Mapping[str, Any] | None,
                frame: np.ndarray | HeadFrame | None = None) -> FaceRegion:
    """The region of the truth surface that is scored: the front of the face, without scan cuts.

    The region depends only on the truth and its face landmarks, so it is the same whatever
    method made the prediction. In the head frame (built from the face landmarks with
    `skull2face.geometry.frame.head_frame` unless ``frame`` is given), a truth vertex is in
    the region if all of these hold:

    * **in front of the ears**: ``z > t_z + 10 mm`` (``t_z`` the mean z of the tragia present);
      ``z > -60 mm`` without tragion;
    * **below the forehead limit**: ``y <= n_y + 40 mm``;
    * **above the chin limit**: ``y >= me_y - 5 mm`` if menton is present, else
      ``y >= n_y - 120 - 5 mm`` (a typical adult face height n-me, so a neck is not scored);
    * **within the cheeks**: ``|x| <= w + 5 mm``, ``w`` the mean ``|x|`` of the zygia (zy')
      present, else ``|x| <= 70 mm``;
    * **not on a scan-cut lid** (`skull2face.geometry.lids.find_lids`): no corner of a lid
      triangle is skin.

    Sub-regions, the first rule that matches wins (head frame, mm; ``n, en, al, sn, me`` are the
    landmarks' y or ``|x|`` values, typical adult values where one is missing, listed under
    ``"assumed"`` in the description):

    1. **forehead**: ``y > n_y + 10``, or ``y > n_y`` and ``|x| <= en_x - 3`` (glabella);
    2. **nose**: ``sn_y - 2 <= y <= n_y`` and ``|x| <= en_x - 3`` above ``y = en_y - 10``,
       ``|x| <= al_x + 3`` below it;
    3. **orbits**: ``en_y - 15 <= y <= n_y + 10`` and ``|x| <= en_x + 40``;
    4. **mouth**: ``y_lip <= y < sn_y - 2`` and ``|x| <= al_x + 12``, where
       ``y_lip = sn_y - 0.6 (sn_y - me_y)`` (about the labiomental fold);
    5. **chin**: ``y < y_lip`` and ``|x| <= al_x + 12``;
    6. **cheeks**: the rest of the region.

    With ``landmarks=None`` and no frame the region is the whole truth surface minus its lids
    (label "cheeks" is not used then: every vertex gets label 1 and the description's kind is
    ``"whole surface"``); meant for synthetic tests, not for scoring faces.

    Parameters
    ----------
    truth_mesh : trimesh.Trimesh
        The true skin surface, vertices in mm (input coordinates).
    landmarks : LandmarkSet or mapping of str to array_like (3,), or None
        Face landmarks (Table 2 names: ``n``, ``sn``, ``me``, ``t_L``, ``zy'_R``, ...) in the
        truth's coordinates, mm. Missing ones are allowed; the head frame needs nasion, a
        bilateral pair and ``sn`` (or a frame given).
    frame : array_like (4, 4) or HeadFrame, optional
        Rigid input -> head transform; built from the landmarks when None.

    Returns
    -------
    FaceRegion

    Raises
    ------
    ValueError
        If the head frame cannot be built from the landmarks (the message names what is
        missing), or the landmarks lie far from the truth surface (median over
        `LANDMARK_OFF_SURFACE_MM`: another frame or another subject).
    """
    v, f = mesh_arrays(truth_mesh)
    pts = points_of(landmarks)
    if isinstance(frame, HeadFrame):
        frame_source, m = "given (HeadFrame)", frame.matrix
    elif frame is not None:
        frame_source, m = "given", as_rigid(frame, "frame")
    elif landmarks is not None:
        # raises, naming what is missing, rather than falling back to the whole surface
        hf = head_frame(pts, "face")
        frame_source, m = f"face landmarks ({', '.join(hf.landmarks)})", hf.matrix
    else:
        frame_source, m = None, None

    # a truth from a CT keeps the scanner's axes, across which it is cut exactly
    lids = find_lids(v, f, snap_deg=LID_SNAP_DEG)
    on_lid = np.zeros(len(v), dtype=bool)
    for lid in lids:
        on_lid[f[lid.faces].ravel()] = True

    description: dict[str, Any] = {"units": "mm"}
    if m is None:
        def box(p: np.ndarray) -> np.ndarray:
            return np.ones(len(p), dtype=np.int8)

        bounds: dict = {}
        description.update(kind="whole surface",
                           definition="every truth vertex except those on scan-cut lids "
                                      "(no landmarks: not a face region)")
    else:
        box, bounds, desc = _boxes(pts, m)
        description.update(kind="face", **desc)
        description["frame"] = {"source": frame_source, "matrix_input_to_head": m.tolist(),
                                "convention": "+x subject's left, +y up, +z anterior, origin skin "
                                              "nasion on the mid-sagittal plane; mm"}
        if pts:
            d = few_distances(np.stack(list(pts.values())), v, f)
            description["landmark_to_truth_mm"] = {n: round(float(x), 2) for n, x in zip(pts, d)}
            if float(np.median(d)) > LANDMARK_OFF_SURFACE_MM:
                raise ValueError(f"the landmarks are not on the truth surface (median distance "
                                 f"{np.median(d):.1f} mm): are they in the truth mesh's coordinates?")

    labels = box(v)
    labels[on_lid] = 0
    sign, how = _outward(truth_mesh, v, f, labels, m)
    areas = vertex_areas(truth_mesh)
    description["lids"] = [lid.to_json() for lid in lids]
    description["lid_rule"] = (f"triangles within {LID_DEPTH_MM:g} mm of a plane fitted at the mesh's "
                               f"extreme along a direction and facing within {LID_FACING_DEG:g} deg of it, "
                               f"where >= {LID_MIN_AREA_MM2:g} mm^2 lie within {LID_DEPTH_MM:g} mm of the "
                               "plane, the walls behind it meet it steeply and the mesh reaches "
                               f">= {LID_BODY_MM:g} mm behind it (skull2face.geometry.lids.find_lids); "
                               "directions: mesh axes (a fit within "
                               f"{LID_SNAP_DEG:g} deg of one is taken exactly across it), normal-histogram peaks")
    description["truth_normals"] = how
    description["vertices"] = int(np.count_nonzero(labels))
    description["area_mm2"] = round(float(areas[labels > 0].sum()), 1)
    if m is not None:
        description["subregion_area_mm2"] = {name: round(float(areas[labels == k + 1].sum()), 1)
                                             for k, name in enumerate(SUBREGIONS)}
    return FaceRegion(labels=labels, frame=m, bounds=bounds, lids=lids, description=description,
                      outward_sign=sign, _box=box)


def subregion_boxes(head_points: Mapping[str, Any]) -> tuple[Any, dict]:
    """The sub-region labeller and its bounds for face landmarks already in the head frame.

    The same boxes as `face_region` (rules in its docstring), for points rather than a truth
    mesh (the dataset's per-pixel weight maps use them).

    Parameters
    ----------
    head_points : mapping of str to array_like (3,)
        Face landmarks in the head frame, mm; missing ones are assumed as `face_region` does.

    Returns
    -------
    labeller : callable
        ``labeller(points (n, 3)) -> (n,) int8``: 0 outside the region, ``k`` in
        ``SUBREGIONS[k - 1]``.
    bounds : dict
        ``z_min, y_max, y_min, x_half, n_y, en_y, en_half_width, al_half_width, sn_y, me_y,
        lip_y`` (mm).
    """
    box, bounds, _ = _boxes({k: np.asarray(v, dtype=np.float64) for k, v in head_points.items()}, np.eye(4))
    return box, bounds


def _boxes(pts: dict[str, np.ndarray], m: np.ndarray):
    """The region's and sub-regions' boxes in the head frame: (labeller, bounds, description)."""
    head = {n: apply(m, p) for n, p in pts.items()}
    used: dict[str, list[float]] = {}
    assumed: dict[str, float] = {}

    def note(names: list[str]) -> None:
        for n in names:
            used[n] = [round(float(c), 3) + 0.0 for c in head[n]]

    # nasion is the frame's origin; its y is 0 unless a frame was given
    if "n" in head:
        yn = float(head["n"][1])
        note(["n"])
    else:
        yn = 0.0
        assumed["n_y"] = 0.0
    t_z, t_names = _mean_of(head, ("t_L", "t_R"), 2)
    note(t_names)
    z_min = t_z + EAR_MARGIN_MM if t_z is not None else NO_TRAGION_Z_MM
    y_max = yn + FOREHEAD_MM
    me_y = float(head["me"][1]) if "me" in head else None
    if me_y is not None:
        note(["me"])
    # without menton (a chin the scan lost, or a neck below it), stop at a typical adult face
    # height below nasion rather than scoring the neck
    y_min = (me_y if me_y is not None else yn - ASSUMED_MM["me_below_n"]) - BELOW_MENTON_MM
    zy, zy_names = _mean_of(head, ("zy'_L", "zy'_R"), 0, absolute=True)
    note(zy_names)
    x_half = zy + ZYGION_MARGIN_MM if zy is not None else NO_ZYGION_HALF_WIDTH_MM

    yen, en_names = _mean_of(head, ("en_L", "en_R"), 1)
    xen, _ = _mean_of(head, ("en_L", "en_R"), 0, absolute=True)
    note(en_names)
    if yen is None:
        yen = yn - ASSUMED_MM["en_y_below_n"]
        xen = ASSUMED_MM["en_half_width"]
        assumed.update(en_y=yen, en_half_width=xen)
    xal, al_names = _mean_of(head, ("al_L", "al_R"), 0, absolute=True)
    note(al_names)
    if xal is None:
        xal = ASSUMED_MM["al_half_width"]
        assumed["al_half_width"] = xal
    if "sn" in head:
        ysn = float(head["sn"][1])
        note(["sn"])
    else:
        ysn = yn - ASSUMED_MM["sn_below_n"]
        assumed["sn_y"] = ysn
    yme = me_y if me_y is not None else yn - ASSUMED_MM["me_below_n"]
    if me_y is None:
        assumed["me_y (sub-regions only)"] = yme
    y_lip = ysn - 0.6 * (ysn - yme)

    bounds = {"z_min": z_min, "y_max": y_max, "y_min": y_min, "x_half": x_half,
              "n_y": yn, "en_y": yen, "en_half_width": xen, "al_half_width": xal,
              "sn_y": ysn, "me_y": yme, "lip_y": y_lip}
    codes = {name: np.int8(k + 1) for k, name in enumerate(SUBREGIONS)}

    def box(p_in: np.ndarray) -> np.ndarray:
        h = apply(m, p_in)
        x, y, z = np.abs(h[:, 0]), h[:, 1], h[:, 2]
        inside = (z > z_min) & (y <= y_max) & (y >= y_min) & (x <= x_half)
        lab = np.full(len(h), codes["cheeks"], dtype=np.int8)
        free = np.ones(len(h), dtype=bool)

        def claim(name: str, sel: np.ndarray) -> None:
            take = free & sel
            lab[take] = codes[name]
            free[take] = False

        claim("forehead", (y > yn + 10.0) | ((y > yn) & (x <= xen - 3.0)))
        nose_w = np.where(y > yen - 10.0, xen - 3.0, xal + 3.0)
        claim("nose", (y >= ysn - 2.0) & (y <= yn) & (x <= nose_w))
        claim("orbits", (y >= yen - 15.0) & (y <= yn + 10.0) & (x <= xen + 40.0))
        claim("mouth", (y >= y_lip) & (y < ysn - 2.0) & (x <= xal + 12.0))
        claim("chin", (y < y_lip) & (x <= xal + 12.0))
        lab[~inside] = 0
        return lab

    def r(x: float) -> float | None:
        # "+ 0.0" turns -0.0 into 0.0 for the record
        return None if not np.isfinite(x) else round(float(x), 2) + 0.0

    desc = {
        "definition": "front of the face in the head frame, fixed by the truth's face landmarks "
                      "(the same for every method), minus scan-cut lids",
        "bounds_head_mm": {
            "z_min": r(z_min), "z_min_rule": (f"mean tragion z + {EAR_MARGIN_MM:g}" if t_z is not None
                                              else f"{NO_TRAGION_Z_MM:g} (no tragion)"),
            "y_max": r(y_max), "y_max_rule": f"n_y + {FOREHEAD_MM:g}",
            "y_min": r(y_min), "y_min_rule": (f"me_y - {BELOW_MENTON_MM:g}" if me_y is not None
                                              else "n_y - 120 - 5 (no menton: a typical adult face height n-me)"),
            "x_half": r(x_half), "x_half_rule": (f"mean |zy'_x| + {ZYGION_MARGIN_MM:g}" if zy is not None
                                                 else f"{NO_ZYGION_HALF_WIDTH_MM:g} (no zygion)"),
        },
        "subregions": {
            "forehead": f"y > {r(yn + 10)} or (y > {r(yn)} and |x| <= {r(xen - 3)})",
            "nose": f"{r(ysn - 2)} <= y <= {r(yn)} and |x| <= {r(xen - 3)} above y = {r(yen - 10)}, "
                    f"|x| <= {r(xal + 3)} below",
            "orbits": f"{r(yen - 15)} <= y <= {r(yn + 10)} and |x| <= {r(xen + 40)}",
            "mouth": f"{r(y_lip)} <= y < {r(ysn - 2)} and |x| <= {r(xal + 12)}",
            "chin": f"y < {r(y_lip)} and |x| <= {r(xal + 12)}",
            "cheeks": "the rest of the region",
            "order": "first matching rule wins, in the order listed",
        },
        "landmarks_used_head_mm": used,
        "landmarks_missing": sorted({"n", "sn", "me", "t_L", "t_R", "zy'_L", "zy'_R", "en_L", "en_R",
                                     "al_L", "al_R"} - set(head)),
        "assumed": {k: round(float(x), 2) for k, x in assumed.items()},
    }
    return box, bounds, desc


def _outward(mesh: trimesh.Trimesh, v: np.ndarray, f: np.ndarray, labels: np.ndarray,
             m: np.ndarray | None) -> tuple[float, str]:
    """+1 or -1 so that ``sign * winding normal`` points out of the truth, and how it was decided."""
    if mesh.is_watertight:
        vol = float(mesh.volume)
        return (1.0 if vol >= 0 else -1.0), f"closed surface: winding {'kept' if vol >= 0 else 'flipped'} (signed volume)"
    if m is not None:
        in_region = np.all(labels[f] > 0, axis=1)
        if in_region.any():
            # skin of the face looks forward: the area-weighted mean normal has +z in the head frame
            cross = face_cross(v, f[in_region]).sum(axis=0)
            front = float(m[2, :3] @ cross)
            return (1.0 if front >= 0 else -1.0), (
                f"open surface: winding {'kept' if front >= 0 else 'flipped'} so that the face region faces +z")
    return 1.0, "open surface without landmarks: winding taken as outward (unchecked)"


