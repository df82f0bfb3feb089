"""The training settings: `TrainSettings`, every field a command-line option of ``skull2face train``.

The method each setting steers (staged resolutions, the residual mode and its base surface,
the losses) is described in `skull2face.stages.train`, the command, which re-exports
`TrainSettings`; the loop that reads them is `skull2face.training.loop`. Only the standard
library and `skull2face.options` are imported here: no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from ..options import option

DEFAULT_SCHEDULE = "8:2,16:2,32:3,64:4,128:6,256:10"

# Values of training settings that runs written before the setting existed implicitly used
# (`TrainSettings.from_json` and the resume check read them).
LEGACY_SETTINGS = {"residual": False, "thickness_min_mm": 0.0, "tissue_offset_mm": 0.0, "base": "fill"}


@dataclass
class TrainSettings:
    """Everything that decides a training run (see `skull2face.stages.train` for the method)."""

    lr: float = option(2e-4, help="Adam learning rate of G and the Ds")
    betas: tuple[float, float] = option((0.5, 0.999), help="Adam betas, 'b1,b2'")
    batch_size: int = option(8, help="samples of EACH kind per step and process")
    schedule: str | list = option(DEFAULT_SCHEDULE, help="stages 'res:epochs,...' doubling from the first resolution "
                                                         "(entries above --final-res are dropped)")
    final_res: int = option(256, help="last stage's resolution (pixels, power of two)")
    staged: bool = option(True, help="grow the resolution stage by stage; off: train at final-res from the start "
                                     "for the same number of epochs")
    fade_fraction: float = option(0.5, help="part of each new stage over which the new level fades in (0: no fade)")
    lambda1: float = option(100.0, help="weight of the L1 face-map loss (normalised units)")
    lambda2: float = option(1.0, help="weight of the anthropological loss L_A (mm)")
    lambda_mask: float = option(10.0, help="weight of the face-mask cross-entropy")
    la_on_paired: bool = option(True, help="apply L_A to paired skulls too")
    gan_mode: str = option("lsgan", help="adversarial loss", choices=("lsgan", "vanilla"))
    use_face_discriminator: bool = option(True, help="unconditional D on faces, trained with the unpaired faces")
    k: float = option(4.0, help="depth exponent of the normalised maps")
    residual: bool = option(True, help="the generator predicts soft-tissue thickness above the filled skull, not "
                                       "the face height itself")
    base: str = option("fit", help="residual mode: the base surface the generator corrects: fit (the face-model fit "
                                   "over the skull, from the dataset's fitted-face maps; also a generator input) or "
                                   "fill (the filled skull + tissue_offset_mm)", choices=("fit", "fill"))
    thickness_range_mm: float = option(60.0, help="residual mode: thickness span (mm) of generator outputs 0 to 1")
    thickness_min_mm: float = option(-20.0, help="residual mode: thickness (mm) of a generator output of 0 "
                                                 "(negative: the face may dip below the base surface)")
    fill_radius_mm: float = option(15.0, help="residual mode: radius (mm) of the disc closing the skull's holes "
                                              "and pits")
    tissue_offset_mm: float = option(8.0, help="residual mode: offset the filled skull outwards along its normal "
                                               "by this many mm (ball dilation) to make the base surface")
    init_thickness_mm: float = option(0.0, help="residual mode: thickness (mm) above the base an untrained "
                                                "generator predicts")
    g_base: int = option(16, help="generator channels at 256x256")
    g_max_ch: int = option(128, help="generator channel cap")
    g_dropout: float = option(0.0, help="generator decoder dropout at <= 8x8")
    d_base: int = option(32, help="discriminator channels of the first layer")
    d_layers: int = option(3, help="discriminator stride-2 layers")
    seed: int = option(0, help="seed of weights and data order")
    device: str = option("auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    num_threads: int = option(0, help="CPU threads per process (0: cores / local processes)")
    val_every: int = option(1, help="validate every N epochs (and at each stage's end)")
    stop_after_epochs: int | None = option(None, help="stop once this many epochs (in total, across resumes) "
                                                      "are done")
    progress: bool = option(True, help="tqdm progress bars")

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

        Records written before a setting existed get its `LEGACY_SETTINGS` value (``residual`` False).
        """
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{**LEGACY_SETTINGS, **{k: v for k, v in data.items() if k in names}})


__all__ = ["DEFAULT_SCHEDULE", "LEGACY_SETTINGS", "TrainSettings"]
