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
from ..statistics.skull_fit import ENVELOPE_RADIUS_MM, fit_head
from ..statistics.thickness_prior import ThicknessPrior
from .envelope import envelope_mesh
from .result import MethodResult

ENVELOPE_VOXEL_MM = 2.0
"""Voxel of the 3D envelope's distance field for ``dense="envelope"``, mm."""


def face_model_face(skull_mesh: Any, skull_landmarks: Any, spec: RenderSpec, *, dense: str = "prior",
                    prior: ThicknessPrior | None = None, skull_map: DepthMap | None = None,
                    n_modes: int | None = None, table: Any = None) -> MethodResult:
    """The fitted model head: whole, and as its face map in the target's render spec.

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        Input coordinates, mm.
    skull_landmarks : mapping or LandmarkSet
        Input coordinates, mm.
    spec : RenderSpec
        The target's render spec; the face map uses it.
    dense : {'prior', 'map', 'envelope', 'none'}
        See `skull2face.statistics.skull_fit.dense_target`; ``envelope``: the 3D envelope.
    prior : ThicknessPrior, optional
        The measured thickness prior (a model file's or a dataset's); without one, ``prior``
        falls back to ``map``.
    skull_map, n_modes
        As in `skull2face.statistics.skull_fit.fit_head`.
    table : sequence of Thickness, optional
        The L_A targets' thickness rows (`skull2face.anatomy.tissue.TissueTable`'s ``rows``);
        None: the bundled table.

    Returns
    -------
    MethodResult
        The fit's face map, its record, and the whole fitted head (input coordinates, mm).
    """
    surface = None
    if dense == "envelope":
        surface = MeshSurface(envelope_mesh(skull_mesh, ENVELOPE_RADIUS_MM, ENVELOPE_VOXEL_MM))
    fitted = fit_head(skull_mesh, skull_landmarks, spec, dense=dense if dense != "envelope" else "none",
                      prior=prior, skull_map=skull_map, surface=surface, n_modes=n_modes, table=table)
    record = {"method": "face-model", **fitted.record}
    if dense == "envelope":
        record["dense"] = "envelope"
    return MethodResult(fitted.face_map, record, fitted.head)


__all__ = ["ENVELOPE_VOXEL_MM", "face_model_face"]
