"""Head volumes (CT or MR) from DICOM series, NIfTI, NRRD and MHA/MHD, read with SimpleITK.

Every reader returns one in-memory form, `Volume` (`skull2face.io.volume_base`, with the
checks the readers share): the voxel array indexed ``[i, j, k]`` along the image's own x, y, z
axes, plus LPS millimetre geometry (origin, spacing, direction), exactly as DICOM and ITK
define it. SimpleITK already converts NIfTI's RAS to LPS and applies
DICOM rescale slope/intercept, so CT values arrive in Hounsfield units.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .dicom import read_dicom_folder
from .native import native_output_to_log
from .volume_base import (Volume, check_geometry, check_header, first_line, looks_like_dicom,
                          refuse_non_finite)

log = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder's files in name order (a DICOM series)."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def volume_stem(path: str | os.PathLike) -> str | None:
    """The file name without its volume suffix (``head.nii.gz`` -> ``head``); None if it has none."""
    name = Path(path).name
    for suffix in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return None


def is_volume_path(path: str | os.PathLike) -> bool:
    """True for what `read_volume` reads: a folder (DICOM series) or a volume file by suffix."""
    return Path(path).is_dir() or volume_stem(path) is not None


def read_volume(path: str | os.PathLike) -> Volume:
    """Read a head volume from a DICOM series folder or a NIfTI / NRRD / MHA / MHD file.

    Parameters
    ----------
    path : path-like
        A folder holding one or more DICOM series (the one with most slices is taken, and
        the choice is logged; a tilted or unevenly spaced series is resampled onto a regular
        grid with a warning, see `skull2face.io.dicom`), or a volume file.

    Returns
    -------
    Volume
        Voxels in HU for CT (rescale applied), geometry in LPS mm.

    Raises
    ------
    InputError
        Missing, empty, truncated or corrupt file; a folder with no DICOM series; a series
        with a missing slice, mixed orientations or duplicate positions; a non-3D or
        multi-component image; a header declaring more than
        `skull2face.io.volume_base.MAX_VOLUME_BYTES` of voxels (checked before decoding).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "not found")
    if path.is_dir():
        return read_dicom_folder(path)
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if volume_stem(path) is None:
        if path.suffix.lower() == ".dcm" or looks_like_dicom(path):
            raise InputError(path, "this is a single DICOM file: pass the folder that holds the whole series")
        raise InputError(path, f"unsupported volume format; use a DICOM folder or one of {', '.join(VOLUME_SUFFIXES)}")
    check_header(path)  # the size the header declares, before a byte of image is decoded
    _check_complete(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_finite(path)
    try:
        with native_output_to_log():
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(path, f"cannot read volume (truncated or corrupt?): {first_line(exc)}") from None
    try:
        vol = Volume.from_sitk(image, str(path), {"format": "".join(path.suffixes[-2:]).lower()})
    except RuntimeError as exc:  # lazily-read pixel data can still fail here
        raise InputError(path, f"cannot read voxel data (truncated or corrupt?): {first_line(exc)}") from None
    check_geometry(vol, path)
    return vol


def _check_complete(path: Path) -> None:
    """Refuse truncated files, which ITK may read silently with zero-filled voxels."""
    import gzip
    import zlib

    name = path.name.lower()
    if name.endswith(".gz"):
        try:
            with gzip.open(path, "rb") as f:
                head = f.read(352)
                while f.read(1 << 22):
                    pass
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(path, f"file is truncated or corrupt (gzip stream: {exc})") from None
        if name.endswith(".nii.gz"):
            _check_nifti_size(path, head, None)
    elif name.endswith(".nii"):
        with open(path, "rb") as f:
            head = f.read(352)
        _check_nifti_size(path, head, path.stat().st_size)


def _check_nifti_size(path: Path, head: bytes, size: int | None) -> None:
    """Compare the NIfTI-1 header's promised voxel bytes with what the file holds."""
    import gzip
    import struct

    if len(head) < 348:
        raise InputError(path, "file is truncated: shorter than a NIfTI header")
    endian = "<" if struct.unpack("<i", head[:4])[0] == 348 else ">"
    if struct.unpack(endian + "i", head[:4])[0] != 348:
        return  # not NIfTI-1 (NIfTI-2 or other): leave it to ITK
    dims = struct.unpack(endian + "8h", head[40:56])
    bitpix = struct.unpack(endian + "h", head[72:74])[0]
    vox_offset = struct.unpack(endian + "f", head[108:112])[0]
    n = int(np.prod([max(1, d) for d in dims[1:1 + max(1, min(dims[0], 7))]]))
    expected = int(vox_offset) + n * bitpix // 8
    if size is None:
        with gzip.open(path, "rb") as f:
            size = 0
            while chunk := f.read(1 << 22):
                size += len(chunk)
    if size < expected:
        raise InputError(path, f"file is truncated: the header promises {expected} bytes of image, "
                               f"the file holds {size}")


_NIFTI_FLOATS = {16: "f4", 64: "f8"}  # NIfTI-1 datatype codes of float32 and float64


def _check_nifti_finite(path: Path) -> None:
    """Count NaN/inf voxels in a float NIfTI-1 file itself: ITK's reader turns them into 0 silently."""
    import gzip
    import struct

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(352)
        if len(head) < 348:
            return
        endian = "<" if struct.unpack("<i", head[:4])[0] == 348 else ">"
        if struct.unpack(endian + "i", head[:4])[0] != 348:
            return
        code = _NIFTI_FLOATS.get(struct.unpack(endian + "h", head[70:72])[0])
        if code is None:
            return
        dims = struct.unpack(endian + "8h", head[40:56])
        total = int(np.prod([max(1, d) for d in dims[1:1 + max(1, min(dims[0], 7))]]))
        f.seek(int(struct.unpack(endian + "f", head[108:112])[0]))
        dtype, bad = np.dtype(endian + code), 0
        while chunk := f.read(dtype.itemsize << 22):
            vals = np.frombuffer(chunk[: len(chunk) - len(chunk) % dtype.itemsize], dtype=dtype)
            bad += int(vals.size - np.count_nonzero(np.isfinite(vals)))
    refuse_non_finite(path, bad, total)


def write_volume(vol: Volume, path: str | os.PathLike) -> Path:
    """Write a volume atomically as NIfTI / NRRD / MHA (format from the suffix)."""
    from .atomic import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:
        sitk.WriteImage(vol.to_sitk(), str(tmp), useCompression=True)
    return path


def write_dicom_series(vol: Volume, folder: str | os.PathLike, series_description: str = "skull2face") -> Path:
    """Write a volume as a DICOM CT series, one file per slice along k (``slice_0000.dcm`` ...).

    The geometry (ImagePositionPatient, ImageOrientationPatient, PixelSpacing) is written
    so that `read_volume` on the folder gives back the same voxels and LPS geometry. Voxels
    are stored as int16 with rescale slope 1 and intercept 0 (HU unchanged).

    Parameters
    ----------
    vol : Volume
        ``vol.voxels`` must fit in int16.
    folder : path-like
        Created; must not already hold DICOM files.
    """
    import uuid

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.glob("*.dcm")):
        raise InputError(folder, "already holds .dcm files; refusing to mix series")
    root = "2.25."  # UUID-derived UIDs need no registered root (DICOM PS3.5 B.2)
    study, series = root + str(uuid.uuid4().int), root + str(uuid.uuid4().int)
    frame_of_ref = root + str(uuid.uuid4().int)
    row_dir, col_dir = vol.direction[:, 0], vol.direction[:, 1]
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    voxels = vol.voxels.astype(np.int16)
    for k in range(vol.shape[2]):
        img = sitk.GetImageFromArray(voxels[:, :, k].T)  # (rows=j, cols=i)
        img.SetSpacing(vol.spacing[:2].tolist())
        pos = vol.to_lps(np.array([[0.0, 0.0, k]]))[0]
        tags = {
            "0008|0016": "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
            "0008|0018": root + str(uuid.uuid4().int),
            "0008|0060": "CT",
            "0008|103e": series_description,
            "0020|000d": study,
            "0020|000e": series,
            "0020|0052": frame_of_ref,
            "0020|0013": str(k + 1),
            "0020|0032": "\\".join(f"{v:.6f}" for v in pos),
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*row_dir, *col_dir)),
            "0028|0030": f"{vol.spacing[1]:.6f}\\{vol.spacing[0]:.6f}",
            "0018|0050": f"{vol.spacing[2]:.6f}",
            "0028|1052": "0",
            "0028|1053": "1",
        }
        for tag, value in tags.items():
            img.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice_{k:04d}.dcm"))
        writer.Execute(img)
    return folder
