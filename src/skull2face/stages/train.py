"""Train the skull2face conditional GAN on a dataset folder, in resolution stages.

This stage holds the settings (`TrainSettings`), the `train` entry and the command line. The
networks and one GAN step are `skull2face.model.cgan`; data, validation, checkpoints, the plot
and the loop are `skull2face.training`.

The objective (Knyaz et al. 2020: ``min_G max_D L_cGAN + lambda1 L1 + lambda2 L_A``, plus a
face-mask term) and what each kind of sample (paired, unpaired skulls, unpaired faces) pays
in one optimisation step are described in `skull2face.model.cgan`.

Discriminators see the generated face composited with its predicted mask
(`GeneratorOutput.composite`), since real face maps are 0 off the face.

Residual mode (``residual``, the default): the generator's ``face`` output ``o`` in [0, 1] is
not the face height but the soft-tissue thickness ``T = thickness_min_mm + o *
thickness_range_mm`` (default 0 to 60 mm) above a base surface ``B``: the *filled skull*
(`skull2face.geometry.fill.filled_height`: the skull height in mm with holes and pits narrower
than a ``fill_radius_mm`` disc bridged, optionally offset outwards along the bone normal by
``tissue_offset_mm``, nearest value off the bone; computed once per sample at every stage
resolution). The face ``B + T`` is normalised again by `skull2face.geometry.codec.residual_face`
(differentiable) and used
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

Distributed training: launch with ``torchrun --nproc_per_node=N -m skull2face train --data D
--out O ...``. The process group (gloo on CPU, nccl on CUDA) is set up from the ``RANK`` /
``WORLD_SIZE`` environment; models are wrapped in `DistributedDataParallel`; every rank takes
its own slice of the same seeded per-epoch permutation (``batch_size`` is per process);
rank 0 alone validates and writes files.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..training.meta import LEGACY_SETTINGS as _LEGACY  # read by TrainSettings.from_json

DEFAULT_SCHEDULE = "8:2,16:2,32:3,64:4,128:6,256:10"


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
    gan_mode: str = field(default="lsgan", metadata={**_help("adversarial loss"), "choices": ("lsgan", "vanilla")})
    use_face_discriminator: bool = field(default=True, metadata=_help("unconditional D on faces, trained "
                                                                       "with the unpaired faces"))
    k: float = field(default=4.0, metadata=_help("depth exponent of the normalised maps"))
    residual: bool = field(default=True, metadata=_help("the generator predicts soft-tissue thickness above "
                                                        "the filled skull, not the face height itself"))
    base: str = field(default="fit", metadata={**_help("residual mode: the base surface the generator corrects: "
                                                       "fit (the face-model fit over the skull, from the "
                                                       "dataset's fitted-face maps; also a generator input) or "
                                                       "fill (the filled skull + tissue_offset_mm)"),
                                                "choices": ("fit", "fill")})
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
        if self.base not in ("fit", "fill"):
            raise ValueError(f"base must be 'fit' or 'fill', got {self.base!r}")
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


# --------------------------------------------------------------------------------------------
# Training (the loop is skull2face.training.loop)
# --------------------------------------------------------------------------------------------


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
        `skull2face.training.checkpoints.FREE_ON_RESUME` may change), world size and hardware.

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
    import contextlib

    from ..io.run_folder import check_out, run_folder
    from ..training.loop import run_training

    settings = settings or TrainSettings()
    settings.validate()
    check_out(out_dir, [data_dir])
    # rank 0 alone writes the run folder, so it alone claims it (in place: a killed run resumes from it)
    main = int(os.environ.get("RANK", "0")) == 0
    with run_folder(out_dir, "train", [data_dir], replace=False) if main else contextlib.nullcontext():
        return run_training(data_dir, out_dir, settings, resume=resume)


def echo(summary: dict[str, Any]) -> str:
    """What ``skull2face train`` prints (rank 0 only, under torchrun): where the run went and its best."""
    if int(os.environ.get("RANK", "0")) != 0:
        return ""
    best = summary.get("best")
    return (f"wrote checkpoints, metrics.jsonl, loss.png and train.json to {summary['out_dir']}"
            + (f"; best validation {best}" if best else ""))


__all__ = ["DEFAULT_SCHEDULE", "TrainSettings", "echo", "train"]
