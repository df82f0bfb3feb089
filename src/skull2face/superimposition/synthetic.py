"""Synthetic "photographs" of a head's skin with a known camera, for tests and benchmarks.

`portrait_camera`
    A camera in front of a head (yaw, pitch in the head frame) at a distance, aimed 40 mm below
    nasion (mid-face), upright.
`photograph`
    The skin rendered through that camera in perspective, Lambert-shaded, on a plain
    background: (H, W, 3) uint8 RGB, written as PNG by the caller.
`photo_landmarks`
    The skin's landmarks projected through the camera, keeping those the camera sees.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import trimesh

from ..geometry import camera as cam_mod
from ..geometry.camera import Camera, look_at
from ..geometry.frame import apply, invert_rigid

SKIN_RGB = (0.93, 0.76, 0.64)
BACKGROUND_RGB = (0.55, 0.6, 0.68)
AIM_HEAD = (0.0, -40.0, 0.0)
"""Head-frame point the camera aims at: 40 mm below nasion, about the middle of the face."""
VISIBLE_TOLERANCE_MM = 20.0
"""A landmark counts as seen when the ray toward it meets the skin no more than this before it:
points on the outline (zygion, gonion: the most lateral points) lie at a grazing ray, where a
marker would still place them on the face's contour; points behind the nose or the cheek lie
tens of mm behind the first hit."""


def portrait_camera(head_matrix: Any, yaw_deg: float = 0.0, pitch_deg: float = 0.0, distance_mm: float = 600.0,
                    focal_px: float = 2400.0, size: tuple[int, int] = (960, 1200)) -> Camera:
    """A camera ``distance_mm`` in front of the head, turned by yaw (toward the subject's left,
    degrees) and pitch (from above), aimed at `AIM_HEAD`, head-frame +y up in the image.

    Parameters
    ----------
    head_matrix : array_like (4, 4)
        Input -> head frame (`skull2face.geometry.frame.HeadFrame.matrix`).
    yaw_deg, pitch_deg, distance_mm, focal_px : float
    size : (int, int)
        Width, height, px.
    """
    inv = invert_rigid(np.asarray(head_matrix, dtype=np.float64))
    a, b = np.radians(yaw_deg), np.radians(pitch_deg)
    direction = np.array([np.sin(a) * np.cos(b), np.sin(b), np.cos(a) * np.cos(b)])
    aim = np.asarray(AIM_HEAD, dtype=np.float64)
    eye, target = apply(inv, aim + distance_mm * direction), apply(inv, aim)
    up = inv[:3, :3] @ np.array([0.0, 1.0, 0.0])
    return look_at(eye, target, up, focal_px, size)


def photograph(skin: trimesh.Trimesh, camera: Camera) -> np.ndarray:
    """The skin seen through ``camera``: shaded, perspective, (H, W, 3) uint8 RGB."""
    r = cam_mod.render(skin, camera)
    lum = cam_mod.shade(r)[..., None] * np.asarray(SKIN_RGB)
    img = np.where(r.mask[..., None], lum, np.asarray(BACKGROUND_RGB))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def photo_landmarks(skin: trimesh.Trimesh, landmarks: Mapping[str, Any], camera: Camera,
                    tolerance_mm: float = VISIBLE_TOLERANCE_MM) -> dict[str, np.ndarray]:
    """Skin landmarks (world mm) -> their pixels ``(x, y)`` where the camera sees them.

    Returns
    -------
    dict of str to numpy.ndarray, shape (2,)
    """
    names = [k for k, v in landmarks.items() if np.all(np.isfinite(np.asarray(v, dtype=np.float64)))]
    if not names:
        return {}
    pts = np.array([landmarks[k] for k in names], dtype=np.float64)
    seen = cam_mod.visible(pts, skin, camera, tolerance_mm)
    uv = camera.project(pts)
    return {k: uv[i] for i, k in enumerate(names) if seen[i]}


__all__ = ["AIM_HEAD", "VISIBLE_TOLERANCE_MM", "photo_landmarks", "photograph", "portrait_camera"]
