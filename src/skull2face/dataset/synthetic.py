"""Synthetic skull/face pairs grown from a real head: shape warp plus soft-tissue rescale.

Only two real paired head CTs are available, so the training population is grown from them.
One synthetic sample is a real head changed in two ways that keep the pair consistent:

1. **Soft-tissue rescale** (`skull2face.dataset.tissue_rescale`). Per-site targets are drawn
   (`draw_thickness`) so that the bone->skin distance at each landmark pair follows the
   published mean and SD of Hona & Stephan (2024); `tissue_factors` turns them into the
   thickness factors the rescale interpolates over the skin. The skull is untouched.
2. **Shape warp** (`skull2face.geometry.tps`). One smooth 3D displacement field moves skull,
   skin and landmarks together, so bone and skin stay in register; its size follows published
   craniofacial variability.

`sample_pair` draws both and applies them; every drawn number goes into a JSON-ready ``params``
dict that `replay_pair` turns back into the same sample.

Order of operations. The tissue rescale is carried out on the *source* head, where the closest
points are cached once per head (`TissueField`, the expensive part), and the warp is applied
afterwards to the rescaled skin. The factors are nevertheless computed from the *warped*
landmark pairs, so the final bone->skin distances equal the drawn targets. Since the warp is
smooth and has a positive Jacobian, skin that clears the bone before it still clears it after;
the 1 mm floor then holds up to the warp's local stretch (>= ~0.9 at amplitude 1).

All coordinates are millimetres in whatever frame the input meshes use (a CT's LPS frame or the
head frame of `skull2face.geometry.frame`); only the axes of the global scale component need
the head frame, and `sample_pair` builds it from the skull landmarks.

numpy, scipy, trimesh, libigl; no torch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import trimesh

from ..anatomy import names
from ..anatomy.tissue import Thickness, thickness_for
from ..geometry.frame import head_frame
from ..geometry.tps import DEFAULT_ANCHORS, Warp, anchor_points, random_shape_warp
from .tissue_rescale import (
    EXCLUDED_SITES,
    FACTOR_CLIP,
    MIN_THICKNESS_MM,
    TissueField,
    finite_landmarks,
    landmark_pairs,
    mesh_arrays,
    to_trimesh,
)

# Correlation of the drawn thickness z-scores between landmark sites: one shared "body build"
# component (thickness at most sites rises and falls together with BMI, De Greef et al. 2006)
# and, for bilateral sites, a small side-specific share (left and right are nearly equal in one
# person). Both are modelling choices, not published figures; each site's marginal stays
# exactly N(mean, SD) of the table.
BUILD_SHARE = 0.5
ASYMMETRY_SHARE = 0.1

_PARAMS_FORMAT = "skull2face.synthetic_pair"
# Newton refinements of the landmark factors through the warp (each ~1e-2 -> ~1e-4 mm).
_NEWTON_STEPS = 2


def draw_thickness(sites: Any, rng: np.random.Generator, *, build_share: float = BUILD_SHARE,
                   asymmetry_share: float = ASYMMETRY_SHARE, min_mm: float = MIN_THICKNESS_MM,
                   table: list[Thickness] | None = None) -> dict[str, Any]:
    """Draw a target soft-tissue thickness for each site from the published mean and SD.

    ``target = max(mean + sd * z, min_mm)``, where each site's z-score is N(0, 1) and the
    sites are correlated through a shared body-build component (share ``build_share`` of the
    variance) and, for the two sides of a bilateral site, a common site component (all but
    ``asymmetry_share``). The same random numbers are drawn whichever sites are asked for, so
    one seed gives corresponding draws for heads with different landmark sets.

    Parameters
    ----------
    sites : iterable of str
        Skull landmark names (canonical), e.g. the keys of `landmark_pairs`.
    rng : numpy.random.Generator
    build_share, asymmetry_share : float in [0, 1]
    min_mm : float
        Truncation: targets below this are raised to it (mm).
    table : list of Thickness, optional
        Thickness rows; the bundled Hona & Stephan (2024) table by default.

    Returns
    -------
    dict
        ``{"build_z": float, "sites": {name: {"row", "mean_mm", "sd_mm", "z", "target_mm"}}}``,
        JSON-ready.
    """
    if not (0 <= build_share <= 1 and 0 <= asymmetry_share <= 1):
        raise ValueError("build_share and asymmetry_share must lie in [0, 1]")
    wanted = set(sites)
    unknown = wanted - set(names.SKULL)
    if unknown:
        raise KeyError(f"not canonical skull landmarks: {', '.join(sorted(unknown))}")
    build_z = float(rng.standard_normal())
    # One draw per landmark stem and one per side, always all of them (fixed rng use).
    stems = list(dict.fromkeys(lm.base for lm in names.SKULL.values()))
    stem_e = dict(zip(stems, rng.standard_normal(len(stems))))
    side_e = dict(zip(names.SKULL, rng.standard_normal(len(names.SKULL))))
    out: dict[str, Any] = {"build_z": build_z, "build_share": build_share,
                           "asymmetry_share": asymmetry_share, "min_mm": min_mm, "sites": {}}
    for name, lm in names.SKULL.items():
        if name not in wanted:
            continue
        z_site = math.sqrt(build_share) * build_z + math.sqrt(1 - build_share) * float(stem_e[lm.base])
        z = z_site
        if lm.bilateral:
            z = math.sqrt(1 - asymmetry_share) * z_site + math.sqrt(asymmetry_share) * float(side_e[name])
        row = thickness_for(name, table)
        out["sites"][name] = {"row": row.bone, "mean_mm": row.mean_mm, "sd_mm": row.sd_mm,
                              "z": z, "target_mm": max(row.mean_mm + row.sd_mm * z, float(min_mm))}
    return out


def _solve_factor(a: np.ndarray, b: np.ndarray, target: float) -> float:
    """Factor ``f`` with ``|a + (f - 1) b| = target`` (the root nearest ``target / |a|``).

    ``a`` is the bone->skin landmark vector, ``b`` the thickness vector at the skin point
    (both as they will be after the warp): scaling moves the skin point along ``b``, which need
    not be parallel to ``a`` when the landmarks were not placed along the bone normal.
    """
    na = float(np.linalg.norm(a))
    bb = float(b @ b)
    ratio = target / na if na > 0 else 1.0
    if bb <= 1e-12:
        return ratio
    ab = float(a @ b)
    disc = ab * ab - bb * (na * na - target * target)
    if disc < 0:  # the target distance is not reachable along b: get as close as possible
        f = 1.0 - ab / bb
    else:
        f = 1.0 + (-ab + math.sqrt(disc)) / bb
    # A factor must stay positive (the clip of the factor field bounds it further).
    return max(f, 1e-6)


def _site_factors(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], targets: Mapping[str, float],
                  field: TissueField | None, warp: Warp | None) -> dict[str, dict[str, Any]]:
    """Factor per site so that the (warped) bone->skin distance becomes the target.

    The skin point moves by ``(f - 1) b`` (``b``: its thickness vector) and then through the
    warp. Solved in closed form for the warp's linearisation at the skin point, then refined by
    Newton steps on the warp itself, whose curvature matters when ``(f - 1) b`` is long.
    """
    keys = [k for k in pairs if k in targets]
    if not keys:
        return {}
    bone = np.array([pairs[k][0] for k in keys])
    skin = np.array([pairs[k][1] for k in keys])
    target = np.array([float(targets[k]) for k in keys])
    if field is not None:
        b = field.interpolate(field.locate(skin), field.vectors)
    else:  # no field: assume the skin point moves straight away from its bone landmark
        b = skin - bone
    if warp is None or warp.is_identity:
        a = skin - bone
        factors = np.array([_solve_factor(a[i], b[i], target[i]) for i in range(len(keys))])
    else:
        bone_w = warp.apply(bone)
        a = warp.apply(skin) - bone_w
        b_lin = np.einsum("nkj,nj->nk", warp.jacobian(skin), b)
        factors = np.array([_solve_factor(a[i], b_lin[i], target[i]) for i in range(len(keys))])
        for _ in range(_NEWTON_STEPS):
            moved = skin + (factors - 1.0)[:, None] * b
            w = warp.apply(moved) - bone_w
            dist = np.linalg.norm(w, axis=1)
            slope = np.einsum("nk,nk->n", w, np.einsum("nkj,nj->nk", warp.jacobian(moved), b))
            slope /= np.maximum(dist, 1e-12)
            ok = np.abs(slope) > 1e-9
            factors[ok] = np.maximum(factors[ok] - (dist[ok] - target[ok]) / slope[ok], 1e-6)
    out = {}
    for i, k in enumerate(keys):
        out[k] = {"node": bone[i].tolist(), "measured_mm": float(np.linalg.norm(a[i])),
                  "factor": float(factors[i])}
    return out


def tissue_factors(skull_landmarks: Mapping[str, Any], skin_landmarks: Mapping[str, Any] | None,
                   rng: np.random.Generator, *, field: TissueField | None = None,
                   exclude: tuple[str, ...] = EXCLUDED_SITES, build_share: float = BUILD_SHARE,
                   asymmetry_share: float = ASYMMETRY_SHARE, min_mm: float = MIN_THICKNESS_MM,
                   table: list[Thickness] | None = None) -> dict[str, tuple[np.ndarray, float]]:
    """Draw published soft-tissue thicknesses and turn them into thickness factors.

    For every skull landmark with a thickness row (`thickness_for`) and a skin point over it
    (its `names.BONE_TO_SKIN` twin, or with ``field`` the closest skin point), a target is
    drawn by `draw_thickness` and the factor is target / measured bone->skin distance. With
    ``field`` the factor also allows for the skin point moving along its thickness vector
    rather than straight away from the bone landmark, so `rescale_tissue` hits the target.

    Parameters
    ----------
    skull_landmarks, skin_landmarks : mapping of str to (3,) mm
        Canonical landmark names; NaN points count as absent.
    rng : numpy.random.Generator
    field : TissueField, optional
        The head's cache (see `landmark_pairs` and above).
    exclude, build_share, asymmetry_share, min_mm, table
        See `landmark_pairs` and `draw_thickness`.

    Returns
    -------
    dict of str to (point (3,) float64 mm, factor float)
        Keyed by skull landmark, the point being the bone landmark: ready for
        `rescale_tissue`.
    """
    pairs = landmark_pairs(skull_landmarks, skin_landmarks, field=field, exclude=exclude)
    draw = draw_thickness(pairs, rng, build_share=build_share, asymmetry_share=asymmetry_share,
                          min_mm=min_mm, table=table)
    targets = {k: v["target_mm"] for k, v in draw["sites"].items()}
    solved = _site_factors(pairs, targets, field, None)
    return {k: (np.array(v["node"]), v["factor"]) for k, v in solved.items()}


def _head_axes(skull_landmarks: Mapping[str, Any]) -> np.ndarray:
    return head_frame(finite_landmarks(skull_landmarks), "skull").matrix[:3, :3]


def sample_pair(skull: Any, skin: Any, skull_landmarks: Mapping[str, Any],
                skin_landmarks: Mapping[str, Any] | None, rng: np.random.Generator,
                shape_amplitude: float = 1.0, tissue: bool = True, build: float | None = None, *,
                field: TissueField | None = None, axes: Any = None,
                n_anchors: int = DEFAULT_ANCHORS, clip: tuple[float, float] = FACTOR_CLIP,
                min_mm: float = MIN_THICKNESS_MM, exclude: tuple[str, ...] = EXCLUDED_SITES,
                build_share: float = BUILD_SHARE, asymmetry_share: float = ASYMMETRY_SHARE,
                ) -> tuple[trimesh.Trimesh, trimesh.Trimesh, dict, dict, dict]:
    """One synthetic skull/face pair grown from a real head.

    Draws a shape warp (`random_shape_warp`, control points = the finite skull landmarks plus
    `anchor_points`) and, with ``tissue``, per-site soft-tissue targets (`draw_thickness`),
    then applies them with `replay_pair`: skin rescaled on the source head, then skull, skin
    and both landmark sets warped together. The factors are solved on the warped landmark
    pairs, so the final bone->skin distances equal the drawn targets (unless clipped).

    Parameters
    ----------
    skull, skin : trimesh.Trimesh or (vertices, faces)
        The real head, mm.
    skull_landmarks, skin_landmarks : mapping of str to (3,) mm
        Canonical names; NaN points count as absent. The skull landmarks must define a head
        frame (`skull2face.geometry.frame.head_frame`) unless ``axes`` is given.
    rng : numpy.random.Generator
    shape_amplitude : float
        Warp size in population SDs (0: no warp).
    tissue : bool
        Rescale the soft tissue.
    build : float or None
        Extra global tissue factor (e.g. 0.8 for a deliberately lean variant). None means 1:
        the body-build variation of the population is already in the correlated site draws.
    field : TissueField, optional
        Cache for this skull and skin (build it once per head and pass it: ~1 s saved).
    axes : array_like, shape (3, 3), optional
        Head axes (rows x, y, z) in the meshes' coordinates; from the skull landmarks if None.
    n_anchors, clip, min_mm, exclude, build_share, asymmetry_share
        See `anchor_points`, `TissueField.displacement`, `landmark_pairs`, `draw_thickness`.

    Returns
    -------
    skull2, skin2 : trimesh.Trimesh
        Same faces and vertex order as the inputs.
    lms_skull2, lms_skin2 : dict of str to numpy.ndarray (3,)
        Every input landmark moved with its surface (NaN stays NaN).
    params : dict
        JSON-ready record of everything drawn; `replay_pair` rebuilds the same sample from
        it. ``params["tissue"]["sites"][name]["achieved_mm"]`` is the final bone->skin
        distance of each site.

    Notes
    -----
    With ``shape_amplitude=0`` and ``tissue=False`` the outputs equal the inputs exactly.
    """
    skull_v, skull_f = mesh_arrays(skull, "skull")
    skin_v, skin_f = mesh_arrays(skin, "skin")
    if field is None and tissue:
        field = TissueField((skull_v, skull_f), (skin_v, skin_f))

    bone = finite_landmarks(skull_landmarks)
    r = _head_axes(skull_landmarks) if axes is None else np.asarray(axes, dtype=np.float64)
    landmark_pts = np.array([bone[n] for n in bone]).reshape(-1, 3)
    anchors = anchor_points(np.vstack([skull_v, skin_v]), n_anchors, seeds=landmark_pts)
    warp = random_shape_warp(np.vstack([landmark_pts, anchors]), rng, shape_amplitude, axes=r)

    params: dict[str, Any] = {
        "format": _PARAMS_FORMAT,
        "version": 1,
        "shape_amplitude": float(shape_amplitude),
        "warp": warp.to_json(),
        "tissue": None,
    }
    if tissue:
        pairs = landmark_pairs(skull_landmarks, skin_landmarks, field=field, exclude=exclude)
        draw = draw_thickness(pairs, rng, build_share=build_share,
                              asymmetry_share=asymmetry_share, min_mm=min_mm)
        targets = {k: v["target_mm"] for k, v in draw["sites"].items()}
        solved = _site_factors(pairs, targets, field, warp)
        for k, v in solved.items():
            draw["sites"][k].update(v)
            draw["sites"][k]["skin_point"] = pairs[k][1].tolist()
        draw.update({"build": 1.0 if build is None else float(build), "clip": list(clip),
                     "min_mm_floor": float(min_mm), "smooth_mm": field.smooth_mm})
        params["tissue"] = draw

    skull2, skin2, lms_skull2, lms_skin2, disp = _apply_params(
        (skull_v, skull_f), (skin_v, skin_f), skull_landmarks, skin_landmarks, params, field)
    if tissue:
        _record_achieved(params, warp, field, disp, lms_skull2)
    return skull2, skin2, lms_skull2, lms_skin2, params


def _record_achieved(params: dict, warp: Warp, field: TissueField, disp: np.ndarray,
                     lms_skull2: Mapping[str, np.ndarray]) -> None:
    """Store each site's final bone->skin distance (its skin point moved like the skin)."""
    sites = params["tissue"]["sites"]
    keys = [k for k in sites if "skin_point" in sites[k]]
    if not keys:
        return
    skin_pts = np.array([sites[k]["skin_point"] for k in keys])
    moved = warp.apply(skin_pts + field.interpolate(field.locate(skin_pts), disp))
    for k, p in zip(keys, moved):
        sites[k]["achieved_mm"] = float(np.linalg.norm(p - lms_skull2[k]))


def _factors_from_params(tissue: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, float]]:
    return {k: (np.array(v["node"]), float(v["factor"]))
            for k, v in tissue["sites"].items() if "factor" in v}


def replay_pair(skull: Any, skin: Any, skull_landmarks: Mapping[str, Any],
                skin_landmarks: Mapping[str, Any] | None, params: Mapping[str, Any], *,
                field: TissueField | None = None) -> tuple[trimesh.Trimesh, trimesh.Trimesh, dict, dict, dict]:
    """Rebuild the sample that `sample_pair` recorded in ``params`` (no randomness).

    Parameters
    ----------
    skull, skin, skull_landmarks, skin_landmarks
        The same real head that `sample_pair` was given.
    params : dict
        Its ``params`` (or the same after a JSON round trip).
    field : TissueField, optional
        Cache for this head; built when needed and not given. A field built with another
        ``smooth_mm`` than the recorded one is rejected.

    Returns
    -------
    skull2, skin2, lms_skull2, lms_skin2, params
        As `sample_pair` (``params`` is the given one).
    """
    skull2, skin2, lms_skull2, lms_skin2, _ = _apply_params(
        skull, skin, skull_landmarks, skin_landmarks, params, field)
    return skull2, skin2, lms_skull2, lms_skin2, dict(params)


def _apply_params(skull: Any, skin: Any, skull_landmarks: Mapping[str, Any] | None,
                  skin_landmarks: Mapping[str, Any] | None, params: Mapping[str, Any],
                  field: TissueField | None):
    """Tissue rescale on the source head, then the warp; also returns the skin displacement."""
    if params.get("format") != _PARAMS_FORMAT:
        raise ValueError(f"not synthetic-pair parameters (format {params.get('format')!r})")
    skull_v, skull_f = mesh_arrays(skull, "skull")
    skin_v, skin_f = mesh_arrays(skin, "skin")
    warp = Warp.from_json(params["warp"])
    tissue = params.get("tissue")

    skin_lms = {k: np.asarray(v, dtype=np.float64).reshape(3) for k, v in (skin_landmarks or {}).items()}
    new_skin_v = skin_v
    disp = None
    if tissue:
        if field is None:
            field = TissueField((skull_v, skull_f), (skin_v, skin_f), smooth_mm=tissue["smooth_mm"])
        elif field.skin_vertices.shape != skin_v.shape:
            raise ValueError("field was built for a different skin mesh")
        elif field.smooth_mm != tissue["smooth_mm"]:
            raise ValueError(f"field smooth_mm {field.smooth_mm} differs from the recorded "
                             f"{tissue['smooth_mm']}")
        disp = field.displacement(_factors_from_params(tissue), tissue["build"],
                                  clip=tuple(tissue["clip"]), min_mm=tissue["min_mm_floor"])
        new_skin_v = skin_v + disp
        # Skin landmarks ride on the skin: the displacement at their place on the surface.
        finite = [k for k, v in skin_lms.items() if np.all(np.isfinite(v))]
        if finite:
            pts = np.array([skin_lms[k] for k in finite])
            moved = pts + field.interpolate(field.locate(pts), disp)
            skin_lms.update(zip(finite, moved))

    skull2 = to_trimesh(warp.apply(skull_v), skull_f)
    skin2 = to_trimesh(warp.apply(new_skin_v), skin_f)
    lms_skull2 = _warp_landmarks(warp, skull_landmarks)
    lms_skin2 = _warp_landmarks(warp, skin_lms)
    return skull2, skin2, lms_skull2, lms_skin2, disp


def _warp_landmarks(warp: Warp, landmarks: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    items = {k: np.asarray(v, dtype=np.float64).reshape(3) for k, v in (landmarks or {}).items()}
    if not items:
        return {}
    keys = list(items)
    moved = warp.apply(np.array([items[k] for k in keys]))  # NaN rows stay NaN
    return dict(zip(keys, moved))
