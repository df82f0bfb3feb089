"""The skull2face correction of the fitted head (methods/correction.py, methods/cgan.py,
stages/export.py): known answers on analytic shapes and hand-made folds."""

import json

import numpy as np
import pytest
import trimesh

from skull2face.errors import InputError
from skull2face.geometry.depthmap import DepthMap, RenderSpec, render
from skull2face.methods import correction as corr
from skull2face.methods.cgan import TrainedModel, gains_of
from skull2face.stages.export import calibration_of, read_folds


def _sphere_head(r=80.0):
    """A closed sphere 'head' in input coordinates = head frame (identity frame), centre at z = 0."""
    return trimesh.creation.icosphere(subdivisions=4, radius=r)


def _spec(size=64, mm=4.0):
    return RenderSpec(size=(size, size), mm_per_px=mm, frame=np.eye(4), z_near=-150.0, z_far=150.0, centre=(0.0, 0.0))


def test_taper_is_one_inside_and_falls_to_zero_at_the_silhouette_and_on_grazing_slopes():
    spec = _spec(size=100, mm=1.0)
    h = np.full((100, 100), 10.0, np.float32)
    h[:, :20] = np.nan  # a flat plate facing the view, with a straight left edge
    fit = DepthMap(h, np.isfinite(h), spec)
    t = corr.taper(fit)
    assert t[50, 50] == pytest.approx(1.0)
    assert t[50, 10] == 0.0  # off the map's surface
    # EDGE_BAND_MM = 10 mm at 1 mm/px: linear from the edge (pixel 20 is 1 px inside)
    assert t[50, 20 + 4] == pytest.approx(5.0 / corr.EDGE_BAND_MM)
    # the map's own border is an edge too
    assert t[0, 50] == pytest.approx(1.0 / corr.EDGE_BAND_MM)
    # a slope of 60 degrees (cos 0.5) keeps (0.5 - 0.35) / (0.6 - 0.35) = 0.6 of it
    x = np.arange(100, dtype=np.float32)
    steep = DepthMap(np.tile(x * np.tan(np.radians(60.0)), (100, 1)).astype(np.float32), np.ones((100, 100), bool), spec)
    assert corr.taper(steep)[50, 50] == pytest.approx(0.6, abs=1e-3)


def test_displace_head_moves_only_what_the_front_sees_and_keeps_the_mesh():
    head = _sphere_head()
    spec = _spec()
    fit = render(head, spec)
    delta = np.full(spec.size, -2.0)  # 2 mm inward along the view axis everywhere
    moved = corr.displace_head(head, fit, delta)
    assert np.array_equal(moved.faces, head.faces) and moved.is_watertight
    v0, v1 = head.vertices, moved.vertices
    np.testing.assert_allclose(v1[:, :2], v0[:, :2])  # only along the view axis
    dz = v1[:, 2] - v0[:, 2]
    front = v0[:, 2] > 40.0  # the cap facing the view (z is the view axis)
    back = v0[:, 2] < 0.0
    np.testing.assert_allclose(dz[front], -2.0, atol=1e-6)
    assert np.all(dz[back] == 0.0)  # not seen: the back of the head stays where the fit put it
    assert np.all((dz >= -2.0 - 1e-9) & (dz <= 0.0))


def test_region_sums_and_gains_recover_known_answers():
    labels = np.zeros((10, 10), np.int8)
    labels[:, 5:] = corr.REGIONS.index("nose")
    r = np.full((10, 10), 2.0)
    c = np.full((10, 10), 4.0)  # twice the truth: the best gain is 0.5
    c[:, 5:] = -1.0  # the wrong way in the nose: gain negative
    s = corr.region_sums(c, r, labels)
    assert s["vault"]["gain"] == pytest.approx(0.5) and s["nose"]["gain"] == pytest.approx(-2.0)
    assert s["vault"]["rmse_fit_mm"] == pytest.approx(2.0) and s["vault"]["rmse_corrected_mm"] == pytest.approx(2.0)
    assert s["nose"]["rmse_corrected_mm"] == pytest.approx(3.0)
    exact = corr.region_sums(r.copy(), r, labels)
    assert exact["vault"]["gain"] == pytest.approx(1.0) and exact["vault"]["rmse_corrected_mm"] == pytest.approx(0.0)


def test_gains_from_folds_never_make_a_fold_worse():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(corr.REGIONS), (40, 40)).astype(np.int8)
    folds = []
    for k in range(3):  # three held-out heads whose corrections are partly right, partly wrong
        r = rng.normal(0, 3, (40, 40))
        c = (0.3 + 0.4 * k) * r + rng.normal(0, 1.5 + k, (40, 40))
        folds.append(({"regions": corr.region_sums(c, r, labels)}, c, r))
    gains = corr.gains_from_folds([f for f, _, _ in folds])
    assert set(gains) == set(corr.REGIONS) and all(0.0 <= g <= 1.0 for g in gains.values())
    for _, c, r in folds:
        g = np.array([gains[corr.REGIONS[i]] for i in range(len(corr.REGIONS))])[labels]
        for k in range(len(corr.REGIONS)):
            sel = labels == k
            assert np.sum((r - g * c)[sel] ** 2) <= np.sum(r[sel] ** 2) + 1e-9
    # the smallest fold gain wins; a fold that says "wrong way" gives 0; no fold: 0; above 1: 1
    one = {"n": 100, "cr": 0, "cc": 1, "rr": 1, "rmse_fit_mm": 1, "rmse_corrected_mm": 1}
    f1 = {"regions": {"nose": {**one, "gain": 0.7}, "chin": {**one, "gain": 1.8}, "cheeks": {**one, "gain": 0.4}}}
    f2 = {"regions": {"nose": {**one, "gain": 0.5}, "cheeks": {**one, "gain": -0.2},
                      "mouth": {**one, "n": corr.MIN_FOLD_PX - 1, "gain": 0.9}}}
    g = corr.gains_from_folds([f1, f2])
    assert g["nose"] == 0.5 and g["chin"] == 1.0 and g["cheeks"] == 0.0 and g["mouth"] == 0.0 and g["vault"] == 0.0
    assert corr.gains_from_folds([]) == {r: 0.0 for r in corr.REGIONS}


def test_model_file_gains_and_their_override():
    plain = TrainedModel(generator=None, meta=None)
    gains, why = gains_of(plain)
    assert set(gains.values()) == {0.0} and "not applied" in why
    cal = calibration_of([{"head": "h1", "regions": {"nose": {"n": 500, "cr": 1.0, "cc": 2.0, "rr": 4.0, "gain": 0.5,
                                                               "rmse_fit_mm": 1.0, "rmse_corrected_mm": 0.9}}}],
                         ["fold.json"])
    assert cal["gains"]["nose"] == 0.5 and cal["folds"][0]["head"] == "h1" and "cr" not in cal["folds"][0]["regions"]["nose"]
    gains, why = gains_of(TrainedModel(None, None, cal))
    assert gains["nose"] == 0.5 and gains["chin"] == 0.0 and "h1" in why
    gains, why = gains_of(TrainedModel(None, None, cal), gain=1.0)
    assert set(gains.values()) == {1.0}


def test_cap_openings_closes_a_cut_sphere_with_outward_caps():
    from skull2face.geometry.caps import boundary_edges, cap_openings

    s = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    c = s.triangles_center
    cut = trimesh.Trimesh(s.vertices, s.faces[(c[:, 2] < 6.0) & (c[:, 2] > -6.0)], process=False)  # two openings
    assert not cut.is_watertight and len(boundary_edges(cut.faces)) > 0
    closed = cap_openings(cut)
    assert closed.is_watertight and closed.is_winding_consistent and closed.volume > 0
    assert len(closed.vertices) == len(cut.vertices) + 2  # one centre per opening
    np.testing.assert_array_equal(closed.faces[: len(cut.faces)], cut.faces)
    assert cap_openings(s) is s  # nothing to close


def test_read_folds_names_a_bad_file(tmp_path):
    bad = tmp_path / "fold.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="fold.json"):
        read_folds([str(bad)])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something"}))
    with pytest.raises(InputError, match="calibration"):
        read_folds([str(other)])
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"format": "skull2face-calibration", "folds": [{"head": "a", "regions": {}}]}))
    assert read_folds([str(good)]) == [{"head": "a", "regions": {}}]


def test_bad_calibrate_export_and_gain_inputs_are_one_line(tmp_path, capsys):
    from skull2face.cli import main
    from skull2face.stages.export import read_prior_sidecar

    assert main(["calibrate", str(tmp_path / "no_run"), "--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_run" in err[0] and "not a training run folder" in err[0]
    bad = tmp_path / "m.prior.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(InputError, match=r"m\.prior\.npz.*not a model's thickness prior file"):
        read_prior_sidecar(bad)
    assert main(["predict", str(tmp_path / "skull.ply"), "--out", str(tmp_path / "o"), "--method", "skull2face",
                 "--correction-gain", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "correction_gain must be <= 1" in err[0]
