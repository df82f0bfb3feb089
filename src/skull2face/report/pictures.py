"""Shaded pictures of meshes (Embree ray casting) and mesh-on-slice overlays (matplotlib).

Ray casting gives exact, dependency-light pictures on a headless machine: no OpenGL needed.
Figures are `matplotlib.figure.Figure` objects with an Agg canvas attached (`new_figure`),
never pyplot's: no global matplotlib state, safe in threads and headless; ``predict``'s own
picture (`prediction_figure`) is put together with Pillow, so that ``predict`` imports no
matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from ..io.atomic import atomic_path

# Views in LPS patient coordinates: (direction the camera looks along, image-up direction).
# "front" looks at the face (from anterior, -y in LPS, toward +y); "left" at the subject's left side.
VIEWS = {
    "front": (np.array([0.0, 1.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "left": (np.array([-1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "right": (np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])),
    "top": (np.array([0.0, 0.0, -1.0]), np.array([0.0, -1.0, 0.0])),
}


def shade(meshes: list[trimesh.Trimesh], colors: list[tuple[float, float, float]], look: np.ndarray,
          up: np.ndarray, px: int = 320, alpha: list[float] | None = None) -> np.ndarray:
    """Orthographic Lambert-shaded picture of several meshes seen along ``look``.

    Parameters
    ----------
    meshes : list of trimesh.Trimesh
        Coordinates in mm (any common frame).
    colors : list of (r, g, b)
        One colour per mesh, 0..1.
    look, up : (3,) array
        Viewing direction and image-up direction in the meshes' frame.
    px : int
        Image side in pixels; the picture frames all meshes with a small margin.
    alpha : list of float, optional
        Opacity per mesh; a mesh with alpha < 1 lets the nearest mesh behind it show through.

    Returns
    -------
    np.ndarray
        ``(px, px, 3)`` float32 RGB in 0..1, white background.
    """
    look = np.asarray(look, float) / np.linalg.norm(look)
    up = np.asarray(up, float) - np.dot(up, look) * look
    up /= np.linalg.norm(up)
    right = np.cross(look, up)
    pts = np.vstack([m.vertices for m in meshes])
    centre = (pts.max(0) + pts.min(0)) / 2
    half = 1.08 * np.max(np.abs((pts - centre) @ np.stack([right, up]).T))
    u = np.linspace(-half, half, px)
    uu, vv = np.meshgrid(u, -u)
    origins = centre - look * (np.max(np.abs((pts - centre) @ look)) + 10.0) \
        + uu.reshape(-1, 1) * right + vv.reshape(-1, 1) * up
    dirs = np.tile(look, (len(origins), 1))
    alpha = alpha or [1.0] * len(meshes)
    light = -look + 0.4 * up - 0.3 * right
    light /= np.linalg.norm(light)
    depth = [np.full(len(origins), np.inf) for _ in meshes]
    lum = [np.zeros(len(origins)) for _ in meshes]
    for i, m in enumerate(meshes):
        tri = m.ray.intersects_first(origins, dirs)
        hit = tri >= 0
        if not hit.any():
            continue
        n = m.face_normals[tri[hit]]
        cos = np.abs(n @ light)  # two-sided: open surfaces look right from behind too
        lum[i][hit] = 0.25 + 0.75 * cos
        centres = m.triangles_center[tri[hit]]
        depth[i][hit] = (centres - origins[hit]) @ look
    img = np.ones((len(origins), 3))
    order = np.argsort(np.stack(depth), axis=0)[::-1]  # far to near: composite back to front
    for rank in range(len(meshes)):
        idx = order[rank]
        for i in range(len(meshes)):
            sel = (idx == i) & np.isfinite(depth[i])
            if sel.any():
                c = np.asarray(colors[i]) * lum[i][sel, None]
                img[sel] = (1 - alpha[i]) * img[sel] + alpha[i] * c
    return img.reshape(px, px, 3).astype(np.float32)


def new_figure(figsize: tuple[float, float]):
    """A blank `matplotlib.figure.Figure` of ``figsize`` (inches) with an Agg canvas attached."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | os.PathLike) -> Path:
    """Save a matplotlib figure (with a canvas, e.g. from `new_figure`) as PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return path


def extraction_figure(skin: trimesh.Trimesh, skull: trimesh.Trimesh | None, volume=None,
                      title: str = ""):
    """Picture of an extraction: skin and skull from the front and the side, and both
    surfaces' outlines on the mid-axial and mid-sagittal slices of the volume, which shows
    that the meshes sit in the volume's own coordinates.
    """
    skin_c, bone_c = (0.93, 0.75, 0.62), (0.95, 0.93, 0.85)
    n_cols = 4 if volume is not None else 3
    fig = new_figure((4 * (n_cols + 1), 4.4))
    axes = fig.subplots(1, n_cols + (1 if volume is not None else 0))
    axes = np.atleast_1d(axes)
    panels = [("skin, front", [skin], [skin_c], "front"), ("skin, left side", [skin], [skin_c], "left")]
    if skull is not None:
        panels.append(("skull, front", [skull], [bone_c], "front"))
    for ax, (name, ms, cs, view) in zip(axes, panels):
        ax.imshow(shade(ms, cs, *VIEWS[view]))
        ax.set_title(name)
        ax.axis("off")
    for ax in axes[len(panels):]:
        ax.axis("off")
    if volume is not None:
        _slice_overlay(axes[-2], volume, skin, skull, plane="axial")
        _slice_overlay(axes[-1], volume, skin, skull, plane="sagittal")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _slice_overlay(ax, volume, skin, skull, plane: str) -> None:
    """Draw a volume slice in LPS mm with the meshes' cross-sections on it."""
    # a plane through the head's centre, perpendicular to S (axial) or L (sagittal)
    centre = skin.bounds.mean(axis=0)
    if plane == "axial":
        normal, (a, b), label = np.array([0.0, 0.0, 1.0]), (0, 1), ("L (mm)", "P (mm)")
    else:
        normal, (a, b), label = np.array([1.0, 0.0, 0.0]), (1, 2), ("P (mm)", "S (mm)")
    # sample the volume on a regular LPS grid on the plane (nearest voxel)
    lo, hi = skin.bounds[0] - 10, skin.bounds[1] + 10
    step = float(min(volume.spacing)) * 0.75
    ga, gb = np.arange(lo[a], hi[a], step), np.arange(lo[b], hi[b], step)
    A, B = np.meshgrid(ga, gb)
    pts = np.zeros((A.size, 3))
    pts[:, a], pts[:, b] = A.ravel(), B.ravel()
    pts[:, 3 - a - b] = centre[3 - a - b]
    lps_to_index = np.linalg.inv(volume.index_to_lps)
    ijk = np.rint(pts @ lps_to_index[:3, :3].T + lps_to_index[:3, 3]).astype(int)
    inside = np.all((ijk >= 0) & (ijk < np.array(volume.shape)), axis=1)
    img = np.full(A.size, -1024.0)
    img[inside] = volume.voxels[ijk[inside, 0], ijk[inside, 1], ijk[inside, 2]]
    ax.imshow(img.reshape(A.shape), cmap="gray", vmin=-1000, vmax=1500, origin="lower",
              extent=(ga[0], ga[-1], gb[0], gb[-1]))
    for mesh, colour, name in ((skin, "tab:orange", "skin"), (skull, "tab:cyan", "skull")):
        if mesh is None:
            continue
        sec = mesh.section(plane_origin=centre, plane_normal=normal)
        if sec is None:
            continue
        for seg in sec.discrete:
            ax.plot(seg[:, a], seg[:, b], color=colour, lw=0.9)
        ax.plot([], [], color=colour, label=name)
    ax.set_xlabel(label[0])
    ax.set_ylabel(label[1])
    ax.set_title(f"{plane} slice, meshes overlaid")
    ax.legend(loc="lower right", fontsize=7)
    ax.set_aspect("equal")


def hillshade(height: np.ndarray, mm_per_px: float = 1.0) -> np.ndarray:
    """Shaded relief of a depth map (lit from the upper left), NaN where the map is invalid.

    Parameters
    ----------
    height : (H, W) float32 mm, NaN outside the surface.

    Returns
    -------
    (H, W) float64 in 0..1, NaN outside.
    """
    gy, gx = np.gradient(np.nan_to_num(height, nan=np.nanmin(height) if np.isfinite(height).any() else 0.0),
                         mm_per_px)
    # row index grows downward while y grows upward: flip the row gradient
    n = np.stack([-gx, gy, np.ones_like(gx)], axis=-1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    light = np.array([-0.5, 0.6, 1.0])
    light /= np.linalg.norm(light)
    shade = np.clip(n @ light, 0, 1)
    return np.where(np.isfinite(height), 0.2 + 0.8 * shade, np.nan)


def depthmap_landmarks_figure(maps: dict, landmarks_head: dict):
    """Depth maps side by side (shaded relief), with landmarks drawn and labelled.

    Parameters
    ----------
    maps : dict of str to DepthMap
        E.g. ``{"skull": dm1, "face": dm2}``, all with one render spec.
    landmarks_head : dict of str to LandmarkSet
        Landmarks in head-frame mm per surface; ``meta[name]["source"]`` colours the marker
        (given: blue, detected: red).
    """
    fig = new_figure((6.2 * len(maps), 6.6))
    axes = fig.subplots(1, len(maps))
    axes = np.atleast_1d(axes)
    for ax, (surface, dm) in zip(axes, maps.items()):
        spec = dm.spec
        h, w = spec.size
        s = spec.mm_per_px
        cx, cy = spec.centre
        extent = (cx - w * s / 2, cx + w * s / 2, cy - h * s / 2, cy + h * s / 2)
        ax.imshow(hillshade(dm.height, s), cmap="gray", vmin=0, vmax=1, extent=extent, interpolation="nearest")
        lms = landmarks_head.get(surface)
        missing = []
        if lms is not None:
            for name, meta in lms.meta.items():
                if name not in lms.points:
                    missing.append(name)
                    continue
                x, y, _ = lms.points[name]
                colour = "tab:blue" if meta.get("source") == "given" else "tab:red"
                marker = "o" if meta.get("confidence", "high") != "low" else "x"
                ax.plot(x, y, marker, color=colour, ms=5, mec="white", mew=0.6)
                ax.annotate(name, (x, y), xytext=(3, 3), textcoords="offset points", fontsize=7, color=colour)
        ax.set_title(f"{surface}: depth map in the head frame" + (f"\nmissing: {', '.join(missing)}" if missing else ""),
                     fontsize=9)
        ax.set_xlabel("x (mm, subject's left →)")
        ax.set_ylabel("y (mm, up)")
    fig.text(0.01, 0.01, "red: detected (x = low confidence), blue: given", fontsize=8)
    fig.tight_layout()
    return fig


def head_views(frame: np.ndarray) -> dict:
    """``VIEWS``-like (look, up) pairs in input coordinates for a mesh with head frame ``frame``
    (input -> head, 4 x 4): "front" faces the face, "left" the subject's left side."""
    r = np.asarray(frame, dtype=np.float64)[:3, :3]  # rows: head axes in input coordinates
    x, y, z = r[0], r[1], r[2]
    return {"front": (-z, y), "left": (-x, y), "right": (x, y), "top": (-y, -z)}


def prediction_figure(skull: trimesh.Trimesh, face: trimesh.Trimesh, truth: trimesh.Trimesh | None = None,
                      frame: np.ndarray | None = None, px: int = 400) -> np.ndarray:
    """Skull with the predicted face over it (front and side), and the truth when known.

    ``frame`` (input -> head) orients the views whatever the input's pose; without it the
    meshes are taken to be in LPS. The panels and their titles are put together with Pillow
    (no matplotlib: ``predict`` needs none, and a figure's layout and Agg drawing took longer
    than the ray casting); `save_picture` writes the result.

    Returns
    -------
    numpy.ndarray, shape (px + title, panels * px, 3), uint8
        RGB, white background; 3 panels, 4 with ``truth``.
    """
    from PIL import Image, ImageDraw, ImageFont

    views = head_views(frame) if frame is not None else VIEWS
    bone_c, face_c, truth_c = (0.95, 0.93, 0.85), (0.93, 0.75, 0.62), (0.62, 0.78, 0.93)
    panels = [("skull", [skull], [bone_c], "front", None),
              ("predicted face over the skull", [skull, face], [bone_c, face_c], "front", [1.0, 0.85]),
              ("predicted face, left side", [skull, face], [bone_c, face_c], "left", [1.0, 0.85])]
    if truth is not None:
        panels.append(("true skin (CT)", [truth], [truth_c], "front", None))
    title_px = px // 8
    sheet = Image.new("RGB", (px * len(panels), px + title_px), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=max(10, px // 20))  # readable when the strip spans a page
    for k, (name, ms, cs, view, alpha) in enumerate(panels):
        img = shade(ms, cs, *views[view], px=px, alpha=alpha)
        sheet.paste(Image.fromarray(np.round(255 * np.clip(img, 0, 1)).astype(np.uint8)), (k * px, title_px))
        width = draw.textlength(name, font=font)
        draw.text((k * px + (px - width) / 2, title_px // 4), name, fill="black", font=font)
    return np.asarray(sheet)


def save_picture(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Save an RGB(A) uint8 array (h, w, 3 or 4) as PNG, atomically (Pillow, no matplotlib)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(f, format="PNG")
    return path


def samples_figure(heads: list[trimesh.Trimesh], frame: np.ndarray | None = None, columns: int = 5,
                   px: int = 260):
    """Contact sheet of plausible faces: each head from the front, numbered as its file.

    Parameters
    ----------
    heads : list of trimesh.Trimesh
        Whole heads, input coordinates, mm (``predict --samples``).
    frame : numpy.ndarray, shape (4, 4), optional
        Input -> head frame, so every face looks out of the page; None: LPS input.
    columns : int
    px : int
        Side of each picture, pixels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    look, up = (head_views(frame) if frame is not None else VIEWS)["front"]
    rows = max(1, int(np.ceil(len(heads) / columns)))
    cols = min(columns, max(1, len(heads)))
    fig = new_figure((2.6 * cols, 2.9 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < len(heads):
            ax.imshow(shade([heads[i]], [(0.93, 0.75, 0.62)], look, up, px=px))
            ax.set_title(f"face_{i + 1:02d}", fontsize=12)
    fig.tight_layout()
    return fig
