"""A T1 MRI head's skin and skull, as `extract --modality mr` writes them.

`add_mr_skull` completes the `Surfaces` of an MRI head (its skin extracted against the
background, `skull2face.geometry.surfaces`): the skin moved to its half-step edge
(`skin_at_half_step`), the face's landmarks found on it (retried on smoothed copies: a noisy
2 mm skin can hide the nose's outline from the detector), and the skull measured under it
(`skull2face.anatomy.mr_skull.mr_skull`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import trimesh

from ..errors import InputError
from .landmark_set import LandmarkSet
from .mr_skull import STEP_MM, _face_axes, _inward_normals, bias_corrected, clean_depths, mr_skull, profiles


def skin_at_half_step(mesh: trimesh.Trimesh, field_: np.ndarray, head: np.ndarray, vol: Any) -> tuple[trimesh.Trimesh, dict]:
    """Move the skin to the half-step between the background and the tissue under it.

    The skin threshold (the foot of the background peak) places the surface on the outer flank
    of the partial-volume blur, about half a voxel outside the edge; the bone is found at its
    half-step, so the skin must be too, or every tissue depth reads thicker by the blur.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The extracted skin, LPS mm.
    field_ : numpy.ndarray, shape vol.shape
        `bias_corrected` intensities.
    head : numpy.ndarray, shape vol.shape, bool
    vol : Volume

    Returns
    -------
    mesh : trimesh.Trimesh
        The same triangles, vertices moved along their normals (mm).
    record : dict
    """
    to_index = np.linalg.inv(vol.index_to_lps)
    reach = max(3.0, 1.5 * float(np.max(vol.spacing)))
    inward = _inward_normals(mesh, head, to_index)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    prof = profiles(field_, to_index, v - reach * inward, inward, depth_mm=2.0 * reach)
    outside = prof[:, :4].min(1)
    half = 0.5 * (outside + prof.max(1))
    above = prof >= half[:, None]
    k = above.argmax(1)
    ok = above.any(1) & (k > 0)
    a = np.maximum(k - 1, 0)
    pa, pb = prof[np.arange(len(k)), a], prof[np.arange(len(k)), k]
    frac = np.clip((half - pa) / np.maximum(pb - pa, 1e-6), 0.0, 1.0)
    shift = np.where(ok, (a + frac) * STEP_MM - reach, np.nan)  # + inward
    shift = clean_depths(mesh, shift, rings=1)
    shift = np.nan_to_num(shift)
    moved = trimesh.Trimesh(v + shift[:, None] * inward, mesh.faces, process=False)
    return moved, {"skin_moved_to_half_step_mm": {"median": round(float(np.median(shift)), 3),
                                                   "p5": round(float(np.percentile(shift, 5)), 3),
                                                   "p95": round(float(np.percentile(shift, 95)), 3)}}


DETECT_FACES = 60_000
"""The face's landmarks are looked for on a copy of the skin with about this many triangles."""
DETECT_SMOOTHING = (0, 5, 15, 10, 30)
"""Taubin iterations of the skin copies the face's landmarks are looked for on, in turn."""
FACE_LANDMARKS_ENOUGH = 14
"""Stop trying once this many face landmarks are found (of 16)."""
MR_SKIN_FACES = 100_000
"""The skull is measured from a copy of the skin decimated to about this many triangles (the
rays then sample every ~1.5 mm of the head, finer than an MRI voxel)."""


def _decimated(mesh: trimesh.Trimesh, faces: int) -> trimesh.Trimesh:
    if len(mesh.faces) <= faces:
        return mesh
    import fast_simplification

    v, f = fast_simplification.simplify(mesh.vertices, mesh.faces, target_reduction=1.0 - faces / len(mesh.faces))
    return trimesh.Trimesh(v, f, process=True)


def add_mr_skull(vol: Any, surf: Any, face: LandmarkSet | None = None) -> tuple[Any, LandmarkSet, LandmarkSet]:
    """Give the `Surfaces` of a T1 MRI head (skin only, ``modality="mr"``) their skull.

    Parameters
    ----------
    vol : Volume
    surf : skull2face.geometry.surfaces.Surfaces
        From ``extract_surfaces(vol, SurfaceSettings(modality="mr"))`` (``head_mask`` set).
    face : LandmarkSet, optional
        The face's landmarks (LPS mm), when known; detected on the skin otherwise.

    Returns
    -------
    surf : Surfaces
        The same, with ``skull`` and ``record["skull"]`` filled in.
    skull_landmarks, face_landmarks : LandmarkSet
        LPS mm; the skull's measured along rays from the face's.

    Raises
    ------
    InputError
        The face's landmarks cannot be found on the skin, or no bone under it.
    """
    from ..geometry.pose import lps_frame
    from ..geometry.surfaces import _mesh_record
    from .detect import detect_landmarks

    normalised = bias_corrected(vol.voxels, surf.head_mask, vol.spacing)
    surf.skin, skin_rec = skin_at_half_step(surf.skin, normalised[0], surf.head_mask, vol)
    surf.record["skin"]["mesh"] = _mesh_record(surf.skin)
    skin = _decimated(surf.skin, MR_SKIN_FACES)
    tries: list[str] = []
    face_smooth = "given" if face is not None else None
    for smooth in DETECT_SMOOTHING if face is None else ():  # a noisy 2 mm skin can hide the nose's outline from the detector
        mesh = surf.skin
        if smooth:
            mesh = surf.skin.copy()
            trimesh.smoothing.filter_taubin(mesh, iterations=smooth)
        mesh = _decimated(mesh, DETECT_FACES)
        try:
            found_lms = detect_landmarks(mesh, "face", lps_frame(mesh))
            _face_axes(found_lms.points)
        except (ValueError, InputError) as exc:
            tries.append(f"{smooth} smoothing iterations: {exc}")
            continue
        if face is None or len(found_lms.points) > len(face.points):
            face, face_smooth = found_lms, smooth
        if len(face.points) >= FACE_LANDMARKS_ENOUGH:
            break
    if face is None:
        raise InputError(vol.source, "an MRI skull is measured under the face, whose landmarks were not found on "
                                     f"the skin ({tries[0]}); is this a whole head with the face in view?")
    found = mr_skull(vol, skin, surf.head_mask, face.points, normalised)
    found.record.update(skin_rec)
    found.record["face_landmarks"] = {"found": sorted(face.points), "skin_smoothing_iterations": face_smooth}
    surf.skull = found.skull
    surf.record["skull"] = {"mr": found.record, "mesh": _mesh_record(found.skull)}
    return surf, found.landmarks, face
