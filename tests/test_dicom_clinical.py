"""Clinical DICOM series as scanners write them: gantry tilt and uneven slice spacing.

Known answers: a linear field sampled on tilted, unevenly spaced slices comes back exactly
(linear interpolation reproduces it); the bundled head CT written as 18-degree tilted slices
with the GE series' gaps gives the surfaces of the untilted volume; the bundled GE series
itself (a reduced copy) extracts to a head in the right place; what cannot be trusted is
refused with its own line.
"""

import logging
import uuid

import numpy as np
import pytest
import SimpleITK as sitk
import trimesh

from skull2face import samples
from skull2face.errors import InputError
from skull2face.geometry.distances import surface_distances
from skull2face.geometry.surfaces import extract_surfaces
from skull2face.io.volumes import Volume, read_volume

GE_GAPS_Z = [4.22] * 13 + [1.14] + [7.38] * 13  # the GE series' table steps (mm)
ROW = np.array([1.0, 0.0, 0.0])


def tilted_axes(tilt_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Column cosines and slice normal of a gantry tilted by ``tilt_deg`` (as GE writes it)."""
    t = np.radians(tilt_deg)
    col = np.array([0.0, np.cos(t), -np.sin(t)])
    return col, np.cross(ROW, col)


def write_slices(folder, slices, positions, col, pixel, tilt_deg=None, row=ROW):
    """Write ``slices`` ((rows, cols) int16 each) as one CT series, slice k at ``positions[k]``
    (LPS mm of its first pixel), in-plane axes ``row``, ``col`` (one per slice allowed)."""
    folder.mkdir(parents=True)
    study, series = "2.25." + str(uuid.uuid4().int), "2.25." + str(uuid.uuid4().int)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    cols = col if np.ndim(col) == 2 else [col] * len(slices)
    for k, (a, p, c) in enumerate(zip(slices, positions, cols)):
        img = sitk.GetImageFromArray(a.astype(np.int16)[None])
        img.SetSpacing([pixel, pixel, 1.0])
        img.SetOrigin([float(v) for v in p])
        img.SetDirection(np.column_stack([row, c, np.cross(row, c)]).ravel().tolist())
        tags = {"0008|0016": "1.2.840.10008.5.1.4.1.1.2", "0008|0018": "2.25." + str(uuid.uuid4().int),
                "0008|0060": "CT", "0020|000d": study, "0020|000e": series, "0020|0013": str(k + 1),
                "0020|0032": "\\".join(f"{v:.6f}" for v in p),
                "0020|0037": "\\".join(f"{v:.6f}" for v in (*row, *c)),
                "0028|0030": f"{pixel:.6f}\\{pixel:.6f}", "0028|1052": "0", "0028|1053": "1"}
        if tilt_deg is not None:
            tags["0018|1120"] = f"{tilt_deg:.1f}"
        for tag, value in tags.items():
            img.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"s{k:03d}.dcm"))
        writer.Execute(img)
    return folder


def ramp(p: np.ndarray) -> np.ndarray:
    """A linear field in LPS mm (HU): linear interpolation must reproduce it exactly."""
    return 2.0 * p[..., 0] + 3.0 * p[..., 1] + 5.0 * p[..., 2] - 200.0


def ramp_series(folder, gaps_z, tilt_deg=18.0, n=40, pixel=2.0):
    """Slices of `ramp`, n x n pixels, first pixels moving along +z by ``gaps_z`` (the table)."""
    col, _ = tilted_axes(tilt_deg)
    z = np.concatenate([[0.0], np.cumsum(gaps_z)])
    positions = np.array([[-40.0, -40.0, zk] for zk in z])
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="xy")  # (rows=j, cols=i)
    slices = [np.rint(ramp(p + ii[..., None] * pixel * ROW + jj[..., None] * pixel * col)) for p in positions]
    return write_slices(folder, slices, positions, col, pixel, tilt_deg), positions


@pytest.mark.parametrize("gaps,uneven", [(GE_GAPS_Z, True), ([4.22] * 12, False)], ids=["ge-gaps", "tilt-only"])
def test_tilted_series_reproduces_a_linear_field(tmp_path, caplog, gaps, uneven):
    folder, positions = ramp_series(tmp_path / "s", gaps)
    with caplog.at_level(logging.WARNING):
        vol = read_volume(folder)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "gantry tilt 18.0 deg" in warnings[0]
    assert ("uneven slice spacing" in warnings[0]) == uneven
    col, normal = tilted_axes(18.0)
    # the grid keeps the slices' row and column axes and stacks along the normal
    np.testing.assert_allclose(vol.direction, np.column_stack([ROW, col, normal]), atol=1e-6)
    finest = 4.22 * np.cos(np.radians(18.0))  # 4.01 mm along the normal, in four steps
    np.testing.assert_allclose(vol.spacing, [2.0, 2.0, finest / 4], atol=1e-4)
    rec = vol.info["geometry_correction"]
    assert rec["detected"]["gantry_tilt_deg"] == pytest.approx(18.0, abs=0.01)
    assert rec["detected"]["uneven_spacing"] == uneven
    assert rec["output_grid"] == list(vol.shape)
    runs = [(r["gap_mm"], r["count"]) for r in rec["detected"]["spacing_runs_mm"]]
    if uneven:
        assert [c for _, c in runs] == [13, 1, 13]
        np.testing.assert_allclose([g for g, _ in runs], np.array([4.22, 1.14, 7.38]) * np.cos(np.radians(18)),
                                   atol=1e-3)
        assert rec["detected"]["largest_gap_mm"] == pytest.approx(7.38 * np.cos(np.radians(18)), abs=1e-3)
    # every voxel that all slices' fields cover holds the field at its own LPS position
    ijk = np.stack(np.meshgrid(*[np.arange(s) for s in vol.shape], indexing="ij"), -1).reshape(-1, 3)
    lps = vol.to_lps(ijk)
    uv = (lps[:, None, :] - positions[None]) @ np.column_stack([ROW, col])  # (voxels, slices, 2)
    inside = np.all((uv > 0.5) & (uv < 39 * 2.0 - 0.5), axis=(1, 2))
    assert inside.sum() > 20_000  # the tilt shifts each slice, so fewer voxels lie in all of them
    err = vol.voxels.reshape(-1)[np.ravel_multi_index(ijk[inside].T, vol.shape)] - ramp(lps[inside])
    assert np.abs(err).max() <= 1.0 + 1e-6  # rounding of the slices and of the output to int16


def _oblique_series(vol: Volume, folder, tilt_deg: float, gaps_z, pixel: float):
    """Resample ``vol`` onto tilted slices whose first pixels move along +z by ``gaps_z``."""
    col, normal = tilted_axes(tilt_deg)
    corners = vol.to_lps(np.array([[i, j, k] for i in (0, vol.shape[0] - 1) for j in (0, vol.shape[1] - 1)
                                   for k in (0, vol.shape[2] - 1)]))
    lo, hi = corners.min(0), corners.max(0)
    nx = int(np.ceil((hi[0] - lo[0]) / pixel)) + 1
    half_v = (hi[1] - lo[1]) / 2 / np.cos(np.radians(tilt_deg)) + 10
    nv = int(np.ceil(2 * half_v / pixel)) + 1
    image = vol.to_sitk()
    zs = lo[2] + 0.5 + np.concatenate([[0.0], np.cumsum(gaps_z)])
    slices, positions = [], []
    for z in zs:
        q = np.array([lo[0], (lo[1] + hi[1]) / 2, z]) - half_v * col
        ref = sitk.Image([nx, nv, 1], sitk.sitkInt16)
        ref.SetSpacing([pixel, pixel, 1.0])
        ref.SetOrigin(q.tolist())
        ref.SetDirection(np.column_stack([ROW, col, normal]).ravel().tolist())
        cut = sitk.Resample(image, ref, sitk.Transform(), sitk.sitkLinear, -1024, sitk.sitkInt16)
        slices.append(sitk.GetArrayFromImage(cut)[0])
        positions.append(q)
    return write_slices(folder, slices, positions, col, pixel, tilt_deg), zs, normal


def test_tilted_uneven_head_gives_the_untilted_surfaces(tmp_path):
    """headsq written as 18-degree tilted slices 4.2, 1.1 then 7.4 mm apart (the GE series'
    steps): the surfaces of what is read back match those of the volume itself (symmetric
    exact surface distances where both scans reach). Measured: skin 0.34 mm mean / 0.91 mm
    95th pct, skull 0.81 / 2.5 mm (the thin vault between 7 mm slices is what interpolation
    cannot recover); the same slices read as a box, ignoring the tilt, put the skin 11.6 mm
    (mean) off."""
    vol = read_volume(samples.path("headsq"))
    z_top = vol.to_lps(np.array([[0, 0, 0], [0, 0, vol.shape[2] - 1]]))[:, 2]
    n7 = int(((z_top.max() - z_top.min() - 1.5) - 13 * 4.22 - 1.14) // 7.38)
    gaps = [4.22] * 13 + [1.14] + [7.38] * n7
    folder, zs, normal = _oblique_series(vol, tmp_path / "tilted", 18.0, gaps, 3.2)
    back = read_volume(folder)
    assert back.info["geometry_correction"]["detected"]["gantry_tilt_deg"] == pytest.approx(18.0, abs=0.01)
    ref, got = extract_surfaces(vol), extract_surfaces(back)
    first = np.asarray(back.origin)
    w_last = (zs[-1] - zs[0]) * normal[2]

    def common(v, margin=6.0):  # inside both scans' slabs, away from their end planes
        w = (v - first) @ normal
        return (w > margin) & (w < w_last - margin) & (v[:, 2] > zs[0] + margin) & (v[:, 2] < z_top.max() - margin)

    def symmetric(a, b):
        d = np.concatenate([surface_distances(a.vertices[common(a.vertices)], b),
                            surface_distances(b.vertices[common(b.vertices)], a)])
        return d.mean(), np.percentile(d, 95)


    skin_mean, skin_p95 = symmetric(ref.skin, got.skin)
    skull_mean, skull_p95 = symmetric(ref.skull, got.skull)
    assert skin_mean < 0.5 and skin_p95 < 1.5, (skin_mean, skin_p95)
    assert skull_mean < 1.0 and skull_p95 < 3.0, (skull_mean, skull_p95)
    # the same slices stacked as a box (what ITK's series reader assumes) are sheared
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames([str(p) for p in sorted(folder.iterdir())])
    boxed = Volume.from_sitk(reader.Execute(), "boxed")
    sheared = extract_surfaces(boxed).skin
    assert symmetric(ref.skin, sheared)[0] > 5.0


def _regular_ramp_slices(n_slices=12, gap=4.0, n=24, pixel=2.0):
    positions = np.array([[-24.0, -24.0, k * gap] for k in range(n_slices)])
    ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="xy")
    slices = [np.rint(ramp(p + ii[..., None] * pixel * ROW + jj[..., None] * pixel * np.array([0, 1.0, 0])))
              for p in positions]
    return slices, positions


def test_missing_slice_in_a_run_is_refused_a_change_of_spacing_is_not(tmp_path):
    col = np.array([0.0, 1.0, 0.0])
    slices, positions = _regular_ramp_slices()
    # slice 6 missing from a 4 mm run: one 8 mm gap between 4 mm gaps
    keep = [k for k in range(12) if k != 6]
    folder = write_slices(tmp_path / "missing", [slices[k] for k in keep], positions[keep], col, 2.0)
    with pytest.raises(InputError, match=r"missing: DICOM series has a missing slice: .* 8\.00 mm apart, the "
                                         r"series' spacing there is 4\.00 mm \(1 slice\(s\) missing\)"):
        read_volume(folder)
    # a protocol's change from 4 mm to 7 mm slices (and one odd gap between) is read
    z = np.concatenate([[0.0], np.cumsum([4.0] * 5 + [1.2] + [7.0] * 5)])
    folder = write_slices(tmp_path / "change", slices, np.column_stack([positions[:, :2], z]), col, 2.0)
    vol = read_volume(folder)
    assert vol.info["geometry_correction"]["detected"]["gantry_tilt_deg"] == 0.0
    assert vol.info["geometry_correction"]["detected"]["largest_gap_mm"] == pytest.approx(7.0)
    # a missing slice in a tilted series is refused too (the gap is measured along the normal)
    folder, _ = ramp_series(tmp_path / "tilted", [4.22] * 6 + [8.44] + [4.22] * 5)
    with pytest.raises(InputError, match="missing slice"):
        read_volume(folder)


def test_mixed_orientations_and_duplicates_are_refused(tmp_path):
    slices, positions = _regular_ramp_slices()
    cols = [np.array([0.0, 1.0, 0.0])] * 12
    cols[5] = tilted_axes(10.0)[0]
    with pytest.raises(InputError, match=r"mixed: DICOM series mixes slice orientations: 1 of 12 slices"):
        read_volume(write_slices(tmp_path / "mixed", slices, positions, np.array(cols), 2.0))
    dup = positions.copy()
    dup[7] = dup[6]
    with pytest.raises(InputError, match="dup: DICOM series has two slices at the same position"):
        read_volume(write_slices(tmp_path / "dup", slices, dup, np.array([0.0, 1.0, 0.0]), 2.0))


def test_corrupt_slice_of_a_tilted_series_is_named(tmp_path):
    folder, _ = ramp_series(tmp_path / "s", GE_GAPS_Z)
    bad = folder / "s010.dcm"
    bad.write_bytes(bad.read_bytes()[:400])
    with pytest.raises(InputError, match=r"s010\.dcm: DICOM slice is truncated or corrupt"):
        read_volume(folder)


def test_bundled_ge_series_extracts_a_head_in_place(tmp_path, caplog):
    """The real GE HiSpeed series (reduced copy): one warning, the correction recorded, the
    skull inside the skin, the face toward -y with the nose tip where the full-resolution
    series puts it."""
    import json

    from skull2face.stages.extract import extract

    with caplog.at_level(logging.WARNING):
        record = extract(samples.path("ge_tilted"), tmp_path / "out")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "gantry tilt 18.5 deg and uneven slice spacing (4.00 mm x13, 1.08 mm x1, 7.00 mm x13" in warnings[0]
    saved = json.loads((tmp_path / "out" / "extract.json").read_text())
    rec = saved["input"]["reader"]["geometry_correction"]
    assert rec["detected"]["gantry_tilt_deg"] == pytest.approx(18.5, abs=0.05)
    assert rec["detected"]["gantry_tilt_tag_deg"] == 18.5
    assert rec["detected"]["largest_gap_mm"] == pytest.approx(7.0, abs=0.01)
    np.testing.assert_allclose(rec["output_spacing_mm"], [1.953125, 1.953125, 1.0005], atol=1e-3)
    assert rec["output_grid"] == [128, 153, 145] == record["volume"]["shape_ijk"]
    assert "linear interpolation between neighbouring slices" in rec["method"]
    skin = trimesh.load(tmp_path / "out" / "skin.ply")
    skull = trimesh.load(tmp_path / "out" / "skull.ply")
    assert skin.is_watertight
    pts = skull.vertices[np.random.default_rng(0).choice(len(skull.vertices), 4000, replace=False)]
    assert skin.contains(pts).mean() >= 0.97  # measured 99.98 %
    # inside the scanned field (250 mm across), head-sized, top of the head toward +z
    lo, hi = skin.bounds
    assert np.all(lo > [-126, -170, -75]) and np.all(hi < [125, 112, 160])
    assert 150 < hi[1] - lo[1] < 230 and 100 < hi[2] - lo[2] < 200
    assert skull.bounds[1][2] > hi[2] - 15  # the vault just under the scalp
    # face toward -y: the most anterior skin point is the nose tip, cut by the first slice;
    # the full-resolution series puts it at (-25.9, -105.8, -0.1) mm (the head is turned)
    tip = skin.vertices[np.argmin(skin.vertices[:, 1])]
    np.testing.assert_allclose(tip, [-25.9, -105.8, -0.1], atol=4.0)
    assert tip[1] < skin.vertices[:, 1].mean() - 80


def _refused(argv: list, capsys) -> str:
    """Run the command line; it must refuse with one line (exit status 2). Returns that line."""
    from skull2face.cli import main

    rc = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def _digest(folder) -> dict:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("where", ["in-plane", "along-the-stack"])
def test_a_displaced_slice_is_refused_by_name(tmp_path, capsys, where):
    """One slice 200 mm off the stack was resampled as "gantry tilt 0.0 deg" into a band of the
    head (exit 0); it is refused, naming the slice file."""
    slices, positions = _regular_ramp_slices()
    moved = positions.copy()
    moved[5] += [200.0, 0.0, 0.0] if where == "in-plane" else [0.0, 0.0, 200.0]
    folder = write_slices(tmp_path / "s", slices, moved, np.array([0.0, 1.0, 0.0]), 2.0)
    before = _digest(folder)
    err = _refused(["extract", folder, "--out", tmp_path / "o"], capsys)
    assert "do not lie on one stack" in err and "s005.dcm" in err and str(folder) in err, err
    assert _digest(folder) == before and not (tmp_path / "o").exists()


def test_a_gantry_tilted_series_still_lies_on_one_stack(tmp_path):
    """The stack test follows the slices' own line: an 18-degree tilt is not "off the stack"."""
    folder, _ = ramp_series(tmp_path / "t", [4.22] * 12)
    assert read_volume(folder).info["geometry_correction"]["detected"]["gantry_tilt_deg"] > 17


def test_two_series_of_equal_length_are_refused_with_their_uids(tmp_path, capsys):
    """Two heads with equal slice counts in one folder: no rule tells them apart, so neither is
    picked (it used to be one, arbitrarily, with a warning)."""
    slices, positions = _regular_ramp_slices()
    col = np.array([0.0, 1.0, 0.0])
    both = tmp_path / "both"
    both.mkdir()
    uids = []
    for name in ("a", "b"):
        folder = write_slices(tmp_path / name, slices, positions, col, 2.0)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(folder / "s000.dcm"))
        reader.ReadImageInformation()
        uids.append(reader.GetMetaData("0020|000e").strip())
        for f in folder.iterdir():
            f.rename(both / f"{name}_{f.name}")
    err = _refused(["extract", both, "--out", tmp_path / "o"], capsys)
    assert "2 DICOM series of 12 slices" in err and all(u in err for u in uids), err
    with pytest.raises(InputError, match="cannot tell apart"):
        read_volume(both)
