"""The bad-input catalogue, end to end through the command line (issue 14, defects 3, 5, 6, 8, 9).

Every case runs ``python -m skull2face ...`` as a user would and must end with exit status 2,
exactly one line on stderr naming the offending file, no traceback, and every input file
byte for byte as it was. The inputs are small (an 80 mm sphere "skull", 48 x 48 x 40 voxel
volumes); only the two landmark-distance cases read the bundled Arothron skull.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import trimesh

from skull2face import samples
from skull2face.anatomy.landmark_set import LandmarkSet
from skull2face.io.landmarks import read_landmarks, write_landmarks
from skull2face.io.volumes import Volume, write_dicom_series, write_volume
from skull2face.phantoms import head_phantom

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _small_volume(offset: int = 0, dtype=np.int16) -> Volume:
    v = head_phantom(shape=(48, 48, 40), spacing=(4.0, 4.0, 5.0), skin_radius=80.0, bone_radii=(62.0, 70.0))
    return Volume(voxels=(v.voxels.astype(np.int32) + offset).astype(dtype), spacing=v.spacing, origin=v.origin,
                  direction=v.direction)


def _partial_skulls(d: Path) -> None:
    """The Arothron skull cut in its head frame (issue 21 item 1): face region, right half, midface removed."""
    from skull2face.anatomy.locate import locate
    from skull2face.geometry.frame import apply, head_frame

    path = samples.path("arothron_skull")
    mesh = trimesh.load(path, force="mesh")
    lms, _ = locate(mesh, path, "skull")
    v = apply(head_frame(lms.points, "skull").matrix, np.asarray(mesh.vertices))
    pr_y = apply(head_frame(lms.points, "skull").matrix, np.asarray(lms.points["Pr"])[None])[0, 1]
    cuts = {"noface": v[:, 2] > -15.0, "lefthalf": v[:, 0] < -5.0,
            "nomid": (np.abs(v[:, 0]) < 35) & (v[:, 1] < -12) & (v[:, 1] > pr_y + 5) & (v[:, 2] > -40)}
    for name, drop in cuts.items():
        cut = trimesh.Trimesh(mesh.vertices, mesh.faces[(~drop)[mesh.faces].all(axis=1)], process=False)
        cut.remove_unreferenced_vertices()
        cut.export(str(d / f"{name}_skull.ply"))


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> Path:
    """A folder of (mostly bad) inputs, made once."""
    d = tmp_path_factory.mktemp("inputs")
    skull = trimesh.creation.icosphere(subdivisions=3, radius=80.0)
    skull.export(str(d / "skull.ply"))
    (d / "notes.txt").write_text("not an output folder\n")
    # PLY with one NaN vertex (the loader used to drop it silently)
    v = np.asarray(skull.vertices).copy()
    v[5] = np.nan
    trimesh.Trimesh(v, skull.faces, process=False).export(str(d / "nan_skull.ply"), encoding="ascii")
    # one 100 x 100 mm triangle: 5,000 mm^2, not "no area"
    trimesh.Trimesh([[0, 0, 0], [100, 0, 0], [0, 100, 0]], [[0, 1, 2]], process=False).export(
        str(d / "triangle_skull.ply"))
    (d / "model_bad.pt").write_bytes(b"PK\x03\x04 this is not a model" * 10)
    (d / "model_empty.pt").write_bytes(b"")
    (d / "fstt_mine.csv").write_text("bone_landmark,soft_landmark,side,mean_mm,sd_mm,paper_table1_landmark\n"
                                     "g,g',midline,5.5,1.0,G\nn,se',midline,6.0,-1.5,N\n")
    _partial_skulls(d)
    nan_vol = _small_volume(dtype=np.float32)
    nan_vol.voxels[10, 10, 10] = np.nan
    write_volume(nan_vol, d / "nan_ct.nii.gz")
    nan_vol.voxels[:] = np.nan
    write_volume(nan_vol, d / "allnan_ct.nii.gz")
    write_volume(_small_volume(offset=1024), d / "raw_ct.nii.gz")  # not Hounsfield units
    write_dicom_series(_small_volume(), d / "dicom")
    slice_ = d / "dicom" / "slice_0010.dcm"
    slice_.write_bytes(slice_.read_bytes()[:300])  # truncated
    (d / "semi.csv").write_text("name,x;y;z\nN;1.5;2.5;3\n")
    # landmarks of the bundled Arothron skull: vertices of it, then moved or mistagged
    aro = trimesh.load(str(samples.path("arothron_skull")), process=False)
    pts = {n: np.asarray(aro.vertices[i]) for n, i in (("N", 100), ("Pr", 5000), ("G", 20000))}
    write_landmarks(LandmarkSet(points=pts, surface="skull"), d / "on_skull.json")
    write_landmarks(LandmarkSet(points={n: p + [0, 0, 500.0] for n, p in pts.items()}, surface="skull"),
                    d / "far.json")
    ras = {n: p * [-1, -1, 1] for n, p in pts.items()}  # RAS values ...
    write_landmarks(LandmarkSet(points=ras, surface="skull"), d / "ras_as_lps.json")  # ... tagged LPS
    (d / "run").mkdir()
    (d / "run" / "best.pt").write_bytes(b"a checkpoint")
    (d / "prev").mkdir()
    skull.export(str(d / "prev" / "face.ply"))
    _limits_inputs(d)
    # photographs that are not: random noise, a 16-bit grey ramp, a PNG declaring 30,000 x 30,000 px
    import cv2

    rng = np.random.default_rng(0)
    cv2.imwrite(str(d / "noise.png"), rng.integers(0, 256, (600, 480, 3), dtype=np.uint8))
    cv2.imwrite(str(d / "grey16.png"), np.linspace(0, 65535, 600 * 480).reshape(600, 480).astype(np.uint16))
    cv2.imwrite(str(d / "huge.png"), np.zeros((64, 64), np.uint8))
    png = bytearray((d / "huge.png").read_bytes())
    png[16:24] = struct.pack(">II", 30_000, 30_000)  # IHDR width, height ...
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))  # ... and its CRC
    (d / "huge.png").write_bytes(bytes(png))
    (d / "landmarks.csv").write_text("name,x,y\ng',240,200\nn,240,250\nsn,240,380\nzy'_L,330,300\nzy'_R,150,300\n")
    # a photo's content (issue 21): fully transparent; landmarks that cannot be a face in the photo
    rgba = np.zeros((600, 480, 4), np.uint8)
    rgba[..., :3] = rng.integers(0, 256, (600, 480, 3), dtype=np.uint8)  # hidden under alpha 0
    cv2.imwrite(str(d / "transparent.png"), rgba)
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(rng.standard_normal((600, 480)), 6.0)
    half = np.clip(128 + 60 * smooth / smooth.std(), 0, 255).astype(np.uint8)
    half[:, 240:] = 128  # the right half blank
    cv2.imwrite(str(d / "photo.png"), np.repeat(half[..., None], 3, axis=2))
    face = {"n": (120, 250), "en_L": (150, 270), "en_R": (90, 270), "sn": (120, 380), "me": (120, 500)}

    def lms(name: str, pts: dict) -> None:
        (d / name).write_text("name,x,y\n" + "".join(f"{k},{x},{y}\n" for k, (x, y) in pts.items()))

    lms("face.csv", face)
    lms("mirrored.csv", {**face, "en_L": face["en_R"], "en_R": face["en_L"]})
    lms("upside_down.csv", {**face, "sn": (120, 560)})
    lms("on_blank.csv", {k: (x + 240, y) for k, (x, y) in face.items()})
    return d


def nifti_bomb(path: Path, dims=(2000, 2000, 1000)) -> Path:
    """A small NIfTI-1 file whose header declares ``dims`` int16 voxels (8 GB at the default):
    SimpleITK writes an 8^3 image, then the header's dim field (offset 40, int16[8]) is patched.
    Written gzipped when ``path`` ends in .gz (a decompression bomb's header, without the bomb)."""
    import gzip
    import struct

    import SimpleITK as sitk

    raw = path.with_name(path.name.removesuffix(".gz") + ".tmp.nii")
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8, 8), np.int16)), str(raw))
    head = bytearray(raw.read_bytes())
    raw.unlink()
    head[40:56] = struct.pack("<8h", 3, *dims, 1, 1, 1, 1)
    path.write_bytes(gzip.compress(bytes(head)) if path.name.endswith(".gz") else bytes(head))
    return path


def _limits_inputs(d: Path) -> None:
    """Issue 21's limits and tracebacks: a header declaring 8 GB, an all-zero volume, JSON
    200,000 levels deep, a truncated MetaImage (MetaIO prints to stderr on its own)."""
    import SimpleITK as sitk

    nifti_bomb(d / "bomb_ct.nii.gz")
    zero = _small_volume()
    zero.voxels[:] = 0
    write_volume(zero, d / "zero_ct.nii.gz")
    (d / "deep.json").write_text("[" * 200_000 + "]" * 200_000)
    sitk.WriteImage(_small_volume().to_sitk(), str(d / "full.mha"))
    full = (d / "full.mha").read_bytes()
    (d / "truncated_ct.mha").write_bytes(full[: len(full) // 2])
    (d / "full.mha").unlink()


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


ARO = "@arothron"
PHOTO_LMS = ("--photo-landmarks", "{IN}/landmarks.csv")
CASES = {
    # case: (argv; {IN} is the inputs folder, {OUT} a fresh folder), words on stderr, file named
    "out-is-a-file": (["predict", "{IN}/skull.ply", "--method", "envelope", "--out", "{IN}/notes.txt"],
                      ["existing file"], "notes.txt"),
    "out-under-a-file": (["extract", "{IN}/raw_ct.nii.gz", "--out", "{IN}/notes.txt/sub"],
                         ["lies under", "is a file"], "notes.txt"),
    "out-not-writable": (["render", "{IN}/skull.ply", "--out", "/proc/skull2face-test/out"],
                         ["cannot be written"], "/proc/skull2face-test/out"),
    "evaluate-over-its-inputs": (["evaluate", "--pred", "{IN}/skull.ply", "--truth", "{IN}/skull.ply",
                               "--out", "{IN}"], ["skull.ply", "is an input"], "skull.ply"),
    "out-is-a-user-folder": (["report", "{IN}/prev", "--out", "{IN}/run"], ["not a skull2face report run"], "run"),
    "predict-over-its-input": (["predict", "{IN}/prev/face.ply", "--method", "envelope", "--out", "{IN}/prev"],
                               ["is an input", "would overwrite"], "face.ply"),
    "landmarks-over-given": (["landmarks", "{IN}/skull.ply", "--landmarks", "{IN}/on_skull.json",
                              "--out", "{IN}/on_skull.json"], ["is an input"], "on_skull.json"),
    "train-over-its-data": (["train", "--data", "{IN}/run", "--out", "{IN}/run"], ["is an input"], "run"),
    "export-over-checkpoint": (["export", "{IN}/run", "--data", "{IN}", "--out", "{IN}/run/best.pt"],
                               ["is an input"], "best.pt"),
    "dataset-missing-ct": (["dataset", "build", "--ct", "{IN}/raw_ct.nii.gz", "{IN}/nope.nii.gz",
                            "--out", "{OUT}"], ["not found"], "nope.nii.gz"),
    "dataset-out-under-file": (["dataset", "build", "--out", "{IN}/notes.txt/ds"], ["is a file"], "notes.txt"),
    "render-two-skulls": (["render", "{IN}/skull.ply", "{IN}/nan_skull.ply", "--out", "{OUT}"],
                          ["a second skull mesh"], "nan_skull.ply"),
    "landmarks-half-a-metre-away": (["landmarks", ARO, "--landmarks", "{IN}/far.json"],
                                    ["more than 15 mm", "worst", "mm from the mesh"], "far.json"),
    "landmarks-ras-tagged-lps": (["landmarks", ARO, "--landmarks", "{IN}/ras_as_lps.json"],
                                 ["more than 15 mm", "worst", "RAS"], "ras_as_lps.json"),
    "mesh-nan-vertex": (["landmarks", "{IN}/nan_skull.ply"], ["NaN", "1 of"], "nan_skull.ply"),
    "volume-nan-voxel": (["extract", "{IN}/nan_ct.nii.gz", "--out", "{OUT}"], ["NaN", "1 of"], "nan_ct.nii.gz"),
    "volume-all-nan": (["extract", "{IN}/allnan_ct.nii.gz", "--out", "{OUT}"], ["every voxel is NaN"],
                       "allnan_ct.nii.gz"),
    "model-corrupt": (["predict", "{IN}/skull.ply", "--model", "{IN}/model_bad.pt", "--out", "{OUT}"],
                      ["not a skull2face model file"], "model_bad.pt"),
    "sex-with-the-pooled-table": (["predict", "{IN}/skull.ply", "--sex", "female", "--out", "{OUT}"],
                                  ["pooled adult values only (no sex column)", "--thickness-table"],
                                  "fstt_hona_stephan_2024.csv"),
    "thickness-table-malformed": (["predict", "{IN}/skull.ply", "--thickness-table", "{IN}/fstt_mine.csv",
                                   "--method", "tissue-depth", "--out", "{OUT}"], ["line 3", "SD"], "fstt_mine.csv"),
    "model-empty": (["predict", "{IN}/skull.ply", "--model", "{IN}/model_empty.pt", "--out", "{OUT}"],
                    ["not a skull2face model file", "empty"], "model_empty.pt"),
    "predict-non-hu-volume": (["predict", "{IN}/raw_ct.nii.gz", "--method", "envelope", "--out", "{OUT}"],
                              ["Hounsfield", "T1 MRI head", "skull2face extract --intensity raw"], "raw_ct.nii.gz"),
    "one-big-triangle": (["landmarks", "{IN}/triangle_skull.ply"], ["1 triangle(s) with any area", "5000 mm^2"],
                         "triangle_skull.ply"),
    "dicom-truncated-slice": (["extract", "{IN}/dicom", "--out", "{OUT}"], ["truncated or corrupt"],
                              "slice_0010.dcm"),
    "csv-semicolons": (["landmarks", "{IN}/skull.ply", "--landmarks", "{IN}/semi.csv"], ["';'-separated"],
                       "semi.csv"),
    # issue 21: limits before reading, no tracebacks, no stray lines
    "volume-header-declares-8gb": (["extract", "{IN}/bomb_ct.nii.gz", "--out", "{OUT}"],
                                   ["2000 x 2000 x 1000", "GiB limit"], "bomb_ct.nii.gz"),
    "volume-all-zero-raw": (["extract", "{IN}/zero_ct.nii.gz", "--intensity", "raw", "--out", "{OUT}"],
                            ["every voxel is 0", "no image"], "zero_ct.nii.gz"),
    "volume-all-zero-hu": (["extract", "{IN}/zero_ct.nii.gz", "--out", "{OUT}"], ["every voxel is 0"],
                           "zero_ct.nii.gz"),
    "landmarks-json-200000-deep": (["landmarks", "{IN}/skull.ply", "--landmarks", "{IN}/deep.json"],
                                   ["nested too deeply"], "deep.json"),
    "mha-truncated-metaio-quiet": (["extract", "{IN}/truncated_ct.mha", "--out", "{OUT}"],
                                   ["truncated or corrupt"], "truncated_ct.mha"),
    "head-weight-matches-no-head": (["dataset", "build", "--ct", "{IN}/raw_ct.nii.gz", "--head-weight",
                                     "nomatch*=0.5", "--out", "{OUT}"], ["matches none of the CT heads", "raw_ct"],
                                    "--head-weight 'nomatch*=0.5'"),
    "front-parallel-to-up": (["landmarks", "{IN}/skull.ply", "--front", "+x", "--up", "+x"],
                             ["parallel", "--front -y --up +z"], "--front +x and --up +x"),
    # superimpose keeps the evidence (issue 21): never over its inputs, never a noise or 16-bit "photo"
    "superimpose-over-its-inputs": (["superimpose", "{IN}/skull.ply", "{IN}/noise.png", *PHOTO_LMS, "--out", "{IN}"],
                                    ["is an input", "would overwrite"], "skull.ply"),
    "photo-random-noise": (["superimpose", "{IN}/skull.ply", "{IN}/noise.png", *PHOTO_LMS, "--out", "{OUT}"],
                           ["random noise", "not a photograph"], "noise.png"),
    "photo-16-bit-grey": (["superimpose", "{IN}/skull.ply", "{IN}/grey16.png", *PHOTO_LMS, "--out", "{OUT}"],
                          ["16-bit PNG", "8 bits per channel"], "grey16.png"),
    "photo-declares-30000-px": (["superimpose", "{IN}/skull.ply", "{IN}/huge.png", *PHOTO_LMS, "--out", "{OUT}"],
                                ["30000 x 30000 px", "not decoded"], "huge.png"),
    "photo-fully-transparent": (["superimpose", "{IN}/skull.ply", "{IN}/transparent.png", *PHOTO_LMS, "--out",
                                 "{OUT}"], ["fully transparent"], "transparent.png"),
    "photo-landmarks-mirrored": (["superimpose", "{IN}/skull.ply", "{IN}/photo.png", "--photo-landmarks",
                                  "{IN}/mirrored.csv", "--out", "{OUT}"], ["mirrored", "en_L"], "mirrored.csv"),
    "photo-landmarks-upside-down": (["superimpose", "{IN}/skull.ply", "{IN}/photo.png", "--photo-landmarks",
                                     "{IN}/upside_down.csv", "--out", "{OUT}"], ["out of order"], "upside_down.csv"),
    "photo-landmarks-on-blank": (["superimpose", "{IN}/skull.ply", "{IN}/photo.png", "--photo-landmarks",
                                  "{IN}/on_blank.csv", "--out", "{OUT}"], ["blank where the landmarks lie"],
                                 "on_blank.csv"),
    # issue 21 item 1: partial skulls refused where too little is left for the head frame; skulls as faces
    # (-q: the pose's progress lines are logged at INFO; the refusal must still be the one line)
    "predict-skull-without-face": (["-q", "predict", "{IN}/noface_skull.ply", "--method", "envelope", "--out", "{OUT}"],
                                   ["too little of a skull", "no bone", "face region"], "noface_skull.ply"),
    "predict-skull-right-half": (["-q", "predict", "{IN}/lefthalf_skull.ply", "--method", "envelope", "--out", "{OUT}"],
                                 ["too little of a skull", "one half (left or right) of the skull seems missing"],
                                 "lefthalf_skull.ply"),
    "predict-skull-without-midface": (["-q", "predict", "{IN}/nomid_skull.ply", "--method", "envelope", "--out", "{OUT}"],
                                      ["too little of the skull is left to place the head frame",
                                       "the midface (nasal aperture and maxilla) missing"], "nomid_skull.ply"),
    "landmarks-face-on-a-skull": (["-q", "landmarks", ARO, "--surface", "face"], ["looks like a skull, not a face"],
                                  "human_skull_arothron.ply"),
    "evaluate-skull-as-truth": (["-q", "evaluate", "--pred", ARO, "--truth", ARO, "--out", "{OUT}"],
                                ["looks like a skull, not a face"], "human_skull_arothron.ply"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_one_line_exit_2(bad, tmp_path, case):
    argv, words, named = CASES[case]
    argv = [a.replace("{IN}", str(bad)).replace("{OUT}", str(tmp_path / "out"))
            .replace(ARO, str(samples.path("arothron_skull"))) for a in argv]
    before = _digest(bad)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-m", "skull2face", *argv], capture_output=True, text=True, env=env,
                       timeout=120)
    err = r.stderr
    print(f"[{case}] {err.strip()}")  # the catalogue of messages, with pytest -s
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1 and err.endswith("\n"), err
    assert named in err, err
    for w in words:
        assert w in err, (w, err)
    assert "weights_only" not in err
    assert _digest(bad) == before  # nothing the user gave was modified (or added to)
    assert not (tmp_path / "out").exists()  # and nothing half-written


def test_volume_header_is_checked_before_decoding(tmp_path):
    """A header declaring 8 GB is refused in milliseconds, without allocating it (.nii and .nii.gz)."""
    import resource
    import time

    from skull2face.errors import InputError
    from skull2face.io.volumes import read_volume

    for name in ("bomb.nii", "bomb.nii.gz"):
        path = nifti_bomb(tmp_path / name)
        before = path.read_bytes()
        t, rss = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with pytest.raises(InputError, match=r"2000 x 2000 x 1000 voxels .* 7\.45 GiB decoded"):
            read_volume(path)
        assert time.perf_counter() - t < 2.0
        assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: nothing near 8 GB
        assert path.read_bytes() == before


def test_the_error_messages_axis_example_can_be_typed(tmp_path):
    """``--front -y --up +z`` (the message's own example) parses: a value may start with '-'."""
    from skull2face.cli import COMMANDS, command_parser, dash_values

    cmd = next(c for c in COMMANDS if c.name == "landmarks")
    parser = command_parser(cmd)
    for argv in (["m.ply", "--front", "-y", "--up", "+z"], ["m.ply", "--front=-y", "--up", "+z"]):
        args = vars(parser.parse_args(dash_values(parser, argv)))  # nested settings: dest "pose.front"
        assert [args[k] for k in sorted(args) if k.split(".")[-1] in ("front", "up")] == ["-y", "+z"]
    # a word that is one of the command's options is not swallowed as a value
    assert dash_values(parser, ["m.ply", "--front", "-h"]) == ["m.ply", "--front", "-h"]
    assert dash_values(parser, ["--", "--front", "-y"]) == ["--", "--front", "-y"]


def test_native_output_goes_to_the_log(capfd, caplog):
    """What native code writes to file descriptor 2 (MetaIO, GDCM) is logged, not printed."""
    import logging

    from skull2face.io.native import native_output_to_log

    with caplog.at_level(logging.DEBUG, logger="skull2face.native"):
        with native_output_to_log():
            os.write(2, b"MetaImage: M_ReadElementsData: data not read completely\n")
    assert capfd.readouterr().err == ""
    assert "data not read completely" in caplog.text


def test_predict_model_fails_before_slow_steps(bad, tmp_path):
    """A bad --model fails in under a second of work: it is read before the skull (a CT here)."""
    import time

    import torch  # noqa: F401  (imported once per process anyway; not the work timed here)

    from skull2face.errors import InputError
    from skull2face.stages.predict import PredictSettings, predict

    t = time.perf_counter()
    with pytest.raises(InputError, match="not a skull2face model file"):
        predict(samples.path("headsq"), tmp_path / "o", PredictSettings(model=str(bad / "model_bad.pt")))
    assert time.perf_counter() - t < 1.0
    assert not (tmp_path / "o").exists()


def test_semicolon_csv_with_decimal_commas_reads(tmp_path):
    p = tmp_path / "lm.csv"
    p.write_text("name;x;y;z\nN;1,5;-2,25;3\nPog;4;5;6\n")
    lms = read_landmarks(p)
    np.testing.assert_array_equal(lms.points["N"], [1.5, -2.25, 3.0])
    np.testing.assert_array_equal(lms.points["Pog"], [4.0, 5.0, 6.0])


def test_given_landmarks_on_the_surface_are_kept(bad):
    """The distance check accepts landmarks on the mesh (0 mm) and reports the worst distance."""
    from skull2face.anatomy.locate import GIVEN_MAX_MM, check_given
    from skull2face.errors import InputError

    aro = trimesh.load(str(samples.path("arothron_skull")), process=False)
    check_given(aro, read_landmarks(bad / "on_skull.json"), bad / "on_skull.json")
    near = read_landmarks(bad / "on_skull.json")
    corner = aro.bounds[1] + GIVEN_MAX_MM + 5  # beyond the bounding box: farther than the limit from any triangle
    moved = LandmarkSet(points={**near.points, "N": corner}, surface="skull")
    with pytest.raises(InputError, match=r"worst: \w+ at \d+\.\d mm"):
        check_given(aro, moved, "x.json")


def test_refused_run_leaves_nothing(bad, tmp_path):
    """A refused predict leaves no folder, no predict.json and no hidden files beside it."""
    from skull2face.errors import InputError
    from skull2face.stages.predict import PredictSettings, predict

    with pytest.raises(InputError):
        predict(bad / "skull.ply", tmp_path / "o", PredictSettings(model=str(bad / "model_empty.pt")))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
