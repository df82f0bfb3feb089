"""The evaluation's heat map: the true skin coloured by its distance to the prediction.

Orthographic ray-cast pictures (Embree through trimesh), front and left side, drawn on a
`matplotlib.figure.Figure` with an Agg canvas (no global matplotlib state). Millimetres
throughout.
"""

from __future__ import annotations

import numpy as np
import trimesh

from ..evaluation.region import FaceRegion
from ..geometry.distances import barycentric, face_cross, mesh_arrays, row_norms
from .pictures import new_figure

#: Colour scale of the heat map, mm.
HEATMAP_MAX_MM = 5.0


def _error_view(mesh: trimesh.Trimesh, err: np.ndarray, face_in: np.ndarray, frame: np.ndarray | None,
                look_head: np.ndarray, up_head: np.ndarray, focus: np.ndarray, px: int,
                vmax: float = HEATMAP_MAX_MM) -> np.ndarray:
    """Orthographic ray-cast picture (px, px, 3) float in 0..1 of the truth coloured by error.

    Pixels whose ray hits a region triangle get the colour of the barycentric-interpolated
    vertex error (0..``vmax``, default `HEATMAP_MAX_MM`), others grey; Lambert shading from the camera side; the
    region's outline is drawn dark.
    """
    import matplotlib

    rot = np.eye(3) if frame is None else frame[:3, :3]
    # head-frame directions -> input coordinates (rows of rot are the head axes in input coords)
    look = rot.T @ look_head
    up = rot.T @ up_head
    right = np.cross(look, up)
    v, f = mesh_arrays(mesh)
    basis = np.stack([right, up, look])
    uvw = np.einsum("ij,kj->ik", v, basis)
    fuv = np.einsum("ij,kj->ik", focus, basis)
    lo, hi = fuv.min(axis=0), fuv.max(axis=0)
    centre = (lo + hi) / 2.0
    half = 0.55 * float(max(hi[0] - lo[0], hi[1] - lo[1])) + 10.0
    s = np.linspace(-half, half, px)
    uu, vv = np.meshgrid(s + centre[0], -s + centre[1])
    start = float(uvw[:, 2].min()) - 10.0
    origins = (uu.reshape(-1, 1) * right + vv.reshape(-1, 1) * up + start * look)
    dirs = np.tile(look, (len(origins), 1))
    loc, ray, tri = mesh.ray.intersects_location(origins, dirs, multiple_hits=False)
    img = np.ones((px * px, 3))
    if len(ray):
        n = face_cross(v, f[tri])
        n /= np.maximum(row_norms(n), 1e-300)[:, None]
        light = -look + 0.35 * up - 0.25 * right
        light /= np.linalg.norm(light)
        lum = 0.35 + 0.65 * np.abs(np.einsum("ij,j->i", n, light))
        bary = barycentric(v, f, tri, np.asarray(loc, dtype=np.float64))
        e = np.einsum("ij,ij->i", bary, err[f[tri]])
        cmap = matplotlib.colormaps["viridis"]
        colour = cmap(np.clip(e / vmax, 0.0, 1.0))[:, :3]
        inside = face_in[tri]
        colour[~inside] = 0.62
        img[ray] = colour * lum[:, None]
        flag = np.full(px * px, -1, dtype=np.int8)
        flag[ray] = inside
        flag = flag.reshape(px, px)
        edge = np.zeros((px, px), dtype=bool)
        # a pixel is on the outline where it and its upper or left neighbour both hit the
        # truth but only one of them hits the region
        edge[1:] |= (flag[1:] != flag[:-1]) & (flag[1:] >= 0) & (flag[:-1] >= 0)
        edge[:, 1:] |= (flag[:, 1:] != flag[:, :-1]) & (flag[:, 1:] >= 0) & (flag[:, :-1] >= 0)
        img.reshape(px, px, 3)[edge] = 0.1
    return img.reshape(px, px, 3)


def heatmap_figure(truth: trimesh.Trimesh, error_mm: np.ndarray, region: FaceRegion, title: str,
                   px: int = 420):
    """Front and left-side pictures of the truth coloured by its distance to the prediction.

    Parameters
    ----------
    truth : trimesh.Trimesh
        True skin, vertices in mm.
    error_mm : numpy.ndarray, shape (n_vertices,), mm
        Truth -> prediction distance per truth vertex.
    region : FaceRegion
        Region triangles are coloured, the rest grey, with the region's outline.
    title : str
        Shown above the pictures.
    px : int
        Side of each picture, pixels.

    Returns
    -------
    matplotlib.figure.Figure
        With an Agg canvas attached (save it with `skull2face.report.pictures.save_png`).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    v, f = mesh_arrays(truth)
    face_in = region.face_mask(f)
    focus = v[region.mask] if region.mask.any() else v
    views = (("front", np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])),
             ("subject's left side", np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])))
    fig = new_figure((11.5, 6.0))
    axes = fig.subplots(1, 2)
    for ax, (name, look, up) in zip(axes, views):
        ax.imshow(_error_view(truth, error_mm, face_in, region.frame, look, up, focus, px))
        ax.set_title(name, fontsize=10)
        ax.axis("off")
    sm = ScalarMappable(cmap="viridis", norm=Normalize(0.0, HEATMAP_MAX_MM))
    cb = fig.colorbar(sm, ax=list(axes), fraction=0.035, pad=0.02, extend="max")
    cb.set_label("distance from the true skin to the prediction (mm)")
    fig.suptitle(title, fontsize=10)
    fig.text(0.01, 0.01, "grey: outside the scored face region (dark line: its outline)", fontsize=8)
    return fig


def value_heatmap_figure(mesh: trimesh.Trimesh, values_mm: np.ndarray, frame: np.ndarray | None, title: str,
                         label: str, vmax: float | None = None, px: int = 420):
    """Front and left-side pictures of a mesh coloured by a per-vertex value in mm (e.g. the
    predicted face's uncertainty), the face part only (in front of the ears: head-frame
    z > -60 mm and y > -130 mm), the rest grey.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Vertices in mm.
    values_mm : numpy.ndarray, shape (n_vertices,), mm
    frame : numpy.ndarray, shape (4, 4) or None
        Input -> head frame (None: the mesh is in the head frame already).
    title, label : str
        Above the pictures; the colour bar's label.
    vmax : float, optional
        Top of the colour scale, mm; default the 95th percentile over the face part, rounded up.
    px : int

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    from ..geometry.frame import apply

    v, f = mesh_arrays(mesh)
    head = apply(frame, v) if frame is not None else v
    part = (head[:, 2] > -60.0) & (head[:, 1] > -130.0)
    face_in = part[f].all(axis=1)
    vals = np.asarray(values_mm, np.float64)
    if vmax is None:
        vmax = float(np.ceil(np.percentile(vals[part], 95))) if part.any() else float(np.nanmax(vals))
    vmax = max(vmax, 1.0)
    focus = v[part] if part.any() else v
    views = (("front", np.array([0.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0])),
             ("subject's left side", np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])))
    fig = new_figure((11.5, 6.0))
    axes = fig.subplots(1, 2)
    for ax, (name, look, up) in zip(axes, views):
        ax.imshow(_error_view(mesh, vals, face_in, frame, look, up, focus, px, vmax))
        ax.set_title(name, fontsize=12)
        ax.axis("off")
    cb = fig.colorbar(ScalarMappable(cmap="viridis", norm=Normalize(0.0, vmax)), ax=list(axes), fraction=0.035,
                      pad=0.02, extend="max")
    cb.set_label(label)
    fig.suptitle(title, fontsize=12)
    return fig
