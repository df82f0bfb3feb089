"""Write the reduced copy of the GE HiSpeed tilted head CT bundled with skull2face.

Reads ``../shared/data/ct/ge_hispeed_tilted_dicom/`` (28 axial CT slices, GE HiSpeed Dual,
512 x 512 at 0.488 mm, gantry tilt 18.5 degrees, slices 4 mm then 7 mm apart; from
``neurolabusc/dcm_qa_ct`` ``In/GE/``, commit d03e30e4, BSD-2-Clause; the upstream credits Aliza
Medical Imaging's sample data; patient name already removed) and writes
``src/skull2face/data/ct/ge_hispeed_tilted_dicom_small/`` with the same 28 files, each:

* pixels reduced to 128 x 128: each kept pixel (every 4th row and column, starting with the
  first, so that ImagePositionPatient stays exact) is the mean over the 4 x 4 pixel area
  centred on it (separable kernel [1/2, 1, 1, 1, 1/2] / 4), rounded to int16; HU unchanged
  otherwise (rescale slope 1, intercept 0, as in the original);
* PixelSpacing x 4 (1.953125 mm); Rows and Columns 128;
* every other public tag as read (SimpleITK/GDCM): ImagePositionPatient and
  ImageOrientationPatient (so the tilt and the uneven slice positions are unchanged), the
  UIDs, GantryDetectorTilt, SliceThickness, the rescale; the patient fields stay as removed
  upstream. Private tags are not copied. GDCM adds empty PatientBirthDate/PatientSex
  (0010,0030/0040), RescaleType "US" (0028,1054) and SpacingBetweenSlices (0018,0088), set
  here to the slice's thickness; skull2face reads the slice positions, not that tag.

The script checks that the positions and orientations read back equal the originals within
1e-4 mm, and that the values are the block means.

Usage (from the repository root)::

    /work/venv/bin/python benchmarks/make_ge_small.py [--shared ../shared]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

FACTOR = 4
KERNEL = np.array([0.5, 1.0, 1.0, 1.0, 0.5]) / FACTOR  # the 4-pixel box centred on a pixel
OUT = Path(__file__).resolve().parents[1] / "src/skull2face/data/ct/ge_hispeed_tilted_dicom_small"
GEOMETRY = ("0020|0032", "0020|0037")
SIZED = ("0028|0010", "0028|0011", "0028|0030")  # Rows, Columns, PixelSpacing: set from the image


def _floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split("\\")])


def reduce_slice(src: Path, dst: Path) -> None:
    """Write ``src`` reduced FACTOR times in plane to ``dst`` (module docstring)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(src))
    image = reader.Execute()
    tags = {k: reader.GetMetaData(k) for k in reader.GetMetaDataKeys()}
    a = sitk.GetArrayFromImage(image)[0].astype(np.float64)  # (rows, cols)
    a = ndimage.correlate1d(ndimage.correlate1d(a, KERNEL, axis=0, mode="nearest"), KERNEL, axis=1, mode="nearest")
    small = np.rint(a[::FACTOR, ::FACTOR]).astype(np.int16)
    out = sitk.GetImageFromArray(small[None])
    sx, sy, sz = image.GetSpacing()
    # ITK writes the third spacing as SpacingBetweenSlices (0018,0088): the slice thickness
    out.SetSpacing((sx * FACTOR, sy * FACTOR, float(tags.get("0018|0050", sz))))
    out.SetOrigin(image.GetOrigin())
    out.SetDirection(image.GetDirection())
    for k, v in tags.items():
        if k not in SIZED:
            out.SetMetaData(k, v)
    out.SetMetaData("0028|0030", f"{sy * FACTOR:.7f}\\{sx * FACTOR:.7f}")
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(dst))
    writer.Execute(out)
    check = sitk.ImageFileReader()
    check.SetFileName(str(dst))
    back = check.Execute()
    for tag in GEOMETRY:
        if np.abs(_floats(check.GetMetaData(tag)) - _floats(tags[tag])).max() > 1e-4:
            raise SystemExit(f"{dst.name}: {tag} changed: {tags[tag]} -> {check.GetMetaData(tag)}")
    if not np.array_equal(sitk.GetArrayFromImage(back)[0], small):
        raise SystemExit(f"{dst.name}: pixel values changed on writing")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    args = parser.parse_args()
    src = args.shared / "data/ct/ge_hispeed_tilted_dicom"
    files = sorted(src.glob("*.dcm"))
    if len(files) != 28:
        raise SystemExit(f"expected the 28 slices of {src}, found {len(files)}")
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    for f in files:
        reduce_slice(f, OUT / f.name)
    size = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(files)} slices to {OUT} ({size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
