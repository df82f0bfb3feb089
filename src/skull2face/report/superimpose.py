"""Pictures of a craniofacial superimposition: the skull over the photo, the face beside it.

`overlay_image`
    The photo with a mesh rendered through the solved camera blended over it (shaded,
    tinted, semi-transparent) and its silhouette drawn as an outline: (H, W, 3) float in [0, 1].
`overlay_figure`
    That image with the soft-tissue points (projected) and their photo partners joined by
    lines, each labelled with its error in mm at the face, and the grade in the title.
`side_by_side_figure`
    The photo with the skull's outline, and the predicted face rendered through the same camera.
`superimposition_html`
    A section for the HTML report: the conclusion, its thresholds and caveat, the per-landmark
    table and the two pictures (embedded), from a ``superimpose`` folder's record.

Figures are Agg `matplotlib.figure.Figure` objects (`skull2face.report.pictures.new_figure`).
Pictures are drawn at most `PICTURE_PX` pixels on the long side (the camera is scaled to match).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import trimesh

from ..geometry import camera as cam_mod
from ..geometry.camera import Camera
from .pictures import new_figure

PICTURE_PX = 720
"""Long side of the pictures, px (the photo is resized; the camera is scaled with it)."""
SKULL_RGB = (1.0, 0.85, 0.55)
FACE_RGB = (0.85, 0.7, 0.6)
OUTLINE_RGB = (1.0, 0.25, 0.1)


def working_view(photo: np.ndarray, camera: Camera, max_px: int = PICTURE_PX) -> tuple[np.ndarray, Camera, float]:
    """The photo resized to at most ``max_px`` on its long side, the camera to match, and the factor."""
    import cv2

    h, w = photo.shape[:2]
    factor = min(1.0, max_px / max(h, w))
    if factor >= 1.0:
        return photo, camera, 1.0
    cam = camera.scaled(factor)
    small = cv2.resize(photo, cam.size, interpolation=cv2.INTER_AREA)
    return small, cam, factor


def overlay_image(photo: np.ndarray, camera: Camera, mesh: trimesh.Trimesh | cam_mod.Rendering, rgb=SKULL_RGB,
                  alpha: float = 0.45, outline_rgb=OUTLINE_RGB) -> np.ndarray:
    """The photo (RGB uint8, the camera's size) with ``mesh`` blended over it and outlined.

    ``mesh`` may be its `skull2face.geometry.camera.Rendering` through ``camera`` already.

    Returns
    -------
    numpy.ndarray, shape (H, W, 3), float64 in [0, 1]
    """
    img = photo.astype(np.float64) / 255.0
    r = mesh if isinstance(mesh, cam_mod.Rendering) else cam_mod.render(mesh, camera)
    lum = cam_mod.shade(r)[..., None] * np.asarray(rgb, dtype=np.float64)
    m = r.mask[..., None]
    out = np.where(m, (1 - alpha) * img + alpha * lum, img)
    edge = cam_mod.outline(r.mask, width=2)
    out[edge] = outline_rgb
    return np.clip(out, 0.0, 1.0)


def overlay_figure(photo: np.ndarray, camera: Camera, skull: trimesh.Trimesh, points: Mapping[str, Any],
                   photo_points: Mapping[str, Any], errors: Mapping[str, Mapping[str, float]], title: str,
                   skull_view: cam_mod.Rendering | None = None):
    """The skull over the photo with each soft-tissue point joined to its photo partner.

    Parameters
    ----------
    photo : numpy.ndarray, shape (H, W, 3), uint8
        At the camera's size (full resolution; resized here).
    camera : Camera
        The solved camera.
    skull : trimesh.Trimesh
        World (input) coordinates, mm.
    points : mapping of str to (3,)
        Soft-tissue points (world mm) of the landmark pairs.
    photo_points : mapping of str to (2,)
        The photo's landmarks (px, full resolution).
    errors : mapping of str to dict
        `skull2face.superimposition.register.residuals` output (``"mm"`` is shown).
    title : str
    skull_view : Rendering, optional
        The skull already rendered through the working view's camera (`working_view`).
    """
    small, cam, factor = working_view(photo, camera)
    img = overlay_image(small, cam, skull if skull_view is None else skull_view)
    h, w = img.shape[:2]
    fig = new_figure((8.0, 8.0 * h / w + 0.6))
    ax = fig.add_axes((0, 0, 1, 1 - 0.6 / (8.0 * h / w + 0.6)))
    ax.imshow(img, interpolation="bilinear")
    for name in points:
        if name not in photo_points:
            continue
        uv = cam.project(np.asarray(points[name], dtype=np.float64).reshape(1, 3))[0]
        xy = (np.asarray(photo_points[name], dtype=np.float64) + 0.5) * factor - 0.5
        ax.plot([uv[0], xy[0]], [uv[1], xy[1]], color="yellow", lw=1.5)
        ax.plot(*xy, "o", ms=5, mfc="lime", mec="black", mew=0.6)
        ax.plot(*uv, "x", ms=6, color="red", mew=1.8)
        mm = errors.get(name, {}).get("mm")
        label = name if mm is None else f"{name} {mm:.1f} mm"
        ax.annotate(label, xy, xytext=(6, -6), textcoords="offset points", color="white", fontsize=8,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "black", "alpha": 0.55, "lw": 0})
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_axis_off()
    ax.set_title(title + "\n(green: photo landmark, red: skull's soft-tissue point through the solved camera)",
                 fontsize=9)
    return fig


def side_by_side_figure(photo: np.ndarray, camera: Camera, skull: trimesh.Trimesh,
                        face: trimesh.Trimesh | None, note: str = "", skull_view: cam_mod.Rendering | None = None):
    """The photo with the skull's outline, and the predicted face rendered through the same camera.

    Parameters
    ----------
    photo, camera, skull
        As in `overlay_figure`.
    face : trimesh.Trimesh or None
        The predicted face (world mm); None draws a note in its place.
    note : str
        Shown under the face panel (e.g. which method made it).
    skull_view : Rendering, optional
        As in `overlay_figure`.
    """
    small, cam, _ = working_view(photo, camera)
    h, w = small.shape[:2]
    left = overlay_image(small, cam, skull if skull_view is None else skull_view, alpha=0.0)
    fig = new_figure((10.0, 5.0 * h / w + 0.6))
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.imshow(left)
    ax1.set_title("photo and the skull's outline", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    if face is not None:
        r = cam_mod.render(face, cam)
        lum = cam_mod.shade(r)[..., None] * np.asarray(FACE_RGB)
        ax2.imshow(np.where(r.mask[..., None], lum, 1.0))
    else:
        ax2.imshow(np.ones((h, w, 3)))
    ax2.set_title("predicted face, same camera" + (f"\n{note}" if note else ""), fontsize=9)
    for ax in (ax1, ax2):
        ax.set_axis_off()
    return fig


def superimposition_html(record: Mapping[str, Any], folder: str | os.PathLike) -> str:
    """An HTML section (a ``<section>`` fragment, self-contained) for a ``superimpose`` folder.

    Parameters
    ----------
    record : mapping
        The folder's ``superimpose.json``.
    folder : path-like
        The folder (its ``overlay.png`` and ``side_by_side.png`` are embedded).
    """
    from .html import _e, _figure

    c = record["conclusion"]
    cam = record["camera"]
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{r['error_px']:.2f}</td><td>{r['error_mm']:.2f}</td>"
                   f"<td>{r['thickness_sd_mm']:g}</td></tr>" for k, r in record["landmarks"].items())
    unused = ", ".join(f"{k} ({why})" for k, why in record.get("unused_photo_landmarks", {}).items())
    out = record.get("outputs", {})
    pics = "".join(_figure(Path(folder) / out[key], cap) for key, cap in (
        ("overlay", "the skull through the solved camera over the photo"),
        ("side_by_side", "the photo with the skull's outline, and the predicted face through the same camera"))
        if key in out)
    return (f"<section><h2>Craniofacial superimposition</h2>"
            f"<p><strong>{_e(c['grade'])}</strong>: residual SD {c['residual_sd_mm']:.2f} mm at the face over "
            f"{c['pairs']} landmark pairs ({c['degrees_of_freedom']} degrees of freedom); camera focal "
            f"{cam['focal_px']:.0f} px, face at {cam['face_distance_mm']:.0f} mm.</p>"
            f"<p>Thresholds: {_e(c['rule'])}.</p><p><em>{_e(c['caveat'])}</em></p>"
            f"<table><tr><th>landmark</th><th>error px</th><th>error mm</th><th>tissue SD mm</th></tr>{rows}</table>"
            + (f"<p>Not used: {_e(unused)}</p>" if unused else "") + pics + "</section>")


__all__ = ["PICTURE_PX", "overlay_figure", "overlay_image", "side_by_side_figure", "superimposition_html",
           "working_view"]
