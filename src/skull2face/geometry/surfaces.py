"""Head volume -> skull and skin surfaces (scipy.ndimage masks, scikit-image marching cubes).

Skin: the **outer** surface only. Threshold, open to cut the head free of the scanner table or
head holder, keep the largest component, then fill everything it encloses (airway, sinuses,
mouth) so that marching cubes sees one solid. Bone: threshold, keep the large components (the
cranium and, when separate, the mandible), drop specks and metal-streak debris, keep only bone
inside the head.

Marching cubes runs on the grey values themselves (masked so that rejected voxels fall below
and filled interior voxels rise above the threshold), so the surface is placed with sub-voxel
accuracy where the scanner's partial-volume blur allows it, instead of on a voxel staircase.
Vertices come out in the volume's LPS millimetre coordinates, so meshes overlay the volume.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import trimesh
from scipy import ndimage
from skimage import measure

from ..errors import InputError
from ..options import check_options, option
from ..io.volumes import Volume
from . import fastmesh, voxelops
from .edges import refine_to_half_step
from . import metal as metal_

log = logging.getLogger(__name__)

# 6-connected cross: opening with it removes bridges thinner than ~2 * iterations voxels.
_CROSS = ndimage.generate_binary_structure(3, 1)
_FULL = ndimage.generate_binary_structure(3, 3)


@dataclass
class SurfaceSettings:
    """Settings of the skin and bone extraction (all thresholds in the volume's units).

    Attributes
    ----------
    skin_threshold, bone_threshold : float or None
        Iso-values. ``None`` means the default for the intensity kind: -300 / 300 HU for CT,
        automatic (see ``intensity``) for ``intensity="raw"``.
    intensity : {"hu", "raw"}
        "hu" checks that the volume looks like Hounsfield units; "raw" accepts any scale
        (uint8 CT exports, MR) and picks thresholds by Otsu unless given.
    opening_voxels : int
        Iterations of the 6-connected opening that separates the head from the table/holder.
    bone_min_fraction, bone_min_mm3 : float
        A bone component is kept if it is at least this fraction of the largest one and at
        least this many mm^3 (the mandible is ~10 % of the cranium; streak debris ~0.1 %).
    skin_only : bool
        Extract the skin alone (MR heads, where bone is not visible).
    smooth_iterations : int
        Taubin smoothing iterations (volume preserving); 0 for none.
    target_faces : int or None
        Decimate each surface to about this many triangles (fast-simplification); None keeps all.
    modality : {"ct", "mr"}
        "mr": a T1 MRI head. The skin is extracted here as for ``intensity="raw"``; the skull,
        the dark cortical band under the skin, by `skull2face.anatomy.mr_skull` (which needs the
        face's landmarks, a layer above this module).
    edges : {"iso", "half-step"}
        "iso" leaves each surface at its iso-value; "half-step" then moves every vertex along
        its normal to the half-step between the levels on either side of its edge
        (`geometry.edges.refine_to_half_step`), which undoes the partial-volume shift of coarse
        scans (2-5 mm voxels).
    metal : {"repair", "off"}
        "repair" finds dental metal (HU only) and drops its streak debris from the bone and
        mends its streaks' notches and spikes in the skin (`geometry.metal`); "off" leaves them.
    """

    skin_threshold: float | None = option(None, help="skin iso-value (default -300 HU)")
    bone_threshold: float | None = option(None, help="bone iso-value (default 300 HU)")
    intensity: str = option("hu", choices=("hu", "raw"),
                            help="'raw' for volumes not in HU (uint8 exports, MR): automatic thresholds unless given")
    opening_voxels: int = option(2, flag="--opening", metavar="VOXELS", minimum=0,
                                 help="opening that cuts the head free of table/holder")
    bone_min_fraction: float = 0.02
    bone_min_mm3: float = 500.0
    skin_only: bool = option(False, help="extract the skin only (MR heads)")
    smooth_iterations: int = option(0, flag="--smooth", metavar="N", minimum=0, help="Taubin smoothing iterations")
    target_faces: int | None = option(None, metavar="N", minimum=4, help="decimate each mesh to about N triangles")
    modality: str = option("ct", choices=("ct", "mr"),
                           help="'mr': a T1 MRI head (skin against the background; skull as the dark cortical "
                                "band under scalp and face, found along rays from the skin)")
    edges: str = option("iso", choices=("iso", "half-step"),
                        help="'half-step': move each surface to the half-step of its edge along the normal "
                             "(undoes the partial-volume shift of coarse scans); 'iso': leave it at the iso-value")
    metal: str = option("repair", choices=("repair", "off"),
                        help="'repair': drop dental-metal streak debris from the bone, cut streak spikes "
                             "and fill streak notches in the skin")

    def __post_init__(self) -> None:
        check_options(self)
        if self.modality == "mr":  # MR intensities are arbitrary; the bone is not a threshold
            self.intensity = "raw"


@dataclass
class Surfaces:
    """Result of `extract_surfaces`: meshes in LPS mm and a JSON-ready record of how."""

    skin: trimesh.Trimesh
    skull: trimesh.Trimesh | None
    record: dict = field(default_factory=dict)
    head_mask: np.ndarray | None = None
    """``(nx, ny, nz)`` bool, inside the skin (`skin_mask`)."""


HU_AIR_BELOW = -500.0
"""A CT in Hounsfield units has air near -1000: its 1st percentile lies below this."""


def _low_percentile(vol: Volume) -> float:
    return float(np.percentile(vol.voxels[::4, ::4, ::4], 1))


def volume_modality(vol: Volume) -> str:
    """"ct" for a volume in Hounsfield units (1st percentile below `HU_AIR_BELOW`), else "mr"
    (arbitrary units with air near 0, as a T1 MRI head)."""
    return "ct" if _low_percentile(vol) <= HU_AIR_BELOW else "mr"


def default_thresholds(vol: Volume, settings: SurfaceSettings) -> tuple[float, float]:
    """Resolve the skin and bone thresholds, checking that a CT really is in HU."""
    skin_t, bone_t = settings.skin_threshold, settings.bone_threshold
    if settings.intensity == "hu":
        low = _low_percentile(vol)
        if low > HU_AIR_BELOW:
            raise InputError(vol.source, f"volume does not look like Hounsfield units (1st percentile {low:.0f}; "
                                         "air should be near -1000 HU): extract it with `skull2face extract "
                                         "--modality mr` if it is a T1 MRI head, or `--intensity raw` (and "
                                         "thresholds if the automatic ones do not suit), then use the skull.ply it writes")
        return (-300.0 if skin_t is None else skin_t), (300.0 if bone_t is None else bone_t)
    if settings.intensity != "raw":
        raise ValueError(f"intensity must be 'hu' or 'raw', not {settings.intensity!r}")
    if skin_t is None or bone_t is None:
        from skimage.filters import threshold_multiotsu, threshold_triangle

        sample = vol.voxels[::2, ::2, ::2].astype(np.float32).ravel()
        # skin: the foot of the background peak (triangle method). Otsu splits background from
        # the brain instead, which on T1 MR drops the darker skin over nose and cheeks.
        try:
            skin_t = float(threshold_triangle(sample)) if skin_t is None else skin_t
            bone_t = float(threshold_multiotsu(sample, classes=3)[1]) if bone_t is None else bone_t
        except ValueError:  # too few grey values for three classes (air, soft tissue, bone)
            raise InputError(vol.source, f"only {np.unique(sample).size} grey value(s) in the volume: too few for "
                                         "automatic thresholds (air, soft tissue, bone); give --skin-threshold and "
                                         "--bone-threshold") from None
    return float(skin_t), float(bone_t)


def _largest_component(mask: np.ndarray, structure=_CROSS) -> tuple[np.ndarray, int]:
    # labelled in slabs on all cores; the same component as ndimage.label + argmax of the sizes
    return voxelops.largest_component(mask, structure)


def _axis_along(vol: Volume, lps_axis: int) -> int:
    """Index axis most nearly parallel to the given LPS axis (0 = L, 1 = P, 2 = S)."""
    return int(np.argmax(np.abs(vol.direction[lps_axis, :])))


def _fill_holes(mask: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Fill what ``mask`` encloses: in 3D, or slice by slice across ``axis``.

    Background components that do not touch the border are holes. Labelling them once is
    much faster than scipy's ``binary_fill_holes`` (iterated dilation) on big volumes, and a
    structure with no links across ``axis`` labels every slice in the same single pass (chunks
    of slices in parallel threads).
    """
    if axis is None:
        return voxelops.fill_holes(mask)
    return voxelops.fill_slice_holes(mask, axis)


def _bbox(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = [np.nonzero(mask.any(axis=tuple(a for a in range(3) if a != ax)))[0] for ax in range(3)]
    return tuple(slice(max(int(i[0]) - margin, 0), min(int(i[-1]) + margin + 1, n))
                 for i, n in zip(idx, mask.shape))


def _isosurface(vol: Volume, field_: np.ndarray, level: float, offset: tuple[int, int, int]) -> trimesh.Trimesh:
    """Marching cubes on a (cropped) field; vertices returned in LPS mm, outward normals."""
    low = min(float(field_.min()), level) - 1.0
    padded = np.pad(field_, 1, constant_values=low)  # closes surfaces cut by the volume's edges
    verts, faces, _, _ = measure.marching_cubes(padded, level=level, allow_degenerate=False)
    ijk = verts - 1.0 + np.asarray(offset, dtype=np.float64)
    # = trimesh.Trimesh(..., process=True), faster (fastmesh: same vertices and faces)
    mesh = fastmesh.processed_mesh(vol.to_lps(ijk), faces[:, ::-1])
    # the index->LPS map may mirror (det(direction) < 0), which flips the winding
    if fastmesh.measures(mesh)[1] < 0 and fastmesh.is_watertight(mesh):
        mesh.invert()
    return mesh


def _finish(mesh: trimesh.Trimesh, settings: SurfaceSettings) -> trimesh.Trimesh:
    if settings.smooth_iterations > 0:
        trimesh.smoothing.filter_taubin(mesh, iterations=settings.smooth_iterations)
    if settings.target_faces and len(mesh.faces) > settings.target_faces:
        import fast_simplification

        reduction = 1.0 - settings.target_faces / len(mesh.faces)
        v, f = fast_simplification.simplify(mesh.vertices, mesh.faces, target_reduction=reduction)
        mesh = trimesh.Trimesh(v, f, process=True)
    return mesh


def _mesh_record(mesh: trimesh.Trimesh) -> dict:
    # mesh.is_watertight, .area, .volume, .bounds and .extents as trimesh computes them,
    # without its extra work (fastmesh)
    watertight = fastmesh.is_watertight(mesh)
    area, volume = fastmesh.measures(mesh)
    box, extents = fastmesh.bounds(mesh)
    return {
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "watertight": watertight,
        "area_mm2": area,
        "volume_mm3": volume if watertight else None,
        "bounds_lps_mm": None if box is None else box.tolist(),
        "extents_mm": None if extents is None else extents.tolist(),
    }


def skin_mask(vol: Volume, threshold: float, opening_voxels: int = 2) -> tuple[np.ndarray, dict]:
    """Solid head mask: tissue above ``threshold``, table removed, interior air filled.

    Returns
    -------
    filled : np.ndarray
        ``(nx, ny, nz)`` bool, True inside the outer skin.
    record : dict
        Voxel counts of the steps, for the JSON record.
    """
    tissue = vol.voxels > threshold
    n_tissue = int(tissue.sum())
    voxel_mm3 = float(np.prod(vol.spacing))
    if n_tissue * voxel_mm3 < 50_000:  # 50 mL: far less than any head
        raise InputError(vol.source, f"no soft tissue at the skin threshold {threshold:g}: only "
                                     f"{n_tissue * voxel_mm3 / 1000:.1f} mL above it (is this a head volume, "
                                     "and in the units the threshold assumes?)")
    opened = voxelops.binary_opening(tissue, _CROSS, opening_voxels) if opening_voxels else tissue
    core, core_n = _largest_component(opened)
    if core_n == 0:  # the opening ate everything: a thin object; fall back to the raw mask
        core, core_n = _largest_component(tissue)
    # the rest works in the head's bounding box: big CTs are mostly air and table
    box = _bbox(core, margin=opening_voxels + 3)
    tissue_c = tissue[box]
    # give back the detail the opening shaved off the head (ears, nose tip) but not the
    # holder, which the opening cut at a thin contact further away than this
    head = tissue_c & voxelops.binary_dilation(core[box], _CROSS, opening_voxels + 1)
    head, head_n = _largest_component(head)
    # fill what the head encloses. Airway, sinuses and ear canals open to the outside through
    # nose, mouth and ears, so a 3D fill misses them; in axial, coronal or sagittal slices they
    # are enclosed. No 3D fill is needed before or after: a 3D hole is a hole in every slice
    # through it (its slice pieces cannot reach a slice edge without it reaching a face), so the
    # first slice fill fills it anyway, and after the last one none is left.
    filled = head
    for lps_axis in (2, 1, 0):
        filled = _fill_holes(filled, axis=_axis_along(vol, lps_axis))
    full = np.zeros(vol.shape, dtype=bool)
    full[box] = filled
    filled = full
    record = {
        "tissue_voxels": n_tissue,
        "head_component_voxels": int(head_n),
        "removed_voxels_outside_head": int(n_tissue - head_n),
        "filled_voxels": int(filled.sum()),
        "head_volume_ml": float(filled.sum() * voxel_mm3 / 1000.0),
    }
    return filled, record


def bone_mask(vol: Volume, threshold: float, inside: np.ndarray | None,
              min_fraction: float = 0.02, min_mm3: float = 500.0) -> tuple[np.ndarray, dict]:
    """Bone above ``threshold``, inside the head, in components large enough to be skull.

    Returns
    -------
    keep : np.ndarray
        ``(nx, ny, nz)`` bool.
    record : dict
        Sizes (mm^3) of the kept and dropped components.
    """
    box = _bbox(inside, margin=3) if inside is not None else (slice(None),) * 3
    bone = vol.voxels[box] > threshold
    if inside is not None:
        bone &= voxelops.binary_dilation(inside[box], _CROSS, 2)
    comps = voxelops.Components(bone, _FULL)  # as ndimage.label, in slabs on all cores
    n = comps.n
    voxel_mm3 = float(np.prod(vol.spacing))
    if n == 0:
        raise InputError(vol.source, f"no bone at the bone threshold {threshold:g} (is this a CT, and in the "
                                     "units the threshold assumes? MR heads need --skin-only)")
    sizes = comps.sizes.astype(np.float64) * voxel_mm3
    sizes[0] = 0
    largest = float(sizes.max())
    if largest < 20_000:  # 20 mL: a cranium holds several hundred
        raise InputError(vol.source, f"no skull at the bone threshold {threshold:g}: the largest bone piece is "
                                     f"{largest / 1000:.1f} mL (expected hundreds of mL)")
    kept_ids = np.nonzero(sizes >= max(min_fraction * largest, min_mm3))[0]
    keep = np.zeros(vol.shape, dtype=bool)
    keep[box] = comps.select(kept_ids)
    dropped = np.sort(sizes[1:][~np.isin(np.arange(1, n + 1), kept_ids)])[::-1]
    record = {
        "components_found": int(n),
        "kept_component_sizes_mm3": sorted((float(sizes[i]) for i in kept_ids), reverse=True),
        "dropped_components": int(dropped.size),
        "dropped_largest_mm3": [float(s) for s in dropped[:5]],
        "dropped_total_mm3": float(dropped.sum()),
    }
    return keep, record


def extract_surfaces(vol: Volume, settings: SurfaceSettings | None = None) -> Surfaces:
    """Extract the outer skin and the skull (cranium + mandible) of a head volume.

    Parameters
    ----------
    vol : Volume
        Head CT in HU (or any scale with ``settings.intensity = "raw"``).
    settings : SurfaceSettings

    Returns
    -------
    Surfaces
        ``skin`` and ``skull`` meshes (vertices float64 LPS mm); ``skull`` is None with
        ``skin_only``. ``record`` holds thresholds, component sizes, counts and timings.

    Raises
    ------
    InputError
        The volume holds no soft tissue or no bone at the thresholds, or is not in HU.
    """
    settings = settings or SurfaceSettings()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    skin_t, bone_t = default_thresholds(vol, settings)
    bone_here = not settings.skin_only and settings.modality == "ct"
    if bone_here and bone_t <= skin_t:
        raise InputError(vol.source, f"bone threshold {bone_t:g} must be above the skin threshold {skin_t:g}")

    filled, skin_rec = skin_mask(vol, skin_t, settings.opening_voxels)
    timings["skin_mask_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    found, metal_rec = None, {"found": False, "note": "metal repair off"}
    if settings.metal == "repair" and settings.intensity == "hu":
        found = metal_.find_metal(vol.voxels, vol.spacing, vol.direction, filled, bone_t)
        metal_rec = metal_.record(found)
        if found is not None:
            filled, added, removed = metal_.repair_skin(filled, found, vol.spacing)
            metal_rec.update(skin_voxels_filled=added, skin_voxels_cut=removed)
    elif settings.metal == "repair":
        metal_rec["note"] = "metal repair needs HU (intensity 'hu')"
    timings["metal_s"] = time.perf_counter() - t

    t = time.perf_counter()
    box = _bbox(filled, margin=2)
    off = tuple(s.start for s in box)
    field_ = vol.voxels[box].astype(np.float32)
    f_in = filled[box]
    # interior air (airway, sinuses) becomes tissue; tissue outside the head (table) becomes air
    field_[f_in & (field_ <= skin_t)] = skin_t + 100.0
    field_[~f_in & (field_ > skin_t)] = skin_t - 100.0
    skin = _finish(_isosurface(vol, field_, skin_t, off), settings)
    timings["skin_surface_s"] = time.perf_counter() - t
    edges_rec: dict = {"method": settings.edges}
    if settings.edges == "half-step":
        t = time.perf_counter()
        skin, edges_rec["skin"] = refine_to_half_step(skin, vol, level_bounds=(None, skin_t))
        timings["skin_edges_s"] = time.perf_counter() - t

    skull, bone_rec = None, None
    if bone_here:
        t = time.perf_counter()
        keep, bone_rec = bone_mask(vol, bone_t, filled, settings.bone_min_fraction, settings.bone_min_mm3)
        timings["bone_mask_s"] = time.perf_counter() - t
        if found is not None:
            t = time.perf_counter()
            keep, dropped = metal_.drop_streak_bone(keep, found, vol.spacing)
            metal_rec.update(bone_voxels_dropped_as_streak_debris=dropped,
                             bone_mm3_dropped=round(dropped * found.voxel_mm3, 1))
            timings["metal_s"] += time.perf_counter() - t
        t = time.perf_counter()
        box = _bbox(keep, margin=2)
        off = tuple(s.start for s in box)
        field_ = vol.voxels[box].astype(np.float32)
        field_[~keep[box] & (field_ > bone_t)] = bone_t - 100.0
        skull = _finish(_isosurface(vol, field_, bone_t, off), settings)
        timings["skull_surface_s"] = time.perf_counter() - t
        if settings.edges == "half-step":
            t = time.perf_counter()
            skull, edges_rec["skull"] = refine_to_half_step(skull, vol, level_bounds=(bone_t, None))
            timings["skull_edges_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    record = {
        "thresholds": {"skin": skin_t, "bone": bone_t if bone_here else None,
                       "intensity": settings.intensity, "modality": settings.modality},
        "skin": {**skin_rec, "mesh": _mesh_record(skin)},
        "skull": None if skull is None else {**bone_rec, "mesh": _mesh_record(skull)},
        "metal": metal_rec,
        "edges": edges_rec,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    return Surfaces(skin=skin, skull=skull, record=record, head_mask=filled)
