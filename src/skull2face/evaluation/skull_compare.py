"""How far an extracted skull lies from the true one, per face region (MR skull extraction's check).

A skull extracted from an MR head (e.g. a pseudo-T1 made from a CT with
`skull2face.dataset.pseudo_mr.pseudo_t1`) is compared with the skull extracted from the CT
itself, in the same LPS millimetres: for every vertex of the test skull in the front of the
head, the exact unsigned distance to the true skull's surface (`geometry.distances`,
libigl). The face's regions are those of `skull2face.evaluation.region` (the boxes of
`face_region` / `subregion_boxes`, fixed by the truth's face landmarks), so skulls are scored
over the same parts of the face as predicted faces are. Vertices whose nearest true point lies
on a scan-cut lid of the true skull (`geometry.lids.find_lids`) are left out: where the scan
ends, neither skull is real.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import trimesh

from ..anatomy.landmark_set import points_of
from ..geometry.distances import closest_points, mesh_arrays
from ..geometry.frame import apply, head_frame
from ..geometry.lids import LID_SNAP_DEG, find_lids
from .region import SUBREGIONS, FaceRegion, subregion_boxes

#: The upper percentile reported per region.
PERCENTILE = 95.0


def _labeller(regions: FaceRegion | Mapping[str, Any], surface: str):
    """``labels(points (n, 3) input mm) -> (n,) int8`` and a description of where it came from."""
    if isinstance(regions, FaceRegion):
        if regions.frame is None:
            raise ValueError("the FaceRegion has no head frame (made without landmarks): it has no front of the face")
        return regions.box_labels, {"from": "FaceRegion (evaluation.region.face_region)",
                                    "bounds_head_mm": regions.bounds}
    pts = points_of(regions)
    frame = head_frame(pts, surface)  # raises, naming what is missing
    box, bounds = subregion_boxes({n: apply(frame.matrix, p) for n, p in pts.items()})
    return (lambda p: box(apply(frame.matrix, p))), {
        "from": f"{surface} landmarks ({', '.join(frame.landmarks)}) -> evaluation.region.subregion_boxes",
        "bounds_head_mm": {k: round(float(v), 2) for k, v in bounds.items()}}


def _stats(d: np.ndarray, percentile: float) -> dict:
    if d.size == 0:
        return {"vertices": 0, "mean_mm": None, f"p{percentile:g}_mm": None, "max_mm": None}
    return {"vertices": int(d.size), "mean_mm": round(float(d.mean()), 3),
            f"p{percentile:g}_mm": round(float(np.percentile(d, percentile)), 3), "max_mm": round(float(d.max()), 3)}


def skull_distance_by_region(test_skull: trimesh.Trimesh, true_skull: trimesh.Trimesh,
                             regions: FaceRegion | Mapping[str, Any], surface: str = "face",
                             percentile: float = PERCENTILE) -> dict:
    """Distance from a test skull to the true skull over the front of the head, per face region.

    Parameters
    ----------
    test_skull : trimesh.Trimesh
        The skull to judge (e.g. from an MR), vertices in mm, in the true skull's coordinates.
    true_skull : trimesh.Trimesh
        The true skull (e.g. from the CT), vertices in mm.
    regions : FaceRegion or mapping of str to array_like (3,)
        Which part of the head is the face, and its sub-regions (`evaluation.region.SUBREGIONS`).
        Either a `FaceRegion` of the true skin (`face_region(true_skin, face_landmarks)`; its
        boxes are applied to the test skull's vertices), or landmarks in the skulls'
        coordinates (mm), e.g. from ``detect_landmarks(true_skin, "face", lps_frame(true_skin))``:
        the head frame is built from them (`geometry.frame.head_frame`) and the boxes from
        `subregion_boxes` (missing landmarks assumed as `face_region` does).
    surface : {"face", "skull"}
        Which landmark set ``regions`` holds, when it is a mapping (the boxes are defined by face
        landmarks; skull landmarks give the frame, the face's box landmarks are then assumed).
    percentile : float
        The upper percentile reported (95).

    Returns
    -------
    dict
        JSON-ready. ``"face"``: the whole front of the head, and one entry per sub-region in
        ``SUBREGIONS`` order; each ``{"vertices", "mean_mm", "p95_mm", "max_mm"}`` of the
        unsigned distances (mm) from the test skull's vertices in that region to the true
        skull's surface (``None`` figures where a region holds no vertex). Also
        ``"left_out_on_lids"`` (vertices nearest a scan-cut lid of the truth), ``"regions"``
        (where the boxes came from, their bounds) and ``"units": "mm"``.
    """
    label_of, how = _labeller(regions, surface)
    v_test = np.asarray(test_skull.vertices, dtype=np.float64)
    labels = np.asarray(label_of(v_test), dtype=np.int8)
    front = labels > 0
    dist, face, _ = closest_points(v_test[front], true_skull)
    v, f = mesh_arrays(true_skull)
    on_lid = np.zeros(len(f), dtype=bool)
    for lid in find_lids(v, f, snap_deg=LID_SNAP_DEG):
        on_lid[lid.faces] = True
    keep = ~on_lid[face]
    lab = labels[front][keep]
    d = dist[keep]
    out: dict[str, Any] = {"units": "mm", "face": _stats(d, percentile)}
    for k, name in enumerate(SUBREGIONS):
        out[name] = _stats(d[lab == k + 1], percentile)
    out["left_out_on_lids"] = int(np.count_nonzero(~keep))
    out["test_vertices"] = int(len(v_test))
    out["regions"] = how
    return out


__all__ = ["PERCENTILE", "skull_distance_by_region"]
