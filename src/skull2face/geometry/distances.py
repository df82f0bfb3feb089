"""Exact distances between points and triangle surfaces, and the per-vertex quantities they need.

Distances are exact point-to-triangle distances (libigl's AABB tree): to the nearest point
of any triangle (its inside, an edge or a corner), not to the nearest vertex. Vertex areas
(a third of the area of each incident triangle) weight per-vertex figures by the surface
they stand for. Millimetres throughout.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh


def mesh_arrays(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and faces as libigl wants them.

    Parameters
    ----------
    mesh : trimesh.Trimesh

    Returns
    -------
    vertices : numpy.ndarray, shape (n, 3), float64, C-contiguous
    faces : numpy.ndarray, shape (m, 3), int64, C-contiguous
    """
    v = np.ascontiguousarray(np.asarray(mesh.vertices, dtype=np.float64))
    f = np.ascontiguousarray(np.asarray(mesh.faces, dtype=np.int64))
    return v, f


def face_cross(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Un-normalised face normals.

    Parameters
    ----------
    v : numpy.ndarray, shape (n, 3), float64, mm
    f : numpy.ndarray, shape (m, 3), int

    Returns
    -------
    numpy.ndarray, shape (m, 3), float64
        ``(b - a) x (c - a)`` per triangle: oriented like the winding, length twice the
        triangle's area (mm^2).
    """
    tri = v[f]
    return np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])


def row_norms(a: np.ndarray) -> np.ndarray:
    """Euclidean length of each row of ``a`` (k, 3): shape (k,)."""
    return np.sqrt(np.einsum("ij,ij->i", a, a))


def vertex_areas(mesh: trimesh.Trimesh) -> np.ndarray:
    """Area each vertex stands for: a third of the area of every triangle it belongs to.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in mm.

    Returns
    -------
    numpy.ndarray, shape (n_vertices,), float64, mm^2
        Sums to the mesh's total area; 0 for unreferenced vertices.
    """
    v, f = mesh_arrays(mesh)
    third = row_norms(face_cross(v, f)) / 6.0  # |cross| / 2 is the area; a third of it per corner
    return np.bincount(f.ravel(), weights=np.repeat(third, 3), minlength=len(v))


def vertex_normals(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals.

    Parameters
    ----------
    v : numpy.ndarray, shape (n, 3), float64, mm
    f : numpy.ndarray, shape (m, 3), int

    Returns
    -------
    numpy.ndarray, shape (n, 3), float64
        Oriented like the faces' winding; zero for unreferenced vertices.
    """
    cross = face_cross(v, f)  # area-weighted already (length = 2 * area)
    out = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            out[:, c] += np.bincount(f[:, k], weights=cross[:, c], minlength=len(v))
    length = row_norms(out)
    return np.where(length[:, None] > 0, out / np.maximum(length, 1e-300)[:, None], 0.0)


def closest_points(points: np.ndarray, mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact closest points on ``mesh`` (libigl's ``point_mesh_squared_distance``).

    Parameters
    ----------
    points : array_like, shape (n, 3), mm
    mesh : trimesh.Trimesh
        Vertices in mm.

    Returns
    -------
    distances : numpy.ndarray, shape (n,), float64, mm
    faces : numpy.ndarray, shape (n,), int64
        The triangle each closest point lies on.
    closest : numpy.ndarray, shape (n, 3), float64, mm
    """
    import igl  # imported here: libigl is heavy and only evaluation needs it

    p = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    if len(p) == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, 3))
    v, f = mesh_arrays(mesh)
    sq, face, closest = igl.point_mesh_squared_distance(p, v, f)
    # squared distances can come out -0.0 or a hair below zero from rounding
    return np.sqrt(np.maximum(sq, 0.0)), np.asarray(face, dtype=np.int64), np.asarray(closest)


def surface_distances(points: Any, mesh: trimesh.Trimesh) -> np.ndarray:
    """Exact distance from each point to a triangle surface.

    Uses libigl's ``point_mesh_squared_distance`` (AABB tree): the true Euclidean distance
    to the nearest point of any triangle (its inside, an edge or a corner), not to the nearest
    vertex.

    Parameters
    ----------
    points : array_like, shape (n, 3), mm
        Query points, in the mesh's coordinates.
    mesh : trimesh.Trimesh
        The surface, vertices in mm.

    Returns
    -------
    numpy.ndarray, shape (n,), float64, mm
        Unsigned distances, >= 0.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"points must have shape (n, 3), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("points hold NaN or infinite coordinates")
    return closest_points(p, mesh)[0]


def few_distances(points: np.ndarray, v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Exact surface distances of a few points, without a tree of the whole mesh.

    The closest surface point lies on a triangle with a corner within ``d_vertex + L`` of the
    query (``d_vertex`` its nearest-vertex distance, ``L`` the longest edge), so only those
    triangles are searched; building libigl's tree over a 250k-vertex mesh for a dozen
    landmarks would cost more than all the rest of the region.

    Parameters
    ----------
    points : numpy.ndarray, shape (k, 3), mm
    v : numpy.ndarray, shape (n, 3), float64, mm
    f : numpy.ndarray, shape (m, 3), int64

    Returns
    -------
    numpy.ndarray, shape (k,), float64, mm
    """
    import igl

    tri = v[f]
    longest = float(np.sqrt(max(np.einsum("ij,ij->i", tri[:, a] - tri[:, b], tri[:, a] - tri[:, b]).max()
                                for a, b in ((0, 1), (1, 2), (2, 0)))))
    near = np.zeros(len(v), dtype=bool)
    for p in points:
        dv = np.sqrt(np.einsum("ij,ij->i", v - p, v - p))
        near |= dv <= dv.min() + longest + 1e-9
    faces = f[np.any(near[f], axis=1)]
    sq = igl.point_mesh_squared_distance(np.ascontiguousarray(points, dtype=np.float64), v,
                                         np.ascontiguousarray(faces, dtype=np.int64))[0]
    return np.sqrt(np.maximum(sq, 0.0))


def barycentric(v: np.ndarray, f: np.ndarray, face: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Barycentric coordinates of points lying on given triangles.

    Parameters
    ----------
    v : numpy.ndarray, shape (n, 3), float64, mm
    f : numpy.ndarray, shape (m, 3), int
    face : numpy.ndarray, shape (k,), int
        The triangle ``f[face[i]]`` that point ``i`` lies on.
    points : numpy.ndarray, shape (k, 3), mm

    Returns
    -------
    numpy.ndarray, shape (k, 3), float64
        Weights of the triangle's corners, summing to 1; a degenerate triangle puts the point
        on its first corner.
    """
    a, b, c = (v[f[face, k]] for k in range(3))
    e0, e1, e2 = b - a, c - a, points - a
    d00 = np.einsum("ij,ij->i", e0, e0)
    d01 = np.einsum("ij,ij->i", e0, e1)
    d11 = np.einsum("ij,ij->i", e1, e1)
    d20 = np.einsum("ij,ij->i", e2, e0)
    d21 = np.einsum("ij,ij->i", e2, e1)
    den = d00 * d11 - d01 * d01
    # degenerate triangles: put the point on the first corner rather than divide by zero
    safe = np.where(np.abs(den) > 0, den, 1.0)
    wb = np.where(np.abs(den) > 0, (d11 * d20 - d01 * d21) / safe, 0.0)
    wc = np.where(np.abs(den) > 0, (d00 * d21 - d01 * d20) / safe, 0.0)
    return np.stack([1.0 - wb - wc, wb, wc], axis=1)
