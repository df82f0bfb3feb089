"""Stage ``render``: skull and/or face meshes -> depth maps in one head frame.

The first mesh's landmarks define the head frame (for a CT pair, the skull's), and every
mesh is rendered with that same render spec, so the maps line up pixel for pixel. Writes,
per surface, ``<surface>.npz/.json/.png`` (height in mm, validity mask, render spec, preview)
and ``<surface>_landmarks.json``; plus ``frame.json``, ``render.json`` (resolved settings,
sources and hashes, landmark status, timings) and ``render.png`` (the maps side by side with
the landmarks drawn, to judge the detection at a glance).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..geometry.depthmap import DEFAULT_Z_FAR, DEFAULT_Z_NEAR, HEAD_MAP_CENTRE, RenderSpec, render, save_depthmap
from ..geometry.frame import HeadFrame, head_frame
from ..io.atomic import write_json
from ..io.landmarks import read_landmarks, write_landmarks
from ..io.meshes import load_mesh
from ..io.run_folder import out_file, run_folder
from ..io.volumes import file_sha256
from ..anatomy.locate import SURFACES, PoseSettings, infer_surface, locate, summary
from ..options import check_options, nested, option

log = logging.getLogger(__name__)


@dataclass
class RenderSettings:
    """Depth-map settings.

    Attributes
    ----------
    size : int
        Map side in pixels (square maps; 256 by default, 512 for detail).
    mm_per_px : float
        Pixel pitch in mm (1.0 by default: a 256 px map spans 256 mm around nasion).
    z_near, z_far : float
        Head-frame depth range (mm) used for normalisation.
    surface : list of {"skull", "face"} or None
        Surface of each mesh, in order; None reads it from the file names.
    picture : bool
        Write ``render.png``.
    pose : PoseSettings
        How the coarse pose is found before landmark detection.
    """

    size: int = option(256, minimum=8, help="map side in pixels")
    mm_per_px: float = option(1.0, above=0, help="pixel pitch in mm")
    z_near: float = DEFAULT_Z_NEAR
    z_far: float = DEFAULT_Z_FAR
    surface: list[str] | None = option(None, choices=SURFACES, help="surface of each mesh (default: from the "
                                                                     "file names)")
    picture: bool = option(True, help="write render.png (the maps with the landmarks drawn)")
    pose: PoseSettings = nested(PoseSettings, title="coarse pose (before landmarks are known)")

    def __post_init__(self) -> None:
        check_options(self)


@dataclass
class Depth2MeshSettings:
    """Settings of ``skull2face depth2mesh``.

    Attributes
    ----------
    max_jump_mm : float or None
        No triangle spans a depth jump larger than this (mm); None: 5 pixels.
    """

    max_jump_mm: float | None = option(None, flag="--max-jump", metavar="MM", above=0,
                                       help="no triangle spans a depth jump larger than this (default 5 pixels)")

    def __post_init__(self) -> None:
        check_options(self)


def render_meshes(mesh_paths: list[str | os.PathLike], out_dir: str | os.PathLike,
                  landmark_paths: list[str | os.PathLike | None] | None = None,
                  settings: RenderSettings | None = None) -> dict:
    """Render one or more head meshes into depth maps sharing the first mesh's head frame.

    Parameters
    ----------
    mesh_paths : list of path-like
        E.g. ``[skull.ply, skin.ply]`` from ``skull2face extract``. At most one per surface.
    out_dir : path-like
    landmark_paths : list of (path-like or None), optional
        Given landmarks per mesh (they win over detection); None or ``"-"`` for none.
    settings : RenderSettings

    Returns
    -------
    dict
        The record written to ``render.json``.
    """
    settings = settings or RenderSettings()
    n = len(mesh_paths)
    landmark_paths = [None if p in (None, "-") else p for p in (landmark_paths or [])]
    if len(landmark_paths) > n:
        raise InputError(landmark_paths[n] or None, f"{len(landmark_paths)} landmark files for {n} meshes: give "
                                                    "one per mesh, in the same order ('-' for none)")
    landmark_paths += [None] * (n - len(landmark_paths))
    if len(settings.surface or []) > n:
        raise InputError(None, f"{len(settings.surface)} --surface values for {n} meshes")
    surfaces = list(settings.surface or []) + [None] * (n - len(settings.surface or []))
    # every check that needs no mesh read, before the slow work
    seen: list[str] = []
    for i, (mesh_path, lm_path) in enumerate(zip(mesh_paths, landmark_paths)):
        for p in (mesh_path, lm_path):
            if p is not None and not Path(p).exists():
                raise InputError(p, "not found")
        surfaces[i] = infer_surface(mesh_path, surfaces[i])
        if surfaces[i] in seen:
            raise InputError(mesh_path, f"a second {surfaces[i]} mesh: render takes at most one skull and one face")
        seen.append(surfaces[i])
    with run_folder(out_dir, "render", [*mesh_paths, *landmark_paths]) as out:
        return _render(mesh_paths, landmark_paths, surfaces, out, settings)


def _render(mesh_paths: list, landmark_paths: list, surfaces: list[str], out: Path,
            settings: RenderSettings) -> dict:
    """`render_meshes` into the claimed folder ``out``, with the surfaces resolved."""
    t0 = time.perf_counter()
    items = []
    for mesh_path, lm_path, surface in zip(mesh_paths, landmark_paths, surfaces):
        mesh = load_mesh(mesh_path)
        given = read_landmarks(lm_path, surface=surface) if lm_path else None
        lms, rec = locate(mesh, mesh_path, surface, given, settings.pose, lm_path)
        items.append({"path": Path(mesh_path), "surface": surface, "mesh": mesh, "landmarks": lms,
                      "locate": rec, "given_path": lm_path})

    first = items[0]
    try:
        frame = head_frame(first["landmarks"].points, first["surface"])
    except ValueError as exc:
        raise InputError(first["path"], f"cannot place the head frame: {exc}") from None
    frame.landmarks = tuple(sorted(first["landmarks"].points))
    write_json(out / "frame.json", frame.to_json())

    maps, record_items = {}, []
    for it in items:
        t = time.perf_counter()
        spec = RenderSpec(size=(settings.size, settings.size), mm_per_px=settings.mm_per_px,
                          frame=frame.matrix, z_near=settings.z_near, z_far=settings.z_far, centre=HEAD_MAP_CENTRE,
                          source_sha256={"mesh": file_sha256(it["path"])})
        dm = render(it["mesh"], spec)
        files = save_depthmap(dm, out / it["surface"])
        write_landmarks(it["landmarks"], out / f"{it['surface']}_landmarks.json")
        maps[it["surface"]] = dm
        record_items.append({
            "surface": it["surface"], "mesh": str(it["path"].resolve()), "sha256": spec.source_sha256["mesh"],
            "given_landmarks": None if it["given_path"] is None else str(it["given_path"]),
            "landmarks": summary(it["landmarks"]), "landmark_status": it["landmarks"].meta,
            "pose": it["locate"]["pose"], "valid_pixels": int(dm.mask.sum()),
            "files": sorted(p.name for p in files.values()) + [f"{it['surface']}_landmarks.json"],
            "seconds": round(time.perf_counter() - t + it["locate"]["seconds"], 3),
        })
    outputs = ["frame.json"]
    if settings.picture:
        from ..report.pictures import depthmap_landmarks_figure, save_png

        heads = {it["surface"]: it["landmarks"].transformed(frame.matrix) for it in items}
        fig = depthmap_landmarks_figure(maps, heads)
        outputs.append(save_png(fig, out / "render.png").name)
    record = {
        "stage": "render",
        "skull2face_version": __version__,
        "settings": dataclasses.asdict(settings),
        "frame_from": first["surface"],
        "frame": frame.to_json(),
        "items": record_items,
        "outputs": outputs,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    write_json(out / "render.json", record)
    return record


def depth2mesh(map_path: str | os.PathLike, out_path: str | os.PathLike,
               settings: Depth2MeshSettings | None = None) -> dict:
    """Stage function: a saved depth map -> a mesh in the original input's coordinates.

    Writes the mesh (format from the suffix) and ``<out>.json`` with the settings used.
    """
    max_jump_mm = (settings or Depth2MeshSettings()).max_jump_mm
    from ..geometry.depthmap import depth_to_mesh, load_depthmap
    from ..io.meshes import save_mesh

    spec_path = Path(map_path).with_suffix(".json")
    with out_file(out_path, [map_path, spec_path]), out_file(str(out_path) + ".json", [map_path, spec_path]):
        dm = load_depthmap(map_path)
        mesh = depth_to_mesh(dm, max_jump_mm=max_jump_mm)
        if len(mesh.faces) == 0:
            raise InputError(map_path, "depth map has no valid 2 x 2 pixel block: nothing to mesh")
        out = save_mesh(mesh, out_path)
        record = {"stage": "depth2mesh", "skull2face_version": __version__, "map": str(Path(map_path).resolve()),
                  "max_jump_mm": max_jump_mm, "spec": dm.spec.to_json(), "vertices": len(mesh.vertices),
                  "faces": len(mesh.faces), "output": out.name}
        write_json(Path(str(out) + ".json"), record)
    return record


def echo(record: dict) -> str:
    """What ``skull2face render`` prints: per surface its valid pixels and landmarks; the files."""
    lines = [f"{it['surface']}: {it['valid_pixels']} valid pixels; landmarks {it['landmarks']}" for it in record["items"]]
    return "\n".join(lines + [f"wrote depth maps, landmarks, {', '.join(record['outputs'])} and render.json"])


def echo_mesh(record: dict) -> str:
    """What ``skull2face depth2mesh`` prints."""
    return f"wrote {record['output']}: {record['vertices']} vertices, {record['faces']} triangles"


__all__ = ["RenderSettings", "Depth2MeshSettings", "render_meshes", "depth2mesh", "echo", "echo_mesh", "HeadFrame"]
