"""Real and model faces for the unpaired-face set, each with face landmarks in its own coordinates.

Sources, in the order the dataset uses them (real ones first):

* **MRI heads** (`skull2face.samples` ``mri_*``): the outer skin extracted with
  ``intensity="raw", skin_only=True``; pose from the scanner's LPS axes; landmarks detected.
* **Face scans**: ``james`` (68 iBUG points in menpo's LJSON groups), ``humface`` (its 7 points,
  of which the endocanthia are ours), ``leeperrysmith`` (arbitrary units, scaled to a 150 mm
  head breadth). Given points win; the rest are detected.
* **Surrey Face Model samples** (Huber et al., VISAPP 2016): ``mean + basis @ (sqrt(eigenvalues)
  * N(0, 1))``, landmarks read off the model through its iBUG -> vertex mapping. These are
  *sampled*, not real, and are flagged so.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import trimesh

from .. import samples
from ..errors import InputError
from ..geometry.frame import frame_from_axes
from ..anatomy.landmark_set import LandmarkSet

log = logging.getLogger(__name__)

# Head breadth used to scale scans in arbitrary units (adult eu-eu ~145-151 mm, Farkas 1994).
HEAD_BREADTH_MM = 150.0
# SFM samples are truncated at this many SDs per coefficient so no face is a caricature.
SFM_CLIP_SD = 2.5


@dataclass
class FaceSource:
    """One unpaired face: mesh and landmarks in the same (input) coordinates, mm."""

    name: str
    mesh: trimesh.Trimesh
    landmarks: LandmarkSet
    real: bool
    origin: str  # "mri" | "scan" | "sfm"
    params: dict = field(default_factory=dict)


def _given(points: dict[str, np.ndarray], note: str) -> LandmarkSet:
    return LandmarkSet(points={k: np.asarray(v, float) for k, v in points.items()}, surface="face",
                       meta={k: {"source": "given", "confidence": "high", "note": note} for k in points})


def _finish(name: str, mesh: trimesh.Trimesh, given: LandmarkSet | None, coarse: np.ndarray,
            real: bool, origin: str, params: dict | None = None) -> FaceSource:
    from ..anatomy.detect import detect_landmarks

    lms = detect_landmarks(mesh, "face", coarse, given=given)
    return FaceSource(name, mesh, lms, real, origin, dict(params or {}))


def mri_face(path: str | Path, name: str, target_faces: int = 150_000) -> FaceSource:
    """The outer skin of a T1 MRI head, with detected face landmarks."""
    from ..geometry.pose import lps_frame
    from ..geometry.surfaces import SurfaceSettings, extract_surfaces
    from ..io.volumes import read_volume

    vol = read_volume(path)
    surf = extract_surfaces(vol, SurfaceSettings(intensity="raw", skin_only=True, target_faces=target_faces))
    return _finish(name, surf.skin, None, lps_frame(surf.skin), True, "mri",
                   {"path": str(path), "skin_threshold": surf.record["thresholds"]["skin"]})


def _landmark_frame(points: dict[str, np.ndarray]) -> np.ndarray:
    """Coarse frame from eye corners and nose: left from en_R -> en_L, up from sn -> n."""
    left = points["en_L"] - points["en_R"]
    up = points["n"] - points["sn"]
    origin = (points["en_L"] + points["en_R"]) / 2
    return frame_from_axes(origin, left, up)


def james_face() -> FaceSource:
    """menpo3d's 'james' scan; landmarks from its 68 iBUG points (menpo LJSON groups).

    The face looks toward +z with +y up, so +x is the subject's left: menpo's 'leye' group
    (at -x) is the subject's right eye.
    """
    path = samples.path("james_landmarks")
    data = json.loads(path.read_text(encoding="utf-8"))
    group = data["groups"]["LJSON"]
    pts = np.asarray(group["landmarks"]["points"], dtype=np.float64)
    masks = {lab["label"]: lab["mask"] for lab in group["labels"]}
    eye_a, eye_b = pts[masks["leye"]], pts[masks["reye"]]
    right_eye, left_eye = (eye_a, eye_b) if eye_a[:, 0].mean() < eye_b[:, 0].mean() else (eye_b, eye_a)
    mid_x = (right_eye[:, 0].mean() + left_eye[:, 0].mean()) / 2
    nose = pts[masks["nose"]]
    base = nose[nose[:, 1] < np.median(nose[:, 1])]  # the five points of the nose base
    chin = pts[masks["chin"]]
    given = {
        "en_R": right_eye[np.argmin(np.abs(right_eye[:, 0] - mid_x))],
        "en_L": left_eye[np.argmin(np.abs(left_eye[:, 0] - mid_x))],
        "n": nose[np.argmax(nose[:, 1])],            # top of the nasal bridge
        "sn": base[np.argmin(np.abs(base[:, 0] - mid_x))],
        "al_R": base[np.argmin(base[:, 0])],
        "al_L": base[np.argmax(base[:, 0])],
        "me": chin[np.argmin(chin[:, 1])],
    }
    mesh = trimesh.load(str(samples.path("james")), force="mesh", process=True)
    lms = _given(given, "from the 68 iBUG points shipped with the scan")
    return _finish("james", mesh, lms, _landmark_frame(given), True, "scan", {"path": str(samples.path("james"))})


def humface_face() -> FaceSource:
    """Rvcg's 'humface' scan; its endocanthia are given (points 2 and 3, along +x)."""
    rows = np.loadtxt(samples.path("humface_landmarks"))
    if rows.shape != (7, 3):
        raise InputError(samples.path("humface_landmarks"), f"expected 7 x 3 numbers, got {rows.shape}")
    en_r, en_l = rows[1], rows[2]  # along +x = toward the subject's left for a face toward +z
    prn = rows[4]
    mesh = trimesh.load(str(samples.path("humface")), force="mesh", process=True)
    given = _given({"en_R": en_r, "en_L": en_l}, "endocanthion from the scan's own landmark file")
    mouth = (rows[5] + rows[6]) / 2
    coarse = frame_from_axes((en_r + en_l) / 2, en_l - en_r, ((en_r + en_l) / 2) - mouth)
    return _finish("humface", mesh, given, coarse, True, "scan",
                   {"path": str(samples.path("humface")), "pronasale": prn.tolist()})


def leeperrysmith_face() -> FaceSource:
    """The Lee Perry-Smith head scan (CC BY 3.0), scaled from arbitrary units to mm."""
    from ..geometry.pose import auto_frame

    mesh = trimesh.load(str(samples.path("leeperrysmith")), force="mesh", process=True)
    scale = HEAD_BREADTH_MM / float(mesh.extents[0])
    mesh.apply_scale(scale)
    # the scan is a whole head: up and front by hint (three.js convention: +y up, face toward +z)
    coarse, _ = auto_frame(mesh, "face", front=np.array([0.0, 0.0, 1.0]), up=np.array([0.0, 1.0, 0.0]))
    return _finish("leeperrysmith", mesh, None, coarse, True, "scan",
                   {"path": str(samples.path("leeperrysmith")), "scale_to_mm": scale,
                    "attribution": "Infinite, 3D Head Scan by Lee Perry-Smith (CC BY 3.0)"})


def _sfm_ibug_map() -> dict[int, int]:
    """iBUG point number (1-based) -> SFM vertex id, from eos' ibug_to_sfm.txt."""
    out = {}
    for line in samples.path("sfm_ibug").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\s*(\d+)\s*=\s*(\d+)", line)
        if m:
            out[int(m.group(1))] = int(m.group(2))
    return out


# iBUG 68-point numbers (1-based) that stand for our face landmarks on the SFM mesh.
_SFM_LANDMARKS = {"en_R": 40, "en_L": 43, "n": 28, "sn": 34, "al_R": 32, "al_L": 36, "me": 9}


def sfm_faces(n: int, rng: np.random.Generator) -> list[FaceSource]:
    """``n`` random faces of the Surrey Face Model (shape only), landmarks via iBUG ids.

    The model's face looks toward +z with +y up. Coefficients are N(0, 1) clipped at
    ``SFM_CLIP_SD``; they are recorded in each sample's params.
    """
    with np.load(samples.path("sfm")) as z:
        mean, basis, ev, tris = z["mean"].astype(np.float64), z["basis"].astype(np.float64), \
            z["eigenvalues"].astype(np.float64), z["triangles"].astype(np.int64)
    ibug = _sfm_ibug_map()
    ids = {name: ibug[k] for name, k in _SFM_LANDMARKS.items()}
    out = []
    for i in range(n):
        coef = np.clip(rng.standard_normal(len(ev)), -SFM_CLIP_SD, SFM_CLIP_SD)
        verts = mean + (basis @ (np.sqrt(ev) * coef)).reshape(-1, 3)
        mesh = trimesh.Trimesh(verts, tris, process=False)
        pts = {name: verts[v] for name, v in ids.items()}
        given = _given(pts, "Surrey Face Model vertex of the iBUG point")
        out.append(_finish(f"sfm-{i:04d}", mesh, given, _landmark_frame(pts), False, "sfm",
                           {"coefficients": coef.round(6).tolist()}))
    return out


def real_faces(mri: bool = True, scans: bool = True) -> list[FaceSource]:
    """All bundled real faces (MRI skins, then face scans)."""
    out = []
    if mri:
        out += [mri_face(samples.path("mri_philips"), "mri_philips"),
                mri_face(samples.path("mri_siemens"), "mri_siemens")]
    if scans:
        out += [james_face(), humface_face(), leeperrysmith_face()]
    return out
