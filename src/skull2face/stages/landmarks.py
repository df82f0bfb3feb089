"""Stage ``landmarks``: a skull or face mesh -> its landmarks (given, checked, or detected).

Landmarks the user gives always win; the rest are detected (`skull2face.anatomy.detect`)
starting from a coarse pose (`skull2face.geometry.pose`). The output JSON says for every
landmark whether it was given, detected or is missing, with a confidence note.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

from ..anatomy.landmark_set import LandmarkSet
from ..anatomy.locate import (POSES, SURFACES, PoseSettings, coarse_pose, in_ct_coordinates, infer_surface,
                              locate, summary)
from ..io.landmarks import read_landmarks, write_landmarks
from ..io.meshes import load_mesh
from ..io.run_folder import out_file
from ..options import check_options, nested, option

log = logging.getLogger(__name__)


@dataclass
class LandmarkSettings:
    """Settings of ``skull2face landmarks``.

    Attributes
    ----------
    surface : {"skull", "face"} or None
        None: from the file name (skull*, skin*/face*).
    pose : PoseSettings
        How the coarse pose is found before detection.
    """

    surface: str | None = option(None, choices=SURFACES, help="default: from the file name (skull*, skin*/face*)")
    pose: PoseSettings = nested(PoseSettings, title="coarse pose (before landmarks are known)")

    def __post_init__(self) -> None:
        check_options(self)


def find_landmarks(mesh_path: str | os.PathLike, out_path: str | os.PathLike | None = None,
                   given_path: str | os.PathLike | None = None,
                   settings: LandmarkSettings | None = None) -> LandmarkSet:
    """Stage function: read a mesh (and optional given landmarks), locate, write JSON.

    Parameters
    ----------
    mesh_path : path-like
        Skull or face mesh in mm.
    out_path : path-like or None
        Canonical landmark JSON to write (atomically); None writes nothing.
    given_path : path-like or None
        Landmark file (JSON, Slicer, MeshLab, CSV) whose points are kept as given.

    Returns
    -------
    LandmarkSet
    """
    settings = settings or LandmarkSettings()
    with out_file(out_path, [mesh_path, given_path]) if out_path is not None else contextlib.nullcontext():
        surface = infer_surface(mesh_path, settings.surface)
        mesh = load_mesh(mesh_path)
        given = read_landmarks(given_path, surface=surface) if given_path else None
        lms, record = locate(mesh, mesh_path, surface, given, settings.pose, given_path)
        if out_path is not None:
            write_landmarks(lms, out_path)
    log.info("%s: %d landmarks (%s) in %.1fs", mesh_path, len(lms), summary(lms), record["seconds"])
    return lms


def table(lms: LandmarkSet) -> str:
    """A plain-text table of the landmarks for the terminal."""
    rows = [f"{'name':<8} {'source':<9} {'conf.':<7} {'x':>8} {'y':>8} {'z':>8}  note"]
    for name, meta in lms.meta.items():
        p = lms.points.get(name)
        xyz = "".join(f" {v:8.1f}" for v in p) if p is not None else f" {'-':>8} {'-':>8} {'-':>8}"
        rows.append(f"{name:<8} {meta.get('source', ''):<9} {meta.get('confidence', ''):<7}{xyz}  "
                    f"{meta.get('note', '')}")
    return "\n".join(rows)


def echo(lms: LandmarkSet) -> str:
    """What ``skull2face landmarks`` prints: the table and the counts."""
    return f"{table(lms)}\n{summary(lms)}"


__all__ = ["LandmarkSettings", "PoseSettings", "find_landmarks", "summary", "table", "echo",
           "POSES", "SURFACES", "coarse_pose", "in_ct_coordinates", "infer_surface", "locate"]
