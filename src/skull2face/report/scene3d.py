"""The report's interactive 3D view: decimated meshes as one glTF binary, and the page section.

The section holds the scene as a base64 glTF binary (GLB, one node per layer, named after it),
the vendored three.js bundle (`vendor/three-viewer.min.js`: WebGLRenderer, GLTFLoader,
OrbitControls; its version in `vendor/THREE_VERSION`, MIT licence in `vendor/LICENSE-three.txt`,
rebuilt by `vendor/build/build.sh`) and our viewer script (`viewer.js`). Everything is inline:
the page still opens offline as one file.

Coordinates stay the input's own (LPS mm for a CT); the viewer's camera takes +z (superior) as
up and looks from -y (anterior) for the front view.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import trimesh

from .provenance import e

#: Face budget per layer after decimation. At these sizes a CT skull, a face and the truth come
#: to ~5 MB of page (GLB without normals, base64), keeping the report under ~15 MB.
MAX_FACES = {"skull": 60_000, "face": 40_000, "truth": 40_000}

#: Colours (sRGB hex) of the layers without per-vertex colours.
COLOURS = {"skull": "#e9e2cf", "face": "#d9a98c", "truth": "#9fb7d9"}


@dataclass
class Layer:
    """One mesh of the 3D view.

    Attributes
    ----------
    name : str
        Node name in the GLB and key of the viewer's toggle (``skull``, ``face``, ``truth``).
    label : str
        What the toggle says.
    mesh : trimesh.Trimesh
        Vertices (n, 3) float mm, faces (m, 3) int.
    error_mm : numpy.ndarray or None
        (n,) float per-vertex error, mm (NaN: not scored); the viewer can colour the layer by
        it (0..``error_max_mm``, viridis as the heat maps), grey where NaN.
    opacity : float
        Initial opacity, 0..1.
    visible : bool
        Shown when the page opens.
    scale_max_mm : float or None
        Top of this layer's colour scale (mm); None: the view's error scale.
    value : str
        What the colours show, for the switch ("error", "uncertainty (SD)").
    """

    name: str
    label: str
    mesh: trimesh.Trimesh
    error_mm: np.ndarray | None = None
    opacity: float = 1.0
    visible: bool = True
    scale_max_mm: float | None = None
    value: str = "error"


def layers_from_files(scene: Mapping[str, Any]) -> list[Layer]:
    """The view's layers from mesh files: ``skull``, ``face`` and ``truth`` or ``error_mesh``.

    Parameters
    ----------
    scene : mapping
        ``skull``, ``face`` (paths of meshes `skull2face.io.meshes.load_mesh` reads; ``method``,
        the face's method, names it in its toggle), and optionally ``error_mesh`` (the ``error_on_truth.ply`` of ``skull2face evaluate``: the
        truth with its per-vertex error; vertices outside the face region are not scored) or
        ``truth`` (the true skin without errors). Missing keys are left out.

    Returns
    -------
    list of Layer
        Skull, predicted face (opacity 0.85) and the truth (hidden at first).
    """
    from ..io.error_mesh import read_error_ply
    from ..io.meshes import load_mesh

    layers = []
    if scene.get("skull"):
        layers.append(Layer("skull", "skull", load_mesh(scene["skull"])))
    if scene.get("face"):
        label = f"predicted face ({scene['method']})" if scene.get("method") else "predicted face"
        layers.append(Layer("face", label, load_mesh(scene["face"]), opacity=0.85))
    if scene.get("error_mesh"):
        truth, values = read_error_ply(scene["error_mesh"])
        err = np.where(values["region"] > 0, values["error_mm"], np.nan)
        layers.append(Layer("truth", "true skin", truth, error_mm=err, visible=False))
    elif scene.get("truth"):
        layers.append(Layer("truth", "true skin", load_mesh(scene["truth"]), visible=False))
    if scene.get("uncertainty"):  # predict --samples: the predicted face coloured by its SD
        from ..io.error_mesh import read_scalar_ply

        head, values = read_scalar_ply(scene["uncertainty"])
        sd = values["sd_mm"]
        layers.append(Layer("uncertainty", "predicted face, coloured by its uncertainty", head, error_mm=sd,
                            visible=False, scale_max_mm=float(max(1.0, np.ceil(np.percentile(sd, 95)))),
                            value="uncertainty (SD)"))
    return layers


def view_axes(frame: Any = None) -> dict:
    """Up, front (toward the camera of the front view) and left directions in input coordinates.

    ``frame``: the head frame's 4 x 4 input -> head matrix (rows: +x left, +y up, +z anterior in
    input coordinates); None: the input is LPS (up +z, anterior -y, left +x).
    """
    if frame is None:
        return {"up": [0.0, 0.0, 1.0], "front": [0.0, -1.0, 0.0], "left": [1.0, 0.0, 0.0]}
    r = np.asarray(frame, dtype=np.float64)[:3, :3]
    return {"up": r[1].tolist(), "front": r[2].tolist(), "left": r[0].tolist()}


def decimate(mesh: trimesh.Trimesh, max_faces: int, values: np.ndarray | None = None
             ) -> tuple[trimesh.Trimesh, np.ndarray | None]:
    """Quadric decimation (fast-simplification) down to about ``max_faces`` triangles.

    Parameters
    ----------
    mesh : trimesh.Trimesh
    max_faces : int
    values : numpy.ndarray, shape (n_vertices,), optional
        Per-vertex values carried over to the new vertices from the nearest old vertex.

    Returns
    -------
    (trimesh.Trimesh, numpy.ndarray or None)
        The mesh itself (and ``values``) when it is already small enough.
    """
    if len(mesh.faces) <= max_faces:
        return mesh, values
    import fast_simplification

    v, f = np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.int32)
    v2, f2 = fast_simplification.simplify(v, f, target_reduction=1.0 - max_faces / len(f))
    out = trimesh.Trimesh(v2, f2, process=False)
    if values is not None:
        from scipy.spatial import cKDTree

        values = np.asarray(values)[cKDTree(v).query(v2)[1]]
    return out, values


def error_colours(error_mm: np.ndarray, max_mm: float) -> np.ndarray:
    """RGBA uint8 (n, 4): viridis over 0..``max_mm``, grey where NaN (not scored); linear RGB,
    as glTF vertex colours are (so the page shows the heat maps' sRGB colours)."""
    import matplotlib

    e = np.asarray(error_mm, float)
    rgb = matplotlib.colormaps["viridis"](np.clip(np.nan_to_num(e) / max_mm, 0.0, 1.0))[:, :3]
    rgb[~np.isfinite(e)] = 0.63
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)  # sRGB -> linear (IEC 61966-2-1)
    rgba = np.full((len(e), 4), 255, np.uint8)
    rgba[:, :3] = np.round(linear * 255)
    return rgba


def scene_glb(layers: list[Layer], error_max_mm: float) -> bytes:
    """The layers, decimated to `MAX_FACES`, as one GLB (vertex colours where a layer has errors).

    Returns
    -------
    bytes
        A glTF 2.0 binary; node ``i`` is named after ``layers[i].name``.
    """
    scene = trimesh.Scene()
    for layer in layers:
        mesh, err = decimate(layer.mesh, MAX_FACES.get(layer.name, 40_000), layer.error_mm)
        mesh = trimesh.Trimesh(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces), process=False)
        if err is not None:
            top = layer.scale_max_mm or error_max_mm
            mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=error_colours(err, top))
        scene.add_geometry(mesh, geom_name=layer.name, node_name=layer.name)
    return trimesh.exchange.gltf.export_glb(scene, include_normals=False)


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def three_version() -> str:
    """The version of the vendored three.js."""
    return _asset("vendor/THREE_VERSION").strip()


def _safe_script(text: str) -> str:
    """Script text that cannot end its ``<script>`` element early."""
    return text.replace("</", "<\\/")


def section_html(layers: list[Layer], error_max_mm: float = 5.0, frame: Any = None) -> str:
    """The 3D view's HTML: canvas, toggles, opacity slider, view buttons, data and scripts.

    Parameters
    ----------
    layers : list of Layer
        In drawing order; each gets a toggle. A layer named ``face`` gets the opacity slider, a
        layer with ``error_mm`` a "colour by error" switch.
    error_max_mm : float
        Top of the error colour scale, mm.
    frame : (4, 4) array-like, optional
        Input -> head frame, orienting the view buttons (`view_axes`); None: LPS input.

    Returns
    -------
    str
        One ``<section id="view3d">``; the page needs no network to show it.
    """
    glb = scene_glb(layers, error_max_mm)
    meta = {"layers": [{"name": ly.name, "label": ly.label, "colour": COLOURS.get(ly.name, "#cccccc"),
                        "opacity": ly.opacity, "error": ly.error_mm is not None, "visible": ly.visible}
                       for ly in layers],
            "error_max_mm": error_max_mm, **view_axes(frame)}
    toggles = []
    for ly in layers:
        toggles.append(f'<label><input type="checkbox" class="layer" data-layer="{e(ly.name)}"{" checked" if ly.visible else ""}> '
                       f"{e(ly.label)}</label>")
        if ly.error_mm is not None:
            toggles.append(f'<label><input type="checkbox" class="errcolour" data-layer="{e(ly.name)}" checked> '
                           f"colour {e(ly.label)} by {e(ly.value)} "
                           f"(0&ndash;{ly.scale_max_mm or error_max_mm:g} mm)</label>")
    if any(ly.name == "face" for ly in layers):
        face = next(ly for ly in layers if ly.name == "face")
        toggles.append(f'<label>face opacity <input type="range" id="s2f-opacity" min="0" max="1" step="0.05" '
                       f'value="{face.opacity:g}"></label>')
    buttons = "".join(f'<button type="button" data-view="{v}">{label}</button>'
                      for v, label in (("front", "front"), ("side", "side"), ("three-quarter", "three-quarter")))
    return "\n".join([
        '<section id="view3d"><h2>Turn it around (3D)</h2>',
        '<p class="explain">Drag to rotate, scroll or pinch to zoom, right-drag to pan. Each surface can be '
        "switched on and off; meshes are simplified for the page (the full meshes are the files beside it).</p>",
        f'<div class="v3d-controls">{"".join(toggles)}<span class="v3d-views">{buttons}</span></div>',
        '<div id="s2f-viewer" class="v3d-box"><canvas id="s2f-canvas"></canvas>'
        '<div id="s2f-status" class="v3d-status">loading the 3D view&hellip; (needs JavaScript and WebGL)</div></div>',
        f'<script type="application/json" id="s2f-scene-meta">{_safe_script(json.dumps(meta))}</script>',
        f'<script type="text/plain" id="s2f-scene-glb">{base64.b64encode(glb).decode("ascii")}</script>',
        f"<script>{_safe_script(_asset('vendor/three-viewer.min.js'))}</script>",
        f"<script>{_safe_script(_asset('viewer.js'))}</script>",
        "</section>",
    ])


CSS = """
.v3d-controls { display: flex; flex-wrap: wrap; gap: 6px 18px; align-items: center; margin: 6px 0; font-size: 0.95em; }
.v3d-views button { margin-right: 6px; padding: 3px 10px; }
.v3d-box { position: relative; width: 100%; height: 560px; border: 1px solid #ccc; background: #20242a; }
.v3d-box canvas { width: 100%; height: 100%; display: block; }
.v3d-status { position: absolute; left: 12px; top: 10px; color: #ddd; font-size: 0.9em; }
@media print { #view3d { display: none; } }
"""

__all__ = ["COLOURS", "CSS", "Layer", "MAX_FACES", "decimate", "error_colours", "layers_from_files", "scene_glb",
           "section_html", "three_version", "view_axes"]
