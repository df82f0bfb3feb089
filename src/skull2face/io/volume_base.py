"""The in-memory head volume (`Volume`) and the checks every volume reader shares.

`skull2face.io.volumes` (files, and the entry `read_volume`) and `skull2face.io.dicom` (DICOM
series) both build on this module; it imports neither, so the readers' imports go one way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .native import native_output_to_log

# Largest image a reader decodes (bytes, as the file's pixel type holds it in memory), checked
# from the header before any voxel is read. The finest head CT in use, 0.3 mm over a whole head,
# is ~700 x 700 x 800 = 0.4 G voxels: 0.8 GB as int16, 1.6 GB as float32, both below the limit.
# Extraction then holds a few masks and a float32 copy of that size, so 2 GiB of voxels keeps
# a run within ~8 GB of memory; a decompression bomb (a 3.4 MB .nii.gz declaring 3.5 GB) is
# refused in milliseconds instead of ending in a MemoryError after minutes.
MAX_VOLUME_BYTES = 2 << 30


def pixel_bytes(pixel_id: int) -> int:
    """Bytes per pixel component of a SimpleITK pixel type (8 when unknown: the largest)."""
    sizes = {sitk.sitkUInt8: 1, sitk.sitkInt8: 1, sitk.sitkUInt16: 2, sitk.sitkInt16: 2, sitk.sitkUInt32: 4,
             sitk.sitkInt32: 4, sitk.sitkFloat32: 4, sitk.sitkVectorUInt8: 1, sitk.sitkVectorInt8: 1,
             sitk.sitkVectorUInt16: 2, sitk.sitkVectorInt16: 2, sitk.sitkVectorFloat32: 4}
    return sizes.get(pixel_id, 8)


def check_size(path: str | Path, size: tuple[int, ...] | list[int], bytes_per_voxel: int, components: int = 1,
               limit: int = MAX_VOLUME_BYTES) -> None:
    """Refuse an image too large to hold, from its header's size alone (nothing is decoded).

    Parameters
    ----------
    path : path-like
        The file or folder (named in the message).
    size : sequence of int
        Voxels along each axis, as the header declares them.
    bytes_per_voxel : int
        Bytes per component of one voxel as decoded.
    components : int
        Components per voxel (1 for a grey-value image).
    limit : int
        Largest decoded size in bytes (`MAX_VOLUME_BYTES`).

    Raises
    ------
    InputError
        The decoded image would exceed ``limit``.
    """
    voxels = int(np.prod([max(1, int(n)) for n in size], dtype=object))
    total = voxels * int(bytes_per_voxel) * max(1, int(components))
    if total > limit:
        grid = " x ".join(str(int(n)) for n in size)
        raise InputError(path, f"the header declares {grid} voxels ({voxels / 1e9:.3g} G voxels, "
                               f"{total / 2 ** 30:.3g} GiB decoded), more than the {limit / 2 ** 30:g} GiB limit "
                               "(a whole head at 0.3 mm is ~0.4 G voxels): a wrong header, or crop / resample "
                               "the volume first")


def check_header(path: Path) -> None:
    """Read a volume file's header only (size, pixel type) and refuse one too large to decode.

    A header that cannot be read is left to the full read, which names the problem.
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        with native_output_to_log():
            reader.ReadImageInformation()
    except RuntimeError:
        return
    check_size(path, reader.GetSize(), pixel_bytes(reader.GetPixelID()), reader.GetNumberOfComponents())


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
        with native_output_to_log():  # lazily-read pixel data is decoded here
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


def first_line(exc: Exception) -> str:
    """The useful line of a reader's (ITK's) error message."""
    import re

    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    # ITK messages start with a file:line location; the useful sentence is usually last, but a
    # trailing "Reason: <errno text>" is often stale (a truncated file reads as "No such file")
    useful = [ln for ln in lines if not ln.startswith(("Reason:", "Exception thrown"))] or lines
    return re.sub(r"^ITK ERROR: \w+\(0x[0-9a-fA-F]+\): ", "", useful[-1]) if useful else type(exc).__name__


def looks_like_dicom(path: Path) -> bool:
    """True when the file has the DICOM preamble's ``DICM`` marker."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
        return head[128:132] == b"DICM"
    except OSError:
        return False


def refuse_non_finite(path: Path, bad: int, total: int) -> None:
    """The one message for NaN or infinite voxels (what they hold, air or bone, cannot be guessed)."""
    if bad and bad == total:
        raise InputError(path, "every voxel is NaN or infinite: the volume holds no image")
    if bad:
        raise InputError(path, f"{bad} of {total} voxels ({100 * bad / total:.2g} %) are NaN or infinite; skull2face "
                               "does not guess what they hold: fill them (e.g. with the air value) first")


def _check_voxels(vol: Volume, path: Path) -> None:
    """Refuse NaN or infinite voxels in what was read, and a volume of one value (no image)."""
    if not np.issubdtype(vol.voxels.dtype, np.integer):
        refuse_non_finite(path, int(vol.voxels.size - np.count_nonzero(np.isfinite(vol.voxels))), vol.voxels.size)
    lo, hi = vol.voxels.min(), vol.voxels.max()
    if lo == hi:  # refused here, before the HU test, whose advice (--intensity raw) cannot help
        raise InputError(path, f"every voxel is {float(lo):g}: the volume holds no image (no skin or bone to extract)")


def check_geometry(vol: Volume, path: Path) -> None:
    """Refuse what was read when its voxels are not finite or its grid cannot hold a head in mm."""
    _check_voxels(vol, path)
    if min(vol.shape) < 2:
        raise InputError(path, f"volume is not 3D enough to hold a head (grid {vol.shape})")
    if not np.all(np.isfinite(vol.spacing)) or np.any(vol.spacing <= 0):
        raise InputError(path, f"invalid voxel spacing {vol.spacing.tolist()}")
    if np.any(vol.spacing > 20) or np.any(vol.spacing < 0.01):
        raise InputError(path, f"voxel spacing {vol.spacing.round(4).tolist()} is not in millimetres "
                               "(expected 0.01..20 mm)")


__all__ = ["MAX_VOLUME_BYTES", "Volume", "check_geometry", "check_header", "check_size", "first_line",
           "looks_like_dicom", "pixel_bytes", "refuse_non_finite"]
