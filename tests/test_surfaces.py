"""Surface extraction against phantoms with known radii, and on the real bundled CTs."""

import numpy as np
import pytest

from skull2face.errors import InputError
from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
from skull2face.phantoms import head_phantom
from skull2face.io.volumes import Volume


def radii(mesh):
    return np.linalg.norm(mesh.vertices, axis=1)


def test_skin_sphere_anisotropic_radius_within_half_voxel():
    spacing = (1.6, 1.2, 2.5)
    vol = head_phantom(shape=(120, 160, 76), spacing=spacing, skin_radius=80.0, bone_radii=None)
    surf = extract_surfaces(vol, SurfaceSettings(skin_only=True))
    r = radii(surf.skin)
    half_voxel = 0.5 * min(spacing)
    assert np.max(np.abs(r - 80.0)) < half_voxel
    assert surf.skin.is_watertight
    # the volume of the ball, to 1 %
    assert surf.skin.volume == pytest.approx(4 / 3 * np.pi * 80.0 ** 3, rel=0.01)


def test_bone_shell_inside_skin_ball():
    spacing = (2.0, 2.0, 2.5)
    vol = head_phantom(shape=(100, 100, 72), spacing=spacing, skin_radius=80.0, bone_radii=(62.0, 70.0))
    surf = extract_surfaces(vol)
    rb = radii(surf.skull)
    outer = rb > 66.0
    assert np.max(np.abs(rb[outer] - 70.0)) < 0.5 * min(spacing)
    assert np.max(np.abs(rb[~outer] - 62.0)) < 0.5 * min(spacing)
    assert np.max(np.abs(radii(surf.skin) - 80.0)) < 0.5 * min(spacing)
    assert surf.skin.contains(surf.skull.vertices[::50]).all()


def test_table_metal_and_airway_are_handled():
    vol = head_phantom(shape=(100, 100, 72), spacing=(2.0, 2.0, 2.5), cavity_radius=30.0, airway_radius=5.0,
                       table=True, metal_speck=True)
    surf = extract_surfaces(vol)
    # one closed outer skin: no table, no airway or cavity walls inside
    assert len(surf.skin.split(only_watertight=False)) == 1
    assert surf.skin.is_watertight
    assert radii(surf.skin).min() > 80.0 - 2.0  # at most a shallow dimple at the airway mouth
    assert surf.skin.area == pytest.approx(4 * np.pi * 80.0 ** 2, rel=0.02)
    assert surf.record["skin"]["removed_voxels_outside_head"] > 0
    # the metal speck is dropped, the shell kept
    assert surf.record["skull"]["dropped_components"] >= 1
    assert len(surf.record["skull"]["kept_component_sizes_mm3"]) == 1
    assert radii(surf.skull).max() < 70.0 + 1.0


def test_two_bones_are_both_kept():
    """A mandible-like second bone piece must survive next to the cranium."""
    vol = head_phantom(shape=(100, 100, 80), spacing=(2.0, 2.0, 2.5), skin_radius=90.0, bone_radii=(50.0, 58.0))
    lps = vol.to_lps(np.indices(vol.shape).reshape(3, -1).T).reshape(*vol.shape, 3)
    block = (np.abs(lps[..., 0]) < 12) & (np.abs(lps[..., 1]) < 12) & (lps[..., 2] > -80) & (lps[..., 2] < -65)
    v = vol.voxels.copy()
    v[block] = 1000  # a 24 x 24 x 15 mm bone block below the shell, in the soft tissue
    surf = extract_surfaces(Volume(v, vol.spacing, vol.origin, vol.direction, "<phantom>"))
    assert len(surf.record["skull"]["kept_component_sizes_mm3"]) == 2


def test_smoothing_and_decimation():
    vol = head_phantom(shape=(80, 80, 64), spacing=(2.5, 2.5, 3.0), skin_radius=80.0)
    surf = extract_surfaces(vol, SurfaceSettings(smooth_iterations=5, target_faces=5000))
    assert len(surf.skin.faces) <= 5500 and len(surf.skull.faces) <= 5500
    assert np.median(radii(surf.skin)) == pytest.approx(80.0, abs=0.5)


def test_not_hu_error_and_raw_mode():
    vol = head_phantom(shape=(80, 80, 64), spacing=(2.5, 2.5, 3.0))
    raw = Volume(((vol.voxels.astype(np.float32) + 1000.0) / 16).astype(np.int16), vol.spacing, vol.origin,
                 vol.direction, "scan_uint8.nii.gz")
    with pytest.raises(InputError, match="scan_uint8.nii.gz.*Hounsfield"):
        extract_surfaces(raw)
    surf = extract_surfaces(raw, SurfaceSettings(intensity="raw"))
    # the automatic skin level sits at the foot of the background peak, i.e. at the outer end
    # of this phantom's (deliberately wide, 6 mm) partial-volume ramp: between 80 and 86.2 mm
    r = np.median(radii(surf.skin))
    assert 80.0 <= r <= 80.0 + 700.0 / (340.0 / 3.0) + 0.5, r
    # with the threshold given, raw mode is as exact as HU mode (iso -300 HU = 43.75 raw)
    surf = extract_surfaces(raw, SurfaceSettings(intensity="raw", skin_threshold=43.75, bone_threshold=81.25))
    assert np.median(radii(surf.skin)) == pytest.approx(80.0, abs=0.5)
    assert np.max(radii(surf.skull)) == pytest.approx(70.0, abs=0.5)


def test_no_tissue_and_no_bone_errors():
    air = Volume(np.full((40, 40, 40), -1000, np.int16), np.ones(3), np.zeros(3), np.eye(3), "empty.nii.gz")
    with pytest.raises(InputError, match="empty.nii.gz: no soft tissue"):
        extract_surfaces(air)
    boneless = head_phantom(shape=(80, 80, 64), spacing=(2.5, 2.5, 3.0), bone_radii=None)
    boneless.source = "boneless.nii.gz"
    with pytest.raises(InputError, match="boneless.nii.gz: no bone"):
        extract_surfaces(boneless)


@pytest.mark.parametrize("name", ["headsq", "cranium"])
def test_real_ct_skin_encloses_skull_and_measures_like_a_head(real_ct_surfaces, name):
    vol, surf = real_ct_surfaces[name]
    skin, skull = surf.skin, surf.skull
    assert skin.is_watertight
    assert len(skin.split(only_watertight=False)) == 1
    # every sampled skull vertex lies inside the skin
    pts = skull.vertices[:: max(1, len(skull.vertices) // 20000)]
    # where the scan cuts through the head, bone and skin caps share a plane: leave those out
    lo, hi = skin.bounds[:, 2]
    pts = pts[(pts[:, 2] > lo + 2) & (pts[:, 2] < hi - 2)]
    # (headsq: 99.9 %; at 3.2 mm voxels a few teeth and nasal-bone vertices touch mouth and nose air)
    assert skin.contains(pts).mean() > 0.998
    # head breadth (L-R, ears included) and depth (A-P, nose included), mm
    breadth, depth = skin.extents[0], skin.extents[1]
    assert 140 < breadth < 210, breadth
    assert 160 < depth < 240, depth
    # the skull's breadth is a cranium's: 120..160 mm (narrower than the skin)
    assert 120 < skull.extents[0] < min(165, breadth)
    # the face looks toward -y (anterior in LPS): the skin reaches further forward than the bone
    assert skin.bounds[0, 1] < skull.bounds[0, 1] - 3
