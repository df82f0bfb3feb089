"""A 3D Slicer bundle: the skull, the face and the landmarks in one folder, with a scene file.

`write_slicer_bundle` writes ``skull.ply``, ``face.ply`` (and ``truth_skin.ply`` when the truth
is known), ``skull_landmarks.mrk.json`` (markups point list, LPS, mm; see
`skull2face.io.landmarks.write_slicer_markups`) and ``skull2face.mrml``, a scene that Slicer
opens in one step (File > Add Data, or drag it onto the window): every model with its colour
and opacity, and the landmarks.

The scene file is MRML (XML): one storage, one display and one data node per item, tied by
``references="display:...;storage:...;"``; tag and attribute names are those Slicer's own nodes
write (``Model``/``ModelDisplay``/``ModelStorage``, ``MarkupsFiducial``/
``MarkupsFiducialDisplay``/``MarkupsJsonStorage``). Model storage nodes say
``coordinateSystem="LPS"``: the meshes are stored in the input's coordinates, which for a CT
are LPS (DICOM/ITK patient coordinates), the same frame the markups use, so everything lines up.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

import trimesh

from .atomic import write_text
from .landmarks import write_slicer_markups
from .meshes import save_mesh

SCENE_NAME = "skull2face.mrml"


@dataclass(frozen=True)
class SceneModel:
    """A model of the scene: its name, file (relative to the scene), colour (0..1 RGB), opacity."""

    name: str
    file: str
    colour: tuple[float, float, float]
    opacity: float = 1.0
    visible: bool = True


def scene_mrml(models: list[SceneModel], markups: list[tuple[str, str]]) -> str:
    """The MRML text of a scene of models and markups point lists.

    Parameters
    ----------
    models : list of SceneModel
    markups : list of (name, file)
        Point lists stored as ``.mrk.json`` (file relative to the scene).

    Returns
    -------
    str
        An XML document; Slicer resolves the file names relative to the scene file.
    """
    q = quoteattr
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<MRML version="Slicer4.4.0" userTags="">']
    for i, m in enumerate(models, start=1):
        colour = " ".join(f"{c:.4g}" for c in m.colour)
        lines += [
            f'<ModelStorage id="vtkMRMLModelStorageNode{i}" name={q(m.name + " storage")} hideFromEditors="true" '
            f'fileName={q(m.file)} useCompression="1" coordinateSystem="LPS"></ModelStorage>',
            f'<ModelDisplay id="vtkMRMLModelDisplayNode{i}" name={q(m.name + " display")} hideFromEditors="true" '
            f'color="{colour}" opacity="{m.opacity:g}" visibility="{str(m.visible).lower()}" '
            'backfaceCulling="false" scalarVisibility="false" sliceIntersectionVisibility="true"></ModelDisplay>',
            f'<Model id="vtkMRMLModelNode{i}" name={q(m.name)} hideFromEditors="false" '
            f'references="display:vtkMRMLModelDisplayNode{i};storage:vtkMRMLModelStorageNode{i};"></Model>',
        ]
    for i, (name, file) in enumerate(markups, start=1):
        lines += [
            f'<MarkupsJsonStorage id="vtkMRMLMarkupsJsonStorageNode{i}" name={q(name + " storage")} '
            f'hideFromEditors="true" fileName={q(file)}></MarkupsJsonStorage>',
            f'<MarkupsFiducialDisplay id="vtkMRMLMarkupsFiducialDisplayNode{i}" name={q(name + " display")} '
            'hideFromEditors="true" color="0.4 1 1" selectedColor="1 0.5 0.5" opacity="1" visibility="true" '
            'glyphType="Sphere3D" glyphScale="2" textScale="2.5" pointLabelsVisibility="true">'
            "</MarkupsFiducialDisplay>",
            f'<MarkupsFiducial id="vtkMRMLMarkupsFiducialNode{i}" name={q(name)} hideFromEditors="false" '
            f'references="display:vtkMRMLMarkupsFiducialDisplayNode{i};storage:vtkMRMLMarkupsJsonStorageNode{i};">'
            "</MarkupsFiducial>",
        ]
    lines.append("</MRML>")
    return "\n".join(lines) + "\n"


def write_slicer_bundle(folder: str | os.PathLike, skull: trimesh.Trimesh, face: trimesh.Trimesh, landmarks,
                        truth: trimesh.Trimesh | None = None) -> Path:
    """Write the bundle folder (atomically, file by file); returns the scene file's path.

    Parameters
    ----------
    folder : path-like
        Created if needed.
    skull, face : trimesh.Trimesh
        Vertices (n, 3) mm in the input's coordinates (LPS for a CT).
    landmarks : skull2face.anatomy.landmark_set.LandmarkSet
        The skull landmarks (LPS mm).
    truth : trimesh.Trimesh, optional
        The true skin (a CT's), hidden when the scene opens.
    """
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    models = [SceneModel("skull", "skull.ply", (0.91, 0.89, 0.81)),
              SceneModel("predicted face", "face.ply", (0.85, 0.66, 0.55), opacity=0.85)]
    save_mesh(skull, out / "skull.ply")
    save_mesh(face, out / "face.ply")
    if truth is not None:
        save_mesh(truth, out / "truth_skin.ply")
        models.append(SceneModel("true skin (CT)", "truth_skin.ply", (0.62, 0.72, 0.85), opacity=0.6, visible=False))
    write_slicer_markups(landmarks, out / "skull_landmarks.mrk.json")
    return write_text(out / SCENE_NAME, scene_mrml(models, [("skull landmarks", "skull_landmarks.mrk.json")]))


__all__ = ["SCENE_NAME", "SceneModel", "scene_mrml", "write_slicer_bundle"]
