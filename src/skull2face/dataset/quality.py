"""The quality gate: is a real head CT fit to be a training pair, and for which face regions?

Coarse clinical heads (radiotherapy CTs: 4-5 mm in-plane, a mask, a bite block, dental metal,
a field of view that cuts the vault) are usable for the slowly varying parts of the face, but
not all of it. Before a head enters a dataset its volume, surfaces and landmarks are measured
(`assess_head`) and a decision is taken (`decide`):

* **used**: every region is trusted;
* **partial**: the head is a pair, but the regions named in ``regions`` (with why) are excluded
  (weight 0 in ``maps/<id>_weight.npz``, `skull2face.dataset.weights`);
* **rejected**: not a pair at all (one line why): the skull head frame cannot be placed, or the
  face is not in view.

Regions (`REGIONS`, kept with the pixel labels in `skull2face.dataset.weights`, which this
module builds on) are the face's sub-regions of `skull2face.evaluation.region.SUBREGIONS` plus
``"vault"`` (the map above the forehead box: ``y > n_y + 40 mm``). Every threshold is a named
constant below with its rationale; measures are in the head frame of the skull (mm; +x left,
+y up, +z anterior, origin nasion) unless named otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ..geometry.metal import METAL_HU
from .weights import FOV_MARGIN_VOXELS, REGIONS, in_view, pixel_labels

# --- thresholds (every one with its rationale) -------------------------------------------------

#: Soft tissue / air boundary, HU: the skin iso-value of the surface extraction
#: (`skull2face.geometry.surfaces`, -300 HU).
SKIN_HU = -300.0
#: "Air" for the shell test: well below any tissue and the partial-volume rim of a 2-3 mm
#: thermoplastic sheet (which reads -600..-100 HU at 4-5 mm voxels), well above air noise.
AIR_HU = -800.0
#: An object (mask sheet, frame, bite block) in front of the face: anything denser than this.
OBJECT_HU = -500.0
# Metal (HU): `METAL_HU`, the one threshold of `skull2face.geometry.metal` (its rationale is
# there); the same 2500 HU cases.csv's grader counted with.
#: Dental metal that streaks the lips and chin: at least this volume (mm^3) above `METAL_HU`.
#: A single filling is ~0.1 cm^3 but its streaks and partial volume at 4-5 mm voxels reach
#: ~1-2 cm^3 above 2500 HU; 2.5 cm^3 (~38 voxels of 4.69 x 4.69 x 3 mm) keeps scattered
#: hot voxels (calcifications, noise, a marker bead) out. Calibrated against cases.csv's metal
#: notes (benchmarks/quality_gate_agreement.py).
METAL_MIN_MM3 = 2500.0
#: In-plane pitch (mm) above which the nose is not trusted: the nasal dorsum is 10-15 mm wide
#: and the alar base ~35 mm (Farkas 1994), so at > 3.5 mm the dorsum spans <= 3-4 voxels and
#: the nose tip is a partial-volume guess (the data notes: "the nose is 3-5 voxels wide").
#: headsq (3.2 mm) stays below it on purpose: its nose is blocky but whole.
COARSE_INPLANE_MM = 3.5
#: Skin area (cm^2) in the volume's topmost axial slice above which the vault counts as cut.
#: An ellipsoidal head (~90 mm half-axes) cut ~2.3 cm below its vertex shows ~118 cm^2; a
#: smaller cap lies above the map's top (maps reach ~88 mm above nasion, the vertex is
#: ~120-130 mm above) and only loses the cap. The value splits cases.csv's eye-grading (cut at
#: >= 120 cm^2 by its own count, not cut at <= 109; this gate measures 113-114 on three of the
#: latter): calibrated there (benchmarks/quality_gate_agreement.py).
VAULT_CUT_CM2 = 118.0
#: A region is excluded whole when less than this fraction of its pixels lies in the field of
#: view: what is left is a sliver along the scan cut. (The part of a region that is out of view
#: is zeroed pixel by pixel in the weight maps anyway, whatever the region's status.)
IN_VIEW_MIN = 1.0 / 3.0
# Field-of-view margin (voxels): `FOV_MARGIN_VOXELS` of `skull2face.dataset.weights`, which the
# weight maps share (its rationale is there).
#: Shell: the fraction of face rays (head-frame +z, in front of the skin) that meet an object
#: (> `OBJECT_HU`) after air (< `AIR_HU`). Most RT heads show a few percent (frame bars,
#: head rest edges seen at the side of the face); a mask shell covering the face shows more.
SHELL_FRACTION = 0.10
#: Rays are followed from this many voxels (largest side) in front of the skin (past its
#: partial-volume rim) to `SHELL_REACH_MM` in front of it.
SHELL_START_VOXELS = 1.5
SHELL_REACH_MM = 60.0
#: Lips held forward: on an adult profile the nose tip stands ~10-20 mm in front of the most
#: anterior lip (the lips lie 2-4 mm behind Ricketts' E-line from the nose tip to the chin);
#: lips level with or in front of the nose tip (midline profile, `mouth_profile`) are held
#: there by a mouthpiece or bite block. (The lips' depth over the bone was tried and is only
#: recorded: on coarse heads the midline bone under the lips is often missing.)
LIP_AHEAD_OF_NOSE_MM = 0.0
#: An open mouth: the midline profile between the lips falls back this far behind the lower of
#: the two lips (closed lips meet at stomion only ~2-4 mm behind them: Farkas 1994 lip
#: profile). 10 mm is two coarse voxels.
STOMION_NOTCH_MM = 10.0
#: Skull landmarks that contradict a human face: nasion to nasospinale (nasal height, adult
#: 50-55 mm, SD ~3-4 mm; Howells 1973) and nasion to gnathion (morphological face height,
#: ~120 +- 7 mm) outside these ranges (about +-5 SD, widened for 4-5 mm voxels) mean the
#: detector latched onto something else, and the head frame would put the face centimetres
#: away from every other head's.
N_NS_MM = (35.0, 75.0)
N_GN_MM = (90.0, 150.0)
#: Face landmarks further than this from their skull twin were put on something else (the mask,
#: a bite block, the nose for nasion): published tissue over N is 6.0 +- 1.5 mm, over Ns
#: 13.5 +- 3.5 mm, over Gn 7.5 +- 2 mm (Hona & Stephan 2024); 25 mm leaves ~3 coarse voxels.
#: Such face landmarks are dropped (the head stays a pair, as one without face landmarks).
SKIN_TWIN_MAX_MM = 25.0
SKIN_TWINS = {"n": "N", "sn": "Ns", "me": "Gn"}
#: The gate's own front maps of skin and skull (head frame): 1.5 mm pixels, 264 mm square,
#: centred 40 mm below nasion like every head map; fine enough for 4-5 mm voxel heads.
GATE_PX_MM = 1.5
GATE_SIZE = 176
#: Half-width (mm) of the midline strip whose median profile the mouth measures read.
MIDLINE_HALF_MM = 5.0

THRESHOLDS = {
    "skin_hu": SKIN_HU, "air_hu": AIR_HU, "object_hu": OBJECT_HU, "metal_hu": METAL_HU,
    "metal_min_mm3": METAL_MIN_MM3, "coarse_inplane_mm": COARSE_INPLANE_MM, "vault_cut_cm2": VAULT_CUT_CM2,
    "in_view_min": IN_VIEW_MIN, "fov_margin_voxels": FOV_MARGIN_VOXELS, "shell_fraction": SHELL_FRACTION,
    "lip_ahead_of_nose_mm": LIP_AHEAD_OF_NOSE_MM, "stomion_notch_mm": STOMION_NOTCH_MM,
    "n_ns_mm": list(N_NS_MM), "n_gn_mm": list(N_GN_MM), "skin_twin_max_mm": SKIN_TWIN_MAX_MM,
}


@dataclass
class HeadQuality:
    """The gate's result for one head.

    Attributes
    ----------
    status : {'used', 'partial', 'rejected'}
    regions : dict of str to dict
        Per name of `REGIONS`: ``{"status": "used" | "excluded", "why": [str, ...]}``.
    reasons : list of str
        One line per finding (the rejection's reason first when rejected).
    measures : dict
        The numbers the decision read (JSON-ready).
    fov : dict or None
        The volume's box in the head frame: ``{"head_to_index": 4x4 list, "shape": [nx, ny,
        nz]}`` (head-frame mm -> fractional voxel index), for the weight maps.
    """

    status: str
    regions: dict = field(default_factory=dict)
    reasons: list = field(default_factory=list)
    measures: dict = field(default_factory=dict)
    fov: dict | None = None

    @property
    def excluded(self) -> list[str]:
        """Names of the excluded regions, in `REGIONS` order."""
        return [r for r in REGIONS if self.regions.get(r, {}).get("status") == "excluded"]

    def to_json(self) -> dict:
        return {"status": self.status, "excluded": self.excluded, "regions": self.regions,
                "reasons": self.reasons, "measures": self.measures, "fov": self.fov,
                "thresholds": THRESHOLDS}


def rejected(reason: str, measures: dict | None = None) -> HeadQuality:
    """A rejected head: every region excluded for ``reason``."""
    return HeadQuality("rejected", {r: {"status": "excluded", "why": [reason]} for r in REGIONS}, [reason],
                       dict(measures or {}))


# --- measures ------------------------------------------------------------------------------------

def index_matrix(vol) -> np.ndarray:
    """Input (LPS mm) -> fractional voxel index (i, j, k), a (4, 4) affine of ``vol``."""
    a = np.asarray(vol.direction, dtype=np.float64) * np.asarray(vol.spacing, dtype=np.float64)[None, :]
    inv = np.linalg.inv(a)
    m = np.eye(4)
    m[:3, :3] = inv
    m[:3, 3] = -inv @ np.asarray(vol.origin, dtype=np.float64)
    return m


def metal_volume(voxels: np.ndarray, spacing, threshold_hu: float = METAL_HU) -> tuple[int, float]:
    """Voxels above ``threshold_hu`` (count, and their volume in mm^3)."""
    n = int(np.count_nonzero(np.asarray(voxels) > threshold_hu))
    return n, n * float(np.prod(spacing))


def dental_metal(vol, frame: np.ndarray, skull_h: Mapping) -> tuple[int, float]:
    """Voxels above `METAL_HU` at the teeth (count, mm^3): in the head frame ``|x| <= 60``,
    ``z >= -90`` (in front of the mandibular rami) and ``Gn_y - 15 <= y <= Ns_y + 15`` (from below
    the chin to above the upper teeth; without Ns / Gn, nasion - 40 and nasion - 140 mm stand
    in for them). Metal elsewhere (a couch, a frame, a marker) does not streak the lips."""
    from ..geometry.frame import apply

    idx = np.argwhere(np.asarray(vol.voxels) > METAL_HU)
    if idx.size == 0:
        return 0, 0.0
    world = apply(np.linalg.inv(index_matrix(vol)), idx.astype(np.float64))
    h = apply(frame, world)
    top = float(skull_h["Ns"][1]) + 15.0 if "Ns" in skull_h else -40.0 + 15.0
    bottom = float(skull_h["Gn"][1]) - 15.0 if "Gn" in skull_h else -140.0 - 15.0
    sel = (np.abs(h[:, 0]) <= 60.0) & (h[:, 2] >= -90.0) & (h[:, 1] <= top) & (h[:, 1] >= bottom)
    n = int(np.count_nonzero(sel))
    return n, round(n * float(np.prod(vol.spacing)), 1)


def top_slice_skin_cm2(vol, up_input: np.ndarray, skin_level: float = SKIN_HU) -> tuple[float, str]:
    """Skin area (cm^2, voxels > ``skin_level``, `SKIN_HU` for a CT) in the volume's slice that
    lies highest along the up direction ``up_input`` (input coordinates; LPS +z for a head), and
    which slice that is."""
    d = np.asarray(vol.direction, dtype=np.float64)
    axis = int(np.argmax(np.abs(d.T @ up_input)))
    top = -1 if float(d[:, axis] @ up_input) > 0 else 0
    sl = np.take(vol.voxels, top, axis=axis)
    area = np.prod([vol.spacing[a] for a in range(3) if a != axis])
    return float(np.count_nonzero(sl > skin_level) * area / 100.0), f"axis {axis}, index {top % vol.shape[axis]}"


def _gate_spec(frame: np.ndarray):
    from ..geometry.depthmap import HEAD_MAP_CENTRE, RenderSpec

    return RenderSpec(size=(GATE_SIZE, GATE_SIZE), mm_per_px=GATE_PX_MM, frame=frame, centre=HEAD_MAP_CENTRE)


def shell_fraction(vol, frame: np.ndarray, skin_height: np.ndarray, spec, rows: tuple[float, float],
                   half_width: float = 50.0) -> tuple[float, int]:
    """Fraction of face rays that meet an object after air in front of the skin.

    For each pixel of the skin map with ``rows[0] <= y <= rows[1]`` and ``|x| <= half_width``,
    the volume is sampled (trilinear) along +z from `SHELL_START_VOXELS` voxels in front of the
    skin to `SHELL_REACH_MM`; the ray counts when a sample below `AIR_HU` is followed by one
    above `OBJECT_HU`. Returns ``(fraction, rays)``.
    """
    from scipy.ndimage import map_coordinates

    x, y = spec.xy_grid()
    sel = np.isfinite(skin_height) & (y >= rows[0]) & (y <= rows[1]) & (np.abs(x) <= half_width)
    if not sel.any():
        return 0.0, 0
    step = float(min(vol.spacing)) / 2.0
    start = SHELL_START_VOXELS * float(max(vol.spacing))
    offs = np.arange(start, SHELL_REACH_MM + step, step)
    zs = skin_height[sel][:, None] + offs[None, :]
    pts = np.stack([np.broadcast_to(x[sel][:, None], zs.shape), np.broadcast_to(y[sel][:, None], zs.shape), zs],
                   axis=-1).reshape(-1, 3)
    to_index = index_matrix(vol) @ np.linalg.inv(frame)
    idx = np.einsum("ij,nj->ni", to_index[:3, :3], pts) + to_index[:3, 3]
    vals = map_coordinates(vol.voxels, idx.T, order=1, mode="constant", cval=-1000.0).reshape(zs.shape)
    air = np.maximum.accumulate(vals < AIR_HU, axis=1)
    hit = np.any(air[:, :-1] & (vals[:, 1:] > OBJECT_HU), axis=1)
    return float(hit.mean()), int(sel.sum())


def _midline(height: np.ndarray, spec) -> tuple[np.ndarray, np.ndarray]:
    """Per map row: head-frame y and the median height over ``|x| <= MIDLINE_HALF_MM`` (NaN
    where the strip is empty)."""
    import warnings

    x, y = spec.xy_grid()
    mid = np.abs(x[0]) <= MIDLINE_HALF_MM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return y[:, 0], np.nanmedian(height[:, mid], axis=1)


def mouth_profile(skin_height: np.ndarray, skull_height: np.ndarray, spec, ns_y: float,
                  gn_y: float | None) -> dict:
    """Midline mouth measures from the front maps (head frame, mm).

    Bands: the nose from ``Ns_y - 5`` to ``Ns_y + 35`` (the nasal tip lies just above
    nasospinale's level); the mouth from ``Gn_y + 15`` (``Ns_y - 45`` without gnathion) to
    ``Ns_y - 8``. Returns ``lip_vs_nose_mm`` (the most anterior lip minus the most anterior
    nose point: about -10..-20 mm on an adult profile, near 0 or above when something holds
    the lips forward), ``lip_tissue_max_mm`` (largest skin-over-bone depth in the mouth band)
    and ``stomion_notch_mm`` (deepest fall of the profile between the lips).
    """
    yy, skin = _midline(skin_height, spec)
    _, bone = _midline(skull_height, spec)
    lo = gn_y + 15.0 if gn_y is not None else ns_y - 45.0
    mouth = (yy >= lo) & (yy <= ns_y - 8.0)
    nose = (yy >= ns_y - 5.0) & (yy <= ns_y + 35.0)
    out: dict = {"mouth_rows_mm": [round(float(lo), 1), round(float(ns_y - 8.0), 1)]}

    def top(sel):
        v = skin[sel]
        return float(np.nanmax(v)) if np.isfinite(v).any() else None

    lip, tip = top(mouth), top(nose)
    out["lip_vs_nose_mm"] = round(lip - tip, 1) if lip is not None and tip is not None else None
    depth = skin[mouth] - bone[mouth]
    out["lip_tissue_max_mm"] = round(float(np.nanmax(depth)), 1) if np.isfinite(depth).any() else None
    z = skin[mouth]
    z = z[np.isfinite(z)]
    notch = 0.0
    if z.size >= 3:
        above = np.maximum.accumulate(z)
        below = np.maximum.accumulate(z[::-1])[::-1]
        notch = float(np.max(np.minimum(above, below) - z))
    out["stomion_notch_mm"] = round(notch, 1)
    return out


def skull_implausible(skull_h: Mapping) -> str | None:
    """Why the skull landmarks contradict a face (`N_NS_MM`, `N_GN_MM`), or None."""
    for other, (lo, hi), what in (("Ns", N_NS_MM, "nasion-nasospinale"), ("Gn", N_GN_MM, "nasion-gnathion")):
        if "N" in skull_h and other in skull_h:
            d = float(np.linalg.norm(np.asarray(skull_h[other]) - np.asarray(skull_h["N"])))
            if not lo <= d <= hi:
                return f"skull landmarks implausible: {what} is {d:.1f} mm (expected {lo:g}-{hi:g})"
    return None


def skin_twin_gaps(skull_h: Mapping, skin_h: Mapping) -> dict:
    """Distance (mm) of each face landmark of `SKIN_TWINS` from its skull twin."""
    return {f: round(float(np.linalg.norm(np.asarray(skin_h[f]) - np.asarray(skull_h[b]))), 1)
            for f, b in SKIN_TWINS.items() if f in skin_h and b in skull_h}


def head_points(frame: np.ndarray, lms: Mapping) -> dict:
    """Finite landmarks of a mapping, moved into the head frame by ``frame``."""
    from ..geometry.frame import apply

    return {k: apply(frame, np.asarray(v, dtype=np.float64)[None])[0] for k, v in lms.items()
            if np.all(np.isfinite(np.asarray(v, dtype=np.float64)))}


def region_landmarks(skull_h: Mapping, skin_h: Mapping | None) -> tuple[dict, list]:
    """Face landmarks (head frame) that place the region boxes: the skin ones when detected,
    else stand-ins from the skull (nasion N for n, nasospinale Ns for sn, gnathion Gn 7 mm
    lower for me: Hona & Stephan 2024 me->me' 7.0 mm; zygion Zy 7.5 mm out for zy'); returns
    the points and the names stood in for."""
    pts = dict(skin_h or {})
    stood = []
    subs = {"n": ("N", np.zeros(3)), "sn": ("Ns", np.zeros(3)), "me": ("Gn", np.array([0.0, -7.0, 0.0])),
            "zy'_L": ("Zy_L", np.array([7.5, 0.0, 0.0])), "zy'_R": ("Zy_R", np.array([-7.5, 0.0, 0.0]))}
    for name, (bone, off) in subs.items():
        if name not in pts and bone in skull_h:
            pts[name] = np.asarray(skull_h[bone], dtype=np.float64) + off
            stood.append(name)
    return pts, stood


def assess_head(vol, skull, skin, skull_lms: Mapping, skin_lms: Mapping | None,
                skin_error: str | None = None, modality: str = "ct") -> HeadQuality:
    """Measure one head and decide (`decide`).

    Parameters
    ----------
    vol : skull2face.io.volumes.Volume
        The CT (HU, LPS mm), or a T1 MRI head with ``modality="mr"``: then the measures in HU
        (metal, a shell in front of the face) are not taken; an MRI of a living volunteer has
        no radiotherapy mask and no bite block, and its metal is a signal void, not streaks.
    skull, skin : trimesh.Trimesh
        Extracted surfaces (input coordinates, mm).
    skull_lms, skin_lms : mapping of str to (3,) mm
        Detected landmarks (input coordinates); ``skin_lms`` may be empty or None.
    skin_error : str or None
        Why skin landmark detection failed, if it did.

    Returns
    -------
    HeadQuality
    """
    from ..geometry.depthmap import render
    from ..geometry.frame import head_frame

    sp = np.asarray(vol.spacing, dtype=np.float64)
    d = np.asarray(vol.direction, dtype=np.float64)
    m: dict = {"spacing_mm": [round(float(s), 3) for s in sp], "shape": list(vol.shape), "modality": modality}
    ct = modality == "ct"
    # the slice axis is the index axis most along the head's up; in-plane = the other two
    try:
        frame = head_frame(skull_lms, "skull").matrix
    except ValueError as exc:
        return rejected(f"the skull head frame cannot be placed from the detected skull landmarks ({exc})", m)
    # "up" is LPS +z (superior; patient-based, whatever the scan's direction), not the detected
    # frame's: the vault and slice measures must not depend on the landmarks
    up_in = np.array([0.0, 0.0, 1.0])
    slice_axis = int(np.argmax(np.abs(d.T @ up_in)))
    m["inplane_mm"] = round(float(max(sp[a] for a in range(3) if a != slice_axis)), 3)
    m["slice_mm"] = round(float(sp[slice_axis]), 3)
    if ct:
        n_metal, mm3 = metal_volume(vol.voxels, sp)
        m["metal_voxels"], m["metal_mm3"] = n_metal, round(mm3, 1)  # anywhere in the volume
    if ct:
        level = SKIN_HU
    else:  # MR: the skin's own level, the foot of the background peak (as the MR skin is extracted)
        from skimage.filters import threshold_triangle

        level = float(threshold_triangle(vol.voxels[::2, ::2, ::2].astype(np.float32).ravel()))
    m["top_slice_skin_cm2"], m["top_slice"] = top_slice_skin_cm2(vol, up_in, level)
    m["top_slice_skin_cm2"] = round(m["top_slice_skin_cm2"], 1)

    head_to_index = index_matrix(vol) @ np.linalg.inv(frame)
    fov = {"head_to_index": np.round(head_to_index, 9).tolist(), "shape": list(vol.shape)}
    # where the volume ends above and below nasion along the head's up axis through nasion
    line = np.array([[0.0, t, 0.0] for t in np.arange(-250.0, 250.5, 0.5)])
    inside = in_view(head_to_index, vol.shape, line, 0.0)
    m["fov_above_n_mm"] = round(float(line[inside, 1].max()), 1) if inside.any() else None
    m["fov_below_n_mm"] = round(float(-line[inside, 1].min()), 1) if inside.any() else None

    spec = _gate_spec(frame)
    skin_map = render(skin, spec).height
    skull_map = render(skull, spec).height
    skull_h = head_points(frame, skull_lms)
    bad = skull_implausible(skull_h)
    if bad:
        m["skull_implausible"] = bad
    if ct:
        m["dental_metal_voxels"], m["dental_metal_mm3"] = dental_metal(vol, frame, skull_h)
    skin_h = head_points(frame, skin_lms or {})
    if not ct:
        from ..anatomy.mr_skull import mr_tissue_implausible

        bad = bad or mr_tissue_implausible(skull_h, skin_h)
        if bad:
            m["skull_implausible"] = bad
    m["skin_twin_gaps_mm"] = gaps = skin_twin_gaps(skull_h, skin_h)
    far = {k: v for k, v in gaps.items() if v > SKIN_TWIN_MAX_MM}
    if far:
        skin_error = skin_error or ("face landmarks far from their skull twins (" + ", ".join(
            f"{k} {v:.0f} mm from {SKIN_TWINS[k]}" for k, v in far.items()) + "): not used")
        m["skin_landmarks_dropped"] = skin_error
        skin_h = {}
    pts, stood = region_landmarks(skull_h, skin_h)
    m["skin_landmarks"] = sorted(skin_h)
    m["skull_landmarks"] = sorted(skull_h)
    m["region_landmarks_from_skull"] = stood
    if skin_error:
        m["skin_landmark_error"] = skin_error

    labels, core = pixel_labels(spec, skin_map, pts, core=True)
    ok = in_view(head_to_index, vol.shape, _pixel_points(spec, skin_map), FOV_MARGIN_VOXELS).reshape(skin_map.shape)
    m["in_view"] = {r: (round(float(ok[core & (labels == k)].mean()), 3) if np.any(core & (labels == k)) else None)
                    for k, r in enumerate(REGIONS)}
    n_y = 0.0
    me_y = pts["me"][1] if "me" in pts else n_y - 120.0
    if ct:
        m["shell_fraction"], m["shell_rays"] = shell_fraction(vol, frame, skin_map, spec, (me_y, n_y + 30.0))
        m["shell_fraction"] = round(m["shell_fraction"], 3)
    if "Ns" in skull_h:
        m["mouth"] = mouth_profile(skin_map, skull_map, spec, float(skull_h["Ns"][1]),
                                   float(skull_h["Gn"][1]) if "Gn" in skull_h else None)
    m["mandible"] = any(k in skull_h for k in ("Gn", "Pog"))
    return decide(m, fov)


def _pixel_points(spec, height: np.ndarray) -> np.ndarray:
    """Head-frame points (H*W, 3) of a map's pixels: the surface where there is one, else the
    median surface height (the test point of an empty pixel)."""
    x, y = spec.xy_grid()
    z = np.where(np.isfinite(height), height, np.nanmedian(height) if np.isfinite(height).any() else 0.0)
    return np.stack([x, y, z], axis=-1).reshape(-1, 3)


def decide(m: dict, fov: dict | None = None) -> HeadQuality:
    """The decision from the measures of `assess_head` (see the module's thresholds).

    Rules, each excluding the regions named, with its reason:

    * field of view: a region with less than `IN_VIEW_MIN` of its pixels in view;
    * vault cut: top-slice skin area over `VAULT_CUT_CM2` -> vault;
    * no mandible (no Gn, no Pog) -> chin, mouth (no bone under the lower lip and chin);
    * coarse in-plane pitch over `COARSE_INPLANE_MM` -> nose, mouth;
    * dental metal at the teeth (`dental_metal`) over `METAL_MIN_MM3` -> mouth, chin (streaks
      run through the teeth's level);
    * mouthpiece / bite block (lips ahead of the nose tip, `LIP_AHEAD_OF_NOSE_MM`) or an open mouth (notch
      over `STOMION_NOTCH_MM`) -> mouth;
    * a shell in front of the face (fraction over `SHELL_FRACTION`) -> nose, mouth (the mask
      presses on the most protruding parts, and where it touches it is taken for skin);
    * skin landmarks not detected -> nose, mouth (their boxes are placed from the skull, and a
      face the detector refuses is mostly one deformed at the lips).

    Rejected when the skull landmarks contradict a face (`skull_implausible`: the head frame
    would be centimetres off), when the nose and orbits are both out of view (the face is not in
    the volume), or when no face region but the cheeks is left.
    """
    why: dict[str, list[str]] = {r: [] for r in REGIONS}
    reasons: list[str] = []

    def exclude(regions, reason):
        reasons.append(reason)
        for r in regions:
            why[r].append(reason)

    iv = m.get("in_view", {})
    out = [r for r in REGIONS if iv.get(r) is not None and iv[r] < IN_VIEW_MIN]
    if out:
        exclude(out, "outside the field of view: " + ", ".join(f"{r} {100 * iv[r]:.0f}% in view" for r in out))
    if m.get("top_slice_skin_cm2", 0.0) > VAULT_CUT_CM2:
        exclude(["vault"], f"vault cut by the field of view (top slice {m['top_slice_skin_cm2']:.0f} cm^2 of skin)")
    if not m.get("mandible", True):
        exclude(["chin", "mouth"], "no mandible in the scan (no gnathion or pogonion)")
    if m.get("inplane_mm", 0.0) > COARSE_INPLANE_MM:
        exclude(["nose", "mouth"], f"coarse in-plane pitch {m['inplane_mm']:.2f} mm (nose and lips only a few voxels "
                                   "wide; a bite block or parted lips cannot be ruled out)")
    if m.get("dental_metal_mm3", 0.0) > METAL_MIN_MM3:
        exclude(["mouth", "chin"], f"dental metal: {m['dental_metal_voxels']} voxels > {METAL_HU:g} HU at the teeth "
                                   f"({m['dental_metal_mm3'] / 1000:.1f} cm^3; streaks at the lips and chin)")
    mouth = m.get("mouth") or {}
    if (mouth.get("lip_vs_nose_mm") or -np.inf) > LIP_AHEAD_OF_NOSE_MM:
        exclude(["mouth"], f"mouthpiece / bite block: the lips stand {mouth['lip_vs_nose_mm']:.0f} mm in front of "
                           "the nose tip")
    if (mouth.get("stomion_notch_mm") or 0.0) > STOMION_NOTCH_MM:
        exclude(["mouth"], f"open mouth: the profile falls {mouth['stomion_notch_mm']:.0f} mm back between the lips")
    if m.get("shell_fraction", 0.0) > SHELL_FRACTION:
        exclude(["nose", "mouth"], f"object in front of the face on {100 * m['shell_fraction']:.0f}% of rays "
                                   "(mask shell / frame)")
    if m.get("skin_landmark_error") or not m.get("skin_landmarks", ["x"]):
        exclude(["nose", "mouth"], "face landmarks not detected ("
                + str(m.get("skin_landmark_error") or "none found") + "); regions placed from the skull")
    regions = {r: {"status": "excluded" if why[r] else "used", "why": sorted(set(why[r]), key=why[r].index)}
               for r in REGIONS}
    if m.get("skull_implausible"):
        return rejected(m["skull_implausible"], m)
    if "nose" in out and "orbits" in out:
        return rejected("the face is not in the field of view (nose and orbits out of view)", m)
    if all(why[r] for r in REGIONS if r not in ("vault", "cheeks")):
        return rejected("no face region left but the cheeks: " + "; ".join(reasons), m)
    status = "partial" if any(why.values()) else "used"
    return HeadQuality(status, regions, reasons, m, fov)
