"""Synthetic pairs: shape warps (geometry.tps), soft-tissue rescaling (dataset.tissue_rescale)
and their combination (dataset.synthetic).

Known answers: a zero warp is the identity, a thin-plate spline interpolates its control
points and reproduces affine maps, uniform factors on concentric spheres give known radii,
and a large population reproduces the published thickness means/SDs and the craniofacial
dimension SDs the warp was sized from.
"""

import json

import numpy as np
import pytest
import trimesh
from scipy.interpolate import RBFInterpolator

from skull2face.anatomy import names
from skull2face.anatomy.tissue import thickness_for
from skull2face.dataset import synthetic as S
from skull2face.dataset import tissue_rescale as TR
from skull2face.geometry import tps
from skull2face.geometry.frame import apply as frame_apply

# ---- synthetic concentric-sphere head (head frame: +x left, +y up, +z anterior) -----------

# Directions of bony landmarks on a sphere "skull" centred at the origin (not to scale).
_DIRECTIONS = {
    "G": (0.0, 0.45, 1.0), "N": (0.0, 0.25, 1.0), "Ns": (0.0, -0.3, 1.0), "Pr": (0.0, -0.6, 1.0),
    "Pog": (0.0, -0.9, 1.0), "Gn": (0.0, -1.15, 0.85),
    "Zy_L": (1.0, -0.1, 0.5), "Zy_R": (-1.0, -0.1, 0.5),
    "Go_L": (0.8, -0.9, -0.1), "Go_R": (-0.8, -0.9, -0.1),
    "Fmt_L": (0.6, 0.35, 0.8), "Fmt_R": (-0.6, 0.35, 0.8),
    "Da_L": (0.25, 0.2, 1.0), "Da_R": (-0.25, 0.2, 1.0),
}


def _sphere_head(r_bone, r_skin, bone_subdiv=4, skin_subdiv=4):
    """Concentric spheres with radial landmark pairs (skin twins per names.BONE_TO_SKIN)."""
    bone = trimesh.creation.icosphere(subdivisions=bone_subdiv, radius=r_bone)
    skin = trimesh.creation.icosphere(subdivisions=skin_subdiv, radius=r_skin)
    skull_lms, skin_lms = {}, {}
    for name, d in _DIRECTIONS.items():
        u = np.array(d) / np.linalg.norm(d)
        skull_lms[name] = r_bone * u
        if name in names.BONE_TO_SKIN:
            skin_lms[names.BONE_TO_SKIN[name]] = r_skin * u
    return bone, skin, skull_lms, skin_lms


@pytest.fixture(scope="module")
def spheres():
    return _sphere_head(70.0, 80.0)


@pytest.fixture(scope="module")
def thick_spheres():
    # 20 mm of "tissue" everywhere, so every drawn target (up to ~30 mm at gonion) is
    # reachable without the thickness floor or the factor clip getting in the way.
    bone, skin, sk, sf = _sphere_head(60.0, 80.0, bone_subdiv=4, skin_subdiv=5)
    return bone, skin, sk, sf, TR.TissueField(bone, skin)


# ---- a real CT head with landmarks placed by hand -----------------------------------------

def _first_hit(mesh, origin, direction):
    loc, _, _ = mesh.ray.intersects_location([origin], [direction], multiple_hits=False)
    assert len(loc) == 1, "landmark ray missed the mesh"
    return loc[0]


@pytest.fixture(scope="module")
def headsq(real_ct_surfaces):
    """headsq skull/skin (LPS mm) with G, N, Pog on the midline and Zy on both sides.

    Placed by ray casting toward the face (+y_lps is posterior) at heights read off the
    mid-sagittal profile of this CT (bone-to-skin distance ~5-8 mm there).
    """
    _, s = real_ct_surfaces["headsq"]
    skull, skin = s.skull, s.skin
    xm = skull.bounds.mean(axis=0)[0]
    front = min(skull.bounds[0, 1], skin.bounds[0, 1]) - 50.0
    skull_lms, skin_lms = {}, {}
    for name, z in (("G", -18.0), ("N", -30.0), ("Pog", -122.0)):
        skull_lms[name] = _first_hit(skull, [xm, front, z], [0, 1, 0])
        skin_lms[names.BONE_TO_SKIN[name]] = _first_hit(skin, [xm, front, z], [0, 1, 0])
    # Ns stands in as the frame's lower midline point: take it on the bone below the nose.
    skull_lms["Ns"] = _first_hit(skull, [xm, front, -70.0], [0, 1, 0])
    for side, sign in (("L", 1.0), ("R", -1.0)):
        origin = [xm + sign * 150.0, -120.0, -60.0]
        skull_lms[f"Zy_{side}"] = _first_hit(skull, origin, [-sign, 0, 0])
        skin_lms[f"zy'_{side}"] = _first_hit(skin, origin, [-sign, 0, 0])
    return skull, skin, skull_lms, skin_lms, TR.TissueField(skull, skin)


def _head_grid(meshes, n=12):
    lo = np.min([m.bounds[0] for m in meshes], axis=0)
    hi = np.max([m.bounds[1] for m in meshes], axis=0)
    axes = [np.linspace(lo[k], hi[k], n) for k in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


# ============================================================================================
# shape warp
# ============================================================================================

def _control_points(rng, m=30):
    return rng.uniform(-100, 100, size=(m, 3))


def test_zero_amplitude_is_exactly_identity():
    rng = np.random.default_rng(1)
    ctrl = _control_points(rng)
    warp = tps.random_shape_warp(ctrl, rng, amplitude=0.0)
    pts = rng.normal(scale=80, size=(500, 3))
    assert warp.is_identity
    assert np.array_equal(warp.apply(pts), pts)
    assert np.array_equal(warp.jacobian(pts), np.broadcast_to(np.eye(3), (500, 3, 3)))


def test_warp_reproduces_its_control_displacements():
    rng = np.random.default_rng(2)
    ctrl = _control_points(rng)
    disp = rng.normal(scale=3.0, size=ctrl.shape)
    warp = tps.Warp(ctrl, disp)
    assert np.abs(warp.apply(ctrl) - (ctrl + disp)).max() < 1e-6


def test_warp_is_scipys_thin_plate_spline():
    rng = np.random.default_rng(3)
    ctrl = _control_points(rng) + [200.0, -150.0, 40.0]  # far from the origin, like LPS
    disp = rng.normal(scale=3.0, size=ctrl.shape)
    pts = rng.uniform(-120, 120, size=(2000, 3)) + [200.0, -150.0, 40.0]
    ref = RBFInterpolator(ctrl, disp, kernel="thin_plate_spline", degree=1)(pts)
    assert np.abs(tps.Warp(ctrl, disp).displacement(pts) - ref).max() < 1e-6


def test_warp_reproduces_affine_maps_everywhere():
    rng = np.random.default_rng(4)
    ctrl = _control_points(rng)
    a = np.eye(3) + rng.normal(scale=0.05, size=(3, 3))
    t = np.array([1.0, -2.0, 0.5])
    warp = tps.Warp(ctrl, ctrl @ a.T + t - ctrl)
    pts = rng.uniform(-150, 150, size=(1000, 3))
    assert np.abs(warp.apply(pts) - (pts @ a.T + t)).max() < 1e-8
    assert np.abs(warp.jacobian(pts) - a).max() < 1e-9


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(5)
    ctrl = _control_points(rng)
    warp = tps.Warp(ctrl, rng.normal(scale=4.0, size=ctrl.shape))
    pts = np.vstack([rng.uniform(-100, 100, size=(50, 3)), ctrl[:3]])  # incl. control points
    h = 1e-4
    fd = np.stack([(warp.apply(pts + h * e) - warp.apply(pts - h * e)) / (2 * h)
                   for e in np.eye(3)], axis=-1)
    assert np.abs(warp.jacobian(pts) - fd).max() < 1e-6


def test_warp_json_round_trip_is_exact():
    rng = np.random.default_rng(6)
    warp = tps.random_shape_warp(_control_points(rng), rng)
    again = tps.Warp.from_json(json.loads(json.dumps(warp.to_json())))
    pts = rng.normal(scale=80, size=(100, 3))
    assert np.array_equal(again.apply(pts), warp.apply(pts))
    assert again.info == warp.info


def test_warp_rejects_degenerate_control_points():
    with pytest.raises(ValueError, match="coplanar"):
        tps.Warp([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 3, 0]], np.ones((5, 3)))
    with pytest.raises(ValueError, match="coincide"):
        tps.Warp([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]], np.ones((5, 3)))
    with pytest.raises(ValueError, match="amplitude"):
        tps.random_shape_warp(np.eye(4), np.random.default_rng(0), amplitude=-1.0)


def test_warp_never_folds_over_a_real_head(headsq):
    """Jacobian determinant > 0 on a grid over the whole head, 50 draws at amplitude 1."""
    skull, skin, skull_lms, _, _ = headsq
    lms = np.array(list(skull_lms.values()))
    ctrl = np.vstack([lms, tps.anchor_points(np.vstack([skull.vertices, skin.vertices]), seeds=lms)])
    grid = _head_grid([skull, skin])
    rng = np.random.default_rng(7)
    dets, largest = [], []
    for _ in range(50):
        warp = tps.random_shape_warp(ctrl, rng, 1.0)
        dets.append(np.linalg.det(warp.jacobian(grid)).min())
        largest.append(np.linalg.norm(warp.displacement(grid), axis=1).max())
    assert min(dets) > 0.5  # far from folding, not just positive
    assert max(largest) < 30.0  # mm: a few SDs of head size, no wild extrapolation


def test_warp_size_matches_craniofacial_sds():
    """Dimension SDs over 400 draws match Farkas (1994) norms to within their spread.

    Head-frame points (mm): head breadth 150, head length 190, face height (n-gn) 120 and nose
    height (n-sn) 53 mm. Farkas gives SDs of about 5-6, 6-7, 5-7 and 3-4 mm (see warp.py).
    """
    pts = {"eu_L": [75.0, 0.0, -60.0], "eu_R": [-75.0, 0.0, -60.0], "g": [0.0, 15.0, 5.0],
           "op": [0.0, 5.0, -185.0], "n": [0.0, 0.0, 0.0], "gn": [0.0, -120.0, 5.0],
           "sn": [0.0, -53.0, 10.0]}
    lms = np.array(list(pts.values()))
    # an ellipsoidal head surface for the anchors
    rng = np.random.default_rng(8)
    u = rng.normal(size=(4000, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    surface = u * [78.0, 110.0, 100.0] + [0.0, -30.0, -80.0]
    ctrl = np.vstack([lms, tps.anchor_points(surface, seeds=lms)])
    dims = {"breadth": ("eu_L", "eu_R"), "length": ("g", "op"), "face height": ("n", "gn"),
            "nose height": ("n", "sn")}
    idx = {k: i for i, k in enumerate(pts)}
    values = {k: [] for k in dims}
    for _ in range(400):
        moved = tps.random_shape_warp(ctrl, rng, 1.0).apply(lms)
        for k, (a, b) in dims.items():
            values[k].append(np.linalg.norm(moved[idx[a]] - moved[idx[b]]))
    sd = {k: float(np.std(v)) for k, v in values.items()}
    assert 4.0 < sd["breadth"] < 6.5, sd
    assert 5.0 < sd["length"] < 7.5, sd
    assert 4.0 < sd["face height"] < 7.0, sd
    assert 2.5 < sd["nose height"] < 4.0, sd


# ============================================================================================
# soft-tissue rescale
# ============================================================================================

def test_unit_factors_return_the_skin_exactly(spheres, headsq):
    for bone, skin, skull_lms, *_ in (spheres, headsq):
        field = TR.TissueField(bone, skin)
        ones = {k: (p, 1.0) for k, p in skull_lms.items()}
        out = TR.rescale_tissue(bone, skin, ones, build=1.0, field=field)
        assert np.array_equal(out.vertices, skin.vertices)
        assert np.array_equal(out.faces, skin.faces)
        assert np.array_equal(TR.rescale_tissue(bone, skin, {}).vertices, skin.vertices)


def test_uniform_factor_scales_sphere_thickness_exactly(spheres):
    """Bone r=70, skin r=80: factor 1.2 -> skin at r=82, bone distance x1.2 exactly."""
    bone, skin, *_ = spheres
    exact = TR.TissueField(bone, skin, smooth_mm=0.0)
    # A landmark factor of 1.2 everywhere (on every skin vertex's foot point) ...
    feet = {str(i): (c, 1.2) for i, c in enumerate(exact.closest)}
    new = exact.rescale(feet)
    radius = np.linalg.norm(new, axis=1)
    assert np.abs(radius - 82.0).max() < 1e-9
    assert np.abs(exact.bone_distance(new) / exact.thickness - 1.2).max() < 1e-9
    # ... and the same through a global build factor.
    via_build = TR.rescale_tissue(bone, skin, {}, build=1.2, field=exact).vertices
    assert np.abs(np.linalg.norm(via_build, axis=1) - 82.0).max() < 1e-9
    # Default 10 mm smoothing of the thickness vectors shortens them on a curved surface by
    # ~(10/80)^2 / 2: the 2 mm growth falls short by < 0.05 mm.
    smooth = TR.TissueField(bone, skin).rescale({}, build=1.2)
    assert np.abs(np.linalg.norm(smooth, axis=1) - 82.0).max() < 0.05


def test_thickness_floor_on_spheres(spheres):
    bone, skin, *_ = spheres
    exact = TR.TissueField(bone, skin, smooth_mm=0.0)
    # Factor 0.1 (clip lowered so that it reaches the field): 1 mm floor, not 1 mm * 0.1.
    new = exact.rescale({}, build=0.1, clip=(0.01, 2.0))
    assert np.abs(exact.bone_distance(new) - 1.0).max() < 1e-9
    # With the default clip the factor stops at 0.5.
    new = exact.rescale({}, build=0.1)
    assert np.abs(np.linalg.norm(new, axis=1) - 75.0).max() < 1e-9


@pytest.mark.parametrize("factor", [0.1, 0.6, 1.4, 2.0, 5.0])
def test_skin_never_reaches_bone_on_a_real_head(headsq, factor):
    *_, skull_lms, _, field = headsq
    # Different factors at different landmarks, extreme ones included.
    factors = {k: (p, factor if i % 2 else 1.0 / factor) for i, (k, p) in enumerate(skull_lms.items())}
    new = field.rescale(factors, build=1.0, clip=(0.05, 5.0))
    floor = np.minimum(TR.MIN_THICKNESS_MM, field.thickness)
    assert np.all(field.bone_distance(new) >= floor - 1e-9)


def test_rescale_changes_thickness_by_the_factor_on_a_real_head(headsq):
    """Uniform factor 1.2 on headsq: where the skin lies parallel to the bone, +20 %."""
    field = headsq[-1]
    new = field.rescale({}, build=1.2)
    ratio = field.bone_distance(new) / field.thickness
    ok = field.thickness > 3.0
    # Smoothing and concave bone (the orbits) lower it in places, never raise it.
    assert abs(np.median(ratio[ok]) - 1.2) < 0.03
    assert np.percentile(ratio[ok], 99) < 1.2 + 1e-6


def test_factor_field_is_interpolating_and_bounded(spheres):
    bone, skin, skull_lms, _ = spheres
    field = TR.TissueField(bone, skin)
    factors = {"G": (skull_lms["G"], 0.7), "Pog": (skull_lms["Pog"], 1.6), "Zy_L": (skull_lms["Zy_L"], 1.1)}
    at_nodes = TR._idw_factors(np.array([p for p, _ in factors.values()]),
                              np.array([p for p, _ in factors.values()]),
                              np.array([f for _, f in factors.values()]))
    assert np.allclose(at_nodes, [0.7, 1.6, 1.1], rtol=0, atol=1e-12)
    f = field.factors(factors)
    assert f.min() >= 0.7 - 1e-12 and f.max() <= 1.6 + 1e-12
    assert np.allclose(field.factors(factors, build=2.0, clip=(0.5, 2.0)).max(), 2.0)
    # Far from every landmark the factor returns to 1 (the table says nothing there) ...
    far = TR._idw_factors(np.array([[0.0, 0.0, -400.0]]), np.array([p for p, _ in factors.values()]),
                         np.array([f for _, f in factors.values()]))
    assert abs(far[0] - 1.0) < 0.01
    # ... and a wild landmark factor is clipped before it is spread around.
    wild = {"G": (skull_lms["G"], 50.0), "Pog": (skull_lms["Pog"], 1.0)}
    assert field.factors(wild).max() <= TR.FACTOR_CLIP[1]
    assert np.median(field.factors(wild)) < 1.5


def test_build_none_draws_a_build_in_range(spheres):
    bone, skin, *_ = spheres
    field = TR.TissueField(bone, skin, smooth_mm=0.0)
    radii = [np.linalg.norm(TR.rescale_tissue(bone, skin, {}, build=None, field=field,
                                             rng=np.random.default_rng(s)).vertices[0]) for s in range(40)]
    builds = (np.array(radii) - 70.0) / 10.0
    assert builds.min() >= TR.BUILD_RANGE[0] - 1e-9 and builds.max() <= TR.BUILD_RANGE[1] + 1e-9
    assert builds.std() > 0.03
    with pytest.raises(ValueError, match="rng"):
        TR.rescale_tissue(bone, skin, {}, build=None, field=field)


# ============================================================================================
# drawing thickness
# ============================================================================================

def test_draw_thickness_marginals_and_correlations():
    rng = np.random.default_rng(9)
    sites = ["G", "N", "Zy_L", "Zy_R", "Go_L", "Pog"]
    draws = [S.draw_thickness(sites, rng) for _ in range(4000)]
    z = {k: np.array([d["sites"][k]["z"] for d in draws]) for k in sites}
    for k in sites:
        assert abs(z[k].mean()) < 0.06 and abs(z[k].std() - 1.0) < 0.05
    # Shared body build: corr = BUILD_SHARE between different sites;
    # the two sides of one site: BUILD_SHARE + (1 - BUILD_SHARE)(1 - ASYMMETRY_SHARE) ... times
    # sqrt(1 - a) for each side -> (1 - a) * 1 for the site part: corr = 1 - ASYMMETRY_SHARE.
    assert abs(np.corrcoef(z["G"], z["Pog"])[0, 1] - S.BUILD_SHARE) < 0.05
    side_corr = np.corrcoef(z["Zy_L"], z["Zy_R"])[0, 1]
    assert abs(side_corr - (1.0 - S.ASYMMETRY_SHARE)) < 0.03
    g = np.array([d["sites"]["G"]["target_mm"] for d in draws])
    row = thickness_for("G")
    assert abs(g.mean() - row.mean_mm) < 0.05 and abs(g.std() - row.sd_mm) < 0.05
    go = np.array([d["sites"]["Go_L"]["target_mm"] for d in draws])
    assert go.min() >= TR.MIN_THICKNESS_MM  # truncated at the floor (12.5 +- 6 mm reaches 1 mm)


def test_tissue_factors_on_spheres(spheres):
    bone, skin, skull_lms, skin_lms = spheres
    out = S.tissue_factors(skull_lms, skin_lms, np.random.default_rng(10))
    # Only landmarks with a skin twin (no field given); dacryon is excluded.
    assert set(out) == {k for k in skull_lms if k in names.BONE_TO_SKIN}
    draw = S.draw_thickness(out, np.random.default_rng(10))
    for k, (point, factor) in out.items():
        assert np.array_equal(point, skull_lms[k])
        assert factor * 10.0 == pytest.approx(draw["sites"][k]["target_mm"], rel=1e-9)
    # With the field, landmarks without a twin (Pr, Fmt) get the skin point over them.
    field = TR.TissueField(bone, skin, smooth_mm=0.0)
    with_field = S.tissue_factors(skull_lms, skin_lms, np.random.default_rng(10), field=field)
    assert {"Pr", "Fmt_L", "Fmt_R"} <= set(with_field) and "Da_L" not in with_field


# ============================================================================================
# synthetic pairs
# ============================================================================================

def test_sample_pair_identity_is_exact(spheres, headsq):
    for bone, skin, skull_lms, skin_lms, *_ in (spheres, headsq):
        out = S.sample_pair(bone, skin, skull_lms, skin_lms, np.random.default_rng(11),
                            shape_amplitude=0.0, tissue=False)
        skull2, skin2, lms_b, lms_s, params = out
        assert np.array_equal(skull2.vertices, bone.vertices)
        assert np.array_equal(skin2.vertices, skin.vertices)
        assert np.array_equal(skin2.faces, skin.faces)
        assert all(np.array_equal(lms_b[k], skull_lms[k]) for k in skull_lms)
        assert all(np.array_equal(lms_s[k], skin_lms[k]) for k in skin_lms)
        assert params["tissue"] is None


def test_sample_pair_with_unit_tissue_is_exact(spheres):
    bone, skin, skull_lms, skin_lms = spheres
    _, _, _, _, params = S.sample_pair(bone, skin, skull_lms, skin_lms, np.random.default_rng(12),
                                       shape_amplitude=0.0)
    for site in params["tissue"]["sites"].values():
        site["factor"] = 1.0
    params["tissue"]["build"] = 1.0
    _, skin2, _, lms_s, _ = S.replay_pair(bone, skin, skull_lms, skin_lms, params)
    assert np.array_equal(skin2.vertices, skin.vertices)
    assert all(np.array_equal(lms_s[k], skin_lms[k]) for k in skin_lms)


def test_sample_pair_is_reproducible_from_params(headsq):
    skull, skin, skull_lms, skin_lms, field = headsq
    rng = np.random.default_rng(13)
    skull2, skin2, _, lms_s, params = S.sample_pair(skull, skin, skull_lms, skin_lms, rng,
                                                    shape_amplitude=1.0, field=field)
    params = json.loads(json.dumps(params))  # must be JSON-serialisable
    again = S.replay_pair(skull, skin, skull_lms, skin_lms, params, field=field)
    assert np.array_equal(again[0].vertices, skull2.vertices)
    assert np.array_equal(again[1].vertices, skin2.vertices)
    assert all(np.array_equal(again[3][k], lms_s[k]) for k in lms_s)
    # ...and from the seed
    same = S.sample_pair(skull, skin, skull_lms, skin_lms, np.random.default_rng(13),
                         shape_amplitude=1.0, field=field)
    assert np.array_equal(same[1].vertices, skin2.vertices)
    # the sample really changed, by a plausible amount
    moved = np.linalg.norm(skull2.vertices - skull.vertices, axis=1)
    assert 0.5 < np.median(moved) < 15.0


def test_sample_pair_keeps_landmarks_on_their_surfaces(headsq):
    skull, skin, skull_lms, skin_lms, field = headsq
    skull2, skin2, lms_b, lms_s, params = S.sample_pair(
        skull, skin, skull_lms, skin_lms, np.random.default_rng(14), shape_amplitude=1.0, field=field)
    f2 = TR.TissueField(skull2, skin2, smooth_mm=0.0)
    bone_pts = np.array([lms_b[k] for k in skull_lms])
    skin_pts = np.array([lms_s[k] for k in skin_lms])
    assert f2.bone_distance(bone_pts).max() < 0.05
    assert f2.locate(skin_pts).distance.max() < 0.05
    # the skin pairs reached their drawn thickness
    for k, site in params["tissue"]["sites"].items():
        if site["factor"] > TR.FACTOR_CLIP[0] and site["factor"] < TR.FACTOR_CLIP[1]:
            assert site["achieved_mm"] == pytest.approx(site["target_mm"], abs=0.3), k


def test_population_matches_published_thickness(thick_spheres):
    """300 warped + rescaled pairs: per-site bone->skin distance ~ N(mean, SD) of the table.

    Tolerances: sample mean within 4 standard errors (4 SD / sqrt(300) = 0.23 SD) plus the
    shift of the 1 mm truncation; sample SD within 20 %. The factor clip is widened so that
    it never binds on this pair, whose thickness is 20 mm everywhere (on a real head the
    measured thickness is near the published mean, so factors stay near 1).
    """
    bone, skin, skull_lms, skin_lms, field = thick_spheres
    rng = np.random.default_rng(15)
    achieved, targets = {}, {}
    n = 300
    for _ in range(n):
        *_, params = S.sample_pair(bone, skin, skull_lms, skin_lms, rng, shape_amplitude=1.0,
                                   field=field, clip=(0.01, 10.0), n_anchors=12)
        for k, site in params["tissue"]["sites"].items():
            achieved.setdefault(k, []).append(site["achieved_mm"])
            targets.setdefault(k, []).append(site["target_mm"])
    assert "Da_L" not in achieved and {"G", "N", "Go_L", "Zy_R", "Pr", "Fmt_L"} <= set(achieved)
    for k, values in achieved.items():
        a = np.array(values)
        row = thickness_for(k)
        t = np.array(targets[k])
        # Each pair hits its target, except near the 1 mm floor, which holds before the warp
        # (a warp stretching by a few % then leaves ~1.05 mm).
        assert np.all((np.abs(a - t) < 0.05) | (t < 1.5)), k
        assert abs(a.mean() - row.mean_mm) < 4 * row.sd_mm / np.sqrt(n) + 0.1, (k, a.mean(), row)
        assert abs(a.std() / row.sd_mm - 1.0) < 0.2, (k, a.std(), row)


def test_sample_pair_speed_is_numpy_only(thick_spheres):
    """With a cached field a sample is cheap (the real-CT timing is in the report)."""
    import time

    bone, skin, skull_lms, skin_lms, field = thick_spheres
    rng = np.random.default_rng(16)
    start = time.perf_counter()
    for _ in range(10):
        S.sample_pair(bone, skin, skull_lms, skin_lms, rng, field=field)
    assert (time.perf_counter() - start) / 10 < 0.25


def test_sample_pair_warp_axes_follow_the_head_frame(spheres):
    """The scale component acts along head axes, whatever frame the meshes are in."""
    bone, skin, skull_lms, skin_lms = spheres
    # Rotate the whole head (as a CT in LPS would be): +x stays, y_lps = -z_head, z_lps = y_head.
    to_lps = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=float)

    def rot(p):
        return frame_apply(to_lps, p)

    b2 = trimesh.Trimesh(rot(bone.vertices), bone.faces, process=False)
    s2 = trimesh.Trimesh(rot(skin.vertices), skin.faces, process=False)
    a = S.sample_pair(bone, skin, skull_lms, skin_lms, np.random.default_rng(17), tissue=False)
    b = S.sample_pair(b2, s2, {k: rot(v) for k, v in skull_lms.items()},
                      {k: rot(v) for k, v in skin_lms.items()}, np.random.default_rng(17), tissue=False)
    assert np.allclose(rot(a[0].vertices), b[0].vertices, atol=1e-6)
