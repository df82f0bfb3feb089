"""The entry point, `detect_landmarks`, and the two passes of the midline rules.

The method is outlined in the package docstring (`skull2face.anatomy.detect`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh

from ...geometry.frame import apply, as_rigid
from ..landmark_set import LandmarkSet
from .. import names
from .bilateral import _face_pairs, _skull_pairs
from .face_midline import _face_midline
from . import parts as parts_mod
from .plausible import NotAnatomy, surface_problem
from .profile import _profile
from .skull_midline import _skull_midline
from .work import _missing, _Result, _Work

# --- pitch ----------------------------------------------------------------------------------

# The coarse pitch is trusted to within this angle (degrees); a larger correction means the
# midline landmarks that measured it are wrong, and the coarse pitch is kept. A skull in
# unknown pose gets its coarse "up" from its outline (`skull2face.geometry.pose`), which on
# the Arothron skull lies 30-31 degrees from the N,G - Ns,Pr "up": a limit of 30 made the
# correction a coin flip under a rigid motion; typical coarse errors are < 35 degrees.
_MAX_PITCH_FIX_DEG = 45.0
_UPPER = {"skull": ("N", "G"), "face": ("n", "g'")}
_LOWER = {"skull": ("Ns", "Pr"), "face": ("sn",)}
_MIDLINE = {"skull": ("N", "G", "Ns", "Pr", "Pog", "Gn"), "face": ("n", "g'", "sn", "pog'", "me", "gn'")}


def _pitch_fix(res: dict[str, _Result], surface: str) -> np.ndarray | None:
    """Rotation about x (4, 4) that makes +y run from the lower to the upper midline
    landmarks, as `skull2face.geometry.frame.head_frame` defines "up"; None if they are not
    all there or the correction is implausibly large."""
    up_pts = [res[n].point for n in _UPPER[surface] if n in res and res[n].found]
    low_pts = [res[n].point for n in _LOWER[surface] if n in res and res[n].found]
    if not up_pts or not low_pts:
        return None
    up = np.mean(up_pts, axis=0) - np.mean(low_pts, axis=0)
    angle = np.arctan2(up[2], up[1])
    if abs(np.degrees(angle)) > _MAX_PITCH_FIX_DEG or up[1] <= 0:
        return None
    c, s = np.cos(angle), np.sin(angle)
    rot = np.eye(4)
    # maps (0, cos a, sin a) to (0, 1, 0): y' = c y + s z, z' = -s y + c z
    rot[1, 1:3] = [c, s]
    rot[2, 1:3] = [-s, c]
    return rot


def _midline(work: _Work, surface: str, given_in: dict[str, np.ndarray]) -> dict[str, _Result]:
    """Midline landmarks in two passes: the coarse pitch, then the pitch they imply.

    On return ``work``'s frame has the corrected pitch and its origin at nasion (when found).
    """
    find = _skull_midline if surface == "skull" else _face_midline
    res: dict[str, _Result] = {}
    moved = True
    for _ in range(2):
        prof = _profile(work, surface)
        if prof is None:
            why = "the mesh does not cross its own mid-sagittal plane"
            return {n: _missing(why) for n in names.surface_names(surface) if n in _MIDLINE[surface]}
        given = {n: apply(work.frame, p) for n, p in given_in.items()}
        res = find(prof, given, work)
        rot = _pitch_fix(res, surface)
        if rot is None:
            moved = False
            break
        work.move(rot)
    if moved:  # read the outline again in the corrected pitch (else the last reading stands)
        prof = _profile(work, surface)
        given = {n: apply(work.frame, p) for n, p in given_in.items()}
        res = find(prof, given, work)
    nasion = res["N" if surface == "skull" else "n"]
    if nasion.found:
        shift = np.eye(4)
        shift[:3, 3] = -nasion.point
        shift[0, 3] = 0.0  # keep x = 0 on the symmetry plane
        work.move(shift)
        for r in res.values():
            if r.found:
                r.point = r.point + shift[:3, 3]
    return res


# --- the public entry point -----------------------------------------------------------------


def detect_landmarks(mesh: trimesh.Trimesh, surface: str, coarse: Any,
                     given: LandmarkSet | None = None) -> LandmarkSet:
    """Detect the paper's skull (Table 1) or face (Table 2) landmarks on a mesh.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        Skull or skin surface, vertices in mm in any coordinates ("input coordinates").
    surface : {'skull', 'face'}
        Which landmark set to detect.
    coarse : array_like, shape (4, 4)
        Rigid map from input coordinates to an approximate head frame (+x subject's left,
        +y up, +z anterior). It may be off by ~10 degrees and ~20 mm, and its origin may be
        anywhere near the head's centre. For an LPS CT, ``frame_from_axes(centre, [1, 0, 0],
        [0, 0, 1])`` (x_head = x_lps, y_head = z_lps, z_head = -y_lps) will do.
    given : LandmarkSet, optional
        The user's landmarks (input coordinates). They always win: each is returned exactly
        as given, and a given nasion, glabella, ... also anchors the detection of the
        others. Names of the other surface are ignored.

    Returns
    -------
    LandmarkSet
        Points in input coordinates (mm, ``surface`` set), in the order of
        `skull2face.anatomy.names.surface_names`. ``meta[name]`` is, for every landmark of
        the surface:

        * ``{"source": "given", "confidence": "high", "note": ...}`` for given ones;
        * ``{"source": "detected", "confidence": "high" | "medium" | "low", "note": how}``;
        * ``{"source": "missing", "note": why}``, with no point, where the landmark does not
          exist on this input (cut off by the scan, no mandible, ...) or was not found.
        * ``{"source": "missing", "note": why, "absent": [part, ...]}`` for a skull landmark
          that was found but whose bone is missing (`.parts`: the midface, an orbit, a side,
          the mandible hold too little bone where they lie on a skull): not placed.

        How the confidence is set (a grade per rule, stated in each rule's docstring; the
        note gives the measured value where there is one):

        * "high": only nasion (N, n), when its notch is deeper than 1.5 mm (skull) / 2 mm
          (face) behind the chord over +-8 / +-10 mm of outline (`.midline`); and given ones.
        * "medium": a feature measured on the surface inside an anatomically bounded window:
          a notch 0.3-1.5 mm (skull) / 0.5-2 mm (face) deep for nasion; the most prominent or
          extreme point of a bounded outline or box (G, g', Ns, Pog, Gn, me, Zy, zy', Go, al,
          sn at a clear notch).
        * "low": a point placed by a typical dimension rather than seen (Pr above the incisal
          edge, Fmt, Da, en, t, go'), a feature next to a scan cut, or a fallback (sn without
          a clear notch, menton at the chin's turning point).

        A confidence grades the rule that found the landmark on a shape that is a skull or
        face; whether it is one is checked separately (`.plausible`: junk is refused by
        `skull2face.anatomy.locate`, not graded).

    Raises
    ------
    NotAnatomy
        (a ValueError) If the mesh is not a surface at all (`.plausible.surface_problem`: a
        triangle soup). Whether the landmarks show a skull or face is judged by the caller
        (`.plausible.anatomy_problem`, used by `skull2face.anatomy.locate`).
    ValueError
        If ``surface`` is unknown, the mesh is empty, or ``coarse`` is not rigid.

    Notes
    -----
    The method is described in the module docstring. It is deterministic and equivariant:
    moving ``mesh`` by a rigid motion ``M`` and using ``coarse @ inv(M)`` moves every
    landmark by ``M`` (to float32 ray-casting precision).
    """
    if surface not in ("skull", "face"):
        raise ValueError(f"surface must be 'skull' or 'face', not {surface!r}")
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise ValueError("detect_landmarks needs a non-empty trimesh.Trimesh")
    coarse = as_rigid(coarse, "coarse")
    problem = surface_problem(mesh)
    if problem is not None:
        raise NotAnatomy(problem)
    table = names.SKULL if surface == "skull" else names.FACE
    given_pts = {} if given is None else {n: p for n, p in given.points.items() if n in table}

    work = _Work(mesh, coarse)
    mid = _midline(work, surface, given_pts)
    nasion = mid["N" if surface == "skull" else "n"]
    shares: dict[str, float] = {}
    if nasion.found:
        pairs = (_skull_pairs if surface == "skull" else _face_pairs)(work, mid)
        if surface == "skull":  # which parts of the skull hold bone, in the frame at nasion
            shares = parts_mod.part_shares(work.verts, np.asarray(mesh.faces), work.on_lid)
    else:
        pairs = {}
    absent = parts_mod.absent_parts(shares)
    points: dict[str, np.ndarray] = {}
    meta: dict[str, dict] = {}
    for name in names.surface_names(surface):
        if name in given_pts:
            points[name] = np.array(given.points[name], dtype=np.float64)
            meta[name] = {"confidence": "high", "note": "given by the user",
                          **given.meta.get(name, {}), "source": "given"}
            continue
        r = mid.get(name) or pairs.get(name)
        if r is None:
            r = _missing("needs nasion, which was not found: " + nasion.note)
        gone = [p for p in parts_mod.needs(name) if p in absent] if r.found else []
        if gone:  # the bone it stands on is not there: report it, do not place it
            meta[name] = {"source": "missing", "note": parts_mod.absence_note(gone, shares), "absent": gone}
        elif r.found:
            points[name] = work.to_input(r.point)
            meta[name] = {"source": "detected", "confidence": r.confidence, "note": r.note}
        else:
            meta[name] = {"source": "missing", "note": r.note}
    return LandmarkSet(points, "LPS", surface, meta)
