"""Dataset reader and cGAN training on a tiny synthetic dataset folder (CPU, ~1-2 minutes).

The dataset follows docs/dataset-format.md exactly: 6 paired samples (5 training heads and one
real held-out head), 3 unpaired skulls and 3 unpaired faces at 32x32, written with
`save_depthmap`. Skull and face are ellipsoid caps; the face is the skull grown by a soft-tissue
thickness plus a nose bump, so the translation is simple and geometric.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from skull2face.dataset.reader import (
    downsample_arrays,
    downsample_map,
    load_arrays,
    load_manifest,
    rescale_px_np,
)
from skull2face.errors import InputError
from skull2face.geometry.depthmap import DepthMap, RenderSpec, normalise, save_depthmap
from skull2face.io.atomic import write_json
from skull2face.io.landmarks import LandmarkSet, write_landmarks
from skull2face.model import rescale_px
from skull2face.train import (
    TrainSettings,
    build_parser,
    export_generator,
    load_generator,
    settings_from_args,
    train,
)

SIZE = 32
CENTRE = (0.0, -10.0)  # head-frame (x, y) of the map centre, mm
MM_PER_PX = 6.0
Z_NEAR, Z_FAR = -150.0, 50.0
THICKNESS = 9.0  # mm of soft tissue over the skull in the synthetic heads
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
    """
    base = dict(schedule="8:1,16:2,32:1", final_res=32, batch_size=4, g_base=2, g_max_ch=16, d_base=8,
                d_layers=2, num_threads=1, progress=False, seed=3, fade_fraction=1.0)
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
    # Positions follow model.losses.rescale_px exactly.
    np.testing.assert_allclose(small["la_px"], rescale_px(torch.from_numpy(arr["la_px"]), SIZE, 8).numpy(), rtol=1e-6)
    np.testing.assert_allclose(rescale_px_np(np.array([[0.0, 31.0]]), (32, 32), (8, 8)), [[-0.375, 7.375]])
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
    manifest = json.loads((dataset / "manifest.json").read_text())
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
    spec = json.loads(spec_path.read_text())
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
    assert TrainSettings.from_json(s.to_json()) == s
    args = build_parser().parse_args(["--data", "d", "--out", "o", "--final-res", "64", "--no-staged",
                                      "--betas", "0.4,0.9", "--stop-after-epochs", "3"])
    got = settings_from_args(args)
    assert (got.final_res, got.staged, got.betas, got.stop_after_epochs) == (64, False, (0.4, 0.9), 3)


def test_default_generator_export_is_small():
    from skull2face.model import UNetGenerator
    from skull2face.train import generator_kwargs

    g = UNetGenerator(**generator_kwargs(TrainSettings()))
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
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4] and [r["res"] for r in rows] == [8, 16, 16, 32]
    # Each new level fades in over its whole stage: alpha 0.5 after the first of two 16x16 epochs.
    assert [r["alpha"] for r in rows] == [1.0, 0.5, 1.0, 1.0]
    for r in rows:
        assert np.isfinite([r["val_mae_mm"], r["val_rmse_mm"], r["baseline_mae_mm"], r["l1"], r["la_mm"]]).all()
        assert 0 <= r["val_within_2_5mm"] <= 1 and r["val_rmse_mm"] >= r["val_mae_mm"]
        assert list(r["val_per_sample_mae_mm"]) == ["hT-real"]
    info = json.loads((out / "train.json").read_text())
    assert info["settings"]["lambda1"] == 100.0 and info["stages"] == [[8, 1], [16, 2], [32, 1]]
    assert info["data"]["val_ids"] == ["hT-real"]
    assert info["data"]["train_counts"] == {"paired": 5, "unpaired-skull": 3, "unpaired-face": 3}
    best = _state(out / "best.pt")
    assert best["epoch"] == summary["best"]["epoch"]
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
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    # A line from an epoch that was trained but never checkpointed is dropped on resume.
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "res": 16}) + "\n")
    with pytest.raises(InputError, match="lambda1"):
        train(dataset, tmp_path, tiny(lambda1=5.0), resume=True)
    second = train(dataset, tmp_path, tiny(), resume=True)
    assert second["completed"] and second["epochs_done"] == 4
    ref, got = _state(out_ref / "last.pt"), _state(tmp_path / "last.pt")
    for key in ("G", "D", "DF", "opt_G", "opt_D"):
        _assert_same_tensors(ref[key], got[key], key)
    rows_ref = [json.loads(line) for line in (out_ref / "metrics.jsonl").read_text().splitlines()]
    rows_got = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows_got] == [1, 2, 3, 4]
    assert [r["val_mae_mm"] for r in rows_got] == [r["val_mae_mm"] for r in rows_ref]
    assert json.loads((tmp_path / "train.json").read_text())["resumed_at_epochs"] == [2]


def test_export_and_load(unbroken, tmp_path):
    out, _ = unbroken
    path = export_generator(out, tmp_path / "g.pt")
    assert path.stat().st_size < 20e6
    g, meta = load_generator(path)
    ref, ref_meta = load_generator(out)  # best.pt of the run
    assert (meta["k"], meta["z_near"], meta["z_far"], meta["resolution"]) == (4.0, Z_NEAR, Z_FAR, 32)
    assert meta["mm_per_px"] == MM_PER_PX and meta["centre"] == list(CENTRE)
    assert meta["epoch"] == ref_meta["epoch"] and meta["generator_kwargs"]["max_res"] == 32
    x = torch.rand(2, 2, 32, 32)
    a, b = g(x), ref(x)
    assert torch.equal(a.face, b.face) and torch.equal(a.mask_logit, b.mask_logit)
    with pytest.raises(InputError):
        load_generator(tmp_path / "missing.pt")


def test_unstaged_without_face_discriminator(dataset, tmp_path):
    s = tiny(schedule="8:1,16:1,32:1", staged=False, use_face_discriminator=False, gan_mode="vanilla")
    summary = train(dataset, tmp_path, s)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["res"] for r in rows] == [32, 32, 32] and all(r["d_face"] == 0 for r in rows)
    assert "DF" in _state(tmp_path / "last.pt") and summary["completed"]


def test_torchrun_two_processes(dataset, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "skull2face.train", "--data", str(dataset), "--out", str(out),
           "--schedule", "8:1,16:1", "--final-res", "16", "--batch-size", "2", "--g-base", "2",
           "--g-max-ch", "16", "--d-base", "8", "--d-layers", "2", "--num-threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "loss.png", "metrics.jsonl", "train.json"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    ck = _state(out / "last.pt")
    assert ck["world_size"] == 2 and ck["epoch"] == 2
    assert json.loads((out / "train.json").read_text())["world_size"] == 2
