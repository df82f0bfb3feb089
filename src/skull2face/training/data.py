"""Training data of a run: the dataset's arrays, per-stage tensors and the per-epoch sample order.

`load_data` reads the training split and the honest validation heads (``split == "test"``,
``real == true``, with a face; ``docs/dataset-format.md``) at the run's final resolution, and
computes the trivial baseline every validation error is compared with: the per-pixel mean
height (mm) of every training face covering the pixel. `stage_tensors` makes the lower
resolution copies of staged training (on the device), `epoch_indices` the seeded sample order.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..dataset.reader import Manifest, downsample_arrays, load_arrays, load_manifest, network_input, subset
from ..statistics.skull_fit import fit_base_mm as _fit_base
from ..errors import InputError
from ..geometry import codec
from ..geometry.fill import filled_height

# Group names of the three kinds of training sample; their order fixes the data seeds.
GROUPS = ("paired", "unpaired-skull", "unpaired-face")


@dataclass
class Data:
    """Training and validation arrays at ``final_res`` plus what the report needs."""

    manifest: Manifest
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    group_index: dict[str, np.ndarray]  # rows of ``train`` per kind
    baseline_mm: np.ndarray  # (R, R) float32 mean training face height
    info: dict[str, Any]


def load_data(data_dir: str | os.PathLike, final_res: int, k: float) -> Data:
    """Read a dataset folder for training at ``final_res`` with depth exponent ``k``.

    Parameters
    ----------
    data_dir : path-like
        Dataset folder (``docs/dataset-format.md``).
    final_res : int
        Resolution (pixels) of the arrays; it must divide the dataset's square map size.
    k : float
        Depth exponent of the normalised maps.

    Returns
    -------
    Data
        ``info`` holds the folder, size, centre, pitch (mm), depth range (mm), the training
        counts per kind, the validation ids and heads, the landmark names and a fingerprint of
        the samples (a resumed run must see the same ones).

    Raises
    ------
    InputError
        Naming the manifest: maps not square, ``final_res`` not dividing them, no paired
        training sample, or test maps on another pixel grid.
    """
    man = load_manifest(data_dir)
    h, w = man.size
    res = final_res
    if h != w:
        raise InputError(man.path, f"training needs square maps, the dataset's are {h}x{w}")
    if h % res:
        raise InputError(man.path, f"final resolution {res} must divide the dataset's map size {h}")
    train_samples = man.select(split="train")
    val_samples = [s for s in man.select(split="test", real=True) if s["kind"] == "paired"]
    counts = {g: sum(s["kind"] == g for s in train_samples) for g in GROUPS}
    if counts["paired"] == 0:
        raise InputError(man.path, "no paired training sample: the conditional GAN needs skull/face pairs")
    train = load_arrays(man, train_samples, k=k, size=res)
    val = load_arrays(man, val_samples, k=k, size=res)
    if len(val["id"]) and not np.allclose(train["centre"], val["centre"]):
        raise InputError(man.path, f"test maps are centred at {val['centre'].tolist()}, training maps at "
                                   f"{train['centre'].tolist()}: all maps must share one pixel grid")
    group_index = {g: np.flatnonzero(train["kind"] == g) for g in GROUPS}

    # Baseline: the per-pixel mean height (mm) of every training face covering the pixel, the
    # overall mean elsewhere. Averages run in mm, never on the powered values.
    faces = train["has_face"]
    mm = codec.denormalise(train["face"][faces, 0].astype(np.float64), man.z_near, man.z_far, k)
    m = train["face_mask"][faces, 0] > 0.5
    count = m.sum(axis=0)
    total = np.where(m, mm, 0.0).sum(axis=0)
    overall = total.sum() / max(count.sum(), 1)
    baseline = np.where(count > 0, total / np.maximum(count, 1), overall).astype(np.float32)

    info = {
        "dir": str(man.root.resolve()),
        "size": list(man.size),
        "centre": train["centre"].tolist(),
        "mm_per_px": man.mm_per_px,
        "z_near": man.z_near,
        "z_far": man.z_far,
        "train_counts": counts,
        "val_ids": [s["id"] for s in val_samples],
        "val_heads": sorted({s["source_head"] or "" for s in val_samples}),
        "la_names": train["la_names"].tolist(),
    }
    # Resuming on other data would silently break the "same weights as an unbroken run" promise.
    info["fingerprint"] = hashlib.sha256(json.dumps(
        [train["id"].tolist(), info["val_ids"], info["size"], info["mm_per_px"], info["z_near"], info["z_far"]]
    ).encode()).hexdigest()[:16]
    return Data(man, train, val, group_index, baseline, info)


def filled_skull_mm(arrays: dict[str, np.ndarray], radius_mm: float, offset_mm: float = 0.0) -> np.ndarray:
    """Filled skull heights (mm) of `load_arrays`-style arrays, at the arrays' resolution.

    Parameters
    ----------
    arrays : dict
        `load_arrays` / `downsample_arrays` output: ``skull``, ``skull_mask``, ``z_near``,
        ``z_far``, ``k`` and ``mm_per_px`` are used.
    radius_mm, offset_mm : float
        Disc radius and normal offset of `skull2face.geometry.fill.filled_height`.

    Returns
    -------
    numpy.ndarray, shape (N, 1, H, W), float32, mm
        `filled_height` of each sample's skull (0 for a sample without a skull). Prediction
        computes the same from the rendered skull map at the generator's resolution.
    """
    z_near, z_far, k = float(arrays["z_near"]), float(arrays["z_far"]), float(arrays["k"])
    mm_per_px = float(arrays["mm_per_px"])
    skull, mask = arrays["skull"], arrays["skull_mask"]
    out = np.zeros(skull.shape, np.float32)
    for i in range(skull.shape[0]):
        valid = mask[i, 0] > 0.5
        if valid.any():
            mm = np.where(valid, codec.denormalise(skull[i, 0].astype(np.float64), z_near, z_far, k), np.nan)
            out[i, 0] = filled_height(mm, mm_per_px, radius_mm, offset_mm)
    return out


def fit_base_mm(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The face-model base (mm) of `load_arrays`-style arrays: the fitted face heights, and
    ``z_near`` where the fitted head does not cover a pixel (as prediction,
    `skull2face.statistics.skull_fit.fit_base_mm`).

    Returns
    -------
    numpy.ndarray, shape (N, 1, H, W), float32, mm
    """
    z_near, z_far, k = float(arrays["z_near"]), float(arrays["z_far"]), float(arrays["k"])
    mm = np.where(arrays["fit_mask"] > 0.5, codec.denormalise(arrays["fit"].astype(np.float64), z_near, z_far, k),
                  np.nan)
    return _fit_base(mm, z_near).astype(np.float32)


def base_mm(arrays: dict[str, np.ndarray], fill: tuple[float, float] | None, base: str) -> np.ndarray | None:
    """Residual mode's base surface (mm, (N, 1, H, W) float32) of arrays: `fit_base_mm` when
    ``base == "fit"``, else `filled_skull_mm` with ``fill = (radius_mm, offset_mm)``; None
    without residual mode (``fill`` None)."""
    if fill is None:
        return None
    return fit_base_mm(arrays) if base == "fit" else filled_skull_mm(arrays, *fill)


def stage_tensors(train: dict[str, np.ndarray], group_index: dict[str, np.ndarray], res: int,
                  device: torch.device, fill: tuple[float, float] | None = None, base: str = "fill"
                  ) -> dict[str, dict[str, torch.Tensor]]:
    """Per-kind training tensors at ``res`` on ``device``.

    The whole stage goes to the device at once: the maps are small (a 256x256 sample is 1 MiB
    in all) and indexing on the device keeps the GPU fed without a loader.

    Parameters
    ----------
    train : dict
        `Data.train`.
    group_index : dict
        `Data.group_index`.
    res : int
        The stage's resolution (pixels).
    device : torch.device
    fill : (float, float), optional
        Residual mode: ``(fill_radius_mm, tissue_offset_mm)``; the skull kinds then also get
        ``fill``, the base heights (mm) at ``res`` (`base_mm`).
    base : {'fill', 'fit'}
        Residual mode's base; ``fit`` also adds the fitted face as the third input channel
        (`skull2face.dataset.reader.network_input`).

    Returns
    -------
    dict of kind to dict of str to torch.Tensor
        The kinds present; skull kinds hold ``x`` (N, 2, res, res), ``la_px``, ``la_height``,
        ``la_valid`` (and ``fill``), face kinds ``face``, ``face_mask`` and ``face_weight``
        (N, 1, res, res).
    """
    arr = downsample_arrays(train, res)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for g in GROUPS:
        idx = group_index[g]
        if len(idx) == 0:
            continue
        a = subset(arr, idx)
        t: dict[str, torch.Tensor] = {}
        if g != "unpaired-face":
            t["x"] = torch.from_numpy(network_input(a, with_fit=base == "fit" and fill is not None))
            t["la_px"] = torch.from_numpy(a["la_px"])
            t["la_height"] = torch.from_numpy(a["la_height"])
            t["la_valid"] = torch.from_numpy(a["la_valid"])
            if fill is not None:
                t["fill"] = torch.from_numpy(base_mm(a, fill, base))
        if g != "unpaired-skull":
            t["face"] = torch.from_numpy(a["face"])
            t["face_mask"] = torch.from_numpy(a["face_mask"])
            t["face_weight"] = torch.from_numpy(a["face_weight"])
        out[g] = {key: v.to(device) for key, v in t.items()}
    return out


def epoch_indices(n: int, steps: int, per_step: int, seed: int, epoch: int, group: int) -> np.ndarray:
    """Sample indices of one epoch for one kind, shape (steps, per_step), int64.

    Concatenated permutations of ``range(n)``, each drawn from a generator seeded by
    ``(seed, epoch, group, repeat)``, so the order depends on nothing but these numbers: a
    resumed run sees exactly the batches an unbroken one would. Kinds smaller than the largest
    one cycle through several permutations per epoch. Process ``r`` of ``W`` takes columns
    ``r * B : (r + 1) * B`` (``per_step = B * W``), the split a DistributedSampler makes.
    """
    need = steps * per_step
    parts, rep = [], 0
    while sum(len(p) for p in parts) < need:
        rng = np.random.default_rng(np.random.SeedSequence([seed, epoch, group, rep]))
        parts.append(rng.permutation(n))
        rep += 1
    return np.concatenate(parts)[:need].reshape(steps, per_step)


__all__ = ["GROUPS", "Data", "base_mm", "epoch_indices", "filled_skull_mm", "fit_base_mm", "load_data",
           "stage_tensors"]
