"""Stage ``measure``: a skull (mesh or head CT) -> its standard cranial and facial measurements.

Reads the skull as ``predict`` does (`skull2face.stages.predict.read_skull`: a mesh, or a head CT
or T1 MRI extracted first), locates its landmarks (given ones win), places the head frame and
measures what the landmarks and the vault allow (`skull2face.anatomy.measurements`): maximum
cranial length and breadth, bizygomatic breadth, upper facial height and breadth, nasal height,
interorbital breadth, total facial height, bigonial breadth; each with the two points used, or
why it is missing.

Outputs: ``measurements.csv`` and ``measurements.json`` (mm; points in the input's coordinates),
``skull_landmarks.json`` and ``measure.json`` (settings, inputs and their sha256).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import InputError
from ..options import check_options, nested
from ..anatomy.locate import PoseSettings


@dataclass
class MeasureSettings:
    """Settings of ``skull2face measure``.

    Attributes
    ----------
    pose : PoseSettings
        How the coarse pose is found before the landmarks are known.
    """

    pose: PoseSettings = nested(PoseSettings, title="coarse pose (before landmarks are known)")

    def __post_init__(self) -> None:
        check_options(self)


def measure(input_path: str | os.PathLike, out_dir: str | os.PathLike, settings: MeasureSettings | None = None,
            landmarks_path: str | os.PathLike | None = None) -> dict:
    """Measure a skull; write the measurements, its landmarks and ``measure.json``.

    Returns
    -------
    dict
        The record written to ``measure.json`` (with the measurements).
    """
    from ..io.run_folder import run_folder

    settings = settings or MeasureSettings()
    if not Path(input_path).exists():
        raise InputError(input_path, "not found")
    with run_folder(out_dir, "measure", [input_path, landmarks_path]) as out:
        return _measure(Path(input_path), out, settings, landmarks_path)


def _measure(input_path: Path, out: Path, settings: MeasureSettings, landmarks_path) -> dict:
    from ..anatomy.locate import locate
    from ..anatomy.measurements import as_csv, measure_skull
    from ..geometry.frame import head_frame
    from ..io.atomic import atomic_path, write_json
    from ..io.landmarks import read_landmarks, write_landmarks
    from ..io.volumes import file_sha256
    from .predict import read_skull

    t0 = time.perf_counter()
    given = read_landmarks(landmarks_path, surface="skull") if landmarks_path else None
    src = read_skull(input_path, out)
    if given is None and src.get("landmarks") is not None:  # an MRI's skull landmarks, measured with its skull
        given, landmarks_path = src["landmarks"], out / "mr_skull_landmarks.json"
    pose = dataclasses.replace(settings.pose, pose=src["pose"] or settings.pose.pose)
    lms, loc = locate(src["skull"], src["skull_path"], "skull", given, pose, landmarks_path)
    try:
        frame = head_frame(lms.points, "skull")
    except ValueError as exc:
        raise InputError(input_path, f"cannot place the head frame from the skull landmarks: {exc}") from None
    rows = measure_skull(src["skull"].vertices, lms.points, frame.matrix)
    with atomic_path(out / "measurements.csv") as tmp:
        Path(tmp).write_text(as_csv(rows), encoding="utf-8")
    write_json(out / "measurements.json", {"units": "mm", "coordinates": "the input's own, mm",
                                           "measurements": rows})
    write_landmarks(lms, out / "skull_landmarks.json")
    record = {"stage": "measure", "skull2face_version": __version__, "settings": dataclasses.asdict(settings),
              "input": {"path": str(input_path.resolve()), "kind": src["kind"], "sha256": file_sha256(input_path),
                        "landmarks": None if not landmarks_path or src.get("landmarks") is not None else
                        {"path": str(Path(landmarks_path).resolve()), "sha256": file_sha256(landmarks_path)}},
              "frame": frame.to_json(), "measurements": rows,
              "outputs": ["measurements.csv", "measurements.json", "skull_landmarks.json"],
              "timings": {"total_s": round(time.perf_counter() - t0, 3)}}
    write_json(out / "measure.json", record)
    return record


def echo(record: dict) -> str:
    """What ``skull2face measure`` prints: the table and the files."""
    from ..anatomy.measurements import table

    return f"{table(record['measurements'])}\nwrote {', '.join(record['outputs'])} and measure.json"


__all__ = ["MeasureSettings", "echo", "measure"]
