"""The dataset builder: splits by head, reproducibility, real pairs, the report."""

import json

import numpy as np
import pytest

from skull2face import samples
from skull2face.dataset.build import DatasetSettings, build_dataset
from skull2face.stages.dataset import build
from skull2face.dataset.reader import load_manifest
from skull2face.errors import InputError
from skull2face.geometry.depthmap import load_depthmap


def small(**kw):
    base = dict(n_paired=3, n_skulls=2, n_sfm=2, real_faces=False, test_heads=["headsq"], size=96,
                mm_per_px=2.5, workers=2, seed=7)
    base.update(kw)
    return DatasetSettings(**base)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds") / "a"
    build(out, [samples.path("headsq"), samples.path("cranium")], small())
    return out


def test_split_by_head_no_leakage(built):
    man = load_manifest(built)
    for s in man.samples:
        assert s["split"] == ("test" if s["source_head"] == "headsq" else "train"), s["id"]
    test_ids = {s["id"] for s in man.samples if s["split"] == "test"}
    assert all(i.startswith("headsq") for i in test_ids)
    kinds = {(s["kind"], s["real"]) for s in man.samples}
    assert {("paired", True), ("paired", False), ("unpaired-skull", False), ("unpaired-face", False)} <= kinds


def test_real_pair_is_the_ct_and_face_is_outside_bone(built):
    man = load_manifest(built)
    real = [s for s in man.samples if s["real"] and s["kind"] == "paired"]
    assert {s["source_head"] for s in real} == {"headsq", "cranium_ct0051"}
    for s in man.samples:
        if s["kind"] != "paired":
            continue
        skull = load_depthmap(built / s["files"]["skull"])
        face = load_depthmap(built / s["files"]["face"])
        both = skull.mask & face.mask
        # seen from the front, the skin is never behind the bone (soft tissue >= 0)
        assert np.quantile(face.height[both] - skull.height[both], 0.01) > -0.5, s["id"]
        assert s["la_targets"], s["id"]


def test_same_seed_gives_identical_manifest(built, tmp_path):
    again = tmp_path / "b"
    build_dataset([samples.path("headsq"), samples.path("cranium")], again, small(workers=1))
    assert (again / "manifest.json").read_bytes() == (built / "manifest.json").read_bytes()
    a = np.load(built / "maps" / "cranium_ct0051-pair0001_face.npz")["height"]
    b = np.load(again / "maps" / "cranium_ct0051-pair0001_face.npz")["height"]
    assert np.array_equal(a, b, equal_nan=True)


def test_report_and_settings(built):
    rec = json.loads((built / "dataset.json").read_text(encoding="utf-8"))
    assert rec["settings"]["seed"] == 7 and rec["settings"]["test_heads"] == ["headsq"]
    assert (built / "report" / "samples.png").is_file()
    th = json.loads((built / "report" / "thickness.json").read_text(encoding="utf-8"))["sites"]
    assert th["G"]["published_mean_mm"] == 5.5 and th["G"]["n"] == 6


def test_refuses_unknown_test_head_and_existing_dataset(built, tmp_path):
    with pytest.raises(InputError, match="not among the CT heads"):
        build_dataset([samples.path("headsq")], tmp_path / "c", small(test_heads=["nobody"]))
    with pytest.raises(InputError, match="already holds a dataset"):
        build_dataset([samples.path("headsq")], built, small())


def test_weight_maps_and_head_weights_reach_the_arrays(built, tmp_path):
    """A sample's weight map times its head's weight is ``face_weight``; a block of the
    downsampled arrays counts as its pixels on average; a malformed map is refused."""
    import shutil

    from skull2face.dataset.reader import downsample_arrays, load_arrays

    ds = tmp_path / "w"
    shutil.copytree(built, ds)
    raw = json.loads((ds / "manifest.json").read_text(encoding="utf-8"))
    sample = next(s for s in raw["samples"] if s["id"] == "cranium_ct0051-real")
    wmap = np.ones((96, 96), np.float32)
    wmap[48:] = 0.0  # the lower half of this head is not trusted
    np.savez(ds / "maps" / "cranium_ct0051-real_weight.npz", weight=wmap)
    sample["files"]["weight"] = "maps/cranium_ct0051-real_weight.npz"
    raw["heads"]["cranium_ct0051"]["weight"] = 0.5
    (ds / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    a = load_arrays(ds, ["cranium_ct0051-real", "cranium_ct0051-pair0001", "headsq-real"])
    np.testing.assert_array_equal(a["head_weight"], [0.5, 0.5, 1.0])
    np.testing.assert_array_equal(a["face_weight"][0, 0], 0.5 * wmap)
    own = {raw_s["id"]: np.load(ds / raw_s["files"]["weight"])["weight"] for raw_s in raw["samples"]
           if raw_s["id"] in ("cranium_ct0051-pair0001", "headsq-real")}  # the gate's maps
    np.testing.assert_array_equal(a["face_weight"][1, 0], 0.5 * own["cranium_ct0051-pair0001"])
    np.testing.assert_array_equal(a["face_weight"][2, 0], own["headsq-real"])
    half = downsample_arrays(a, 48)
    assert half["face_weight"].shape == (3, 1, 48, 48)
    np.testing.assert_allclose(half["face_weight"][0, 0, :24], 0.5)
    np.testing.assert_allclose(half["face_weight"][0, 0, 24:], 0.0)
    np.savez(ds / "maps" / "cranium_ct0051-real_weight.npz", weight=np.full((10, 10), 0.5, np.float32))
    with pytest.raises(InputError, match=r"cranium_ct0051-real_weight\.npz: weight map size"):
        load_arrays(ds, ["cranium_ct0051-real"])
    raw["heads"]["cranium_ct0051"]["weight"] = 2.0
    (ds / "manifest.json").write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(InputError, match=r"manifest\.json: .*heads\.cranium_ct0051\.weight must be in"):
        load_arrays(ds, ["cranium_ct0051-pair0001"])


def test_head_weight_patterns():
    """PATTERN=W items: the last match wins, 1 without a match; malformed items are refused."""
    from skull2face.dataset.build import head_weight_of

    items = ["pt_*=0.1", "pt_187=0.5"]
    assert head_weight_of("pt_20", items) == 0.1
    assert head_weight_of("pt_187", items) == 0.5
    assert head_weight_of("headsq", items) == 1.0
    for bad in ("pt_*", "pt_*=2", "=0.5", "pt_*=x"):
        with pytest.raises(ValueError, match="PATTERN=W"):
            DatasetSettings(head_weights=[bad])


def test_manifest_records_head_weights_and_the_prior_uses_weight_maps(built):
    """Every head's weight is in the manifest (1 by default); the training head's prior ignores
    the region its gate excluded (cranium: no mandible, so its mouth and chin count 0 there
    and the published table fills in)."""
    from skull2face.statistics.thickness_prior import ThicknessPrior

    man = load_manifest(built)
    assert all(h["weight"] == 1.0 for h in man.heads.values())
    real = man.by_id("cranium_ct0051-real")
    wmap = np.load(built / real["files"]["weight"])["weight"]
    prior = ThicknessPrior.load(built / "prior.npz")
    assert prior.heads == ("cranium_ct0051",)
    assert (wmap == 0).any() and np.all(prior.n_heads[wmap == 0] == 0)


def test_a_t1_mri_head_is_a_real_pair_beside_the_cts(tmp_path):
    """The bundled Siemens T1 head, given beside a CT, is taken for an MRI (not in HU), paired
    with the skull measured under its skin, gated without the CT-only measures and measured
    into the thickness prior."""
    from skull2face.statistics.thickness_prior import ThicknessPrior

    out = tmp_path / "mr"
    build(out, [samples.path("cranium"), samples.path("mri_siemens")],
          small(test_heads=["cranium_ct0051"], n_paired=1, n_skulls=1))
    man = load_manifest(out)
    real = man.by_id("siemens_xa30_t1_2mm-real")
    assert real["kind"] == "paired" and real["real"]
    skull = load_depthmap(out / real["files"]["skull"]).height
    face = load_depthmap(out / real["files"]["face"]).height
    both = np.isfinite(skull) & np.isfinite(face)
    assert both.sum() > 300
    assert np.median(face[both] - skull[both]) > 2.0  # the face lies outside the bone it was measured under
    heads = json.loads((out / "report" / "heads.json").read_text())
    assert heads["siemens_xa30_t1_2mm"]["measures"]["modality"] == "mr"
    assert heads["cranium_ct0051"]["measures"]["modality"] == "ct"
    assert "metal_mm3" not in heads["siemens_xa30_t1_2mm"]["measures"]
    assert ThicknessPrior.load(out / "prior.npz").heads == ("siemens_xa30_t1_2mm",)
