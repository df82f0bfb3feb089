"""Head volumes (CT or MR) from DICOM series, NIfTI, NRRD and MHA/MHD, read with SimpleITK.

Every reader returns one in-memory form, `Volume`: the voxel array indexed ``[i, j, k]``
along the image's own x, y, z axes, plus LPS millimetre geometry (origin, spacing, direction),
exactly as DICOM and ITK define it. SimpleITK already converts NIfTI's RAS to LPS and applies
DICOM rescale slope/intercept, so CT values arrive in Hounsfield units.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

log = logging.getLogger(__name__)

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")

@dataclass
class Volume:
    """A scalar volume with LPS millimetre geometry.

    Attributes
    ----------
    voxels : np.ndarray
        ``(nx, ny, nz)`` int16 (CT, Hounsfield units) or float32; ``voxels[i, j, k]`` is the
        value at index ``(i, j, k)`` along the image's x, y, z axes.
    spacing : np.ndarray
        ``(3,)`` float64, voxel size in mm along i, j, k.
    origin : np.ndarray
        ``(3,)`` float64, LPS position (mm) of the centre of voxel ``(0, 0, 0)``.
    direction : np.ndarray
        ``(3, 3)`` float64; column ``c`` is the LPS unit vector of index axis ``c``.
    source : str
        Where it was read from.
    info : dict
        Reader notes (format, series chosen, modality, ...).
    """

    voxels: np.ndarray
    spacing: np.ndarray
    origin: np.ndarray
    direction: np.ndarray
    source: str = ""
    info: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.voxels.shape)

    @property
    def index_to_lps(self) -> np.ndarray:
        """``(4, 4)`` affine taking ``(i, j, k, 1)`` voxel indices to LPS mm."""
        m = np.eye(4)
        m[:3, :3] = self.direction @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def to_lps(self, ijk: np.ndarray) -> np.ndarray:
        """Map ``(n, 3)`` continuous voxel indices to ``(n, 3)`` LPS millimetres."""
        ijk = np.asarray(ijk, dtype=np.float64)
        return ijk @ (self.direction @ np.diag(self.spacing)).T + self.origin

    def geometry(self) -> dict:
        """JSON-ready description of the grid (shape, spacing, origin, direction, orientation code)."""
        return {
            "shape_ijk": list(self.shape),
            "spacing_mm": self.spacing.tolist(),
            "origin_lps_mm": self.origin.tolist(),
            "direction": self.direction.tolist(),
            "orientation": sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(
                self.direction.ravel().tolist()),
            "dtype": str(self.voxels.dtype),
            "value_range": [float(self.voxels.min()), float(self.voxels.max())],
        }

    @classmethod
    def from_sitk(cls, image: sitk.Image, source: str = "", info: dict | None = None) -> "Volume":
        if image.GetDimension() != 3:
            raise InputError(source, f"expected a 3D volume, got {image.GetDimension()}D")
        if image.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(source, "expected a scalar (grey-value) volume, got a multi-component image")
        arr = sitk.GetArrayFromImage(image)  # (z, y, x)
        if arr.dtype not in (np.int16, np.float32):
            # int16 covers every CT in HU; anything else (uint16 raw, float64) becomes float32
            arr = arr.astype(np.int16 if np.issubdtype(arr.dtype, np.integer)
                             and arr.min() >= -32768 and arr.max() <= 32767 else np.float32)
        return cls(
            voxels=np.ascontiguousarray(arr.transpose(2, 1, 0)),
            spacing=np.array(image.GetSpacing(), dtype=np.float64),
            origin=np.array(image.GetOrigin(), dtype=np.float64),
            direction=np.array(image.GetDirection(), dtype=np.float64).reshape(3, 3),
            source=source,
            info=dict(info or {}),
        )

    def to_sitk(self) -> sitk.Image:
        image = sitk.GetImageFromArray(self.voxels.transpose(2, 1, 0))
        image.SetSpacing(self.spacing.tolist())
        image.SetOrigin(self.origin.tolist())
        image.SetDirection(self.direction.ravel().tolist())
        return image


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
        multi-component image.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "not found")
    if path.is_dir():
        from .dicom import read_dicom_folder  # it builds on this module

        return read_dicom_folder(path)
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty (0 bytes)")
    if volume_stem(path) is None:
        if path.suffix.lower() == ".dcm" or _looks_like_dicom(path):
            raise InputError(path, "this is a single DICOM file: pass the folder that holds the whole series")
        raise InputError(path, f"unsupported volume format; use a DICOM folder or one of {', '.join(VOLUME_SUFFIXES)}")
    _check_complete(path)
    if path.name.lower().endswith((".nii", ".nii.gz")):
        _check_nifti_finite(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise InputError(path, f"cannot read volume (truncated or corrupt?): {_first_line(exc)}") from None
    try:
        vol = Volume.from_sitk(image, str(path), {"format": "".join(path.suffixes[-2:]).lower()})
    except RuntimeError as exc:  # lazily-read pixel data can still fail here
        raise InputError(path, f"cannot read voxel data (truncated or corrupt?): {_first_line(exc)}") from None
    _check_geometry(vol, path)
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


def _first_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file:line location; the useful sentence is usually last
    return lines[-1] if lines else type(exc).__name__


def _looks_like_dicom(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def _refuse_non_finite(path: Path, bad: int, total: int) -> None:
    """The one message for NaN or infinite voxels (what they hold, air or bone, cannot be guessed)."""
    if bad and bad == total:
        raise InputError(path, "every voxel is NaN or infinite: the volume holds no image")
    if bad:
        raise InputError(path, f"{bad} of {total} voxels ({100 * bad / total:.2g} %) are NaN or infinite; skull2face "
                               "does not guess what they hold: fill them (e.g. with the air value) first")


def _check_voxels(vol: Volume, path: Path) -> None:
    """Refuse NaN or infinite voxels in what was read."""
    if not np.issubdtype(vol.voxels.dtype, np.integer):
        _refuse_non_finite(path, int(vol.voxels.size - np.count_nonzero(np.isfinite(vol.voxels))), vol.voxels.size)


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
    _refuse_non_finite(path, bad, total)


def _check_geometry(vol: Volume, path: Path) -> None:
    _check_voxels(vol, path)
    if min(vol.shape) < 2:
        raise InputError(path, f"volume is not 3D enough to hold a head (grid {vol.shape})")
    if not np.all(np.isfinite(vol.spacing)) or np.any(vol.spacing <= 0):
        raise InputError(path, f"invalid voxel spacing {vol.spacing.tolist()}")
    if np.any(vol.spacing > 20) or np.any(vol.spacing < 0.01):
        raise InputError(path, f"voxel spacing {vol.spacing.round(4).tolist()} is not in millimetres "
                               "(expected 0.01..20 mm)")


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
