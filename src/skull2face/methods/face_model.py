"""``face-model``: the ICT-FaceKit head model fitted to the skull, rendered as the face map.

Targets, in the skull's input coordinates (mm):

* the L_A targets (`skull2face.statistics.face_model.landmark_targets`): every skull landmark
  with a skin partner moved out along the bone normal by its published mean thickness (Hona &
  Stephan 2024), weighted by 1/SD^2;
* the envelope (`skull2face.methods.envelope.envelope_mesh`, the skull grown by
  `ENVELOPE_RADIUS_MM`, on `ENVELOPE_VOXEL_MM` voxels): the model's face part may not enter it
  and is pulled gently onto it (`skull2face.statistics.face_model.fit_head_model`).

The fit starts from the head frame's axes (the model's axes are the head frame's: +x the
subject's left, +y up, +z out of the face) with the landmarks' weighted centroids matched.
The fitted head (face, scalp, ears and neck; eyes and mouth closed by caps) is rendered in the
target's render spec.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import trimesh

from ..geometry.depthmap import DepthMap, RenderSpec, render
from ..geometry.frame import apply
from ..geometry.normals import HEAD_CENTRE
from ..statistics.face_model import fit_head_model, landmark_targets, load_head_model
from .envelope import envelope_mesh

ENVELOPE_RADIUS_MM = 6.0
"""The envelope's thickness: the thinnest published tissue over the face (glabella 5.5,
nasion 6.0 mm, Hona & Stephan 2024), as the ``envelope`` baseline."""
ENVELOPE_VOXEL_MM = 2.0
"""Voxel of the envelope's distance field, mm (speed; the fit's dense SD is 2 mm too)."""


def fit_to_skull(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec, *,
                 envelope: bool = True, n_modes: int | None = None,
                 info: dict | None = None) -> trimesh.Trimesh:
    """The model head fitted to a skull, in the skull's input coordinates.

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        The skull, input coordinates, mm.
    skull_landmarks : mapping of str to array_like (3,), or LandmarkSet
        Its landmarks, input coordinates, mm (at least three with skin partners).
    spec : RenderSpec
        Only ``spec.frame`` (input -> head) is used: the start pose and the head centre.
    envelope : bool
        Use the dense envelope term (False: landmarks and prior only).
    n_modes : int, optional
        Use the first modes only.
    info : dict, optional
        Filled with the fit's record and timings (s).

    Returns
    -------
    trimesh.Trimesh
        The fitted head, input coordinates, mm.
    """
    record = {} if info is None else info
    model = load_head_model()
    v = np.asarray(skull_mesh.vertices, dtype=np.float64)
    centre = apply(spec.inverse, np.asarray(HEAD_CENTRE, dtype=np.float64))
    targets = landmark_targets(v, skull_mesh.faces, skull_landmarks, centre)
    t0 = time.perf_counter()
    env = envelope_mesh(skull_mesh, ENVELOPE_RADIUS_MM, ENVELOPE_VOXEL_MM) if envelope else None
    t1 = time.perf_counter()
    # start: head frame axes, weighted landmark centroids matched
    names = [k for k in targets if k in model.soft]
    start = spec.inverse.copy()
    if names:
        wl = np.array([1.0 / targets[k][1] ** 2 for k in names])
        src = apply(start, model.neutral[[model.soft[k] for k in names]])
        dst = np.array([targets[k][0] for k in names])
        start[:3, 3] += wl @ (dst - src) / wl.sum()
    fit: dict = {}
    pose, w = fit_head_model(model, targets, env, initial_pose=start, n_modes=n_modes, info=fit)
    t2 = time.perf_counter()
    record.update({"model": "ICT-FaceKit head (Li et al. 2020), data/models/ict_facekit_head.npz",
                   "targets": sorted(targets), "envelope_radius_mm": ENVELOPE_RADIUS_MM if envelope else None,
                   "envelope_voxel_mm": ENVELOPE_VOXEL_MM, "fit": fit,
                   "w": [round(float(x), 3) for x in w],
                   "time_s": {"envelope": round(t1 - t0, 2), "fit": round(t2 - t1, 2)}})
    return trimesh.Trimesh(apply(pose, model.instance(w)), model.faces, process=False)


def face_model_face(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec, *,
                    envelope: bool = True, n_modes: int | None = None, info: dict | None = None) -> DepthMap:
    """The fitted model head's face map in the target's render spec.

    Parameters
    ----------
    skull_mesh, skull_landmarks, envelope, n_modes, info
        As in `fit_to_skull`.
    spec : RenderSpec
        The target's render spec; the output uses it.

    Returns
    -------
    DepthMap
        Heights (mm, head-frame z) of the fitted head seen from the front.
    """
    head = fit_to_skull(skull_mesh, skull_landmarks, spec, envelope=envelope, n_modes=n_modes, info=info)
    return render(head, spec)


__all__ = ["ENVELOPE_RADIUS_MM", "ENVELOPE_VOXEL_MM", "face_model_face", "fit_to_skull"]
