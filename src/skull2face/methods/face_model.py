"""``face-model``: the ICT-FaceKit head model fitted to the skull, rendered as the face map.

The fit itself is `skull2face.statistics.skull_fit` (landmark L_A targets, the dense thickness
prior over the bone, the model's Gaussian prior). Here: which dense target the method uses.
``dense="envelope"`` keeps the first version's target (the skull's 3D 6 mm envelope,
`skull2face.methods.envelope.envelope_mesh`, a lower bound) for comparison.
"""

from __future__ import annotations

from typing import Any

from ..geometry.depthmap import DepthMap, RenderSpec
from ..statistics.face_model import MeshSurface
from ..statistics.skull_fit import ENVELOPE_RADIUS_MM, fitted_face
from ..statistics.thickness_prior import ThicknessPrior
from .envelope import envelope_mesh

ENVELOPE_VOXEL_MM = 2.0
"""Voxel of the 3D envelope's distance field for ``dense="envelope"``, mm."""


def face_model_face(skull_mesh: Any, skull_landmarks: Any, spec: RenderSpec, *, dense: str = "prior",
                    prior: ThicknessPrior | None = None, skull_map: DepthMap | None = None,
                    n_modes: int | None = None, info: dict | None = None) -> DepthMap:
    """The fitted model head's face map in the target's render spec.

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        Input coordinates, mm.
    skull_landmarks : mapping or LandmarkSet
        Input coordinates, mm.
    spec : RenderSpec
        The target's render spec; the output uses it.
    dense : {'prior', 'map', 'envelope', 'none'}
        See `skull2face.statistics.skull_fit.dense_target`; ``envelope``: the 3D envelope.
    prior : ThicknessPrior, optional
        The measured thickness prior (a model file's or a dataset's); without one, ``prior``
        falls back to ``map``.
    skull_map, n_modes, info
        As in `skull2face.statistics.skull_fit.fitted_face`.

    Returns
    -------
    DepthMap
    """
    surface = None
    if dense == "envelope":
        surface = MeshSurface(envelope_mesh(skull_mesh, ENVELOPE_RADIUS_MM, ENVELOPE_VOXEL_MM))
        if info is not None:
            info["dense"] = "envelope"
    return fitted_face(skull_mesh, skull_landmarks, spec, dense=dense if dense != "envelope" else "none",
                       prior=prior, skull_map=skull_map, surface=surface, n_modes=n_modes, info=info)


__all__ = ["ENVELOPE_VOXEL_MM", "face_model_face"]
