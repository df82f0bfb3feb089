"""The fast extraction gives exactly what the plain scipy/trimesh algorithm gave before it.

The reference below is the extraction as it was (commit 44d4030): one ``ndimage`` call per
step, a 3D fill before and after the slice-wise fills, trimesh's own processing and measures.
`extract_surfaces` is run once as it is and once with these reference steps patched in; the
masks, the meshes (vertices and faces) and the records must be equal, bit for bit.
"""

import numpy as np
import pytest
import trimesh
from scipy import ndimage
from skimage import measure

from skull2face import samples
from skull2face.geometry import surfaces
from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
from skull2face.io.volumes import Volume, read_volume
from skull2face.phantoms import head_phantom

_CROSS = ndimage.generate_binary_structure(3, 1)
_FULL = ndimage.generate_binary_structure(3, 3)


# ---- the reference: the extraction before the speed work, unchanged --------------------------

def ref_largest_component(mask, structure=_CROSS):
    labels, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return mask, 0
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes)), int(sizes.max())


def ref_fill_holes(mask, axis=None):
    structure = _CROSS.copy()
    if axis is not None:
        idx = [1, 1, 1]
        for end in (0, 2):
            idx[axis] = end
            structure[tuple(idx)] = False
    labels, _ = ndimage.label(~mask, structure=structure)
    border = np.zeros_like(mask)
    for ax in range(3):
        if ax == axis:
            continue
        sl = [slice(None)] * 3
        for end in (0, -1):
            sl[ax] = end
            border[tuple(sl)] = True
    outside = np.unique(labels[border & (labels > 0)])
    return mask | ~np.isin(labels, outside) & (labels > 0)


def ref_skin_mask(vol, threshold, opening_voxels=2):
    tissue = vol.voxels > threshold
    n_tissue = int(tissue.sum())
    voxel_mm3 = float(np.prod(vol.spacing))
    opened = ndimage.binary_opening(tissue, structure=_CROSS, iterations=opening_voxels) if opening_voxels else tissue
    core, core_n = ref_largest_component(opened)
    if core_n == 0:
        core, core_n = ref_largest_component(tissue)
    box = surfaces._bbox(core, margin=opening_voxels + 3)
    tissue_c = tissue[box]
    head = tissue_c & ndimage.binary_dilation(core[box], structure=_CROSS, iterations=opening_voxels + 1)
    head, head_n = ref_largest_component(head)
    filled = ref_fill_holes(head)
    for lps_axis in (2, 1, 0):
        filled = ref_fill_holes(filled, axis=surfaces._axis_along(vol, lps_axis))
    filled = ref_fill_holes(filled)
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


def ref_bone_mask(vol, threshold, inside, min_fraction=0.02, min_mm3=500.0):
    box = surfaces._bbox(inside, margin=3) if inside is not None else (slice(None),) * 3
    bone = vol.voxels[box] > threshold
    if inside is not None:
        bone &= ndimage.binary_dilation(inside[box], structure=_CROSS, iterations=2)
    labels, n = ndimage.label(bone, structure=_FULL)
    voxel_mm3 = float(np.prod(vol.spacing))
    sizes = np.bincount(labels.ravel()).astype(np.float64) * voxel_mm3
    sizes[0] = 0
    largest = float(sizes.max())
    kept_ids = np.nonzero(sizes >= max(min_fraction * largest, min_mm3))[0]
    keep = np.zeros(vol.shape, dtype=bool)
    keep[box] = np.isin(labels, kept_ids)
    dropped = np.sort(sizes[1:][~np.isin(np.arange(1, n + 1), kept_ids)])[::-1]
    record = {
        "components_found": int(n),
        "kept_component_sizes_mm3": sorted((float(sizes[i]) for i in kept_ids), reverse=True),
        "dropped_components": int(dropped.size),
        "dropped_largest_mm3": [float(s) for s in dropped[:5]],
        "dropped_total_mm3": float(dropped.sum()),
    }
    return keep, record


def ref_isosurface(vol, field_, level, offset):
    low = min(float(field_.min()), level) - 1.0
    padded = np.pad(field_, 1, constant_values=low)
    verts, faces, _, _ = measure.marching_cubes(padded, level=level, allow_degenerate=False)
    ijk = verts - 1.0 + np.asarray(offset, dtype=np.float64)
    mesh = trimesh.Trimesh(vol.to_lps(ijk), faces[:, ::-1], process=True)
    if mesh.is_watertight and mesh.volume < 0:
        mesh.invert()
    return mesh


def ref_mesh_record(mesh):
    return {
        "vertices": int(len(mesh.vertices)),
        "faces": int(len(mesh.faces)),
        "watertight": bool(mesh.is_watertight),
        "area_mm2": float(mesh.area),
        "volume_mm3": float(mesh.volume) if mesh.is_watertight else None,
        "bounds_lps_mm": mesh.bounds.tolist(),
        "extents_mm": mesh.extents.tolist(),
    }


def reference_extract(vol, settings=None):
    """`extract_surfaces` with the reference steps in place of the fast ones."""
    with pytest.MonkeyPatch.context() as mp:
        for name, fn in (("skin_mask", ref_skin_mask), ("bone_mask", ref_bone_mask),
                         ("_isosurface", ref_isosurface), ("_mesh_record", ref_mesh_record)):
            mp.setattr(surfaces, name, fn)
        return extract_surfaces(vol, settings)


# ---- the volumes -------------------------------------------------------------------------------

def _phantom():
    return head_phantom(shape=(110, 120, 90), spacing=(1.8, 1.6, 2.2), cavity_radius=28.0, airway_radius=5.0,
                        table=True, metal_speck=True, stretch=(1.0, 1.15, 1.05))


def _reoriented(vol, direction):
    """The same voxels with another index->LPS direction (mirrored or permuted axes)."""
    return Volume(vol.voxels, vol.spacing, vol.origin, np.asarray(direction, dtype=np.float64), vol.source)


VOLUMES = {
    "headsq": lambda: read_volume(samples.path("headsq")),
    "cranium": lambda: read_volume(samples.path("cranium")),
    "phantom": _phantom,
    # det(direction) < 0: the surfaces come out inverted and are flipped back
    "phantom-mirrored": lambda: _reoriented(_phantom(), np.diag([-1.0, 1.0, 1.0])),
    # axes permuted: the slice-wise fills run across other index axes
    "phantom-permuted": lambda: _reoriented(_phantom(), [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
}


@pytest.fixture(scope="module", params=list(VOLUMES))
def volume(request):
    return request.param, VOLUMES[request.param]()


def test_skin_mask_is_voxel_for_voxel_the_reference(volume):
    _, vol = volume
    for opening in (2, 1, 0):
        fast, fast_rec = surfaces.skin_mask(vol, -300.0, opening)
        ref, ref_rec = ref_skin_mask(vol, -300.0, opening)
        assert fast.dtype == bool and fast.shape == vol.shape
        assert np.array_equal(fast, ref)
        assert fast_rec == ref_rec


def test_fill_holes_along_each_axis_is_the_reference(volume):
    _, vol = volume
    head, _ = ref_skin_mask(vol, -300.0)
    # a mask with holes: the tissue of the head (airways, sinuses, the phantom's cavity)
    mask = head & (vol.voxels > -300.0)
    for axis in (None, 0, 1, 2):
        assert np.array_equal(surfaces._fill_holes(mask, axis), ref_fill_holes(mask, axis))


def test_bone_mask_is_the_reference(volume):
    _, vol = volume
    inside, _ = ref_skin_mask(vol, -300.0)
    fast, fast_rec = surfaces.bone_mask(vol, 300.0, inside)
    ref, ref_rec = ref_bone_mask(vol, 300.0, inside)
    assert np.array_equal(fast, ref)
    assert fast_rec == ref_rec


def test_extracted_meshes_and_records_are_the_reference(volume):
    name, vol = volume
    fast = extract_surfaces(vol)
    ref = reference_extract(vol)
    for part in ("skin", "skull"):
        a, b = getattr(fast, part), getattr(ref, part)
        assert np.array_equal(np.asarray(a.vertices), np.asarray(b.vertices)), (name, part)
        assert np.array_equal(np.asarray(a.faces), np.asarray(b.faces)), (name, part)
    strip = lambda rec: {k: v for k, v in rec.items() if k != "timings"}  # noqa: E731
    assert strip(fast.record) == strip(ref.record)
    if name.startswith("phantom"):
        assert fast.record["skin"]["mesh"]["watertight"] and fast.record["skull"]["mesh"]["watertight"]
        assert fast.record["skin"]["mesh"]["volume_mm3"] > 0
        assert fast.skin.volume == pytest.approx(fast.record["skin"]["mesh"]["volume_mm3"], rel=1e-12)


def test_smoothed_and_decimated_meshes_are_the_reference():
    vol = head_phantom(shape=(70, 70, 60), spacing=(3.0, 3.0, 3.2), cavity_radius=25.0, airway_radius=6.0)
    settings = SurfaceSettings(smooth_iterations=3, target_faces=4000)
    fast, ref = extract_surfaces(vol, settings), reference_extract(vol, settings)
    for part in ("skin", "skull"):
        assert np.array_equal(np.asarray(getattr(fast, part).vertices), np.asarray(getattr(ref, part).vertices))
        assert np.array_equal(np.asarray(getattr(fast, part).faces), np.asarray(getattr(ref, part).faces))
    assert {k: v for k, v in fast.record.items() if k != "timings"} == \
        {k: v for k, v in ref.record.items() if k != "timings"}
