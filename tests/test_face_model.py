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
    assert (path.parent / "LICENSE_MIT.txt").read_text().startswith("MIT License")
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


def test_fitted_face_on_the_real_ct_lies_outside_the_skull(real_ct_surfaces):
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.geometry.depthmap import RenderSpec, render
    from skull2face.geometry.frame import head_frame
    from skull2face.geometry.pose import lps_frame

    _, surf = real_ct_surfaces["headsq"]
    lms = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull))
    spec = RenderSpec(size=(128, 128), mm_per_px=2.0, frame=head_frame(lms.points, "skull").matrix)
    info = {}
    face = registry.predict_face_map("face-model", spec=spec, skull_mesh=surf.skull, skull_landmarks=lms.points,
                                     info=info)
    skull = render(surf.skull, spec)
    both = face.mask & skull.mask
    assert both.sum() > 1500 and info["method"] == "face-model"
    gap = face.height[both] - skull.height[both]
    # the skin lies in front of the bone seen from the front: all but a sliver (<= 2 % of the
    # pixels, where the model's cheek meets a steep bone edge) by more than 2 mm
    assert np.mean(gap > 0.0) > 0.98 and np.mean(gap > 2.0) > 0.95, np.percentile(gap, [1, 2, 5])
    # and about as far in front of it as the true skin is (the same pixels)
    truth = render(surf.skin, spec)
    common = both & truth.mask
    true_gap = np.median(truth.height[common] - skull.height[common])
    assert abs(np.median(face.height[common] - skull.height[common]) - true_gap) < 3.0, true_gap
    assert set(info["targets"]) >= {"n", "g'", "sn", "zy'_L", "zy'_R"}
    assert info["fit"]["landmark_residual_mm"]["g'"] < 5.0
