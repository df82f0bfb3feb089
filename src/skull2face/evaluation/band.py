"""Does a face's uncertainty band hold the true skin? The calibration of `--samples`.

The band of a predicted head is, per vertex, the 5-95 % range of its plausible faces'
displacements along the head's outward normal (`skull2face.statistics.face_samples.spread`).
A true skin point is inside the band when its offset from the predicted surface, along the
surface's normal at its closest point, lies between the band's limits there (interpolated
over the closest triangle). For a calibrated 90 % band about 90 % of the true face lies inside.

Torch-free; mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import trimesh

from ..geometry.distances import barycentric, closest_points, vertex_areas, vertex_normals


def band_offsets(points: np.ndarray, head: trimesh.Trimesh, lo_mm: np.ndarray,
                 hi_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets of points from a predicted surface and the band's limits under them.

    Parameters
    ----------
    points : numpy.ndarray, shape (n, 3), mm
        True skin points (input coordinates).
    head : trimesh.Trimesh
        The predicted head (V vertices), same coordinates.
    lo_mm, hi_mm : numpy.ndarray, shape (V,), mm
        The band's limits along the head's outward vertex normals (+ outward).

    Returns
    -------
    offset : numpy.ndarray, shape (n,), float64, mm
        Signed offset of each point along the interpolated normal at its closest point (+: the
        true skin lies outside the prediction).
    lo, hi : numpy.ndarray, shape (n,), float64, mm
        The band's limits interpolated at the closest points.
    """
    v = np.asarray(head.vertices, np.float64)
    f = np.asarray(head.faces, np.int64)
    _, tri, closest = closest_points(points, head)
    bary = barycentric(v, f, tri, closest)
    corners = f[tri]
    n = np.einsum("ij,ijk->ik", bary, vertex_normals(v, f)[corners])
    n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    offset = np.einsum("ij,ij->i", np.asarray(points, np.float64) - closest, n)
    lo = np.einsum("ij,ij->i", bary, np.asarray(lo_mm, np.float64)[corners])
    hi = np.einsum("ij,ij->i", bary, np.asarray(hi_mm, np.float64)[corners])
    return offset, lo, hi


def band_coverage(truth: trimesh.Trimesh, labels: np.ndarray, head: trimesh.Trimesh, lo_mm: np.ndarray,
                  hi_mm: np.ndarray, region_names: Sequence[str]) -> dict:
    """The share of the true face inside the band, over the scored region and per sub-region.

    Parameters
    ----------
    truth : trimesh.Trimesh
        The true skin, input coordinates, mm.
    labels : numpy.ndarray, shape (n_truth_vertices,), int
        0 outside the scored face region, ``k`` >= 1 in ``region_names[k - 1]``
        (`skull2face.evaluation.region.FaceRegion.labels`).
    head : trimesh.Trimesh
    lo_mm, hi_mm : numpy.ndarray, shape (V,), mm
        As in `band_offsets`.
    region_names : sequence of str

    Returns
    -------
    dict
        ``inside`` (area-weighted share of the region's true skin inside the band, 0..1),
        ``below`` / ``above`` (shares inside the band's inner limit / outside its outer one),
        ``width_mm`` (median band width over the region), and ``regions``: the same per
        sub-region (None where a sub-region has no vertex).
    """
    labels = np.asarray(labels)
    sel = labels > 0
    area = vertex_areas(truth)
    offset, lo, hi = band_offsets(np.asarray(truth.vertices)[sel], head, lo_mm, hi_mm)
    w, lab = area[sel], labels[sel]

    def figures(m: np.ndarray) -> dict | None:
        if not m.any():
            return None
        ww = w[m] / w[m].sum()
        inside = (offset[m] >= lo[m]) & (offset[m] <= hi[m])
        return {"inside": round(float(ww @ inside), 4), "below": round(float(ww @ (offset[m] < lo[m])), 4),
                "above": round(float(ww @ (offset[m] > hi[m])), 4),
                "width_mm": round(float(np.median(hi[m] - lo[m])), 2)}

    out = figures(np.ones(len(offset), dtype=bool)) or {"inside": None}
    out["regions"] = {name: figures(lab == k + 1) for k, name in enumerate(region_names)}
    return out


__all__ = ["band_coverage", "band_offsets"]
