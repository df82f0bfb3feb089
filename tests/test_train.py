"""Dataset reader and cGAN training on a tiny synthetic dataset folder (CPU, ~1-2 minutes).

The dataset follows docs/dataset-format.md exactly: 6 paired samples (5 training heads and one
real held-out head), 3 unpaired skulls and 3 unpaired faces at 32x32, written with
`save_depthmap`. Skull and face are ellipsoid caps; the face is the skull grown by a soft-tissue
thickness plus a nose bump, so the translation is simple and geometric.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skull2face.anatomy.landmark_set import LandmarkSet
from skull2face.dataset.reader import (
    downsample_arrays,
    downsample_map,
    load_arrays,
    load_manifest,
)
from skull2face.errors import InputError
from skull2face.geometry.codec import rescale_px
from skull2face.geometry.depthmap import DepthMap, RenderSpec, normalise, save_depthmap
from skull2face.geometry.fill import filled_height
from skull2face.io.atomic import write_json
from skull2face.io.landmarks import write_landmarks
from skull2face.stages.train import TrainSettings, train
from skull2face.training.checkpoints import export_generator, load_generator
from skull2face.training.meta import ModelMeta

SIZE = 32
CENTRE = (0.0, -10.0)  # head-frame (x, y) of the map centre, mm
MM_PER_PX = 6.0
Z_NEAR, Z_FAR = -150.0, 50.0
THICKNESS = 9.0  # mm of soft tissue over the skull in the synthetic heads
FIT_SHORT = 3.0  # mm: the stand-in "face-model fit" of each skull is this much thinner than the face
# Landmarks (head-frame x, y in mm) on the skull; "Zy_r" has no published thickness (null target).
LANDMARKS = {"G": (0.0, 25.0), "Pr": (0.0, -35.0), "Zy_l": (40.0, 0.0), "Zy_r": (-40.0, 0.0)}
SRC = Path(__file__).resolve().parents[1] / "src"


def _spec(size: int = SIZE) -> RenderSpec:
    # Always a 192 mm field of view (6 mm pixels at 32x32), centred off the origin like head maps.
    return RenderSpec(size=(size, size), mm_per_px=MM_PER_PX * SIZE / size, z_near=Z_NEAR, z_far=Z_FAR,
                      centre=CENTRE)


def _cap(p: dict, grow: float, size: int = SIZE) -> np.ndarray:
    """Height (mm, NaN outside) of an ellipsoid cap with half-axes grown by ``grow`` mm."""
    x, y = _spec(size).xy_grid()
    a, b, c = p["a"] + grow, p["b"] + grow, p["c"] + grow
    r2 = (x / a) ** 2 + ((y - p["dy"]) / b) ** 2
    z = p["z0"] + c * np.sqrt(np.clip(1.0 - r2, 0.0, None))
    if grow > 0:  # nose
        z = z + p["nose"] * np.exp(-((x / 10.0) ** 2 + ((y + 5.0) / 14.0) ** 2))
    return np.where(r2 < 1.0, z, np.nan).astype(np.float32)


def _head(rng: np.random.Generator) -> dict:
    return {"a": rng.uniform(55, 70), "b": rng.uniform(70, 85), "c": rng.uniform(60, 80),
            "z0": rng.uniform(-75, -65), "dy": rng.uniform(-5, 5), "nose": rng.uniform(12, 20)}


def _skull_z(p: dict, x: float, y: float) -> float:
    r2 = (x / p["a"]) ** 2 + ((y - p["dy"]) / p["b"]) ** 2
    return float(p["z0"] + p["c"] * np.sqrt(max(0.0, 1.0 - r2)))


def make_dataset(root: Path, seed: int = 0, plan: list | None = None, size: int = SIZE, draw_head=_head) -> Path:
    """Write the tiny dataset folder and return it.

    ``plan`` lists ``(id, kind, source head, split, real)``; ``draw_head(rng)`` draws a head's
    parameters (the defaults make the 12-sample test dataset).
    """
    rng = np.random.default_rng(seed)
    plan = plan or (
        [(f"h{i}-real", "paired", f"h{i}", "train", True) for i in range(3)]
        + [(f"h{i}-warp", "paired", f"h{i}", "train", False) for i in range(2)]
        + [("hT-real", "paired", "hT", "test", True)]
        + [(f"u{i}-skull", "unpaired-skull", f"u{i}", "train", False) for i in range(3)]
        + [(f"v{i}-face", "unpaired-face", f"v{i}", "train", False) for i in range(3)]
    )
    samples, heads = [], {}
    for sid, kind, source, split, real in plan:
        p = draw_head(rng)
        heads[source] = {"split": split, "kind": "ct" if real else "synthetic"}
        files, la = {}, None
        for part, grow in (("skull", 0.0), ("face", THICKNESS)):
            if part == "face" and kind == "unpaired-skull" or part == "skull" and kind == "unpaired-face":
                continue
            z = _cap(p, grow, size)
            save_depthmap(DepthMap(z, np.isfinite(z), _spec(size)), root / "maps" / f"{sid}_{part}", preview=False)
            files[part] = f"maps/{sid}_{part}.npz"
            lm_path = root / "landmarks" / f"{sid}_{part}.json"
            points = {n: np.array([x, y, _skull_z(p, x, y) + (THICKNESS if part == "face" else 0.0)])
                      for n, (x, y) in LANDMARKS.items()}
            lm_path.parent.mkdir(parents=True, exist_ok=True)
            write_landmarks(LandmarkSet(points, surface=part), lm_path)
            files[f"{part}_landmarks"] = f"landmarks/{sid}_{part}.json"
        if "skull" in files:  # a stand-in for the face-model fit: the face, FIT_SHORT mm too thin
            z = _cap(p, THICKNESS - FIT_SHORT, size)
            save_depthmap(DepthMap(z, np.isfinite(z), _spec(size)), root / "maps" / f"{sid}_fit", preview=False)
            files["fit"] = f"maps/{sid}_fit.npz"
        sample = {"id": sid, "kind": kind, "source_head": source, "split": split, "real": real,
                  "files": files, "params": {k: float(v) for k, v in p.items()}}
        if "skull" in files:
            la = []
            for n, (x, y) in LANDMARKS.items():
                s = [x, y, _skull_z(p, x, y)]
                la.append([n, s, None if n == "Zy_r" else [x, y, s[2] + THICKNESS]])
            sample["la_targets"] = la
        samples.append(sample)
    write_json(root / "manifest.json", {
        "format": "skull2face-dataset", "version": 1, "size": [size, size],
        "mm_per_px": _spec(size).mm_per_px,
        "z_near": Z_NEAR, "z_far": Z_FAR, "heads": heads, "samples": samples,
    })
    test_heads = sorted({entry[2] for entry in plan if entry[3] == "test"})
    write_json(root / "dataset.json", {"seed": seed, "counts": {"samples": len(samples)}, "test_heads": test_heads})
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds"))


@pytest.fixture(autouse=True)
def _threads():
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


def tiny(**kw) -> TrainSettings:
    """Small, fast settings: 8 -> 16 -> 32, narrow networks, one thread (immune to busy CPUs).

    2 steps per epoch (5 paired samples, batch 4); the 16x16 level fades in over its whole stage.
    The base is the filled skull unless ``base="fit"`` is asked for (the tests of residual mode
    below know its answers).
    """
    base = dict(schedule="8:1,16:2,32:1", final_res=32, batch_size=4, g_base=2, g_max_ch=16, d_base=8,
                d_layers=2, num_threads=1, progress=False, seed=3, fade_fraction=1.0, base="fill")
    base.update(kw)
    return TrainSettings(**base)


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------


def test_reader_arrays(dataset):
    man = load_manifest(dataset)
    assert man.size == (SIZE, SIZE) and len(man.samples) == 12
    assert [s["id"] for s in man.select(split="test", real=True)] == ["hT-real"]
    arr = load_arrays(dataset, k=4.0)
    n = len(arr["id"])
    assert arr["skull"].shape == (n, 1, SIZE, SIZE) and arr["skull"].dtype == np.float32
    assert arr["face_mask"].shape == (n, 1, SIZE, SIZE)
    for part in ("skull", "face"):
        v, m = arr[part], arr[f"{part}_mask"]
        assert 0.0 <= v.min() and v.max() <= 1.0
        assert np.all(v[m == 0] == 0)
    assert list(arr["has_skull"]) == [True] * 9 + [False] * 3
    assert list(arr["has_face"]) == [True] * 6 + [False] * 3 + [True] * 3
    assert list(arr["la_names"]) == list(LANDMARKS)
    assert arr["la_px"].shape == (n, 4, 2) and arr["la_height"].shape == (n, 4)
    assert arr["centre"].tolist() == list(CENTRE)
    # Targets: pixel from head_to_pixel, height = normalise(target z); null target -> invalid.
    s = man.by_id("h0-real")
    name, _, target = s["la_targets"][0]
    np.testing.assert_allclose(arr["la_px"][0, 0], _spec().head_to_pixel(target), atol=1e-5)
    np.testing.assert_allclose(arr["la_height"][0, 0], normalise(np.array([target[2]]), _spec(), 4.0)[0], rtol=1e-6)
    assert arr["la_valid"][:9, :3].all() and not arr["la_valid"][:, 3].any()
    assert not arr["la_valid"][9:].any()  # faces only


def test_reader_downsample(dataset):
    arr = load_arrays(dataset)
    small = downsample_arrays(arr, 8)
    assert small["face"].shape[-2:] == (8, 8) and small["mm_per_px"] == MM_PER_PX * 4
    assert load_arrays(dataset, size=16)["skull"].shape[-1] == 16
    # Positions follow geometry.codec.rescale_px exactly (the one the tensors use).
    np.testing.assert_allclose(small["la_px"], rescale_px(torch.from_numpy(arr["la_px"]), SIZE, 8).numpy(), rtol=1e-6)
    np.testing.assert_allclose(rescale_px(np.array([[0.0, 31.0]]), 32, 8), [[-0.375, 7.375]])
    # Majority rule and averaging in linear depth (mm), not in powered values.
    v = np.zeros((2, 1, 2, 2), np.float32)
    v[0, 0] = [[0.0625, 0.0], [1.0, 0.0]]  # u = 0.5 and 1.0 at k = 4
    v[1, 0, 0, 0] = 0.2
    m = np.array([[[[1, 0], [1, 0]]], [[[1, 0], [0, 0]]]], np.float32)
    out, om = downsample_map(v, m, (2, 2), 4.0)
    assert om.ravel().tolist() == [0.0, 0.0]  # half or fewer valid -> invalid
    m[0, 0, 0, 1] = 1.0
    v[0, 0, 0, 1] = 1.0
    out, om = downsample_map(v, m, (2, 2), 4.0)
    assert om[0, 0, 0, 0] == 1 and out[0, 0, 0, 0] == pytest.approx(((0.5 + 1 + 1) / 3) ** 4, rel=1e-6)
    with pytest.raises(ValueError):
        downsample_arrays(arr, 12)


def test_reader_errors(dataset, tmp_path):
    with pytest.raises(InputError, match="manifest.json"):
        load_manifest(tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest.json"):
        load_manifest(bad)
    manifest = json.loads((dataset / "manifest.json").read_text(encoding="utf-8"))
    broken = make_dataset(tmp_path / "broken", seed=1)
    bad_kind = json.loads(json.dumps(manifest))
    bad_kind["samples"][0]["kind"] = "pair"
    (broken / "manifest.json").write_text(json.dumps(bad_kind))
    with pytest.raises(InputError, match="kind"):
        load_manifest(broken)
    mixed = json.loads(json.dumps(manifest))
    mixed["samples"][5]["source_head"] = "h0"  # a test sample from a training head
    (broken / "manifest.json").write_text(json.dumps(mixed))
    with pytest.raises(InputError, match="both train and test"):
        load_manifest(broken)
    (broken / "manifest.json").write_text(json.dumps(manifest))
    spec_path = broken / "maps" / "v0-face_face.json"
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    spec_path.write_text(json.dumps({**spec, "centre": [0.0, 0.0]}))
    with pytest.raises(InputError, match="v0-face_face.npz.*centre"):
        load_arrays(broken)
    (broken / "maps" / "h1-real_face.npz").unlink()
    with pytest.raises(InputError, match="h1-real_face.npz"):
        load_arrays(broken)
    (broken / "maps" / "h2-real_skull.npz").write_bytes(b"garbage")
    with pytest.raises(InputError, match="h2-real_skull.npz"):
        load_arrays(broken, [manifest["samples"][2]["id"]])


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------


def test_settings():
    s = TrainSettings()
    assert s.stages() == [(8, 2), (16, 2), (32, 3), (64, 4), (128, 6), (256, 10)]
    assert TrainSettings(final_res=32).stages() == [(8, 2), (16, 2), (32, 3)]
    assert TrainSettings(final_res=32, staged=False).stages() == [(32, 7)]
    assert TrainSettings(schedule=[[8, 1], [16, 3]], final_res=16).stages() == [(8, 1), (16, 3)]
    with pytest.raises(ValueError, match="double"):
        TrainSettings(schedule="8:1,32:1", final_res=32)
    with pytest.raises(ValueError, match="final_res"):
        TrainSettings(schedule="8:1,16:1", final_res=32)
    with pytest.raises(ValueError, match="init_thickness_mm"):
        TrainSettings(thickness_min_mm=10.0)
    assert TrainSettings.from_json(s.to_json()) == s
    from skull2face.cli import COMMANDS, command_parser
    from skull2face.options import settings_from_args

    cmd = next(c for c in COMMANDS if c.name == "train")
    args = command_parser(cmd).parse_args(["--data", "d", "--out", "o", "--final-res", "64", "--no-staged",
                                           "--betas", "0.4,0.9", "--stop-after-epochs", "3"])
    got = settings_from_args(TrainSettings, args)
    assert (got.final_res, got.staged, got.betas, got.stop_after_epochs) == (64, False, (0.4, 0.9), 3)


def test_default_generator_export_is_small():
    from skull2face.model import GanConfig, UNetGenerator, generator_kwargs

    g = UNetGenerator(**generator_kwargs(GanConfig.from_settings(TrainSettings())))
    assert sum(p.numel() * 4 for p in g.state_dict().values()) < 20e6


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture(scope="module")
def unbroken(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train(dataset, out, tiny())
    return out, summary


def test_train_outputs(unbroken):
    out, summary = unbroken
    for name in ("metrics.jsonl", "loss.png", "train.json", "last.pt", "best.pt"):
        assert (out / name).is_file(), name
    assert summary["completed"] and summary["epochs_done"] == 4
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [r["res"] for r in rows] == [8, 16, 16, 32]
    # Each new level fades in over its whole stage: alpha 0.5 after the first of two 16x16 epochs.
    assert [r["alpha"] for r in rows] == [1.0, 0.5, 1.0, 1.0]
    for r in rows:
        assert np.isfinite([r["val_mae_mm"], r["val_rmse_mm"], r["baseline_mae_mm"], r["l1"], r["la_mm"]]).all()
        assert 0 <= r["val_within_2_5mm"] <= 1 and r["val_rmse_mm"] >= r["val_mae_mm"]
        assert list(r["val_per_sample_mae_mm"]) == ["hT-real"]
    info = json.loads((out / "train.json").read_text(encoding="utf-8"))
    assert info["settings"]["lambda1"] == 100.0 and info["stages"] == [[8, 1], [16, 2], [32, 1]]
    assert info["settings"]["residual"] is True and info["settings"]["thickness_range_mm"] == 60.0
    assert info["data"]["val_ids"] == ["hT-real"]
    assert info["data"]["train_counts"] == {"paired": 5, "unpaired-skull": 3, "unpaired-face": 3}
    best = _state(out / "best.pt")
    assert best["epoch"] == summary["best"]["epoch"]
    assert best["data_meta"]["residual"] is True and best["settings"]["residual"] is True
    assert best["metrics"]["val_mae_mm"] == min(r["val_mae_mm"] for r in rows)
    assert not list(out.glob(".tmp-*"))
    # An existing run is never overwritten silently.
    with pytest.raises(InputError, match="already holds"):
        train(Path(info["data"]["dir"]), out, tiny())


def test_resume_is_exact(dataset, unbroken, tmp_path):
    out_ref, _ = unbroken
    # Killed after 2 epochs: in the middle of the 16x16 stage, during its fade-in.
    first = train(dataset, tmp_path, tiny(stop_after_epochs=2))
    assert first["epochs_done"] == 2 and not first["completed"] and first["last"]["alpha"] == 0.5
    mid = _state(tmp_path / "last.pt")["G"]
    assert not all(torch.equal(mid[key], v) for key, v in _state(out_ref / "last.pt")["G"].items())
    assert len((tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()) == 2
    # A line from an epoch that was trained but never checkpointed is dropped on resume.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "res": 16}) + "\n")
    with pytest.raises(InputError, match="lambda1"):
        train(dataset, tmp_path, tiny(lambda1=5.0), resume=True)
    with pytest.raises(InputError, match="residual"):
        train(dataset, tmp_path, tiny(residual=False), resume=True)
    second = train(dataset, tmp_path, tiny(), resume=True)
    assert second["completed"] and second["epochs_done"] == 4
    ref, got = _state(out_ref / "last.pt"), _state(tmp_path / "last.pt")
    for key in ("G", "D", "DF", "opt_G", "opt_D"):
        _assert_same_tensors(ref[key], got[key], key)
    rows_ref = [json.loads(line) for line in (out_ref / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    rows_got = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in rows_got] == [1, 2, 3, 4]
    assert [r["val_mae_mm"] for r in rows_got] == [r["val_mae_mm"] for r in rows_ref]
    assert json.loads((tmp_path / "train.json").read_text(encoding="utf-8"))["resumed_at_epochs"] == [2]


def test_export_and_load(unbroken, tmp_path):
    out, _ = unbroken
    path = export_generator(out, tmp_path / "g.pt")
    assert path.stat().st_size < 20e6
    g, meta = load_generator(path)
    ref, ref_meta = load_generator(out)  # best.pt of the run
    assert isinstance(meta, ModelMeta) and isinstance(ref_meta, ModelMeta)
    assert (meta.k, meta.z_near, meta.z_far, meta.resolution) == (4.0, Z_NEAR, Z_FAR, 32)
    assert meta.mm_per_px == MM_PER_PX and meta.centre == CENTRE
    assert meta.epoch == ref_meta.epoch and meta.generator_kwargs["max_res"] == 32
    assert meta.residual is True and ref_meta.residual is True
    assert (meta.thickness_range_mm, meta.fill_radius_mm) == (60.0, 15.0)
    assert meta["k"] == 4.0 and meta.checkpoint == "best.pt" and ref_meta.torch is None
    x = torch.rand(2, 2, 32, 32)
    a, b = g(x), ref(x)
    assert torch.equal(a.face, b.face) and torch.equal(a.mask_logit, b.mask_logit)
    with pytest.raises(InputError):
        load_generator(tmp_path / "missing.pt")
    # Files written before residual mode existed hold absolute (normalised) face heights.
    old = _state(out / "last.pt")
    for key in ("residual", "thickness_range_mm", "fill_radius_mm"):
        del old["data_meta"][key]
    torch.save(old, tmp_path / "old.pt")
    assert load_generator(tmp_path / "old.pt")[1].residual is False
    legacy = {key: v for key, v in old["settings"].items() if key != "residual"}
    assert TrainSettings.from_json(legacy).residual is False


def test_filled_height():
    # A dome with a pit (narrower than the disc) and a hole, on 2 mm pixels.
    yy, xx = np.mgrid[0:40, 0:40] * 2.0 - 39.0
    dome = (-10.0 - (xx**2 + yy**2) / 80.0).astype(np.float32)
    h = np.where(xx**2 + yy**2 < 35.0**2, dome, np.nan)
    h[18:22, 10:14] -= 20.0  # pit 8 mm wide
    h[18:22, 26:30] = np.nan  # hole 8 mm wide
    f = filled_height(h, 2.0, 15.0)
    assert f.dtype == np.float32 and np.isfinite(f).all()
    inside = np.isfinite(h)
    assert np.all(f[inside] >= h[inside] - 1e-4)
    # Pit and hole bridged to about the surrounding surface, smooth parts untouched.
    assert np.abs(f[18:22, 10:14] - dome[18:22, 10:14]).max() < 3.0
    assert np.abs(f[18:22, 26:30] - dome[18:22, 26:30]).max() < 3.0
    smooth = inside.copy()
    smooth[12:28, 4:36] = False
    np.testing.assert_allclose(f[smooth], h[smooth], atol=1e-4)
    # Off the bone: nearest value inside.
    assert f[0, 0] == pytest.approx(f[np.isfinite(h)].min(), abs=5.0)
    assert np.array_equal(filled_height(np.full((4, 4), np.nan), 1.0), np.zeros((4, 4), np.float32))
    # Offset along the normal (a ball): +offset where the bone faces the viewer, more on slopes,
    # and the silhouette grows by the offset.
    flat = np.where(np.abs(xx) < 20.0, -10.0, np.nan).astype(np.float32)
    off = filled_height(flat, 2.0, 0.0, offset_mm=6.0)
    np.testing.assert_allclose(off[:, 20], -4.0, atol=1e-5)
    col = int(np.flatnonzero(np.isfinite(flat[0]))[-1])
    assert off[0, col + 2] == pytest.approx(-10.0 + np.sqrt(36.0 - 16.0), abs=1e-4)
    assert np.all(filled_height(h, 2.0, 15.0, offset_mm=8.0)[inside] >= f[inside] + 8.0 - 1e-4)
    np.testing.assert_array_equal(filled_height(h, 2.0, 0.0)[inside], h[inside])


def _meta(**kw) -> ModelMeta:
    """A complete ModelMeta on the test grid; ``kw`` overrides keys."""
    d = {"k": 4.0, "z_near": Z_NEAR, "z_far": Z_FAR, "resolution": SIZE, "mm_per_px": MM_PER_PX, "centre": CENTRE,
         "dataset_size": (SIZE, SIZE), "dataset_mm_per_px": MM_PER_PX, "input": "test", "output": "test",
         "residual": True, "thickness_range_mm": 60.0, "thickness_min_mm": 0.0, "fill_radius_mm": 15.0,
         "tissue_offset_mm": 0.0, "epoch": 0, "checkpoint": "none", "validation": {}, "settings": {},
         "torch": None, "generator_kwargs": {}}
    return ModelMeta.from_dict("test", {**d, **kw})


def test_model_meta_refuses_missing_and_unknown_keys(unbroken, tmp_path):
    out, _ = unbroken
    path = export_generator(out, tmp_path / "g.pt")
    good = _state(path)
    # A meta with a missing key: refused, naming the file and the key (no silent default).
    for key in ("z_near", "thickness_min_mm"):
        bad = json.loads(json.dumps(good["meta"]))
        del bad[key]
        torch.save({**good, "meta": bad}, tmp_path / f"no-{key}.pt")
        with pytest.raises(InputError, match=rf"no-{key}\.pt: .*missing {key}"):
            load_generator(tmp_path / f"no-{key}.pt")
    # A meta with an unknown key: refused, naming the file and the key.
    torch.save({**good, "meta": {**good["meta"], "colour": "blue"}}, tmp_path / "unknown.pt")
    with pytest.raises(InputError, match=r"unknown\.pt: .*unknown colour"):
        load_generator(tmp_path / "unknown.pt")
    # The same from a training checkpoint, and for a value of the wrong type.
    ck = _state(out / "last.pt")
    ck["data_meta"]["extra"] = 1
    torch.save(ck, tmp_path / "ck.pt")
    with pytest.raises(InputError, match=r"ck\.pt: .*unknown extra"):
        load_generator(tmp_path / "ck.pt")
    with pytest.raises(InputError, match=r"m\.json: .*resolution"):
        ModelMeta.from_dict("m.json", {**_meta().to_dict(), "resolution": "big"})
    with pytest.raises(InputError, match=r"m\.json: .*not a mapping"):
        ModelMeta.from_dict("m.json", [1, 2])
    # Round trip and the mapping view.
    meta = _meta()
    assert ModelMeta.from_dict("m.json", meta.to_dict()) == meta
    assert dict(meta)["z_far"] == Z_FAR and meta.get("centre") == CENTRE and len(meta) == len(meta.to_dict())


def test_bundled_model_loads_as_it_is():
    from skull2face.stages.predict import default_model_path

    g, meta = load_generator(default_model_path())
    assert isinstance(meta, ModelMeta) and meta.checkpoint == "best.pt" and meta.epoch == 13
    assert (meta.k, meta.z_near, meta.z_far, meta.resolution, meta.mm_per_px) == (4.0, -150.0, 50.0, 128, 2.0)
    assert meta.centre == (0.0, -40.0) and meta.dataset_size == (256, 256)
    assert meta.residual is True
    assert (meta.thickness_range_mm, meta.thickness_min_mm, meta.fill_radius_mm, meta.tissue_offset_mm) == (
        60.0, -20.0, 15.0, 8.0)
    assert meta.generator_kwargs["max_res"] == 128 and not g.training


def test_untrained_residual_generator_adds_tissue():
    """An untrained residual generator predicts the filled skull + init_thickness_mm, in mm."""
    from skull2face.geometry.codec import residual_face
    from skull2face.model import GanConfig, build_nets
    from skull2face.methods.cgan import generator_face

    settings = tiny(init_thickness_mm=8.0, tissue_offset_mm=0.0, thickness_min_mm=0.0)
    nets = build_nets(GanConfig.from_settings(settings), torch.device("cpu"))
    g = nets.g_mod.eval()
    p = {"a": 60.0, "b": 75.0, "c": 70.0, "z0": -70.0, "dy": 0.0, "nose": 0.0}
    cap = _cap(p, 0.0)
    skull = cap.copy()
    skull[14:17, 10:13] -= 15.0  # a pit (18 mm wide at 6 mm pixels, bridged by the 15 mm disc)
    spec = _spec()
    meta = _meta(k=4.0, residual=True, thickness_range_mm=60.0, fill_radius_mm=15.0, thickness_min_mm=0.0,
                 tissue_offset_mm=0.0)
    filled = filled_height(skull, MM_PER_PX, 15.0)
    x = torch.from_numpy(np.stack([normalise(skull, spec, 4.0), np.isfinite(skull).astype(np.float32)])[None])
    with torch.no_grad():
        o = g(x).face
    thickness = o[0, 0].numpy() * 60.0
    assert np.abs(thickness - 8.0).max() < 1.5, (thickness.min(), thickness.max())
    # Prediction: face = filled skull + thickness (mm) where the (random) mask logit says face.
    face = generator_face(g, meta, DepthMap(skull, np.isfinite(skull), spec))
    assert face.mask.sum() > 50
    np.testing.assert_allclose(face.height[face.mask], (filled + thickness)[face.mask], atol=1e-3)
    assert np.all(np.abs(face.height[face.mask] - filled[face.mask] - 8.0) < 1.5)
    pit = (slice(14, 17), slice(10, 13))  # bridged (the lid is flat, so below the slope of the cap)
    assert (filled[pit] - skull[pit]).min() > 8.0 and np.all(filled[pit] <= cap[pit] + 0.5)
    # The training path (normalised units) gives the same face.
    v = residual_face(o, torch.from_numpy(filled)[None, None], 60.0, Z_NEAR, Z_FAR, 4.0)[0, 0].numpy()
    mm = Z_NEAR + v.astype(np.float64) ** 0.25 * (Z_FAR - Z_NEAR)
    np.testing.assert_allclose(mm, filled + thickness, atol=1e-2)
    # Base offset along the normal, thickness allowed below it: the untrained output is the base.
    g2 = build_nets(GanConfig.from_settings(tiny(tissue_offset_mm=8.0, thickness_min_mm=-20.0, init_thickness_mm=0.0)),
                    torch.device("cpu")).g_mod.eval()
    meta2 = _meta(**{**meta, "tissue_offset_mm": 8.0, "thickness_min_mm": -20.0})
    face2 = generator_face(g2, meta2, DepthMap(skull, np.isfinite(skull), spec))
    base = filled_height(skull, MM_PER_PX, 15.0, 8.0)
    d = np.abs(face2.height[face2.mask] - base[face2.mask])
    assert np.median(d) < 1.0 and d.max() < 3.0
    # Gradients stay finite through the clamp, at the ends of the depth range too.
    o = torch.full((1, 1, 2, 2), 0.5, requires_grad=True)
    residual_face(o, torch.tensor([[[[-400.0, -150.0], [0.0, 300.0]]]]), 60.0, Z_NEAR, Z_FAR, 0.5).sum().backward()
    assert torch.isfinite(o.grad).all()


def test_unstaged_without_face_discriminator(dataset, tmp_path):
    # Also the non-residual mode: the generator predicts the normalised face itself.
    s = tiny(schedule="8:1,16:1,32:1", staged=False, use_face_discriminator=False, gan_mode="vanilla",
             residual=False)
    summary = train(dataset, tmp_path, s)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["res"] for r in rows] == [32, 32, 32] and all(r["d_face"] == 0 for r in rows)
    assert all(np.isfinite(r["val_mae_mm"]) for r in rows)
    ck = _state(tmp_path / "last.pt")
    assert "DF" in ck and summary["completed"] and ck["data_meta"]["residual"] is False
    assert load_generator(tmp_path)[1].residual is False


def test_torchrun_two_processes(dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "skull2face", "train", "--data", str(dataset), "--out", str(out),
           "--schedule", "8:1,16:1", "--final-res", "16", "--batch-size", "2", "--g-base", "2",
           "--g-max-ch", "16", "--d-base", "8", "--d-layers", "2", "--num-threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    if proc.returncode != 0 and "SIGABRT" in proc.stdout + proc.stderr:
        # gloo over loopback now and then aborts a rank at start-up or teardown on a loaded
        # machine (seen once in ~10 runs, never twice in a row); a real failure fails again
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "loss.png", "metrics.jsonl", "train.json"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    ck = _state(out / "last.pt")
    assert ck["world_size"] == 2 and ck["epoch"] == 2
    assert json.loads((out / "train.json").read_text(encoding="utf-8"))["world_size"] == 2


def test_fit_base_generator_starts_at_the_fit_and_trains(dataset, tmp_path):
    """base="fit": the generator sees the fitted face as a third channel and corrects it; an
    untrained one returns the fit itself (correction 0 +- the random init), in training's decode
    and in predict's alike; a dataset without fitted-face maps is refused in one line."""
    from skull2face.model import GanConfig, build_nets
    from skull2face.methods.cgan import generator_face

    settings = tiny(base="fit")
    nets = build_nets(GanConfig.from_settings(settings), torch.device("cpu"))
    assert nets.g_mod.in_ch == 3
    g = nets.g_mod.eval()
    p = {"a": 60.0, "b": 75.0, "c": 70.0, "z0": -70.0, "dy": 0.0, "nose": 15.0}
    skull, fit = _cap(p, 0.0), _cap(p, THICKNESS - FIT_SHORT)
    spec = _spec()
    meta = _meta(k=4.0, residual=True, thickness_range_mm=60.0, fill_radius_mm=15.0, thickness_min_mm=-20.0,
                 tissue_offset_mm=8.0, base="fit")
    with pytest.raises(ValueError, match="fit_map"):
        generator_face(g, meta, DepthMap(skull, np.isfinite(skull), spec))
    face = generator_face(g, meta, DepthMap(skull, np.isfinite(skull), spec), DepthMap(fit, np.isfinite(fit), spec))
    both = face.mask & np.isfinite(fit)
    assert both.sum() > 50
    d = np.abs(face.height[both] - fit[both])
    assert np.median(d) < 1.0 and d.max() < 3.0, (np.median(d), d.max())
    # trains end to end on the tiny dataset; the model file says what it corrects
    run = tmp_path / "run"
    train(dataset, run, settings)
    g2, meta2 = load_generator(run)
    assert meta2.base == "fit" and g2.in_ch == 3 and "fitted face" in meta2.input
    # a dataset without fitted faces
    plain = make_dataset(tmp_path / "plain")
    man = json.loads((plain / "manifest.json").read_text(encoding="utf-8"))
    for s in man["samples"]:
        s["files"].pop("fit", None)
    (plain / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(InputError, match="no fitted-face map.*--base fill"):
        train(plain, tmp_path / "run2", settings)
