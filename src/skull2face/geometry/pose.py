"""Coarse pose: an approximate head frame for a mesh before any landmark is known.

Landmark detection starts from a rough idea of where left, up and front are. Two sources:

* **Known scanner axes.** Meshes from ``skull2face extract`` are in the CT's LPS millimetres,
  and a head lies in a scanner roughly face-up along the axes, so the head frame is about
  ``x_head = x_lps, y_head = z_lps, z_head = -y_lps``.
* **Unknown pose** (a skull scan in arbitrary orientation). The mid-sagittal plane is found
  as the plane of best mirror symmetry, searched around each principal axis by the one plane
  search detection uses too (`skull2face.geometry.symmetry.search_plane`); front and up then come from user hints
  (``front="-y"``, ``up="+z"``) or, failing those, from shape: the face end of a skull is
  rough (orbits, nasal aperture) where the occiput is a smooth dome, and the skull base is
  rough where the vault is smooth. The face side of a face scan is where its normals point.

The result is a (4, 4) rigid input -> head matrix, good to some degrees and some centimetres:
`skull2face.anatomy.detect` refines it from anatomy.
"""

from __future__ import annotations

import logging

import numpy as np
import trimesh

from .frame import apply, frame_from_axes
from .symmetry import search_plane

log = logging.getLogger(__name__)

_AXES = {"x": 0, "y": 1, "z": 2}
# Surface samples the symmetry search scores planes on (of the 6000 drawn for the pose).
SYMMETRY_POINTS = 3000


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
        Seed of the surface sampling (results are deterministic for a seed).

    Returns
    -------
    matrix : (4, 4) float64
        Rigid input -> head transform (origin at the symmetry plane, near the centre).
    record : dict
        How the pose was decided (symmetry residual, heuristic scores, hints).
    """
    points, _ = trimesh.sample.sample_surface(mesh, 6000, seed=seed)
    points = np.asarray(points, dtype=np.float64)
    centre = points.mean(axis=0)
    _, axes = np.linalg.eigh(np.cov((points - centre).T))
    axes = axes.T[::-1]  # principal axes, longest first
    if front is not None and up is not None:
        # with both hints the symmetry normal must be near front x up
        hint_x = np.cross(np.asarray(up, float), np.asarray(front, float))
        starts = [hint_x / np.linalg.norm(hint_x)]
    else:
        starts = list(axes)
    # the one mid-sagittal plane search (skull2face.geometry.symmetry), on half the samples
    normal, offset, residual = search_plane(points[:SYMMETRY_POINTS], starts)
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


def to_head(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a coarse frame to (n, 3) points (convenience re-export of `frame.apply`)."""
    return apply(matrix, points)
