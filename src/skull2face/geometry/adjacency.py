"""Which vertices of a triangle mesh are neighbours: the sparse matrices that smooth per-vertex values.

Torch-free; any units.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def adjacency(faces: np.ndarray, n: int) -> sparse.csr_matrix:
    """Symmetric 0/1 vertex adjacency of a triangle mesh (an edge shared by two faces counts once).

    Parameters
    ----------
    faces : numpy.ndarray, shape (m, 3), int
    n : int
        Number of vertices.

    Returns
    -------
    scipy.sparse.csr_matrix, shape (n, n), float64
        1 where two vertices share an edge, else 0; zero diagonal.
    """
    f = np.asarray(faces, dtype=np.int64)
    i = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    j = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    adj = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    adj.data[:] = 1.0
    return adj


def neighbour_mean(faces: np.ndarray, n: int) -> sparse.csr_matrix:
    """Row-stochastic (n, n) matrix averaging each vertex's mesh neighbours (an unreferenced
    vertex's row stays zero)."""
    adj = adjacency(faces, n)
    deg = np.asarray(adj.sum(axis=1)).ravel()
    deg[deg == 0] = 1.0
    return sparse.diags(1.0 / deg) @ adj


__all__ = ["adjacency", "neighbour_mean"]
