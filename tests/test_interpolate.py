"""Scattered-data interpolation (skull2face.geometry.interpolate): known answers.

Pairwise squared distances equal the brute-force ones; Shepard weighting equals its written
formula (the one in `skull2face.methods.tissue_depth.interpolate_thickness`'s docstring and the
one of the tissue rescale's factor field), is exact at the nodes without softening,
reproduces constants exactly and tends to the background far away.
"""

import numpy as np
import pytest

from skull2face.geometry.interpolate import as_points, pairwise_sq, shepard


def _formula(p, s, t, t0, big_d, e, power):
    """``(sum_i w_i t_i + w_0 t_0) / (sum_i w_i + w_0)``, ``w = (d^2 + e^2)^(-power/2)``, brute force."""
    d2 = np.sum((p[:, None, :] - s[None, :, :]) ** 2, axis=2)
    w = 1.0 / (d2 + e * e) ** (power / 2.0)
    w0 = 1.0 / (big_d ** 2 + e * e) ** (power / 2.0)
    return (w @ t + w0 * t0) / (w.sum(axis=1) + w0)


def test_pairwise_sq_is_the_brute_force_distance():
    rng = np.random.default_rng(0)
    a, b = rng.uniform(-100, 100, (37, 3)), rng.uniform(-100, 100, (11, 3))
    expected = np.sum((a[:, None, :] - b[None, :, :]) ** 2, axis=2)
    np.testing.assert_allclose(pairwise_sq(a, b), expected, rtol=1e-13, atol=0)
    buf, tmp = np.empty((50, 11)), np.empty((50, 11))
    np.testing.assert_allclose(pairwise_sq(a, b, out=buf, tmp=tmp), expected, rtol=1e-13, atol=0)


def test_shepard_equals_the_interpolate_thickness_formula_on_random_data():
    # The call that reproduces methods.tissue_depth.interpolate_thickness(points, site_points,
    # site_thickness, default_mm, default_distance_mm, softening_mm, power).
    rng = np.random.default_rng(1)
    for power in (1.0, 2.0, 3.0, 2.5):
        for m in (1, 3, 14):
            p = rng.uniform(-120, 120, (20_000, 3))  # more than one chunk
            s = rng.uniform(-80, 80, (m, 3))
            t = rng.uniform(2.0, 30.0, m)
            t0, big_d, e = rng.uniform(5, 15), rng.uniform(10, 80), rng.uniform(0.2, 2.0)
            got = shepard(p, s, t, power=power, softening_mm=e, background=t0,
                          background_distance_mm=big_d)
            np.testing.assert_allclose(got, _formula(p, s, t, t0, big_d, e, power), rtol=1e-12, atol=0)


def test_shepard_equals_the_tissue_factor_formula_without_softening():
    # The factor field of dataset.tissue_rescale: power 3, no softening, background 1 at 40 mm.
    rng = np.random.default_rng(2)
    p, s = rng.uniform(-100, 100, (3000, 3)), rng.uniform(-60, 60, (9, 3))
    f = rng.uniform(0.5, 2.0, 9)
    got = shepard(p, s, f, power=3, background=1.0, background_distance_mm=40.0)
    np.testing.assert_allclose(got, _formula(p, s, f, 1.0, 40.0, 0.0, 3.0), rtol=1e-12, atol=0)
    # no background weight: the plain weighted mean of the values
    got = shepard(p, s, f, power=3, background=1.0)
    d2 = np.sum((p[:, None, :] - s[None, :, :]) ** 2, axis=2)
    w = d2 ** -1.5
    np.testing.assert_allclose(got, (w @ f) / w.sum(axis=1), rtol=1e-12, atol=0)


def test_shepard_is_exact_at_nodes_and_bounded():
    rng = np.random.default_rng(3)
    s = rng.uniform(-50, 50, (6, 3))
    v = np.array([0.7, 1.6, 1.1, 3.0, -2.0, 0.0])
    assert np.array_equal(shepard(s, s, v, power=2, background=5.0, background_distance_mm=30.0), v)
    # coinciding nodes: their mean
    two = shepard(s[:1], np.vstack([s[:1], s[:1]]), [1.0, 3.0], power=2)
    assert two[0] == 2.0
    p = rng.uniform(-80, 80, (5000, 3))
    out = shepard(p, s, v, power=2, background=5.0, background_distance_mm=30.0)
    assert out.min() >= v.min() - 1e-12 and out.max() <= 5.0 + 1e-12


def test_shepard_constants_far_field_and_empty():
    rng = np.random.default_rng(4)
    s, p = rng.uniform(-50, 50, (5, 3)), rng.uniform(-200, 200, (1000, 3))
    # equal values and background give exactly that value everywhere
    assert np.all(shepard(p, s, np.full(5, 0.1), power=3, background=0.1,
                          background_distance_mm=40.0) == 0.1)
    assert np.all(shepard(p, s, np.full(5, 7.25), power=2, softening_mm=1.0) == 7.25)
    # far from every node the background wins
    far = shepard([[0.0, 0.0, -5000.0]], s, np.arange(5.0), power=2, softening_mm=1.0,
                  background=10.5, background_distance_mm=40.0)
    assert far[0] == pytest.approx(10.5, abs=0.01)
    # no nodes: the background everywhere, NaN without one
    assert np.all(shepard(np.zeros((3, 3)), np.zeros((0, 3)), [], background=7.0) == 7.0)
    assert np.all(np.isnan(shepard(np.zeros((3, 3)), np.zeros((0, 3)), [])))


def test_shepard_rejects_bad_input():
    s = np.zeros((2, 3))
    with pytest.raises(ValueError, match="shape"):
        shepard(np.zeros((4, 2)), s, [1.0, 2.0])
    with pytest.raises(ValueError, match="values"):
        shepard(np.zeros((4, 3)), s, [1.0])
    with pytest.raises(ValueError, match="power"):
        shepard(np.zeros((4, 3)), s, [1.0, 2.0], power=0.0)
    with pytest.raises(ValueError, match="softening"):
        shepard(np.zeros((4, 3)), s, [1.0, 2.0], softening_mm=-1.0)
    with pytest.raises(ValueError, match="background_distance"):
        shepard(np.zeros((4, 3)), s, [1.0, 2.0], background=1.0, background_distance_mm=0.0)
    with pytest.raises(ValueError, match="shape"):
        as_points(np.zeros(3), "x")
