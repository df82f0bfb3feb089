"""The working frame (method step 2) and what every rule returns.

`_Work` holds the mesh in the working head frame (+x subject's left, +y up, +z anterior,
mid-sagittal plane x = 0), with its scan-cut lids (`skull2face.geometry.lids`). It starts from the coarse frame,
whose x = 0 is first moved onto the face's plane of symmetry (`_refine_by_symmetry`, by
`skull2face.geometry.symmetry.search_plane`); the midline rules then correct its pitch and move
its origin to nasion (`.landmarks`). `_front_map` renders depth maps in it. `_Result` is one
landmark's outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from ...geometry.depthmap import RenderSpec, render
from ...geometry.frame import apply, frame_from_axes, invert_rigid
from ...geometry.symmetry import search_plane
from ...geometry.lids import find_lids

# A point within _CAP_TOL of a lid's plane, and within _LID_REACH of its faces (which are
# sampled a few mm apart), counts as lying on it.
_CAP_TOL = 1.5
_LID_REACH = 5.0
# Symmetry fit: points used (a subsample), and how deep behind the most anterior point the
# points are taken from (the face and forehead, not the vault); the cap on mirror distances
# is `skull2face.geometry.symmetry.MIRROR_CAP`.
_SYMMETRY_POINTS = 3000
_SYMMETRY_DEPTH = 80.0
# Input axes tried as lid directions: those this many degrees (above, at most) from the
# nearest axis of the coarse frame (see `_Work`).
_INPUT_AXIS_DEG = (0.5, 15.0)


def _refine_by_symmetry(verts_coarse: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """Rigid coarse-head -> refined-head map whose x = 0 is the face's symmetry plane.

    Only the front `_SYMMETRY_DEPTH` mm of the head take part (``usable`` vertices, i.e.
    not on scan-cut lids, which mirror onto themselves for any plane square to them): the
    vault and occiput are often asymmetric (positional flattening), and on the bundled
    cranium CT a whole-head fit leaves the facial midline 5-10 mm off x = 0, while the front
    80 mm put it within 2 mm. Every k-th of those vertices (about `_SYMMETRY_POINTS`) is
    taken in the order of their coarse-frame coordinates (to 1e-6 mm), not in the order the
    mesh stores them, so that the plane does not depend on the vertex order, and moving the
    mesh with its coarse frame moves the sample with it. (An even sample of the surface,
    `skull2face.geometry.sample`, misplaced the plane of the headsq CT's skin in its LPS
    pose: nasion 57 mm off.) The plane is searched for around the coarse x axis by
    `skull2face.geometry.symmetry.search_plane` (grid of +-15 degrees of yaw and roll,
    Nelder-Mead, mirror-matching polish; its docstring says why). "Front" is then re-measured
    square to the new plane and the search repeated once if the plane turned by more than
    3 degrees.
    The refined frame keeps the coarse "up" (made orthogonal to the new x axis) and puts its
    origin at the foot of the coarse origin on the plane.
    """
    key = np.round(verts_coarse, 6)
    order = np.lexsort((key[:, 2], key[:, 1], key[:, 0]))
    verts_coarse, usable = verts_coarse[order], usable[order]
    refine = np.eye(4)
    normal = np.array([1.0, 0.0, 0.0])
    for _ in range(2):
        z = apply(refine, verts_coarse)[:, 2]
        front = verts_coarse[usable & (z > z[usable].max() - _SYMMETRY_DEPTH)]
        pts = front[::max(1, len(front) // _SYMMETRY_POINTS)]
        found, d, _ = search_plane(pts, [normal])
        moved = np.degrees(np.arccos(np.clip(found @ normal, -1.0, 1.0)))
        normal = found
        refine = frame_from_axes(d * normal, normal, [0.0, 1.0, 0.0])
        if moved < 3.0:  # the front region hardly changes: no need to re-measure it
            break
    return refine


class _Work:
    """The mesh in the working head frame, with its lids; the frame is refined step by step.

    Attributes
    ----------
    mesh : trimesh.Trimesh
        The input mesh (input coordinates), used for sections and ray casting.
    frame : numpy.ndarray, shape (4, 4)
        Current input -> working-frame transform.
    verts : numpy.ndarray, shape (n, 3), float64
        Vertices in the working frame.
    caps : list of skull2face.geometry.lids.Lid
        Lids in the working frame.
    """

    def __init__(self, mesh: trimesh.Trimesh, coarse: np.ndarray):
        self.mesh = mesh
        self._v_in = np.asarray(mesh.vertices, dtype=np.float64)
        faces = np.asarray(mesh.faces, dtype=np.int64)
        v_coarse = apply(coarse, self._v_in)
        # lids first, in the coarse frame; the input's own axes are candidates too: a mesh
        # taken from a CT keeps the scanner's coordinates, whose axes the cuts follow. Only
        # input axes `_INPUT_AXIS_DEG` from an axis of the coarse frame are tried: one that is
        # an axis of the coarse frame (a CT in its LPS pose) is searched anyway, and one far
        # from all (a mesh moved away from its scanner's axes) is no scanner axis; either
        # would fit a lid twice, and whichever fit wins moves the landmarks near it
        axes = coarse[:3, :3].T
        off = np.degrees(np.arccos(np.clip(np.abs(axes).max(axis=1), -1.0, 1.0)))
        extra = [k for k in range(3) if _INPUT_AXIS_DEG[0] < off[k] <= _INPUT_AXIS_DEG[1]]
        caps = find_lids(v_coarse, faces, directions=[axes[k] for k in extra],
                         labels=[f"{'xyz'[k]} axis of the input" for k in extra])
        usable = np.ones(len(v_coarse), dtype=bool)
        for c in caps:
            close = np.flatnonzero(c.distance(v_coarse) <= 3.0)
            on = cKDTree(c.points).query(v_coarse[close], distance_upper_bound=_LID_REACH)[0] < np.inf
            usable[close[on]] = False
        refine = _refine_by_symmetry(v_coarse, usable)
        self.frame = refine @ coarse
        self.verts = apply(refine, v_coarse)
        self.caps = [c.transformed(refine) for c in caps]
        back = invert_rigid(self.frame)
        self._caps_in = [c.transformed(back) for c in self.caps]
        self._cap_trees = [cKDTree(c.points) for c in self._caps_in]
        # height reference of the upper orbital margins (input coordinates), found once
        self.orbit_top: np.ndarray | None | bool = None

    def set_frame(self, frame: np.ndarray) -> None:
        """Move to a new working frame (input -> head)."""
        self.frame = frame
        self.verts = apply(frame, self._v_in)
        self.caps = [c.transformed(frame) for c in self._caps_in]

    def move(self, matrix: np.ndarray) -> None:
        """Compose a rigid change of the working frame (old working -> new working)."""
        self.set_frame(matrix @ self.frame)

    def lid_depth(self, points: Any) -> np.ndarray:
        """Distance (mm) of points inside the nearest lid; +inf where the mesh has none.

        Only points over a lid's footprint count (within `_LID_REACH` of its faces): a
        plane fitted to a lid a degree off would otherwise claim surfaces far away from it.
        """
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        out = np.full(len(p), np.inf)
        if not self.caps:
            return out
        p_in = apply(invert_rigid(self.frame), p)
        for cap, tree in zip(self._caps_in, self._cap_trees, strict=True):
            near = tree.query(p_in, distance_upper_bound=_LID_REACH)[0] < np.inf
            out = np.where(near, np.minimum(out, cap.distance(p_in)), out)
        return out

    def on_lid(self, points: Any) -> np.ndarray:
        """True for points (n, 3) lying on a lid (within `_CAP_TOL`)."""
        return self.lid_depth(points) < _CAP_TOL

    def to_input(self, point: np.ndarray) -> np.ndarray:
        """A working-frame point (3,) in input coordinates."""
        return apply(invert_rigid(self.frame), point)


def _front_map(work: _Work, centre: tuple[float, float], size: tuple[int, int],
               mm_per_px: float = 1.0):
    """Front depth map of the mesh around a working-frame (x, y) centre.

    Returns
    -------
    height : numpy.ndarray, shape (H, W), float64
        Working-frame z of the first surface seen from the front; NaN where none.
    x, y : numpy.ndarray, shape (H, W), float64
        Working-frame x and y of each pixel centre.
    """
    shift = np.eye(4)
    shift[:2, 3] = [-centre[0], -centre[1]]
    spec = RenderSpec(size, mm_per_px, shift @ work.frame, z_near=-1e4, z_far=1e4)
    dm = render(work.mesh, spec)
    x, y = spec.xy_grid()
    return dm.height.astype(np.float64), x + centre[0], y + centre[1]


# --- results --------------------------------------------------------------------------------


@dataclass
class _Result:
    """One landmark's outcome in the working frame: a point, or None with the reason."""

    point: np.ndarray | None
    confidence: str = "medium"
    note: str = ""
    source: str = "detected"

    @property
    def found(self) -> bool:
        return self.point is not None


def _missing(note: str) -> _Result:
    return _Result(None, note=note, source="missing")
