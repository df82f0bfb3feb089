"""Stages ``calibrate`` and ``export``: a training run -> one self-contained model file.

``skull2face calibrate RUN --data DATASET`` measures one leave-one-head-out fold: the run's
generator, trained on DATASET's training split, corrects the face-model fit of each real
held-out head of DATASET (its test split); per face region, how far the correction moved the
fit towards the true skin (`skull2face.methods.cgan.calibrate`). Writes ``RUN/calibration.json``.

``skull2face export RUN --data DATASET --out MODEL.pt [--folds FOLD.json ...]`` writes the run's
best generator with the baselines' references (the training split's mean face map and
``n_refs`` training pairs at the model's resolution, for ``mean-face`` / ``nearest-skull``), the
dataset's thickness prior (also written beside the file as ``MODEL.prior.npz``, so that the
default ``face-model`` reads it without loading PyTorch), and the **trusted share of the correction per face region**, chosen
on the fold files given (`skull2face.methods.correction.gains_from_folds`: in each region the
gain that makes no fold worse) and stored with the folds it came from. Without folds the file
trusts no correction: ``--method skull2face`` then returns the fit unchanged, and says so.

A fold must not have seen the head it is scored on: the folds of a model trained on every head
are the runs that held each head out (``benchmarks/accuracy.py`` writes them).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset.fitted import PRIOR_FILE
from ..errors import InputError
from ..geometry.depthmap import DepthMap
from ..geometry.resample import block_mean_mm
from ..options import check_options, option
from ..statistics.thickness_prior import ThicknessPrior

BUNDLE_FORMAT = "skull2face-bundle"
CALIBRATION_FILE = "calibration.json"
GAIN_RULE = ("per face region, each held-out fold's least-squares gain of the correction against the true skin, "
             "clipped to [0, 1], the smallest over the folds: no fold is made worse (methods/correction.py)")


@dataclass
class ExportSettings:
    """What goes into the model file besides the generator."""

    n_refs: int = option(24, minimum=1, help="training pairs stored for --method nearest-skull")
    folds: list[str] = option(default_factory=list, flag="--folds", nargs="*", metavar="FOLD.json",
                              help="calibration.json files of leave-one-head-out runs (skull2face calibrate): the "
                                   "correction's trusted share per face region is chosen on them")

    def __post_init__(self) -> None:
        check_options(self)


def calibrate_run(run_dir: str | os.PathLike, data_dir: str | os.PathLike) -> dict:
    """Measure the run's fold on its dataset's real held-out heads; write ``RUN/calibration.json``.

    Returns
    -------
    dict
        The record written (`skull2face.methods.cgan.calibrate`, with the run and dataset).
    """
    from ..io.atomic import write_json
    from ..methods.cgan import TrainedModel, calibrate
    from ..training.checkpoints import generator_from, load_checkpoint, run_checkpoint

    run = Path(run_dir)
    if not run.is_dir():
        raise InputError(run, "not a training run folder")
    file = run_checkpoint(run)
    g, meta = generator_from(load_checkpoint(file), file)
    record = {"format": "skull2face-calibration", "version": 1, "run": str(run.resolve()),
              "checkpoint": file.name, "data": str(Path(data_dir).resolve()),
              **calibrate(TrainedModel(g, meta), data_dir)}
    for f in record["folds"]:
        f["run"] = record["run"]
    write_json(run / CALIBRATION_FILE, record)
    return record


def read_folds(paths: list[str]) -> list[dict]:
    """Every fold of the given ``calibration.json`` files (one line naming a bad file)."""
    folds = []
    for p in paths:
        try:
            rec = json.loads(Path(p).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(p, f"cannot read a calibration file: {exc}") from None
        if not isinstance(rec, dict) or rec.get("format") != "skull2face-calibration":
            raise InputError(p, "not a skull2face calibration.json (write one with `skull2face calibrate`)")
        folds.extend(rec.get("folds", []))
    return folds


def make_bundle(run_dir: str | os.PathLike, data_dir: str | os.PathLike, path: str | os.PathLike,
                settings: ExportSettings | None = None) -> Path:
    """Export a run's generator with the references, the prior and the fold gains (module docstring)."""
    from ..io.run_folder import out_file

    settings = settings or ExportSettings()
    path = Path(path)
    folds = read_folds(settings.folds)
    with out_file(path, [Path(run_dir) / "best.pt", Path(run_dir) / "last.pt", data_dir, *settings.folds]):
        return _bundle(run_dir, data_dir, path, settings.n_refs, folds, settings.folds)


def calibration_of(folds: list[dict], sources: list[str]) -> dict:
    """The model file's ``calibration`` entry: gains per region and the folds they came from."""
    from ..methods.correction import gains_from_folds

    slim = [{"head": f.get("head"), "run": f.get("run"),
             "regions": {r: {k: v for k, v in s.items() if k in ("n", "gain", "rmse_fit_mm", "rmse_corrected_mm")}
                         for r, s in f.get("regions", {}).items()}} for f in folds]
    return {"gains": gains_from_folds(folds), "rule": GAIN_RULE, "folds": slim, "files": list(sources)}


def _bundle(run_dir, data_dir, path: Path, n_refs: int, folds: list[dict], sources: list[str]) -> Path:
    """`make_bundle` once ``path`` is checked and claimed."""
    import torch

    from ..dataset.reader import load_manifest
    from ..geometry.depthmap import load_depthmap
    from ..io.atomic import atomic_path
    from ..methods.mean_face import mean_face
    from ..training.checkpoints import export_generator

    export_generator(run_dir, path)
    payload = torch.load(path, map_location="cpu", weights_only=True)
    res = int(payload["meta"]["resolution"])
    man = load_manifest(data_dir)
    pairs = [s for s in man.samples if s["kind"] == "paired" and s["split"] == "train"]
    rng = np.random.default_rng(0)
    chosen = [pairs[i] for i in sorted(rng.permutation(len(pairs))[:n_refs])]
    if any(s["real"] for s in pairs):
        chosen = [s for s in pairs if s["real"]] + [s for s in chosen if not s["real"]][: n_refs - 1]

    def at_res(dm: DepthMap) -> np.ndarray:
        return block_mean_mm(dm.height, res).astype(np.float16)

    faces = [load_depthmap(man.root / s["files"]["face"]) for s in pairs]
    mean = mean_face(faces).height
    # tensors, not numpy arrays: the file must load with torch.load(weights_only=True)
    refs = {"resolution": res, "ids": [s["id"] for s in chosen],
            "skull": torch.from_numpy(np.stack([at_res(load_depthmap(man.root / s["files"]["skull"]))
                                                for s in chosen])),
            "face": torch.from_numpy(np.stack([at_res(load_depthmap(man.root / s["files"]["face"])) for s in chosen])),
            "mean_face": torch.from_numpy(at_res(DepthMap(mean.astype(np.float32), np.isfinite(mean), faces[0].spec)))}
    prior_path = man.root / PRIOR_FILE
    if prior_path.exists():
        refs["prior"] = prior_to_refs(ThicknessPrior.load(prior_path))
    payload["references"] = refs
    payload["calibration"] = calibration_of(folds, sources)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    if prior_path.exists():  # the prior alone, for methods that need no generator (no torch to load)
        write_prior_sidecar(ThicknessPrior.load(prior_path), payload["meta"], prior_sidecar(path))
    return path


def prior_sidecar(model_path: str | os.PathLike) -> Path:
    """``MODEL.prior.npz`` beside ``MODEL.pt``: the model file's thickness prior and grid alone."""
    return Path(model_path).with_suffix(".prior.npz")


def write_prior_sidecar(prior: ThicknessPrior, meta: dict, path: Path) -> None:
    """Write the prior's arrays and the model's grid (``grid_*``: resolution, mm_per_px, z_near,
    z_far, centre) as one ``.npz``, atomically."""
    from ..io.atomic import atomic_path

    grid = {f"grid_{k}": np.asarray(meta[k]) for k in ("resolution", "mm_per_px", "z_near", "z_far", "centre")}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **prior.to_arrays(), **grid)


def read_prior_sidecar(path: Path) -> tuple[ThicknessPrior, dict]:
    """(the prior, the model's grid) of a `write_prior_sidecar` file (one line naming a bad one)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        grid = {k[len("grid_"):]: arrays.pop(k) for k in list(arrays) if k.startswith("grid_")}
        grid = {"resolution": int(grid["resolution"]), "mm_per_px": float(grid["mm_per_px"]),
                "z_near": float(grid["z_near"]), "z_far": float(grid["z_far"]),
                "centre": tuple(float(c) for c in grid["centre"])}
        return ThicknessPrior.from_arrays(arrays), grid
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(path, f"not a model's thickness prior file: {exc}") from None


def prior_to_refs(prior: ThicknessPrior) -> dict:
    """The thickness prior as a model bundle stores it (tensors and plain values, so the file
    loads with ``torch.load(weights_only=True)``)."""
    import torch

    def plain(v):
        a = np.asarray(v)
        if a.ndim and a.dtype.kind in "fiu":
            return torch.from_numpy(np.ascontiguousarray(a))
        return a.tolist()  # numbers, strings and lists of them

    return {key: plain(v) for key, v in prior.to_arrays().items()}


def echo_bundle(path: Path) -> str:
    """What ``skull2face export`` prints."""
    return f"wrote {path} ({Path(path).stat().st_size / 1e6:.1f} MB)"


def echo_calibration(record: dict) -> str:
    """What ``skull2face calibrate`` prints: per fold and region, the gain and the RMSE it gives."""
    if not record["folds"]:
        return ("no fold: the dataset has no real held-out head with a fit map (or the generator does not correct "
                "the fit); wrote calibration.json")
    lines = []
    for f in record["folds"]:
        lines.append(f"held-out {f['head']}: region  gain  RMSE fit -> fully corrected (mm)")
        for r, s in f["regions"].items():
            g = "-" if s["gain"] is None else f"{s['gain']:+.2f}"
            lines.append(f"  {r:<8} {g:>6}  {s['rmse_fit_mm']:.2f} -> {s['rmse_corrected_mm']:.2f}")
    return "\n".join(lines + [f"wrote {Path(record['run']) / CALIBRATION_FILE}"])


__all__ = ["BUNDLE_FORMAT", "CALIBRATION_FILE", "ExportSettings", "calibrate_run", "calibration_of",
           "echo_bundle", "echo_calibration", "make_bundle", "prior_sidecar", "prior_to_refs", "read_folds",
           "read_prior_sidecar", "write_prior_sidecar"]
