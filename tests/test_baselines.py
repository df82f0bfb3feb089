"""Face methods: tissue depth on a synthetic skull and on a real CT, mean face, nearest skull,
the registry of methods, outward normals and pit bridging."""

import json
import subprocess
import sys

import numpy as np
import pytest
import trimesh

from skull2face.geometry.fill import BRIDGE_RADIUS_MM, disc_closing, filled_height
from skull2face.geometry.normals import outward_normals_at, outward_vertex_normals
from skull2face.methods import registry
from skull2face.methods.mean_face import mean_face, mean_face_for
from skull2face.methods.nearest_skull import nearest_skull_face, skull_distance
from skull2face.methods.nose import NoseRule
from skull2face.methods.registry import run_method
from skull2face.methods.result import MethodResult
from skull2face.methods.tissue_depth import (
    JAW_MARGIN_MM,
    below_jaw,
    default_thickness_mm,
    interpolate_thickness,
    thickness_sites,
    tissue_depth_face,
)
from skull2face.geometry.depthmap import (
    HEAD_MAP_CENTRE,
    DepthMap,
    RenderSpec,
    depth_to_mesh,
    render,
)
from skull2face.geometry.frame import apply, frame_from_axes

R = 70.0
CENTRE = np.array([0.0, 0.0, -R])  # the sphere's front pole is nasion, the head-frame origin
ORBITS = [(-10.0, 28.0), (-10.0, -28.0)]  # (elevation, azimuth) in degrees; +azimuth = left
ORBIT_RADIUS = 15.0


def _on_sphere(elevation_deg, azimuth_deg, radius=R):
    e, a = np.radians(elevation_deg), np.radians(azimuth_deg)
    return CENTRE + radius * np.array([np.cos(e) * np.sin(a), np.sin(e), np.cos(e) * np.cos(a)])


LANDMARKS = {
    "N": (0, 0), "G": (12, 0), "Ns": (-30, 0), "Pr": (-45, 0), "Pog": (-60, 0), "Gn": (-68, 0),
    "Da_L": (-5, 12), "Da_R": (-5, -12), "Fmt_L": (5, 45), "Fmt_R": (5, -45),
    "Zy_L": (-15, 70), "Zy_R": (-15, -70), "Go_L": (-55, 60), "Go_R": (-55, -60),
}


@pytest.fixture(scope="module")
def sphere_skull():
    """An r = 70 mm 'skull' with two 15 mm 'orbit' holes, landmarks on it (head frame = input)."""
    mesh = trimesh.creation.icosphere(subdivisions=5, radius=R)
    mesh.apply_translation(CENTRE)
    centroids = mesh.triangles_center
    keep = np.ones(len(mesh.faces), bool)
    for e, a in ORBITS:
        keep &= np.linalg.norm(centroids - _on_sphere(e, a), axis=1) > ORBIT_RADIUS
    skull = trimesh.Trimesh(mesh.vertices, mesh.faces[keep], process=False)
    landmarks = {name: _on_sphere(e, a) for name, (e, a) in LANDMARKS.items()}
    spec = RenderSpec(size=(200, 200), mm_per_px=1.0, centre=(0.0, 0.0))
    return skull, landmarks, spec


def _ideal_height(x, y, landmarks):
    """Head-frame z of the offset sphere |P - C| = R + t(radial projection of P)."""
    _, pts, ts = thickness_sites(landmarks)
    t0 = default_thickness_mm()
    z = np.full(x.shape, 0.0)
    for _ in range(6):  # fixed point: t varies slowly, so this converges fast
        p = np.stack([x, y, z], axis=-1).reshape(-1, 3)
        d = p - CENTRE
        q = CENTRE + R * d / np.linalg.norm(d, axis=1, keepdims=True)
        t = interpolate_thickness(q, pts, ts, t0).reshape(x.shape)
        r2 = (R + t) ** 2 - (x - CENTRE[0]) ** 2 - (y - CENTRE[1]) ** 2
        z = CENTRE[2] + np.sqrt(np.maximum(r2, 0.0))
    return z


def test_interpolated_thickness_passes_the_sites_and_tends_to_the_default():
    names, pts, ts = thickness_sites({"N": [0, 0, 0], "Pr": [0, -60, 0], "Zy_L": [60, -20, -50],
                                         "not a landmark": [1, 2, 3], "Go_R": [np.nan, 0, 0]})
    assert names == ["N", "Pr", "Zy_L"]
    np.testing.assert_allclose(ts, [6.0, 12.0, 7.5])
    t0 = default_thickness_mm()
    assert t0 == 10.5  # median of the bundled Hona & Stephan table
    at_sites = interpolate_thickness(pts, pts, ts, t0)
    np.testing.assert_allclose(at_sites, ts, atol=0.05)
    far = interpolate_thickness([[0, 0, -5000.0]], pts, ts, t0)
    assert far[0] == pytest.approx(t0, abs=0.01)
    line = interpolate_thickness(np.linspace([0, 0, 0], [0, -60, 0], 50), pts, ts, t0)
    assert line.min() >= ts.min() - 1e-9 and line.max() <= max(ts.max(), t0) + 1e-9
    # empty site list: the default everywhere
    assert np.all(interpolate_thickness(np.zeros((3, 3)), np.zeros((0, 3)), [], 7.0) == 7.0)


def test_outward_normals_point_out_of_a_sphere_whatever_the_winding(sphere_skull):
    skull, _, _ = sphere_skull
    flipped = skull.faces[:, ::-1].copy()
    flipped[::2] = skull.faces[::2]  # inconsistent winding: half the faces reversed
    for faces in (skull.faces, flipped):
        n = outward_vertex_normals(skull.vertices, faces, CENTRE)
        radial = skull.vertices - CENTRE
        radial /= np.linalg.norm(radial, axis=1, keepdims=True)
        used = np.unique(faces)
        assert np.einsum("ij,ij->i", n[used], radial[used]).min() > 0.99
    watertight = trimesh.creation.icosphere(subdivisions=3, radius=50.0)
    inverted = watertight.faces[:, ::-1]
    n = outward_vertex_normals(watertight.vertices, inverted, [500.0, 0, 0], use_winding=None)
    assert np.einsum("ij,ij->i", n, watertight.vertices / 50.0).min() > 0.99


def test_tissue_depth_on_a_sphere_is_the_offset_sphere_with_bridged_orbits(sphere_skull):
    skull, landmarks, spec = sphere_skull
    info = {}
    face = tissue_depth_face(skull, landmarks, spec, nose=False, jaw_margin_mm=None, info=info)
    assert face.spec is spec
    assert face.height.dtype == np.float32
    assert set(info["sites"]) == set(LANDMARKS)
    assert info["filled_px"] > 0 and info["nose"]["added"] is False

    x, y = spec.xy_grid()
    ideal = _ideal_height(x, y, landmarks)
    xy = np.stack([x, y], axis=-1)
    in_hole = np.zeros(spec.size, bool)
    near_hole = np.zeros(spec.size, bool)
    for e, a in ORBITS:
        c = _on_sphere(e, a)[:2]
        dist = np.linalg.norm(xy - c, axis=-1)
        in_hole |= dist < ORBIT_RADIUS - 2.0
        near_hole |= dist < ORBIT_RADIUS + 8.0
    front = (x ** 2 + y ** 2) < (0.75 * R) ** 2  # away from the grazing silhouette

    # Where the skull exists: the sphere of radius 70 + t (t interpolated), to a fraction of a mm.
    away = front & ~near_hole
    assert face.mask[away].all()
    assert np.abs(face.height[away] - ideal[away]).max() < 0.3

    # The orbit holes are bridged: valid, and never more than a few mm off the offset sphere.
    assert face.mask[in_hole].all()
    err = face.height[in_hole] - ideal[in_hole]
    assert np.abs(err).max() < 2.0, np.abs(err).max()
    # ... and no pixel sinks behind its neighbourhood (no pit left).
    h = face.height.astype(np.float64)
    closed = disc_closing(h, 8.0, face.mask, coarsen=True)
    assert (closed - h)[in_hole].max() < 1.0


def test_tissue_depth_nose_and_jaw_cut_on_the_sphere(sphere_skull):
    skull, landmarks, spec = sphere_skull
    plain = tissue_depth_face(skull, landmarks, spec, nose=False)
    info = {}
    face = tissue_depth_face(skull, landmarks, spec, info=info)
    nose = info["nose"]
    assert nose["added"] is True
    assert nose["aperture_measured"] is False  # a sphere has no aperture: the default width
    assert nose["width_mm"] == pytest.approx(NoseRule().default_aperture_width_mm + 10.0)
    x, y = spec.xy_grid()
    prn = nose["pronasale_head"]
    r, c = np.round(spec.head_to_pixel(prn)).astype(int)
    # the tip stands 20 mm in front of the bridged surface, and the nose stays near the midline
    assert face.height[r, c] - plain.height[r, c] == pytest.approx(20.0, abs=0.5)
    both = face.mask & plain.mask
    raised = both & (face.height - plain.height > 0.5)
    assert np.abs(x[raised]).max() < 0.5 * nose["width_mm"] + 6.0
    assert y[raised].max() <= landmarks["N"][1] + 1.0
    # below the jaw line (Go-Gn-Go) nothing is left
    cut = info["jaw_cut"]
    assert cut["cut_px"] > 0
    assert not face.mask[y < landmarks["Gn"][1] - JAW_MARGIN_MM - 1.0].any()


def _blob(spec, cx, cy, r, top):
    """A smooth dome height map (float32 mm) on the spec's grid."""
    x, y = spec.xy_grid()
    d2 = (x - cx) ** 2 + (y - cy) ** 2
    h = np.where(d2 < r * r, top - d2 / (2.0 * r), np.nan).astype(np.float32)
    return DepthMap(h, np.isfinite(h), spec)


def _spec(frame_shift=0.0, **kw):
    frame = frame_from_axes([frame_shift, 3.0, -2.0], [1.0, 0.05, 0.0], [0.0, 1.0, 0.1])
    return RenderSpec(size=(64, 64), mm_per_px=2.0, frame=frame, centre=HEAD_MAP_CENTRE, **kw)


def test_mean_face_of_identical_maps_is_that_map():
    a = _blob(_spec(), 0.0, -40.0, 40.0, 10.0)
    copies = [DepthMap(a.height.copy(), a.mask.copy(), _spec(frame_shift=i)) for i in range(4)]
    mean = mean_face(copies)
    np.testing.assert_array_equal(mean.mask, a.mask)
    np.testing.assert_allclose(mean.height[a.mask], a.height[a.mask], atol=1e-5)
    assert mean.spec == copies[0].spec


def test_mean_face_keeps_pixels_valid_in_at_least_half_the_maps():
    spec = _spec()
    maps = [_blob(spec, 0.0, -40.0, 40.0, 10.0), _blob(spec, 0.0, -40.0, 30.0, 20.0),
            _blob(spec, 0.0, -40.0, 20.0, 30.0)]
    mean = mean_face(maps)
    count = sum(m.mask.astype(int) for m in maps)
    np.testing.assert_array_equal(mean.mask, count >= 2)
    both = maps[0].mask & maps[1].mask & ~maps[2].mask
    np.testing.assert_allclose(mean.height[both], (maps[0].height[both] + maps[1].height[both]) / 2, atol=1e-4)
    with pytest.raises(ValueError):
        mean_face([])
    other = RenderSpec(size=(32, 32), mm_per_px=2.0)
    with pytest.raises(ValueError, match="pixel grid"):
        mean_face([maps[0], _blob(other, 0, 0, 10, 1)])


def test_mean_face_for_takes_the_target_spec():
    mean = _blob(_spec(), 0.0, -40.0, 40.0, 10.0)
    target = _spec(frame_shift=7.0)
    info = {}
    out = mean_face_for(target, mean, info)
    assert out.spec is target and info["method"] == "mean-face"
    np.testing.assert_array_equal(out.height, mean.height)
    # depth_to_mesh now lands in the target's input coordinates
    np.testing.assert_allclose(depth_to_mesh(out).vertices, depth_to_mesh(DepthMap(mean.height, mean.mask, target)).vertices)
    # a target on another grid gets the same head-frame surface resampled
    shifted = RenderSpec(size=(64, 64), mm_per_px=2.0, frame=target.frame,
                         centre=(HEAD_MAP_CENTRE[0] + 2.0, HEAD_MAP_CENTRE[1]))
    moved = mean_face_for(shifted, mean)
    assert moved.spec is shifted
    np.testing.assert_allclose(moved.height[:, :-1][moved.mask[:, :-1]], mean.height[:, 1:][moved.mask[:, :-1]], atol=1e-4)


def test_nearest_skull_picks_the_pair_with_the_same_skull():
    spec = _spec()
    pairs = [(_blob(spec, 0.0, -40.0, r, top), _blob(spec, 0.0, -40.0, r + 8, top + 10))
             for r, top in ((30.0, 0.0), (40.0, 5.0), (50.0, -5.0))]
    target_spec = _spec(frame_shift=-4.0)
    target = DepthMap(pairs[1][0].height.copy(), pairs[1][0].mask.copy(), target_spec)
    info = {}
    face = nearest_skull_face(target, pairs, info=info)
    assert info["index"] == 1 and info["distance_mm"] == 0.0
    assert len(info["distances_mm"]) == 3 and min(info["distances_mm"]) == info["distances_mm"][1]
    assert face.spec is target_spec
    np.testing.assert_array_equal(face.height, pairs[1][1].height)
    # non-overlap is penalised: a skull covering only part of the target is not "near"
    assert skull_distance(target, pairs[0][0]) > skull_distance(target, target)
    with pytest.raises(ValueError):
        nearest_skull_face(target, [])


def test_run_method_dispatches_every_method(sphere_skull):
    assert set(registry.baseline_names()) == {"tissue-depth", "mean-face", "nearest-skull", "envelope", "face-model"}
    skull, landmarks, spec = sphere_skull
    skull_map = render(skull, spec)
    pair_face = _blob(spec, 0.0, 0.0, 60.0, 20.0)
    pairs = [(skull_map, pair_face)]
    for method in registry.baseline_names():
        res = run_method(method, skull_map=skull_map, skull_mesh=skull, skull_landmarks=landmarks, train_pairs=pairs)
        assert isinstance(res, MethodResult) and res.face_map.spec is spec, method
        assert res.face_map.mask.any() and res.record["method"] == method
        json.dumps(res.record)  # JSON-ready: nothing hidden in the record
        # only face-model has a whole head; the others' mesh is their map's
        assert (res.head is not None) == (method == "face-model"), method
    out = run_method("mean-face", spec=spec, mean_map=pair_face).face_map
    np.testing.assert_array_equal(out.height, pair_face.height)
    with pytest.raises(ValueError, match="unknown method"):
        run_method("sculpture", skull_map=skull_map)
    with pytest.raises(ValueError, match="skull_mesh"):
        run_method("tissue-depth", skull_map=skull_map)
    with pytest.raises(ValueError, match="train_pairs"):
        run_method("nearest-skull", skull_map=skull_map)
    with pytest.raises(ValueError, match="mean_map"):
        run_method("mean-face", skull_map=skull_map)


@pytest.fixture(scope="module")
def headsq_tissue_depth(real_ct_surfaces):
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.geometry.frame import head_frame
    from skull2face.geometry.pose import lps_frame

    _, surf = real_ct_surfaces["headsq"]
    lms = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull))
    frame = head_frame(lms.points, "skull").matrix
    spec = RenderSpec(size=(256, 256), mm_per_px=1.0, frame=frame, centre=HEAD_MAP_CENTRE)
    info = {}
    face = tissue_depth_face(surf.skull, lms, spec, info=info)
    return surf, lms, spec, face, info


def test_tissue_depth_on_a_real_ct_is_a_closed_face_near_the_skin(headsq_tissue_depth):
    import igl
    from scipy import ndimage

    surf, lms, spec, face, info = headsq_tissue_depth
    assert face.spec is spec
    skull_map = render(surf.skull, spec)
    # The face covers the skull's face area: the filled skull silhouette above the jaw line,
    # orbits and nasal aperture included.
    lms_head = {k: apply(spec.frame, v) for k, v in lms.points.items()}
    silhouette = ndimage.binary_fill_holes(skull_map.mask)
    jaw = below_jaw(spec, lms_head)
    inner = ndimage.binary_erosion(silhouette & ~jaw, iterations=3)
    assert face.mask[inner].mean() > 0.99
    holes = inner & ~skull_map.mask  # through-holes of the bone seen from the front (orbits)
    assert holes.sum() > 100 and face.mask[holes].all()
    # Closed-looking: where the bone has holes or pits > 10 mm deep (orbits, nasal aperture,
    # gaps between the teeth ...), the face never sinks > 3 mm behind a 10 mm-radius hull.
    skull_hull = disc_closing(skull_map.height.astype(np.float64), BRIDGE_RADIUS_MM, skull_map.mask, coarsen=True)
    with np.errstate(invalid="ignore"):
        pits = inner & (~skull_map.mask | (skull_map.height < skull_hull - 10.0))
    assert pits.sum() > 1000
    face_hull = disc_closing(face.height.astype(np.float64), 10.0, face.mask, coarsen=True)
    assert (face_hull - face.height)[pits].max() < 3.0
    assert info["nose"]["added"] and info["nose"]["aperture_measured"]
    assert 15.0 < info["nose"]["aperture_width_mm"] < 35.0

    mesh = depth_to_mesh(face)
    assert len(mesh.faces) > 10_000
    d2, _, _ = igl.point_mesh_squared_distance(np.asarray(mesh.vertices, dtype=np.float64),
                                               np.asarray(surf.skin.vertices, dtype=np.float64),
                                               np.asarray(surf.skin.faces, dtype=np.int64))
    dist = np.sqrt(d2)
    print(f"headsq tissue-depth face -> true skin: mean {dist.mean():.2f} mm, median {np.median(dist):.2f} mm, "
          f"p95 {np.percentile(dist, 95):.2f} mm over {len(dist)} vertices")
    # The classic method is crude (adult means, schematic nose, child-sized head): a few mm.
    assert dist.mean() < 4.5
    assert np.median(dist) < 4.0


def test_registry_lists_every_method_once_and_imports_light():
    assert registry.names() == ("skull2face", "tissue-depth", "mean-face", "nearest-skull", "envelope", "face-model")
    assert registry.baseline_names() == ("tissue-depth", "mean-face", "nearest-skull", "envelope", "face-model")
    assert [n for n, m in registry.METHODS.items() if m.needs_model] == ["skull2face"]
    assert [n for n, m in registry.METHODS.items() if m.needs_references] == ["mean-face", "nearest-skull"]
    assert all(m.summary and m.name == n for n, m in registry.METHODS.items())
    assert registry.describe().splitlines()[1].startswith("tissue-depth: ")
    # the command line lists the methods without loading the heavy libraries
    code = ("import sys, skull2face.methods.registry as r; r.names(); "
            "print(sorted(m for m in ('torch', 'trimesh', 'numpy', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_skull2face_needs_a_loaded_model(sphere_skull):
    skull, landmarks, spec = sphere_skull
    skull_map = render(skull, spec)
    with pytest.raises(ValueError, match="model"):
        run_method("skull2face", skull_map=skull_map, skull_mesh=skull, skull_landmarks=landmarks)


def test_outward_normals_at_points_are_the_smoothed_vertex_normals(sphere_skull):
    skull, landmarks, _ = sphere_skull
    pts = np.array(list(landmarks.values()))
    n = outward_normals_at(pts, skull.vertices, skull.faces, CENTRE)
    radial = (pts - CENTRE) / np.linalg.norm(pts - CENTRE, axis=1, keepdims=True)
    assert np.einsum("ij,ij->i", n, radial).min() > 0.99
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0)
    # on a vertex: exactly that vertex's normal; no points: no normals
    used = np.unique(skull.faces)[::500]
    at_vertices = outward_normals_at(skull.vertices[used], skull.vertices, skull.faces, CENTRE)
    np.testing.assert_allclose(at_vertices, outward_vertex_normals(skull.vertices, skull.faces, CENTRE)[used],
                               atol=1e-9)
    assert outward_normals_at(np.zeros((0, 3)), skull.vertices, skull.faces, CENTRE).shape == (0, 3)


def test_disc_closing_fills_narrow_pits_to_their_rims():
    h = np.full((40, 50), 10.0)
    h[18:22, 10:14] = 0.0  # a 4 px pit
    h[5:8, 30:33] = np.nan  # a 3 px hole
    h[:, 45:] = np.nan  # background beyond x = 45
    closed = disc_closing(h, 4.0)
    assert np.all(closed[:, :45] == 10.0)
    assert np.all(closed[:, 45:] == -np.inf)  # the silhouette does not grow
    # a wide disc on a block-reduced map: still an upper hull, equal here
    coarse = disc_closing(h, 60.0, coarsen=True)
    assert np.all(coarse[np.isfinite(h)] >= h[np.isfinite(h)])
    np.testing.assert_array_equal(coarse[:, :45], 10.0)
    # filled_height is that closing with the background taken from the nearest pixel
    np.testing.assert_array_equal(filled_height(h, 1.0, 4.0), np.full(h.shape, 10.0, np.float32))
