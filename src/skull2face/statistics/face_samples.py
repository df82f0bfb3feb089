"""Plausible faces of one skull: whole heads drawn from what the skull leaves open.

One face from a skull is a point estimate: published tissue thickness carries a standard
error of about 2.7-2.8 mm (Stephan 2015), and the nose, lips and cheeks are weakly bound by
bone. `sample_heads` draws whole heads consistent with the skull by *perturb-and-MAP*
(Papandreou & Yuille 2011; "randomize-then-optimize", Bardsley et al. 2014): each sample is the
face-model fit (`skull2face.statistics.face_model.fit_head_model`) to randomly perturbed
targets, which for a linear-Gaussian problem is an exact draw from the posterior:

* the **tissue thickness** over the whole face is drawn from the thickness prior's mean and SD
  (`skull2face.statistics.thickness_prior`) with a spatial correlation (`thickness_field`):
  a face-wide build factor (one number per face: a heavier person is thicker everywhere) plus
  a smooth local field of correlation length `CORRELATION_MM` (not independent per pixel);
  the L_A landmark targets move with the same field at their own points, by their published
  SDs;
* the **model's coefficients** get a prior mean drawn from their own prior, N(0, I), so the
  parts no target binds (the back of the head, the ears) vary as the head model allows.

Each sample starts from the central fit (its pose and coefficients) and takes
`SAMPLE_ITERATIONS` Gauss-Newton steps; its displacement from the central fit, vertex by
vertex (all samples share the model's topology), is what the caller adds to its own face
(the fit itself, or the fit with the cGAN's correction), so the samples are centred on the
prediction. `spread` turns the displacements into the per-vertex uncertainty map.

Torch-free; mm; input coordinates of the skull.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh
from scipy import ndimage

from ..geometry.adjacency import neighbour_mean
from ..geometry.caps import cap_openings
from ..geometry.depthmap import DepthMap, RenderSpec, render
from ..geometry.frame import apply
from .face_model import MapSurface, fit_head_model, load_head_model
from .skull_fit import ENVELOPE_RADIUS_MM, dense_target, skull_targets, start_pose
from .thickness_prior import ThicknessPrior, over_bone

CORRELATION_MM = 20.0
"""Correlation length (Gaussian sigma, mm) of the local part of a thickness deviation: about the
spacing of neighbouring landmark sites (e.g. mid-philtrum to upper lip 10-15 mm, cheek sites
20-30 mm apart, Hona & Stephan 2024), whose thicknesses rise and fall together. Chosen, and
checked by the calibration (``benchmarks/uncertainty_calibration.py``)."""
GLOBAL_SHARE = 0.5
"""Share of a pixel's thickness variance that is one face-wide factor (body build): chosen,
and checked by the calibration; BMI moves the thickness of most facial sites together
(De Greef et al. 2006)."""
SD_CALIBRATION = 4.0
"""Factor on every thickness SD when drawing (`SampleSettings.sd_scale`'s default), chosen by
leave-one-head-out over the 9 real heads the benchmark scores (2 CT, 7 T1 MRI): for each
held-out head, the smallest of 2, 3, 4, 5 that holds 90 % of the OTHER heads' true skin on
average was 4 for all 9; every head at 4: 90.8 % inside, per head 85.5-96.2 %
(``benchmarks/uncertainty_calibration.py``, 2026-12-03). At 1 (the prior's and the table's SDs
alone) only about 53 % of the true skin lay inside: today's error is mostly the method's (a prior from few heads,
the head model, an MRI skull's own error), not the population's spread of thickness, and the
band must hold it."""
SAMPLE_ITERATIONS = 4
"""Gauss-Newton steps of each sample from the central fit (it converges in 3-4)."""
BAND = (5.0, 95.0)
"""Percentiles of the uncertainty band (the 90 % band)."""


@dataclass(frozen=True)
class SampleSettings:
    """How plausible faces are drawn.

    Attributes
    ----------
    n : int
        Number of samples.
    seed : int
        Seed of the random draws (same seed, same samples).
    correlation_mm : float
        `CORRELATION_MM`.
    global_share : float
        `GLOBAL_SHARE`, in [0, 1].
    sd_scale : float
        Multiplies every thickness SD (`SD_CALIBRATION`; 1: as the prior and the table give them).
    """

    n: int = 20
    seed: int = 0
    correlation_mm: float = CORRELATION_MM
    global_share: float = GLOBAL_SHARE
    sd_scale: float = SD_CALIBRATION


MIN_THICKNESS_MM = 1.0
"""No drawn tissue is thinner than this (mm): a face inside its bone is not a plausible face
(the thinnest published sites, e.g. rhinion 2-3 mm, Hona & Stephan 2024)."""


def drawn_change(mean_mm: Any, sd_mm: Any, z: Any, scale: float) -> np.ndarray:
    """How much a drawn thickness differs from the mean: ``max(mean + scale sd z, MIN) - mean``.

    Parameters
    ----------
    mean_mm, sd_mm, z : array_like (broadcastable), mm, mm, standard units
    scale : float
        `SampleSettings.sd_scale`.

    Returns
    -------
    numpy.ndarray, mm (float64)
    """
    mean = np.asarray(mean_mm, np.float64)
    return np.maximum(mean + float(scale) * np.asarray(sd_mm, np.float64) * np.asarray(z, np.float64),
                      MIN_THICKNESS_MM) - mean


def thickness_field(rng: np.random.Generator, shape: tuple[int, int], mm_per_px: float,
                    correlation_mm: float = CORRELATION_MM, global_share: float = GLOBAL_SHARE) -> np.ndarray:
    """A unit-variance Gaussian random field: one face-wide value plus a smooth local field.

    ``z = sqrt(g) * a + sqrt(1 - g) * (G_sigma * e) / s``, with ``a ~ N(0, 1)`` once per field,
    ``e`` white noise per pixel, ``G_sigma`` a Gaussian filter of sigma ``correlation_mm`` and
    ``s`` the filter's own norm (the SD of filtered unit white noise), so every pixel has
    variance exactly 1 away from the border.

    Parameters
    ----------
    rng : numpy.random.Generator
    shape : (int, int)
        (H, W) pixels.
    mm_per_px : float
    correlation_mm : float
        Sigma of the local field, mm (> 0).
    global_share : float
        ``g``, in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (H, W), float64
    """
    if not 0.0 <= global_share <= 1.0:
        raise ValueError(f"global_share must be in [0, 1], got {global_share}")
    sigma = float(correlation_mm) / float(mm_per_px)
    local = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    impulse = np.zeros((int(8 * sigma) + 1,) * 2)
    impulse[len(impulse) // 2, len(impulse) // 2] = 1.0
    norm = float(np.sqrt(np.sum(ndimage.gaussian_filter(impulse, sigma, mode="constant") ** 2)))
    a = rng.standard_normal()
    return np.sqrt(global_share) * a + np.sqrt(1.0 - global_share) * local / norm


def _at(field: np.ndarray, spec: RenderSpec, points_head: np.ndarray) -> np.ndarray:
    """Bilinear values of a (H, W) map at head-frame points (n, 3); nearest edge outside."""
    rc = spec.head_to_pixel(points_head).T
    return ndimage.map_coordinates(field, rc, order=1, mode="nearest")


def sample_heads(skull_mesh: trimesh.Trimesh, skull_landmarks: Any, spec: RenderSpec,
                 prior: ThicknessPrior | None, settings: SampleSettings = SampleSettings(), *,
                 table: Any = None, skull_map: DepthMap | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Draw whole heads consistent with a skull (module docstring).

    Parameters
    ----------
    skull_mesh : trimesh.Trimesh
        Input coordinates, mm.
    skull_landmarks : mapping or LandmarkSet
        Input coordinates, mm.
    spec : RenderSpec
        The grid of the thickness field and the dense target (its ``frame``: input -> head).
    prior : ThicknessPrior or None
        The measured thickness prior; None: the filled skull + 6 mm lower bound is perturbed
        with its own SD.
    settings : SampleSettings
    table : sequence of Thickness, optional
        The thickness table rows for the L_A targets (`skull2face.anatomy.tissue`); None: the
        bundled one.
    skull_map : DepthMap, optional
        The skull's map in ``spec`` (rendered when not given).
    progress : callable, optional
        Called with the number of samples done.

    Returns
    -------
    central : trimesh.Trimesh
        The central fit (closed), input coordinates, mm.
    displacements : numpy.ndarray, shape (n, V, 3), float32, mm
        Each sample's vertices minus the central fit's (V = ``len(central.vertices)``).
    """
    if settings.n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {settings.n}")
    model = load_head_model()
    targets = {k: t for k, t in skull_targets(skull_mesh, skull_landmarks, spec, table).items() if k in model.soft}
    if skull_map is None:
        skull_map = render(skull_mesh, spec)
    bone = over_bone(skull_map.height, spec.mm_per_px) if skull_map.mask.any() else skull_map.mask
    surface = dense_target(skull_map, "prior", prior, bone)
    # the thickness the dense target stands for (above the filled skull), mm
    thick = prior.sample(spec)[0].astype(np.float64) if (prior is not None and surface is not None
                                                         and surface.two_sided) else ENVELOPE_RADIUS_MM
    # the central fit, as `skull_fit.fit_to_skull` makes it
    names = list(targets)
    pose0, w0 = fit_head_model(model, targets, surface, initial_pose=start_pose(model, targets, spec))
    central = cap_openings(trimesh.Trimesh(apply(pose0, model.instance(w0)), model.faces, process=False))
    complete = _completion(central, surface, spec)
    # each L_A target moves along its bone normal (target minus bone point) with the field
    pts = {k: np.asarray(t[0], np.float64) for k, t in targets.items()}
    bone_pts = _bone_points(skull_landmarks, pts)
    rng = np.random.default_rng(settings.seed)
    out = np.empty((settings.n, len(central.vertices), 3), dtype=np.float32)
    for i in range(settings.n):
        z = thickness_field(rng, spec.size, spec.mm_per_px, settings.correlation_mm, settings.global_share)
        w_prior = rng.standard_normal(len(w0))
        moved = {}
        for k in names:
            point, sd = targets[k]
            normal = pts[k] - bone_pts[k]
            normal /= max(float(np.linalg.norm(normal)), 1e-9)
            zk = float(_at(z, spec, apply(spec.frame, pts[k][None]))[0])
            mean_k = float(np.linalg.norm(pts[k] - bone_pts[k]))
            moved[k] = (pts[k] + drawn_change(mean_k, sd, zk, settings.sd_scale) * normal, sd)
        perturbed, change = None, None
        if surface is not None:
            change = drawn_change(thick, surface.sd, z, settings.sd_scale)
            perturbed = MapSurface(surface.h + change, surface.sd, spec, surface.two_sided)
        pose, w = fit_head_model(model, moved, perturbed, initial_pose=pose0, initial_w=w0, prior_mean=w_prior,
                                 iterations=SAMPLE_ITERATIONS)
        head = apply(pose, model.instance(w))
        if complete is not None:  # the part of the drawn thickness the model's modes could not follow
            weight, pixel_rc, axis, smooth = complete
            drawn = ndimage.map_coordinates(np.nan_to_num(change), pixel_rc, order=1, cval=0.0)
            n0 = len(head)
            rest = weight * (drawn - np.pad((head - np.asarray(central.vertices)[:n0]) @ axis,
                                            (0, len(weight) - n0)))
            for _ in range(COMPLETION_SMOOTHING):
                rest = smooth @ rest
            head = head + rest[:n0, None] * axis
        capped = cap_openings(trimesh.Trimesh(head, model.faces, process=False))
        out[i] = np.asarray(capped.vertices) - np.asarray(central.vertices)
        if progress is not None:
            progress(i + 1)
    return central, out


COMPLETION_MIN_NZ = 0.45
"""Vertices whose normal's head-frame z is below this are not completed (as
`skull2face.statistics.face_model.MAP_MIN_NZ`: a frontal map does not say where they lie);
full weight from 0.75."""
COMPLETION_RAMP_MM = 10.0
"""The completion rises from 0 at the dense target's edge to full weight this far inside (mm):
no step where the bone's silhouette ends (a skull without its mandible)."""
COMPLETION_SMOOTHING = 10
"""Neighbour-mean passes over the completion (the head model's ~2 mm edges: ~6 mm): no crease
where the weight changes (eyelids, the sides of the nose)."""


def _completion(central: trimesh.Trimesh, surface: Any, spec: RenderSpec):
    """Where each sample's face is completed to the drawn thickness (module docstring).

    The model's modes follow only part of a drawn thickness field (its smooth, head-like
    part: measured, the samples' spread is about 0.6 of the prior's SD over the face); the rest
    is added along the head frame's z to the vertices that the dense target pairs: facing
    forward (`COMPLETION_MIN_NZ`), over a pixel of the target, tapered over 3 px at the target's
    edge (`COMPLETION_RAMP_MM`), smoothed over the mesh (`COMPLETION_SMOOTHING`). Returns
    (weight (V,), pixel coordinates (2, V), the head z axis in input coordinates, the
    neighbour-mean matrix) or None without a dense target."""
    if surface is None:
        return None
    from ..geometry.distances import vertex_normals

    v = np.asarray(central.vertices, np.float64)
    axis = np.asarray(spec.inverse[:3, 2], np.float64)  # head +z in input coordinates
    nz = vertex_normals(v, np.asarray(central.faces, np.int64)) @ axis
    rc = spec.head_to_pixel(apply(spec.frame, v)).T
    ramp = np.clip(ndimage.distance_transform_edt(np.isfinite(surface.h)) * spec.mm_per_px / COMPLETION_RAMP_MM,
                   0.0, 1.0)
    near = ndimage.map_coordinates(ramp, rc, order=1, cval=0.0)
    # only the first surface seen from the front (not the back of the head behind the face)
    seen = render_front(central, spec)
    front = ndimage.map_coordinates(seen, rc, order=1, cval=np.nan)
    first = np.isfinite(front) & (apply(spec.frame, v)[:, 2] >= np.nan_to_num(front, nan=np.inf) - 2.0)
    weight = np.clip((nz - COMPLETION_MIN_NZ) / 0.3, 0.0, 1.0) * near * first
    return weight, rc, axis, neighbour_mean(np.asarray(central.faces), len(v))


def render_front(head: trimesh.Trimesh, spec: RenderSpec) -> np.ndarray:
    """Head-frame z of the first surface of ``head`` seen from the front, (H, W) mm, NaN off it."""
    return render(head, spec).height.astype(np.float64)


def _bone_points(skull_landmarks: Any, targets: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The skull landmark under each L_A target (`skull2face.anatomy.names.BONE_TO_SKIN`)."""
    from ..anatomy.landmark_set import points_of
    from ..anatomy.names import BONE_TO_SKIN

    pts = points_of(skull_landmarks)
    return {skin: np.asarray(pts[bone], np.float64) for bone, skin in BONE_TO_SKIN.items()
            if skin in targets and bone in pts}


def spread(head: trimesh.Trimesh, displacements: np.ndarray) -> dict[str, np.ndarray]:
    """Per-vertex uncertainty of a face from its samples' displacements.

    Parameters
    ----------
    head : trimesh.Trimesh
        The predicted head (V vertices), input coordinates, mm.
    displacements : numpy.ndarray, shape (n, V, 3), mm
        Sample minus prediction, per vertex (`sample_heads`).

    Returns
    -------
    dict of str to numpy.ndarray, shape (V,), float32, mm
        ``along`` (n, V): the displacement along the head's outward vertex normal (+ out);
        ``sd_mm``: its SD; ``p05_mm``, ``p95_mm``: the 90 % band (`BAND`) along the normal;
        ``range_mm``: ``p95 - p05``.
    """
    from ..geometry.distances import vertex_normals

    n = vertex_normals(np.asarray(head.vertices, np.float64), np.asarray(head.faces, np.int64))
    along = np.einsum("svj,vj->sv", np.asarray(displacements, np.float64), n)
    lo, hi = np.percentile(along, BAND, axis=0)
    return {"along": along.astype(np.float32), "sd_mm": along.std(axis=0).astype(np.float32),
            "p05_mm": lo.astype(np.float32), "p95_mm": hi.astype(np.float32),
            "range_mm": (hi - lo).astype(np.float32)}


__all__ = ["BAND", "CORRELATION_MM", "GLOBAL_SHARE", "MIN_THICKNESS_MM", "SAMPLE_ITERATIONS", "SD_CALIBRATION",
           "SampleSettings", "drawn_change", "sample_heads", "spread", "thickness_field"]
