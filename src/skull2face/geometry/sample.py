"""An even sample of a triangle surface that does not depend on how the surface is stored.

`surface_cells` cuts space into cubic cells of a given size and returns, for every cell the
surface passes through, the area-weighted mean of the surface inside it (the surface is first
split into pieces no longer than half a cell, so that a large triangle spreads over the cells
it crosses). The result depends on the surface only, not on the order of its triangles or
vertices, and hardly on its tessellation: re-meshing, subdividing or removing a vertex moves
a cell's mean by a fraction of the mesh's edge length, and only cells at the edge of such a
change. It is what the coarse pose (`skull2face.geometry.pose`) and the symmetry refinement
of landmark detection (`skull2face.anatomy.detect.work`) score mirror planes on, instead of a
random sample (whose points depend on the triangle order through the seeded draw).

The cells are aligned with the coordinate axes (and, in `surface_cells`, anchored at the
surface's centroid), so a turn of the mesh other than by multiples of 90 degrees about the
axes changes which surface falls in which cell: the sample's points move by up to a cell,
which the planes fitted to thousands of them average out.
"""

from __future__ import annotations

import numpy as np
import trimesh

__all__ = ["surface_pieces", "cell_means", "surface_cells", "cell_size_for"]


def surface_pieces(vertices: np.ndarray, faces: np.ndarray, max_edge: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centroids and areas of the triangles after splitting every edge longer than ``max_edge``.

    Parameters
    ----------
    vertices : numpy.ndarray, shape (n, 3), float, mm
    faces : numpy.ndarray, shape (f, 3), int
    max_edge : float
        Longest edge kept, mm (> 0).

    Returns
    -------
    centroids : numpy.ndarray, shape (m, 3), float64, mm
    areas : numpy.ndarray, shape (m,), float64, mm^2
    parent : numpy.ndarray, shape (m,), int64
        The input triangle each piece comes from.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    tri = v[f]
    parent = np.arange(len(f))
    # split each triangle into k^2 similar ones (k per triangle, from its longest edge):
    # barycentric grid, order-free and exact in area
    longest = np.max(np.linalg.norm(tri - np.roll(tri, 1, axis=1), axis=2), axis=1)
    k = np.maximum(1, np.ceil(longest / max_edge)).astype(np.int64)
    k = np.minimum(k, 64)
    cents, areas, parents = [], [], []
    for kk in np.unique(k):
        sel = np.flatnonzero(k == kk)
        t = tri[sel]
        a, b, c = t[:, 0], t[:, 1], t[:, 2]
        # centroids of the k^2 sub-triangles in barycentric coordinates (i + j <= k - 1 "up", and "down")
        bary = []
        for i in range(kk):
            for j in range(kk - i):
                bary.append(((i + 1 / 3), (j + 1 / 3)))
                if i + j < kk - 1:
                    bary.append(((i + 2 / 3), (j + 2 / 3)))
        bary = np.asarray(bary) / kk  # (k^2, 2): weights of b and c
        pts = (a[:, None, :] + bary[None, :, 0, None] * (b - a)[:, None, :]
               + bary[None, :, 1, None] * (c - a)[:, None, :])
        area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1) / (kk * kk)
        cents.append(pts.reshape(-1, 3))
        areas.append(np.repeat(area, len(bary)))
        parents.append(np.repeat(parent[sel], len(bary)))
    if not cents:
        return np.zeros((0, 3)), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(cents), np.concatenate(areas), np.concatenate(parents)


def cell_means(points: np.ndarray, weights: np.ndarray, cell: float, origin: np.ndarray | None = None) -> np.ndarray:
    """Weighted mean of the points in each cubic cell of side ``cell`` mm (cells with weight).

    The cells' grid has a corner at ``origin`` (default: the coordinates' origin).

    Returns
    -------
    numpy.ndarray, shape (k, 3), float64
        One point per occupied cell, in the lexicographic order of the cells' integer
        coordinates (so independent of the order of ``points``).
    """
    p = np.asarray(points, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    keep = w > 0
    p, w = p[keep], w[keep]
    if not len(p):
        return np.zeros((0, 3))
    keys = np.floor((p if origin is None else p - np.asarray(origin, dtype=np.float64)) / cell).astype(np.int64)
    keys -= keys.min(axis=0)
    span = keys.max(axis=0) + 1
    # one integer per cell, ordered like the cells' (x, y, z) integer coordinates
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.reshape(-1)
    total = np.bincount(inverse, weights=w)
    out = np.column_stack([np.bincount(inverse, weights=w * p[:, i]) for i in range(3)])
    return out / total[:, None]


def cell_size_for(area: float, target: int) -> float:
    """Cell size (mm) that gives about ``target`` occupied cells on a surface of ``area`` mm^2
    (a surface crossing a cube holds about one face area of it on average: measured 0.9-1.1
    on the bundled skulls and skins)."""
    return float(np.sqrt(1.0 * max(area, 1e-9) / max(target, 1)))


def surface_cells(mesh: trimesh.Trimesh, targets: tuple[int, ...] = (3000,)) -> list[np.ndarray]:
    """Evenly spread points of a mesh's surface, independent of its storage, at a few densities.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Coordinates in mm.
    targets : tuple of int
        Roughly how many points each sample should have (the cell size is set from the
        surface area, `cell_size_for`).

    Returns
    -------
    list of numpy.ndarray, shape (k, 3), float64, mm
        Per target: area-weighted means of the surface in each occupied cell (`cell_means`),
        k within about 30 % of the target.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    tri = vertices[faces]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1).sum()
    cells = [cell_size_for(float(area), t) for t in targets]
    cents, areas, _ = surface_pieces(vertices, faces, min(cells) / 2.0)
    # the grid is anchored at the surface's centroid, so that moving the mesh moves the sample
    # with it (exactly for translations and turns by multiples of 90 degrees about the axes)
    centroid = (cents * areas[:, None]).sum(axis=0) / max(float(areas.sum()), 1e-12)
    return [cell_means(cents, areas, c, centroid) for c in cells]
