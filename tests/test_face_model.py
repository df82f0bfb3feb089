"""The ICT-FaceKit head model and its fit to a skull, against known answers."""

import dataclasses

import numpy as np
import pytest

from skull2face.anatomy.names import FACE
from skull2face.geometry.frame import apply
from skull2face.methods import registry
from skull2face.samples import data_dir
from skull2face.statistics.face_model import fit_head_model, load_head_model


def _rotation(axis, degrees):
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = np.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * k @ k


def test_bundled_model_is_in_mm_light_and_its_landmarks_are_the_right_anatomy():
    path = data_dir() / "models" / "ict_facekit_head.npz"
    assert path.stat().st_size < 3_000_000
    assert (path.parent / "LICENSE_MIT.txt").read_text(encoding="utf-8").startswith("MIT License")
    m = load_head_model()
    n, k = len(m.neutral), m.modes.shape[0]
    assert m.modes.shape == (k, n, 3) and 30 <= k <= 50
    assert m.faces.min() == 0 and m.faces.max() == n - 1 and m.face_region.sum() == 9409
    assert m.ibug.shape == (68,) and set(m.soft) == set(FACE)
    p = {name: m.neutral[i] for name, i in m.soft.items()}
    # mm: bizygomatic breadth of adult faces is ~130-160 mm; nasion to menton ~110-130 mm
    assert 130.0 < p["zy'_L"][0] - p["zy'_R"][0] < 160.0
    assert 100.0 < p["n"][1] - p["me"][1] < 140.0
    # +x is the subject's left, +y up, +z out of the face
    for name in ("en", "al", "zy'", "go'", "t"):
        assert p[f"{name}_L"][0] > 0 > p[f"{name}_R"][0]
        np.testing.assert_allclose(p[f"{name}_L"], p[f"{name}_R"] * [-1, 1, 1], atol=0.5)  # symmetric
    for name in ("g'", "n", "sn", "pog'", "gn'", "me"):
        assert abs(p[name][0]) < 1.0
    assert p["g'"][1] > p["n"][1] > p["en_L"][1] > p["sn"][1] > p["pog'"][1] > p["gn'"][1] > p["me"][1]
    assert p["sn"][2] > p["n"][2] > p["en_L"][2] > p["zy'_L"][2] > p["t_L"][2]  # nose in front
    # the nose tip is the model's most anterior face vertex, near the midline
    tip = m.neutral[np.argmax(np.where(m.face_region, m.neutral[:, 2], -np.inf))]
    assert abs(tip[0]) < 1.0 and p["sn"][1] < tip[1] < p["n"][1]


def test_fit_recovers_a_known_pose_and_identity_from_its_own_landmarks():
    m = load_head_model()
    # more landmark vertices than the Table 2 ones: the 68 iBUG points too
    soft = {**m.soft, **{f"ibug{i}": int(v) for i, v in enumerate(m.ibug)}}
    model = dataclasses.replace(m, soft=soft)
    rng = np.random.default_rng(7)
    w_true = rng.normal(0.0, 1.0, 10)
    pose = np.eye(4)
    pose[:3, :3] = _rotation([0.3, 1.0, 0.2], 12.0)
    pose[:3, 3] = [5.0, -30.0, 80.0]
    x_true = apply(pose, model.instance(w_true))
    targets = {k: (x_true[i], 0.05) for k, i in soft.items()}  # SD 0.05 mm: the prior hardly pulls
    info = {}
    fitted, w = fit_head_model(model, targets, n_modes=10, info=info)
    angle = np.degrees(np.arccos(np.clip((np.trace(fitted[:3, :3].T @ pose[:3, :3]) - 1) / 2, -1, 1)))
    assert angle < 1.0
    assert np.linalg.norm(fitted[:3, 3] - pose[:3, 3]) < 1.0
    np.testing.assert_allclose(w, w_true, atol=0.05)
    surface = np.linalg.norm(apply(fitted, model.instance(w)) - x_true, axis=1)
    assert np.sqrt(np.mean(surface ** 2)) < 0.1 and surface.max() < 0.5  # mm
    assert max(info["landmark_residual_mm"].values()) < 0.1


def test_fit_needs_three_landmarks():
    m = load_head_model()
    with pytest.raises(ValueError, match="at least 3"):
        fit_head_model(m, {"n": (np.zeros(3), 1.0), "sn": (np.ones(3), 1.0)})


@pytest.mark.parametrize("head", ["headsq", "cranium"])
def test_fitted_face_on_the_real_cts(real_ct_surfaces, head):
    """On both real heads (the default dense term without a prior: filled skull + 6 mm as a lower
    bound): the skin lies in front of the bone, about as far as the true skin; L_A is small;
    the orbits are covered (closed eyes, no holes over them); the fit is fast."""
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.geometry.depthmap import RenderSpec, render
    from skull2face.geometry.frame import head_frame
    from skull2face.geometry.pose import lps_frame

    _, surf = real_ct_surfaces[head]
    lms = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull))
    spec = RenderSpec(size=(128, 128), mm_per_px=2.0, frame=head_frame(lms.points, "skull").matrix,
                      centre=(0.0, -40.0))
    result = registry.run_method("face-model", spec=spec, skull_mesh=surf.skull, skull_landmarks=lms.points)
    face, info = result.face_map, result.record
    # the whole fitted head comes back beside its map, closed (the neck capped): a solid
    assert result.head is not None and result.face_mesh() is result.head
    assert result.head.is_watertight and result.head.is_winding_consistent and result.head.volume > 3e6  # mm^3
    skull = render(surf.skull, spec)
    both = face.mask & skull.mask
    assert both.sum() > 1500 and info["method"] == "face-model" and info["dense"] == "map"
    gap = face.height[both] - skull.height[both]
    # the skin lies in front of the bone seen from the front: all but a sliver (<= 2 % of the
    # pixels, where the model's cheek meets a steep bone edge)
    assert np.mean(gap > 0.0) > 0.98 and np.mean(gap > 2.0) > 0.95, np.percentile(gap, [1, 2, 5])
    # and about as far in front of it as the true skin is (the same pixels)
    truth = render(surf.skin, spec)
    common = both & truth.mask
    true_gap = np.median(truth.height[common] - skull.height[common])
    assert abs(np.median(face.height[common] - skull.height[common]) - true_gap) < 3.0, true_gap
    assert set(info["targets"]) >= {"n", "g'", "sn", "zy'_L", "zy'_R"}
    # L_A on the fit (measured 2026-11-30 on headsq: g' 0.8, n 4.7, gn' 1.8, pog' 9.1, sn 9.5, zy and go 5.9-13.4 mm,
    # where the dense term and the model's shape outweigh the wide published SDs of zy and go)
    res = info["fit"]["landmark_residual_mm"]
    midline = [res[k] for k in ("g'", "n", "sn", "pog'", "gn'") if k in res]
    assert len(midline) >= 3 and max(midline) < 10.0 and max(res.values()) < 15.0, res
    # the orbits are covered: a 24 x 16 mm box around each orbit's centre (between nasion and
    # the zygion, at nasion height - 12 mm) is face, no hole
    n = apply(spec.frame, np.asarray(lms.points["N"])[None])[0]
    for side in (-1.0, 1.0):
        centre = n + np.array([side * 33.0, -12.0, 0.0])
        r, c = spec.head_to_pixel(centre)
        box = face.mask[int(r) - 4:int(r) + 5, int(c) - 6:int(c) + 7]
        assert box.all(), (side, box.mean())
    assert info["time_s"]["fit"] > 0  # its speed: benchmarks/predict_speed.py


def test_fit_recovers_a_face_over_a_pseudo_skull_with_a_known_thickness():
    """A face (a model instance) over a pseudo-skull made by moving it inwards by a known
    thickness field; its own measured thickness prior: the fit finds the face again."""
    import trimesh

    from skull2face.geometry.depthmap import RenderSpec, render
    from skull2face.statistics.skull_fit import fitted_face
    from skull2face.statistics.thickness_prior import build_prior

    m = load_head_model()
    rng = np.random.default_rng(3)
    w_true = rng.normal(0.0, 0.8, 20)
    x = m.instance(w_true)
    face = trimesh.Trimesh(x, m.faces, process=False)
    # the thickness field: the published means (Hona & Stephan 2024) at the paired landmarks,
    # Shepard-interpolated over the head (mm); the pseudo-skull lies that far inside the face
    from skull2face.anatomy.names import BONE_TO_SKIN
    from skull2face.anatomy.tissue import thickness_for
    from skull2face.geometry.interpolate import shepard

    skin_to_bone = {s: b for b, s in BONE_TO_SKIN.items()}
    pairs = {skin_to_bone[s]: vid for s, vid in m.soft.items() if s in skin_to_bone}
    t = shepard(x, x[list(pairs.values())], [thickness_for(b).mean_mm for b in pairs], softening_mm=5.0)
    skull = trimesh.Trimesh(x - t[:, None] * face.vertex_normals, m.faces, process=False)
    lms = {b: skull.vertices[vid] for b, vid in pairs.items()}
    spec = RenderSpec(size=(128, 128), mm_per_px=2.0, centre=(0.0, -40.0))
    truth = render(face, spec)
    skull_map = render(skull, spec)
    prior = build_prior([("self", skull_map.height, truth.height, lms)], spec)
    info = {}
    fit = fitted_face(skull, lms, spec, prior=prior, skull_map=skull_map, info=info)
    assert info["dense"] == "prior"
    # scored over the model's face part (forehead to chin, ear to ear) seen from the front
    keep = m.face_region[m.faces].all(axis=1)
    region = render(trimesh.Trimesh(x, m.faces[keep], process=False), spec).mask & truth.mask & (prior.n_heads > 0)
    assert region.sum() > 4000

    def rmse(fm):
        e = (fm.height - truth.height)[region & fm.mask]
        return float(np.sqrt(np.mean(e ** 2)))

    # Measured 2026-11-30: 4.46 mm with the prior, 6.44 with the 6 mm bound. The prior's
    # target itself is 1.9 mm from the face on average but up to 10 mm off along the rims of
    # what the closing bridges (eyes, nostrils, mouth), and the fit follows those rims: with the
    # exact face as its target the same fit lands 0.7 mm from it.
    assert rmse(fit) < 5.0
    assert rmse(fitted_face(skull, lms, spec, dense="none")) > rmse(fit) + 1.0
    assert rmse(fitted_face(skull, lms, spec, dense="map", skull_map=skull_map)) > rmse(fit) + 1.0


def test_thickness_prior_measures_a_known_offset_and_round_trips(tmp_path):
    """A face 9 mm over a flat-topped cap: the prior is 9 mm where the head covers, the table
    elsewhere; SD floors; save/load and resampling keep it."""
    from skull2face.geometry.depthmap import RenderSpec
    from skull2face.statistics.thickness_prior import MIN_SD_MM, ThicknessPrior, build_prior

    spec = RenderSpec(size=(64, 64), mm_per_px=3.0, centre=(0.0, -40.0))
    x, y = spec.xy_grid()
    r2 = (x / 70.0) ** 2 + ((y + 30.0) / 90.0) ** 2
    skull = np.where(r2 < 1, -70.0 + 60.0 * np.sqrt(np.clip(1 - r2, 0, None)), np.nan)
    face = skull + 9.0
    lms = {"N": np.array([0.0, 0.0, -20.0]), "Pr": np.array([0.0, -60.0, -20.0])}
    prior = build_prior([("cap", skull, face, lms)], spec)
    inner = (r2 < 0.6) & (prior.n_heads > 0)
    assert inner.sum() > 500
    np.testing.assert_allclose(prior.mean_mm[inner], 9.0, atol=0.05)
    assert prior.sd_mm.min() >= MIN_SD_MM and prior.heads == ("cap",)
    assert np.all(prior.n_heads[r2 > 1.3] == 0) and np.isfinite(prior.mean_mm).all()
    prior.save(tmp_path / "p.npz")
    back = ThicknessPrior.load(tmp_path / "p.npz")
    np.testing.assert_array_equal(back.mean_mm, prior.mean_mm)
    half = RenderSpec(size=(32, 32), mm_per_px=6.0, centre=(0.0, -40.0))
    mean, sd, n = back.sample(half)
    assert mean.shape == (32, 32) and abs(float(np.median(mean[n > 0])) - 9.0) < 0.1


def test_thickness_prior_weights_heads_and_pixels():
    """Two caps 4 and 10 mm thick, the second at weight 0.5: the weighted mean is
    (4 + 0.5 * 10) / 1.5 = 6 mm; where the second's weight map is 0, the first alone counts
    (4 mm, one head); all weights 1 gives the plain mean and SD of the unweighted prior."""
    from skull2face.geometry.depthmap import RenderSpec
    from skull2face.statistics.thickness_prior import build_prior

    spec = RenderSpec(size=(64, 64), mm_per_px=3.0, centre=(0.0, -40.0))
    x, y = spec.xy_grid()
    r2 = (x / 70.0) ** 2 + ((y + 30.0) / 90.0) ** 2
    skull = np.where(r2 < 1, -70.0 + 60.0 * np.sqrt(np.clip(1 - r2, 0, None)), np.nan)
    lms = {"N": np.array([0.0, 0.0, -20.0])}
    heads = [("a", skull, skull + 4.0, lms), ("b", skull, skull + 10.0, lms)]
    cut = np.where(y < -50.0, 0.0, 0.5)  # head b's lower face is not trusted
    prior = build_prior(heads, spec, weights=[1.0, cut])
    inner = (r2 < 0.5)
    upper, lower = inner & (y > -35.0), inner & (y < -65.0)
    assert upper.sum() > 100 and lower.sum() > 100
    np.testing.assert_allclose(prior.mean_mm[upper], 6.0, atol=0.05)
    np.testing.assert_allclose(prior.mean_mm[lower], 4.0, atol=0.05)
    assert np.all(prior.n_heads[upper] == 2) and np.all(prior.n_heads[lower] == 1)
    plain, ones = build_prior(heads, spec), build_prior(heads, spec, weights=[1.0, 1.0])
    np.testing.assert_allclose(ones.mean_mm, plain.mean_mm, atol=1e-5)
    np.testing.assert_allclose(plain.mean_mm[inner], 7.0, atol=0.05)
    np.testing.assert_allclose(ones.sd_mm, plain.sd_mm, atol=1e-5)


def test_thickness_prior_is_robust_from_five_heads_on():
    """Five caps 6 mm thick and one 40 mm (a mask shell the gate missed): the weighted median
    is 6 mm where the mean would be 11.7; the spread (1.4826 x MAD) is 0, so the SD is the
    published one alone."""
    from skull2face.geometry.depthmap import RenderSpec
    from skull2face.statistics.thickness_prior import build_prior

    spec = RenderSpec(size=(48, 48), mm_per_px=4.0, centre=(0.0, -40.0))
    x, y = spec.xy_grid()
    r2 = (x / 70.0) ** 2 + ((y + 30.0) / 90.0) ** 2
    skull = np.where(r2 < 1, -70.0 + 60.0 * np.sqrt(np.clip(1 - r2, 0, None)), np.nan)
    lms = {"N": np.array([0.0, 0.0, -20.0])}
    heads = [(f"h{i}", skull, skull + 6.0, lms) for i in range(5)] + [("shell", skull, skull + 40.0, lms)]
    prior = build_prior(heads, spec)
    inner = (r2 < 0.5) & (prior.n_heads == 6)
    assert inner.sum() > 50
    np.testing.assert_allclose(prior.mean_mm[inner], 6.0, atol=0.05)
    table_only = build_prior([], spec)
    assert np.all(prior.sd_mm[inner] <= table_only.sd_mm[inner] + 1.0)


def test_fit_to_an_exact_target_recovers_the_face():
    """Pose and coefficients solved together: with the face itself as the dense target (and
    its landmarks barely weighted), the fit lands about a millimetre from it (measured 1.07 mm
    over the face part; the former alternation of Procrustes and coefficients drifted to ~4.4)."""
    import trimesh

    from skull2face.geometry.depthmap import RenderSpec, render
    from skull2face.statistics.face_model import MapSurface

    m = load_head_model()
    w_true = np.random.default_rng(3).normal(0.0, 0.8, 20)
    x = m.instance(w_true)
    spec = RenderSpec(size=(128, 128), mm_per_px=2.0, centre=(0.0, -40.0))
    truth = render(trimesh.Trimesh(x, m.faces, process=False), spec)
    targets = {k: (x[v], 1e3) for k, v in m.soft.items()}  # SD 1 m: the landmarks hardly pull
    pose, w = fit_head_model(m, targets, MapSurface(truth.height, 1.0, spec, two_sided=True),
                             initial_pose=np.eye(4), iterations=20)
    keep = m.face_region[m.faces].all(axis=1)
    region = render(trimesh.Trimesh(x, m.faces[keep], process=False), spec).mask
    fit = render(trimesh.Trimesh(apply(pose, m.instance(w)), m.faces, process=False), spec)
    e = (fit.height - truth.height)[region & fit.mask]
    assert np.sqrt(np.mean(e ** 2)) < 1.5 and np.linalg.norm(pose[:3, 3]) < 1.0
