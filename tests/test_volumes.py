"""Volume reading: formats, DICOM series checks, and clear errors for bad files."""

import gzip
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from skull2face import samples
from skull2face.errors import InputError
from skull2face.io.volumes import read_volume, write_dicom_series, write_volume
from skull2face.phantoms import head_phantom


@pytest.fixture(scope="module")
def headsq():
    return read_volume(samples.path("headsq"))


def test_bundled_ct_geometry(headsq):
    assert headsq.shape == (64, 64, 93)
    assert headsq.voxels.dtype == np.int16
    np.testing.assert_allclose(headsq.spacing, [3.2, 3.2, 1.5], rtol=1e-6)
    assert headsq.voxels.min() == -1024  # HU: air


def test_index_to_lps_matches_simpleitk(headsq):
    img = sitk.ReadImage(str(samples.path("headsq")))
    for ijk in [(0, 0, 0), (10, 20, 30), (63, 63, 92)]:
        np.testing.assert_allclose(headsq.to_lps(np.array([ijk]))[0],
                                   img.TransformIndexToPhysicalPoint(ijk), atol=1e-9)
    # voxels[i, j, k] is the value at index (i, j, k)
    assert headsq.voxels[10, 20, 30] == img[10, 20, 30]


def test_nifti_as_dicom_series_reads_back_identical(headsq, tmp_path):
    write_dicom_series(headsq, tmp_path / "series")
    back = read_volume(tmp_path / "series")
    assert np.array_equal(back.voxels, headsq.voxels)
    np.testing.assert_allclose(back.spacing, headsq.spacing, atol=1e-5)
    np.testing.assert_allclose(back.origin, headsq.origin, atol=1e-5)
    np.testing.assert_allclose(back.direction, headsq.direction, atol=1e-6)
    assert back.info["format"] == "dicom" and back.info["n_slices"] == 93


def test_dicom_missing_slice_is_a_clear_error(headsq, tmp_path):
    folder = write_dicom_series(headsq, tmp_path / "series")
    (folder / "slice_0040.dcm").unlink()
    with pytest.raises(InputError, match=r"series: DICOM series has a missing slice"):
        read_volume(folder)


def test_dicom_uneven_spacing_is_resampled_between_slices(tmp_path, caplog):
    """One slice 1 mm off its place (gaps 4, 5, 3, 4 mm) is read by linear interpolation
    between slices on a 1 mm grid, with one warning (it used to be refused)."""
    vol = head_phantom(shape=(32, 32, 12), spacing=(4.0, 4.0, 4.0), skin_radius=40, bone_radii=None)
    folder = write_dicom_series(vol, tmp_path / "s")
    # move one slice by 1 mm: the series is no longer evenly spaced
    f = folder / "slice_0005.dcm"
    img = sitk.ReadImage(str(f))
    pos = [float(v) for v in img.GetMetaData("0020|0032").split("\\")]
    pos[2] += 1.0
    img.SetMetaData("0020|0032", "\\".join(map(str, pos)))
    w = sitk.ImageFileWriter()
    w.KeepOriginalImageUIDOn()
    w.SetFileName(str(f))
    w.Execute(img)
    with caplog.at_level("WARNING"):
        back = read_volume(folder)
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "uneven slice spacing" in warnings[0].getMessage()
    assert "gantry tilt" not in warnings[0].getMessage()
    # 4 mm slices in 1 mm steps from the first slice (w = 0) to the last (w = 44 mm)
    assert back.shape == (32, 32, 45)
    np.testing.assert_allclose(back.spacing, [4.0, 4.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(back.origin, vol.origin, atol=1e-5)
    np.testing.assert_allclose(back.direction, vol.direction, atol=1e-6)
    v = vol.voxels.astype(np.float64)
    for k in (0, 4, 6, 11):  # slices on grid planes come back unchanged
        assert np.array_equal(back.voxels[:, :, 4 * k], vol.voxels[:, :, k])
    assert np.array_equal(back.voxels[:, :, 21], vol.voxels[:, :, 5])  # the moved slice, at its new place
    # w = 20 mm lies between slice 4 (16 mm) and the moved slice 5 (21 mm): weights 1/5, 4/5
    np.testing.assert_allclose(back.voxels[:, :, 20], 0.2 * v[:, :, 4] + 0.8 * v[:, :, 5], atol=0.5)
    # w = 10 mm: halfway between slices 2 and 3
    np.testing.assert_allclose(back.voxels[:, :, 10], 0.5 * (v[:, :, 2] + v[:, :, 3]), atol=0.5)
    corr = back.info["geometry_correction"]
    assert corr["detected"]["uneven_spacing"] and corr["detected"]["gantry_tilt_deg"] == 0.0
    assert corr["detected"]["largest_gap_mm"] == pytest.approx(5.0, abs=1e-4)
    assert corr["output_grid"] == [32, 32, 45]


def test_folder_with_two_series_takes_the_bigger(tmp_path, caplog):
    big = head_phantom(shape=(32, 32, 20), spacing=(4.0, 4.0, 4.0), skin_radius=40, bone_radii=None)
    small = head_phantom(shape=(32, 32, 8), spacing=(4.0, 4.0, 4.0), skin_radius=40, bone_radii=None)
    write_dicom_series(big, tmp_path / "a")
    write_dicom_series(small, tmp_path / "b")
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for sub in ("a", "b"):
        for f in (tmp_path / sub).iterdir():
            shutil.copy(f, mixed / f"{sub}_{f.name}")
    with caplog.at_level("WARNING"):
        vol = read_volume(mixed)
    assert vol.shape == (32, 32, 20)
    assert "2 DICOM series" in caplog.text


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_formats_round_trip(headsq, tmp_path, suffix):
    out = write_volume(headsq, tmp_path / f"v{suffix}")
    back = read_volume(out)
    assert np.array_equal(back.voxels, headsq.voxels)
    np.testing.assert_allclose(back.origin, headsq.origin, atol=1e-4)
    np.testing.assert_allclose(back.direction, headsq.direction, atol=1e-6)


def test_missing_empty_truncated_and_wrong_files(tmp_path):
    with pytest.raises(InputError, match="nope.nii.gz: not found"):
        read_volume(tmp_path / "nope.nii.gz")
    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.nii.gz: file is empty"):
        read_volume(empty)
    data = samples.path("headsq").read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.nii.gz: file is truncated"):
        read_volume(cut)
    raw = tmp_path / "cut_raw.nii"
    raw.write_bytes(gzip.decompress(data)[:50000])
    with pytest.raises(InputError, match="cut_raw.nii: file is truncated"):
        read_volume(raw)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(InputError, match="notes.txt: unsupported volume format"):
        read_volume(txt)
    nodicom = tmp_path / "folder"
    nodicom.mkdir()
    with pytest.raises(InputError, match="folder: no DICOM series"):
        read_volume(nodicom)


def test_inputs_are_never_modified(tmp_path):
    src = samples.path("headsq")
    before = src.read_bytes()
    read_volume(src)
    assert src.read_bytes() == before
