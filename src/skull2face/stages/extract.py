"""Stage ``extract``: head volume -> ``skull.ply``, ``skin.ply``, ``extract.json``, ``extract.png``.

The meshes are in the volume's own LPS millimetre coordinates, so they overlay the volume in
any viewer that honours DICOM geometry (3D Slicer, ITK-SNAP).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..geometry.surfaces import SurfaceSettings, extract_surfaces
from ..io.atomic import write_json
from ..io.meshes import save_mesh
from ..io.run_folder import run_folder
from ..io.volumes import file_sha256, read_volume
from ..options import nested, option

log = logging.getLogger(__name__)


@dataclass
class ExtractSettings:
    """Settings of ``skull2face extract``.

    Attributes
    ----------
    surfaces : SurfaceSettings
        Thresholds, opening, smoothing and decimation of the skin and bone surfaces.
    picture : bool
        Write ``extract.png``.
    """

    surfaces: SurfaceSettings = nested(SurfaceSettings, title="surfaces")
    picture: bool = option(True, help="write extract.png (a picture to check the result)")


def extract(volume_path: str | os.PathLike, out_dir: str | os.PathLike,
            settings: ExtractSettings | None = None) -> dict:
    """Extract skull and skin surfaces of a head volume into ``out_dir``.

    Parameters
    ----------
    volume_path : path-like
        DICOM series folder, NIfTI, NRRD or MHA/MHD file.
    out_dir : path-like
        Created if needed. Receives ``skin.ply``, ``skull.ply`` (unless skin-only),
        ``extract.json`` (resolved settings, volume geometry, thresholds, component sizes,
        mesh counts, timings) and ``extract.png`` (a picture to check the result).
    settings : ExtractSettings

    Returns
    -------
    dict
        The record written to ``extract.json``.
    """
    settings = settings or ExtractSettings()
    with run_folder(out_dir, "extract", [volume_path]) as out:
        return _extract(volume_path, out, settings)


def _extract(volume_path: str | os.PathLike, out: Path, settings: ExtractSettings) -> dict:
    """`extract` into the claimed folder ``out``."""
    t0 = time.perf_counter()
    vol = read_volume(volume_path)
    t_read = time.perf_counter() - t0
    log.info("read %s: grid %s, spacing %s mm", volume_path, vol.shape, vol.spacing.round(3).tolist())
    if settings.surfaces.modality == "mr":
        from ..errors import InputError
        from ..geometry.surfaces import volume_modality

        if volume_modality(vol) == "ct":
            raise InputError(volume_path, "--modality mr, but the volume is in Hounsfield units (air near -1000): "
                                          "it is a CT; extract it without --modality mr")
    surf = extract_surfaces(vol, settings.surfaces)
    mr_landmarks = None
    if settings.surfaces.modality == "mr" and not settings.surfaces.skin_only:
        from ..anatomy.mr_extract import add_mr_skull

        t = time.perf_counter()
        surf, mr_landmarks, _ = add_mr_skull(vol, surf)
        surf.record["timings"]["mr_skull_s"] = round(time.perf_counter() - t, 3)
    outputs = {"skin": str(save_mesh(surf.skin, out / "skin.ply").name)}
    if surf.skull is not None:
        outputs["skull"] = str(save_mesh(surf.skull, out / "skull.ply").name)
    if mr_landmarks is not None:
        from ..io.landmarks import write_landmarks

        outputs["skull_landmarks"] = write_landmarks(mr_landmarks, out / "skull_landmarks.json").name
    if settings.picture:
        from ..report.pictures import extraction_figure, save_png

        t = time.perf_counter()
        fig = extraction_figure(surf.skin, surf.skull, vol, title=Path(volume_path).name)
        outputs["picture"] = save_png(fig, out / "extract.png").name
        surf.record["timings"]["picture_s"] = round(time.perf_counter() - t, 3)
    surf.record["timings"]["read_s"] = round(t_read, 3)
    record = {
        "stage": "extract",
        "skull2face_version": __version__,
        "input": {"path": str(Path(volume_path).resolve()), "sha256": file_sha256(volume_path),
                  "reader": vol.info},
        "coordinates": "LPS millimetres of the input volume",
        "settings": dataclasses.asdict(settings.surfaces),
        "volume": vol.geometry(),
        **surf.record,
        "outputs": outputs,
    }
    write_json(out / "extract.json", record)
    s = surf.record
    log.info("skin: %d triangles, watertight=%s; skull: %s triangles (%.1fs)",
             s["skin"]["mesh"]["faces"], s["skin"]["mesh"]["watertight"],
             "-" if surf.skull is None else s["skull"]["mesh"]["faces"], s["timings"]["total_s"])
    return record


def echo(record: dict) -> str:
    """What ``skull2face extract`` prints: the files written."""
    return f"wrote {', '.join(record['outputs'].values())} and extract.json"
