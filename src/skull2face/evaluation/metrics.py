"""Area-weighted surface errors of a predicted face against the true skin, in millimetres.

Distances are exact point-to-triangle distances (`skull2face.geometry.distances`), in both
directions, over the face region (`skull2face.evaluation.region.face_region`):

* **truth -> prediction** (the main figure): every truth vertex in the region, to the
  predicted surface. "How far is the real face from our prediction." Truth vertices that the
  prediction does not cover at all are still measured (to the nearest predicted surface,
  however far) and the **coverage** says which share of the region lies within
  `COVERAGE_MM` of the prediction.
* **prediction -> truth**: every predicted vertex whose closest truth point lies on a region
  triangle (and not beyond a scan cut of the truth), to the truth surface.

Every figure is **area-weighted**: a vertex stands for a third of the area of its triangles
(`skull2face.geometry.distances.vertex_areas`), so a finely tessellated nose does not outvote
a coarsely tessellated cheek. Figures: RMSE, mean, median, 95th percentile, maximum, the
share within 1, 2 and 2.5 mm (the 2.5 mm share is what Lee et al. 2012 and Miranda et al.
2018 report) and a **signed mean**: positive where the prediction lies outside the true skin
(too thick), negative inside (too thin), judged with the truth's outward normals at the
closest points.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh

from ..anatomy.landmark_set import LandmarkSet
from ..geometry.distances import barycentric, closest_points, mesh_arrays, vertex_areas, vertex_normals
from ..geometry.frame import HeadFrame
from .region import SUBREGIONS, FaceRegion, face_region

# --- settings (all recorded in evaluate.json) ---------------------------------------------------

#: Share-within thresholds, mm. 2.5 mm is the figure of Lee et al. (2012) and Miranda et al. (2018).
WITHIN_MM: tuple[float, ...] = (1.0, 2.0, 2.5)
#: A truth point counts as covered by the prediction if the predicted surface is this close, mm.
COVERAGE_MM = 10.0
#: Warn when the median truth -> prediction distance is this large: the two are probably not
#: in the same coordinates.
MISALIGNED_MM = 20.0

WEIGHTING = ("area-weighted: each vertex stands for 1/3 of the area of its incident triangles; "
             "shares and means are fractions of surface area, not of vertex counts")
SIGN_CONVENTION = ("signed distances are positive where the prediction lies outside the true "
                   "skin (too thick) and negative inside (too thin), using the truth's outward "
                   "normals at the closest points")


# --- figures ------------------------------------------------------------------------------------

def _weighted_quantile(d: np.ndarray, w: np.ndarray, q: float) -> float:
    """Inverted-CDF quantile: the smallest value whose cumulative area share reaches ``q``."""
    order = np.argsort(d, kind="stable")
    cw = np.cumsum(w[order])
    k = int(np.searchsorted(cw, q * cw[-1], side="left"))
    return float(d[order[min(k, len(d) - 1)]])


def _figures(d: np.ndarray, w: np.ndarray, signed: np.ndarray) -> dict:
    """Area-weighted error figures of distances ``d`` (n,) mm with vertex areas ``w`` (n,) mm^2."""
    total = float(w.sum())
    out: dict[str, Any] = {"vertices": len(d), "area_mm2": round(total, 2)}
    keys = ["rmse_mm", "mean_mm", "median_mm", "p95_mm", "max_mm", "signed_mean_mm"]
    keys += [f"share_within_{t:g}mm" for t in WITHIN_MM]
    if len(d) == 0 or total <= 0.0:
        out.update({k: None for k in keys})
        return out
    out["rmse_mm"] = float(np.sqrt(np.sum(w * d * d) / total))
    out["mean_mm"] = float(np.sum(w * d) / total)
    out["median_mm"] = _weighted_quantile(d, w, 0.5)
    out["p95_mm"] = _weighted_quantile(d, w, 0.95)
    out["max_mm"] = float(d.max())
    out["signed_mean_mm"] = float(np.sum(w * signed) / total)
    for t in WITHIN_MM:
        out[f"share_within_{t:g}mm"] = float(w[d <= t].sum() / total)
    return out


def _per_region(d: np.ndarray, w: np.ndarray, s: np.ndarray, labels: np.ndarray) -> dict:
    """`_figures` per sub-region (labels (n,) int: 1.. per `SUBREGIONS`), those present only."""
    return {name: _figures(d[labels == k + 1], w[labels == k + 1], s[labels == k + 1])
            for k, name in enumerate(SUBREGIONS) if np.any(labels == k + 1)}


@dataclass
class PerVertex:
    """Per-vertex results kept for the error mesh and the picture (see `measure`)."""

    truth_error: np.ndarray    # (n_truth,) mm, every truth vertex to the prediction
    truth_signed: np.ndarray   # (n_truth,) mm, + where the prediction is outside the truth
    pred_error: np.ndarray     # (n_pred,) mm
    pred_used: np.ndarray      # (n_pred,) bool


def measure(pred: trimesh.Trimesh, truth: trimesh.Trimesh, region: FaceRegion) -> tuple[dict, PerVertex]:
    """Both directions' figures over a region, and the per-vertex distances behind them.

    Parameters
    ----------
    pred : trimesh.Trimesh
        Predicted face, vertices in mm, in the truth's coordinates.
    truth : trimesh.Trimesh
        True skin surface, mm.
    region : FaceRegion
        The region of ``truth`` that is scored (`skull2face.evaluation.region.face_region`).

    Returns
    -------
    record : dict
        JSON-ready figures (see `evaluate_surfaces`), without the region's description.
    per_vertex : PerVertex
        Distances (mm) of every truth and predicted vertex, for the error mesh and picture.
    """
    vt, ft = mesh_arrays(truth)
    vp, _ = mesh_arrays(pred)
    w_truth = vertex_areas(truth)
    w_pred = vertex_areas(pred)
    normals = vertex_normals(vt, ft) * region.outward_sign

    # truth -> prediction, for every truth vertex (the error mesh shows them all)
    d_t, _, c_t = closest_points(vt, pred)
    s_t = d_t * np.sign(np.einsum("ij,ij->i", c_t - vt, normals))
    # prediction -> truth
    d_p, face_p, c_p = closest_points(vp, truth)
    bary = barycentric(vt, ft, face_p, c_p)
    n_at = np.einsum("ij,ijk->ik", bary, normals[ft[face_p]])
    s_p = d_p * np.sign(np.einsum("ij,ij->i", vp - c_p, n_at))
    used = region.face_mask(ft)[face_p]
    for lid in region.lids:
        # past a scan cut the truth is unknown: a predicted chin below a CT cut is not scored
        used &= ~lid.beyond(vp)
    pred_labels = np.where(used, region.box_labels(c_p), 0).astype(np.int8)

    inside = region.mask
    t_fig = _figures(d_t[inside], w_truth[inside], s_t[inside])
    t_fig["coverage"] = (float(w_truth[inside][d_t[inside] < COVERAGE_MM].sum() / w_truth[inside].sum())
                         if inside.any() and w_truth[inside].sum() > 0 else None)
    p_fig = _figures(d_p[used], w_pred[used], s_p[used])
    record: dict[str, Any] = {
        "units": "mm",
        "weighting": WEIGHTING,
        "sign_convention": SIGN_CONVENTION,
        "truth_to_prediction": {
            "what": "each truth vertex in the region to the predicted surface (exact point-to-triangle "
                    "distance); the main figure",
            **t_fig,
            "coverage_rule": f"share of the region's area within {COVERAGE_MM:g} mm of the predicted surface",
            "regions": _per_region(d_t[inside], w_truth[inside], s_t[inside], region.labels[inside])
            if region.description.get("kind") == "face" else {},
        },
        "prediction_to_truth": {
            "what": "each predicted vertex whose closest truth point lies on a region triangle (and not "
                    "beyond a scan cut of the truth) to the truth surface",
            **p_fig,
            "regions": _per_region(d_p[used], w_pred[used], s_p[used], pred_labels[used])
            if region.description.get("kind") == "face" else {},
        },
        "symmetric": {
            "mean_of_means_mm": (None if t_fig["mean_mm"] is None or p_fig["mean_mm"] is None
                                 else (t_fig["mean_mm"] + p_fig["mean_mm"]) / 2.0),
            "hausdorff_mm": (None if t_fig["max_mm"] is None or p_fig["max_mm"] is None
                             else max(t_fig["max_mm"], p_fig["max_mm"])),
        },
        "warnings": [],
    }
    if t_fig["median_mm"] is not None and t_fig["median_mm"] > MISALIGNED_MM:
        record["warnings"].append(
            f"median truth -> prediction distance is {t_fig['median_mm']:.1f} mm: the prediction is "
            "probably not in the truth's coordinates (or not of this subject)")
    if t_fig["coverage"] is not None and t_fig["coverage"] < 0.9:
        record["warnings"].append(
            f"the prediction covers only {100 * t_fig['coverage']:.0f} % of the region (within "
            f"{COVERAGE_MM:g} mm); uncovered skin is still scored, at its distance to the prediction")
    return record, PerVertex(d_t, s_t, d_p, used)


def evaluate_surfaces(pred_mesh: trimesh.Trimesh, truth_mesh: trimesh.Trimesh,
                      landmarks: LandmarkSet | Mapping[str, Any] | None,
                      frame: np.ndarray | HeadFrame | None = None, *,
                      region: FaceRegion | None = None) -> dict:
    """Area-weighted surface errors of a predicted face against the true skin, both directions.

    Parameters
    ----------
    pred_mesh : trimesh.Trimesh
        Predicted face, vertices in mm, in the truth's coordinates.
    truth_mesh : trimesh.Trimesh
        True skin surface, mm.
    landmarks : LandmarkSet or mapping of str to array_like (3,), or None
        The truth's face landmarks (truth coordinates), which fix the region (`face_region`).
        None scores the whole truth surface except its lids (synthetic tests only).
    frame : array_like (4, 4) or HeadFrame, optional
        Truth input -> head transform; from the landmarks when None.
    region : FaceRegion, optional
        A region already computed for this truth (then ``landmarks`` and ``frame`` are unused).

    Returns
    -------
    dict
        JSON-ready. ``"truth_to_prediction"`` and ``"prediction_to_truth"`` each hold
        ``vertices``, ``area_mm2``, ``rmse_mm``, ``mean_mm``, ``median_mm``, ``p95_mm``,
        ``max_mm``, ``signed_mean_mm`` and ``share_within_{1,2,2.5}mm`` (fractions of area, 0..1),
        plus ``"regions"`` with the same figures per sub-region; ``truth_to_prediction`` also has
        ``coverage`` (share of the region's area within `COVERAGE_MM` of the prediction).
        ``"region"`` describes the region, ``"weighting"`` and ``"sign_convention"`` say how to
        read the figures, ``"warnings"`` lists anything suspicious. All distances in mm.
    """
    if region is None:
        region = face_region(truth_mesh, landmarks, frame)
    if len(region.labels) != len(truth_mesh.vertices):
        raise ValueError("the region was computed for another truth mesh (vertex counts differ)")
    record, _ = measure(pred_mesh, truth_mesh, region)
    record["region"] = region.description
    return record


