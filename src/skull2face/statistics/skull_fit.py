"""The ICT-FaceKit head model fitted to one skull: its targets, the fit, the fitted face map.

Targets, in the skull's input coordinates (mm):

* the L_A targets (`skull2face.statistics.face_model.landmark_targets`): every skull landmark
  with a skin partner moved out along the bone normal by its published mean thickness (Hona &
  Stephan 2024), weighted by 1/SD^2;
* a dense surface (`dense_target`) over the bone's frontal silhouette: the filled skull map
  (`skull2face.statistics.thickness_prior.base_height`) plus the thickness prior measured on
  real heads (`skull2face.statistics.thickness_prior`), pulled onto from both sides within its
  SD; without a prior, the filled skull plus `ENVELOPE_RADIUS_MM` as a lower bound.

The fit starts from the head frame's axes (the model's axes are the head frame's: +x the
subject's left, +y up, +z out of the face) with the landmarks' weighted centroids matched.
The fitted head (face, scalp, ears and neck; eyes and mouth closed by caps) is rendered in the
target's render spec. This is the ``face-model`` method and the base that the skull2face
generator corrects.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh

from ..geometry.caps import cap_openings
from ..geometry.depthmap import DepthMap, RenderSpec, render
from ..geometry.frame import apply
from ..geometry.normals import HEAD_CENTRE
from .face_model import DENSE_SD_MM, MapSurface, fit_head_model, landmark_targets, load_head_model
from .thickness_prior import ThicknessPrior, base_height, over_bone

ENVELOPE_RADIUS_MM = 6.0
"""The constant tissue of the trivial answer (the ``envelope`` baseline's radius) and the fit's
lower bound without a prior: about the published means at glabella (5.5), nasion (6.0) and the
vault (5.0 mm), Hona & Stephan 2024."""
DENSE_CHOICES = ("prior", "map", "none")


def dense_target(skull_map: DepthMap, dense: str = "prior", prior: ThicknessPrior | None = None,
                 bone: np.ndarray | None = None) -> MapSurface | None:
    """The fit's dense target surface over the bone's frontal silhouette.

    Parameters
    ----------
    skull_map : DepthMap
        The skull's frontal map (its spec's frame: input -> head).
    dense : {'prior', 'map', 'none'}
        ``prior``: filled skull + measured thickness prior, two-sided within its SD (``map``
        when no prior is given); ``map``: filled skull + `ENVELOPE_RADIUS_MM`, a lower bound;
        ``none``: no dense term.
    prior : ThicknessPrior, optional
    bone : numpy.ndarray, shape (H, W), bool, optional
        `over_bone` of the skull map, when the caller has it already.

    Returns
    -------
    MapSurface or None
    """
    if dense not in DENSE_CHOICES:
        raise ValueError(f"dense must be one of {', '.join(DENSE_CHOICES)}, got {dense!r}")
    if dense == "none" or not skull_map.mask.any():
        return None
    spec = skull_map.spec
    base = base_height(skull_map.height, spec.mm_per_px).astype(np.float64)
    if bone is None:
        bone = over_bone(skull_map.height, spec.mm_per_px)
    base[~bone] = np.nan  # beyond the bone the base is an extension
    if dense == "prior" and prior is not None:
        mean, sd, _ = prior.sample(spec)
        return MapSurface(base + mean, sd, spec, two_sided=True)
    return MapSurface(base + ENVELOPE_RADIUS_MM, DENSE_SD_MM, spec, two_sided=False)


def skull_targets(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec,
                  table: Any = None) -> dict[str, tuple[np.ndarray, float]]:
    """The skull's L_A targets (`skull2face.statistics.face_model.landmark_targets`), bone
    normals turned away from the head centre placed by ``spec.frame`` (input coordinates, mm)."""
    centre = apply(spec.inverse, np.asarray(HEAD_CENTRE, dtype=np.float64))
    return landmark_targets(np.asarray(skull_mesh.vertices, dtype=np.float64), skull_mesh.faces, skull_landmarks,
                            centre, table=table)


def start_pose(model: Any, targets: dict, spec: RenderSpec) -> np.ndarray:
    """Where the fit starts: the head frame's axes (model -> input), translated so that the
    model's and the targets' landmark centroids (weighted by 1/SD^2) match. (4, 4) float64."""
    start = spec.inverse.copy()
    names = [k for k in targets if k in model.soft]
    if names:
        wl = np.array([1.0 / targets[k][1] ** 2 for k in names])
        src = apply(start, model.neutral[[model.soft[k] for k in names]])
        dst = np.array([targets[k][0] for k in names])
        start[:3, 3] += wl @ (dst - src) / wl.sum()
    return start


def fit_to_skull(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec, surface: Any = None, *,
                 n_modes: int | None = None, info: dict | None = None, table: Any = None) -> trimesh.Trimesh:
    """The model head fitted to a skull, in the skull's input coordinates.

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        The skull, input coordinates, mm.
    skull_landmarks : mapping of str to array_like (3,), or LandmarkSet
        Its landmarks, input coordinates, mm (at least three with skin partners).
    spec : RenderSpec
        Only ``spec.frame`` (input -> head) is used: the start pose and the head centre.
    surface : MapSurface or MeshSurface, optional
        The dense target (`dense_target`); None: landmarks and the coefficient prior only.
    n_modes : int, optional
        Use the first modes only.
    info : dict, optional
        Filled with the fit's record.
    table : sequence of Thickness, optional
        The L_A targets' thickness rows (`landmark_targets`); None: the bundled table.

    Returns
    -------
    trimesh.Trimesh
        The fitted head, input coordinates, mm, closed (the neck's opening capped,
        `skull2face.geometry.caps.cap_openings`).
    """
    model = load_head_model()
    targets = skull_targets(skull_mesh, skull_landmarks, spec, table)
    fit: dict = {}
    pose, w = fit_head_model(model, targets, surface, initial_pose=start_pose(model, targets, spec),
                             n_modes=n_modes, info=fit)
    if info is not None:
        info.update({"model": "ICT-FaceKit head (Li et al. 2020), data/models/ict_facekit_head.npz",
                     "targets": sorted(targets), "fit": fit, "w": [round(float(x), 3) for x in w]})
    # closed where the model's neck is cut: a solid to print and measure
    return cap_openings(trimesh.Trimesh(apply(pose, model.instance(w)), model.faces, process=False))


def fit_base_mm(fit_mm: Any, z_near: float) -> np.ndarray:
    """The base a ``base="fit"`` generator corrects: the fitted face heights (mm), ``z_near``
    where the fitted head does not cover a pixel (off the head the face mask decides).

    Parameters
    ----------
    fit_mm : numpy.ndarray, any shape, mm, NaN off the fitted head
    z_near : float, mm

    Returns
    -------
    numpy.ndarray, same shape, float64, finite
    """
    a = np.asarray(fit_mm, dtype=np.float64)
    return np.where(np.isfinite(a), a, float(z_near))


# Bands of the face by head-frame height (mm; nasion is y = 0, subnasale about -50, menton
# about -120: Farkas 1994 face heights), for saying where the fit has no bone under it.
FACE_BANDS = (("forehead", 10.0, 80.0), ("orbits and nose", -50.0, 10.0), ("mouth and chin", -130.0, -50.0))
MANDIBLE = ("Pog", "Gn", "Me", "Go_L", "Go_R")


def inferred_without_bone(skull_map: DepthMap, face_map: DepthMap, skull_landmarks: Any,
                          bone: np.ndarray | None = None) -> list[str]:
    """Which parts of a fitted head have no bone under them, in words for the user.

    Parameters
    ----------
    skull_map, face_map : DepthMap
        Frontal maps of the skull and the fitted head (one spec).
    skull_landmarks : mapping or LandmarkSet
    bone : numpy.ndarray, shape (H, W), bool, optional
        `over_bone` of the skull map, when the caller has it already.

    Returns
    -------
    list of str
        One line per part: each band of `FACE_BANDS` of which more than a third lies off the
        bone's frontal silhouette (`over_bone`), a missing mandible, each part of the skull that
        landmark detection found missing (``meta[name]["absent"]``, `skull2face.anatomy.detect.parts`), and always the ears, neck
        and back of the head (the head model alone).
    """
    from ..anatomy.landmark_set import points_of

    out = []
    pts = points_of(skull_landmarks)
    if not any(k in pts and np.all(np.isfinite(pts[k])) for k in MANDIBLE):
        out.append("no mandible found: chin, jaw line and lower lip come from the head model and the landmarks "
                   "above them, not from bone")
    meta = getattr(skull_landmarks, "meta", None) or {}
    gone: dict[str, str] = {}  # a part of the skull found missing by landmark detection -> its note
    for m in meta.values():
        for part, note in zip(m.get("absent", ()), str(m.get("note", "")).split("; "), strict=False):
            gone.setdefault(part, note)
    out += [f"{note}: the face over it is the head model's, not drawn from bone" for note in gone.values()]
    if bone is None:
        bone = over_bone(skull_map.height, skull_map.spec.mm_per_px) if skull_map.mask.any() else skull_map.mask
    x, y = skull_map.spec.xy_grid()
    for name, lo, hi in FACE_BANDS:
        band = face_map.mask & (y >= lo) & (y < hi) & (np.abs(x) < 50.0)
        if band.sum() == 0:
            continue
        off = 1.0 - float(np.mean(bone[band]))
        if off > 1.0 / 3.0:
            out.append(f"{name}: {100 * off:.0f} % of it has no bone under it (the head model fills it)")
    out.append("ears, neck and the back of the head: the head model alone (no tissue data there)")
    return out


@dataclass(frozen=True)
class FittedHead:
    """The model head fitted to one skull (`fit_head`).

    Attributes
    ----------
    face_map : DepthMap
        Heights (mm, head-frame z) of the fitted head seen from the front, in the target spec.
    head : trimesh.Trimesh
        The whole fitted head (face, scalp, ears, neck; eyes and mouth closed), closed, in the
        skull's input coordinates, mm.
    record : dict
        JSON-ready: the dense term, the fit's figures, ``inferred_without_bone``, timings (s).
    """

    face_map: DepthMap
    head: trimesh.Trimesh
    record: dict


def fit_head(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec, *, dense: str = "prior",
             prior: ThicknessPrior | None = None, skull_map: DepthMap | None = None, surface: Any = None,
             n_modes: int | None = None, table: Any = None) -> FittedHead:
    """The model head fitted to a skull, whole and as its frontal map in ``spec``.

    The face-model method's face, the base skull2face's generator corrects, and the fit maps of
    a dataset.

    Parameters
    ----------
    skull_mesh, skull_landmarks, n_modes, table
        As in `fit_to_skull`.
    spec : RenderSpec
        The target's render spec; the face map uses it.
    dense, prior
        The dense term (`dense_target`), unless ``surface`` is given.
    skull_map : DepthMap, optional
        The skull's map in ``spec`` (rendered when not given).
    surface : MapSurface or MeshSurface, optional
        A dense target made by the caller (e.g. the 3D envelope); overrides ``dense``.

    Returns
    -------
    FittedHead
    """
    record: dict = {}
    t0 = time.perf_counter()
    if skull_map is None:
        skull_map = render(skull_mesh, spec)
    # the bone's frontal silhouette: the dense target's extent and the "no bone under it" report
    bone = over_bone(skull_map.height, spec.mm_per_px) if skull_map.mask.any() else skull_map.mask
    if surface is None:
        surface = dense_target(skull_map, dense, prior, bone)
        record["dense"] = "none" if surface is None else ("prior" if surface.two_sided else "map")
        record["prior_heads"] = list(prior.heads) if (prior is not None and record["dense"] == "prior") else None
    t1 = time.perf_counter()
    head = fit_to_skull(skull_mesh, skull_landmarks, spec, surface, n_modes=n_modes, info=record, table=table)
    t2 = time.perf_counter()
    face = render(head, spec)
    record["inferred_without_bone"] = inferred_without_bone(skull_map, face, skull_landmarks, bone)
    record["time_s"] = {"dense_target": round(t1 - t0, 3), "fit": round(t2 - t1, 3),
                        "render": round(time.perf_counter() - t2, 3)}
    return FittedHead(face, head, record)


def fitted_face(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec, *, dense: str = "prior",
                prior: ThicknessPrior | None = None, skull_map: DepthMap | None = None, surface: Any = None,
                n_modes: int | None = None, info: dict | None = None, table: Any = None) -> DepthMap:
    """Only the frontal map of `fit_head` (a dataset's fit maps); ``info``, when given, is
    updated with its record."""
    fitted = fit_head(skull_mesh, skull_landmarks, spec, dense=dense, prior=prior, skull_map=skull_map,
                      surface=surface, n_modes=n_modes, table=table)
    if info is not None:
        info.update(fitted.record)
    return fitted.face_map


__all__ = ["DENSE_CHOICES", "ENVELOPE_RADIUS_MM", "FittedHead", "dense_target", "fit_base_mm", "fit_head",
           "fit_to_skull", "fitted_face", "skull_targets", "start_pose"]
