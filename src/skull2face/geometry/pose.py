"""Coarse pose: an approximate head frame for a mesh before any landmark is known.

Landmark detection starts from a rough idea of where left, up and front are. Two sources:

* **Known scanner axes.** Meshes from ``skull2face extract`` are in the CT's LPS millimetres,
  and a head lies in a scanner roughly face-up along the axes, so the head frame is about
  ``x_head = x_lps, y_head = z_lps, z_head = -y_lps``.
* **Unknown pose** (a skull scan in arbitrary orientation). The mid-sagittal plane is found
  as the plane of best mirror symmetry on an even sample of the surface that does not depend
  on how the mesh is stored (`skull2face.geometry.sample.surface_cells`: the same skull with
  its triangles or vertices in another order gets the very same pose): a scan of 200 plane
  normals over a hemisphere (`scan_starts`) picks the starts of the one plane search that
  detection uses too (`skull2face.geometry.symmetry.search_plane`). (It used to start from
  the principal axes only, which on a skull about as broad as high, like the bundled
  Arothron skull, point anywhere: the plane settled ~34 degrees off.) Front and up then come from user hints
  (``front="-y"``, ``up="+z"``) or, failing those, from shape: the face end of a skull is
  rough (orbits, nasal aperture) where the occiput is a smooth dome, and the skull base is
  rough where the vault is smooth. The face side of a face scan is where its normals point.

The result is a (4, 4) rigid input -> head matrix, good to some degrees and some centimetres:
`skull2face.anatomy.detect` refines it from anatomy. The shape cues can be misread (the
record keeps their scores: a ratio near 1 is a coin flip); `orientations` lists the other
seven frames in the same plane, which `skull2face.anatomy.locate` tries when the landmarks
found in the first do not show a skull (face).
"""

from __future__ import annotations

import logging

import numpy as np
import trimesh

from .frame import apply, frame_from_axes
from .sample import surface_cells
from .symmetry import _Mirror, search_plane

log = logging.getLogger(__name__)

_AXES = {"x": 0, "y": 1, "z": 2}
# Points of the even, storage-independent surface sample (`skull2face.geometry.sample`) the
# symmetry search scores planes on, and of the coarser one its first, global scan uses.
SYMMETRY_POINTS = 3000
SCAN_POINTS = 500
# The global scan: plane normals spread evenly over a hemisphere (a Fibonacci lattice, ~12
# degrees apart, finer than the +-15 degree grid `search_plane` refines each start with).
SCAN_NORMALS = 200
# Starts handed on to `search_plane`: the best local minima of the scan, at least this far apart.
SCAN_STARTS = 2
_START_APART_DEG = 25.0


def _hemisphere(n: int) -> np.ndarray:
    """(n, 3) unit vectors spread evenly over the hemisphere z > 0 (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = i / n
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    r = np.sqrt(1.0 - z * z)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def scan_starts(points: np.ndarray, count: int = SCAN_STARTS) -> np.ndarray:
    """Normals of the best mirror planes of a cloud over all directions: starts for `search_plane`.

    The trimmed mirror residual (`skull2face.geometry.symmetry`) is evaluated for
    `SCAN_NORMALS` normals spread over a hemisphere; the ``count`` best, each at least
    25 degrees from the better ones, are returned (k, 3). Searching only around the principal
    axes fails when two of them are about as long (a skull without mandible is about as
    broad as it is high: its two short axes then point anywhere in their plane).
    """
    mirror = _Mirror(np.asarray(points, dtype=np.float64))
    dirs = _hemisphere(SCAN_NORMALS)
    res = np.array([mirror.residual(d)[0] for d in dirs])
    picked: list[np.ndarray] = []
    for k in np.argsort(res, kind="stable"):
        if all(abs(dirs[k] @ p) < np.cos(np.radians(_START_APART_DEG)) for p in picked):
            picked.append(dirs[k])
        if len(picked) == count:
            break
    return np.array(picked)


def parse_axis(text: str) -> np.ndarray:
    """Turn a hint like ``"-y"`` or ``"+z"`` or ``"0,-1,0"`` into a unit vector (3,)."""
    t = text.strip().lower().replace(" ", "")
    if t.lstrip("+-") in _AXES:
        v = np.zeros(3)
        v[_AXES[t.lstrip("+-")]] = -1.0 if t.startswith("-") else 1.0
        return v
    try:
        v = np.array([float(s) for s in t.split(",")], dtype=np.float64)
    except ValueError:
        v = np.zeros(0)
    if v.shape != (3,) or not np.linalg.norm(v) > 0:
        raise ValueError(f"axis hint {text!r}: use +x, -x, +y, -y, +z, -z or 'a,b,c'")
    return v / np.linalg.norm(v)


def lps_frame(mesh: trimesh.Trimesh) -> np.ndarray:
    """Coarse head frame for a mesh in scanner LPS coordinates, origin at its bounding-box centre.

    Returns
    -------
    np.ndarray
        ``(4, 4)`` rigid input -> head matrix.
    """
    centre = mesh.bounds.mean(axis=0)
    return frame_from_axes(centre, left=[1.0, 0.0, 0.0], up=[0.0, 0.0, 1.0])


def _roughness(mesh: trimesh.Trimesh, look: np.ndarray, up: np.ndarray, centre: np.ndarray) -> float:
    """Mean |Laplacian| (mm) of a 2 mm/px depth map of the mesh seen along ``look``."""
    from .depthmap import RenderSpec, render

    # head frame whose +z points back at the viewer
    z = -look
    x = np.cross(up, z)
    frame = frame_from_axes(centre, left=x, up=np.cross(z, x))
    dm = render(mesh, RenderSpec(size=(128, 128), mm_per_px=2.0, frame=frame))
    h = dm.height
    lap = np.abs(4 * h[1:-1, 1:-1] - h[:-2, 1:-1] - h[2:, 1:-1] - h[1:-1, :-2] - h[1:-1, 2:])
    lap = lap[np.isfinite(lap)]
    # depth jumps (holes, silhouettes) are what make a face rough; cap them so one cliff
    # does not outweigh the rest
    return float(np.mean(np.minimum(lap, 20.0))) if lap.size else 0.0


def auto_frame(mesh: trimesh.Trimesh, surface: str, front: np.ndarray | None = None,
               up: np.ndarray | None = None, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Coarse head frame of a skull or face mesh in unknown pose.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Coordinates in mm, any pose.
    surface : {"skull", "face"}
    front, up : (3,) array or None
        Optional hints in the mesh's coordinates: roughly where the face looks, and the
        top of the head. Each one given overrides the shape heuristic for that axis.
    seed : int
        Unused (kept for callers): the surface sample is not random any more but an even,
        storage-independent one (`skull2face.geometry.sample.surface_cells`), so the pose does
        not depend on the order of the triangles or vertices, and hardly on the tessellation.

    Returns
    -------
    matrix : (4, 4) float64
        Rigid input -> head transform (origin at the symmetry plane, near the centre).
    record : dict
        How the pose was decided (symmetry residual, heuristic scores, hints).
    """
    points, coarse = surface_cells(mesh, (SYMMETRY_POINTS, SCAN_POINTS))
    centre = points.mean(axis=0)
    if front is not None and up is not None:
        # with both hints the symmetry normal must be near front x up
        hint_x = np.cross(np.asarray(up, float), np.asarray(front, float))
        starts = np.array([hint_x / np.linalg.norm(hint_x)])
    else:
        starts = scan_starts(coarse)
    # the one mid-sagittal plane search (skull2face.geometry.symmetry)
    normal, offset, residual = search_plane(points, starts)
    origin = centre - (centre @ normal - offset) * normal  # the plane's point nearest the centre
    record = {"symmetry_residual_mm": residual, "hints": {"front": None if front is None else list(front),
                                                          "up": None if up is None else list(up)}}
    # the two in-plane principal directions
    proj = points - ((points - origin) @ normal)[:, None] * normal
    _, v = np.linalg.eigh(np.cov((proj - proj.mean(0)).T))
    long_ax, short_ax = v[:, 2], v[:, 1]

    def in_plane(vec):
        vec = np.asarray(vec, dtype=np.float64)
        vec = vec - (vec @ normal) * normal
        return vec / np.linalg.norm(vec)

    if surface == "skull":
        # a skull is longest front to back (glabella-opisthocranion ~180-190 mm, taller ~130)
        ap, si = long_ax, short_ax
    else:
        # a face scan is tallest top to bottom and shallowest front to back
        ap, si = short_ax, long_ax
    if front is not None:
        ap = in_plane(front)
        si = np.cross(normal, ap)
    elif up is not None:
        si = in_plane(up)
        ap = np.cross(si, normal)
    if front is None:
        if surface == "skull":
            r_pos, r_neg = _roughness(mesh, -ap, si, origin), _roughness(mesh, ap, si, origin)
            record["front_roughness_mm"] = [r_pos, r_neg]
            ap = ap if r_pos >= r_neg else -ap
        else:
            mean_normal = (mesh.face_normals * mesh.area_faces[:, None]).sum(0)
            ap = ap if mean_normal @ ap >= 0 else -ap
    else:
        ap = ap if ap @ np.asarray(front, float) >= 0 else -ap
    si = si - (si @ ap) * ap
    si /= np.linalg.norm(si)
    if up is None:
        if surface == "skull":
            r_top, r_bottom = _roughness(mesh, -si, ap, origin), _roughness(mesh, si, ap, origin)
            record["up_roughness_mm"] = [r_top, r_bottom]
            si = si if r_top <= r_bottom else -si  # the vault is smooth, the base is rough
        else:
            # the nose sits below the middle of a forehead-to-chin face scan
            # pronasale: the most frontal midline point in the middle 60 % of the height
            h = (points - origin) @ si
            lo, hi = np.quantile(h, [0.2, 0.8])
            band = (np.abs((points - origin) @ normal) < 10.0) & (h > lo) & (h < hi)
            pool = points[band] if band.any() else points
            tip = pool[np.argmax((pool - origin) @ ap)]
            mid = float(np.mean(np.quantile(h, [0.02, 0.98])))
            record["nose_height_vs_middle_mm"] = float((tip - origin) @ si - mid)
            si = si if (tip - origin) @ si <= mid else -si
            record["up_note"] = "face up-direction guessed from the nose position: give --up if wrong"
    else:
        si = si if si @ np.asarray(up, float) >= 0 else -si
    left = np.cross(si, ap)  # x = y cross z
    matrix = frame_from_axes(origin + ((centre - origin) - ((centre - origin) @ normal) * normal), left, si)
    record["axes_in_input"] = {"left": left.tolist(), "up": si.tolist(), "front": ap.tolist()}
    log.info("pose: symmetry residual %.2f mm; front %s, up %s", residual, np.round(ap, 2), np.round(si, 2))
    return matrix, record


def orientations(matrix: np.ndarray, front: np.ndarray | None = None,
                 up: np.ndarray | None = None) -> list[np.ndarray]:
    """The coarse frame and the other seven that share its mid-sagittal plane.

    The shape cues that orient a mesh in its symmetry plane (which in-plane axis is
    front-back, which end is the face, which the top) can be misread; landmark detection
    (`skull2face.anatomy.locate`) then tries these instead. Each keeps the origin and
    turns the frame about it: up along +-y or +-z of ``matrix``, front square to it, left
    their cross product (all proper rotations). Hints drop those that disagree with them.

    Parameters
    ----------
    matrix : numpy.ndarray, shape (4, 4)
        Rigid input -> head matrix (rows of its rotation: left, up, front in input coordinates).
    front, up : numpy.ndarray, shape (3,), or None
        The user's hints in input coordinates.

    Returns
    -------
    list of numpy.ndarray, shape (4, 4)
        ``matrix`` first, then the others: up flipped, front flipped, both, then up and
        front swapped in the four ways.
    """
    y, z = np.eye(3)[1], np.eye(3)[2]
    choices = [(y, z), (-y, z), (y, -z), (-y, -z), (z, y), (z, -y), (-z, y), (-z, -y)]
    out = []
    for new_up, new_front in choices:
        turn = np.eye(4)
        turn[:3, :3] = np.array([np.cross(new_up, new_front), new_up, new_front])
        m = turn @ matrix
        if front is not None and m[2, :3] @ np.asarray(front, float) < 0.5:
            continue
        if up is not None and m[1, :3] @ np.asarray(up, float) < 0.5:
            continue
        out.append(m)
    return out or [matrix]


def to_head(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a coarse frame to (n, 3) points (convenience re-export of `frame.apply`)."""
    return apply(matrix, points)
