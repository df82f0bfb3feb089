"""The ``envelope`` baseline: the skull grown by one constant soft-tissue thickness.

The union of balls of radius ``r`` around every point of the skull surface, and its outer
surface: no landmarks, no learning, no training data. It is the trivial answer every method
must beat. The default ``r = 6 mm`` is about the published mean thickness at glabella (5.5),
nasion (6.0), opisthocranion (6.0) and vertex (5.0 mm) in Hona & Stephan 2024
(``data/tissue/fstt_hona_stephan_2024.csv``).

Method: a distance field on a regular grid (``voxel_mm``) around the skull. Voxels are first
marked where surface samples (at most ``voxel_mm`` apart) fall, and a Euclidean distance
transform gives every voxel its distance to the nearest marked voxel. The air outside the
envelope is the part of ``{distance > r}`` connected to the grid's border; everything else
(the cranial cavity, the sinuses) is filled. Where the outer surface will be (voxels within
two voxels of ``r`` and of the outside air), the distance is replaced by the exact distance to
the skull's triangles (libigl). Marching cubes at level ``r`` then gives the outer offset
surface with sub-voxel accuracy.
"""

from __future__ import annotations

from typing import Any

import igl
import numpy as np
import trimesh
from scipy import ndimage

from ..statistics.skull_fit import ENVELOPE_RADIUS_MM  # the one 6 mm: glabella, nasion, vault (Hona & Stephan 2024)

VOXEL_MM = 1.0
"""Grid spacing of the distance field, mm."""


def _surface_samples(skull: trimesh.Trimesh, spacing_mm: float) -> np.ndarray:
    """Points on the skull surface no more than about ``spacing_mm`` apart (vertices, plus
    points spread over every triangle in proportion to its area), mm."""
    v = np.asarray(skull.vertices, dtype=np.float64)
    f = np.asarray(skull.faces, dtype=np.int64)
    tri = v[f]
    # per triangle, a barycentric lattice with n steps per side: edge / n <= spacing
    edge = np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2).max(axis=1)
    steps = np.ceil(edge / spacing_mm).astype(np.int64)
    out = [v]
    for n in np.unique(steps[steps > 1]):
        i, j = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
        keep = (i + j) <= n
        a, b = i[keep] / n, j[keep] / n
        w = np.stack([1.0 - a - b, a, b], axis=1)  # (k, 3) barycentric weights
        sel = tri[steps == n]  # (m, 3, 3)
        out.append(np.einsum("kc,mcd->mkd", w, sel).reshape(-1, 3))
    return np.concatenate(out)


def envelope_mesh(skull: Any, radius_mm: float = ENVELOPE_RADIUS_MM, voxel_mm: float = VOXEL_MM) -> trimesh.Trimesh:
    """The outer surface of the union of balls of radius ``radius_mm`` around the skull surface.

    Parameters
    ----------
    skull : trimesh.Trimesh
        Skull surface, mm, any coordinates (need not be watertight).
    radius_mm : float
        The constant soft-tissue thickness, mm (> 0).
    voxel_mm : float
        Grid spacing of the distance field, mm (> 0).

    Returns
    -------
    trimesh.Trimesh
        The envelope, in the skull's own coordinates (mm), outward-facing triangles.
    """
    from skimage import measure

    if not radius_mm > 0 or not voxel_mm > 0:
        raise ValueError(f"radius_mm and voxel_mm must be > 0, got {radius_mm}, {voxel_mm}")
    v = np.ascontiguousarray(skull.vertices, dtype=np.float64)
    f = np.ascontiguousarray(skull.faces, dtype=np.int64)
    pts = _surface_samples(skull, voxel_mm)
    pad = radius_mm + 3.0 * voxel_mm
    origin = pts.min(axis=0) - pad
    shape = tuple(int(s) for s in np.ceil((pts.max(axis=0) + pad - origin) / voxel_mm) + 1)
    ijk = np.rint((pts - origin) / voxel_mm).astype(np.int64)
    marked = np.zeros(shape, dtype=bool)
    marked[ijk[:, 0], ijk[:, 1], ijk[:, 2]] = True
    dist = ndimage.distance_transform_edt(~marked, sampling=voxel_mm)
    # the outside air: the components of {dist > r} that touch the grid's border
    labels, _ = ndimage.label(dist > radius_mm)
    border = np.unique(np.concatenate([labels[0].ravel(), labels[-1].ravel(), labels[:, 0].ravel(),
                                       labels[:, -1].ravel(), labels[:, :, 0].ravel(), labels[:, :, -1].ravel()]))
    outside = np.isin(labels, border[border > 0])
    dist[(dist > radius_mm) & ~outside] = 0.0  # cavities are filled
    band = (np.abs(dist - radius_mm) <= 2.0 * voxel_mm) & ndimage.binary_dilation(outside, iterations=2)
    centres = origin + np.argwhere(band) * voxel_mm
    dist[band] = np.sqrt(igl.point_mesh_squared_distance(centres, v, f)[0])
    verts, faces, _, _ = measure.marching_cubes(dist.astype(np.float32), level=radius_mm,
                                                spacing=(voxel_mm,) * 3)
    mesh = trimesh.Trimesh(verts + origin, faces[:, ::-1], process=False)
    if mesh.volume < 0:
        mesh.invert()
    return mesh


def envelope_face(skull_mesh: Any, spec: Any, radius_mm: float = ENVELOPE_RADIUS_MM,
                  voxel_mm: float = VOXEL_MM, info: dict | None = None):
    """The envelope's face map in the target's render spec.

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        The target skull, input coordinates, mm.
    spec : skull2face.geometry.depthmap.RenderSpec
        The target's render spec (head frame and grid).
    radius_mm, voxel_mm : float
        As in `envelope_mesh`.
    info : dict, optional
        Filled with the settings used.

    Returns
    -------
    skull2face.geometry.depthmap.DepthMap
        Heights (mm) of the envelope seen from the front of the head frame.
    """
    from ..geometry.depthmap import render

    if info is not None:
        info.update({"radius_mm": float(radius_mm), "voxel_mm": float(voxel_mm),
                     "rule": "union of balls around the skull surface, outer surface (Hona & Stephan 2024 "
                             "means at glabella, nasion and the vault are 5-6 mm)"})
    return render(envelope_mesh(skull_mesh, radius_mm, voxel_mm), spec)
