"""What every method returns: `MethodResult`.

A method turns a skull into a face and hands back three things, nothing hidden:

``face_map``
    The face seen from the front: a `DepthMap` on the SAME pixel grid and render spec as the
    skull map it was asked about (mm, head-frame z, NaN off the face), so every method's map
    goes through the same `depth_to_mesh` and the same evaluation.
``record``
    A JSON-ready dict of what the method chose or used (``predict.json``'s ``method_info``).
``head``
    The whole head as a closed mesh in the skull's input coordinates (mm), where the method has
    one (``face-model`` and ``skull2face`` on the fit: eyes, nose, lips, ears and the back of
    the head); None where the method only makes a frontal map, whose mesh is then the map's.

Light to import (annotations only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: keep the import light
    import trimesh

    from ..geometry.depthmap import DepthMap


@dataclass(frozen=True)
class MethodResult:
    """A method's face (module docstring).

    Attributes
    ----------
    face_map : DepthMap
        (H, W) float32 mm heights in the target skull map's render spec.
    record : dict
        JSON-ready; always holds ``method`` (the method's name).
    head : trimesh.Trimesh or None
        The whole head, closed, input coordinates, mm; None for map-only methods.
    """

    face_map: DepthMap
    record: dict = field(default_factory=dict)
    head: trimesh.Trimesh | None = None

    def face_mesh(self) -> trimesh.Trimesh:
        """The face to write: the whole head where there is one, else the mesh of the face map
        (input coordinates, mm)."""
        if self.head is not None:
            return self.head
        from ..geometry.depthmap import depth_to_mesh

        mesh = depth_to_mesh(self.face_map)
        mesh.remove_unreferenced_vertices()
        return mesh


__all__ = ["MethodResult"]
