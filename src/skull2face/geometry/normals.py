"""Outward bone normals: one rule for "out of the head", shared by every user (torch-free).

The tissue-depth method (`skull2face.methods.tissue_depth`) moves every skull vertex out along
its normal by the published soft-tissue thickness, and the dataset
(`skull2face.dataset.build.la_targets`) puts each landmark's L_A target at the same distance
along the same normal; both call this module, so they agree on what "outward" means.

`outward_vertex_normals`
    Smoothed unit normals per vertex, turned away from `HEAD_CENTRE` (or by the winding of a
    watertight mesh).
`outward_normals_at`
    The same normals at arbitrary points on the surface (barycentric interpolation at the
    closest surface point, renormalised).

Lengths are mm; coordinates are those of the vertices given (head frame when ``centre`` is
`HEAD_CENTRE`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh
from scipy import sparse

# Head-frame point taken as the head's centre when orienting bone normals outward: about 80 mm
# behind nasion and 10 mm below it, i.e. near the middle of the cranial cavity of an adult
# (glabella-opisthocranion length ~180-190 mm).
HEAD_CENTRE = (0.0, -10.0, -80.0)

# Normal smoothing: iterations of neighbour averaging over the mesh's edge graph. On CT meshes
# (edges ~1-2 mm) 15 iterations average over ~5-8 mm, which removes voxel staircase and the
# small crests that would make the offset surface fold; the orbit and aperture walls still
# fold, but those are bridged afterwards.
NORMAL_SMOOTHING_ITERATIONS = 15


def outward_vertex_normals(vertices: Any, faces: Any, centre: Any,
                           iterations: int = NORMAL_SMOOTHING_ITERATIONS,
                           use_winding: bool | None = None) -> np.ndarray:
    """Smoothed unit normals pointing out of the bone, per vertex.

    Orientation: when the mesh is watertight with consistent winding (``use_winding`` None
    checks this) the winding decides, flipped as a whole if the enclosed volume comes out
    negative. Otherwise (CT skulls are usually open: cropped scans, foramina) each face is
    turned to point away from ``centre``, which is right for every surface seen from in
    front except concavities facing backward (aperture side walls), which are bridged later.

    Smoothing: area-weighted face normals are summed onto the vertices and then averaged with
    the vertices' edge neighbours ``iterations`` times; vectors that cancel out (a thin plate
    seen from both sides) keep their unsmoothed direction.

    Parameters
    ----------
    vertices : array_like, shape (n, 3), float, mm
    faces : array_like, shape (m, 3), int
    centre : array_like, shape (3,), mm
        A point inside the head, in the vertices' coordinates.
    iterations : int
        Neighbour-averaging passes (0: no smoothing).
    use_winding : bool or None
        Force one orientation rule; None picks as above.

    Returns
    -------
    numpy.ndarray, shape (n, 3), float64
        Unit vectors; zero for vertices in no face.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = len(v)
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    fn = np.cross(b - a, c - a)  # length = 2 x area: area weighting for free
    if use_winding is None:
        mesh = trimesh.Trimesh(v, f, process=False)
        use_winding = bool(mesh.is_watertight and mesh.is_winding_consistent)
    if use_winding:
        # Signed volume (divergence theorem): positive when the winding points outward.
        if np.einsum("ij,ij->", a, fn) < 0:
            fn = -fn
    else:
        centroid = (a + b + c) / 3.0
        inward = np.einsum("ij,ij->i", fn, centroid - np.asarray(centre, dtype=np.float64)) < 0
        fn[inward] *= -1.0
    vn = np.zeros((n, 3))
    for k in range(3):
        for axis in range(3):
            vn[:, axis] += np.bincount(f[:, k], weights=fn[:, axis], minlength=n)
    raw = vn.copy()
    if iterations > 0 and len(f):
        rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0], np.arange(n)])
        cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2], np.arange(n)])
        adj = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
        adj.data[:] = 1.0  # duplicate edges (two faces share each) count once
        deg = np.asarray(adj.sum(axis=1)).reshape(-1)
        avg = sparse.diags(1.0 / np.maximum(deg, 1.0)) @ adj
        # Normalise before averaging so big faces do not dominate their neighbourhood.
        cur = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-300)
        for _ in range(iterations):
            cur = avg @ cur
        length = np.linalg.norm(cur, axis=1)
        vn = np.where((length > 0.2)[:, None], cur, raw)
    length = np.linalg.norm(vn, axis=1, keepdims=True)
    return np.where(length > 0, vn / np.maximum(length, 1e-300), 0.0)


def outward_normals_at(points: Any, vertices: Any, faces: Any, centre: Any,
                       iterations: int = NORMAL_SMOOTHING_ITERATIONS,
                       use_winding: bool | None = None) -> np.ndarray:
    """`outward_vertex_normals` evaluated at points on (or near) the surface.

    Each point is projected to its closest point on the mesh (libigl); the smoothed vertex
    normals of that triangle are blended with the closest point's barycentric coordinates and
    renormalised. On a vertex this is exactly that vertex's normal.

    Parameters
    ----------
    points : array_like, shape (k, 3), float, mm
        Query points, in the vertices' coordinates (e.g. skull landmarks).
    vertices, faces, centre, iterations, use_winding
        As in `outward_vertex_normals`.

    Returns
    -------
    numpy.ndarray, shape (k, 3), float64
        Unit vectors (zero only where all three vertex normals cancel).
    """
    import igl  # heavy; only this function needs it

    p = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
    v = np.ascontiguousarray(np.asarray(vertices, dtype=np.float64))
    f = np.ascontiguousarray(np.asarray(faces, dtype=np.int64).reshape(-1, 3))
    if len(p) == 0:
        return np.zeros((0, 3))
    vn = outward_vertex_normals(v, f, centre, iterations, use_winding)
    _, fi, closest = igl.point_mesh_squared_distance(p, v, f)
    tri = f[np.asarray(fi, dtype=np.int64)]
    bary = trimesh.triangles.points_to_barycentric(v[tri], np.asarray(closest, dtype=np.float64))
    # The closest point lies in its triangle: clip rounding below zero, then renormalise.
    bary = np.clip(np.nan_to_num(bary, nan=1.0 / 3.0), 0.0, None)
    bary /= np.maximum(bary.sum(axis=1, keepdims=True), 1e-300)
    n = np.einsum("ij,ijk->ik", bary, vn[tri])
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 0, n / np.maximum(length, 1e-300), 0.0)


__all__ = ["HEAD_CENTRE", "NORMAL_SMOOTHING_ITERATIONS", "outward_normals_at", "outward_vertex_normals"]
