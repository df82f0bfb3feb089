"""The real heads of a dataset: extract, landmark and gate each CT, over a process pool.

`prepare_head` turns one CT into its decimated skull and skin (LPS mm), their landmarks and
the quality gate's verdict (`skull2face.dataset.quality`); `prepare_heads` runs it over many
CTs in a spawned process pool with progress lines. A head the gate rejects comes back with
its verdict only (no meshes); a head whose face landmarks fail (or contradict the skull) comes
back without face landmarks and stays a pair for the regions it covers.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..anatomy.landmark_set import LandmarkSet
from ..errors import InputError
from ..io.volumes import file_sha256, volume_stem
from ..progress import progress
from .quality import assess_head, rejected

log = logging.getLogger(__name__)


def head_name(path: str | os.PathLike) -> str:
    """A CT's head name: its file name without volume suffixes (cranium_ct0051.nii.gz -> cranium_ct0051)."""
    return volume_stem(path) or Path(path).name


def _no_face_landmarks(reason: str) -> LandmarkSet:
    from ..anatomy.names import surface_names

    return LandmarkSet(points={}, surface="face",
                       meta={k: {"source": "missing", "note": reason} for k in surface_names("face")})


def prepare_head(ct_path: str | os.PathLike, target_faces: int) -> dict:
    """Extract, decimate, landmark and gate one real CT head (skull and skin in LPS mm).

    A volume not in Hounsfield units is taken for a T1 MRI head
    (`skull2face.geometry.surfaces.volume_modality`): its skull
    is the dark cortical band under the skin (`skull2face.anatomy.mr_skull`), its skull
    landmarks are measured under the face's, and the gate's CT-only measures are skipped.

    Returns
    -------
    dict
        ``name``, ``path``, ``sha256``, ``spacing`` and ``quality`` (`HeadQuality.to_json`);
        unless rejected also ``skull``/``skin`` (vertices, faces) and ``skull_landmarks`` /
        ``skin_landmarks`` (`LandmarkSet`, input coordinates).

    Raises
    ------
    InputError
        The file cannot be read as a volume (bad input, not a bad head).
    """
    from ..anatomy.detect import detect_landmarks
    from ..geometry.pose import lps_frame
    from ..geometry.surfaces import SurfaceSettings, extract_surfaces
    from ..io.volumes import read_volume

    t = {"start": time.perf_counter()}

    def lap(name: str) -> None:
        now = time.perf_counter()
        t[name] = round(now - t.pop("start"), 3)
        t["start"] = now

    vol = read_volume(ct_path)
    base = {"name": head_name(ct_path), "path": str(ct_path), "sha256": file_sha256(ct_path),
            "spacing": [round(float(s), 3) for s in vol.spacing], "timings": t}
    lap("read_s")
    from ..geometry.surfaces import volume_modality

    modality = volume_modality(vol)
    base["modality"] = modality
    skin_error = None
    try:
        if modality == "mr":  # the skull measured under the skin, its landmarks from the face's
            from ..anatomy.mr_extract import add_mr_skull

            surf = extract_surfaces(vol, SurfaceSettings(modality="mr", target_faces=target_faces))
            surf, skull_lms, skin_lms = add_mr_skull(vol, surf)
            lap("extract_s")
        else:
            surf = extract_surfaces(vol, SurfaceSettings(target_faces=target_faces))
            lap("extract_s")
            skull_lms = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull))
    except (InputError, ValueError) as exc:
        t.pop("start")
        return {**base, "quality": rejected(f"no skull to pair: {_short(exc, ct_path)}").to_json()}
    if modality == "ct":
        try:
            skin_lms = detect_landmarks(surf.skin, "face", lps_frame(surf.skin))
        except (InputError, ValueError) as exc:
            skin_error = f"face landmark detection failed: {_short(exc, ct_path)}"
            skin_lms = _no_face_landmarks(skin_error)
    lap("landmarks_s")
    quality = assess_head(vol, surf.skull, surf.skin, skull_lms.points, skin_lms.points, skin_error, modality)
    lap("gate_s")
    t.pop("start")
    if quality.status == "rejected":
        return {**base, "quality": quality.to_json()}
    dropped = quality.measures.get("skin_landmarks_dropped")
    if dropped and not skin_error:
        skin_lms = _no_face_landmarks(dropped)
    return {**base, "skull": (np.asarray(surf.skull.vertices), np.asarray(surf.skull.faces)),
            "skin": (np.asarray(surf.skin.vertices), np.asarray(surf.skin.faces)),
            "skull_landmarks": skull_lms, "skin_landmarks": skin_lms, "quality": quality.to_json()}


def _short(exc: Exception, path) -> str:
    """The message of an error without the file name it starts with."""
    msg = str(exc)
    return msg[len(str(path)) + 2:] if msg.startswith(f"{path}: ") else msg


def _prepare(task: tuple) -> dict:
    return prepare_head(*task)


def prepare_heads(ct_paths: list, target_faces: int, workers: int) -> dict:
    """`prepare_head` over every CT, in a spawned process pool of ``workers`` (in this process
    when one worker or one CT); returns ``{name: head}`` in the order given."""
    tasks = [(str(p), target_faces) for p in ct_paths]
    out: dict = {}

    def keep(h: dict) -> None:
        q = h["quality"]
        log.info("head %s: %s%s", h["name"], q["status"],
                 f" ({q['reasons'][0]})" if q["status"] == "rejected" else
                 (f", excluded: {', '.join(q['excluded'])}" if q["excluded"] else ""))
        out[h["name"]] = h

    if workers <= 1 or len(tasks) <= 1:
        for t in progress(tasks, desc="real heads", unit="head", disable=None):
            keep(_prepare(t))
        return out
    # spawn, not fork: Embree and BLAS thread pools do not survive a fork safely
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=mp.get_context("spawn")) as pool:
        for h in progress(pool.map(_prepare, tasks), total=len(tasks), desc="real heads", unit="head", disable=None):
            keep(h)
    return out
