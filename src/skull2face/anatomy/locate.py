"""Landmarks of a loaded mesh: the coarse pose first, then given landmarks kept and the rest detected.

Used by every stage that needs landmarks (landmarks, render, predict, evaluate). The coarse
pose comes from the CT's LPS axes when the mesh was written from a CT, else from the mesh's
symmetry and shape (`skull2face.geometry.pose`), with optional ``front``/``up`` hints.

A mesh that is not a skull (or face) is refused, not given invented landmarks (nor is a skull
with too little left, or a skull given as a face): a triangle soup before detection, and a shape whose landmarks lack a skull's or face's anchors and
proportions after it (`skull2face.anatomy.detect.plausible`). When the coarse pose of a skull
came from shape cues and the landmarks fail that check, the other orientations of the coarse
frame in the same symmetry plane are tried (`skull2face.geometry.pose.orientations`, those
the hints allow) and the first that passes is kept; if none does (or a face fails), the error
says which hints to give.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from ..errors import InputError
from ..geometry import pose as pose_mod
from ..options import check_options, option
from .landmark_set import LandmarkSet

SURFACES = ("skull", "face")
POSES = ("auto", "lps", "scan")

# A given landmark is a point on this surface, digitised on it or on another mesh of the same
# head (finer, coarser, or another threshold of the same CT): these move a surface by a few mm.
# Landmarks in other coordinates (RAS tagged as LPS: x and y negated; another scan's frame;
# metres) lie tens to hundreds of mm away. The tolerance between the two is our choice, not a
# published figure.
GIVEN_MAX_MM = 15.0


# --front and --up closer than this to one line (degrees) leave the head's left-right axis
# (their cross product) undefined; true hints are at about 90 degrees, rough ones well above 45.
_MIN_HINT_ANGLE_DEG = 45.0


@dataclass
class PoseSettings:
    """How to find the coarse pose of a mesh before its landmarks are known.

    Attributes
    ----------
    pose : {"auto", "lps", "scan"}
        "lps": the mesh is in a CT's LPS coordinates (as ``skull2face extract`` writes them).
        "scan": unknown pose, found from symmetry and shape (plus hints). "auto": "lps" when
        the mesh came from a CT (`in_ct_coordinates`), else "scan".
    front, up : str or None
        Hints for "scan" in the mesh's coordinates, e.g. ``"-y"``, ``"+z"`` or ``"0,0.2,1"``.
    """

    pose: str = option("auto", choices=POSES,
                       help="'lps': mesh in a CT's LPS mm (as extract writes); 'scan': unknown pose, found from "
                            "symmetry and shape; 'auto': lps when the mesh came from a CT")
    front: str | None = option(None, metavar="AXIS", help="where the face looks, in the mesh's coordinates: "
                                                          "+x, -y, ... or 'a,b,c' (e.g. --front -y)")
    up: str | None = option(None, metavar="AXIS", help="the top of the head, like --front (e.g. --up +z)")

    def __post_init__(self) -> None:
        check_options(self)
        front, up = (None if v is None else pose_mod.parse_axis(v) for v in (self.front, self.up))
        if front is not None and up is not None and abs(float(front @ up)) > np.cos(np.radians(_MIN_HINT_ANGLE_DEG)):
            raise ValueError(f"--front {self.front} and --up {self.up} are (nearly) parallel: the face looks "
                             f"forward and the top of the head is up, at right angles, e.g. --front -y --up +z")


def infer_surface(path: str | os.PathLike, surface: str | None) -> str:
    """'skull' or 'face': given, or read from the file name (skull*, skin*/face*)."""
    if surface is not None:
        if surface not in SURFACES:
            raise InputError(path, f"surface must be one of {SURFACES}, not {surface!r}")
        return surface
    name = Path(path).name.lower()
    if "skull" in name or "bone" in name or "cranium" in name:
        return "skull"
    if "skin" in name or "face" in name:
        return "face"
    raise InputError(path, "cannot tell from the file name whether this is a skull or a face: "
                           "pass --surface skull or --surface face")


def in_ct_coordinates(mesh_path: str | os.PathLike) -> bool:
    """True if the mesh was written from a CT in its LPS millimetres: by ``extract`` (an
    ``extract.json`` beside it) or by ``predict`` on a CT (its ``skull.ply``/``truth_skin.ply``)."""
    folder = Path(mesh_path).parent
    if (folder / "extract.json").is_file():
        return True
    rec = folder / "predict.json"
    if rec.is_file() and Path(mesh_path).name in ("skull.ply", "truth_skin.ply"):
        import json

        try:
            return json.loads(rec.read_text(encoding="utf-8"))["input"]["kind"] in ("ct", "mr")
        except (OSError, ValueError, KeyError, TypeError):
            return False
    return False


def _hints(settings: PoseSettings) -> tuple[np.ndarray | None, np.ndarray | None]:
    try:
        front = None if settings.front is None else pose_mod.parse_axis(settings.front)
        up = None if settings.up is None else pose_mod.parse_axis(settings.up)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    return front, up


def coarse_pose(mesh: trimesh.Trimesh, mesh_path: str | os.PathLike, surface: str,
                settings: PoseSettings) -> tuple[np.ndarray, dict]:
    """Coarse input -> head matrix (4, 4) and a record of how it was found."""
    mode = settings.pose
    if mode not in POSES:
        raise ValueError(f"pose must be one of {POSES}, not {mode!r}")
    if mode == "auto":
        mode = "lps" if in_ct_coordinates(mesh_path) else "scan"
    if mode == "lps":
        return pose_mod.lps_frame(mesh), {"mode": "lps"}
    front, up = _hints(settings)
    matrix, record = pose_mod.auto_frame(mesh, surface, front=front, up=up)
    return matrix, {"mode": "scan", **record}


def check_given(mesh: trimesh.Trimesh, given: LandmarkSet, given_path: str | os.PathLike | None,
                max_mm: float = GIVEN_MAX_MM) -> None:
    """Refuse given landmarks farther than ``max_mm`` from the mesh surface.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The surface, mm.
    given : LandmarkSet
        The landmarks, in the mesh's coordinates (LPS mm).
    given_path : path-like or None
        The landmark file, named in the error.
    max_mm : float
        Largest accepted exact point-to-surface distance, mm (`GIVEN_MAX_MM`).

    Raises
    ------
    InputError
        Naming the file, the farthest landmark and its distance.
    """
    from ..geometry.distances import closest_points

    names = [n for n, p in given.points.items() if np.all(np.isfinite(p))]
    if not names:
        return
    dist = closest_points(np.array([given.points[n] for n in names]), mesh)[0]
    worst = int(np.argmax(dist))
    if dist[worst] > max_mm:
        far = int(np.count_nonzero(dist > max_mm))
        raise InputError(given_path or "given landmarks",
                         f"{far} of {len(names)} landmarks lie more than {max_mm:g} mm from the mesh surface (worst: "
                         f"{names[worst]} at {dist[worst]:.1f} mm): are they in the mesh's coordinates (LPS mm, "
                         "not RAS or another scan's frame)?")


def skull_instead(mesh: trimesh.Trimesh, mesh_path: str | os.PathLike, settings: PoseSettings | None = None,
                  face: LandmarkSet | None = None) -> str | None:
    """Why a mesh given as a face is a skull, in one line; None if it is not one.

    A face's landmarks can be found on a skull (its nasal aperture taken for the nose, upside
    down). When the face landmarks ``face`` put eyes where a face has them (0-25 mm behind
    nasion: `skull2face.anatomy.detect.plausible.orbit_depths`), it is a face and nothing more is
    done. Otherwise the mesh is read as a skull, in the skull's coarse pose: if its landmarks pass
    a skull's checks (`anatomy_problem`) and its orbits are open sockets (`orbit_problem`: a
    face's eyes are 5-22 mm behind nasion, a skull's sockets >= 25 mm), it is a skull. That costs
    one more landmark detection (seconds).
    """
    from .detect import anatomy_problem, detect_landmarks
    from .detect.plausible import ORBIT_MIN_DEPTH_MM, orbit_depths, orbit_problem

    if face is not None:
        try:
            eyes = orbit_depths(mesh, face)
        except ValueError:
            eyes = []
        if eyes and all(0.0 <= d < ORBIT_MIN_DEPTH_MM for d in eyes):
            return None

    coarse, _ = coarse_pose(mesh, mesh_path, "skull", settings or PoseSettings())
    lms = detect_landmarks(mesh, "skull", coarse)
    if anatomy_problem(lms, "skull") is not None or orbit_problem(mesh, lms) is not None:
        return None
    try:
        depths = orbit_depths(mesh, lms)
    except ValueError:
        return None
    return (f"this looks like a skull, not a face or skin: it has a skull's nasal aperture, orbital rims and "
            f"zygomatic arches, and its orbits are open ({', '.join(f'{d:.0f}' for d in depths)} mm behind "
            "nasion; a face's eyes lie 5-22 mm behind it)")


def locate(mesh: trimesh.Trimesh, mesh_path: str | os.PathLike, surface: str,
           given: LandmarkSet | None = None, settings: PoseSettings | None = None,
           given_path: str | os.PathLike | None = None) -> tuple[LandmarkSet, dict]:
    """Landmarks of a loaded mesh: given ones kept (after `check_given`), the others detected.

    ``given_path`` names the landmark file in the error of `check_given`.

    Returns
    -------
    landmarks : LandmarkSet
        In the mesh's own coordinates (mm), ``meta`` filled for every landmark of the surface.
    record : dict
        Pose record (with ``orientation``: which of `skull2face.geometry.pose.orientations`
        was kept, 0 the coarse one, and ``anatomy_check``) and timing.

    Raises
    ------
    InputError
        The mesh is not a surface (a triangle soup), or no orientation shows a skull's (face's)
        anatomy (`skull2face.anatomy.detect.plausible.anatomy_problem`) and the user gave no
        landmarks of this surface: one line, naming the file, the failed check and the hints
        that would help. A skull with too little left (`skull2face.anatomy.detect.parts`: half
        of it, or bone missing where the landmarks would stand in every orientation) is refused
        naming what is missing; a face scan given as a skull by its shallow orbits; a skull given
        as a face by `skull_instead`. A skull missing only its midface or mandible is not
        refused: those landmarks are reported missing (``meta[name]["absent"]``).
    """
    from .detect import NotAnatomy, anatomy_problem, detect_landmarks
    from .detect.plausible import orbit_problem

    settings = settings or PoseSettings()
    if given is not None:
        check_given(mesh, given, given_path)
    t0 = time.perf_counter()
    coarse, pose_record = coarse_pose(mesh, mesh_path, surface, settings)
    tries = [coarse]
    if pose_record["mode"] == "scan" and surface == "skull":
        # only for skulls: their check (nasal height, both orbital rims and arches in
        # proportion) tells a wrong orientation; a face's is weaker (an upside-down CT skin
        # passed it with its sides swapped), so a face that fails asks for the hints instead
        tries = pose_mod.orientations(coarse, *_hints(settings))
    first = None
    absent: set[str] = set()  # parts of the skull found missing in any orientation (`detect.parts`)
    for k, matrix in enumerate(tries):
        try:
            lms = detect_landmarks(mesh, surface, matrix, given=given)
        except NotAnatomy as exc:
            raise InputError(mesh_path, f"does not look like a {surface}: {exc}") from None
        absent.update(q for m in lms.meta.values() for q in m.get("absent", ()))
        problem = anatomy_problem(lms, surface)
        if problem is None and surface == "face" and given is None:
            skull = skull_instead(mesh, mesh_path, settings, lms)
            if skull is not None:  # a skull where a face is expected: no other orientation helps
                raise InputError(mesh_path, skull)
        if problem is None and surface == "skull":
            problem = orbit_problem(mesh, lms)
            if problem is not None:  # a face in a skull's proportions: say so, whatever the other tries say
                first = (lms, problem)
        first = first or (lms, problem)
        if problem is None:
            pose_record.update(orientation=k, anatomy_check="passed")
            return lms, {"pose": pose_record, "seconds": round(time.perf_counter() - t0, 3)}
    lms, problem = first
    if given is not None and any(n in given.points for n in lms.meta):
        # the user's landmarks anchor the rest: keep what was found in the coarse pose
        pose_record.update(orientation=0, anatomy_check=f"failed: {problem}")
        return lms, {"pose": pose_record, "seconds": round(time.perf_counter() - t0, 3)}
    from .detect.parts import REGIONS, half_problem
    from .detect.parts import summary as parts_summary

    half = half_problem(np.asarray(mesh.vertices)) if surface == "skull" else None
    if half is not None:  # no orientation shows a skull, and it is half as broad as one
        raise InputError(mesh_path, f"too little of a skull to place its landmarks: {half}; mirroring a half "
                                    "is not supported: give the whole skull, or its landmarks (--landmarks)")
    if absent and surface == "skull":  # a face scan's "orbits" hold bone too: is it a face?
        as_face = detect_landmarks(mesh, "face", coarse_pose(mesh, mesh_path, "face", settings)[0])
        face = orbit_problem(mesh, as_face) if anatomy_problem(as_face, "face") is None else None
        if face is not None:
            raise InputError(mesh_path, f"does not look like a skull: {face}")
    if absent:  # the detector found bone missing where the landmarks should stand (`detect.parts`)
        gone = parts_summary([p for p in REGIONS if p in absent])
        raise InputError(mesh_path, f"too little of a skull to place its landmarks: {problem}, and where they "
                                    f"would stand there is no bone ({gone} missing in the orientations "
                                    "tried): is its face region broken off or cut away? Give its landmarks "
                                    "(--landmarks) if it is whole")
    if pose_record["mode"] == "scan":
        where = ("in any orientation" if len(tries) == 8 else "in the orientations the --front/--up hints allow"
                 if len(tries) > 1 else "in the pose read from its shape")
        hint = (where + "; if it is one, give both --front and --up (where the face looks and the top of the "
                        "head in the mesh's coordinates, e.g. --front -y --up +z)")
    else:
        hint = ("in the CT's LPS axes; if it is one in another pose, use --pose scan with --front and --up")
    raise InputError(mesh_path, f"does not look like a {surface}: {problem} {hint}")


def summary(lms: LandmarkSet) -> str:
    """'5 given, 12 detected, 3 missing' style counts from the meta."""
    counts: dict[str, int] = {}
    for m in lms.meta.values():
        counts[m.get("source", "?")] = counts.get(m.get("source", "?"), 0) + 1
    return ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
