"""Closing a surface's openings with caps, so that a head can be printed and measured as a solid.

The head model's surface (`skull2face.statistics.face_model`) is open where the neck was cut.
`cap_openings` closes every boundary loop of a mesh with a fan of triangles around the loop's
centroid, wound so that each new triangle uses its boundary edge in the direction opposite to
the face it borders: the closed surface is consistently oriented, and watertight when the
mesh was a manifold with only such openings. trimesh's own ``fill_holes`` closes only holes of
three or four edges.

Torch-free; coordinates in any units (mm here).
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Directed edges (a, b) of faces whose undirected edge belongs to one face only.

    Parameters
    ----------
    faces : numpy.ndarray, shape (m, 3), int

    Returns
    -------
    numpy.ndarray, shape (k, 2), int64
        In the direction the bordering face uses them.
    """
    f = np.asarray(faces, dtype=np.int64)
    directed = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    key = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return directed[counts[inverse.ravel()] == 1]


def cap_openings(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """The mesh with every boundary loop closed by a fan around its centroid (module docstring).

    Parameters
    ----------
    mesh : trimesh.Trimesh

    Returns
    -------
    trimesh.Trimesh
        The same vertices first (one centroid vertex appended per opening), the same faces
        first, then the caps; ``process=False``. The input itself when it has no opening.
    """
    edges = boundary_edges(mesh.faces)
    if len(edges) == 0:
        return mesh
    v = np.asarray(mesh.vertices, dtype=np.float64)
    n = len(v)
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    loops = label[edges[:, 0]]
    new_v, new_f = [], []
    for i, k in enumerate(np.unique(loops)):
        e = edges[loops == k]
        centre = n + i
        new_v.append(v[np.unique(e)].mean(axis=0))
        new_f.append(np.column_stack([e[:, 1], e[:, 0], np.full(len(e), centre)]))
    return trimesh.Trimesh(np.vstack([v, np.array(new_v)]), np.vstack([np.asarray(mesh.faces)] + new_f),
                           process=False)


__all__ = ["boundary_edges", "cap_openings"]
