"""Known-answer tests for the head frame and rigid fitting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from skull2face.geometry.frame import (
    HeadFrame,
    apply,
    as_rigid,
    frame_from_axes,
    head_frame,
    invert_rigid,
    rigid_fit,
)


def random_rigid(rng: np.random.Generator, shift_mm: float = 100.0) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    t = np.eye(4)
    t[:3, :3] = q
    t[:3, 3] = rng.uniform(-shift_mm, shift_mm, 3)
    return t


# A plausible skull in head coordinates (mm): nasion at the origin, +x left, +y up, +z front.
SKULL_HEAD = {
    "N": (0.0, 0.0, 0.0), "G": (0.0, 12.0, 3.0), "Ns": (0.0, -50.0, -4.0),
    "Pr": (0.0, -68.0, -2.0), "Pog": (0.0, -105.0, -6.0), "Gn": (0.0, -115.0, -12.0),
    "Zy_R": (-66.0, -28.0, -72.0), "Zy_L": (66.0, -28.0, -72.0),
    "Fmt_R": (-48.0, 4.0, -14.0), "Fmt_L": (48.0, 4.0, -14.0),
    "Da_R": (-11.0, -6.0, -9.0), "Da_L": (11.0, -6.0, -9.0),
    "Go_R": (-48.0, -95.0, -78.0), "Go_L": (48.0, -95.0, -78.0),
}
FACE_HEAD = {
    "n": (0.0, 0.0, 0.0), "g'": (0.0, 14.0, 4.0), "sn": (0.0, -52.0, 14.0),
    "pog'": (0.0, -108.0, 6.0), "gn'": (0.0, -118.0, -2.0), "me": (0.0, -124.0, -10.0),
    "en_R": (-16.0, -4.0, -12.0), "en_L": (16.0, -4.0, -12.0),
    "al_R": (-17.0, -45.0, 2.0), "al_L": (17.0, -45.0, 2.0),
    "t_R": (-72.0, -30.0, -92.0), "t_L": (72.0, -30.0, -92.0),
    "zy'_R": (-68.0, -26.0, -60.0), "zy'_L": (68.0, -26.0, -60.0),
    "go'_R": (-55.0, -98.0, -80.0), "go'_L": (55.0, -98.0, -80.0),
}

# Head -> LPS for a subject lying straight in the scanner (x_lps = x, y_lps = -z, z_lps = y),
# with nasion at an arbitrary scanner position.
HEAD_TO_LPS = np.array([[1.0, 0, 0, 3.0], [0, 0, -1, -95.0], [0, 1, 0, 40.0], [0, 0, 0, 1]])


def moved(points: dict, t: np.ndarray) -> dict:
    return {k: apply(t, np.asarray(v)) for k, v in points.items()}


def test_rigid_fit_recovers_known_motion():
    rng = np.random.default_rng(0)
    for _ in range(5):
        t = random_rigid(rng)
        src = rng.normal(scale=60.0, size=(20, 3))
        fit = rigid_fit(src, apply(t, src))
        np.testing.assert_allclose(fit, t, atol=1e-6)


def test_rigid_fit_weights_ignore_outliers():
    rng = np.random.default_rng(1)
    t = random_rigid(rng)
    src = rng.normal(scale=60.0, size=(12, 3))
    dst = apply(t, src)
    dst[:3] += rng.normal(scale=30.0, size=(3, 3))  # corrupted, weight 0
    w = np.r_[np.zeros(3), np.ones(9)]
    np.testing.assert_allclose(rigid_fit(src, dst, weights=w), t, atol=1e-6)


def test_rigid_fit_never_mirrors_or_scales():
    rng = np.random.default_rng(2)
    src = rng.normal(scale=50.0, size=(15, 3))
    mirrored = src * [-1.0, 1.0, 1.0]
    fit = rigid_fit(src, 2.0 * mirrored)
    r = fit[:3, :3]
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_rigid_fit_rejects_degenerate_input():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="collinear"):
        rigid_fit(line, line)
    with pytest.raises(ValueError, match="at least 3"):
        rigid_fit(np.eye(3)[:2], np.eye(3)[:2])
    with pytest.raises(ValueError, match="same shape"):
        rigid_fit(np.zeros((4, 3)), np.zeros((5, 3)))


def test_frame_from_axes_lps_convention():
    origin = np.array([3.0, -95.0, 40.0])
    m = frame_from_axes(origin, [2.0, 0.0, 0.0], [0.3, 0.0, 5.0])  # up not yet orthogonal
    np.testing.assert_allclose(m[:3, :3], [[1, 0, 0], [0, 0, 1], [0, -1, 0]], atol=1e-12)
    np.testing.assert_allclose(apply(m, origin), 0.0, atol=1e-12)
    # a point 10 mm anterior (-y in LPS) of the origin is at head z = +10
    np.testing.assert_allclose(apply(m, origin + [0, -10, 0]), [0, 0, 10], atol=1e-12)
    with pytest.raises(ValueError, match="parallel"):
        frame_from_axes(origin, [1, 0, 0], [2, 0, 0])
    with pytest.raises(ValueError, match="zero"):
        frame_from_axes(origin, [0, 0, 0], [0, 0, 1])


@pytest.mark.parametrize("surface,points", [("skull", SKULL_HEAD), ("face", FACE_HEAD)])
def test_head_frame_of_lps_landmarks(surface, points):
    lps = moved(points, HEAD_TO_LPS)
    hf = head_frame(lps, surface)
    # axes: x along x_lps exactly (symmetric pairs); y and z tilt about x because the
    # lower->upper midline direction is not vertical (face: sn is 12 mm in front of n/g',
    # an 11.5 degree tilt)
    np.testing.assert_allclose(hf.matrix[0, :3], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(hf.matrix[1:3, :3], [[0, 0, 1], [0, -1, 0]], atol=0.21)
    lower_mid = {"skull": ("Pr", "Ns"), "face": ("sn",)}[surface]
    upper_mid = {"skull": ("N", "G"), "face": ("n", "g'")}[surface]
    up = np.mean([points[k] for k in upper_mid], axis=0) - np.mean([points[k] for k in lower_mid], axis=0)
    np.testing.assert_allclose(hf.matrix[1, :3], HEAD_TO_LPS[:3, :3] @ (up / np.linalg.norm(up)), atol=1e-12)
    nasion = "N" if surface == "skull" else "n"
    np.testing.assert_allclose(hf.to_head(lps[nasion]), 0.0, atol=1e-9)
    head = {k: hf.to_head(v) for k, v in lps.items()}
    for k, v in head.items():
        if k.endswith("_L"):
            assert v[0] > 0 and head[k[:-2] + "_R"][0] < 0
            assert v[0] == pytest.approx(-head[k[:-2] + "_R"][0])
    upper, lower = ("G", "Pr") if surface == "skull" else ("g'", "sn")
    assert head[upper][1] > head[lower][1]
    behind = "Go_L" if surface == "skull" else "t_L"
    assert head[behind][2] < -50.0
    np.testing.assert_allclose(hf.to_input(hf.to_head(lps[behind])), lps[behind], atol=1e-9)
    np.testing.assert_allclose(hf.matrix @ hf.inverse, np.eye(4), atol=1e-12)


def test_head_frame_origin_projected_onto_midsagittal_plane():
    pts = dict(SKULL_HEAD)
    pts["N"] = (2.0, 0.0, 0.0)  # nasion 2 mm off the plane the other landmarks define
    hf = head_frame(pts, "skull")
    # the plane passes through the mean of 6 midline points and 4 pair midpoints: x = 0.2
    np.testing.assert_allclose(hf.to_head(pts["N"]), [1.8, 0, 0], atol=1e-9)
    assert hf.to_head(pts["G"])[0] == pytest.approx(-0.2, abs=1e-9)


@pytest.mark.parametrize("surface,points", [("skull", SKULL_HEAD), ("face", FACE_HEAD)])
def test_head_frame_follows_rigid_motion(surface, points):
    rng = np.random.default_rng(3)
    noisy = {k: np.asarray(v) + rng.normal(scale=2.0, size=3) for k, v in points.items()}
    frame1 = head_frame(noisy, surface).matrix
    t = random_rigid(rng)
    frame2 = head_frame(moved(noisy, t), surface).matrix
    np.testing.assert_allclose(frame2, frame1 @ invert_rigid(t), atol=1e-6)


def test_head_frame_with_minimal_landmarks():
    pts = {k: SKULL_HEAD[k] for k in ("N", "Ns", "Go_R", "Go_L")}
    hf = head_frame(pts, "skull")
    np.testing.assert_allclose(hf.matrix[0, :3], [1, 0, 0], atol=1e-12)
    assert set(hf.landmarks) == set(pts)


def test_head_frame_missing_landmarks_named():
    with pytest.raises(ValueError) as err:
        head_frame({"G": (0, 10, 0), "Zy_R": (-60, 0, -70)}, "skull")
    msg = str(err.value)
    assert "bilateral pair" in msg and "'N'" in msg and "Pr" in msg and "Ns" in msg
    # NaN counts as absent
    pts = dict(FACE_HEAD, sn=(np.nan, np.nan, np.nan))
    with pytest.raises(ValueError, match="lower midline landmark"):
        head_frame(pts, "face")
    with pytest.raises(ValueError, match="surface"):
        head_frame(SKULL_HEAD, "mandible")


def test_head_frame_rejects_swapped_sides_and_flat_midline():
    swapped = {k.replace("_R", "_X").replace("_L", "_R").replace("_X", "_L"): v for k, v in SKULL_HEAD.items()}
    with pytest.raises(ValueError, match="swapped"):
        head_frame(swapped, "skull")
    # lower and upper midline points differ only along the left-right axis
    flat = {"N": (0.0, 0.0, 0.0), "Ns": (5.0, 0.0, 0.0), "Go_R": (-48, -95, -78), "Go_L": (48, -95, -78)}
    with pytest.raises(ValueError, match="left-right line"):
        head_frame(flat, "skull")


def test_head_frame_json_round_trip():
    hf = head_frame(moved(SKULL_HEAD, HEAD_TO_LPS), "skull")
    back = HeadFrame.from_json(json.loads(json.dumps(hf.to_json())))
    np.testing.assert_array_equal(back.matrix, hf.matrix)
    np.testing.assert_array_equal(back.inverse, hf.inverse)
    assert back.surface == "skull" and back.landmarks == hf.landmarks


def test_as_rigid_rejects_scale_and_mirror():
    with pytest.raises(ValueError, match="rigid"):
        as_rigid(np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="rigid"):
        as_rigid(np.diag([-1.0, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="shape"):
        as_rigid(np.eye(3))


def test_landmark_names_match_the_anatomy_tables():
    from skull2face.anatomy import names
    from skull2face.geometry import frame

    for surface, table in (("skull", names.SKULL), ("face", names.FACE)):
        wanted = {f"{s}_{side}" for s in frame.BILATERAL[surface] for side in "RL"}
        wanted |= {*frame.MIDLINE[surface], *frame.LOWER[surface], *frame.UPPER[surface],
                   frame.NASION[surface]}
        assert wanted <= set(table), wanted - set(table)
