"""A pinhole camera: projecting points and rendering meshes in perspective (Embree ray casting).

Conventions are OpenCV's, so a camera solved by ``cv2.solvePnP`` is used as it is: camera
coordinates ``x`` right, ``y`` down, ``z`` forward (the viewing direction), mm; a world point
``X`` (mm, the mesh's own coordinates) is at ``R X + t`` in camera coordinates and projects to
pixel ``(u, v) = (f x / z + cx, f y / z + cy)``; ``u`` is the column, ``v`` the row, and a
pixel's centre has integer coordinates (the top-left pixel's centre is ``(0, 0)``).

`Camera`
    Intrinsics (focal length in px, principal point, image size) and pose (``R``, ``t``).
`look_at`
    A camera at a point, looking at another, with an up direction.
`render`
    Depth (camera z, mm), hit mask, unit normals and which mesh was hit, for every pixel; one
    ray per pixel centre, first hit (Embree through trimesh, as `skull2face.geometry.depthmap`).
`shade`, `outline`
    Lambert shading of rendered normals; the silhouette's edge pixels of a mask.
`visible`
    Which points on a mesh the camera sees (not hidden behind another part of it).

numpy and trimesh only (no OpenCV here: the solver lives in `skull2face.superimposition`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh


@dataclass(eq=False)
class Camera:
    """A pinhole camera without lens distortion.

    Parameters
    ----------
    focal_px : float
        Focal length in pixels (the same along both axes), > 0.
    size : (int, int)
        Image width and height in pixels.
    rotation : numpy.ndarray, shape (3, 3), float64
        World -> camera rotation ``R`` (a proper rotation).
    translation : numpy.ndarray, shape (3,), float64, mm
        ``t`` in ``x_cam = R X + t``.
    principal : (float, float) or None
        Principal point ``(cx, cy)`` in px; None: the image centre ``((W-1)/2, (H-1)/2)``.
    """

    focal_px: float
    size: tuple[int, int]
    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    principal: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        self.focal_px = float(self.focal_px)
        if not (np.isfinite(self.focal_px) and self.focal_px > 0):
            raise ValueError(f"focal length must be a positive number of pixels, not {self.focal_px}")
        w, h = (int(s) for s in self.size)
        if w < 1 or h < 1:
            raise ValueError(f"image size must be positive, not {self.size}")
        self.size = (w, h)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(3, 3)
        self.translation = np.asarray(self.translation, dtype=np.float64).reshape(3)
        if self.principal is None:
            self.principal = ((w - 1) / 2.0, (h - 1) / 2.0)
        self.principal = (float(self.principal[0]), float(self.principal[1]))

    @property
    def matrix(self) -> np.ndarray:
        """The intrinsic matrix ``K``, shape (3, 3), float64."""
        cx, cy = self.principal
        return np.array([[self.focal_px, 0.0, cx], [0.0, self.focal_px, cy], [0.0, 0.0, 1.0]])

    @property
    def centre(self) -> np.ndarray:
        """The camera's position in world coordinates, shape (3,), mm: ``-R^T t``."""
        return -self.rotation.T @ self.translation

    def to_camera(self, points: Any) -> np.ndarray:
        """World -> camera coordinates; (n, 3) mm in, (n, 3) float64 mm out."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        return p @ self.rotation.T + self.translation

    def project(self, points: Any) -> np.ndarray:
        """Pixel coordinates ``(u, v)`` of world points, shape (n, 2), float64 (NaN behind the camera)."""
        c = self.to_camera(points)
        z = np.where(c[:, 2] > 1e-9, c[:, 2], np.nan)
        cx, cy = self.principal
        return np.stack([self.focal_px * c[:, 0] / z + cx, self.focal_px * c[:, 1] / z + cy], axis=1)

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        """One ray per pixel centre, row by row: origins (H*W, 3) and unit directions (H*W, 3), world mm."""
        w, h = self.size
        cx, cy = self.principal
        u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
        d_cam = np.stack([(u.ravel() - cx) / self.focal_px, (v.ravel() - cy) / self.focal_px,
                          np.ones(u.size)], axis=1)
        d = d_cam @ self.rotation  # R^T d_cam, row-wise
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.broadcast_to(self.centre, d.shape).copy(), d

    def scaled(self, factor: float) -> Camera:
        """The same camera for the image resized by ``factor`` (pixel centres kept consistent)."""
        w, h = self.size
        size = (max(int(round(w * factor)), 1), max(int(round(h * factor)), 1))
        cx, cy = self.principal
        sx, sy = size[0] / w, size[1] / h
        return Camera(self.focal_px * (sx + sy) / 2.0, size, self.rotation, self.translation,
                      ((cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that `from_json` reads back exactly."""
        return {"convention": "OpenCV pinhole: x_cam = R X + t (mm), u = f x/z + cx, v = f y/z + cy (px); "
                              "x right, y down, z forward; pixel centres at integers",
                "focal_px": self.focal_px, "size": list(self.size), "principal": list(self.principal),
                "rotation": self.rotation.tolist(), "translation_mm": self.translation.tolist(),
                "centre_mm": self.centre.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Camera:
        """Rebuild from `to_json` output."""
        return cls(data["focal_px"], tuple(data["size"]), np.asarray(data["rotation"]),
                   np.asarray(data["translation_mm"]), tuple(data["principal"]))


def look_at(eye: Any, target: Any, up: Any, focal_px: float, size: tuple[int, int]) -> Camera:
    """A camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image.

    Parameters
    ----------
    eye, target, up : array_like, shape (3,), world mm (``up`` a direction)
    focal_px : float
    size : (int, int)
        Width and height, px.
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    down = -np.asarray(up, dtype=np.float64)
    y = down - np.dot(down, z) * z
    if np.linalg.norm(y) < 1e-9:
        raise ValueError("look_at: up is parallel to the viewing direction")
    y /= np.linalg.norm(y)
    x = np.cross(y, z)
    r = np.stack([x, y, z])
    return Camera(focal_px, size, r, -r @ eye)


@dataclass(eq=False)
class Rendering:
    """What a camera sees of some meshes, per pixel (H, W).

    Attributes
    ----------
    depth : numpy.ndarray, shape (H, W), float64
        Camera z of the first hit, mm; NaN where no ray hit.
    mask : numpy.ndarray, shape (H, W), bool
    normal : numpy.ndarray, shape (H, W, 3), float64
        Unit face normal of the hit triangle in camera coordinates, turned toward the camera.
    which : numpy.ndarray, shape (H, W), int64
        Index of the mesh hit first, -1 where none.
    """

    depth: np.ndarray
    mask: np.ndarray
    normal: np.ndarray
    which: np.ndarray


def render(meshes: trimesh.Trimesh | list[trimesh.Trimesh], camera: Camera) -> Rendering:
    """Perspective rendering: the first surface each pixel's ray meets.

    Parameters
    ----------
    meshes : trimesh.Trimesh or list of them
        World coordinates, mm. Back faces count as hits (open CT surfaces look right).
    camera : Camera

    Returns
    -------
    Rendering
    """
    meshes = [meshes] if isinstance(meshes, trimesh.Trimesh) else list(meshes)
    w, h = camera.size
    origins, dirs = camera.rays()
    # Only pixels inside the meshes' projected bounding boxes can hit (free speed); a box that
    # reaches behind the camera keeps every pixel.
    keep = np.zeros(h * w, dtype=bool)
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    u, v = u.ravel(), v.ravel()
    for m in meshes:
        if len(m.faces) == 0:
            continue
        corners = trimesh.bounds.corners(m.bounds)
        if np.any(camera.to_camera(corners)[:, 2] <= 1e-6):
            keep[:] = True
            break
        uv = camera.project(corners)
        lo, hi = np.floor(uv.min(axis=0)) - 1, np.ceil(uv.max(axis=0)) + 1
        keep |= (u >= lo[0]) & (u <= hi[0]) & (v >= lo[1]) & (v <= hi[1])
    cand = np.flatnonzero(keep)
    depth_all = np.full(h * w, np.nan)
    normal_all = np.zeros((h * w, 3))
    which_all = np.full(h * w, -1, dtype=np.int64)
    origins, dirs = origins[cand], dirs[cand]
    n = len(origins)
    best = np.full(n, np.inf)
    which = np.full(n, -1, dtype=np.int64)
    normal = np.zeros((n, 3))
    for i, m in enumerate(meshes):
        if len(m.faces) == 0:
            continue
        tri = np.asarray(m.ray.intersects_first(origins, dirs), dtype=np.int64)
        hit = np.flatnonzero(tri >= 0)
        if not len(hit):
            continue
        fn = np.asarray(m.face_normals)[tri[hit]]
        a = np.asarray(m.vertices)[np.asarray(m.faces)[tri[hit], 0]]
        denom = np.einsum("ij,ij->i", fn, dirs[hit])
        with np.errstate(divide="ignore", invalid="ignore"):
            dist = np.einsum("ij,ij->i", fn, a - origins[hit]) / denom
        dist = np.where(np.isfinite(dist) & (dist > 0), dist, np.linalg.norm(a - origins[hit], axis=1))
        closer = dist < best[hit]
        sel = hit[closer]
        best[sel] = dist[closer]
        which[sel] = i
        nf = fn[closer]
        nf = np.where((np.einsum("ij,ij->i", nf, dirs[sel]) > 0)[:, None], -nf, nf)  # toward the camera
        normal[sel] = nf @ camera.rotation.T
    mask = which >= 0
    d_cam_z = dirs @ camera.rotation[2]  # z component of each unit ray in camera coordinates
    depth_all[cand] = np.where(mask, best * d_cam_z, np.nan)
    normal_all[cand] = normal
    which_all[cand] = which
    return Rendering(depth_all.reshape(h, w), (which_all >= 0).reshape(h, w), normal_all.reshape(h, w, 3),
                     which_all.reshape(h, w))


LIGHT_CAMERA = (-0.3, -0.4, -1.0)
"""Light direction (toward the light) in camera coordinates: from the viewer, a little up and
to the left, as a studio key light (a choice for legibility, not a measurement)."""


def shade(rendering: Rendering, ambient: float = 0.2) -> np.ndarray:
    """Lambert shading of a rendering: (H, W) float64 in [0, 1], 0 where nothing was hit.

    ``ambient + (1 - ambient) * max(n . l, 0)`` with ``l`` = `LIGHT_CAMERA` (normalised).
    """
    light = np.asarray(LIGHT_CAMERA, dtype=np.float64)
    light /= np.linalg.norm(light)
    lum = ambient + (1.0 - ambient) * np.clip(rendering.normal @ light, 0.0, 1.0)
    return np.where(rendering.mask, lum, 0.0)


def outline(mask: Any, width: int = 1) -> np.ndarray:
    """Edge pixels of a silhouette: mask pixels with a non-mask 4-neighbour, dilated ``width - 1`` times.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
    width : int
        Line width in px (>= 1).

    Returns
    -------
    numpy.ndarray of bool, shape (H, W)
    """
    from scipy import ndimage

    m = np.asarray(mask, dtype=bool)
    edge = m & ~ndimage.binary_erosion(m, border_value=0)
    if width > 1:
        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge


def visible(points: Any, mesh: trimesh.Trimesh, camera: Camera, tolerance_mm: float = 2.0) -> np.ndarray:
    """Which points (on or near ``mesh``) the camera sees: the ray toward each point meets the
    mesh first within ``tolerance_mm`` of it, and the point projects inside the image.

    Parameters
    ----------
    points : array_like, shape (n, 3), world mm
    mesh : trimesh.Trimesh
    camera : Camera
    tolerance_mm : float

    Returns
    -------
    numpy.ndarray of bool, shape (n,)
    """
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if not len(p):
        return np.zeros(0, dtype=bool)
    c = camera.centre
    d = p - c
    dist = np.linalg.norm(d, axis=1)
    d /= dist[:, None]
    origins = np.broadcast_to(c, d.shape).copy()
    locs, ray_idx, _ = mesh.ray.intersects_location(origins, d, multiple_hits=True)
    first = np.full(len(p), np.inf)
    if len(ray_idx):
        hit_dist = np.einsum("ij,ij->i", locs - origins[ray_idx], d[ray_idx])
        np.minimum.at(first, ray_idx, hit_dist)
    uv = camera.project(p)
    w, h = camera.size
    inside = (uv[:, 0] >= -0.5) & (uv[:, 0] <= w - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= h - 0.5)
    return inside & (first >= dist - tolerance_mm)


__all__ = ["Camera", "LIGHT_CAMERA", "Rendering", "look_at", "outline", "render", "shade", "visible"]
