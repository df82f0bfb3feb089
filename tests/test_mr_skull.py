"""The skull of a T1 MRI head (`skull2face.anatomy.mr_skull`, `extract --modality mr`): known answers.

* profiles with a known edge: the bone is found at the half-step, muscle under fat is not bone;
* an analytic T1 head (a ball of bright tissue over a dark bone shell over brain, blurred as
  a scanner blurs, with a bias field): the skull lies on the shell's outer radius;
* a pseudo-T1 made from the bundled headsq CT (`skull2face.dataset.pseudo_mr`): the MRI skull
  lies on the CT's bone over the face;
* the bundled Siemens T1 head through the CLI: skull, skull landmarks, tissue at nasion and
  glabella within the published range (Hona & Stephan 2024, mean +- 2 SD).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from skull2face.anatomy import mr_extract as E
from skull2face.anatomy import mr_skull as M
from skull2face.geometry.surfaces import SurfaceSettings, extract_surfaces
from skull2face.io.volumes import Volume

STEP = M.STEP_MM


def _profile(levels_depths, depth=M.MAX_DEPTH_MM, blur_mm=1.0):
    """A profile with piecewise-constant levels [(level, until_mm), ...], blurred (sigma mm)."""
    t = np.arange(0.0, depth + 1e-9, STEP)
    p = np.zeros_like(t)
    start = 0.0
    for level, until in levels_depths:
        p[(t >= start) & (t < until)] = level
        start = until
    return ndimage.gaussian_filter1d(p, blur_mm / STEP, mode="nearest")[None].astype(np.float32)


def test_bone_depth_is_the_half_step_of_the_first_dark_fall():
    # skin edge (dark air) 0-0.5 mm, fat 0.5-6, cortical bone from 6 mm, marrow at 8
    prof = _profile([(0.02, 0.5), (1.0, 6.0), (0.05, 8.0), (0.7, 40.0)])
    assert M.bone_depth(prof)[0] == pytest.approx(6.0, abs=0.15)


def test_muscle_under_fat_is_not_bone_but_the_bone_under_it_is():
    prof = _profile([(0.02, 0.5), (1.0, 4.0), (0.45, 11.0), (0.03, 40.0)])
    assert M.bone_depth(prof)[0] == pytest.approx(11.0, abs=0.3)


def test_a_thin_scalp_without_fat_still_finds_its_bone():
    prof = _profile([(0.02, 0.5), (0.42, 5.0), (0.06, 7.0), (0.6, 40.0)])
    assert M.bone_depth(prof)[0] == pytest.approx(5.0, abs=0.3)


def test_no_dark_fall_no_bone():
    assert np.isnan(M.bone_depth(_profile([(0.02, 0.5), (0.9, 40.0)]))[0])


R_SKIN, R_BONE, R_INNER = 80.0, 72.0, 66.0


def _t1_ball(spacing=1.5):
    """A T1-like head: fat-bright tissue (0.9) out to R_SKIN, a dark bone shell (0.05) from
    R_BONE in to R_INNER, brain (0.6) inside; blurred by the voxel; a smooth 15 % bias field."""
    n = int(2 * 100 / spacing)
    ax = (np.arange(n) - (n - 1) / 2) * spacing
    x, y, z = np.meshgrid(ax, ax, ax, indexing="ij")
    r = np.sqrt(x ** 2 + y ** 2 + z ** 2)
    v = np.where(r < R_SKIN, 0.9, 0.0)
    v = np.where(r < R_BONE, 0.05, v)
    v = np.where(r < R_INNER, 0.6, v)
    v = ndimage.gaussian_filter(v, 0.5)  # half a voxel of blur
    v = v * (1.0 + 0.15 * x / 100.0)
    vol = Volume(voxels=(1000 * v).astype(np.float32), spacing=np.full(3, spacing),
                 origin=np.full(3, ax[0]), direction=np.eye(3), source="t1-ball")
    # a face on the ball (LPS: anterior is -y): nasion, subnasale, the eyes' inner corners
    def on(p):
        p = np.asarray(p, float)
        return p / np.linalg.norm(p) * R_SKIN
    face = {"n": on([0, -1, 0.25]), "sn": on([0, -1, -0.35]), "en_L": on([0.18, -1, 0.15]),
            "en_R": on([-0.18, -1, 0.15]), "g'": on([0, -1, 0.4])}
    return vol, face


def test_the_skull_of_an_analytic_t1_head_lies_on_the_bone_shell():
    vol, face = _t1_ball()
    surf = extract_surfaces(vol, SurfaceSettings(modality="mr", target_faces=40_000))
    normalised = M.bias_corrected(vol.voxels, surf.head_mask, vol.spacing)
    skin, _ = E.skin_at_half_step(surf.skin, normalised[0], surf.head_mask, vol)
    r_skin = np.linalg.norm(skin.vertices, axis=1)
    assert np.median(r_skin) == pytest.approx(R_SKIN, abs=0.3)
    assert np.median(np.linalg.norm(surf.skin.vertices, axis=1)) > R_SKIN + 0.3  # the foot of the blur
    found = M.mr_skull(vol, skin, surf.head_mask, face, normalised)
    r = np.linalg.norm(found.skull.vertices, axis=1)
    assert len(r) > 0.5 * len(surf.skin.vertices) * 0.5
    assert np.median(r) == pytest.approx(R_BONE, abs=0.5)
    assert np.percentile(np.abs(r - R_BONE), 95) < 1.5
    depth = found.depth_mm[np.isfinite(found.depth_mm)]
    assert np.median(depth) == pytest.approx(R_SKIN - R_BONE, abs=0.6)
    # the eyes are left open, as a CT skull's orbits are
    assert found.record["excluded_vertices"]["eyes"] > 0
    # nasion and glabella measured under their face twins
    assert np.linalg.norm(found.landmarks.points["N"]) == pytest.approx(R_BONE, abs=0.8)
    assert found.landmarks.meta["N"]["source"] == "measured"


def test_pseudo_t1_of_a_real_ct_gives_the_ct_bone_over_the_face():
    """headsq's CT made into a 2 mm pseudo-T1: its MRI skull within 1.5 mm (mean) of the CT bone
    over the forehead and 2 mm over the face (measured 0.79 and 1.39 mm)."""
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.dataset.pseudo_mr import pseudo_t1
    from skull2face.evaluation.skull_compare import skull_distance_by_region
    from skull2face.geometry.pose import lps_frame
    from skull2face.io.volumes import read_volume
    from skull2face.samples import path

    ct = read_volume(path("headsq"))
    truth = extract_surfaces(ct, SurfaceSettings(target_faces=120_000))
    face = detect_landmarks(truth.skin, "face", lps_frame(truth.skin))
    mr = pseudo_t1(ct, spacing_mm=(2.0, 2.0, 2.0), seed=0)
    surf = extract_surfaces(mr, SurfaceSettings(modality="mr"))
    surf, _, _ = E.add_mr_skull(mr, surf, face)  # the face's landmarks given: the bone search is tested
    scores = skull_distance_by_region(surf.skull, truth.skull, face.points)
    assert scores["face"]["mean_mm"] < 2.0
    assert scores["forehead"]["mean_mm"] < 1.5
    assert scores["mouth"]["mean_mm"] < 2.0


def test_extract_modality_mr_on_the_bundled_siemens_head(tmp_path):
    from skull2face.cli import main
    from skull2face.io.landmarks import read_landmarks
    from skull2face.samples import path

    rc = main(["extract", str(path("mri_siemens")), "--modality", "mr", "--out", str(tmp_path / "x"), "--no-picture"])
    assert rc in (0, None)
    rec = json.loads((tmp_path / "x" / "extract.json").read_text())
    assert rec["outputs"]["skull"] == "skull.ply" and rec["thresholds"]["modality"] == "mr"
    lms = read_landmarks(tmp_path / "x" / "skull_landmarks.json", surface="skull")
    assert {"N", "G"} <= set(lms.points)
    # the tissue at nasion and glabella: published 6.0 +- 1.5 and 5.5 +- 1.0 mm (Hona & Stephan 2024)
    depth = {k: float(rec["skull"]["mr"]["landmarks"][k].split(" mm")[0]) for k in ("N", "G")}
    assert 3.0 <= depth["N"] <= 9.0
    assert 3.5 <= depth["G"] <= 7.5 + 1.0  # +1 mm: a 2 mm voxel


def test_predict_takes_a_t1_mri_head_as_it_takes_a_ct(tmp_path):
    """`predict MRI.nii.gz` extracts the MRI's skull and its measured landmarks, predicts the
    face over them and keeps the real skin beside it (truth_skin.ply), as for a CT."""
    from skull2face.samples import path
    from skull2face.stages.predict import PredictSettings, predict

    rec = predict(path("mri_siemens"), tmp_path / "p", PredictSettings(method="envelope"), picture=False)
    assert rec["input"]["kind"] == "mr"
    assert (tmp_path / "p" / "truth_skin.ply").is_file() and (tmp_path / "p" / "face.ply").is_file()
    assert (tmp_path / "p" / "mr_skull_landmarks.json").is_file()


def test_modality_mr_on_a_ct_is_refused_in_one_line(tmp_path, capsys):
    from skull2face.cli import main
    from skull2face.samples import path

    rc = main(["extract", str(path("headsq")), "--modality", "mr", "--out", str(tmp_path / "x")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Hounsfield" in err[0] and "headsq" in err[0]
    assert not (tmp_path / "x").exists()
