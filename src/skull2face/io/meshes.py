"""Mesh reading and writing (trimesh), with the sanity and unit checks a head mesh needs.

Formats: PLY, OBJ, STL, OFF, GLB. All coordinates are millimetres.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from ..errors import InputError
from .atomic import atomic_path

MESH_SUFFIXES = (".ply", ".obj", ".stl", ".off", ".glb")

# A human head, skull or face is some 100..300 mm across. Anything far outside that range
# was almost surely saved in other units; we refuse it rather than guess.
HEAD_EXTENT_MM = (40.0, 600.0)


def _unit_hint(extent: float) -> str:
    if extent < 1.0:
        return "this looks like metres: scale by 1000"
    if extent < HEAD_EXTENT_MM[0]:
        return "this looks like centimetres or arbitrary units: scale it to millimetres"
    if extent > 5000.0:
        return "this looks like micrometres: scale by 0.001"
    return "check the units: skull2face expects millimetres"


def check_units(mesh: trimesh.Trimesh, path: str | os.PathLike | None,
                extent_mm: tuple[float, float] = HEAD_EXTENT_MM) -> None:
    """Raise `InputError` if the mesh's largest extent is implausible for a head in mm.

    Parameters
    ----------
    mesh : trimesh.Trimesh
    path : path-like or None
        Named in the error.
    extent_mm : (float, float)
        Accepted range of the largest bounding-box side, in mm.
    """
    extent = float(np.max(mesh.extents))
    lo, hi = extent_mm
    if not (lo <= extent <= hi):
        raise InputError(path, f"mesh is {extent:.4g} units across; a head, skull or face in millimetres "
                               f"is {lo:.0f}..{hi:.0f} mm ({_unit_hint(extent)})")


def check_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike | None) -> None:
    """Raise `InputError` for empty, degenerate or non-finite meshes."""
    if len(mesh.vertices) == 0 or len(mesh.faces) == 0:
        raise InputError(path, "mesh is empty (no vertices or no triangles)")
    if not np.all(np.isfinite(mesh.vertices)):
        raise InputError(path, "mesh has NaN or infinite vertex coordinates")
    if float(mesh.area) <= 0.0:
        raise InputError(path, "mesh is degenerate: its triangles have no area")
    with_area = int(np.count_nonzero(mesh.area_faces > 0))
    if with_area < 4:
        raise InputError(path, f"mesh has only {with_area} triangle(s) with any area ({float(mesh.area):.4g} mm^2 in "
                               "all): not a surface (a head surface has thousands of triangles)")
    if np.min(mesh.extents) <= 0.0 and len(mesh.faces) > 1:
        raise InputError(path, "mesh is flat in one axis (degenerate); expected a 3D surface")


def load_mesh(path: str | os.PathLike, *, units_check: bool = True,
              extent_mm: tuple[float, float] = HEAD_EXTENT_MM) -> trimesh.Trimesh:
    """Read a triangle mesh and check it.

    Scenes (GLB, multi-object OBJ) are merged into one mesh. Unreferenced and duplicate
    vertices are merged; the file itself is never touched.

    Parameters
    ----------
    path : path-like
        PLY, OBJ, STL, OFF or GLB file, coordinates in mm.
    units_check : bool
        Refuse meshes whose size says metres or micrometres (see `check_units`).

    Returns
    -------
    trimesh.Trimesh
        Vertices ``(n, 3)`` float64 mm, faces ``(m, 3)`` int64.

    Raises
    ------
    InputError
        Missing, empty, unreadable, degenerate or wrongly scaled mesh.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.is_dir():
        raise InputError(path, "is a folder, expected a mesh file (" + ", ".join(MESH_SUFFIXES) + ")")
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(path, f"unsupported mesh format {path.suffix!r}; use one of {', '.join(MESH_SUFFIXES)}")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    try:
        # unprocessed first: trimesh's processing silently drops NaN vertices (and the landmarks move)
        loaded = trimesh.load(str(path), force="mesh", process=False)
    except Exception as exc:  # trimesh raises many types for corrupt files
        raise InputError(path, f"cannot read mesh: {exc}") from None
    if not isinstance(loaded, trimesh.Trimesh):
        raise InputError(path, "file holds no triangle mesh (only points or lines?)")
    bad = ~np.all(np.isfinite(np.asarray(loaded.vertices)), axis=1)
    if bad.any():
        raise InputError(path, f"mesh has NaN or infinite coordinates in {int(bad.sum())} of {len(bad)} vertices; "
                               "skull2face does not guess them: remove or repair those vertices")
    loaded.process()  # what process=True does: merge duplicate vertices
    check_mesh(loaded, path)
    if units_check:
        check_units(loaded, path, extent_mm)
    return loaded


def save_mesh(mesh: trimesh.Trimesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` atomically; the format follows the suffix (PLY binary, OBJ, STL, OFF, GLB)."""
    path = Path(path)
    if path.suffix.lower() not in MESH_SUFFIXES:
        raise InputError(path, f"unsupported mesh format {path.suffix!r}; use one of {', '.join(MESH_SUFFIXES)}")
    with atomic_path(path) as tmp:
        mesh.export(str(tmp), file_type=path.suffix.lower().lstrip("."))
    return path
