"""Stage ``superimpose``: could this skull be the person in this photograph?

Steps: read the skull (a mesh, or a head CT extracted first, as ``predict`` does:
`skull2face.stages.predict.read_skull`), locate its landmarks (given ones win:
`skull2face.anatomy.locate.locate`), move each skull landmark with a skin partner out along its
bone normal by its mean thickness (`skull2face.superimposition.register.soft_tissue_points`; the
bundled Hona & Stephan 2024 table, or a population's own with ``--thickness-table``, shifted by
``--build``: `skull2face.anatomy.tissue.choose_table`, recorded as ``tissue``),
read the photo and its landmarks (`skull2face.io.photo`), solve the camera that projects the
soft-tissue points onto the photo's landmarks (`skull2face.superimposition.register.solve_camera`),
measure each pair's error in px and in mm at the face, and grade the fit
(`skull2face.superimposition.grade`).

The photo's landmarks come from a file (``--photo-landmarks``: CSV ``name,x,y`` in pixels, or
JSON). skull2face has no automatic 2D face-landmark detector: none on PyPI ships its model
inside the package, runs offline and installs beside this project's dependencies (mediapipe
1.x ships no models, they are downloaded separately; mediapipe 0.10.14 bundles its face-mesh
model but needs opencv-contrib-python, which clashes with opencv-python-headless, and jax; dlib
and OpenCV's facemark need separately downloaded model files).

Outputs: ``overlay.png`` (the skull through the solved camera over the photo, semi-transparent
and outlined, each soft-tissue point joined to its photo partner), ``side_by_side.png`` (the
photo with the skull's outline beside the ``face-model`` face rendered through the same camera),
``face.ply`` (that face), ``landmarks.csv`` (the per-landmark table), ``skull_landmarks.json``
and ``superimpose.json`` (camera, per-landmark errors, the graded conclusion with its
thresholds and caveat, settings, every input's path and sha256, timings). The folder is
claimed and filled at once, as every stage's (`skull2face.io.run_folder.run_folder`): an ``--out``
that would overwrite an input is refused before any work, a second run into a folder a live run
holds is refused, and a finished folder holds exactly one run's files.
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..anatomy.locate import PoseSettings, locate
from ..anatomy.names import BONE_TO_SKIN
from ..anatomy.tissue import TissueSettings, table_of
from ..errors import InputError
from ..geometry.frame import head_frame
from ..geometry.normals import HEAD_CENTRE
from ..io.atomic import write_json, write_text
from ..io.landmarks import read_landmarks, write_landmarks
from ..io.photo import check_face_layout, read_photo, read_photo_landmarks
from ..io.run_folder import run_folder
from ..io.volumes import file_sha256
from ..options import check_options, nested, option
from ..superimposition import grade as grading
from ..superimposition.register import MIN_POINTS, residuals, soft_tissue_points, solve_camera
from .predict import read_skull

NO_DETECTOR = ("no photo landmarks: pass --photo-landmarks FILE (CSV name,x,y in pixels, or JSON); skull2face "
               "has no automatic face-landmark detector, as no PyPI package ships one that runs offline")


@dataclass
class SuperimposeSettings:
    """How to superimpose.

    Attributes
    ----------
    focal_px : float or None
        The photo's focal length in pixels when known (``f_mm / sensor_width_mm * width_px``);
        None: solved with the pose.
    face : bool
        Fit the ``face-model`` head to the skull and draw it through the solved camera.
    picture : bool
        Write ``overlay.png`` and ``side_by_side.png``.
    pose : PoseSettings
    tissue : TissueSettings
        The thickness table of the soft-tissue points and the face (a population's own), the
        build, sex and age group, as ``predict`` takes them.
    """

    focal_px: float | None = option(None, metavar="PX", above=0,
                                    help="focal length in pixels when known (f_mm / sensor_width_mm x image width); "
                                         "default: solved with the pose")
    face: bool = option(True, help="fit the face-model head to the skull and show it through the solved camera "
                                   "(side_by_side.png, face.ply; a few seconds)")
    picture: bool = option(True, help="write overlay.png and side_by_side.png")
    pose: PoseSettings = nested(PoseSettings, title="coarse pose (before landmarks are known)")
    tissue: TissueSettings = nested(TissueSettings, title="soft-tissue thickness (population table, build, sex, age)")

    def __post_init__(self) -> None:
        check_options(self)


def _pairs(targets: dict, photo: dict, lm_path: Path) -> tuple[list[str], dict[str, str]]:
    """Landmark names usable for the fit, and why each other photo landmark is not used."""
    skin_partner = {v: k for k, v in BONE_TO_SKIN.items()}
    used = [k for k in targets if k in photo]
    unused = {}
    for k in photo:
        if k in targets:
            continue
        if k not in skin_partner:
            unused[k] = "no skull landmark under it (Table 1 has no partner)"
        else:
            unused[k] = f"skull landmark {skin_partner[k]} not found on this skull"
    if len(used) < MIN_POINTS:
        usable = sorted(targets)
        raise InputError(lm_path, f"only {len(used)} photo landmark(s) ({', '.join(used) or 'none'}) have a "
                                  f"soft-tissue partner on this skull; at least {MIN_POINTS} are needed, from: "
                                  f"{', '.join(usable)}")
    return used, unused


def superimpose(skull_path: str | os.PathLike, photo_path: str | os.PathLike, out_dir: str | os.PathLike,
                photo_landmarks_path: str | os.PathLike | None = None,
                landmarks_path: str | os.PathLike | None = None,
                settings: SuperimposeSettings | None = None) -> dict:
    """Superimpose a skull on a face photograph; write pictures, table and JSON into ``out_dir``.

    Parameters
    ----------
    skull_path : path-like
        Skull mesh (mm) or head CT.
    photo_path : path-like
        The photograph (JPEG, PNG).
    out_dir : path-like
    photo_landmarks_path : path-like
        The photo's Table 2 landmarks in pixels (`skull2face.io.photo.read_photo_landmarks`).
    landmarks_path : path-like, optional
        Given skull landmarks (they win over detection).
    settings : SuperimposeSettings, optional

    Returns
    -------
    dict
        The record written to ``superimpose.json`` (output paths relative to ``out_dir``).

    Raises
    ------
    InputError
        A missing or unusable input; an ``out_dir`` that would overwrite an input, holds files
        that are not an earlier superimpose run, or that another live run holds
        (`skull2face.io.run_folder.run_folder`: the run writes into a hidden sibling swapped in
        whole, so a finished folder holds exactly one run and a refused run leaves nothing).
    """
    settings = settings or SuperimposeSettings()
    if photo_landmarks_path is None:
        raise InputError(photo_path, NO_DETECTOR)
    paths = {"skull": skull_path, "photo": photo_path, "photo_landmarks": photo_landmarks_path,
             "skull_landmarks": landmarks_path, "thickness_table": settings.tissue.thickness_table}
    for p in paths.values():
        if p is not None and not Path(p).exists():
            raise InputError(p, "not found")
    with run_folder(out_dir, "superimpose", paths.values()) as out:
        return _superimpose(paths, out, settings)


def _inputs(paths: dict) -> dict:
    """Each input file's absolute path and sha256, read before any work (None where not given)."""
    return {k: None if p is None else {"path": str(Path(p).resolve()), "sha256": file_sha256(p)}
            for k, p in paths.items()}


def _superimpose(paths: dict, out: Path, settings: SuperimposeSettings) -> dict:
    """`superimpose` into the claimed folder ``out`` (a hidden sibling of ``--out``, swapped in whole)."""
    skull_path, photo_path = paths["skull"], paths["photo"]
    photo_landmarks_path, landmarks_path = paths["photo_landmarks"], paths["skull_landmarks"]
    t0 = time.perf_counter()
    timings = {}
    inputs = _inputs(paths)
    tissue = table_of(settings.tissue)  # a bad table, or a --sex it cannot honour: refused before the work
    photo = read_photo(photo_path)
    size = (photo.shape[1], photo.shape[0])
    photo_lms = read_photo_landmarks(photo_landmarks_path, size)
    check_face_layout(photo_landmarks_path, photo_lms, photo)

    t = time.perf_counter()
    src = read_skull(skull_path, out)
    skull = src["skull"]
    pose = dataclasses.replace(settings.pose, pose=src["pose"] or settings.pose.pose)
    given = read_landmarks(landmarks_path, surface="skull") if landmarks_path else None
    lms, loc = locate(skull, src["skull_path"], "skull", given, pose)
    try:
        frame = head_frame(lms.points, "skull")
    except ValueError as exc:
        raise InputError(skull_path, f"cannot place the head frame from the skull landmarks: {exc}") from None
    timings["skull_s"] = time.perf_counter() - t

    t = time.perf_counter()
    targets = soft_tissue_points(skull.vertices, skull.faces, lms, frame.to_input(np.asarray(HEAD_CENTRE)),
                                 table=tissue.rows)
    used, unused = _pairs(targets, photo_lms, Path(photo_landmarks_path))
    obj = np.array([targets[k][0] for k in used])
    img = np.array([photo_lms[k] for k in used])
    solve_info: dict = {}
    try:
        camera = solve_camera(obj, img, size, settings.focal_px, info=solve_info)
    except ValueError as exc:
        raise InputError(photo_landmarks_path, f"cannot solve the camera: {exc}") from None
    errs = residuals(camera, {k: targets[k][0] for k in used}, photo_lms)
    conclusion = grading.grade([errs[k]["mm"] for k in used], settings.focal_px is not None)
    timings["fit_s"] = time.perf_counter() - t

    face, face_note = None, "not computed (--no-face)"
    if settings.face:
        t = time.perf_counter()
        from ..geometry.depthmap import HEAD_MAP_CENTRE, RenderSpec, render
        from ..io.meshes import save_mesh
        from ..statistics.skull_fit import dense_target, fit_to_skull

        try:
            # the face-model fit without a measured prior (the skull + 6 mm as a lower bound):
            # no model file to read, so the side-by-side stays quick
            spec = RenderSpec(frame=frame.matrix, centre=HEAD_MAP_CENTRE)
            face = fit_to_skull(skull, lms, spec, dense_target(render(skull, spec), "map"), table=tissue.rows)
            save_mesh(face, out / "face.ply")
            face_note = "face-model method (ICT-FaceKit head fitted to the skull)"
        except ValueError as exc:  # too few skull landmarks with skin partners for the model
            face_note = f"face-model could not be fitted: {exc}"
        timings["face_s"] = time.perf_counter() - t

    outputs = {}
    if settings.picture:
        t = time.perf_counter()
        from ..report.pictures import save_png
        from ..geometry.camera import render
        from ..report.superimpose import overlay_figure, side_by_side_figure, working_view

        title = (f"{conclusion['grade']}: residual SD {conclusion['residual_sd_mm']:.2f} mm at the face over "
                 f"{len(used)} landmark pairs")
        view = render(skull, working_view(photo, camera)[1])  # one ray cast for both pictures
        save_png(overlay_figure(photo, camera, skull, {k: targets[k][0] for k in used}, photo_lms, errs, title,
                                view), out / "overlay.png")
        save_png(side_by_side_figure(photo, camera, skull, face, face_note, view), out / "side_by_side.png")
        outputs.update(overlay="overlay.png", side_by_side="side_by_side.png")
        timings["pictures_s"] = time.perf_counter() - t
    if face is not None:
        outputs["face"] = "face.ply"

    rows = ["name,photo_x_px,photo_y_px,projected_x_px,projected_y_px,error_px,error_mm,thickness_sd_mm"]
    table = {}
    for k in used:
        uv = camera.project(targets[k][0][None])[0]
        table[k] = {"photo_px": [round(float(v), 2) for v in photo_lms[k]],
                    "projected_px": [round(float(v), 2) for v in uv],
                    "soft_tissue_point_mm": [round(float(v), 3) for v in targets[k][0]],
                    "thickness_sd_mm": targets[k][1], "error_px": round(errs[k]["px"], 3),
                    "error_mm": round(errs[k]["mm"], 3), "distance_mm": round(errs[k]["distance_mm"], 1)}
        rows.append(f"{k},{photo_lms[k][0]:.2f},{photo_lms[k][1]:.2f},{uv[0]:.2f},{uv[1]:.2f},"
                    f"{errs[k]['px']:.3f},{errs[k]['mm']:.3f},{targets[k][1]:g}")
    write_text(out / "landmarks.csv", "\n".join(rows) + "\n")
    write_landmarks(lms, out / "skull_landmarks.json")
    outputs.update(table="landmarks.csv", skull_landmarks="skull_landmarks.json")
    z = float(np.mean(camera.to_camera(obj)[:, 2]))
    timings["total_s"] = time.perf_counter() - t0
    record = {
        "stage": "superimpose", "skull2face_version": __version__,
        "settings": dataclasses.asdict(settings),
        "inputs": {**inputs, "skull": {**inputs["skull"], "kind": src["kind"]},
                   "photo": {**inputs["photo"], "size_px": list(size)}},
        "skull_landmarks": {k: v for k, v in lms.meta.items()}, "pose": loc["pose"],
        "soft_tissue_rule": "skull landmark + the table's mean thickness (build-shifted; see tissue) along the "
                            "outward bone normal (statistics.face_model.landmark_targets)",
        "tissue": tissue.record(),
        "camera": {**camera.to_json(), "face_distance_mm": round(z, 1),
                   "mm_per_px_at_face": round(z / camera.focal_px, 4), "solve": solve_info},
        "landmarks": table, "unused_photo_landmarks": unused,
        "conclusion": conclusion, "face": face_note,
        "outputs": outputs, "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    write_json(out / "superimpose.json", record)
    return record


def echo(record: dict) -> str:
    """What ``skull2face superimpose`` prints: the conclusion, the per-landmark table, the caveat."""
    c = record["conclusion"]
    cam = record["camera"]
    lines = [f"{c['grade'].upper()}: residual SD {c['residual_sd_mm']:.2f} mm at the face "
             f"({c['pairs']} landmark pairs, {c['degrees_of_freedom']} degrees of freedom; RMS {c['rms_mm']:.2f} mm)",
             f"camera: focal {cam['focal_px']:.0f} px, face at {cam['face_distance_mm']:.0f} mm "
             f"({cam['mm_per_px_at_face']:.3f} mm/px)",
             f"{'landmark':<9}{'error px':>10}{'error mm':>10}{'tissue SD':>11}"]
    for k, row in record["landmarks"].items():
        lines.append(f"{k:<9}{row['error_px']:>10.2f}{row['error_mm']:>10.2f}{row['thickness_sd_mm']:>9.1f} mm")
    for k, why in record["unused_photo_landmarks"].items():
        lines.append(f"{k:<9}not used: {why}")
    lines += [f"thresholds: {c['rule']}", c["caveat"],
              f"wrote {', '.join(record['outputs'].values())} and superimpose.json "
              f"in {record['timings']['total_s']:.1f} s"]
    return "\n".join(lines)
