"""T1 MRI head -> the outer surface of the skull, measured inward from the skin.

On a T1-weighted MRI the skin is the edge of the head against the dark background, the scalp
and facial soft tissue are bright (fat) to mid-grey (muscle), and the skull's cortical bone is
dark, as are air, teeth and the vitreous of the eyes (T1 contrasts: e.g. Westbrook & Talbot,
*MRI in Practice*, 5th ed. 2019, ch. 2; the outer table as "the inner edge of the scalp" is how
MRI soft-tissue thickness studies measure it, e.g. De Greef et al. 2009, Forensic Sci Int 189:
e99 — their skin-to-bone distances along the normal). So the bone surface is found the way such
studies measure tissue depth: along the inward normal of each skin vertex, the first fall from
the soft tissue into dark, placed at the **half-step** between the soft-tissue level just
outside and the dark level just inside (not at a fixed intensity, so that the voxel size does
not move it).

Steps (`mr_skull`):

1. bias-field correction (SimpleITK's N4 on a shrunk copy, inside the head mask), intensities
   divided by the bright soft-tissue level (`REFERENCE_PERCENTILE` of the head);
2. a profile along each skin vertex's inward normal (trilinear, every `STEP_MM`, to
   `MAX_DEPTH_MM`); the first dark fall after the profile has entered the tissue is the bone;
3. no bone where the skin does not lie over bone the way a CT skull is measured: the eyes,
   the lower nose (nostrils hold air), the ears (air behind them) and below the mandible. The
   face's landmarks place these zones (`skull2face.anatomy.detect` on the skin); a CT skull has
   holes there too (orbits, nasal aperture) which the thickness prior bridges the same way;
4. depths cleaned over the mesh (neighbour median, outliers dropped) and the skin's vertices
   moved inward by them: the skull surface is the skin's own mesh, cut to where bone was found.

The skull's landmarks are measured the same way along rays from the face's landmarks
(`BONE_TO_SKIN`, and dacryon under the inner canthus, `ORBIT_TWINS`): a bone landmark is where
the ray from its soft-tissue counterpart meets the bone, exactly as the published MRI thickness
is read.

Coordinates: the volume's LPS millimetres, like every extracted surface.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

import numpy as np
import trimesh
from scipy import ndimage, sparse

from ..errors import InputError
from ..geometry.adjacency import adjacency
from .landmark_set import LandmarkSet
from .names import BONE_TO_SKIN

log = logging.getLogger(__name__)

STEP_MM = 0.25
"""Sampling step along a ray, mm."""
MAX_DEPTH_MM = 32.0
"""Deepest bone searched for under the skin, mm. Published tissue over bone stays under ~30 mm
except the nose, lips and obese cheeks (Hona & Stephan 2024: mid-philtrum 12.9, supra-M2
~25-30 mm at +2 SD)."""
REFERENCE_PERCENTILE = 90.0
"""The head's bright soft-tissue level: this percentile of the bias-corrected head (fat and
white matter lie near it on T1)."""
DARK_FRACTION = 0.38
"""Bone, air and teeth fall below this fraction of the reference level; muscle stays near 0.45-0.5,
fat near 1 (measured on the IXI and Philips heads after N4)."""
DROP_FRACTION = 0.35
"""...and at least this far below the brightest tissue above them on the ray (a thin scalp
without fat is only ~0.4 on the 2 mm IXI heads)."""
BONE_LEVEL = 0.05
"""Cortical bone's own level after normalisation (a signal void on T1: ~5 % of fat, as the
background noise floor; measured 0.04-0.07 in the thick mandibular cortex of the 1 mm Philips head)."""
ENTER_FRACTION = 0.25
"""A ray has entered the soft tissue once its profile rises above this fraction (the skin's own
partial-volume edge is darker)."""
MIN_TISSUE_MM = 1.0
"""Thinnest tissue accepted over bone, mm."""
EYE_RADIUS_MM = (21.0, 18.0)
"""Half width and half height of the zone over each orbit left without bone, mm (the orbital
opening is about 40 x 35 mm; Weaver et al. 2010, J Craniofac Surg 21:1206)."""
EYE_OFFSET_MM = 16.0
"""The eye's centre lies this far lateral of the inner canthus, mm (palpebral fissure ~30 mm)."""
EAR_RADIUS_MM = 35.0
"""Skin within this distance of tragion (the ear) is left without bone, mm."""


@dataclass
class MrSkull:
    """Result of `mr_skull`: the skull surface, its landmarks and a JSON record.

    Attributes
    ----------
    skull : trimesh.Trimesh
        Outer surface of the bone, LPS mm; open where no bone was found (orbits, nose, ...).
    landmarks : LandmarkSet
        Skull landmarks measured along rays from the face's (``surface="skull"``).
    depth_mm : numpy.ndarray, shape (n_skin_vertices,), float64
        Tissue depth under each skin vertex, NaN where no bone was taken.
    record : dict
    """

    skull: trimesh.Trimesh
    landmarks: LandmarkSet
    depth_mm: np.ndarray
    record: dict = field(default_factory=dict)


def bias_corrected(voxels: np.ndarray, head: np.ndarray, spacing: np.ndarray) -> tuple[np.ndarray, dict]:
    """N4 bias-field correction (SimpleITK), then division by the head's reference level.

    Parameters
    ----------
    voxels : numpy.ndarray, shape (nx, ny, nz)
    head : numpy.ndarray, shape (nx, ny, nz), bool
        Inside the skin.
    spacing : array_like, shape (3,), mm

    Returns
    -------
    normalised : numpy.ndarray, shape (nx, ny, nz), float32
        1.0 at the `REFERENCE_PERCENTILE` of the head.
    record : dict
    """
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(voxels.astype(np.float32), (2, 1, 0))))
    img.SetSpacing([float(s) for s in spacing])
    mask = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(head.astype(np.uint8), (2, 1, 0))))
    mask.CopyInformation(img)
    shrink = [max(1, int(round(4.0 / float(s)))) for s in spacing]  # N4 works at ~4 mm
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([30, 30, 30])
    floor = 1e-3 * float(np.percentile(voxels[head], 99.0))  # N4 works on the log of positive values
    img_pos = sitk.Maximum(img, floor)
    n4.Execute(sitk.Shrink(img_pos, shrink), sitk.Shrink(mask, shrink))
    log_bias = np.transpose(sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(img_pos)), (2, 1, 0))
    out = np.maximum(voxels.astype(np.float32), floor) / np.exp(log_bias).astype(np.float32)
    ref = float(np.percentile(out[head], REFERENCE_PERCENTILE))
    if not ref > 0:
        raise ValueError("the head has no bright tissue")
    bias = np.exp(log_bias[head])
    return out / ref, {"n4_shrink": shrink, "bias_range": [round(float(bias.min()), 3), round(float(bias.max()), 3)],
                       "reference_level": round(ref, 3)}


def profiles(field_: np.ndarray, lps_to_index: np.ndarray, starts: np.ndarray, dirs: np.ndarray,
             depth_mm: float = MAX_DEPTH_MM, step_mm: float = STEP_MM) -> np.ndarray:
    """Trilinear samples of ``field_`` along rays.

    Parameters
    ----------
    field_ : numpy.ndarray, shape (nx, ny, nz)
    lps_to_index : numpy.ndarray, shape (4, 4)
    starts, dirs : numpy.ndarray, shape (n, 3), mm (``dirs`` unit)

    Returns
    -------
    numpy.ndarray, shape (n, m), float32
        Sample ``j`` of ray ``i`` is at ``starts[i] + j * step_mm * dirs[i]``; 0 outside the volume.
    """
    t = np.arange(0.0, depth_mm + 1e-9, step_mm)
    pts = starts[:, None, :] + t[None, :, None] * dirs[:, None, :]
    ijk = pts.reshape(-1, 3) @ lps_to_index[:3, :3].T + lps_to_index[:3, 3]
    vals = ndimage.map_coordinates(field_, ijk.T, order=1, mode="constant", cval=0.0)
    return vals.reshape(len(starts), len(t)).astype(np.float32)


def bone_depth(prof: np.ndarray, step_mm: float = STEP_MM) -> np.ndarray:
    """Depth of the first fall from soft tissue into dark along each profile (half-step), mm.

    Parameters
    ----------
    prof : numpy.ndarray, shape (n, m)
        Normalised profiles (`profiles` of the `bias_corrected` volume), starting at the skin.

    Returns
    -------
    numpy.ndarray, shape (n,), float64
        NaN where the ray never enters tissue or never falls into dark.
    """
    n, m = prof.shape
    entered = prof > ENTER_FRACTION
    first_in = np.where(entered.any(1), entered.argmax(1), m)
    j = np.arange(m)[None, :]
    peak = np.maximum.accumulate(np.where(j >= first_in[:, None], prof, 0.0), axis=1)
    dark = ((prof < DARK_FRACTION) & (prof <= (1.0 - DROP_FRACTION) * peak) & (j > first_in[:, None])
            & (j * step_mm >= MIN_TISSUE_MM))
    has = dark.any(1)
    k = np.where(has, dark.argmax(1), 0)
    out = np.full(n, np.nan)
    window = int(round(3.0 / step_mm))
    for i in np.nonzero(has)[0]:
        p = prof[i]
        lo_end = min(m, k[i] + window)
        kmin = k[i] + int(np.argmin(p[k[i]:lo_end]))
        hi_start = max(first_in[i], k[i] - window)
        khi = hi_start + int(np.argmax(p[hi_start:k[i] + 1]))
        # the half-step to the bone's own level: a cortex thinner than the blur never reaches it,
        # and the half-step to its shallow dip would lie outside the bone
        seg = p[khi:kmin + 1]
        half = 0.5 * (p[khi] + min(p[kmin], BONE_LEVEL))
        below = np.nonzero(seg < half)[0]
        if below.size == 0:
            half = 0.5 * (p[khi] + p[kmin])
            below = np.nonzero(seg < half)[0]
        if below.size == 0:
            continue
        b = khi + int(below[0])  # first sample under the half-step; interpolate from the one before
        a = b - 1
        frac = (p[a] - half) / max(p[a] - p[b], 1e-6)
        out[i] = (a + frac) * step_mm
    return out


def clean_depths(mesh: trimesh.Trimesh, depth: np.ndarray, rings: int = 2) -> np.ndarray:
    """A median filter of the depths over each vertex's ``rings``-ring, then a 1-ring mean.

    A vertex gets the median of the depths found around it when at least half of its
    neighbourhood found one (so a lone miss is filled and a lone outlier replaced); otherwise none.

    Parameters
    ----------
    mesh : trimesh.Trimesh
        The skin (``depth`` per vertex).
    depth : numpy.ndarray, shape (n,), mm, NaN for none

    Returns
    -------
    numpy.ndarray, shape (n,), mm, NaN for none
    """
    one = adjacency(mesh.faces, len(mesh.vertices)) + sparse.identity(len(depth), format="csr")
    adj = one
    for _ in range(rings - 1):
        adj = (adj @ one).sign().tocsr()
    found = np.isfinite(depth)
    n_found = adj @ found.astype(np.float64)
    n_all = np.diff(adj.indptr)
    med = np.full(len(depth), np.nan)
    for i in np.nonzero((n_found >= 3) & (n_found >= 0.5 * n_all))[0]:
        nb = adj.indices[adj.indptr[i]:adj.indptr[i + 1]]
        med[i] = np.median(depth[nb][found[nb]])
    ok = np.isfinite(med)
    s = one @ np.where(ok, med, 0.0)
    c = one @ ok.astype(np.float64)
    return np.where(ok, s / np.maximum(c, 1.0), np.nan)


def _face_axes(face: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from ..geometry.frame import head_frame

    m = head_frame(face, "face").matrix
    return m[0, :3], m[1, :3], m[2, :3], -m[:3, :3].T @ m[:3, 3]


def no_bone_zones(vertices: np.ndarray, face: dict[str, np.ndarray]) -> tuple[np.ndarray, dict]:
    """Skin vertices not over bone as a CT skull is measured: eyes, lower nose, ears, under the jaw.

    Parameters
    ----------
    vertices : numpy.ndarray, shape (n, 3), LPS mm
    face : dict of str to numpy.ndarray
        The face's landmarks (LPS mm).

    Returns
    -------
    excluded : numpy.ndarray, shape (n,), bool
    counts : dict
        Vertices per zone.
    """
    x, y, z, origin = _face_axes(face)
    rel = vertices - origin
    h = np.stack([rel @ x, rel @ y, rel @ z], 1)

    def hf(name: str) -> np.ndarray:
        return (np.asarray(face[name]) - origin) @ np.stack([x, y, z], 1)

    zones: dict[str, np.ndarray] = {}
    eyes = np.zeros(len(h), bool)
    for side, sign in (("L", 1.0), ("R", -1.0)):
        if f"en_{side}" in face:
            c = hf(f"en_{side}") + np.array([sign * EYE_OFFSET_MM, 0.0, 0.0])
            eyes |= ((((h[:, 0] - c[0]) / EYE_RADIUS_MM[0]) ** 2 + ((h[:, 1] - c[1]) / EYE_RADIUS_MM[1]) ** 2 <= 1)
                     & (h[:, 2] > c[2] - 30.0))
    zones["eyes"] = eyes
    nose = np.zeros(len(h), bool)
    if "sn" in face and "n" in face:
        sn, n = hf("sn"), hf("n")
        half_w = 20.0
        if "al_L" in face and "al_R" in face:
            half_w = 0.5 * abs(hf("al_L")[0] - hf("al_R")[0]) + 4.0
        top = n[1] - 0.45 * (n[1] - sn[1])  # the nasal bones cover the upper ~half (bone there)
        nose = (np.abs(h[:, 0]) < half_w) & (h[:, 1] < top) & (h[:, 1] > sn[1] - 3.0) & (h[:, 2] > sn[2] - 15.0)
    zones["nose"] = nose
    ears = np.zeros(len(h), bool)
    for side in ("L", "R"):
        if f"t_{side}" in face:
            ears |= np.linalg.norm(h - hf(f"t_{side}"), axis=1) < EAR_RADIUS_MM
    zones["ears"] = ears
    below = np.zeros(len(h), bool)
    if "me" in face:
        pts = [hf("me")] + [hf(f"go'_{s}") for s in "LR" if f"go'_{s}" in face]
        if len(pts) == 3:  # under the mandibular plane (menton and both gonia)
            normal = np.cross(pts[1] - pts[0], pts[2] - pts[0])
            normal *= np.sign(normal[1]) / np.linalg.norm(normal)
            below = (h - pts[0]) @ normal < -2.0
        else:
            below = h[:, 1] < pts[0][1] - 2.0
    zones["below_mandible"] = below
    excluded = np.zeros(len(h), bool)
    for v in zones.values():
        excluded |= v
    return excluded, {k: int(v.sum()) for k, v in zones.items()}


def _smooth_normals(mesh: trimesh.Trimesh, iterations: int = 4) -> np.ndarray:
    nrm = np.asarray(mesh.vertex_normals, dtype=np.float64)
    one = adjacency(mesh.faces, len(mesh.vertices)) + sparse.identity(len(nrm), format="csr")
    for _ in range(iterations):
        nrm = one @ nrm
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return nrm


def _inward_normals(mesh: trimesh.Trimesh, head: np.ndarray, to_index: np.ndarray) -> np.ndarray:
    """Smoothed unit normals pointing into the head (an open skin, cut by the scan, may come out
    wound inward: checked against the head mask 3 mm along them)."""
    inward = -_smooth_normals(mesh)
    v = np.asarray(mesh.vertices, dtype=np.float64)
    inside_at = profiles(head.astype(np.float32), to_index, v + 3.0 * inward, inward, depth_mm=0.0)[:, 0]
    return inward if np.mean(inside_at > 0.5) >= 0.5 else -inward


ORBIT_TWINS = {"Da_L": "en_L", "Da_R": "en_R"}
"""Dacryon, on the medial orbital wall, measured straight back from the inner canthus (no
thickness is published for it: it gives the skull a left-right pair where zygion and gonion,
measured along the skin normal at the side of the face, are not found)."""
LANDMARK_NEIGHBOURHOOD_MM = 6.0
"""A bone landmark's depth: the median cleaned depth of the skin within this radius of its face
twin (a landmark in a zone left open, e.g. gonion under the jaw line, falls back to its own ray)."""
MAX_OFF_SKULL_MM = 12.0
"""A measured bone landmark farther than this from the extracted skull surface is dropped: it lies
where no skull was kept (the landmark files given to ``predict`` must lie on the mesh)."""


def _landmark_depths(field_: np.ndarray, to_index: np.ndarray, skin: trimesh.Trimesh, inward: np.ndarray,
                     face: dict[str, np.ndarray], cleaned: np.ndarray) -> tuple[dict, dict]:
    """Bone landmarks along rays from their face counterparts (`BONE_TO_SKIN`): the cleaned
    depth of the nearest skin vertex where it has one, else the landmark's own ray."""
    x, y, z, _ = _face_axes(face)
    points, meta = {}, {}
    kdt = skin.kdtree
    for bone, soft in {**BONE_TO_SKIN, **ORBIT_TWINS}.items():
        if soft not in face:
            meta[bone] = {"source": "missing", "note": f"face landmark {soft} not found"}
            continue
        p = np.asarray(face[soft], dtype=np.float64)
        # subnasale sits in a concave corner (its normal points down), and the inner canthus over
        # the eye (no skull kept there): both measured straight back along their own ray
        near = kdt.query(p)[1]
        straight = soft == "sn" or bone in ORBIT_TWINS
        d = -z if straight else inward[near]
        depth, how = np.nan, "its own ray"
        if not straight:  # the cleaned depths of the skin around it, where the skull surface is
            around = kdt.query_ball_point(p, LANDMARK_NEIGHBOURHOOD_MM)
            vals = cleaned[around][np.isfinite(cleaned[around])]
            if vals.size:
                depth, how = float(np.median(vals)), f"the skull surface within {LANDMARK_NEIGHBOURHOOD_MM:g} mm"
        if not np.isfinite(depth):
            depth = bone_depth(profiles(field_, to_index, p[None], d[None]))[0]
        if not np.isfinite(depth):
            meta[bone] = {"source": "missing", "note": f"no bone found under {soft} within {MAX_DEPTH_MM:g} mm"}
            continue
        points[bone] = p + depth * d
        meta[bone] = {"source": "measured", "note": f"{depth:.1f} mm under {soft} along the "
                                                    + ("head's posterior axis" if straight else "skin normal")
                                                    + f" ({how})"}
    return points, meta


def mr_skull(vol: Any, skin: trimesh.Trimesh, head: np.ndarray, face: dict[str, np.ndarray],
             normalised: tuple[np.ndarray, dict] | None = None) -> MrSkull:
    """The outer bone surface of a T1 MRI head, measured inward from its skin.

    Parameters
    ----------
    vol : Volume
        The T1 head (any intensity scale).
    skin : trimesh.Trimesh
        Its outer skin (LPS mm, outward normals), e.g. from `skull2face.geometry.surfaces`.
    head : numpy.ndarray, shape vol.shape, bool
        Inside the skin (`skull2face.geometry.surfaces.skin_mask`).
    face : dict of str to numpy.ndarray
        The skin's landmarks (LPS mm); n, sn and a bilateral pair are needed (head frame).
    normalised : (numpy.ndarray, dict), optional
        `bias_corrected` of the volume, when already computed.

    Returns
    -------
    MrSkull

    Raises
    ------
    InputError
        No bone found under the face.
    """
    t0 = time.perf_counter()
    field_, norm_rec = normalised if normalised is not None else bias_corrected(vol.voxels, head, vol.spacing)
    to_index = np.linalg.inv(vol.index_to_lps)
    inward = _inward_normals(skin, head, to_index)
    v = np.asarray(skin.vertices, dtype=np.float64)
    raw = bone_depth(profiles(field_, to_index, v, inward))
    excluded, zones = no_bone_zones(v, face)
    # a dark fall that is air outside the head (behind an ear, between lips) is not bone
    head_at = profiles(head.astype(np.float32), to_index, v + inward * np.nan_to_num(raw + 1.5)[:, None],
                       inward, depth_mm=0.0)[:, 0]
    outside = np.isfinite(raw) & (head_at < 0.5)
    depth = np.where(excluded | outside, np.nan, raw)
    depth = clean_depths(skin, depth)
    ok = np.isfinite(depth)
    if ok.sum() < 0.05 * len(v):
        raise InputError(vol.source, f"no skull found under the skin of this MRI ({ok.sum()} of {len(v)} skin "
                                     "points over a dark cortical band): is it a T1-weighted head?")
    moved = v + inward * np.nan_to_num(depth)[:, None]
    keep_faces = ok[skin.faces].all(1)
    skull = trimesh.Trimesh(moved, skin.faces[keep_faces], process=False)
    skull.remove_unreferenced_vertices()
    parts = skull.split(only_watertight=False)
    if len(parts) > 1:
        biggest = max(len(p.faces) for p in parts)
        skull = trimesh.util.concatenate([p for p in parts if len(p.faces) >= 0.02 * biggest])
    points, meta = _landmark_depths(field_, to_index, skin, inward, face, depth)
    if points:  # only landmarks on the skull that is kept
        from ..geometry.distances import closest_points

        names = list(points)
        dist, *_ = closest_points(np.array([points[n] for n in names]), skull)
        for n, dd in zip(names, np.atleast_1d(dist)):
            if dd > MAX_OFF_SKULL_MM:
                points.pop(n)
                meta[n] = {"source": "missing", "note": f"{meta[n]['note']}: {dd:.0f} mm from the skull kept "
                                                         f"(more than {MAX_OFF_SKULL_MM:g})"}
    lms = LandmarkSet(points=points, surface="skull", meta=meta)
    d_ok = depth[ok]
    record = {
        "method": "T1 MRI: bone as the first dark fall under the skin (half-step), along skin normals",
        "normalisation": norm_rec,
        "skin_vertices": int(len(v)),
        "bone_found_vertices": int(np.isfinite(raw).sum()),
        "excluded_vertices": zones,
        "dark_outside_head_vertices": int(outside.sum()),
        "kept_vertices": int(ok.sum()),
        "depth_mm": {"median": round(float(np.median(d_ok)), 2), "p5": round(float(np.percentile(d_ok, 5)), 2),
                     "p95": round(float(np.percentile(d_ok, 95)), 2)},
        "landmarks": {k: m["note"] for k, m in meta.items()},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return MrSkull(skull=skull, landmarks=lms, depth_mm=depth, record=record)


MR_TISSUE_SDS = 4.0
"""An MRI head whose measured tissue at glabella or nasion lies further than this many published
SDs from the published mean (Hona & Stephan 2024: 5.5 +- 1.0, 6.0 +- 1.5 mm) was not measured
on its skin and bone (a skin threshold in the noise, a bone band missed): rejected."""


def mr_tissue_implausible(skull_h: Mapping, skin_h: Mapping) -> str | None:
    """Why an MRI head's measured tissue at G and N contradicts the published table, or None."""
    from .tissue import thickness_for

    for bone, soft in (("G", "g'"), ("N", "n")):
        if bone in skull_h and soft in skin_h:
            d = float(np.linalg.norm(np.asarray(skull_h[bone]) - np.asarray(skin_h[soft])))
            t = thickness_for(bone)
            lo, hi = max(0.0, t.mean_mm - MR_TISSUE_SDS * t.sd_mm), t.mean_mm + MR_TISSUE_SDS * t.sd_mm
            if not lo <= d <= hi:
                return (f"MRI tissue implausible: {d:.1f} mm at {bone} (published {t.mean_mm:g} +- {t.sd_mm:g} mm; "
                        f"accepted {lo:.1f}-{hi:.1f}): the skin or the bone was not found")
    return None
