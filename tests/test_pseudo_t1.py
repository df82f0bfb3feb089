"""Pseudo-T1 MR heads from CT (`dataset.pseudo_mr`) and the skull comparison by face region
(`evaluation.skull_compare`): known answers on analytic volumes and meshes."""

import numpy as np
import pytest
import trimesh

from skull2face.dataset import pseudo_mr as pm
from skull2face.io.volumes import Volume
from skull2face.phantoms import head_phantom

# bands of the layered phantom (radius from the centre, mm) and their HU
BANDS = [("brain", 0.0, 44.0, 28), ("csf", 44.0, 50.0, 8), ("cortical", 50.0, 55.0, 1000),
         ("diploe", 55.0, 61.0, 500), ("cortical", 61.0, 66.0, 1000), ("muscle", 66.0, 72.0, 40),
         ("fat", 72.0, 78.0, -100)]
# what the default map gives each band (PseudoT1Settings' knots and marrow)
EXPECTED = {"brain": 0.70, "csf": 0.15, "cortical": 0.05, "diploe": 0.70, "muscle": 0.45, "fat": 1.0, "air": 0.0}


def _radius(vol: Volume) -> np.ndarray:
    idx = np.indices(vol.shape, dtype=np.float64).reshape(3, -1).T
    return np.linalg.norm(vol.to_lps(idx), axis=1).reshape(vol.shape)


@pytest.fixture(scope="module")
def layered():
    """A 96^3, 2 mm head: brain, CSF, a skull with diploe, muscle, fat, skin (82 mm), air."""
    vol = head_phantom(shape=(96, 96, 96), spacing=(2.0, 2.0, 2.0), skin_radius=82.0, bone_radii=None)
    r = _radius(vol)
    for _, lo, hi, hu in BANDS:
        vol.voxels[(r >= lo) & (r < hi)] = hu
    return vol, r


def _band(r: np.ndarray, name: str, margin: float = 1.5) -> np.ndarray:
    if name == "air":
        return r > 86.0
    sel = np.zeros(r.shape, dtype=bool)
    for n, lo, hi, _ in BANDS:
        if n == name:
            sel |= (r >= lo + margin) & (r < hi - margin)
    return sel


def test_each_tissue_gets_the_intensity_the_map_says(layered):
    vol, r = layered
    exact = pm.PseudoT1Settings(ct_smooth_mm=0.0)
    out = pm.pseudo_t1(vol, spacing_mm=(2.0, 2.0, 2.0), bias=0.0, noise=0.0, settings=exact)
    assert out.shape == vol.shape and np.allclose(out.origin, vol.origin)  # the same grid
    for name, want in EXPECTED.items():
        got = out.voxels[_band(r, name)]
        assert got.size > 50, name
        assert np.allclose(got, want, atol=1e-5), (name, float(got.min()), float(got.max()))
    rec = out.info["pseudo_t1"]
    assert rec["bias_field_range"] == [1.0, 1.0] and rec["noise_sd"] == 0.0
    # the cranial cavity is the ball inside the skull (radius 50 mm: 524 mL)
    assert rec["cranial_cavity_ml"] == pytest.approx(4 / 3 * np.pi * 50.0 ** 3 / 1000, rel=0.03)


def test_with_noise_the_tissue_means_hold(layered):
    vol, r = layered
    out = pm.pseudo_t1(vol, spacing_mm=(2.0, 2.0, 2.0), seed=3, bias=0.0, noise=0.03)
    sd = 0.03 * pm.PseudoT1Settings().brightest
    for name, want in EXPECTED.items():
        got = out.voxels[_band(r, name, margin=2.0)]
        if name == "air":  # Rician noise on no signal: Rayleigh, mean sd * sqrt(pi / 2)
            assert got.mean() == pytest.approx(sd * np.sqrt(np.pi / 2), rel=0.05)
        else:
            assert got.mean() == pytest.approx(want, abs=0.02), name
            if want > 0.3:
                assert got.std() == pytest.approx(sd, rel=0.15), name


def test_geometry_maps_the_same_physical_points():
    # anisotropic grid with flipped axes (like headsq's), an off-centre blob at a known LPS point
    direction = np.diag([1.0, -1.0, -1.0])
    vol = Volume(voxels=np.zeros((40, 50, 60), dtype=np.float32), spacing=np.array([1.0, 1.5, 0.8]),
                 origin=np.array([-20.0, 30.0, 25.0]), direction=direction)
    point = np.array([6.0, -3.0, 4.0])
    idx = np.indices(vol.shape, dtype=np.float64).reshape(3, -1).T
    d2 = ((vol.to_lps(idx) - point) ** 2).sum(axis=1).reshape(vol.shape)
    blob = np.exp(-d2 / (2 * 3.0 ** 2)).astype(np.float32)
    centre_in = vol.to_lps((np.asarray(vol.shape) - 1) / 2.0)
    for spacing in [(2.0, 2.0, 2.0), (1.0, 1.0, 1.0), (3.0, 2.5, 1.7)]:
        out = pm.resample(vol, blob, spacing)
        assert np.allclose(out.direction, direction) and np.allclose(out.spacing, spacing)
        assert np.allclose(out.to_lps((np.asarray(out.shape) - 1) / 2.0), centre_in)  # box centre kept
        w = out.voxels.ravel().astype(np.float64)
        lps = out.to_lps(np.indices(out.shape, dtype=np.float64).reshape(3, -1).T)
        centroid = (lps * w[:, None]).sum(axis=0) / w.sum()
        assert np.allclose(centroid, point, atol=0.2), (spacing, centroid)


def test_head_centre_stays_at_the_same_lps(layered):
    vol, _ = layered
    out = pm.pseudo_t1(vol, spacing_mm=(3.0, 3.0, 3.0), bias=0.0, noise=0.0)
    # the phantom's head centre is LPS (0, 0, 0): brain there, and in the output grid too
    ijk = np.linalg.solve(out.direction @ np.diag(out.spacing), -out.origin)
    assert np.allclose(out.to_lps(ijk), 0.0)
    assert out.voxels[tuple(np.rint(ijk).astype(int))] == pytest.approx(EXPECTED["brain"], abs=1e-3)


def test_seed_decides_the_noise_and_bias(layered):
    vol, _ = layered
    small = Volume(voxels=vol.voxels, spacing=vol.spacing, origin=vol.origin, direction=vol.direction)
    a = pm.pseudo_t1(small, spacing_mm=(4.0, 4.0, 4.0), seed=7)
    b = pm.pseudo_t1(small, spacing_mm=(4.0, 4.0, 4.0), seed=7)
    c = pm.pseudo_t1(small, spacing_mm=(4.0, 4.0, 4.0), seed=8)
    assert a.voxels.dtype == np.float32
    assert np.array_equal(a.voxels, b.voxels)
    assert not np.allclose(a.voxels, c.voxels)


@pytest.mark.parametrize("bias", [0.0, 0.1, 0.3])
def test_bias_field_is_bounded_by_bias(bias):
    for seed in range(3):
        f = pm.bias_field((20, 24, 28), np.random.default_rng(seed), bias)
        assert f.min() >= 1 / (1 + bias) - 1e-6 and f.max() <= 1 + bias + 1e-6
        assert np.abs(f - 1).max() <= bias + 1e-6
        assert np.abs(np.log(f)).max() == pytest.approx(np.log1p(bias), abs=1e-6)  # reaches it


def test_bias_in_the_image_is_bounded(layered):
    vol, r = layered
    flat = pm.pseudo_t1(vol, spacing_mm=(4.0, 4.0, 4.0), bias=0.0, noise=0.0)
    biased = pm.pseudo_t1(vol, spacing_mm=(4.0, 4.0, 4.0), bias=0.25, noise=0.0, seed=1)
    lit = flat.voxels > 0.1
    ratio = biased.voxels[lit] / flat.voxels[lit]
    assert ratio.min() >= 1 / 1.25 - 1e-5 and ratio.max() <= 1.25 + 1e-5
    assert ratio.max() - ratio.min() > 0.05  # a field, not a constant
    lo, hi = biased.info["pseudo_t1"]["bias_field_range"]
    assert 1 / 1.25 - 1e-6 <= lo <= hi <= 1.25 + 1e-6


def test_settings_refuse_unordered_knots():
    with pytest.raises(ValueError, match="increasing HU"):
        pm.PseudoT1Settings(outside_knots=((0.0, 0.1), (-10.0, 0.2)))
    with pytest.raises(ValueError):
        pm.mr_grid(Volume(np.zeros((4, 4, 4), np.float32), np.ones(3), np.zeros(3), np.eye(3)), (0.0, 1.0, 1.0))


# --- evaluation.skull_compare -------------------------------------------------------------------

def _sphere(radius: float, subdivisions: int, turn: float = 0.0) -> trimesh.Trimesh:
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    if turn:  # another tessellation: the test's vertices are not the truth's, scaled
        m.apply_transform(trimesh.transformations.rotation_matrix(turn, [0.3, 0.5, 0.8]))
    return m


# LPS input -> head frame (+x left, +y up = S, +z anterior = -P), nasion at the sphere's front
_R = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
_FRAME = np.eye(4)
_FRAME[:3, :3] = _R
_FRAME[:3, 3] = -_R @ np.array([0.0, -80.0, 0.0])


def test_concentric_sphere_2mm_larger_is_2mm_off_in_every_region():
    from skull2face.evaluation.region import SUBREGIONS, face_region
    from skull2face.evaluation.skull_compare import skull_distance_by_region

    truth = _sphere(80.0, 5)
    test = _sphere(82.0, 4, turn=0.4)
    region = face_region(truth, None, frame=_FRAME)
    res = skull_distance_by_region(test, truth, region)
    assert res["face"]["mean_mm"] == pytest.approx(2.0, abs=0.02)
    assert res["face"]["p95_mm"] == pytest.approx(2.0, abs=0.03)
    assert res["face"]["vertices"] < len(test.vertices)  # the front only
    for name in SUBREGIONS:
        if res[name]["vertices"]:
            assert res[name]["mean_mm"] == pytest.approx(2.0, abs=0.03), name
    assert res["left_out_on_lids"] == 0


def test_only_the_front_of_the_head_counts():
    from skull2face.evaluation.skull_compare import skull_distance_by_region

    truth = _sphere(80.0, 5)
    test = _sphere(82.0, 4, turn=0.4)
    v = test.vertices.copy()
    back = v[:, 1] > 20.0  # posterior: behind the face region's ear limit
    v[back] *= 90.0 / 82.0
    test = trimesh.Trimesh(v, test.faces, process=False)
    # landmarks give the frame: nasion in front, eye corners and alae beside, subnasale and menton below
    s = 80.0 / np.sqrt(2)
    marks = {"n": [0.0, -80.0, 0.0], "sn": [0.0, -s, -s * 0.9], "me": [0.0, -40.0, -69.0],
             "en_L": [16.0, -78.0, -10.0], "en_R": [-16.0, -78.0, -10.0],
             "al_L": [17.0, -70.0, -40.0], "al_R": [-17.0, -70.0, -40.0]}
    res = skull_distance_by_region(test, truth, marks, surface="face")
    assert res["face"]["mean_mm"] == pytest.approx(2.0, abs=0.02)
    assert res["face"]["max_mm"] < 2.1
    assert "face landmarks" in res["regions"]["from"]
