"""Stage ``evaluate``: how far is the real face from the predicted one, in millimetres.

A prediction is measured against the true skin surface (from the subject's CT or a face scan)
over one **face region** that depends only on the truth and its face landmarks, never on the
method being judged (`skull2face.evaluation.region.face_region`), with exact point-to-triangle
distances in both directions, area-weighted (`skull2face.evaluation.metrics`). The stage
writes the figures (``evaluate.json``), the truth coloured by its error (``error_on_truth.ply``,
`skull2face.io.error_mesh`) and a heat map (``heatmap.png``, `skull2face.report.heatmap`).

Head-frame convention (`skull2face.geometry.frame`): +x the subject's left, +y up, +z
anterior, origin at skin nasion on the mid-sagittal plane; millimetres throughout.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
import trimesh

from ..anatomy.landmark_set import LandmarkSet
from ..errors import InputError
from ..evaluation.metrics import COVERAGE_MM, WITHIN_MM, measure
from ..evaluation.region import (
    ASSUMED_MM,
    BELOW_MENTON_MM,
    EAR_MARGIN_MM,
    FOREHEAD_MM,
    NO_TRAGION_Z_MM,
    NO_ZYGION_HALF_WIDTH_MM,
    SUBREGIONS,
    ZYGION_MARGIN_MM,
    face_region,
)
from ..geometry import lids
from ..io.atomic import write_json
from ..io.error_mesh import write_error_ply
from ..io.landmarks import read_landmarks
from ..io.meshes import load_mesh
from ..io.run_folder import run_folder
from ..report.heatmap import HEATMAP_MAX_MM, heatmap_figure
from ..report.pictures import save_png

log = logging.getLogger(__name__)


def _detect_truth_landmarks(truth: trimesh.Trimesh, truth_path: Path) -> tuple[LandmarkSet, str]:
    """The truth's face landmarks detected on it, and a note of the coarse pose used."""
    from ..anatomy.detect import detect_landmarks
    from ..anatomy.locate import PoseSettings, coarse_pose

    coarse, record = coarse_pose(truth, truth_path, "face", PoseSettings())
    how = ("detected on the truth (coarse pose: LPS axes of the CT it came from)" if record["mode"] == "lps"
           else "detected on the truth (coarse pose: auto_frame)")
    lms = detect_landmarks(truth, "face", coarse)
    from ..anatomy.locate import skull_instead

    problem = skull_instead(truth, truth_path, face=lms)  # a skull given as the truth: its orbits are open
    if problem is not None:
        raise InputError(truth_path, problem)
    return lms, how


def evaluate(pred_path: str | os.PathLike, truth_path: str | os.PathLike, out_dir: str | os.PathLike,
             landmarks_path: str | os.PathLike | None = None, name: str | None = None) -> dict:
    """Stage ``evaluate``: score a predicted face against the true skin.

    Parameters
    ----------
    pred_path : path-like
        Predicted face mesh (PLY, OBJ, STL, OFF, GLB), mm, in the truth's coordinates.
    truth_path : path-like
        True skin mesh, mm (e.g. ``skin.ply`` from ``skull2face extract``).
    out_dir : path-like
        Created if needed. Receives ``evaluate.json`` (figures, region, inputs with sha256,
        settings, timings), ``error_on_truth.ply`` (truth mesh with per-vertex ``error_mm``,
        ``signed_error_mm`` and ``region``; see `skull2face.io.error_mesh.write_error_ply`)
        and ``heatmap.png`` (front and side views coloured 0..5 mm), all written atomically.
    landmarks_path : path-like, optional
        The truth's face landmarks (any format `read_landmarks` reads), in truth coordinates.
        Without it they are detected on the truth (`skull2face.anatomy.detect.detect_landmarks`;
        coarse pose from the LPS axes when an ``extract.json`` sits beside the truth file, else
        `skull2face.geometry.pose.auto_frame`).
    name : str, optional
        Shown in the picture and the record; the prediction's file name by default.

    Returns
    -------
    dict
        The record written to ``evaluate.json``.

    Raises
    ------
    InputError
        A mesh or the landmark file is missing, unreadable or wrongly scaled, or the landmarks
        cannot fix the face region (missing nasion / a bilateral pair / subnasale, or not on
        the truth surface).
    """
    with run_folder(out_dir, "evaluate", [pred_path, truth_path, landmarks_path]) as out:
        return _evaluate(Path(pred_path), Path(truth_path), out, landmarks_path, name)


def _evaluate(pred_path: Path, truth_path: Path, out: Path, landmarks_path, name: str | None) -> dict:
    """`evaluate` into the claimed folder ``out``."""
    from .. import __version__
    from ..io.volumes import file_sha256

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    name = name or pred_path.name
    pred = load_mesh(pred_path)
    truth = load_mesh(truth_path)
    timings["load_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    if landmarks_path is not None:
        lms = read_landmarks(landmarks_path, surface="face")
        lm_source, lm_where = "given", Path(landmarks_path)
    else:
        lms, lm_source = _detect_truth_landmarks(truth, truth_path)
        lm_where = truth_path
    timings["landmarks_s"] = time.perf_counter() - t

    t = time.perf_counter()
    try:
        region = face_region(truth, lms)
    except ValueError as exc:
        hint = "" if landmarks_path is not None else "; give the truth's face landmarks (--landmarks)"
        raise InputError(lm_where, f"cannot fix the face region: {exc}{hint}") from None
    if not region.mask.any():
        raise InputError(lm_where, "the face region holds no truth vertex: check the landmarks")
    timings["region_s"] = time.perf_counter() - t

    t = time.perf_counter()
    record, per = measure(pred, truth, region)
    timings["distances_s"] = time.perf_counter() - t
    band = _band(pred_path, pred, truth, region)

    t = time.perf_counter()
    ply = write_error_ply(truth, per.truth_error, per.truth_signed, region.labels, out / "error_on_truth.ply",
                          region_names=SUBREGIONS)
    back = trimesh.load(str(ply), process=False)  # an independent reader must see what we wrote
    raw = back.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    if (len(back.vertices) != len(truth.vertices) or len(back.faces) != len(truth.faces) or raw is None
            or not np.array_equal(raw["error_mm"], per.truth_error.astype(np.float32))):
        raise RuntimeError(f"{ply}: the error mesh does not read back as written")
    timings["error_mesh_s"] = time.perf_counter() - t

    t = time.perf_counter()
    tp = record["truth_to_prediction"]
    fig = heatmap_figure(truth, per.truth_error, region, (
        f"{name}: distance from the true skin to the prediction (area-weighted over the face region)\n"
        f"RMSE {tp['rmse_mm']:.2f} mm, mean {tp['mean_mm']:.2f} mm, signed mean {tp['signed_mean_mm']:+.2f} mm, "
        f"within 2.5 mm {100 * tp['share_within_2.5mm']:.0f} %, coverage {100 * tp['coverage']:.0f} %"))
    save_png(fig, out / "heatmap.png")
    timings["picture_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    inputs = {
        "prediction": {"path": str(pred_path.resolve()), "sha256": file_sha256(pred_path),
                       "vertices": len(pred.vertices), "faces": len(pred.faces)},
        "truth": {"path": str(truth_path.resolve()), "sha256": file_sha256(truth_path),
                  "vertices": len(truth.vertices), "faces": len(truth.faces)},
        "landmarks": {"source": lm_source,
                      "path": None if landmarks_path is None else str(Path(landmarks_path).resolve()),
                      "sha256": None if landmarks_path is None else file_sha256(landmarks_path),
                      "points_input_mm": {n: [float(c) for c in p] for n, p in lms.points.items()},
                      "notes": {n: m for n, m in lms.meta.items() if m}},
    }
    full = {
        "stage": "evaluate",
        "skull2face_version": __version__,
        "name": name,
        "coordinates": "the truth mesh's input coordinates, mm; region boxes in its head frame",
        "inputs": inputs,
        **record,
        "band": band,
        "region": region.description,
        "settings": {
            "distance": "exact point-to-triangle (libigl point_mesh_squared_distance)",
            "within_mm": list(WITHIN_MM), "coverage_mm": COVERAGE_MM,
            "region": {"ear_margin_mm": EAR_MARGIN_MM, "no_tragion_z_mm": NO_TRAGION_Z_MM,
                       "forehead_mm": FOREHEAD_MM, "below_menton_mm": BELOW_MENTON_MM,
                       "zygion_margin_mm": ZYGION_MARGIN_MM,
                       "no_zygion_half_width_mm": NO_ZYGION_HALF_WIDTH_MM,
                       "assumed_when_missing_mm": ASSUMED_MM},
            "lids": {"depth_mm": lids.LID_DEPTH_MM, "slab_mm": lids.LID_SLAB_MM,
                     "min_area_mm2": lids.LID_MIN_AREA_MM2, "max_wall_alignment": lids.LID_MAX_WALL_ALIGNMENT,
                     "facing_deg": lids.LID_FACING_DEG, "body_mm": lids.LID_BODY_MM,
                     "snap_deg": lids.LID_SNAP_DEG},
            "quantiles": "inverted area-weighted CDF (smallest value whose area share reaches q)",
            "heatmap_max_mm": HEATMAP_MAX_MM,
        },
        "outputs": {"record": "evaluate.json", "error_mesh": "error_on_truth.ply", "picture": "heatmap.png"},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json(out / "evaluate.json", full)
    for w in full["warnings"]:
        log.warning("%s", w)
    log.info("evaluate %s: truth->prediction RMSE %.2f mm, mean %.2f mm, within 2.5 mm %.0f %%, coverage %.0f %%",
             name, tp["rmse_mm"], tp["mean_mm"], 100 * tp["share_within_2.5mm"], 100 * tp["coverage"])
    return full


def _band(pred_path: Path, pred: trimesh.Trimesh, truth: trimesh.Trimesh, region) -> dict | None:
    """The share of the true skin inside the prediction's 90 % band, when ``predict --samples``
    wrote ``uncertainty.ply`` beside the prediction for these very vertices; else None."""
    from ..evaluation.band import band_coverage
    from ..io.error_mesh import read_scalar_ply

    path = pred_path.parent / "uncertainty.ply"
    if not path.is_file():
        return None
    try:
        head, values = read_scalar_ply(path)
    except InputError:
        return None
    if (len(head.vertices) != len(pred.vertices) or "p05_mm" not in values
            or np.abs(np.asarray(head.vertices) - np.asarray(pred.vertices)).max() > 0.01):
        return None  # another face's band
    cov = band_coverage(truth, region.labels, head, values["p05_mm"], values["p95_mm"], SUBREGIONS)
    return {**cov, "file": str(path.resolve()), "band": "5-95 % of the plausible heads (predict --samples)"}


def echo(record: dict) -> str:
    """What ``skull2face evaluate`` prints: the metrics row and the files written."""
    from ..report.tables import metrics_table

    band = record.get("band")
    inside = (f"\n{100 * band['inside']:.0f} % of the true face lies inside the prediction's 90 % band "
              f"(median width {band['width_mm']:.1f} mm)" if band else "")
    return (f"{metrics_table({'prediction': record['truth_to_prediction']})}{inside}\n"
            f"wrote {', '.join(record['outputs'].values())}")
