"""Plausible faces (``predict --samples``): the random field, the spread, the band and the command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.evaluation.band import band_coverage, band_offsets
from skull2face.io.error_mesh import read_scalar_ply, write_scalar_ply
from skull2face.statistics.face_samples import (MIN_THICKNESS_MM, SampleSettings, drawn_change, spread,
                                                thickness_field)

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


# ------------------------------------------------------------------ the thickness field

def test_thickness_field_has_unit_variance_and_the_global_share_as_far_correlation():
    rng = np.random.default_rng(0)
    local = np.stack([thickness_field(rng, (96, 96), 2.0, correlation_mm=10.0, global_share=0.0)
                      for _ in range(400)])
    # every pixel: variance 1 (the local part normalised by the filter's own norm)
    assert abs(float(local.var(axis=0).mean()) - 1.0) < 0.05
    whole = thickness_field(rng, (16, 16), 2.0, global_share=1.0)
    assert np.ptp(whole) < 1e-12  # all build: one value over the face
    fields = np.stack([thickness_field(rng, (96, 96), 2.0, correlation_mm=10.0, global_share=0.5)
                       for _ in range(400)])
    # two pixels far apart (60 px = 120 mm, 12 correlation lengths) share only the face-wide factor
    far = np.corrcoef(fields[:, 10, 10], fields[:, 70, 70])[0, 1]
    assert abs(far - 0.5) < 0.12
    # neighbours (2 mm apart) move together
    assert np.corrcoef(fields[:, 40, 40], fields[:, 40, 41])[0, 1] > 0.95


def test_thickness_field_without_global_share_is_uncorrelated_far_away():
    rng = np.random.default_rng(1)
    fields = np.stack([thickness_field(rng, (96, 96), 2.0, correlation_mm=6.0, global_share=0.0)
                       for _ in range(300)])
    assert abs(np.corrcoef(fields[:, 10, 10], fields[:, 80, 80])[0, 1]) < 0.15
    with pytest.raises(ValueError, match="global_share"):
        thickness_field(rng, (8, 8), 1.0, global_share=1.5)


def test_drawn_thickness_is_never_below_the_floor():
    mean = np.array([2.0, 10.0, 10.0])
    change = drawn_change(mean, np.array([1.0, 2.0, 2.0]), np.array([-5.0, 1.0, -1.0]), scale=2.0)
    np.testing.assert_allclose(change, [MIN_THICKNESS_MM - 2.0, 4.0, -4.0])
    assert SampleSettings().sd_scale > 1.0  # calibrated (benchmarks/uncertainty_calibration.py)


# ------------------------------------------------------------------ spread and band, known answers

def _sphere(radius: float) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=3, radius=radius)


def test_spread_of_displacements_along_the_normal():
    from skull2face.geometry.distances import vertex_normals

    head = _sphere(100.0)
    n = vertex_normals(np.asarray(head.vertices), np.asarray(head.faces))
    steps = np.linspace(-2.0, 2.0, 101)  # mm along the outward normal
    disp = steps[:, None, None] * n[None]
    s = spread(head, disp)
    np.testing.assert_allclose(s["sd_mm"], steps.std(), rtol=1e-3)
    np.testing.assert_allclose(s["p05_mm"], np.percentile(steps, 5), atol=1e-3)
    np.testing.assert_allclose(s["p95_mm"], np.percentile(steps, 95), atol=1e-3)
    np.testing.assert_allclose(s["range_mm"], s["p95_mm"] - s["p05_mm"], atol=1e-5)
    # a sideways move (tangent to the surface) is no uncertainty of where the surface lies
    tangent = np.cross(n, [0.0, 0.0, 1.0])
    assert np.abs(spread(head, np.stack([tangent, -tangent]))["sd_mm"]).max() < 1e-5


def test_band_holds_a_sphere_two_mm_outside_only_when_wide_enough():
    head, truth = _sphere(100.0), _sphere(102.0)
    labels = np.ones(len(truth.vertices), dtype=int)
    v = len(head.vertices)
    offset, lo, hi = band_offsets(np.asarray(truth.vertices), head, np.full(v, -1.0), np.full(v, 3.0))
    assert np.allclose(offset, 2.0, atol=0.15)  # icosphere facets: the true offset varies by < 0.15 mm
    wide = band_coverage(truth, labels, head, np.full(v, -1.0), np.full(v, 3.0), ["all"])
    narrow = band_coverage(truth, labels, head, np.full(v, -1.0), np.full(v, 1.0), ["all"])
    assert wide["inside"] == 1.0 and wide["regions"]["all"]["inside"] == 1.0
    assert narrow["inside"] == 0.0 and narrow["above"] == 1.0 and narrow["below"] == 0.0
    assert wide["width_mm"] == pytest.approx(4.0)


def test_scalar_ply_round_trip(tmp_path):
    head = _sphere(50.0)
    sd = np.linspace(0.0, 5.0, len(head.vertices))
    write_scalar_ply(head, {"sd_mm": sd, "p05_mm": -sd}, tmp_path / "u.ply", ["a comment"])
    mesh, vals = read_scalar_ply(tmp_path / "u.ply")
    np.testing.assert_allclose(mesh.vertices, head.vertices, atol=1e-4)
    np.testing.assert_array_equal(mesh.faces, head.faces)
    np.testing.assert_allclose(vals["sd_mm"], sd, atol=1e-6)
    np.testing.assert_allclose(vals["p05_mm"], -sd, atol=1e-6)
    assert trimesh.load(tmp_path / "u.ply", process=False).vertices.shape == head.vertices.shape


# ------------------------------------------------------------------ the command, end to end

def _cli(*argv: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "skull2face", *argv], capture_output=True, text=True, env=env,
                          timeout=300)


def test_samples_need_a_method_with_a_fitted_head(tmp_path):
    r = _cli("predict", str(samples.path("arothron_skull")), "--method", "envelope", "--samples", "5",
             "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert "--samples needs a method with a fitted whole head" in r.stderr
    assert not (tmp_path / "o").exists()


def test_predict_samples_writes_differing_heads_and_the_uncertainty_map(tmp_path):
    """``predict SKULL --samples 4``: four whole heads on the predicted head's vertices, all
    different, centred on it; the uncertainty map; the same seed draws the same heads."""
    from skull2face.stages.predict import PredictSettings, predict

    skull = samples.path("arothron_skull")
    r = _cli("predict", str(skull), "--samples", "4", "--seed", "7", "--out", str(tmp_path / "a"))
    assert r.returncode == 0, r.stderr
    assert "4 plausible heads in samples/" in r.stdout
    out = tmp_path / "a"
    rec = json.loads((out / "predict.json").read_text(encoding="utf-8"))
    drawn = rec["samples"]
    assert drawn["n"] == 4 and drawn["seed"] == 7 and drawn["files"] == [f"samples/face_0{i}.ply" for i in range(1, 5)]
    assert rec["settings"]["samples"] == 4 and rec["outputs"]["uncertainty"] == "uncertainty.ply"
    face = trimesh.load(out / "face.ply", process=False)
    heads = [trimesh.load(out / f, process=False) for f in drawn["files"]]
    for h in heads:
        assert h.vertices.shape == face.vertices.shape and np.array_equal(h.faces, face.faces)
        assert h.is_watertight
    moves = [np.abs(h.vertices - face.vertices).max() for h in heads]
    assert min(moves) > 1.0  # mm: each differs from the prediction
    assert np.abs(heads[0].vertices - heads[1].vertices).max() > 1.0  # and from each other
    mesh, band = read_scalar_ply(out / "uncertainty.ply")
    np.testing.assert_allclose(mesh.vertices, face.vertices, atol=1e-3)
    assert np.all(band["p05_mm"] <= band["p95_mm"] + 1e-6) and np.all(band["sd_mm"] >= 0)
    assert drawn["face_sd_mm"]["median"] > 0.5
    for pic in ("samples.png", "uncertainty.png"):
        assert (out / pic).stat().st_size > 10_000
    # the report shows the range and the skull's measurements (recorded by predict too)
    from skull2face.report.collect import context_from_dirs
    from skull2face.report.html import render_html

    assert next(r for r in rec["measurements"] if r["key"] == "ZYB")["mm"] > 100
    page = render_html(context_from_dirs([out]))
    assert "A range of plausible faces" in page and "4 plausible faces of this skull" in page
    assert "Standard measurements of the skull" in page and "bizygomatic breadth" in page
    # reproducible from the seed, in process
    again = predict(skull, tmp_path / "b", PredictSettings(samples=4, seed=7), picture=False)
    assert again["samples"]["files"] == drawn["files"]
    for f in drawn["files"]:
        np.testing.assert_array_equal(trimesh.load(tmp_path / "b" / f, process=False).vertices,
                                      trimesh.load(out / f, process=False).vertices)
