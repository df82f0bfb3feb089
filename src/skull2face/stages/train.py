"""Train the skull2face conditional GAN on a dataset folder, in resolution stages.

Objective (Knyaz et al. 2020): ``min_G max_D L_cGAN + lambda1 L1 + lambda2 L_A``, plus a face-mask
term because our generator also predicts where the face is (see `skull2face.model.networks`).

Every optimisation step takes ``batch_size`` samples of each kind present (per process):

- **paired** (skull + its face): the conditional discriminator D sees
  ``concat(skull, skull mask, face)`` with the real face (real) and with the generated face
  (fake); the generator pays the adversarial loss, ``lambda1`` times the L1 error of the face
  map over the true face mask (normalised units), and ``lambda_mask`` times the binary
  cross-entropy of its face-mask logit;
- **unpaired skulls**: the generated face is a fake for D (there is no real one to pair it
  with) and the generator pays the adversarial loss plus ``lambda2`` times the anthropological
  loss L_A, in mm: the face map must pass through the skull landmarks moved outwards by the
  published soft-tissue thickness (``la_targets`` of the dataset). L_A also applies to paired
  skulls unless ``la_on_paired`` is off;
- **unpaired faces**: with ``use_face_discriminator``, a second, unconditional discriminator
  learns real faces (unpaired and paired) against generated ones, and the generator also pays
  its adversarial loss. Without it the unpaired faces are not used.

Discriminators see the generated face composited with its predicted mask
(`GeneratorOutput.composite`), since real face maps are 0 off the face.

Residual mode (``residual``, the default): the generator's ``face`` output ``o`` in [0, 1] is
not the face height but the soft-tissue thickness ``T = thickness_min_mm + o *
thickness_range_mm`` (default 0 to 60 mm) above a base surface ``B``: the *filled skull*
(`skull2face.geometry.fill.filled_height`: the skull height in mm with holes and pits narrower
than a ``fill_radius_mm`` disc bridged, optionally offset outwards along the bone normal by
``tissue_offset_mm``, nearest value off the bone; computed once per sample at every stage
resolution). The face ``B + T`` is normalised again by `residual_face` (differentiable) and used
wherever the face map is used: L1 (still in normalised units), both discriminators, L_A and
validation. The output biases start at ``init_thickness_mm``, so an untrained generator already
predicts "skull plus a usual tissue layer". With a single real training head, absolute face
heights do not transfer to a new head; tissue thickness does far better. Checkpoints written
before this mode existed are non-residual.

Staged training: the schedule lists ``resolution:epochs`` pairs, from 8x8 doubling up to
``final_res``; the same generator weights run at every size (`UNetGenerator`) and each new
outer level is faded in as in progressive GANs: ``alpha`` ramps linearly from 0 to 1 over the
first ``fade_fraction`` of the stage's steps, and the real faces shown to the discriminators
are blended the same way (average-pooled then upsampled, mixed with the full-resolution face by
``alpha``). ``staged=False`` trains at ``final_res`` from the start for the same total number of
epochs (the comparison the paper's staging claim calls for).

Outputs in the run folder (rank 0 only):

``train.json``
    Every resolved setting, the data counts, the validation heads and the baseline.
``metrics.jsonl``
    One JSON line per epoch: mean losses, and (on validation epochs) the error in mm of the
    predicted face height on the real held-out head(s) next to a trivial baseline.
``loss.png``
    Losses and validation error vs epoch.
``last.pt``, ``best.pt``
    Checkpoints (every epoch / lowest validation error), written atomically; ``last.pt`` holds
    everything needed to resume exactly: models, optimisers, RNG states and counters.

Validation: the samples with ``split == "test"``, ``real == true`` and a face (the honest
targets of ``docs/dataset-format.md``). The prediction at the current stage's resolution is
converted to mm, upsampled bilinearly to ``final_res`` and compared with the true face height
over the true face mask: mean absolute error, RMSE and the fraction of pixels within 2.5 mm.
The baseline predicts, for every head, the mean training face map (per-pixel mean height of
every training face covering the pixel).

Distributed training: launch with ``torchrun --nproc_per_node=N -m skull2face.stages.train --data D
--out O ...``. The process group (gloo on CPU, nccl on CUDA) is set up from the ``RANK`` /
``WORLD_SIZE`` environment; models are wrapped in `DistributedDataParallel`; every rank takes
its own slice of the same seeded per-epoch permutation (``batch_size`` is per process);
rank 0 alone validates and writes files.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..dataset.reader import Manifest, downsample_arrays, load_arrays, load_manifest, subset
from ..errors import InputError
from ..geometry.fill import filled_height
from ..io.atomic import atomic_path, write_json
from ..model import (
    PatchDiscriminator,
    UNetGenerator,
    anthropological_loss,
    gan_loss,
    init_weights,
    make_denormalise,
    masked_l1,
)

DEFAULT_SCHEDULE = "8:2,16:2,32:3,64:4,128:6,256:10"
CHECKPOINT_FORMAT = "skull2face-checkpoint"
EXPORT_FORMAT = "skull2face-generator"
FORMAT_VERSION = 1
WITHIN_MM = 2.5  # "close enough" threshold of the validation report, mm
# Settings that do not change the training trajectory, so a resumed run may differ in them.
_FREE_ON_RESUME = ("device", "num_threads", "progress", "stop_after_epochs", "val_every")
# Keys `_validate` adds to a metrics line.
_VAL_KEYS = ("val_mae_mm", "val_rmse_mm", "val_within_2_5mm", "val_pixels", "val_mask_iou", "val_per_sample_mae_mm")
# Group names of the three kinds of training sample; their order fixes the data seeds.
_GROUPS = ("paired", "unpaired-skull", "unpaired-face")
# Values of settings that runs written before the setting existed implicitly used.
_LEGACY = {"residual": False, "thickness_min_mm": 0.0, "tissue_offset_mm": 0.0}
# Settings that only matter in residual mode.
_RESIDUAL_ONLY = ("thickness_range_mm", "thickness_min_mm", "fill_radius_mm", "tissue_offset_mm",
                  "init_thickness_mm")


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


def _help(text: str) -> dict:
    return {"help": text}


@dataclass
class TrainSettings:
    """Everything that decides a training run (see the module docstring for the method)."""

    lr: float = field(default=2e-4, metadata=_help("Adam learning rate of G and the Ds"))
    betas: tuple[float, float] = field(default=(0.5, 0.999), metadata=_help("Adam betas, 'b1,b2'"))
    batch_size: int = field(default=8, metadata=_help("samples of EACH kind per step and process"))
    schedule: str | list = field(
        default=DEFAULT_SCHEDULE,
        metadata=_help("stages 'res:epochs,...' doubling from the first resolution (entries above "
                       "--final-res are dropped)"),
    )
    final_res: int = field(default=256, metadata=_help("last stage's resolution (pixels, power of two)"))
    staged: bool = field(default=True, metadata=_help("grow the resolution stage by stage; off: train at "
                                                       "final-res from the start for the same number of epochs"))
    fade_fraction: float = field(default=0.5, metadata=_help("part of each new stage over which the new "
                                                              "level fades in (0: no fade)"))
    lambda1: float = field(default=100.0, metadata=_help("weight of the L1 face-map loss (normalised units)"))
    lambda2: float = field(default=1.0, metadata=_help("weight of the anthropological loss L_A (mm)"))
    lambda_mask: float = field(default=10.0, metadata=_help("weight of the face-mask cross-entropy"))
    la_on_paired: bool = field(default=True, metadata=_help("apply L_A to paired skulls too"))
    gan_mode: str = field(default="lsgan", metadata=_help("adversarial loss: lsgan or vanilla"))
    use_face_discriminator: bool = field(default=True, metadata=_help("unconditional D on faces, trained "
                                                                       "with the unpaired faces"))
    k: float = field(default=4.0, metadata=_help("depth exponent of the normalised maps"))
    residual: bool = field(default=True, metadata=_help("the generator predicts soft-tissue thickness above "
                                                        "the filled skull, not the face height itself"))
    thickness_range_mm: float = field(default=60.0, metadata=_help("residual mode: thickness span (mm) of "
                                                                   "generator outputs 0 to 1"))
    thickness_min_mm: float = field(default=-20.0, metadata=_help("residual mode: thickness (mm) of a generator "
                                                                "output of 0 (negative: the face may dip below "
                                                                "the base surface)"))
    fill_radius_mm: float = field(default=15.0, metadata=_help("residual mode: radius (mm) of the disc "
                                                               "closing the skull's holes and pits"))
    tissue_offset_mm: float = field(default=8.0, metadata=_help("residual mode: offset the filled skull "
                                                                "outwards along its normal by this many mm "
                                                                "(ball dilation) to make the base surface"))
    init_thickness_mm: float = field(default=0.0, metadata=_help("residual mode: thickness (mm) above the "
                                                                 "base an untrained generator predicts"))
    g_base: int = field(default=16, metadata=_help("generator channels at 256x256"))
    g_max_ch: int = field(default=128, metadata=_help("generator channel cap"))
    g_dropout: float = field(default=0.0, metadata=_help("generator decoder dropout at <= 8x8"))
    d_base: int = field(default=32, metadata=_help("discriminator channels of the first layer"))
    d_layers: int = field(default=3, metadata=_help("discriminator stride-2 layers"))
    seed: int = field(default=0, metadata=_help("seed of weights and data order"))
    device: str = field(default="auto", metadata=_help("auto (CUDA when present), cpu, cuda or cuda:N"))
    num_threads: int = field(default=0, metadata=_help("CPU threads per process (0: cores / local processes)"))
    val_every: int = field(default=1, metadata=_help("validate every N epochs (and at each stage's end)"))
    stop_after_epochs: int | None = field(default=None, metadata=_help("stop once this many epochs (in total, "
                                                                        "across resumes) are done"))
    progress: bool = field(default=True, metadata=_help("tqdm progress bars"))

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # JSON round trips give lists
        if isinstance(self.schedule, list):
            self.schedule = [tuple(int(v) for v in entry) for entry in self.schedule]
        self.validate()

    def validate(self) -> None:
        """Raise ValueError on an impossible setting."""
        if not (self.lr > 0 and len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)):
            raise ValueError(f"need lr > 0 and 0 <= betas < 1, got {self.lr}, {self.betas}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {self.gan_mode!r}")
        if not 0 <= self.fade_fraction <= 1:
            raise ValueError(f"fade_fraction must be in [0, 1], got {self.fade_fraction}")
        if min(self.lambda1, self.lambda2, self.lambda_mask) < 0:
            raise ValueError("loss weights must be >= 0")
        if not self.k > 0:
            raise ValueError(f"k must be positive, got {self.k}")
        lo, hi = self.thickness_min_mm, self.thickness_min_mm + self.thickness_range_mm
        if not (self.thickness_range_mm > 0 and self.fill_radius_mm >= 0 and self.tissue_offset_mm >= 0
                and lo < self.init_thickness_mm < hi):
            raise ValueError("need thickness_range_mm > 0, fill_radius_mm >= 0, tissue_offset_mm >= 0 and "
                             "thickness_min_mm < init_thickness_mm < thickness_min_mm + thickness_range_mm, "
                             f"got {self.thickness_range_mm}, {self.fill_radius_mm}, {self.tissue_offset_mm}, "
                             f"{self.thickness_min_mm}, {self.init_thickness_mm}")
        if self.val_every < 1:
            raise ValueError(f"val_every must be >= 1, got {self.val_every}")
        if self.stop_after_epochs is not None and self.stop_after_epochs < 0:
            raise ValueError(f"stop_after_epochs must be >= 0, got {self.stop_after_epochs}")
        self.stages()  # checks schedule and final_res

    def parsed_schedule(self) -> list[tuple[int, int]]:
        """The schedule as ``[(resolution, epochs), ...]`` before dropping stages above ``final_res``."""
        sched = self.schedule
        if isinstance(sched, str):
            out = []
            for part in sched.replace(" ", "").split(","):
                if not part:
                    continue
                try:
                    res, ep = part.split(":")
                    out.append((int(res), int(ep)))
                except ValueError:
                    raise ValueError(f"schedule entries must be 'resolution:epochs', got {part!r}") from None
            sched = out
        return [(int(r), int(e)) for r, e in sched]

    def stages(self) -> list[tuple[int, int]]:
        """Resolved stages ``[(resolution, epochs), ...]`` actually trained.

        Staged: the schedule's entries up to ``final_res``, which must be consecutive doublings
        (one new generator level per stage) ending at ``final_res``. Not staged: one stage at
        ``final_res`` with the total number of epochs of the staged run.
        """
        sched = self.parsed_schedule()
        if not sched:
            raise ValueError("the schedule is empty")
        res = self.final_res
        if res < 4 or res & (res - 1):
            raise ValueError(f"final_res must be a power of two >= 4, got {res}")
        for r, e in sched:
            if r < 4 or r & (r - 1) or e < 0:
                raise ValueError(f"schedule resolutions must be powers of two >= 4 and epochs >= 0, got {r}:{e}")
        kept = [(r, e) for r, e in sched if r <= res]
        if not kept or kept[-1][0] != res:
            raise ValueError(f"the schedule {self.schedule!r} has no stage at final_res={res}")
        for (r0, _), (r1, _) in zip(kept, kept[1:]):
            if r1 != 2 * r0:
                raise ValueError(f"schedule resolutions must double from stage to stage, got {r0} then {r1}")
        if not self.staged:
            return [(res, sum(e for _, e in kept))]
        return kept

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict (`from_json` reads it back)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        if not isinstance(self.schedule, str):
            d["schedule"] = [list(e) for e in self.schedule]
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainSettings:
        """Rebuild from `to_json` output, ignoring unknown keys.

        Records written before a setting existed get its `_LEGACY` value (``residual`` False).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**_LEGACY, **{k: v for k, v in data.items() if k in names}})


def _trajectory(settings: TrainSettings) -> dict[str, Any]:
    """The settings that decide the weights (everything but `_FREE_ON_RESUME`), schedule resolved."""
    d = settings.to_json()
    for name in _FREE_ON_RESUME:
        d.pop(name)
    d["schedule"] = [list(s) for s in settings.stages()]
    return d


def _trajectory_diff(mine: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Keys where a checkpoint's trajectory differs from the current one.

    Settings unknown to an older checkpoint count as their `_LEGACY` value when they have one.
    Residual-only settings are ignored when neither run is residual.
    """
    theirs = {**_LEGACY, **theirs}
    keys = set(mine) | set(theirs)
    if not mine.get("residual") and not theirs.get("residual"):
        keys -= set(_RESIDUAL_ONLY)
    return [key for key in sorted(keys) if mine.get(key) != theirs.get(key)]


def generator_kwargs(settings: TrainSettings) -> dict[str, Any]:
    """Keyword arguments of the `UNetGenerator` a run with these settings trains."""
    stages = settings.stages()
    return {"in_ch": 2, "out_ch": 1, "base": settings.g_base, "max_ch": settings.g_max_ch,
            "max_res": settings.final_res, "min_res": stages[0][0], "predict_mask": True,
            "norm": "instance", "dropout": settings.g_dropout}


# --------------------------------------------------------------------------------------------
# Distributed setup
# --------------------------------------------------------------------------------------------


@dataclass
class _Dist:
    rank: int
    world: int
    local_rank: int
    local_world: int
    device: torch.device
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _resolve_device(name: str, local_rank: int) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for but CUDA is not available")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def _dist_context(settings: TrainSettings) -> _Dist:
    """Rank, world size and device from the torchrun environment (1 process without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    return _Dist(rank, world, local_rank, local_world, _resolve_device(settings.device, local_rank))


def _init_group(ctx: _Dist) -> None:
    import torch.distributed as dist

    if ctx.world <= 1 or dist.is_initialized():
        return
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    dist.init_process_group(backend="nccl" if ctx.device.type == "cuda" else "gloo")
    ctx.owns_group = True


# --------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------


@dataclass
class _Data:
    """Training and validation arrays at ``final_res`` plus what the report needs."""

    manifest: Manifest
    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    group_index: dict[str, np.ndarray]  # rows of ``train`` per kind
    baseline_mm: np.ndarray  # (R, R) float32 mean training face height
    info: dict[str, Any]


def _load_data(data_dir: str | os.PathLike, settings: TrainSettings) -> _Data:
    man = load_manifest(data_dir)
    h, w = man.size
    res = settings.final_res
    if h != w:
        raise InputError(man.path, f"training needs square maps, the dataset's are {h}x{w}")
    if h % res:
        raise InputError(man.path, f"final resolution {res} must divide the dataset's map size {h}")
    train_samples = man.select(split="train")
    val_samples = [s for s in man.select(split="test", real=True) if s["kind"] == "paired"]
    counts = {g: sum(s["kind"] == g for s in train_samples) for g in _GROUPS}
    if counts["paired"] == 0:
        raise InputError(man.path, "no paired training sample: the conditional GAN needs skull/face pairs")
    k = settings.k
    train = load_arrays(man, train_samples, k=k, size=res)
    val = load_arrays(man, val_samples, k=k, size=res)
    if len(val["id"]) and not np.allclose(train["centre"], val["centre"]):
        raise InputError(man.path, f"test maps are centred at {val['centre'].tolist()}, training maps at "
                                   f"{train['centre'].tolist()}: all maps must share one pixel grid")
    group_index = {g: np.flatnonzero(train["kind"] == g) for g in _GROUPS}

    # Baseline: the per-pixel mean height (mm) of every training face covering the pixel, the
    # overall mean elsewhere. Averages run in mm, never on the powered values.
    faces = train["has_face"]
    mm = _to_mm_np(train["face"][faces, 0], man.z_near, man.z_far, k)
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
    return _Data(man, train, val, group_index, baseline, info)


def _to_mm_np(v: np.ndarray, z_near: float, z_far: float, k: float) -> np.ndarray:
    return z_near + np.clip(v.astype(np.float64), 0.0, 1.0) ** (1.0 / k) * (z_far - z_near)


def _to_mm(v: torch.Tensor, z_near: float, z_far: float, k: float) -> torch.Tensor:
    # No eps clamp (unlike make_denormalise): this is for metrics, not gradients.
    return z_near + v.clamp(0.0, 1.0) ** (1.0 / k) * (z_far - z_near)


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
            mm = np.where(valid, _to_mm_np(skull[i, 0], z_near, z_far, k), np.nan)
            out[i, 0] = filled_height(mm, mm_per_px, radius_mm, offset_mm)
    return out


def residual_face(o: torch.Tensor, filled_mm: torch.Tensor, thickness_range_mm: float, z_near: float,
                  z_far: float, k: float, eps: float = 1e-6, thickness_min_mm: float = 0.0) -> torch.Tensor:
    """Normalised face map of a residual generator output (differentiable in ``o``).

    Parameters
    ----------
    o : torch.Tensor, shape (B, 1, H, W), in [0, 1]
        The generator's ``face`` output, read as soft-tissue thickness
        ``thickness_min_mm + o * thickness_range_mm``.
    filled_mm : torch.Tensor, same shape, mm
        `filled_skull_mm` of the input skulls (the base surface).
    thickness_range_mm, z_near, z_far, k, eps, thickness_min_mm : float

    Returns
    -------
    torch.Tensor, same shape, in [eps ** k, 1]
        ``clamp(u, eps, 1) ** k`` with ``u = (filled_mm + thickness - z_near) / (z_far - z_near)``:
        the face ``filled + thickness`` in the dataset's normalised units
        (the clamp keeps the derivative of the power finite for ``k < 1``).
    """
    u = (filled_mm + thickness_min_mm + o * thickness_range_mm - z_near) / (z_far - z_near)
    return u.clamp(eps, 1.0) ** k


def _stage_tensors(train: dict[str, np.ndarray], group_index: dict[str, np.ndarray], res: int,
                   device: torch.device, settings: TrainSettings) -> dict[str, dict[str, torch.Tensor]]:
    """Per-kind training tensors at ``res`` on ``device``.

    The whole stage goes to the device at once: the maps are small (a 256x256 sample is 1 MiB
    in all) and indexing on the device keeps the GPU fed without a loader. In residual mode the
    skull kinds also get ``fill``, the filled skull heights (mm) at ``res``.
    """
    arr = downsample_arrays(train, res)
    out: dict[str, dict[str, torch.Tensor]] = {}
    for g in _GROUPS:
        idx = group_index[g]
        if len(idx) == 0:
            continue
        a = subset(arr, idx)
        t: dict[str, torch.Tensor] = {}
        if g != "unpaired-face":
            t["x"] = torch.from_numpy(np.concatenate([a["skull"], a["skull_mask"]], axis=1))
            t["la_px"] = torch.from_numpy(a["la_px"])
            t["la_height"] = torch.from_numpy(a["la_height"])
            t["la_valid"] = torch.from_numpy(a["la_valid"])
            if settings.residual:
                t["fill"] = torch.from_numpy(filled_skull_mm(a, settings.fill_radius_mm, settings.tissue_offset_mm))
        if g != "unpaired-skull":
            t["face"] = torch.from_numpy(a["face"])
            t["face_mask"] = torch.from_numpy(a["face_mask"])
        out[g] = {key: v.to(device) for key, v in t.items()}
    return out


def _epoch_indices(n: int, steps: int, per_step: int, seed: int, epoch: int, group: int) -> np.ndarray:
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


# --------------------------------------------------------------------------------------------
# Models and one optimisation step
# --------------------------------------------------------------------------------------------


@dataclass
class Nets:
    """The generator, discriminators and optimisers of a run.

    ``g``, ``d`` and ``df`` are what the training step calls (DistributedDataParallel wrappers
    when distributed); ``g_mod``, ``d_mod`` and ``df_mod`` are the plain modules (for
    checkpoints, validation, and the discriminator passes of the generator update, which must not
    go through DDP: D gets no gradient there). ``df`` is None without a face discriminator.
    """

    g_mod: UNetGenerator
    d_mod: PatchDiscriminator
    df_mod: PatchDiscriminator | None
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    g: nn.Module
    d: nn.Module
    df: nn.Module | None


def build_nets(settings: TrainSettings, device: torch.device, ddp: bool = False) -> Nets:
    """Fresh, pix2pix-initialised networks and Adam optimisers (seeded by ``settings.seed``).

    In residual mode the generator's face outputs start at ``init_thickness_mm`` (their bias).

    Parameters
    ----------
    settings : TrainSettings
    device : torch.device
    ddp : bool
        Wrap the trained modules in DistributedDataParallel (the process group must exist).
    """
    torch.manual_seed(settings.seed)
    g = init_weights(UNetGenerator(**generator_kwargs(settings)))
    if settings.residual:
        # Every output level starts at sigmoid(bias) = init_thickness / thickness_range: an
        # untrained generator puts a plausible soft-tissue layer on the filled skull.
        p0 = (settings.init_thickness_mm - settings.thickness_min_mm) / settings.thickness_range_mm
        with torch.no_grad():
            for conv in g.to_rgb.values():
                conv.bias[0] = math.log(p0 / (1.0 - p0))
    g = g.to(device)
    d_kw = {"base": settings.d_base, "n_layers": settings.d_layers}
    d = init_weights(PatchDiscriminator(3, **d_kw)).to(device)
    df = init_weights(PatchDiscriminator(1, **d_kw)).to(device) if settings.use_face_discriminator else None
    opt_g = torch.optim.Adam(g.parameters(), lr=settings.lr, betas=settings.betas)
    # One Adam over both discriminators: Adam is per parameter, so this equals two optimisers.
    d_params = list(d.parameters()) + (list(df.parameters()) if df is not None else [])
    opt_d = torch.optim.Adam(d_params, lr=settings.lr, betas=settings.betas)
    wg, wd, wdf = g, d, df
    if ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        # The outer generator levels are idle until their stage and the R/2 path goes idle once a
        # fade-in ends: DDP must look for unused parameters.
        wg = DDP(g, device_ids=ids, find_unused_parameters=True)
        wd = DDP(d, device_ids=ids)
        wdf = DDP(df, device_ids=ids) if df is not None else None
    return Nets(g, d, df, opt_g, opt_d, wg, wd, wdf)


def _fade_real(face: torch.Tensor, alpha: float) -> torch.Tensor:
    """Real maps blended like the generator's faded output (progressive-GAN fade-in)."""
    low = F.interpolate(F.avg_pool2d(face, 2), scale_factor=2, mode="bilinear")
    return torch.lerp(low, face, alpha)


def _set_requires_grad(module: nn.Module | None, flag: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


def train_step(
    nets: Nets,
    batch: dict[str, dict[str, torch.Tensor]],
    alpha: float,
    settings: TrainSettings,
    denormalise,
    z_range: tuple[float, float] | None = None,
) -> dict[str, torch.Tensor]:
    """One discriminator update followed by one generator update.

    Parameters
    ----------
    nets : Nets
    batch : dict
        ``batch["paired"]`` (required): ``x`` (B, 2, R, R) = concat(skull, skull mask),
        ``face`` and ``face_mask`` (B, 1, R, R), ``la_px`` (B, L, 2), ``la_height`` (B, L),
        ``la_valid`` (B, L). Optional ``batch["unpaired-skull"]`` (``x`` and ``la_*``) and
        ``batch["unpaired-face"]`` (``face``). float32 maps, normalised units. In residual
        mode the skull kinds also carry ``fill`` (B, 1, R, R), their filled skull heights in mm.
    alpha : float in [0, 1]
        Fade-in weight of the newest generator level (1: no fade).
    settings : TrainSettings
    denormalise : callable
        `skull2face.model.make_denormalise` for the dataset's depth range and k (for L_A in mm).
    z_range : (float, float), optional
        The dataset's ``(z_near, z_far)``; required in residual mode, where the generator's
        output becomes the face map through `residual_face`.

    Returns
    -------
    dict of str to torch.Tensor
        Detached scalar losses: ``d_cond``, ``d_face``, ``g_adv``, ``l1`` (normalised units),
        ``mask_bce``, ``la_mm`` and ``g_total``.
    """
    mode = settings.gan_mode
    paired = batch["paired"]
    uskull = batch.get("unpaired-skull")
    uface = batch.get("unpaired-face")
    n_p = paired["x"].shape[0]
    fading = alpha < 1.0
    x = paired["x"] if uskull is None else torch.cat([paired["x"], uskull["x"]])
    # One generator pass over every skull; instance norm works per sample, so batching paired
    # and unpaired skulls together changes nothing but speed.
    out = nets.g(x, alpha)
    if settings.residual:
        if z_range is None:
            raise ValueError("residual mode needs z_range=(z_near, z_far)")
        fill = paired["fill"] if uskull is None else torch.cat([paired["fill"], uskull["fill"]])
        out = out._replace(face=residual_face(out.face, fill, settings.thickness_range_mm, z_range[0],
                                              z_range[1], settings.k, thickness_min_mm=settings.thickness_min_mm))
    fake = out.composite()
    real_p = _fade_real(paired["face"], alpha) if fading else paired["face"]

    # Discriminator update. Real and fake go through each D in one pass (one DDP forward per
    # backward; spectral norm does not depend on the batch).
    _set_requires_grad(nets.d_mod, True)
    _set_requires_grad(nets.df_mod, True)
    fake_d = fake.detach()
    logits = nets.d(torch.cat([torch.cat([paired["x"], real_p], 1), torch.cat([x, fake_d], 1)]))
    loss_d = 0.5 * (gan_loss(logits[:n_p], True, mode) + gan_loss(logits[n_p:], False, mode))
    loss_df = torch.zeros((), device=x.device)
    if nets.df is not None:
        reals = [real_p]
        if uface is not None:
            reals.append(_fade_real(uface["face"], alpha) if fading else uface["face"])
        reals = torch.cat(reals)
        logits_f = nets.df(torch.cat([reals, fake_d]))
        n_r = reals.shape[0]
        loss_df = 0.5 * (gan_loss(logits_f[:n_r], True, mode) + gan_loss(logits_f[n_r:], False, mode))
    nets.opt_d.zero_grad(set_to_none=True)
    (loss_d + loss_df).backward()
    nets.opt_d.step()

    # Generator update: the Ds are frozen and called unwrapped (no DDP gradient sync for them).
    _set_requires_grad(nets.d_mod, False)
    _set_requires_grad(nets.df_mod, False)
    g_adv = gan_loss(nets.d_mod(torch.cat([x, fake], 1)), True, mode)
    if nets.df_mod is not None:
        g_adv = g_adv + gan_loss(nets.df_mod(fake), True, mode)
    l1 = masked_l1(out.face[:n_p], paired["face"], paired["face_mask"])
    bce = F.binary_cross_entropy_with_logits(out.mask_logit[:n_p], paired["face_mask"])
    la = torch.zeros((), device=x.device)
    groups = ([paired] if settings.la_on_paired else []) + ([uskull] if uskull is not None else [])
    if groups and paired["la_px"].shape[1] > 0 and settings.lambda2 > 0:
        rows = out.face if settings.la_on_paired else out.face[n_p:]
        la = anthropological_loss(
            rows,
            torch.cat([g["la_px"] for g in groups]),
            torch.cat([g["la_height"] for g in groups]),
            torch.cat([g["la_valid"] for g in groups]),
            denormalise=denormalise,
        )
    total = g_adv + settings.lambda1 * l1 + settings.lambda2 * la + settings.lambda_mask * bce
    nets.opt_g.zero_grad(set_to_none=True)
    total.backward()
    nets.opt_g.step()
    _set_requires_grad(nets.d_mod, True)
    _set_requires_grad(nets.df_mod, True)
    return {"d_cond": loss_d.detach(), "d_face": loss_df.detach(), "g_adv": g_adv.detach(),
            "l1": l1.detach(), "mask_bce": bce.detach(), "la_mm": la.detach(), "g_total": total.detach()}


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _height_errors(pred_mm: torch.Tensor, true_mm: torch.Tensor, mask: torch.Tensor) -> dict[str, float]:
    """MAE, RMSE (mm) and fraction within `WITHIN_MM` over ``mask`` (all tensors (N, 1, R, R))."""
    m = mask > 0.5
    n = int(m.sum())
    if n == 0:
        return {"mae_mm": float("nan"), "rmse_mm": float("nan"), "within_2_5mm": float("nan"), "pixels": 0}
    d = (pred_mm - true_mm)[m].double()
    return {"mae_mm": float(d.abs().mean()), "rmse_mm": float(d.square().mean().sqrt()),
            "within_2_5mm": float((d.abs() <= WITHIN_MM).double().mean()), "pixels": n}


@torch.no_grad()
def _validate(g: UNetGenerator, val_stage: dict[str, np.ndarray], val_final: dict[str, np.ndarray],
              alpha: float, device: torch.device, batch: int,
              settings: TrainSettings | None = None) -> dict[str, Any]:
    """Validation metrics of the generator at the current stage, measured at ``final_res``.

    In residual mode (``settings.residual``) ``val_stage["fill"]`` holds the filled skulls (mm).
    """
    z_near, z_far, k = float(val_final["z_near"]), float(val_final["z_far"]), float(val_final["k"])
    res = int(val_final["size"][0])
    x_all = torch.from_numpy(np.concatenate([val_stage["skull"], val_stage["skull_mask"]], axis=1))
    residual = settings is not None and settings.residual
    fill_all = torch.from_numpy(val_stage["fill"]) if residual else None
    preds, logits = [], []
    was_training = g.training
    g.eval()
    for i in range(0, x_all.shape[0], batch):
        out = g(x_all[i:i + batch].to(device), alpha)
        if residual:
            # The face the training losses see, in mm: filled skull + thickness, within the depth range.
            fill = fill_all[i:i + batch].to(device)
            mm = (fill + settings.thickness_min_mm + out.face * settings.thickness_range_mm).clamp(z_near, z_far)
        else:
            mm = _to_mm(out.face, z_near, z_far, k)
        logit = out.mask_logit
        if mm.shape[-1] != res:
            # Upsample in mm (linear depth), not in powered units.
            mm = F.interpolate(mm, size=(res, res), mode="bilinear")
            logit = F.interpolate(logit, size=(res, res), mode="bilinear")
        preds.append(mm.cpu())
        logits.append(logit.cpu())
    g.train(was_training)
    pred = torch.cat(preds)
    pred_mask = torch.cat(logits) > 0
    true = _to_mm(torch.from_numpy(val_final["face"]), z_near, z_far, k)
    mask = torch.from_numpy(val_final["face_mask"])
    out = {f"val_{key}": v for key, v in _height_errors(pred, true, mask).items()}
    truth = mask > 0.5
    inter = (pred_mask & truth).sum().item()
    union = (pred_mask | truth).sum().item()
    out["val_mask_iou"] = inter / union if union else float("nan")
    out["val_per_sample_mae_mm"] = {
        str(sid): _height_errors(pred[i:i + 1], true[i:i + 1], mask[i:i + 1])["mae_mm"]
        for i, sid in enumerate(val_final["id"])
    }
    return out


def _baseline_errors(baseline_mm: np.ndarray, val_final: dict[str, np.ndarray]) -> dict[str, Any]:
    if len(val_final["id"]) == 0:
        return {}
    z_near, z_far, k = float(val_final["z_near"]), float(val_final["z_far"]), float(val_final["k"])
    true = _to_mm(torch.from_numpy(val_final["face"]), z_near, z_far, k)
    pred = torch.from_numpy(baseline_mm).to(true.dtype).expand_as(true)
    errs = _height_errors(pred, true, torch.from_numpy(val_final["face_mask"]))
    return {f"baseline_{key}": v for key, v in errs.items() if key != "pixels"}


# --------------------------------------------------------------------------------------------
# Checkpoints, metrics and the plot
# --------------------------------------------------------------------------------------------


def _rng_state() -> dict[str, Any]:
    # numpy's state array becomes a list so that torch.load(weights_only=True) can read it back.
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_tuplify(state["python"]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(obj: Any) -> Any:
    return tuple(_tuplify(o) for o in obj) if isinstance(obj, (list, tuple)) else obj


def _save_atomic(obj: Any, path: Path) -> None:
    # Temporary file in the same folder, then os.replace: a kill leaves the old file intact.
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    try:
        ck = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise InputError(path, f"cannot read checkpoint: {exc}") from None
    if not isinstance(ck, dict) or ck.get("format") not in (CHECKPOINT_FORMAT, EXPORT_FORMAT):
        raise InputError(path, "not a skull2face checkpoint or exported generator")
    return ck


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut by a kill; everything after it is void as well
    return out


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def plot_history(rows: list[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write ``loss.png``: training losses (log scale) and validation error in mm vs epoch.

    Parameters
    ----------
    rows : list of dict
        ``metrics.jsonl`` lines.
    path : path-like
        PNG to write (atomically).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.5))
    FigureCanvasAgg(fig)
    ax_l, ax_v = fig.subplots(1, 2)
    ep = [r["epoch"] for r in rows]
    for key, label in (("g_total", "G total"), ("g_adv", "G adversarial"), ("l1", "L1 (normalised)"),
                       ("la_mm", "L_A (mm)"), ("mask_bce", "mask BCE"), ("d_cond", "D conditional"),
                       ("d_face", "D face")):
        ys = [r.get(key) for r in rows]
        if any(y is not None and y > 0 for y in ys):
            ax_l.plot(ep, [y if y is not None and y > 0 else np.nan for y in ys], marker=".", label=label)
    ax_l.set_yscale("log")
    ax_l.set_xlabel("epoch")
    ax_l.set_ylabel("training loss (epoch mean)")
    ax_l.set_title("losses")
    ax_l.legend(fontsize=8)
    vrows = [r for r in rows if r.get("val_mae_mm") is not None]
    if vrows:
        ve = [r["epoch"] for r in vrows]
        ax_v.plot(ve, [r["val_mae_mm"] for r in vrows], marker="o", label="model MAE")
        ax_v.plot(ve, [r["val_rmse_mm"] for r in vrows], marker="s", label="model RMSE")
        base = vrows[-1]
        if base.get("baseline_mae_mm") is not None:
            ax_v.axhline(base["baseline_mae_mm"], ls="--", c="C0", alpha=0.6, label="mean-face MAE")
            ax_v.axhline(base["baseline_rmse_mm"], ls="--", c="C1", alpha=0.6, label="mean-face RMSE")
        ax_v.set_ylabel("face height error on held-out real head(s) (mm)")
        ax_v.legend(fontsize=8)
    else:
        ax_v.text(0.5, 0.5, "no real held-out head: no validation", ha="center", transform=ax_v.transAxes)
    ax_v.set_xlabel("epoch")
    ax_v.set_title("validation (at final resolution)")
    # Stage boundaries, labelled with the stage's resolution.
    last_res = None
    for r in rows:
        if r.get("res") != last_res:
            last_res = r.get("res")
            for ax in (ax_l, ax_v):
                ax.axvline(r["epoch"] - 0.5, c="grey", lw=0.8, ls=":")
                ax.text(r["epoch"] - 0.4, 0.01, f"{last_res}²", transform=ax.get_xaxis_transform(),
                        fontsize=8, va="bottom", color="grey")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _alpha(stage_idx: int, stage_step: int, stage_steps: int, settings: TrainSettings) -> float:
    """Fade-in weight of the newest level at a step of a stage (1 in the first stage)."""
    if stage_idx == 0 or settings.fade_fraction <= 0:
        return 1.0
    fade_steps = max(1, math.ceil(settings.fade_fraction * stage_steps))
    return min(1.0, (stage_step + 1) / fade_steps)


def _epoch_table(stages: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``(stage index, epoch within stage)`` of every global epoch."""
    return [(i, e) for i, (_, n) in enumerate(stages) for e in range(n)]


def train(data_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: TrainSettings | None = None,
          resume: bool = False) -> dict[str, Any]:
    """Train skull2face on a dataset folder; works alone or under ``torchrun``.

    Parameters
    ----------
    data_dir : path-like
        Dataset folder (``docs/dataset-format.md``).
    out_dir : path-like
        Run folder for ``train.json``, ``metrics.jsonl``, ``loss.png``, ``last.pt`` and
        ``best.pt`` (created if needed).
    settings : TrainSettings, optional
        Default `TrainSettings()`.
    resume : bool
        Continue the run in ``out_dir`` from ``last.pt`` (a fresh start when there is none).
        The weights then equal those of an unbroken run, given the same settings (those in
        `_FREE_ON_RESUME` may change), world size and hardware.

    Returns
    -------
    dict
        ``out_dir``, ``epochs_done``, ``epochs_total``, ``completed`` (all epochs done),
        ``stages``, ``best`` (epoch, metric name and value), ``last`` (the last metrics line),
        ``baseline`` (validation error of the mean training face), ``world_size``, ``device``,
        ``last_checkpoint`` and ``best_checkpoint``. Every rank returns it; only rank 0's
        ``last`` is filled.

    Raises
    ------
    InputError
        Bad dataset (see `skull2face.dataset.reader`), ``out_dir`` already holding a run when
        ``resume`` is False, or a checkpoint that does not match the settings.
    """
    settings = settings or TrainSettings()
    settings.validate()
    ctx = _dist_context(settings)
    out = Path(out_dir)
    last_path, best_path = out / "last.pt", out / "best.pt"
    metrics_path = out / "metrics.jsonl"
    if not resume and last_path.exists():
        raise InputError(out, "already holds a training run (last.pt); resume it or choose another folder")
    torch.set_num_threads(settings.num_threads or max(1, (os.cpu_count() or 1) // max(1, ctx.local_world)))

    data = _load_data(data_dir, settings)
    stages = settings.stages()
    table = _epoch_table(stages)
    total_epochs = len(table)
    final_res = settings.final_res
    z_near, z_far, k = data.manifest.z_near, data.manifest.z_far, settings.k
    denorm = make_denormalise(z_near, z_far, k)
    n_group = {g: len(data.group_index[g]) for g in _GROUPS}
    active = [g for g in _GROUPS if n_group[g] > 0 and (g != "unpaired-face" or settings.use_face_discriminator)]
    per_step = settings.batch_size * ctx.world
    steps_per_epoch = math.ceil(max(n_group[g] for g in active) / per_step)
    has_val = len(data.val["id"]) > 0
    baseline = _baseline_errors(data.baseline_mm, data.val)
    best_metric = "val_mae_mm" if has_val else "l1"

    _init_group(ctx)
    try:
        nets = build_nets(settings, ctx.device, ddp=ctx.world > 1)
        start_epoch, best = 0, {"epoch": None, "metric": best_metric, "value": None}
        rows: list[dict[str, Any]] = []
        if resume and last_path.exists():
            ck = _load_checkpoint(last_path)  # on the CPU: RNG states must stay CPU tensors
            if ck.get("format") != CHECKPOINT_FORMAT:
                raise InputError(last_path, "not a training checkpoint")
            mine, theirs = _trajectory(settings), {**_LEGACY, **ck["trajectory"]}
            diff = [f"{key} (checkpoint {theirs.get(key)!r}, now {mine.get(key)!r})"
                    for key in _trajectory_diff(mine, theirs)]
            if diff:
                raise InputError(last_path, "settings differ from the run being resumed: " + "; ".join(diff))
            if ck.get("data_fingerprint") != data.info["fingerprint"]:
                raise InputError(last_path, "the dataset's training or validation samples differ from the run "
                                            "being resumed")
            if ck["world_size"] != ctx.world:
                raise InputError(last_path, f"run used {ck['world_size']} processes, now {ctx.world}: "
                                            "resume with the same number")
            nets.g_mod.load_state_dict(ck["G"])
            nets.d_mod.load_state_dict(ck["D"])
            if nets.df_mod is not None:
                nets.df_mod.load_state_dict(ck["DF"])
            nets.opt_g.load_state_dict(ck["opt_G"])
            nets.opt_d.load_state_dict(ck["opt_D"])
            _set_rng_state(ck["rng"])
            start_epoch, best = int(ck["epoch"]), dict(ck["best"])
            if ctx.main:
                # Lines past the checkpoint belong to an epoch that will be trained again.
                rows = [r for r in _read_metrics(metrics_path) if r["epoch"] <= start_epoch]
                _write_metrics(metrics_path, rows)
        elif ctx.main and metrics_path.exists():
            metrics_path.unlink()
        if ctx.main and out.is_dir():
            # Temporary files of atomic writes cut short by a kill (SIGKILL skips their cleanup).
            for tmp in out.glob(".tmp-*"):
                tmp.unlink(missing_ok=True)

        if ctx.main:
            run_info = _read_json(out / "train.json") if resume else {}
            resumes = run_info.get("resumed_at_epochs", [])
            if resume and start_epoch > 0:
                resumes.append(start_epoch)
            write_json(out / "train.json", {
                "format": "skull2face-train", "version": FORMAT_VERSION,
                "settings": settings.to_json(),
                "stages": [list(s) for s in stages],
                "epochs_total": total_epochs,
                "steps_per_epoch": steps_per_epoch,
                "samples_per_step": {g: settings.batch_size for g in active},
                "generator_kwargs": generator_kwargs(settings),
                "discriminator_kwargs": {"base": settings.d_base, "n_layers": settings.d_layers,
                                         "conditional_in_ch": 3, "face_in_ch": 1},
                "parameters": {"G": _n_params(nets.g_mod), "D": _n_params(nets.d_mod),
                               "D_face": _n_params(nets.df_mod) if nets.df_mod is not None else 0},
                "data": data.info,
                "validation": {"metric": best_metric, "at_resolution": final_res, "within_mm": WITHIN_MM,
                               **baseline},
                "world_size": ctx.world, "device": str(ctx.device), "threads": torch.get_num_threads(),
                "torch": str(torch.__version__), "resumed_at_epochs": resumes,
            })

        stop = total_epochs if settings.stop_after_epochs is None else min(total_epochs, settings.stop_after_epochs)
        show = settings.progress and ctx.main
        bar = _tqdm(total=total_epochs, initial=start_epoch, desc="epochs", disable=not show, position=0)
        stage_cache: tuple[int, Any, Any] | None = None
        for epoch in range(start_epoch, stop):
            stage_idx, ep_in_stage = table[epoch]
            res, stage_epochs = stages[stage_idx]
            if stage_cache is None or stage_cache[0] != res:
                stage_cache = None  # free the previous stage first
                val_stage = downsample_arrays(data.val, res) if has_val else None
                if val_stage is not None and settings.residual:
                    val_stage["fill"] = filled_skull_mm(val_stage, settings.fill_radius_mm, settings.tissue_offset_mm)
                stage_cache = (res, _stage_tensors(data.train, data.group_index, res, ctx.device, settings),
                               val_stage)
            _, tensors, val_stage = stage_cache
            idx = {g: torch.from_numpy(_epoch_indices(n_group[g], steps_per_epoch, per_step, settings.seed,
                                                      epoch, gi)[:, ctx.rank * settings.batch_size:
                                                                 (ctx.rank + 1) * settings.batch_size])
                   for gi, g in enumerate(_GROUPS) if g in active}
            sums: dict[str, torch.Tensor] = {}
            t0 = time.perf_counter()
            alpha = 1.0
            inner = _tqdm(range(steps_per_epoch), desc=f"{res}x{res} epoch {ep_in_stage + 1}/{stage_epochs}",
                          disable=not show, leave=False, position=1)
            for i in inner:
                alpha = _alpha(stage_idx, ep_in_stage * steps_per_epoch + i, stage_epochs * steps_per_epoch,
                               settings)
                batch = {g: {key: v[idx[g][i].to(v.device)] for key, v in tensors[g].items()} for g in active}
                losses = train_step(nets, batch, alpha, settings, denorm, (z_near, z_far))
                for key, v in losses.items():
                    sums[key] = sums.get(key, 0.0) + v
            elapsed = time.perf_counter() - t0
            means = torch.stack([sums[key] for key in sorted(sums)]) / steps_per_epoch
            if ctx.world > 1:
                import torch.distributed as dist

                dist.all_reduce(means)
                means /= ctx.world
            row = {"epoch": epoch + 1, "res": res, "stage": stage_idx + 1, "stage_epoch": ep_in_stage + 1,
                   "alpha": alpha, "steps": steps_per_epoch,
                   "samples": steps_per_epoch * settings.batch_size * len(active) * ctx.world,
                   "seconds": elapsed,
                   "samples_per_s": steps_per_epoch * settings.batch_size * len(active) * ctx.world / elapsed,
                   **{key: float(v) for key, v in zip(sorted(sums), means.tolist())}}
            bar.update(1)
            if not ctx.main:
                continue
            validate = has_val and ((epoch + 1) % settings.val_every == 0 or ep_in_stage + 1 == stage_epochs
                                    or epoch + 1 == total_epochs)
            if validate:
                row.update(_validate(nets.g_mod, val_stage, data.val, alpha, ctx.device, 4 * settings.batch_size,
                                     settings))
            else:  # same keys on every line, null when not validated
                row.update(dict.fromkeys(_VAL_KEYS))
            row.update(baseline)
            score = row.get(best_metric)
            improved = score is not None and math.isfinite(score) and (best["value"] is None or score < best["value"])
            if improved:
                best = {"epoch": epoch + 1, "metric": best_metric, "value": score}
            row["best"] = improved
            rows.append(row)
            _append_metrics(metrics_path, row)
            plot_history(rows, out / "loss.png")
            ck = {
                "format": CHECKPOINT_FORMAT, "version": FORMAT_VERSION,
                "settings": settings.to_json(), "trajectory": _trajectory(settings),
                "world_size": ctx.world, "data_fingerprint": data.info["fingerprint"],
                "epoch": epoch + 1, "res": res, "alpha": alpha,
                "generator_kwargs": generator_kwargs(settings),
                "data_meta": _data_meta(data, settings),
                "G": nets.g_mod.state_dict(), "D": nets.d_mod.state_dict(),
                "DF": nets.df_mod.state_dict() if nets.df_mod is not None else None,
                "opt_G": nets.opt_g.state_dict(), "opt_D": nets.opt_d.state_dict(),
                "rng": _rng_state(), "best": best, "metrics": _jsonable_row(row),
            }
            if improved:
                _save_atomic(ck, best_path)
            _save_atomic(ck, last_path)
            if show:
                val_txt = ""
                if row.get("val_mae_mm") is not None:
                    val_txt = (f"  val {row['val_mae_mm']:.2f} mm "
                               f"(mean face {row.get('baseline_mae_mm', float('nan')):.2f})")
                bar.write(f"epoch {epoch + 1}/{total_epochs} {res}x{res} alpha {alpha:.2f}: "
                          f"G {row['g_total']:.3f} L1 {row['l1']:.4f} LA {row['la_mm']:.2f} mm "
                          f"D {row['d_cond']:.3f}{val_txt}")
        bar.close()
        epochs_done = max(start_epoch, stop)
        if ctx.world > 1:
            import torch.distributed as dist

            dist.barrier()
        return {
            "out_dir": str(out), "epochs_done": epochs_done, "epochs_total": total_epochs,
            "completed": epochs_done >= total_epochs, "stages": [list(s) for s in stages],
            "best": best, "last": rows[-1] if rows else None, "baseline": baseline,
            "world_size": ctx.world, "device": str(ctx.device),
            "last_checkpoint": str(last_path), "best_checkpoint": str(best_path) if best_path.exists() else None,
        }
    finally:
        if ctx.owns_group:
            import torch.distributed as dist

            dist.destroy_process_group()


def _tqdm(*args, **kwargs):
    from tqdm import tqdm

    return tqdm(*args, dynamic_ncols=True, **kwargs)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(row))


def _data_meta(data: _Data, settings: TrainSettings) -> dict[str, Any]:
    """What prediction needs to feed the generator and read its output back in mm."""
    size = data.manifest.size[0]
    return {
        "k": settings.k, "z_near": data.manifest.z_near, "z_far": data.manifest.z_far,
        "resolution": settings.final_res,
        "mm_per_px": data.manifest.mm_per_px * size / settings.final_res,
        "centre": data.info["centre"],
        "dataset_size": list(data.manifest.size), "dataset_mm_per_px": data.manifest.mm_per_px,
        "input": "concat(normalise(skull height, k), skull mask) as (B, 2, R, R), R = resolution",
        "residual": settings.residual,
        "thickness_range_mm": settings.thickness_range_mm,
        "thickness_min_mm": settings.thickness_min_mm,
        "fill_radius_mm": settings.fill_radius_mm,
        "tissue_offset_mm": settings.tissue_offset_mm,
        "output": ("face: soft-tissue thickness above the base surface B = skull2face.geometry.fill."
                   "filled_height(skull mm, mm_per_px, fill_radius_mm, tissue_offset_mm); face height = "
                   "clip(B + thickness_min_mm + face * thickness_range_mm, z_near, z_far); "
                   "face mask: mask_logit > 0" if settings.residual else
                   "face: normalised height (denormalise with z_near, z_far, k); face mask: mask_logit > 0"),
    }


# --------------------------------------------------------------------------------------------
# Export and loading for prediction
# --------------------------------------------------------------------------------------------


def _run_checkpoint(run: Path) -> Path:
    for name in ("best.pt", "last.pt"):
        if (run / name).is_file():
            return run / name
    raise InputError(run, "no best.pt or last.pt in this run folder")


def export_generator(run_dir: str | os.PathLike, path: str | os.PathLike, which: str = "best") -> Path:
    """Write a small file with only the generator's weights and what is needed to use it.

    Parameters
    ----------
    run_dir : path-like
        A training run folder.
    path : path-like
        Output file (written atomically), e.g. ``skull2face-generator.pt``.
    which : {"best", "last"}
        Checkpoint to export; "best" falls back to ``last.pt`` when there is no ``best.pt``.

    Returns
    -------
    pathlib.Path
        ``path``. The file holds ``format``, ``generator_kwargs``, ``state_dict`` (float32) and
        ``meta`` (k, z_near, z_far, resolution, mm_per_px at that resolution, centre, the dataset's
        size and pitch, ``residual`` with ``thickness_range_mm``, ``thickness_min_mm``,
        ``fill_radius_mm`` and ``tissue_offset_mm``, the epoch, its validation metrics and the
        training settings). With the default widths it is about 11 MB.
    """
    run = Path(run_dir)
    if which not in ("best", "last"):
        raise ValueError(f"which must be 'best' or 'last', got {which!r}")
    src = run / "last.pt" if which == "last" else _run_checkpoint(run)
    ck = _load_checkpoint(src)
    if ck.get("format") != CHECKPOINT_FORMAT:
        raise InputError(src, "not a training checkpoint")
    meta = {**ck["data_meta"], "epoch": ck["epoch"], "checkpoint": src.name,
            "validation": {key: v for key, v in ck["metrics"].items()
                           if key.startswith(("val_", "baseline_"))},
            "settings": ck["settings"], "torch": str(torch.__version__)}
    payload = {"format": EXPORT_FORMAT, "version": FORMAT_VERSION, "generator_kwargs": ck["generator_kwargs"],
               "state_dict": {key: v.detach().cpu().contiguous() for key, v in ck["G"].items()}, "meta": meta}
    _save_atomic(payload, Path(path))
    return Path(path)


def load_generator(path_or_run: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[UNetGenerator, dict]:
    """Rebuild a trained generator for prediction.

    Parameters
    ----------
    path_or_run : path-like
        An `export_generator` file, a ``.pt`` training checkpoint, or a run folder (its
        ``best.pt``, else ``last.pt``).
    device : str or torch.device

    Returns
    -------
    G : UNetGenerator
        In eval mode on ``device``. Feed it ``concat(normalise(skull, k), skull mask)`` of
        shape (B, 2, R, R) at ``R = meta["resolution"]`` (any power of two from
        ``generator_kwargs["min_res"]`` works, at lower quality); ``mask_logit > 0`` marks the
        face. When ``meta["residual"]``, ``thickness_min_mm + face * thickness_range_mm`` is the
        soft-tissue thickness above ``filled_height(skull mm, mm_per_px, fill_radius_mm,
        tissue_offset_mm)`` (values from ``meta``; see `skull2face.stages.predict.generator_face`);
        otherwise ``face`` is the normalised face height.
    meta : dict
        ``k``, ``z_near``, ``z_far`` (mm), ``resolution``, ``mm_per_px`` (at ``resolution``),
        ``centre`` (head-frame (x, y) of the image centre, mm: with ``mm_per_px`` and
        ``resolution`` the `RenderSpec` of the output map), ``dataset_size``,
        ``dataset_mm_per_px``, ``residual`` (False for files written before residual mode), with
        it ``thickness_range_mm``, ``thickness_min_mm``, ``fill_radius_mm`` and
        ``tissue_offset_mm``, ``generator_kwargs`` and, when known,
        ``epoch``, ``validation`` and ``settings``.

    Raises
    ------
    InputError
        Naming the file when it is missing or not a skull2face checkpoint / generator.
    """
    p = Path(path_or_run)
    if p.is_dir():
        p = _run_checkpoint(p)
    if not p.is_file():
        raise InputError(p, "generator file not found")
    ck = _load_checkpoint(p)
    if ck["format"] == EXPORT_FORMAT:
        state, meta = ck["state_dict"], dict(ck["meta"])
    else:
        state = ck["G"]
        meta = {**ck["data_meta"], "epoch": ck["epoch"], "settings": ck["settings"],
                "validation": {key: v for key, v in ck.get("metrics", {}).items()
                               if key.startswith(("val_", "baseline_"))}}
    kwargs = dict(ck["generator_kwargs"])
    g = UNetGenerator(**kwargs)
    try:
        g.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(p, f"generator weights do not fit its recorded architecture: {exc}") from None
    meta["generator_kwargs"] = kwargs
    meta.setdefault("residual", False)  # written before residual mode existed
    return g.to(device).eval(), meta


# --------------------------------------------------------------------------------------------
# Command line (also the torchrun entry point)
# --------------------------------------------------------------------------------------------


def _parse_betas(text: str) -> tuple[float, float]:
    try:
        b1, b2 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"betas must be 'b1,b2', got {text!r}") from None
    return b1, b2


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("", "none") else int(text)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--option`` per `TrainSettings` field (``--final-res``, ``--no-staged``, ...).

    Use `settings_from_args` on the parsed namespace. Options default to the dataclass
    defaults; booleans get ``--x`` / ``--no-x``.
    """
    group = parser.add_argument_group("training settings")
    defaults = TrainSettings()
    for f in dataclasses.fields(TrainSettings):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        text = f.metadata.get("help", "")
        if isinstance(default, bool):
            group.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                               help=text)
        elif f.name == "betas":
            group.add_argument(flag, dest=f.name, type=_parse_betas, default=default, metavar="B1,B2",
                               help=f"{text} (default {default[0]},{default[1]})")
        elif f.name == "gan_mode":
            group.add_argument(flag, dest=f.name, choices=("lsgan", "vanilla"), default=default,
                               help=f"{text} (default {default})")
        elif f.name == "stop_after_epochs":
            group.add_argument(flag, dest=f.name, type=_optional_int, default=default, metavar="N", help=text)
        else:
            group.add_argument(flag, dest=f.name, type=type(default), default=default,
                               help=f"{text} (default {default})")


def settings_from_args(args: argparse.Namespace) -> TrainSettings:
    """`TrainSettings` from a namespace parsed with `add_train_arguments` options.

    Raises
    ------
    ValueError
        On an impossible combination (e.g. no schedule stage at ``final_res``).
    """
    return TrainSettings(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)
                            if hasattr(args, f.name)})


def build_parser() -> argparse.ArgumentParser:
    """Parser of ``python -m skull2face.stages.train`` (and of torchrun launches)."""
    p = argparse.ArgumentParser(
        prog="python -m skull2face.stages.train",
        description="Train the skull2face cGAN on a dataset folder. Distributed: "
                    "torchrun --nproc_per_node=N -m skull2face.stages.train --data D --out O ...")
    p.add_argument("--data", required=True, help="dataset folder (docs/dataset-format.md)")
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    add_train_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m skull2face.stages.train``; prints the summary (rank 0) as JSON.

    Returns 0 on success, 2 on bad input or settings (message on stderr, no traceback).
    """
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        summary = train(args.data, args.out, settings, resume=args.resume)
    except (InputError, ValueError) as exc:
        print(f"skull2face train: error: {exc}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=2, default=str))
    return 0


main_ddp = main

__all__ = [
    "DEFAULT_SCHEDULE",
    "Nets",
    "TrainSettings",
    "add_train_arguments",
    "build_nets",
    "build_parser",
    "export_generator",
    "filled_skull_mm",
    "generator_kwargs",
    "load_generator",
    "main",
    "main_ddp",
    "plot_history",
    "residual_face",
    "settings_from_args",
    "train",
    "train_step",
]


if __name__ == "__main__":
    sys.exit(main())
