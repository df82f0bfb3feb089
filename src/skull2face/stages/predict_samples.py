"""``predict --samples N``: plausible whole heads around the predicted one, and its uncertainty map.

Writes, into predict's folder: ``samples/face_XX.ply`` (each a whole closed head, input
coordinates, mm), ``uncertainty.ply`` (the predicted head with per-vertex ``sd_mm``, ``p05_mm``,
``p95_mm`` and ``range_mm`` along its outward normal: scalar fields in MeshLab, CloudCompare,
ParaView), ``samples.png`` (a contact sheet) and ``uncertainty.png`` (the SD as a heat map).
The draws are `skull2face.statistics.face_samples`'; the band's calibration is
``benchmarks/uncertainty_calibration.py``'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..io.meshes import save_mesh
from ..geometry.depthmap import RenderSpec


def write_samples(out: Path, face, skull, landmarks, spec: RenderSpec, prior, table, settings: Any,
             frame: np.ndarray, picture: bool) -> dict:
    """Draw ``settings.samples`` plausible heads around the predicted head ``face`` and write
    them, the uncertainty map and their pictures (`skull2face.statistics.face_samples`).

    Parameters
    ----------
    out : pathlib.Path
        The claimed predict folder.
    face : trimesh.Trimesh
        The predicted whole head (the fitted model head, or it corrected), input coordinates, mm.
    skull, landmarks, spec, prior, table
        As `skull2face.statistics.face_samples.sample_heads` takes them (``spec``: the grid the
        fit used).
    settings : PredictSettings
        Its ``samples`` and ``seed``.
    frame : numpy.ndarray, shape (4, 4)
        Input -> head frame.
    picture : bool
        Also write ``samples.png`` and ``uncertainty.png``.

    Returns
    -------
    dict
        ``predict.json``'s ``samples`` record, with ``outputs`` (file names) to move into the
        record's outputs.
    """
    from ..io.error_mesh import write_scalar_ply
    from ..progress import progress
    from ..statistics.face_samples import BAND, SampleSettings, sample_heads, spread

    drawn = SampleSettings(n=settings.samples, seed=settings.seed)
    bar = progress(total=drawn.n, desc="plausible heads", unit="head")
    try:
        _, disp = sample_heads(skull, landmarks, spec, prior, drawn, table=table, progress=lambda i: bar.update(1))
    finally:
        bar.close()
    if disp.shape[1] != len(face.vertices):  # never: the method's head is the fitted model head
        raise RuntimeError("the samples do not share the predicted head's vertices")
    (out / "samples").mkdir()
    files = []
    heads = []
    for i, d in enumerate(disp):
        head = face.copy()
        head.vertices = np.asarray(face.vertices) + d
        heads.append(head)
        files.append(save_mesh(head, out / "samples" / f"face_{i + 1:02d}.ply").relative_to(out).as_posix())
    band = spread(face, disp)
    write_scalar_ply(face, {k: band[k] for k in ("sd_mm", "p05_mm", "p95_mm", "range_mm")}, out / "uncertainty.ply", [
        f"skull2face predict --samples {drawn.n}: the predicted face with its uncertainty per vertex, mm",
        f"along the outward normal over the samples: sd_mm (SD), p05_mm / p95_mm ({BAND[0]:g}-{BAND[1]:g} %), "
        "range_mm = p95 - p05"])
    outputs = {"samples": "samples/", "uncertainty": "uncertainty.ply"}
    if picture:
        from ..report.heatmap import value_heatmap_figure
        from ..report.pictures import samples_figure, save_png

        save_png(samples_figure(heads, frame), out / "samples.png")
        save_png(value_heatmap_figure(face, band["sd_mm"], frame, "uncertainty of the predicted face: SD over "
                                      f"{drawn.n} plausible heads (mm, along the surface normal)",
                                      "SD over the plausible heads (mm)"), out / "uncertainty.png")
        outputs.update({"samples_picture": "samples.png", "uncertainty_picture": "uncertainty.png"})
    front = _front_share(face, frame)
    return {"n": drawn.n, "seed": drawn.seed, "files": files, "sd_scale": drawn.sd_scale,
            "correlation_mm": drawn.correlation_mm, "global_share": drawn.global_share,
            "band_percent": list(BAND), "outputs": outputs,
            "face_sd_mm": {"median": round(float(np.median(band["sd_mm"][front])), 2),
                           "p95": round(float(np.percentile(band["sd_mm"][front], 95)), 2)},
            "face_band_mm": {"median": round(float(np.median(band["range_mm"][front])), 2)},
            "calibration": "the thickness SDs are scaled so that the 90 % band held about 90 % of the true skin of "
                           "real heads kept out (benchmarks/uncertainty_calibration.py)"}


def _front_share(face, frame: np.ndarray) -> np.ndarray:
    """Vertices of the face proper: in front of the head's coronal plane through nasion - 60 mm
    and above menton (head frame y > -130 mm), for the summary figures."""
    from ..geometry.frame import apply

    p = apply(frame, np.asarray(face.vertices, np.float64))
    sel = (p[:, 2] > -60.0) & (p[:, 1] > -130.0) & (p[:, 1] < 80.0)
    return sel if sel.any() else np.ones(len(p), dtype=bool)


__all__ = ["write_samples"]
