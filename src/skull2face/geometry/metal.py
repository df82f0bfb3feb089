"""Dental metal in a head CT: find it, drop the bright streak debris it throws into the bone
mask, and mend the notches and spikes its streaks cut into the skin mask.

Fillings and crowns absorb so much of the beam that the reconstruction throws bright and dark
streaks through the slices that cut the metal (beam hardening and photon starvation: the
streaks lie in the slice plane, radiating from the metal). A bone threshold then takes the
bright streaks for bone (spokes of "bone" in the tongue, lips and in front of the face) and the
skin threshold takes the dark ones for air (notches in the lips and chin).

What is done, in words:

1. **Metal**: voxels above ``METAL_HU`` (2500 HU) inside the head. The slices that hold metal,
   widened by one slice each way, form *slabs* (runs of consecutive slices along the axis
   nearest to superior); repairs happen only in a slab, and only within ``ZONE_MM`` of the metal
   in the slice plane.
2. **Streak evidence and bone**: streaks lie in the slab's slices, but the jaws change slowly
   from slice to slice. So in a slab, bone is plausible only inside the *envelope* of the bone in
   the clean slices just below and above it (their outline projected along the axis, widened by
   ``ENVELOPE_MM``), or where it is metal itself (a filling belongs to its tooth). A slab is
   *streaked* when at least ``STREAK_MIN_MM3`` of bone-dense voxels lie outside that envelope;
   only streaked slabs are repaired, so enamel or a filling that throws no streaks changes
   nothing. In a streaked slab the bone outside the envelope is dropped as debris, and on grids
   fine enough to tell them from bone (``SPOKE_MAX_VOXEL_MM``), so are thin spokes near the metal
   (``SPOKE_MM``) beyond the clean slices' bone itself.
3. **Skin**: in a streaked slab, each slice of the solid head mask near the metal is opened
   (cuts bright-streak spikes narrower than about ``2 * SKIN_MM``) and then closed (fills
   dark-streak notches as narrow), with a disc of radius ``SKIN_MM``.

With no voxel above ``METAL_HU`` nothing is changed. Dental enamel can pass the threshold on
fine grids (measured on the bundled data: cranium_ct0051's teeth reach 2986 HU at 0.96 mm voxels,
headsq's 2902 HU, and neither throws streaks): then no slab is streaked and the record says so.
Left alone: dark streaks that cut holes in the bone, and dents where a dark streak runs along
the skin rather than across it (wider than the disc).

All functions take and return boolean masks of the volume's shape; nothing here reads files.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Metal threshold (HU). Measured on the bundled heads: bone above the teeth stays below it
# (cranium_ct0051: 99.9th percentile 1691 HU, maximum 1931; headsq: 2025 and 2154), tooth enamel
# may pass it (maxima 2986 and 2902 HU, hence the streak test below); the OpenKBP heads with
# visible streaks hold 17-234 voxels above it at 4-5 mm voxels. Scanners that store CT numbers in
# 12 bits clip at 3071 HU (the OpenKBP heads top out at 2976-3095), so the threshold must lie
# below that clip.
METAL_HU = 2500.0
# In-plane radius (mm) around the metal within which repairs happen: the lips, chin, teeth and
# tongue. Streaks cross the whole slice but fade; on the OpenKBP heads with metal the bright
# debris reaches about 50 mm from the fillings (pictures from benchmarks/metal_pictures.py), and
# widening the zone from 60 to 100 mm would drop at most 5 more voxels outside the envelope on
# pt_100, pt_132, pt_114, pt_24 and pt_20 (measured), some of them real bone (the atlas).
ZONE_MM = 60.0
# In-plane radius (mm) around the metal within which thin spokes are dropped even inside the
# envelope's margin (see `_debris`): the teeth and the streaks' roots. Further out, real thin bone
# looks the same as a spoke: measured on OpenKBP pt_114, the spoke rule over the whole zone
# dropped 213 voxels, most of them real rami and skull base.
SPOKE_MM = 20.0
# The spoke rule (an opening with the 3x3 cross: structures under 3 voxels wide) runs only on
# grids whose in-plane voxels are at most this size (mm): on the 4-5 mm grids of the OpenKBP heads
# it removes anything under 12-15 mm wide, jaw bone included (seen on pt_24 and pt_114).
SPOKE_MAX_VOXEL_MM = 2.5
# Margin (mm) around the clean slices' bone outline within which slab bone is kept: covers the
# slant of the jaws, palate and teeth between the reference slices and the slab. Measured: the
# smallest margin that drops no bone of the bundled headsq, whose teeth exceed 2500 HU but throw
# no streaks (4 mm dropped 53 voxels of its palate, 7 mm 2 voxels, 8 mm none).
ENVELOPE_MM = 8.0
# Thickness (mm, at least one slice) of the clean reference slices each side of a slab.
REFERENCE_MM = 5.0
# Least volume (mm^3) of bone-dense voxels outside the envelope that marks a slab as streaked.
# Measured: the bundled headsq has 77 mm^3 there (one small piece of 895 HU below its jaw, which
# the bone filter drops as a speck anyway; its teeth exceed 2500 HU but throw no streaks); the
# OpenKBP heads with dental metal have 460 (pt_20) to 13,000 mm^3 (pt_132).
STREAK_MIN_MM3 = 200.0
# Radius (mm, at least one voxel) of the in-plane disc that cuts spikes and closes notches.
# Measured on the streak phantom of tests/test_metal.py (2 mm voxels): 4 mm left a 3.2 mm spike,
# 6 mm leaves 1.6 mm; larger discs did no better. On 4-5 mm grids it is the 3x3 cross.
SKIN_MM = 6.0


@dataclass
class Metal:
    """Where the metal is, and the part of the volume its streaks may reach.

    Attributes
    ----------
    mask : np.ndarray
        ``(nx, ny, nz)`` bool: voxels above the metal threshold inside the head.
    axis : int
        Index axis of the slices (the one nearest to superior).
    slabs : list of (int, int)
        Runs of slices ``[start, stop)`` along ``axis`` that hold metal (widened by one slice).
    zone : np.ndarray
        ``(nx, ny, nz)`` bool: slab voxels within ``ZONE_MM`` of the metal in the slice plane.
    near : np.ndarray
        ``(nx, ny, nz)`` bool: slab voxels within ``SPOKE_MM`` of the metal in the slice plane.
    streaked : list of bool
        Per slab: bright streaks put at least ``STREAK_MIN_MM3`` of voxels above the bone
        threshold outside the clean slices' bone envelope there (the evidence that the dense
        voxels are metal that throws streaks, not enamel). Only streaked slabs are repaired.
    skipped : list of str
        Why a slab was not tested (no clean slice on both sides: it touches the volume's end).
    voxel_mm3 : float
        Volume of one voxel.
    """

    mask: np.ndarray
    axis: int
    slabs: list[tuple[int, int]]
    zone: np.ndarray
    near: np.ndarray
    streaked: list[bool]
    skipped: list[str]
    voxel_mm3: float


def slice_axis(direction: np.ndarray) -> int:
    """Index axis most nearly parallel to superior (LPS z), given the ``(3, 3)`` direction
    matrix whose columns are the index axes in LPS."""
    return int(np.argmax(np.abs(np.asarray(direction)[2, :])))


def _disc(spacing_2d: tuple[float, float], radius_mm: float) -> np.ndarray:
    """In-plane disc of ``radius_mm`` (at least the 3x3 cross) for voxel sides ``spacing_2d``."""
    ra, rb = (max(int(radius_mm // s), 1) for s in spacing_2d)
    a, b = np.ogrid[-ra:ra + 1, -rb:rb + 1]
    return (a * spacing_2d[0]) ** 2 + (b * spacing_2d[1]) ** 2 <= max(radius_mm, max(spacing_2d)) ** 2 + 1e-9


def _along(axis: int, k0: int, k1: int) -> tuple[slice, ...]:
    sl = [slice(None)] * 3
    sl[axis] = slice(k0, k1)
    return tuple(sl)


def _debris(bone: np.ndarray, metal: "Metal", slab: tuple[int, int], spacing: np.ndarray,
            thin: bool = True) -> np.ndarray | None:
    """Streak debris of one slab, as a mask of the slab's slices; None when a side of the slab
    has no clean slice to compare with.

    Debris is bone of the zone (not metal itself) outside the envelope of the clean slices'
    bone; with ``thin`` (and voxels of at most ``SPOKE_MAX_VOXEL_MM``), also bone near the metal
    (``SPOKE_MM``) in the envelope's margin (beyond the clean slices' bone itself) that an
    in-plane opening with the 3x3 cross removes: spokes one or two voxels wide.
    """
    axis = metal.axis
    k0, k1 = slab
    n = bone.shape[axis]
    plane = [a for a in range(3) if a != axis]
    n_ref = max(int(round(REFERENCE_MM / spacing[axis])), 1)
    refs = [(max(k0 - n_ref, 0), k0), (k1, min(k1 + n_ref, n))]
    if any(r1 <= r0 for r0, r1 in refs):
        return None
    disc = _disc(tuple(spacing[plane]), ENVELOPE_MM)
    footprint = np.logical_or.reduce([bone[_along(axis, r0, r1)].any(axis=axis) for r0, r1 in refs])
    envelope = np.expand_dims(ndimage.binary_dilation(footprint, structure=disc), axis)
    sl = _along(axis, k0, k1)
    outside = ~envelope
    if thin and max(spacing[plane]) <= SPOKE_MAX_VOXEL_MM:
        cross = np.expand_dims(ndimage.generate_binary_structure(2, 1), axis)
        spokes = bone[sl] & ~ndimage.binary_opening(bone[sl], structure=cross)
        outside = outside | (spokes & metal.near[sl] & ~np.expand_dims(footprint, axis))
    return bone[sl] & metal.zone[sl] & outside & ~metal.mask[sl]


def find_metal(voxels: np.ndarray, spacing, direction, inside: np.ndarray, bone_threshold: float,
               metal_hu: float = METAL_HU) -> Metal | None:
    """Metal voxels inside the head, the slabs of slices they throw streaks into, the zone, and
    which slabs show streak debris.

    Parameters
    ----------
    voxels : np.ndarray
        ``(nx, ny, nz)`` CT numbers (HU).
    spacing : sequence of 3 float
        Voxel sides (mm).
    direction : np.ndarray
        ``(3, 3)`` index-to-LPS direction matrix (columns: index axes).
    inside : np.ndarray
        ``(nx, ny, nz)`` bool solid head mask (metal outside it, e.g. in a head holder, is ignored).
    bone_threshold : float
        Bone iso-value (HU): voxels above it outside the envelope are the streak evidence.
    metal_hu : float
        Metal threshold (HU).

    Returns
    -------
    Metal or None
        None when no voxel inside the head is above ``metal_hu``.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    mask = (voxels > metal_hu) & inside
    if not mask.any():
        return None
    axis = slice_axis(direction)
    n = voxels.shape[axis]
    has = mask.any(axis=tuple(a for a in range(3) if a != axis))
    labels, n_runs = ndimage.label(ndimage.binary_dilation(has, iterations=1))
    slabs = []
    for i in range(1, n_runs + 1):
        idx = np.nonzero(labels == i)[0]
        slabs.append((int(idx[0]), min(int(idx[-1]) + 1, n)))
    # in-plane distance to the metal of the whole slab (its projection along the axis)
    plane = [a for a in range(3) if a != axis]
    zone = np.zeros(voxels.shape, dtype=bool)
    near = np.zeros(voxels.shape, dtype=bool)
    for k0, k1 in slabs:
        sl = _along(axis, k0, k1)
        dist = ndimage.distance_transform_edt(~mask[sl].any(axis=axis), sampling=spacing[plane])
        zone[sl] = np.expand_dims(dist <= ZONE_MM, axis)
        near[sl] = np.expand_dims(dist <= SPOKE_MM, axis)
    zone &= inside
    near &= inside
    found = Metal(mask=mask, axis=axis, slabs=slabs, zone=zone, near=near, streaked=[], skipped=[],
                  voxel_mm3=float(np.prod(spacing)))
    bone = (voxels > bone_threshold) & inside
    for slab in slabs:
        d = _debris(bone, found, slab, spacing, thin=False)
        if d is None:
            found.skipped.append(f"slices {slab[0]}-{slab[1] - 1}: no clean slice on both sides (volume's end)")
        found.streaked.append(d is not None and float(d.sum()) * found.voxel_mm3 >= STREAK_MIN_MM3)
    return found


def drop_streak_bone(bone: np.ndarray, metal: Metal, spacing) -> tuple[np.ndarray, int]:
    """Drop the bone of each streaked slab's zone that lies outside the envelope of the clean
    slices just below and above the slab (`ENVELOPE_MM` around their bone), but for metal.

    Parameters
    ----------
    bone : np.ndarray
        ``(nx, ny, nz)`` bool bone mask.
    metal : Metal
        From `find_metal`.
    spacing : sequence of 3 float
        Voxel sides (mm).

    Returns
    -------
    kept : np.ndarray
        ``(nx, ny, nz)`` bool, a subset of ``bone`` (a new array).
    dropped : int
        Voxels dropped as streak debris.
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    kept = bone.copy()
    for slab, streaked in zip(metal.slabs, metal.streaked):
        d = _debris(bone, metal, slab, spacing) if streaked else None
        if d is not None:
            kept[_along(metal.axis, *slab)] &= ~d
    return kept, int(bone.sum() - kept.sum())


def repair_skin(skin: np.ndarray, metal: Metal, spacing) -> tuple[np.ndarray, int, int]:
    """Close dark-streak notches and open bright-streak spikes of the head mask in the zone of
    each streaked slab, slice by slice, with a disc of radius `SKIN_MM`.

    Parameters
    ----------
    skin : np.ndarray
        ``(nx, ny, nz)`` bool solid head mask.
    metal : Metal
        From `find_metal`.
    spacing : sequence of 3 float
        Voxel sides (mm).

    Returns
    -------
    repaired : np.ndarray
        ``(nx, ny, nz)`` bool (a new array); differs from ``skin`` only in streaked slabs,
        within the disc's reach of the zone.
    added, removed : int
        Voxels made tissue (notches filled) and made air (spikes cut).
    """
    spacing = np.asarray(spacing, dtype=np.float64)
    axis = metal.axis
    plane = [a for a in range(3) if a != axis]
    disc = np.expand_dims(_disc(tuple(spacing[plane]), SKIN_MM), axis)
    pad = max(disc.shape) + 1
    repaired = skin.copy()
    for slab, streaked in zip(metal.slabs, metal.streaked):
        if not streaked:
            continue
        sl = _along(axis, *slab)
        part = np.pad(skin[sl], [(0, 0) if a == axis else (pad, pad) for a in range(3)])
        smooth = ndimage.binary_closing(ndimage.binary_opening(part, structure=disc), structure=disc)
        smooth = smooth[tuple(slice(None) if a == axis else slice(pad, -pad) for a in range(3))]
        near = ndimage.binary_dilation(metal.zone[sl], structure=disc)
        repaired[sl] = np.where(near, smooth, skin[sl])
    added = int((repaired & ~skin).sum())
    removed = int((skin & ~repaired).sum())
    return repaired, added, removed


def record(metal: Metal | None) -> dict:
    """The JSON-ready account of what was found (for ``extract.json``); the caller adds what
    was done (`drop_streak_bone`, `repair_skin` counts)."""
    if metal is None:
        return {"found": False, "note": f"no metal found (no voxel above {METAL_HU:g} HU inside the head)"}
    n = int(metal.mask.sum())
    streaked = [[k0, k1] for (k0, k1), s in zip(metal.slabs, metal.streaked) if s]
    return {
        "found": True,
        "threshold_hu": METAL_HU,
        "metal_voxels": n,
        "metal_volume_mm3": round(n * metal.voxel_mm3, 1),
        "slice_axis": metal.axis,
        "slabs": [[k0, k1] for k0, k1 in metal.slabs],
        "streaked_slabs": streaked,
        "slices_affected": int(sum(k1 - k0 for k0, k1 in streaked)),
        "skipped": metal.skipped,
        "note": ("streak debris found: repaired" if streaked else
                 "dense voxels but no streak debris outside the jaws' envelope (enamel?): nothing changed"),
        "streak_min_mm3": STREAK_MIN_MM3,
        "settings_mm": {"zone": ZONE_MM, "spoke": SPOKE_MM, "spoke_max_voxel": SPOKE_MAX_VOXEL_MM,
                        "envelope": ENVELOPE_MM, "reference": REFERENCE_MM, "skin_disc": SKIN_MM},
    }
