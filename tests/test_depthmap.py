"""Known-answer tests for orthographic depth maps."""

from __future__ import annotations

import json

import igl
import numpy as np
import pytest
import trimesh

from skull2face.errors import InputError
from skull2face.geometry.depthmap import (
    HEAD_MAP_CENTRE,
    DepthMap,
    RenderSpec,
    denormalise,
    depth_to_mesh,
    load_depthmap,
    normalise,
    render,
    save_depthmap,
)
from skull2face.geometry.frame import apply, frame_from_axes, invert_rigid

R = 50.0


def rigid(seed: int) -> np.ndarray:
    """A generic input->head frame: random axes, origin well away from zero."""
    rng = np.random.default_rng(seed)
    return frame_from_axes(rng.uniform(-200, 200, 3), rng.normal(size=3), rng.normal(size=3))


def in_input(mesh_head: trimesh.Trimesh, frame: np.ndarray) -> trimesh.Trimesh:
    """Place a mesh given in head coordinates into the input coordinates of ``frame``."""
    m = mesh_head.copy()
    m.apply_transform(invert_rigid(frame))
    return m


def facet_depth(mesh: trimesh.Trimesh, radius: float) -> float:
    """How far a sphere's facets sink below the true sphere: R minus the nearest plane distance."""
    plane_dist = np.abs(np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles[:, 0]))
    return radius - plane_dist.min()


def distance_to(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    sq, _, _ = igl.point_mesh_squared_distance(np.asarray(points, np.float64),
                                               np.asarray(mesh.vertices, np.float64),
                                               np.asarray(mesh.faces, np.int64))
    return np.sqrt(sq)


@pytest.fixture(scope="module")
def sphere():
    return trimesh.creation.icosphere(subdivisions=5, radius=R)


def test_sphere_heights_match_analytic(sphere):
    spec = RenderSpec(size=(128, 120), mm_per_px=1.0)
    dm = render(sphere, spec)
    assert dm.height.dtype == np.float32 and dm.height.shape == (128, 120)
    x, y = spec.xy_grid()
    rho2 = x ** 2 + y ** 2
    # The facetted sphere lies between radius R - d and R (d = 0.014 mm at subdivision 5), so
    # along each ray the first hit is between the two spheres' heights; 1e-4 mm covers float32.
    d = facet_depth(sphere, R)
    assert 0 < d < 0.02
    inner = rho2 < (R - d) ** 2
    h = dm.height[inner].astype(np.float64)
    assert np.all(h <= np.sqrt(R ** 2 - rho2[inner]) + 1e-4)
    assert np.all(h >= np.sqrt((R - d) ** 2 - rho2[inner]) - 1e-4)
    # Stated tolerance away from the rim (where the surface is steep): 0.03 mm for rho < 0.9 R.
    core = rho2 < (0.9 * R) ** 2
    assert np.max(np.abs(dm.height[core] - np.sqrt(R ** 2 - rho2[core]))) < 0.03
    # Mask is the disc; only pixels in the rim band R - d <= rho <= R may go either way.
    assert np.all(dm.mask[inner])
    assert not np.any(dm.mask[rho2 > R ** 2])
    np.testing.assert_array_equal(dm.mask, np.isfinite(dm.height))


def test_pixel_convention():
    """Row 0 is the top (+y); the left image column is -x (the subject's right)."""
    spec = RenderSpec(size=(64, 64), mm_per_px=2.0, centre=(0.0, 0.0))
    x, y = spec.xy_grid()
    assert x[0, 0] == pytest.approx(-63.0) and y[0, 0] == pytest.approx(63.0)
    assert x[-1, -1] == pytest.approx(63.0) and y[-1, -1] == pytest.approx(-63.0)
    # head maps are centred 40 mm below nasion, so forehead to chin fit
    shifted = RenderSpec(size=(64, 64), mm_per_px=2.0, centre=HEAD_MAP_CENTRE)
    xs, ys = shifted.xy_grid()
    assert xs[0, 0] == pytest.approx(-63.0) and ys[0, 0] == pytest.approx(63.0 - 40.0)
    np.testing.assert_allclose(shifted.head_to_pixel([[xs[5, 9], ys[5, 9], 0.0]]), [[5, 9]], atol=1e-12)
    # a small box on the subject's upper left
    box = trimesh.creation.box(bounds=[[20, 30, -5], [40, 50, 5]])
    dm = render(box, spec)
    rows, cols = np.nonzero(dm.mask)
    assert rows.max() < 32 and cols.min() >= 32
    np.testing.assert_allclose(dm.height[dm.mask], 5.0, atol=1e-5)
    np.testing.assert_allclose(spec.head_to_pixel([[x[3, 7], y[3, 7], 0.0]]), [[3, 7]], atol=1e-12)


@pytest.mark.parametrize("seed", [None, 11])
def test_planes_one_mm_apart(seed):
    frame = np.eye(4) if seed is None else rigid(seed)
    spec = RenderSpec(size=(96, 96), mm_per_px=1.0, frame=frame)
    # two boxes whose tops are flat at head z = 10 and 11 mm
    lower = trimesh.creation.box(bounds=[[-40, -30, -20], [40, 30, 10]])
    upper = trimesh.creation.box(bounds=[[-40, -30, -19], [40, 30, 11]])
    dm0, dm1 = render(in_input(lower, frame), spec), render(in_input(upper, frame), spec)
    np.testing.assert_array_equal(dm0.mask, dm1.mask)
    x, y = spec.xy_grid()
    flat = (np.abs(x) < 39) & (np.abs(y) < 29)
    assert dm0.mask[flat].all()
    np.testing.assert_allclose(dm1.height[flat] - dm0.height[flat], 1.0, atol=1e-4)
    np.testing.assert_allclose(dm0.height[flat], 10.0, atol=1e-4)


def test_footprint_outside_view_and_mesh_above_z_far():
    spec = RenderSpec(size=(32, 32), z_near=-20.0, z_far=0.0)
    far_away = trimesh.creation.box(bounds=[[500, 500, 0], [510, 510, 10]])
    assert not render(far_away, spec).mask.any()
    # a surface above z_far is rendered at its true height, not clipped
    tall = trimesh.creation.box(bounds=[[-5, -5, -10], [5, 5, 30]])
    dm = render(tall, spec)
    np.testing.assert_allclose(dm.height[dm.mask], 30.0, atol=1e-5)


def _round_trip(mesh_input: trimesh.Trimesh, spec: RenderSpec):
    dm = render(mesh_input, spec)
    back = depth_to_mesh(dm)
    assert len(back.vertices) == dm.mask.sum() and len(back.faces) > 0
    # every reconstructed vertex and triangle centre lies within a pixel of the original
    assert distance_to(back.vertices, mesh_input).max() < spec.mm_per_px
    assert distance_to(back.triangles_center, mesh_input).max() < spec.mm_per_px
    # faces point toward +z of the head frame, in input coordinates
    head_z = spec.frame[2, :3]
    assert np.all(back.face_normals @ head_z > 0)
    # rendering the reconstruction again gives the same heights wherever both see a surface
    again = render(back, spec)
    both = dm.mask & again.mask
    assert both.sum() > 0.95 * dm.mask.sum()
    np.testing.assert_allclose(again.height[both], dm.height[both], atol=1e-3)
    return dm, back


def test_round_trip_sphere(sphere):
    spec = RenderSpec(size=(120, 120), mm_per_px=1.0)
    _, back = _round_trip(sphere, spec)
    # the vertices are on the visible (front) half of the sphere
    assert back.vertices[:, 2].min() > -1.0


def test_round_trip_in_rotated_translated_input():
    # an off-centre ellipsoid, so a wrong rotation or translation would not hide by symmetry
    ell = trimesh.creation.icosphere(subdivisions=5, radius=1.0)
    ell.vertices *= [60.0, 45.0, 35.0]
    ell.vertices += [10.0, -5.0, 3.0]
    frame = rigid(5)
    spec = RenderSpec(size=(110, 140), mm_per_px=1.1, frame=frame)
    mesh_input = in_input(ell, frame)
    assert np.abs(mesh_input.vertices.mean(axis=0)).max() > 20  # really moved
    _, back = _round_trip(mesh_input, spec)
    # head-frame view of the reconstruction is the ellipsoid's front
    head = apply(frame, back.vertices)
    assert head[:, 2].min() > 3.0 - 1.0


def test_depth_to_mesh_does_not_bridge_steps():
    spec = RenderSpec(size=(64, 64), mm_per_px=1.0)
    step = trimesh.util.concatenate([
        trimesh.creation.box(bounds=[[-30, -30, -20], [0.5, 30, 0]]),
        trimesh.creation.box(bounds=[[0.5, -30, -20], [30, 30, 20]]),  # 20 mm higher
    ])
    dm = render(step, spec)
    back = depth_to_mesh(dm)
    fz = apply(spec.frame, back.vertices)[back.faces, 2]
    assert np.ptp(fz, axis=1).max() <= 5.0
    assert set(np.unique(np.round(fz))) == {0.0, 20.0}
    # allowing big jumps bridges the step
    bridged = depth_to_mesh(dm, max_jump_mm=25.0)
    assert len(bridged.faces) > len(back.faces)


def test_depth_to_mesh_diagonal_and_partial_blocks():
    spec = RenderSpec(size=(2, 2))
    h = np.array([[0.0, 0.0], [0.0, 3.0]], np.float32)  # TL-BR changes 3 mm, TR-BL none
    back = depth_to_mesh(DepthMap(h, np.isfinite(h), spec))
    assert len(back.faces) == 2
    edges = {tuple(sorted(e)) for e in back.edges_unique.tolist()}
    assert (1, 2) in edges and (0, 3) not in edges  # split along TR-BL
    h[0, 0] = np.nan
    back = depth_to_mesh(DepthMap(h, np.isfinite(h), spec))
    assert len(back.vertices) == 3 and len(back.faces) == 1
    assert back.face_normals[0, 2] > 0


@pytest.mark.parametrize("k", [1.0, 2.0, 4.0])
def test_normalise_round_trip(k):
    spec = RenderSpec(z_near=-150.0, z_far=50.0, size=(4, 50))
    rng = np.random.default_rng(int(k))
    z = rng.uniform(-150.0, 50.0, size=(4, 50)).astype(np.float32)
    z[0, :3] = [-150.0, 50.0, -149.5]
    z[1, 0] = np.nan
    v = normalise(z, spec, k)
    assert v.dtype == np.float32 and v.min() >= 0.0 and v.max() <= 1.0
    assert v[1, 0] == 0.0 and v[0, 0] == 0.0 and v[0, 1] == 1.0
    back = denormalise(v, spec, k, mask=np.isfinite(z))
    assert back.dtype == np.float32 and np.isnan(back[1, 0])
    ok = np.isfinite(z)
    # float32 precision of the [0, 1] values, scaled to the 200 mm range
    np.testing.assert_allclose(back[ok], z[ok], rtol=0, atol=200.0 * 4 * np.finfo(np.float32).eps)
    # outside the range, normalise clips
    np.testing.assert_array_equal(normalise(np.array([[-500.0, 500.0]]), spec, k), [[0.0, 1.0]])


def test_codec_is_one_arithmetic_for_numpy_and_torch():
    """The (de)normalisation and residual decode give the same numbers on numpy and torch.

    Exactly without a power; within 1e-12 with one (numpy's and torch's pow may differ in the
    last bit).
    """
    import torch

    from skull2face.geometry import codec

    rng = np.random.default_rng(0)
    z = rng.uniform(-200.0, 80.0, size=(3, 7))  # beyond both ends of the depth range too
    v = codec.normalise(z, -150.0, 50.0, 4.0)
    np.testing.assert_array_equal(np.where(np.isfinite(z), v, 0).astype(np.float32),
                                  normalise(z, RenderSpec(z_near=-150.0, z_far=50.0), 4.0))
    vt = codec.normalise(torch.from_numpy(z), -150.0, 50.0, 4.0)
    assert isinstance(vt, torch.Tensor) and vt.dtype == torch.float64
    np.testing.assert_allclose(vt.numpy(), v, rtol=1e-12, atol=0)
    back = codec.denormalise(v, -150.0, 50.0, 4.0)
    np.testing.assert_allclose(back, np.clip(z, -150.0, 50.0), atol=1e-9)
    np.testing.assert_allclose(codec.denormalise(torch.from_numpy(v), -150.0, 50.0, 4.0).numpy(), back,
                               rtol=1e-12, atol=0)
    # eps keeps the power's derivative finite at 0
    t = torch.zeros(2, requires_grad=True)
    codec.denormalise(t, -150.0, 50.0, 4.0, lo=1e-6).sum().backward()
    assert torch.isfinite(t.grad).all()
    # residual decode: base + t_min + o * t_range, clipped in mm; normalised the same way
    o, base = rng.uniform(0, 1, (2, 5)), rng.uniform(-160.0, 40.0, (2, 5))
    mm = codec.face_height(o, base, residual=True, z_near=-150.0, z_far=50.0, k=4.0, thickness_min_mm=-20.0,
                           thickness_range_mm=60.0)
    np.testing.assert_allclose(mm, np.clip(base - 20.0 + 60.0 * o, -150.0, 50.0), atol=1e-12)
    mt = codec.face_height(torch.from_numpy(o), torch.from_numpy(base), residual=True, z_near=-150.0, z_far=50.0,
                           k=4.0, thickness_min_mm=-20.0, thickness_range_mm=60.0)
    assert np.array_equal(mt.numpy(), mm)
    np.testing.assert_allclose(codec.residual_face(o, base, 60.0, -150.0, 50.0, 4.0, thickness_min_mm=-20.0),
                               codec.normalise(mm, -150.0, 50.0, 4.0, lo=1e-6), atol=1e-12)
    np.testing.assert_array_equal(codec.face_height(v, None, residual=False, z_near=-150.0, z_far=50.0, k=4.0), back)


def test_render_spec_json_and_validation():
    spec = RenderSpec(size=(10, 20), mm_per_px=0.5, frame=rigid(1), z_near=-90, z_far=40,
                      source_sha256={"skull": "ab" * 32})
    back = RenderSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back == spec
    np.testing.assert_array_equal(back.frame, spec.frame)
    with pytest.raises(ValueError, match="rigid"):
        RenderSpec(frame=np.diag([1.0, 1.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="z_near < z_far"):
        RenderSpec(z_near=10, z_far=0)
    with pytest.raises(ValueError, match="size"):
        RenderSpec(size=(0, 3))
    with pytest.raises(ValueError, match="size"):
        DepthMap(np.zeros((3, 3), np.float32), np.ones((3, 3), bool), RenderSpec(size=(4, 4)))


def test_save_load_round_trip(tmp_path, sphere):
    spec = RenderSpec(size=(80, 70), mm_per_px=1.5, frame=rigid(2), source_sha256={"mesh": "0" * 64})
    dm = render(in_input(sphere, spec.frame), spec)
    paths = save_depthmap(dm, tmp_path / "sub" / "skull")
    assert {p.name for p in paths.values()} == {"skull.npz", "skull.json", "skull.png"}
    assert all(p.stat().st_size > 0 for p in paths.values())
    assert not list((tmp_path / "sub").glob(".*"))  # no temporary files left behind
    for name in ("skull", "skull.npz"):
        back = load_depthmap(tmp_path / "sub" / name)
        assert back.height.dtype == np.float32
        np.testing.assert_array_equal(back.height, dm.height)  # NaNs in the same places
        np.testing.assert_array_equal(back.mask, dm.mask)
        assert back.spec == spec


def test_load_errors_name_the_file(tmp_path, sphere):
    with pytest.raises(InputError, match="nothere.npz"):
        load_depthmap(tmp_path / "nothere")
    dm = render(sphere, RenderSpec(size=(16, 16), mm_per_px=8.0))
    paths = save_depthmap(dm, tmp_path / "a", preview=False)
    assert ".png" not in paths
    paths[".json"].unlink()
    with pytest.raises(InputError, match=r"a\.json.*render spec"):
        load_depthmap(tmp_path / "a")
    paths = save_depthmap(dm, tmp_path / "b", preview=False)
    paths[".npz"].write_bytes(b"not a zip file")
    with pytest.raises(InputError, match=r"b\.npz"):
        load_depthmap(tmp_path / "b")
    paths = save_depthmap(dm, tmp_path / "c", preview=False)
    paths[".json"].write_text("{\"format\": \"something else\"}")
    with pytest.raises(InputError, match=r"c\.json"):
        load_depthmap(tmp_path / "c")


def test_rays_grazing_vertical_walls():
    """Pixel centres exactly on a box's side walls still get the top's height, not a wall's."""
    spec = RenderSpec(size=(32, 32))
    box = trimesh.creation.box(bounds=[[-9.5, -9.5, -20], [9.5, 9.5, 7]])
    dm = render(box, spec)
    x, y = spec.xy_grid()
    on_or_inside = (np.abs(x) <= 9.5) & (np.abs(y) <= 9.5)
    assert dm.mask[(np.abs(x) < 9.5) & (np.abs(y) < 9.5)].all()
    assert not dm.mask[~on_or_inside].any()
    np.testing.assert_array_equal(dm.height[dm.mask], 7.0)


def test_block_mean_over_valid_pixels():
    from skull2face.geometry.resample import block_mean

    v = np.array([[1.0, 3.0, 5.0, np.nan],
                  [5.0, 7.0, 7.0, np.nan],
                  [2.0, 2.0, 9.0, 9.0],
                  [np.nan, np.nan, 9.0, 9.0]])
    mean, valid = block_mean(v, np.isfinite(v), (2, 2))
    # 4 valid -> 4.0; 2 of 4 valid (not more than half) -> invalid, mean 6.0; 2 of 4 -> invalid; 4 -> 9
    np.testing.assert_array_equal(mean, [[4.0, 6.0], [2.0, 9.0]])
    np.testing.assert_array_equal(valid, [[True, False], [False, True]])
    with pytest.raises(ValueError, match="does not divide"):
        block_mean(v, np.isfinite(v), (3, 3))
