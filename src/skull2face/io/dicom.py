"""DICOM series as scanners write them: gantry tilt and uneven slice spacing, read honestly.

A clinical CT series is often not a regular grid. With **gantry tilt** the slice planes are
oblique while the table moves along the body axis, so each slice's position
(ImagePositionPatient) is not along its plane's normal: stacking the slices as a box, as ITK's
series reader does, shears the head. With **uneven spacing** (4 mm slices through the face,
7 mm up to the vertex; one odd gap where the protocol changes) a single spacing is wrong for
part of the head. 3D Slicer and dcm2niix read such series by resampling them onto a regular
grid with a warning, instead of refusing them; so does this module (one place for the
algorithm):

1. Every slice of the chosen series is read on its own (SimpleITK), with its own position.
   The slices must share one orientation (row and column cosines); they are sorted by their
   distance ``w`` along the slice normal ``n = row x col``.
2. The output grid keeps the slices' own in-plane axes (row, col) and stacks along ``n``: an
   orthonormal direction, so a tilted series comes out oblique in LPS, never sheared. In
   plane it keeps the finest pixel spacing and covers every slice's footprint (the tilt shifts
   each slice in its plane; voxels outside a slice's field get the series' lowest value).
   Along ``n`` it starts at the first slice and steps by the finest *regular* slice spacing
   (that of the finest run of at least two equal gaps; the median gap when no run has two)
   divided by a whole number so that the step is about 1 mm at most (4 mm slices: four 1 mm steps,
   every slice of that run on a grid plane).
3. Each slice is resampled onto the in-plane grid at its own position (SimpleITK, linear),
   and each output plane is interpolated linearly along ``n`` between the two slices around
   it, in patient coordinates. A regular untilted series never comes here: ITK reads it
   exactly as stored.

Refused, each with its own one-line reason: a missing slice inside a regular run (a gap that
is a whole multiple of equal gaps on both sides; a change of spacing between runs, such as
4 -> 7 mm, is a protocol's choice and is resampled), slices of mixed orientation, two slices at
one position, slices that cannot be read; slices that do not lie on one stack (a slice off the
straight line the others' positions follow, or a gap far larger than the series' spacing: a
displaced slice, or two scans in one series), named by file, rather than resampled into a band
of the head; a series whose decoded voxels would exceed `volume_base.MAX_VOLUME_BYTES`; two
series of equal slice count in one folder, which no rule can tell apart (their
SeriesInstanceUIDs are listed).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from .native import native_output_to_log
from .volume_base import Volume, check_geometry, check_size, first_line, looks_like_dicom, pixel_bytes

log = logging.getLogger(__name__)

# Gaps within this fraction of each other form one run (one acquisition block of a protocol).
_RUN_TOLERANCE = 0.1
# A series is regular when every gap is within this fraction (plus a 0.005 mm rounding
# allowance of the position tags) of the median gap; otherwise it is resampled.
_EVEN_TOLERANCE = 0.01
# The slices are tilted when a slice's position lies off the first slice's normal line by more
# than this fraction of a pixel.
_TILT_TOLERANCE_PIXELS = 0.05
# Two slices closer than this (mm) along the normal lie at one position.
_DUPLICATE_MM = 0.01
# Largest output slice step (mm). Measured on headsq written as 18-degree tilted slices with
# the GE series' gaps (tests/test_dicom_clinical.py): stepping by the 4 mm slice spacing itself
# put skin / skull surfaces 0.41 / 0.95 mm (mean) from the untilted volume's, 1 mm steps
# 0.34 / 0.81 mm.
_MAX_STEP_MM = 1.0
# A slice lies off the stack when its position is farther than this (mm, or one pixel when
# that is larger) from the straight line the series' positions follow. Scanners write
# positions to 0.001-0.01 mm and a tilted series' positions lie on one line (the table's
# travel), so 1 mm is a displaced slice, never rounding.
_OFF_STACK_MM = 1.0
# A gap between neighbouring slices larger than both of these is not a spacing of one volume
# but a displaced slice or a second scan: clinical head protocols use 0.5-10 mm slices, and a
# series with a few lost 5 mm slices (missing-slice message) stays below 25 mm.
_FAR_GAP_FACTOR = 4.0
_FAR_GAP_MM = 25.0


def read_dicom_folder(folder: Path) -> Volume:
    """Read the largest DICOM series of ``folder`` as a `Volume` on a regular grid.

    Parameters
    ----------
    folder : Path
        A folder holding one or more DICOM series; the one with most slices is taken (the
        choice is logged as a warning).

    Returns
    -------
    Volume
        Voxels in the series' units after rescale (HU for CT). A regular, untilted series is
        read as stored; a tilted or unevenly spaced one is resampled (see the module
        docstring), with one warning line and ``info["geometry_correction"]`` saying what was
        detected, the method, the output spacing and grid, and the largest gap interpolated.

    Raises
    ------
    InputError
        No series; too few slices; a corrupt or unreadable slice; a missing slice; mixed
        orientations; two slices at one position.
    """
    try:
        with native_output_to_log():
            series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)) or ()
    except RuntimeError as exc:
        raise InputError(folder, f"cannot scan folder for DICOM: {first_line(exc)}") from None
    if not series_ids:
        raise InputError(folder, "no DICOM series found in this folder")
    with native_output_to_log():
        series = {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids}
    chosen = max(series, key=lambda s: len(series[s]))
    files = series[chosen]
    tied = sorted(sid for sid in series if len(series[sid]) == len(files))
    if len(tied) > 1:
        raise InputError(folder, f"holds {len(tied)} DICOM series of {len(files)} slices each, which skull2face "
                                 f"cannot tell apart (SeriesInstanceUIDs {', '.join(tied)}): put the series of the "
                                 "head to use in a folder of its own")
    if len(series) > 1:
        others = ", ".join(f"{sid} ({len(series[sid])} slices)" for sid in series if sid != chosen)
        log.warning("%s holds %d DICOM series; using %s (%d slices), ignoring %s",
                    folder, len(series), chosen, len(files), others)
    if len(files) < 2:
        raise InputError(folder, f"DICOM series {chosen} has only {len(files)} slice(s); a head volume needs many")
    info = {"format": "dicom", "series_uid": chosen, "n_slices": len(files), "n_series_in_folder": len(series)}
    geo = slice_geometry(folder, files, {os.path.realpath(f) for fs in series.values() for f in fs})
    if geo["regular"]:
        vol = _read_regular(folder, chosen, geo["files"], info)
    else:
        vol = _read_resampled(folder, geo, info)
    check_geometry(vol, folder)
    return vol


def _read_regular(folder: Path, chosen: str, files: list[str], info: dict) -> Volume:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        with native_output_to_log():
            image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(folder, f"cannot read DICOM series {chosen} (truncated or corrupt slice?): "
                                 f"{first_line(exc)}") from None
    return Volume.from_sitk(image, str(folder), info)


def _unreadable_dicom(folder: Path, in_series: set[str]) -> list[Path]:
    """Files of ``folder`` that start like DICOM but belong to no series GDCM could read
    (a truncated or corrupt slice is dropped from its series, leaving a gap)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and os.path.realpath(p) not in in_series
                  and p.name.upper() != "DICOMDIR" and looks_like_dicom(p))


def _floats(reader: sitk.ImageFileReader, tag: str) -> np.ndarray:
    return np.array([float(v) for v in reader.GetMetaData(tag).split("\\")], dtype=np.float64)


def gap_runs(gaps: np.ndarray) -> list[tuple[int, int, float]]:
    """Split consecutive slice gaps into runs of equal gaps.

    Parameters
    ----------
    gaps : np.ndarray
        ``(n - 1,)`` float64, distances (mm) between consecutive sorted slices.

    Returns
    -------
    list of (start, stop, mean_mm)
        Gap index ranges ``gaps[start:stop]`` whose gaps agree within 10 % of their mean.
    """
    runs: list[list[int]] = []
    for i, g in enumerate(gaps):
        if runs and abs(g - np.mean(gaps[runs[-1]])) <= _RUN_TOLERANCE * np.mean(gaps[runs[-1]]):
            runs[-1].append(i)
        else:
            runs.append([i])
    return [(r[0], r[-1] + 1, float(np.mean(gaps[r]))) for r in runs]


def _missing_slices(runs: list[tuple[int, int, float]]) -> tuple[int, int, float] | None:
    """The first run that looks like lost slices: its gap a whole multiple (>= 2) of equal runs
    on both sides (or, at an end of the series, a single such gap next to a run). None if none."""
    for r, (start, stop, g) in enumerate(runs):
        sides = [runs[q][2] for q in (r - 1, r + 1) if 0 <= q < len(runs)]
        if not sides or (len(sides) == 1 and stop - start > 1):
            continue
        if len(sides) == 2 and abs(sides[0] - sides[1]) > _RUN_TOLERANCE * max(sides):
            continue
        s = float(np.mean(sides))
        k = round(g / s)
        if k >= 2 and abs(g - k * s) <= _RUN_TOLERANCE * s:
            return start, k - 1, s
    return None


def slice_geometry(folder: Path, files: tuple[str, ...] | list[str], in_series: set[str] = frozenset()) -> dict:
    """Positions of a series' slices and what is irregular about them; refuse what cannot be trusted.

    Parameters
    ----------
    folder : Path
        The series' folder (named in errors).
    files : sequence of str
        The series' slice files.
    in_series : set of str
        Real paths of every file GDCM placed in some series: a DICOM-looking file outside them
        is unreadable, and named when the series has a gap.

    Returns
    -------
    dict
        ``files`` sorted along the normal; ``row``, ``col``, ``normal`` (3,) unit vectors;
        ``positions`` (n, 3) LPS mm; ``w`` (n,) mm along the normal from the first slice;
        ``gaps`` (n - 1,) mm; ``runs`` (see `gap_runs`); ``tilt_deg``; ``tilted``, ``uneven``
        and ``regular`` (neither) flags.

    Raises
    ------
    InputError
        A slice without position/orientation, mixed orientations, duplicate positions, an
        unreadable slice that leaves a gap, a missing slice.
    """
    positions, orients, plane, depth = [], [], (0, 0), 0
    reader = sitk.ImageFileReader()
    for f in files:
        reader.SetFileName(f)
        try:
            with native_output_to_log():
                reader.ReadImageInformation()
            positions.append(_floats(reader, "0020|0032"))
            orients.append(_floats(reader, "0020|0037"))
            spacing = reader.GetSpacing()
        except (RuntimeError, ValueError):
            raise InputError(f, "DICOM slice lacks its position/orientation (0020,0032/0037) or is corrupt") from None
        if positions[-1].shape != (3,) or orients[-1].shape != (6,):
            raise InputError(f, "DICOM slice has a malformed position/orientation (0020,0032/0037)")
        plane = max(plane, tuple(reader.GetSize()[:2]), key=lambda wh: wh[0] * wh[1])
        depth = max(depth, pixel_bytes(reader.GetPixelID()) * reader.GetNumberOfComponents())
    # the series as decoded: every slice as large as the largest (checked before any pixel is read)
    check_size(folder, (*plane, len(files)), depth)
    orients = np.array(orients)
    differ = np.abs(orients - orients[0]).max(axis=1) > 1e-3
    if differ.any():
        i = int(np.argmax(differ))
        raise InputError(folder, f"DICOM series mixes slice orientations: {int(differ.sum())} of {len(files)} slices "
                                 f"(e.g. {Path(files[i]).name}) are not oriented like {Path(files[0]).name}")
    row, col = orients[0, :3], orients[0, 3:]
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    positions = np.array(positions)
    order = np.argsort(positions @ normal, kind="stable")
    positions, files = positions[order], [files[i] for i in order]
    w = (positions - positions[0]) @ normal
    gaps = np.diff(w)
    if np.any(gaps < _DUPLICATE_MM):
        i = int(np.argmax(gaps < _DUPLICATE_MM))
        raise InputError(folder, f"DICOM series has two slices at the same position ({Path(files[i]).name} and "
                                 f"{Path(files[i + 1]).name}: duplicates or mixed series)")
    median = float(np.median(gaps))
    _refuse_off_stack(folder, files, positions, w, normal, float(min(spacing[:2])))
    _refuse_far_gap(folder, files, w, gaps, median)
    uneven = bool(np.any(np.abs(gaps - median) > _EVEN_TOLERANCE * median + 0.005))
    runs = gap_runs(gaps)
    missing = _missing_slices(runs) if uneven else None
    if uneven:
        unread = _unreadable_dicom(folder, in_series)
        if unread:
            raise InputError(unread[0], f"DICOM slice is truncated or corrupt: it cannot be read, which leaves a gap "
                                        f"in the series ({len(unread)} such file(s) in {folder})")
    if missing is not None:
        i, n_lost, s = missing
        raise InputError(folder, f"DICOM series has a missing slice: slices at {w[i]:.2f} and {w[i + 1]:.2f} mm "
                                 f"along the slice normal are {gaps[i]:.2f} mm apart, the series' spacing there is "
                                 f"{s:.2f} mm ({n_lost} slice(s) missing)")
    off_line = (positions - positions[0]) - np.outer(w, normal)
    tilted = bool(np.linalg.norm(off_line, axis=1).max() > _TILT_TOLERANCE_PIXELS * min(spacing[:2]))
    travel = positions[-1] - positions[0]
    tilt = float(np.degrees(np.arccos(min(1.0, abs(travel @ normal) / np.linalg.norm(travel)))))
    return {"files": files, "row": row, "col": col, "normal": normal, "positions": positions, "w": w,
            "gaps": gaps, "runs": runs, "tilt_deg": tilt, "tilted": tilted, "uneven": uneven,
            "regular": not (tilted or uneven)}


def _names(files: list[str], idx) -> str:
    """Up to three slice file names, then a count of the rest."""
    idx = list(idx)
    names = ", ".join(Path(files[i]).name for i in idx[:3])
    return names + (f" and {len(idx) - 3} more" if len(idx) > 3 else "")


def _refuse_off_stack(folder: Path, files: list[str], positions: np.ndarray, w: np.ndarray, normal: np.ndarray,
                      pixel_mm: float) -> None:
    """Refuse slices whose positions leave the straight line the series' positions follow.

    The line is fitted robustly (per-axis medians of the steps between neighbours and of the
    offsets), so one displaced slice cannot pull it. An untilted series' line is the slice
    normal; a gantry-tilted one's is oblique but straight (the table's travel).
    """
    if len(w) < 3:
        return
    steps = np.diff(positions, axis=0) / np.diff(w)[:, None]
    d = np.median(steps, axis=0)
    c = np.median(positions - np.outer(w, d), axis=0)
    off = np.linalg.norm(positions - (c + np.outer(w, d)), axis=1)
    bad = np.flatnonzero(off > max(_OFF_STACK_MM, pixel_mm))
    if bad.size:
        worst = int(bad[np.argmax(off[bad])])
        raise InputError(folder, f"DICOM slices do not lie on one stack: {bad.size} of {len(files)} slice(s) "
                                 f"({_names(files, bad)}) lie off the line the other slices' positions follow "
                                 f"(worst {Path(files[worst]).name}, {off[worst]:.1f} mm off); a displaced slice or "
                                 "two scans in one series: remove the stray slice(s) or separate the scans")


def _refuse_far_gap(folder: Path, files: list[str], w: np.ndarray, gaps: np.ndarray, median: float) -> None:
    """Refuse a gap far outside the series' spacing (`_FAR_GAP_FACTOR`, `_FAR_GAP_MM`): the slices
    beyond it are not part of one volume (a slice displaced along the stack, or a second scan)."""
    far = np.flatnonzero((gaps > _FAR_GAP_FACTOR * median) & (gaps > _FAR_GAP_MM))
    if not far.size:
        return
    i = int(far[np.argmax(gaps[far])])
    if i == 0 or i == len(gaps) - 1:  # one end slice far from the rest: that slice is the stray one
        k, nb = (0, 1) if i == 0 else (len(files) - 1, len(files) - 2)
        what = f"slice {Path(files[k]).name} lies {gaps[i]:.1f} mm from its neighbour {Path(files[nb]).name}"
    else:
        what = (f"slices {Path(files[i]).name} and {Path(files[i + 1]).name} are {gaps[i]:.1f} mm apart "
                f"({w[i]:.1f} and {w[i + 1]:.1f} mm along the slice normal)")
    raise InputError(folder, f"DICOM slices do not lie on one stack: {what}, while the series' spacing is "
                             f"{median:.2f} mm; a displaced slice or two scans in one series: remove the stray "
                             "slice(s) or separate the scans")


def regular_spacing(gaps: np.ndarray, runs: list[tuple[int, int, float]]) -> float:
    """Output slice spacing (mm): the finest regular spacing, divided into steps of at most 1 mm.

    The finest regular spacing is that of the finest run of at least two equal gaps (the median
    gap when no run has two). Dividing it by a whole number keeps every slice of that run on a
    grid plane, unchanged; steps of at most `_MAX_STEP_MM` (5 % more allowed, so that 4.01 mm
    slices get 1.003 mm steps) let marching cubes follow the linear interpolation between
    slices instead of cutting across it.
    """
    long_runs = [g for start, stop, g in runs if stop - start >= 2]
    finest = float(min(long_runs)) if long_runs else float(np.median(gaps))
    return finest / max(1, int(np.ceil(finest / _MAX_STEP_MM - 0.05)))


def _read_slice(f: str) -> sitk.Image:
    try:
        with native_output_to_log():
            image = sitk.ReadImage(f)
            sitk.GetArrayViewFromImage(image)  # pixel data is read lazily; fail here, not later
    except RuntimeError as exc:
        raise InputError(f, f"DICOM slice is truncated or corrupt: {first_line(exc)}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(f, "expected a grey-value DICOM slice, got a multi-component (colour) image")
    if image.GetDimension() == 3 and image.GetSize()[2] != 1:
        raise InputError(f, f"DICOM file holds {image.GetSize()[2]} frames; expected one slice per file")
    return image


def _pixels(image: sitk.Image) -> np.ndarray:
    """``(rows, cols)`` float32 pixels of one slice (2D, or 3D with one plane)."""
    a = sitk.GetArrayFromImage(image).astype(np.float32)
    return a.reshape(a.shape[-2:])


def _runs_text(runs: list[tuple[int, int, float]]) -> str:
    return ", ".join(f"{g:.2f} mm x{stop - start}" for start, stop, g in runs)


def _read_resampled(folder: Path, geo: dict, info: dict) -> Volume:
    """Resample a tilted or unevenly spaced series onto a regular grid (module docstring)."""
    row, col, normal, w = geo["row"], geo["col"], geo["normal"], geo["w"]
    frame = np.column_stack([row, col, normal])  # columns: the output's index axes in LPS
    images = [_read_slice(f) for f in geo["files"]]
    arrays = [_pixels(im) for im in images]  # (rows, cols)
    # int16 out when the slices are integers that fit it (CT in HU), float32 otherwise
    integer = (all(np.issubdtype(sitk.GetArrayViewFromImage(im).dtype, np.integer) for im in images)
               and min(a.min() for a in arrays) >= -32768 and max(a.max() for a in arrays) <= 32767)
    # each slice's first pixel in the (row, col) plane, mm from the first slice's
    uv0 = (geo["positions"] - geo["positions"][0]) @ frame[:, :2]
    spacings = np.array([im.GetSpacing()[:2] for im in images])
    sizes = np.array([im.GetSize()[:2] for im in images])
    step = spacings.min(axis=0)
    lo = np.floor(uv0.min(axis=0) / step + 1e-6)
    hi = np.ceil((uv0 + (sizes - 1) * spacings).max(axis=0) / step - 1e-6)
    shape2 = (hi - lo + 1).astype(int)
    start = lo * step
    pad = float(min(a.min() for a in arrays))
    ref = sitk.Image([int(v) for v in shape2], sitk.sitkFloat32)
    ref.SetSpacing(step.tolist())
    ref.SetOrigin(start.tolist())
    planes = []
    for a, p, s in zip(arrays, uv0, spacings):
        img = sitk.GetImageFromArray(a)
        img.SetSpacing(s.tolist())
        img.SetOrigin(p.tolist())
        out = sitk.Resample(img, ref, sitk.Transform(2, sitk.sitkIdentity), sitk.sitkLinear, pad, sitk.sitkFloat32)
        planes.append(sitk.GetArrayFromImage(out).T)  # (nu, nv)
    dz = regular_spacing(geo["gaps"], geo["runs"])
    nw = int(np.floor(w[-1] / dz + 1e-6)) + 1
    check_size(folder, (*shape2, nw), 2 if integer else 4)  # the regular grid, before it is allocated
    voxels = np.empty((*shape2, nw), dtype=np.int16 if integer else np.float32)
    for k in range(nw):
        z = k * dz
        i = int(np.clip(np.searchsorted(w, z, side="right") - 1, 0, len(w) - 2))
        t = float(np.clip((z - w[i]) / (w[i + 1] - w[i]), 0.0, 1.0))
        plane = planes[i] if t < 1e-6 else planes[i + 1] if t > 1 - 1e-6 else (1 - t) * planes[i] + t * planes[i + 1]
        voxels[:, :, k] = np.rint(plane) if integer else plane
    spacing = np.array([step[0], step[1], dz])
    origin = geo["positions"][0] + frame[:, :2] @ start
    what = []
    if geo["tilted"]:
        what.append(f"gantry tilt {geo['tilt_deg']:.1f} deg")
    if geo["uneven"]:
        what.append(f"uneven slice spacing ({_runs_text(geo['runs'])} along the slice normal)")
    largest = float(geo["gaps"].max())
    method = ("each slice resampled in its own plane at its own position (linear), then linear interpolation "
              "between neighbouring slices along the slice normal; the grid keeps the slices' row and column "
              "axes and stacks along the normal, starting at the first slice")
    grid = " x ".join(str(v) for v in voxels.shape)
    log.warning("%s: %s corrected: resampled to a regular grid of %s mm (%s voxels) by linear interpolation between "
                "slices; largest gap interpolated %.2f mm", folder, " and ".join(what),
                " x ".join(f"{v:.2f}" for v in spacing), grid, largest)
    info = dict(info, geometry_correction={
        "detected": {
            "gantry_tilt_deg": round(geo["tilt_deg"], 3) if geo["tilted"] else 0.0,
            "gantry_tilt_tag_deg": _tilt_tag(geo["files"][0]),
            "uneven_spacing": geo["uneven"],
            "spacing_runs_mm": [{"gap_mm": round(g, 4), "count": stop - start} for start, stop, g in geo["runs"]],
            "slice_positions_along_normal_mm": [round(float(v), 4) for v in w],
            "largest_gap_mm": round(largest, 4),
        },
        "method": method,
        "output_spacing_mm": [round(float(v), 6) for v in spacing],
        "output_grid": list(voxels.shape),
        "output_direction": frame.tolist(),
        "padding_value": pad,
        "note": f"voxels between slices are interpolated, not measured; the largest gap between measured "
                f"slices is {largest:.2f} mm, so a voxel lies up to {largest / 2:.2f} mm from the nearest one",
    })
    return Volume(voxels=voxels, spacing=spacing, origin=origin, direction=frame, source=str(folder), info=info)


def _tilt_tag(f: str) -> float | None:
    """Gantry/Detector Tilt (0018,1120) in degrees as the scanner wrote it, or None."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(f)
    try:
        with native_output_to_log():
            reader.ReadImageInformation()
        return float(reader.GetMetaData("0018|1120")) if reader.HasMetaDataKey("0018|1120") else None
    except (RuntimeError, ValueError):
        return None
