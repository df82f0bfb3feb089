"""The dataset's quality gate, weight maps and many-CT inputs: known answers on phantoms and
cropped bundled heads."""

import dataclasses
import json

import numpy as np
import pytest

from skull2face import samples
from skull2face.dataset import quality as Q
from skull2face.dataset.build import DatasetSettings, build_dataset
from skull2face.dataset.heads import prepare_head
from skull2face.dataset.weights import pixel_labels, weight_map
from skull2face.errors import InputError
from skull2face.geometry.depthmap import RenderSpec
from skull2face.io.volume_inputs import expand_volume_inputs
from skull2face.io.volumes import read_volume, write_volume
from skull2face.phantoms import head_phantom

# LPS -> head frame for a phantom centred at the origin: x = x, y = z_lps, z = -y_lps
LPS_TO_HEAD = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])


def _crop(vol, k0=None, k1=None):
    """The volume's slices k0:k1 (axis 2, inferior -> superior), geometry kept."""
    k0 = k0 or 0
    origin = vol.origin + vol.direction @ (vol.spacing * np.array([0, 0, k0]))
    return dataclasses.replace(vol, voxels=np.ascontiguousarray(vol.voxels[:, :, k0:k1]), origin=origin)


@pytest.fixture(scope="module")
def headsq_gate():
    return prepare_head(samples.path("headsq"), 120_000)


# --- measures ---------------------------------------------------------------------------------------

def test_metal_block_is_counted():
    vol = head_phantom(shape=(40, 40, 32), spacing=(4.0, 4.0, 5.0))
    assert Q.metal_volume(vol.voxels, vol.spacing) == (0, 0.0)
    vol.voxels[18:22, 5:8, 14:16] = 3000  # a 4 x 3 x 2 block of "amalgam" in front
    n, mm3 = Q.metal_volume(vol.voxels, vol.spacing)
    assert n == 24 and mm3 == pytest.approx(24 * 80.0)
    assert Q.metal_volume(vol.voxels, vol.spacing, threshold_hu=3500.0)[0] == 0


def test_cut_vault_shows_skin_in_the_top_slice():
    vol = head_phantom(shape=(48, 48, 40), spacing=(4.0, 4.0, 5.0))  # ball of radius 80 mm, all in view
    up = np.array([0.0, 0.0, 1.0])
    assert Q.top_slice_skin_cm2(vol, up)[0] == 0.0
    cut = _crop(vol, None, 30)  # top at z = +47.5 mm: a cap of ~32 mm lost
    area, where = Q.top_slice_skin_cm2(cut, up)
    # the ball's section 47.5 mm above its centre: pi (80^2 - 47.5^2) = 130 cm^2 (voxelised)
    assert area == pytest.approx(np.pi * (80 ** 2 - 47.5 ** 2) / 100, rel=0.08)
    assert area > Q.VAULT_CUT_CM2 and where == "axis 2, index 29"
    # the top found from the head's up, whichever end of the index axis it is
    assert Q.top_slice_skin_cm2(cut, -up)[0] == 0.0


def _ball_skin_map(spec, radius):
    x, y = spec.xy_grid()
    r2 = radius ** 2 - x ** 2 - (y + 40.0) ** 2  # ball centred 40 mm below the map's "nasion"
    return np.where(r2 > 0, np.sqrt(np.maximum(r2, 0)), np.nan)


def test_shell_in_front_of_the_face_is_detected():
    vol = head_phantom(shape=(64, 64, 64), spacing=(3.0, 3.0, 3.0), skin_radius=70.0, bone_radii=(55.0, 62.0))
    frame = LPS_TO_HEAD.copy()
    frame[1, 3] = -40.0  # nasion 40 mm above the ball's centre
    spec = RenderSpec(size=(64, 64), mm_per_px=3.0, frame=frame, centre=(0.0, -40.0))
    skin = _ball_skin_map(spec, 70.0)
    clean, rays = Q.shell_fraction(vol, frame, skin, spec, (-100.0, 20.0))
    assert clean == 0.0 and rays > 100
    # a 3 mm thermoplastic sheet (-100 HU) 15-18 mm in front of the face (y_lps < -30)
    o, sp = vol.origin, vol.spacing
    i, j, k = np.meshgrid(*(o[a] + sp[a] * np.arange(vol.shape[a]) for a in range(3)), indexing="ij")
    r = np.sqrt(i ** 2 + j ** 2 + k ** 2)
    vol.voxels[(r >= 85.0) & (r <= 88.0) & (j < -30.0)] = -100
    shelled, _ = Q.shell_fraction(vol, frame, skin, spec, (-100.0, 20.0))
    assert shelled > 0.5 > Q.SHELL_FRACTION


def test_decide_rules_name_their_regions():
    base = {"inplane_mm": 1.0, "in_view": {r: 1.0 for r in Q.REGIONS}, "mandible": True,
            "skin_landmarks": ["n", "sn"]}
    assert Q.decide(dict(base)).status == "used"
    q = Q.decide({**base, "dental_metal_mm3": 5000.0, "dental_metal_voxels": 60})
    assert q.status == "partial" and q.excluded == ["mouth", "chin"] and "dental metal" in q.regions["mouth"]["why"][0]
    q = Q.decide({**base, "inplane_mm": 4.69})
    assert q.excluded == ["nose", "mouth"]
    q = Q.decide({**base, "top_slice_skin_cm2": 150.0})
    assert q.excluded == ["vault"]
    q = Q.decide({**base, "shell_fraction": 0.3})
    assert q.excluded == ["nose", "mouth"]
    q = Q.decide({**base, "mouth": {"lip_vs_nose_mm": 4.0, "stomion_notch_mm": 1.0}})
    assert q.excluded == ["mouth"] and "bite block" in q.reasons[0]
    q = Q.decide({**base, "in_view": {**base["in_view"], "nose": 0.0, "orbits": 0.1}})
    assert q.status == "rejected" and "not in the field of view" in q.reasons[0]
    q = Q.decide({**base, "skull_implausible": "skull landmarks implausible: nasion-nasospinale is 110 mm"})
    assert q.status == "rejected" and q.excluded == list(Q.REGIONS)


# --- whole heads -------------------------------------------------------------------------------------

def test_bundled_heads_get_their_statuses(headsq_gate, real_ct_surfaces):
    q = headsq_gate["quality"]
    # headsq: forehead to neck, chin intact: the vault and most of the forehead are cut
    assert q["status"] == "partial"
    assert q["excluded"] == ["vault", "forehead"]
    assert q["regions"]["chin"]["status"] == q["regions"]["mouth"]["status"] == "used"
    assert q["measures"]["mandible"] is True and q["measures"]["fov_above_n_mm"] < 25
    # cranium_ct0051: mandible and chin cut off (the gate run on its surfaces, landmarks detected)
    from skull2face.anatomy.detect import detect_landmarks
    from skull2face.geometry.pose import lps_frame

    vol, surf = real_ct_surfaces["cranium"]
    sk = detect_landmarks(surf.skull, "skull", lps_frame(surf.skull)).points
    fa = detect_landmarks(surf.skin, "face", lps_frame(surf.skin)).points
    c = Q.assess_head(vol, surf.skull, surf.skin, sk, fa)
    assert c.status == "partial" and {"mouth", "chin"} <= set(c.excluded)
    assert {"forehead", "orbits", "nose"}.isdisjoint(c.excluded)
    assert c.measures["mandible"] is False and c.measures["in_view"]["chin"] == 0.0


def test_headsq_cropped_above_the_chin_loses_mouth_and_chin(tmp_path):
    vol = read_volume(samples.path("headsq"))
    # headsq's slices run superior -> inferior (k = 0 is the top): keep the top 70 of 93 slices,
    # i.e. down to ~89 mm below nasion (the upper lip; no chin, no mandible's body)
    path = write_volume(_crop(vol, 0, 70), tmp_path / "headsq_nochin.nii.gz")
    h = prepare_head(path, 60_000)
    q = h["quality"]
    assert q["status"] == "partial", q["reasons"]
    assert {"mouth", "chin"} <= set(q["excluded"])
    assert q["regions"]["orbits"]["status"] == q["regions"]["nose"]["status"] == "used"
    assert q["measures"]["in_view"]["chin"] == 0.0 and q["measures"]["mandible"] is False
    assert q["measures"]["fov_below_n_mm"] == pytest.approx(89.0, abs=3.0)


def test_a_non_head_is_rejected_and_a_build_skips_it(tmp_path, headsq_gate):
    ball = write_volume(head_phantom(shape=(48, 48, 40), spacing=(4.0, 4.0, 5.0)), tmp_path / "ball.nii.gz")
    h = prepare_head(ball, 20_000)
    assert h["quality"]["status"] == "rejected" and "skull" not in h
    st = DatasetSettings(n_paired=1, n_skulls=0, n_sfm=0, real_faces=False, size=32, mm_per_px=8.0, workers=1,
                         test_heads=[])
    man = build_dataset([ball, samples.path("headsq")], tmp_path / "ds", st)
    assert man["heads"]["ball"]["quality"]["status"] == "rejected"
    assert man["heads"]["headsq"]["quality"]["status"] == "partial"
    assert {s["source_head"] for s in man["samples"]} == {"headsq"}
    table = (tmp_path / "ds" / "report" / "heads.md").read_text(encoding="utf-8")
    assert "| ball |" in table and "| headsq |" in table and "rejected" in table
    assert json.loads((tmp_path / "ds" / "report" / "heads.json").read_text())["ball"]["status"] == "rejected"
    # every paired sample has a weight map over its face map, and the head's status
    for s in man["samples"]:
        assert s["params"]["quality_status"] == "partial"
        w = np.load(tmp_path / "ds" / s["files"]["weight"])["weight"]
        assert w.shape == (32, 32) and w.dtype == np.float32 and 0.0 <= w.min() and w.max() <= 1.0
        # headsq's field of view ends ~18 mm above nasion: the map's top rows (y > n + 40) are 0,
        # the middle of the face (nose, cheeks) is 1
        assert np.all(w[:2] == 0.0) and w[16, 16] == 1.0
    with pytest.raises(InputError, match="no usable head"):
        build_dataset([ball], tmp_path / "ds2", st)


# --- weight maps ----------------------------------------------------------------------------------

def test_weight_map_zeroes_excluded_regions_only():
    spec = RenderSpec(size=(80, 80), mm_per_px=2.0, centre=(0.0, -40.0))
    face = _ball_skin_map(spec, 75.0)
    pts = {"n": np.zeros(3), "sn": np.array([0.0, -52.0, 15.0]), "me": np.array([0.0, -120.0, 5.0])}
    lab = pixel_labels(spec, face, pts)
    assert lab.shape == (80, 80) and set(np.unique(lab)) <= set(range(len(Q.REGIONS)))
    clean = {"regions": {r: {"status": "used", "why": []} for r in Q.REGIONS}}
    assert np.all(weight_map(spec, face, pts, clean) == 1.0)
    mouth = Q.REGIONS.index("mouth")
    bad = {"regions": {**clean["regions"], "mouth": {"status": "excluded", "why": ["bite block"]}}}
    w = weight_map(spec, face, pts, bad)
    assert w.dtype == np.float32 and np.array_equal(w == 0.0, lab == mouth) and (lab == mouth).sum() > 20
    # the mouth box lies between the lip line and subnasale
    x, y = spec.xy_grid()
    assert y[w == 0].max() < -52.0 and y[w == 0].min() >= -52.0 - 0.6 * 68.0 - 2.0
    # a field of view that ends 20 mm above nasion zeroes everything above it
    fov = {"head_to_index": np.linalg.inv(np.diag([2.0, 2.0, 2.0, 1.0])) @ _shift(-100.0, -200.0, -100.0),
           "shape": [100, 110, 100]}  # head box x, z in [-100, 98], y in [-200, 18]
    w = weight_map(spec, face, pts, {**clean, "fov": {"head_to_index": fov["head_to_index"].tolist(),
                                                      "shape": fov["shape"]}})
    assert np.all(w[y > 18.0] == 0.0) and np.all(w[y < 14.0] == 1.0)


def _shift(x, y, z):
    m = np.eye(4)
    m[:3, 3] = [-x, -y, -z]
    return m


# --- many inputs -------------------------------------------------------------------------------------

def test_inputs_from_folders_lists_and_globs(tmp_path):
    vols = tmp_path / "vols"
    vols.mkdir()
    for n in ("b.nii.gz", "a.nrrd", "c.mha", "notes.txt"):
        (vols / n).write_bytes(b"")
    series = tmp_path / "series1"
    series.mkdir()
    (series / "IM0001.dcm").write_bytes(b"")
    # a folder of volume files -> its files, sorted; a DICOM folder -> one series
    assert expand_volume_inputs([vols]) == [vols / "a.nrrd", vols / "b.nii.gz", vols / "c.mha"]
    assert expand_volume_inputs([series]) == [series]
    # a quoted glob, expanded here; duplicates kept once at their first place
    assert expand_volume_inputs([str(vols / "*.ni*"), vols / "b.nii.gz"]) == [vols / "b.nii.gz"]
    lst = tmp_path / "cts.txt"
    lst.write_text("# training heads\nvols/c.mha\n\n  series1   # one DICOM series\n", encoding="utf-8")
    assert expand_volume_inputs([f"@{lst}"]) == [vols / "c.mha", series]
    assert expand_volume_inputs([vols / "a.nrrd"], [lst]) == [vols / "a.nrrd", vols / "c.mha", series]
    for bad, msg in (([tmp_path / "nope.nii"], "not found"), ([str(tmp_path / "*.nii")], "no file matches"),
                     ([vols / "notes.txt"], "not a head CT volume"), ([f"@{tmp_path / 'none.txt'}"], "list file")):
        with pytest.raises(InputError, match=msg):
            expand_volume_inputs(bad)


def test_cli_help_names_the_new_inputs(capsys):
    from skull2face.cli import main

    with pytest.raises(SystemExit):
        main(["dataset", "build", "--help"])
    out = capsys.readouterr().out
    assert "--ct-list" in out and "@LIST" in out and "quality gate" in out


def test_an_mri_head_with_implausible_tissue_at_nasion_is_refused():
    """Published nasion 6.0 +- 1.5 mm: 4 SDs either side are accepted (0-12 mm), 19.8 mm (a skin
    threshold in the noise, as on the 0.5 mm UIH head) is not."""
    from skull2face.anatomy.mr_skull import mr_tissue_implausible

    skull = {"N": [0.0, 0.0, 0.0], "G": [0.0, 15.0, 2.0]}
    ok = {"n": [0.0, 0.0, 6.5], "g'": [0.0, 15.0, 8.0]}
    assert mr_tissue_implausible(skull, ok) is None
    bad = {"n": [0.0, 0.0, 19.8], "g'": [0.0, 15.0, 8.0]}
    assert "19.8 mm at N" in mr_tissue_implausible(skull, bad)
